//! Shared helpers of the host-resource integration tests: skip checks, a busybox template in
//! a temp data dir, a minimal runsc runner, and drop guards that clean up even on failure.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use warren_agent::command::Cmd;
use warren_agent::storage::{TemplateName, TemplateStore, make_ext4};

/// Returns `Some(reason)` when the test must be skipped: not root or a tool missing.
pub fn skip_reason(tools: &[&str]) -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root".into());
    }
    for t in tools {
        if Cmd::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .run()
            .is_err()
        {
            return Some(format!("needs `{t}` on PATH"));
        }
    }
    None
}

/// `if let Some(r) = skip!(...)`: prints the reason and returns from the test.
#[macro_export]
macro_rules! skip_unless {
    ($($tool:expr),* $(,)?) => {
        if let Some(reason) = common::skip_reason(&[$($tool),*]) {
            eprintln!("SKIPPED {}: {reason}", module_path!());
            return;
        }
    };
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name unique across parallel tests and processes: `<prefix><pid hex><n>`.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{:x}{}",
        std::process::id() & 0xffff,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh data dir under /tmp (not tmpfs-specific; overlayfs upper dirs live here).
pub fn data_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("warren-agent-test-")
        .tempdir()
        .expect("create temp data dir")
}

/// Builds template `name` in `data`: the minimal busybox rootfs (busybox stands in for envd),
/// plus `extra` files (relative path, content).
pub fn make_template(data: &Path, name: &str, extra: &[(&str, &str)]) -> TemplateName {
    let name = TemplateName::new(name).unwrap();
    let store = TemplateStore::new(data);
    let staging = store.create_staging(&name).unwrap();
    let root = staging.join("root");
    warren_agent::template::populate_minimal_rootfs(&root, Path::new("/bin/busybox")).unwrap();
    for (rel, content) in extra {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    make_ext4(&root, &staging.join("rootfs.ext4")).unwrap();
    std::fs::remove_dir_all(&root).unwrap();
    store.commit_staging(&staging, &name, false).unwrap();
    name
}

/// Loop devices whose backing file lies under `dir` (from `losetup -a`).
pub fn loops_under(dir: &Path) -> Vec<String> {
    let out = Cmd::new("losetup").arg("-a").run().unwrap().stdout_str();
    out.lines()
        .filter(|l| l.contains(&*dir.to_string_lossy()))
        .map(str::to_string)
        .collect()
}

/// Mount points under `dir` (from /proc/self/mountinfo).
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    warren_agent::storage::mountinfo::read()
        .unwrap()
        .into_iter()
        .map(|m| m.mount_point)
        .filter(|m| m.starts_with(dir))
        .collect()
}

/// Unmounts everything under `dir` (deepest first) and detaches loop devices of files in it:
/// the last-resort cleanup of a failed test.
pub fn force_cleanup_dir(dir: &Path) {
    let mut mounts = mounts_under(dir);
    mounts.sort_by_key(|m| std::cmp::Reverse(m.as_os_str().len()));
    for m in mounts {
        let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
    }
    for line in loops_under(dir) {
        if let Some(dev) = line.split(':').next() {
            let _ = Cmd::new("losetup").args(["-d", dev]).run();
        }
    }
}

/// A runsc state root plus the containers started in it; `Drop` force-deletes them.
pub struct Runsc {
    pub root: PathBuf,
    ids: std::sync::Mutex<Vec<String>>,
}

impl Runsc {
    pub fn new(dir: &Path) -> Runsc {
        let root = dir.join("runsc-state");
        std::fs::create_dir_all(&root).unwrap();
        Runsc {
            root,
            ids: Default::default(),
        }
    }

    /// Writes an OCI bundle in `bundle` for `rootfs` running `args` in netns `netns`.
    pub fn bundle(&self, bundle: &Path, rootfs: &Path, netns: Option<&Path>, args: &[&str]) {
        std::fs::create_dir_all(bundle).unwrap();
        let _ = std::fs::remove_file(bundle.join("config.json"));
        Cmd::new("runsc")
            .args(["spec", "--bundle"])
            .arg(bundle)
            .run()
            .unwrap();
        let path = bundle.join("config.json");
        let mut spec: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        spec["process"]["args"] = serde_json::json!(args);
        spec["process"]["terminal"] = serde_json::json!(false);
        spec["root"]["path"] = serde_json::json!(rootfs);
        spec["root"]["readonly"] = serde_json::json!(false);
        let namespaces = spec["linux"]["namespaces"].as_array_mut().unwrap();
        for ns in namespaces.iter_mut() {
            if ns["type"] == "network"
                && let Some(p) = netns
            {
                ns["path"] = serde_json::json!(p);
            }
        }
        std::fs::write(&path, serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
    }

    fn command(&self, network: &str) -> Command {
        let mut c = Command::new("runsc");
        c.arg("--root")
            .arg(&self.root)
            .arg(format!("--network={network}"));
        c
    }

    /// `runsc run` in the foreground: returns (exit success, stdout+stderr).
    pub fn run(&self, id: &str, bundle: &Path, timeout: Duration) -> (bool, String) {
        self.ids.lock().unwrap().push(id.to_string());
        let out = tempfile::NamedTempFile::new().unwrap();
        let mut c = self.command("sandbox");
        c.args(["run", "--bundle"])
            .arg(bundle)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(out.reopen().unwrap())
            .stderr(out.reopen().unwrap());
        // SAFETY: hide_proc_sys_net only makes async-signal-safe syscalls.
        unsafe {
            use std::os::unix::process::CommandExt;
            c.pre_exec(warren_agent::net::gvisor::hide_proc_sys_net);
        }
        let mut child = c.spawn().expect("spawn runsc");
        let deadline = std::time::Instant::now() + timeout;
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break Some(s);
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let text = std::fs::read_to_string(out.path()).unwrap_or_default();
        let _ = self.delete(id);
        (status.is_some_and(|s| s.success()), text)
    }

    /// `runsc run -detach` (output discarded).
    pub fn run_detached(&self, id: &str, bundle: &Path) {
        self.ids.lock().unwrap().push(id.to_string());
        let err = tempfile::NamedTempFile::new().unwrap();
        let mut c = self.command("sandbox");
        c.args(["run", "-detach", "--bundle"])
            .arg(bundle)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // A file, not a pipe: the detached sandbox inherits it and would hold a pipe open.
            .stderr(err.reopen().unwrap());
        // SAFETY: hide_proc_sys_net only makes async-signal-safe syscalls.
        unsafe {
            use std::os::unix::process::CommandExt;
            c.pre_exec(warren_agent::net::gvisor::hide_proc_sys_net);
        }
        let status = c.status().expect("spawn runsc");
        assert!(
            status.success(),
            "runsc run -detach {id} failed: {}",
            std::fs::read_to_string(err.path()).unwrap_or_default()
        );
    }

    pub fn delete(&self, id: &str) -> std::io::Result<()> {
        self.command("sandbox")
            .args(["delete", "-force", id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|_| ())
    }
}

impl Drop for Runsc {
    fn drop(&mut self) {
        for id in self.ids.lock().unwrap().drain(..) {
            let _ = self.delete(&id);
        }
    }
}

/// Runs `f` on drop (cleanup that must happen even when an assertion fails).
pub struct Guard<F: FnMut()>(pub F);

impl<F: FnMut()> Drop for Guard<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}
