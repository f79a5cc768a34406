//! The gVisor runtime: each sandbox is one `runsc` container (sandbox + gofer processes).
//!
//! Why these runsc flags (runsc 0.0~20221219.0, checked on this host):
//! - `--root $DATA/runsc`: runsc's state dir lives in the agent's data dir, so containers are
//!   found again after an agent restart and two agents (or parallel tests) never collide.
//! - `--network=sandbox` (gVisor's own netstack on the netns's veth, see [`crate::net`]): the
//!   only mode that checkpoints; `host` would also expose the host kernel's network stack.
//! - `--platform=ptrace` by default: works everywhere; `kvm` hangs at boot on this (nested)
//!   host. Configurable ([`GvisorConfig::platform`]).
//! - `--overlay2=none`: root filesystem writes go to the sandbox's host overlay upper dir
//!   (what pause keeps, flatten folds and disk usage counts), not to sentry memory.
//! - `run --detach` / `restore --detach` run in a private mount namespace with
//!   `/proc/sys/net` hidden ([`crate::net::gvisor::hide_proc_sys_net`]): this runsc mistakes
//!   every netns of a 6.x kernel for the root one otherwise.
//! - `checkpoint --image-path DIR` stops the container (no `--leave-running`): pause releases
//!   all CPU and memory. `restore --image-path DIR` works into a *different* netns, IP and
//!   rootfs mount than the checkpoint was taken in, and several times from one image: that is
//!   how snapshot templates fork.
//!
//! `run`/`restore` leave daemons holding their stdio, so they are not run through
//! [`crate::command::Cmd`] (which reads output until the pipes close): their output goes to a
//! log file in the sandbox dir, read back for the error on failure; argv is logged at debug
//! and every call has a timeout, like the helper does.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_spec::runtime as oci;

use super::{BootSpec, Instance, InstanceState, InstanceUsage, Runtime, RuntimeError, RuntimeKind};
use crate::command::{Cmd, CommandError};

/// Timeout of `runsc run` / `runsc restore`.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Timeout of `runsc checkpoint` (large memories take a while).
const CHECKPOINT_TIMEOUT: Duration = Duration::from_secs(300);
/// Timeout of small commands (kill, delete, list, state).
const SMALL_TIMEOUT: Duration = Duration::from_secs(30);
/// cgroup parent of every sandbox (`/sys/fs/cgroup/<controller>/warren/<id>`).
const CGROUP_PARENT: &str = "warren";

/// Configuration of the gVisor runtime.
#[derive(Debug, Clone)]
pub struct GvisorConfig {
    /// The `runsc` binary.
    pub runsc: PathBuf,
    /// runsc's state dir (`$DATA/runsc`).
    pub root_dir: PathBuf,
    /// `ptrace` or `kvm`.
    pub platform: String,
}

impl GvisorConfig {
    /// Defaults for data dir `data_dir`: `runsc` from `PATH`, state in `$DATA/runsc`, ptrace.
    pub fn new(data_dir: &Path) -> GvisorConfig {
        GvisorConfig {
            runsc: PathBuf::from("runsc"),
            root_dir: data_dir.join("runsc"),
            platform: "ptrace".to_string(),
        }
    }
}

/// The gVisor runtime (see the module doc).
#[derive(Debug)]
pub struct GvisorRuntime {
    config: GvisorConfig,
}

/// Finds `runsc` in `PATH` (or takes an explicit path); a clear error naming the package if
/// it is missing.
pub fn find_runsc(explicit: Option<&Path>) -> Result<PathBuf, RuntimeError> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(RuntimeError::NotInstalled {
                binary: p.display().to_string(),
                hint: "apt-get install runsc",
            })
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("runsc"))
        .find(|p| p.is_file())
        .ok_or(RuntimeError::NotInstalled {
            binary: "runsc".to_string(),
            hint: "apt-get install runsc",
        })
}

impl GvisorRuntime {
    /// A runtime with `config`; creates the state dir.
    pub fn new(config: GvisorConfig) -> Result<GvisorRuntime, RuntimeError> {
        std::fs::create_dir_all(&config.root_dir).map_err(|source| RuntimeError::Io {
            sandbox_id: String::new(),
            op: "create dir",
            path: config.root_dir.clone(),
            source,
        })?;
        Ok(GvisorRuntime { config })
    }

    /// The configuration.
    pub fn config(&self) -> &GvisorConfig {
        &self.config
    }

    fn global_args(&self) -> Vec<String> {
        vec![
            format!("--root={}", self.config.root_dir.display()),
            format!("--platform={}", self.config.platform),
            crate::net::gvisor::RUNSC_NETWORK_FLAG.to_string(),
            "--overlay2=none".to_string(),
        ]
    }

    fn cmd(&self) -> Cmd {
        Cmd::new(&self.config.runsc).args(self.global_args())
    }

    /// Runs a daemonising runsc command (`run`, `restore`) with output to a log file.
    async fn spawn_detached(
        &self,
        sandbox_id: &str,
        step: &'static str,
        sub_args: Vec<String>,
        log: &Path,
    ) -> Result<(), RuntimeError> {
        self.spawn_logged(sandbox_id, step, sub_args, log, true, START_TIMEOUT)
            .await
    }

    /// Runs a runsc command with its output in `log` (read back for the error), a timeout,
    /// and (`hide_net`) the `/proc/sys/net` workaround.
    async fn spawn_logged(
        &self,
        sandbox_id: &str,
        step: &'static str,
        sub_args: Vec<String>,
        log: &Path,
        hide_net: bool,
        timeout: Duration,
    ) -> Result<(), RuntimeError> {
        let io = |op, path: &Path| {
            let path = path.to_path_buf();
            let sandbox_id = sandbox_id.to_string();
            move |source| RuntimeError::Io {
                sandbox_id,
                op,
                path,
                source,
            }
        };
        let file = std::fs::File::create(log).map_err(io("create", log))?;
        let file2 = file.try_clone().map_err(io("dup", log))?;
        let mut args = self.global_args();
        args.extend(sub_args);
        tracing::debug!(sandbox_id, command = %format!("{} {}", self.config.runsc.display(), args.join(" ")), "running runsc");
        let mut c = tokio::process::Command::new(&self.config.runsc);
        c.args(&args)
            .stdin(std::process::Stdio::null())
            .stdout(file)
            .stderr(file2)
            .kill_on_drop(false)
            // Its own process group: the sandbox outlives the agent, so Ctrl-C on a terminal
            // running `warren up` / `warren agent` must not reach runsc.
            .process_group(0);
        if hide_net {
            // SAFETY: the hook only calls async-signal-safe syscalls (see its doc).
            unsafe {
                c.pre_exec(crate::net::gvisor::hide_proc_sys_net);
            }
        }
        let mut child = c.spawn().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                RuntimeError::NotInstalled {
                    binary: self.config.runsc.display().to_string(),
                    hint: "apt-get install runsc",
                }
            } else {
                io("spawn", &self.config.runsc)(e)
            }
        })?;
        let status = match tokio::time::timeout(timeout, child.wait()).await {
            Ok(r) => r.map_err(io("wait for", &self.config.runsc))?,
            Err(_) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                return Err(RuntimeError::Timeout {
                    sandbox_id: sandbox_id.to_string(),
                    step,
                });
            }
        };
        if !status.success() {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            return Err(RuntimeError::Failed {
                sandbox_id: sandbox_id.to_string(),
                step,
                message: runsc_error_summary(&text),
            });
        }
        Ok(())
    }

    fn bundle_dir(spec: &BootSpec) -> PathBuf {
        spec.sandbox_dir.join("bundle")
    }

    /// Writes `<sandbox_dir>/bundle/config.json` for `spec`.
    fn write_bundle(&self, spec: &BootSpec) -> Result<PathBuf, RuntimeError> {
        let dir = Self::bundle_dir(spec);
        let io = |op, path: &Path| {
            let path = path.to_path_buf();
            let sandbox_id = spec.sandbox_id.clone();
            move |source| RuntimeError::Io {
                sandbox_id,
                op,
                path,
                source,
            }
        };
        std::fs::create_dir_all(&dir).map_err(io("create dir", &dir))?;
        let config = oci_config(spec).map_err(|e| RuntimeError::Failed {
            sandbox_id: spec.sandbox_id.clone(),
            step: "build OCI spec",
            message: e.to_string(),
        })?;
        let bytes = serde_json::to_vec_pretty(&config).expect("an OCI spec always serialises");
        let path = dir.join("config.json");
        std::fs::write(&path, bytes).map_err(io("write", &path))?;
        Ok(dir)
    }

    fn fail(sandbox_id: &str, step: &'static str, e: CommandError) -> RuntimeError {
        match e {
            CommandError::Timeout { .. } => RuntimeError::Timeout {
                sandbox_id: sandbox_id.to_string(),
                step,
            },
            CommandError::Spawn { .. } => RuntimeError::NotInstalled {
                binary: "runsc".to_string(),
                hint: "apt-get install runsc",
            },
            other => RuntimeError::Failed {
                sandbox_id: sandbox_id.to_string(),
                step,
                message: other.to_string(),
            },
        }
    }

    fn cgroup_file(controller: &str, sandbox_id: &str, file: &str) -> PathBuf {
        Path::new("/sys/fs/cgroup")
            .join(controller)
            .join(CGROUP_PARENT)
            .join(sandbox_id)
            .join(file)
    }
}

/// The OCI runtime spec of one sandbox: envd as init, the sandbox's rootfs, its netns, and
/// CPU/memory limits in `linux.resources` (runsc applies them to the sandbox's cgroup and sizes
/// the sentry's memory from the limit).
pub fn oci_config(spec: &BootSpec) -> Result<oci::Spec, oci_spec::OciSpecError> {
    let mut env = vec![
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        "HOME=/root".to_string(),
    ];
    env.extend(spec.env.iter().map(|(k, v)| format!("{k}={v}")));
    let caps: std::collections::HashSet<oci::Capability> = [
        oci::Capability::Chown,
        oci::Capability::DacOverride,
        oci::Capability::Fowner,
        oci::Capability::Fsetid,
        oci::Capability::Kill,
        oci::Capability::Setgid,
        oci::Capability::Setuid,
        oci::Capability::Setpcap,
        oci::Capability::NetBindService,
        oci::Capability::NetRaw,
        oci::Capability::SysChroot,
        oci::Capability::Mknod,
        oci::Capability::AuditWrite,
        oci::Capability::Setfcap,
    ]
    .into_iter()
    .collect();
    let capabilities = oci::LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps.clone())
        .inheritable(caps.clone())
        .ambient(caps)
        .build()?;
    let process = oci::ProcessBuilder::default()
        .terminal(false)
        .args(spec.args.clone())
        .env(env)
        .cwd("/")
        .user(oci::UserBuilder::default().uid(0u32).gid(0u32).build()?)
        .capabilities(capabilities)
        .no_new_privileges(false)
        .build()?;
    let root = oci::RootBuilder::default()
        .path(spec.rootfs.clone())
        .readonly(false)
        .build()?;
    let ns = |t| oci::LinuxNamespaceBuilder::default().typ(t).build();
    let namespaces = vec![
        ns(oci::LinuxNamespaceType::Pid)?,
        ns(oci::LinuxNamespaceType::Ipc)?,
        ns(oci::LinuxNamespaceType::Uts)?,
        ns(oci::LinuxNamespaceType::Mount)?,
        oci::LinuxNamespaceBuilder::default()
            .typ(oci::LinuxNamespaceType::Network)
            .path(spec.netns_path.clone())
            .build()?,
    ];
    let memory_bytes = i64::from(spec.memory_mib) * 1024 * 1024;
    let period: u64 = 100_000;
    let resources = oci::LinuxResourcesBuilder::default()
        .memory(
            oci::LinuxMemoryBuilder::default()
                .limit(memory_bytes)
                .build()?,
        )
        .cpu(
            oci::LinuxCpuBuilder::default()
                .period(period)
                .quota(i64::from(spec.vcpus.max(1)) * period as i64)
                .build()?,
        )
        .build()?;
    let linux = oci::LinuxBuilder::default()
        .namespaces(namespaces)
        .resources(resources)
        .cgroups_path(PathBuf::from(format!(
            "/{CGROUP_PARENT}/{}",
            spec.sandbox_id
        )))
        .build()?;
    let mount = |dest: &str, typ: &str, source: &str, options: &[&str]| {
        oci::MountBuilder::default()
            .destination(dest)
            .typ(typ)
            .source(source)
            .options(options.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .build()
    };
    let mounts = vec![
        mount("/proc", "proc", "proc", &[])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
            ],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        )?,
    ];
    oci::SpecBuilder::default()
        .version("1.0.2")
        .root(root)
        .process(process)
        .hostname(spec.hostname.clone())
        .mounts(mounts)
        .linux(linux)
        .build()
}

#[derive(serde::Deserialize)]
struct RunscState {
    id: String,
    #[serde(default)]
    pid: i32,
    status: String,
}

impl RunscState {
    fn into_instance(self) -> Instance {
        Instance {
            state: if self.status == "running" {
                InstanceState::Running
            } else {
                InstanceState::Stopped
            },
            pid: (self.pid > 0).then_some(self.pid),
            id: self.id,
        }
    }
}

#[async_trait::async_trait]
impl Runtime for GvisorRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Gvisor
    }

    #[tracing::instrument(skip_all, fields(sandbox_id = %spec.sandbox_id))]
    async fn boot(&self, spec: &BootSpec) -> Result<(), RuntimeError> {
        let bundle = self.write_bundle(spec)?;
        let log = spec.sandbox_dir.join("runsc-run.log");
        self.spawn_detached(
            &spec.sandbox_id,
            "runsc run",
            vec![
                "run".into(),
                "--detach".into(),
                format!("--bundle={}", bundle.display()),
                spec.sandbox_id.clone(),
            ],
            &log,
        )
        .await
    }

    #[tracing::instrument(skip_all, fields(sandbox_id))]
    async fn pause(
        &self,
        sandbox_id: &str,
        sandbox_ip: Option<Ipv4Addr>,
        image_dir: &Path,
    ) -> Result<(), RuntimeError> {
        if image_dir.exists() {
            std::fs::remove_dir_all(image_dir).map_err(|source| RuntimeError::Io {
                sandbox_id: sandbox_id.to_string(),
                op: "remove",
                path: image_dir.to_path_buf(),
                source,
            })?;
        }
        std::fs::create_dir_all(image_dir).map_err(|source| RuntimeError::Io {
            sandbox_id: sandbox_id.to_string(),
            op: "create dir",
            path: image_dir.to_path_buf(),
            source,
        })?;
        let log = image_dir.with_file_name("runsc-checkpoint.log");
        // This runsc refuses to save a TCP endpoint on the sandbox's NIC in any connected
        // state ("endpoint cannot be saved in connected state"). Connections between the host
        // and the sandbox (agent to envd, proxies) are aborted first, and connections closing
        // right now get a few short retries.
        let mut attempt = 0;
        loop {
            abort_host_connections(sandbox_id, sandbox_ip).await;
            let r = self
                .spawn_logged(
                    sandbox_id,
                    "runsc checkpoint",
                    vec![
                        "checkpoint".into(),
                        format!("--image-path={}", image_dir.display()),
                        sandbox_id.to_string(),
                    ],
                    &log,
                    false,
                    CHECKPOINT_TIMEOUT,
                )
                .await;
            match r {
                Err(RuntimeError::Failed { ref message, .. })
                    if message.contains("cannot be saved in connected state") && attempt < 10 =>
                {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(20 * attempt)).await;
                }
                Err(RuntimeError::Failed {
                    sandbox_id,
                    step,
                    message,
                }) if message.contains("cannot be saved in connected state") => {
                    return Err(RuntimeError::Failed {
                        sandbox_id,
                        step,
                        message: format!(
                            "the sandbox holds an open TCP connection, which this runsc cannot checkpoint: {}",
                            message.lines().next().unwrap_or_default()
                        ),
                    });
                }
                other => break other?,
            }
        }
        // The image must be on disk before the runtime state that could recreate it is gone.
        fsync_dir_tree(image_dir).map_err(|source| RuntimeError::Io {
            sandbox_id: sandbox_id.to_string(),
            op: "fsync",
            path: image_dir.to_path_buf(),
            source,
        })?;
        self.destroy(sandbox_id).await
    }

    #[tracing::instrument(skip_all, fields(sandbox_id = %spec.sandbox_id))]
    async fn resume(&self, spec: &BootSpec, image_dir: &Path) -> Result<(), RuntimeError> {
        if !image_dir.join("checkpoint.img").is_file() {
            return Err(RuntimeError::NoCheckpoint {
                sandbox_id: spec.sandbox_id.clone(),
                path: image_dir.to_path_buf(),
            });
        }
        // A dead leftover of the same id would make restore fail.
        self.destroy(&spec.sandbox_id).await?;
        let bundle = self.write_bundle(spec)?;
        let log = spec.sandbox_dir.join("runsc-restore.log");
        self.spawn_detached(
            &spec.sandbox_id,
            "runsc restore",
            vec![
                "restore".into(),
                "--detach".into(),
                format!("--image-path={}", image_dir.display()),
                format!("--bundle={}", bundle.display()),
                spec.sandbox_id.clone(),
            ],
            &log,
        )
        .await
    }

    #[tracing::instrument(skip_all, fields(sandbox_id))]
    async fn destroy(&self, sandbox_id: &str) -> Result<(), RuntimeError> {
        if self.state(sandbox_id).await?.is_none() {
            return Ok(());
        }
        // `delete --force` kills the sandbox and gofer and removes the state.
        let r = self
            .cmd()
            .args(["delete", "--force", sandbox_id])
            .timeout(SMALL_TIMEOUT)
            .run_async()
            .await;
        if let Err(e) = r {
            // Gone in between: fine; anything else is an error.
            if self.state(sandbox_id).await?.is_some() {
                return Err(Self::fail(sandbox_id, "runsc delete", e));
            }
        }
        Ok(())
    }

    async fn state(&self, sandbox_id: &str) -> Result<Option<Instance>, RuntimeError> {
        // `runsc state` of an unknown id fails like other errors do; `list` is unambiguous.
        Ok(self.list().await?.into_iter().find(|i| i.id == sandbox_id))
    }

    async fn list(&self) -> Result<Vec<Instance>, RuntimeError> {
        let out = self
            .cmd()
            .args(["list", "--format=json"])
            .timeout(SMALL_TIMEOUT)
            .run_async()
            .await
            .map_err(|e| Self::fail("", "runsc list", e))?;
        let states: Option<Vec<RunscState>> =
            serde_json::from_slice(&out.stdout).map_err(|e| RuntimeError::Failed {
                sandbox_id: String::new(),
                step: "parse runsc list",
                message: e.to_string(),
            })?;
        Ok(states
            .unwrap_or_default()
            .into_iter()
            .map(RunscState::into_instance)
            .collect())
    }

    async fn usage(&self, sandbox_id: &str) -> Result<InstanceUsage, RuntimeError> {
        let read = |controller: &str, file: &str| -> u64 {
            std::fs::read_to_string(Self::cgroup_file(controller, sandbox_id, file))
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0)
        };
        if self.state(sandbox_id).await?.is_none() {
            return Err(RuntimeError::NotFound(sandbox_id.to_string()));
        }
        let limit = read("memory", "memory.limit_in_bytes");
        Ok(InstanceUsage {
            cpu_usage_ns: read("cpuacct", "cpuacct.usage"),
            memory_bytes: read("memory", "memory.usage_in_bytes"),
            // cgroup v1 reports "no limit" as a huge number.
            memory_limit_bytes: if limit >= (1 << 62) { 0 } else { limit },
        })
    }
}

/// Aborts (with a reset, `ss -K`) every host socket connected to the sandbox's address, so no
/// endpoint inside is left in a connected state by a host-side peer.
async fn abort_host_connections(sandbox_id: &str, ip: Option<Ipv4Addr>) {
    let Some(ip) = ip else {
        return;
    };
    let r = Cmd::new("ss")
        .args(["-K", "-t", "dst", &ip.to_string()])
        .timeout(SMALL_TIMEOUT)
        .run_async()
        .await;
    if let Err(e) = r {
        tracing::debug!(sandbox_id, error = %e, "ss -K failed");
    }
}

/// The useful part of runsc's output: its error lines (Go panics print pages of stack).
fn runsc_error_summary(text: &str) -> String {
    let mut picked: Vec<&str> = text
        .lines()
        .filter(|l| {
            let l = l.trim_start();
            !l.starts_with("goroutine ")
                && !l.starts_with("gvisor.dev/")
                && !l.starts_with('\t')
                && !l.contains(".go:")
                && !l.is_empty()
        })
        .take(8)
        .collect();
    if picked.is_empty() {
        picked = text.lines().take(8).collect();
    }
    let s = picked.join(" | ");
    let end = (0..=s.len().min(200000))
        .rev()
        .find(|i| s.is_char_boundary(*i))
        .unwrap_or(0);
    s[..end].to_string()
}

fn fsync_dir_tree(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let p = entry?.path();
        if p.is_file() {
            std::fs::File::open(&p)?.sync_all()?;
        }
    }
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> BootSpec {
        BootSpec {
            sandbox_id: "sb1".into(),
            sandbox_dir: "/d/sandboxes/sb1".into(),
            rootfs: "/d/sandboxes/sb1/rootfs".into(),
            netns_path: "/run/netns/warren-sb1".into(),
            vcpus: 2,
            memory_mib: 512,
            env: vec![("A".into(), "b".into())],
            hostname: "sb1".into(),
            args: vec!["/usr/bin/envd".into()],
        }
    }

    #[test]
    fn oci_config_carries_limits_netns_and_env() {
        let json = serde_json::to_value(oci_config(&spec()).unwrap()).unwrap();
        assert_eq!(json["process"]["args"][0], "/usr/bin/envd");
        assert!(
            json["process"]["env"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e == "A=b")
        );
        assert_eq!(json["root"]["path"], "/d/sandboxes/sb1/rootfs");
        assert_eq!(
            json["linux"]["resources"]["memory"]["limit"],
            512 * 1024 * 1024
        );
        assert_eq!(json["linux"]["resources"]["cpu"]["quota"], 200_000);
        assert_eq!(json["linux"]["cgroupsPath"], "/warren/sb1");
        let ns = json["linux"]["namespaces"].as_array().unwrap();
        assert!(
            ns.iter()
                .any(|n| n["type"] == "network" && n["path"] == "/run/netns/warren-sb1")
        );
    }

    #[test]
    fn runsc_state_parses() {
        let s: Vec<RunscState> =
            serde_json::from_str(r#"[{"id":"a","pid":12,"status":"running","bundle":"/x"}]"#)
                .unwrap();
        let i = s.into_iter().next().unwrap().into_instance();
        assert_eq!(i.state, InstanceState::Running);
        assert_eq!(i.pid, Some(12));
    }
}
