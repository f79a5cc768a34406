//! The `SandboxManager`: every sandbox on this host, its lifecycle and its TTL.
//!
//! Why this shape (DESIGN §3, house style rule 4): the RPC layer parses requests into typed
//! calls here; each operation is a short recipe of steps over the host resources
//! ([`crate::storage`], [`crate::net`]) and the [`Runtime`], with the intended status
//! persisted ([`persist`]) before acting and the outcome after, so an agent restarted at any
//! point (even SIGKILL) finds running sandboxes running, paused ones resumable, and cleans the
//! leftovers of the rest ([`SandboxManager::start`]).
//!
//! Lock discipline: the map of sandboxes is a `std::sync::Mutex` held only to look up or insert
//! (never across `.await`). Each sandbox has its own `tokio::sync::Mutex` serialising its
//! lifecycle operations (create, pause, resume, snapshot, destroy), so one slow sandbox never
//! stalls another; its last known record sits behind a `std::sync::Mutex` so listing never
//! waits for an operation. Lifecycle operations run on spawned tasks: if the RPC that asked
//! for one is dropped, the operation (and any cleanup after a failure) still runs to its end.

pub mod persist;
mod reaper;

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub use persist::{AccessToken, PersistedSandbox, PersistedStatus};

use crate::net::{NetConfig, NetError, NetOptions, NetworkManager, SandboxNetwork};
use crate::runtime::{BootSpec, InstanceState, InstanceUsage, Runtime, RuntimeError};
use crate::storage::{
    ImageRegistry, SandboxRootfs, StorageError, TemplateKind, TemplateMeta, TemplateName,
    TemplateStore, sandbox_dir, validate_name,
};

/// envd's port inside every sandbox.
pub const ENVD_PORT: u16 = 49983;

/// What the TTL reaper does with an expired sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtlAction {
    /// Destroy it (its disk and memory are gone).
    Destroy,
    /// Pause it (resumable later).
    Pause,
}

/// Configuration of the sandbox manager.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// `$DATA`.
    pub data_dir: PathBuf,
    /// Network pool and names.
    pub net: NetConfig,
    /// How often the TTL reaper looks.
    pub reaper_interval: Duration,
    /// What it does.
    pub ttl_action: TtlAction,
    /// How long create/resume wait for envd to answer `/health`.
    pub envd_ready_timeout: Duration,
    /// vCPUs when a request says 0.
    pub default_vcpus: u32,
    /// Memory MiB when a request says 0.
    pub default_memory_mib: u32,
    /// The init process of every sandbox.
    pub init: Vec<String>,
}

impl ManagerConfig {
    /// Defaults for data dir `data_dir`.
    pub fn new(data_dir: &Path) -> ManagerConfig {
        ManagerConfig {
            data_dir: data_dir.to_path_buf(),
            net: NetConfig::default(),
            reaper_interval: Duration::from_secs(2),
            ttl_action: TtlAction::Destroy,
            envd_ready_timeout: Duration::from_secs(30),
            default_vcpus: 1,
            default_memory_mib: 512,
            init: vec![crate::template::ENVD_PATH.to_string()],
        }
    }
}

/// A create request, validated by the caller's edge (ids and names are checked again here).
#[derive(Debug, Clone, Default)]
pub struct CreateSandbox {
    /// Empty: generated.
    pub sandbox_id: Option<String>,
    /// Template name.
    pub template: String,
    /// 0: default.
    pub vcpus: u32,
    /// 0: default.
    pub memory_mib: u32,
    /// 0: no TTL.
    pub timeout_sec: u32,
    /// Environment.
    pub env: BTreeMap<String, String>,
    /// Metadata.
    pub metadata: BTreeMap<String, String>,
    /// Egress allowed.
    pub allow_internet: bool,
    /// envd's access token: envd starts with `--access-token` (E2B secure sandboxes).
    pub envd_access_token: Option<AccessToken>,
    /// At expiry, pause instead of the configured [`TtlAction`].
    pub auto_pause: bool,
}

/// Status of a sandbox as reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxStatus {
    /// Running.
    Running,
    /// Paused (checkpoint on disk).
    Paused,
    /// An operation is in flight (creating, pausing, resuming, destroying).
    Transition(PersistedStatus),
}

/// What the manager reports about one sandbox.
#[derive(Debug, Clone)]
pub struct SandboxInfo {
    /// The persisted record.
    pub record: PersistedSandbox,
    /// Its status.
    pub status: SandboxStatus,
}

/// Result of a snapshot or flatten.
#[derive(Debug, Clone)]
pub struct TemplateCreated {
    /// Template name.
    pub name: String,
    /// Blocks used by its files, bytes.
    pub size_bytes: u64,
}

/// Errors of sandbox operations. Each names the sandbox (or template) it is about.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// Bad input (id, name, size).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// No such sandbox.
    #[error("sandbox {0} not found")]
    NotFound(String),
    /// A sandbox with this id exists.
    #[error("sandbox {0} already exists")]
    AlreadyExists(String),
    /// No such template.
    #[error("template {0} not found")]
    TemplateNotFound(String),
    /// A template with this name exists.
    #[error("template {0} already exists")]
    TemplateExists(String),
    /// The operation needs another status.
    #[error("sandbox {sandbox_id} is {status}, {op} needs it {needed}")]
    WrongState {
        /// The sandbox.
        sandbox_id: String,
        /// What it is.
        status: &'static str,
        /// The operation.
        op: &'static str,
        /// What it must be.
        needed: &'static str,
    },
    /// No address left for a new sandbox.
    #[error("no network address left for sandbox {0}")]
    NoCapacity(String),
    /// envd did not answer in time.
    #[error("sandbox {sandbox_id}: envd did not answer /health within {after:?}")]
    EnvdNotReady {
        /// The sandbox.
        sandbox_id: String,
        /// How long we waited.
        after: Duration,
    },
    /// Talking to envd failed.
    #[error("sandbox {sandbox_id}: envd: {message}")]
    Envd {
        /// The sandbox.
        sandbox_id: String,
        /// What failed.
        message: String,
        /// True if the failure is the caller's (bad path, missing file).
        caller_fault: bool,
        /// True if the file or process was not found.
        not_found: bool,
    },
    /// A storage step failed.
    #[error("sandbox {sandbox_id}: {source}")]
    Storage {
        /// The sandbox.
        sandbox_id: String,
        /// The error.
        #[source]
        source: StorageError,
    },
    /// A network step failed.
    #[error("sandbox {sandbox_id}: {source}")]
    Net {
        /// The sandbox.
        sandbox_id: String,
        /// The error.
        #[source]
        source: NetError,
    },
    /// The runtime failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The state file could not be written or read.
    #[error(transparent)]
    Persist(#[from] persist::PersistError),
    /// An operation's task died (panic): a bug.
    #[error("sandbox {0}: operation task failed")]
    TaskFailed(String),
}

fn storage(sandbox_id: &str) -> impl FnOnce(StorageError) -> SandboxError + '_ {
    move |source| match source {
        StorageError::InvalidName { .. } => SandboxError::InvalidArgument(source.to_string()),
        StorageError::TemplateNotFound(t) => SandboxError::TemplateNotFound(t),
        StorageError::TemplateExists(t) => SandboxError::TemplateExists(t),
        source => SandboxError::Storage {
            sandbox_id: sandbox_id.to_string(),
            source,
        },
    }
}

fn net_err(sandbox_id: &str) -> impl FnOnce(NetError) -> SandboxError + '_ {
    move |source| match source {
        NetError::PoolExhausted(_) => SandboxError::NoCapacity(sandbox_id.to_string()),
        source => SandboxError::Net {
            sandbox_id: sandbox_id.to_string(),
            source,
        },
    }
}

/// Runs blocking host work (mounts, `ip`, `mkfs`) off the async runtime.
async fn blocking<T: Send + 'static>(
    sandbox_id: &str,
    f: impl FnOnce() -> Result<T, SandboxError> + Send + 'static,
) -> Result<T, SandboxError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| SandboxError::TaskFailed(sandbox_id.to_string()))?
}

pub(crate) fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The host resources a running sandbox holds.
#[derive(Debug, Default)]
struct Held {
    rootfs: Option<SandboxRootfs>,
    network: Option<SandboxNetwork>,
}

/// One sandbox: its lifecycle lock (with the resources it holds) and its last known record.
#[derive(Debug)]
struct Slot {
    id: String,
    dir: PathBuf,
    op: tokio::sync::Mutex<Held>,
    record: Mutex<PersistedSandbox>,
}

impl Slot {
    fn record(&self) -> PersistedSandbox {
        self.record
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Persists `record` and makes it the known one.
    fn save(&self, record: PersistedSandbox) -> Result<(), SandboxError> {
        persist::save(&self.dir, &record)?;
        *self.record.lock().unwrap_or_else(|p| p.into_inner()) = record;
        Ok(())
    }

    fn update(&self, f: impl FnOnce(&mut PersistedSandbox)) -> Result<(), SandboxError> {
        let mut r = self.record();
        f(&mut r);
        self.save(r)
    }

    fn touch(&self) {
        let mut r = self.record.lock().unwrap_or_else(|p| p.into_inner());
        let now = now_unix();
        r.last_active_at_unix = now;
        if r.timeout_sec > 0 {
            r.expires_at_unix = now + i64::from(r.timeout_sec);
        }
    }
}

struct Inner {
    config: ManagerConfig,
    runtime: Arc<dyn Runtime>,
    net: NetworkManager,
    images: ImageRegistry,
    templates: TemplateStore,
    sandboxes: Mutex<HashMap<String, Arc<Slot>>>,
    reaper: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// Handle on this host's sandboxes (cheap to clone). See the module doc.
#[derive(Clone)]
pub struct SandboxManager {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SandboxManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxManager")
            .field("data_dir", &self.inner.config.data_dir)
            .finish()
    }
}

/// A fresh sandbox id: `sb-` and 16 lower-case letters/digits.
pub fn new_sandbox_id() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let s: String = (0..16)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("sb-{s}")
}

impl SandboxManager {
    /// Opens the manager on `config.data_dir`: loads the persisted sandboxes, adopts the
    /// running ones from the runtime, keeps paused ones, finishes or undoes operations a crash
    /// interrupted, removes leftovers of dead sandboxes (runtime instances, networks, mounts),
    /// and starts the TTL reaper.
    pub async fn start(
        config: ManagerConfig,
        runtime: Arc<dyn Runtime>,
    ) -> Result<SandboxManager, SandboxError> {
        let data_dir = config.data_dir.clone();
        let net_config = config.net.clone();
        let net = blocking("", move || {
            NetworkManager::new(&data_dir, net_config).map_err(net_err(""))
        })
        .await?;
        let mgr = SandboxManager {
            inner: Arc::new(Inner {
                images: ImageRegistry::new(&config.data_dir),
                templates: TemplateStore::new(&config.data_dir),
                config,
                runtime,
                net,
                sandboxes: Mutex::new(HashMap::new()),
                reaper: Mutex::new(None),
            }),
        };
        mgr.recover().await?;
        let handle = tokio::spawn(reaper::run(mgr.clone()));
        *mgr.inner.reaper.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
        Ok(mgr)
    }

    /// Stops the reaper. Sandboxes keep running (they belong to the runtime) and are adopted
    /// by the next agent.
    pub async fn shutdown(&self) {
        let handle = self
            .inner
            .reaper
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(h) = handle {
            h.abort();
            let _ = h.await;
        }
    }

    /// The runtime.
    pub fn runtime(&self) -> &Arc<dyn Runtime> {
        &self.inner.runtime
    }

    /// The network manager (tests inspect it).
    pub fn network(&self) -> &NetworkManager {
        &self.inner.net
    }

    /// The configuration.
    pub fn config(&self) -> &ManagerConfig {
        &self.inner.config
    }

    fn slot(&self, sandbox_id: &str) -> Result<Arc<Slot>, SandboxError> {
        self.inner
            .sandboxes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(sandbox_id)
            .cloned()
            .ok_or_else(|| SandboxError::NotFound(sandbox_id.to_string()))
    }

    fn remove_slot(&self, sandbox_id: &str) {
        self.inner
            .sandboxes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(sandbox_id);
    }

    fn boot_spec(&self, slot: &Slot, rootfs: &Path, net: &SandboxNetwork) -> BootSpec {
        let r = slot.record();
        let mut env: Vec<(String, String)> = r.env.into_iter().collect();
        env.push(("WARREN_SANDBOX_ID".into(), slot.id.clone()));
        let mut args = self.inner.config.init.clone();
        if let Some(t) = r.envd_access_token {
            args.extend(["--access-token".to_string(), t.0]);
        }
        BootSpec {
            sandbox_id: slot.id.clone(),
            sandbox_dir: slot.dir.clone(),
            rootfs: rootfs.to_path_buf(),
            netns_path: net.netns_path.clone(),
            vcpus: r.vcpus,
            memory_mib: r.memory_mib,
            env,
            hostname: slot.id.clone(),
            args,
        }
    }

    /// Runs `op` on its own task so it completes (and cleans up) even if the caller is dropped.
    async fn detached<T: Send + 'static>(
        &self,
        sandbox_id: &str,
        op: impl std::future::Future<Output = Result<T, SandboxError>> + Send + 'static,
    ) -> Result<T, SandboxError> {
        tokio::spawn(op)
            .await
            .map_err(|_| SandboxError::TaskFailed(sandbox_id.to_string()))?
    }

    // ---- create ----

    /// Creates a sandbox from a template (image: boot; snapshot: restore its checkpoint) and
    /// returns once envd answers.
    pub async fn create(&self, req: CreateSandbox) -> Result<SandboxInfo, SandboxError> {
        let id = match req.sandbox_id.clone().filter(|s| !s.is_empty()) {
            Some(id) => id,
            None => new_sandbox_id(),
        };
        validate_name("sandbox id", &id).map_err(storage(&id))?;
        let template_name = TemplateName::new(&req.template).map_err(storage(&id))?;
        let template = self
            .inner
            .templates
            .get(&template_name)
            .map_err(storage(&id))?;
        let (vcpus, memory_mib) = match &template.meta {
            Some(m) if m.kind == TemplateKind::Snapshot => (
                m.vcpus.unwrap_or(self.inner.config.default_vcpus),
                m.memory_mib.unwrap_or(self.inner.config.default_memory_mib),
            ),
            _ => (
                if req.vcpus == 0 {
                    self.inner.config.default_vcpus
                } else {
                    req.vcpus
                },
                if req.memory_mib == 0 {
                    self.inner.config.default_memory_mib
                } else {
                    req.memory_mib
                },
            ),
        };
        if vcpus > 64 || !(64..=1024 * 1024).contains(&memory_mib) {
            return Err(SandboxError::InvalidArgument(format!(
                "vcpus must be 1..=64 and memory_mb 64..=1048576, got {vcpus} and {memory_mib}"
            )));
        }
        let checkpoint = (template.kind() == TemplateKind::Snapshot)
            .then(|| self.inner.templates.checkpoint_dir(&template_name));
        let now = now_unix();
        let record = PersistedSandbox {
            version: persist::STATE_VERSION,
            sandbox_id: id.clone(),
            template: template_name.to_string(),
            vcpus,
            memory_mib,
            timeout_sec: req.timeout_sec,
            env: req.env,
            metadata: req.metadata,
            allow_internet: req.allow_internet,
            status: PersistedStatus::Creating,
            created_at_unix: now,
            last_active_at_unix: now,
            expires_at_unix: if req.timeout_sec > 0 {
                now + i64::from(req.timeout_sec)
            } else {
                0
            },
            sandbox_ip: None,
            envd_access_token: req.envd_access_token.filter(|t| !t.0.is_empty()),
            auto_pause: req.auto_pause,
        };
        let dir = sandbox_dir(&self.inner.config.data_dir, &id).map_err(storage(&id))?;
        let slot = Arc::new(Slot {
            id: id.clone(),
            dir: dir.clone(),
            op: tokio::sync::Mutex::new(Held::default()),
            record: Mutex::new(record.clone()),
        });
        {
            let mut map = self
                .inner
                .sandboxes
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if map.contains_key(&id) || dir.exists() {
                return Err(SandboxError::AlreadyExists(id));
            }
            map.insert(id.clone(), slot.clone());
        }
        let this = self.clone();
        self.detached(&id, async move {
            let mut held = slot.op.lock().await;
            let result = async {
                std::fs::create_dir_all(&slot.dir)
                    .map_err(StorageError::io("create dir", &slot.dir))
                    .map_err(storage(&slot.id))?;
                slot.save(record)?;
                this.bring_up(&slot, &mut held, &template_name, checkpoint.as_deref())
                    .await
            }
            .await;
            match result {
                Ok(()) => Ok(this.info_of(&slot)),
                Err(e) => {
                    tracing::warn!(sandbox_id = %slot.id, error = %e, "create failed, cleaning up");
                    if let Err(e2) = this.tear_down(&slot, &mut held, true).await {
                        tracing::error!(sandbox_id = %slot.id, error = %e2, "cleanup after failed create failed");
                    }
                    this.remove_slot(&slot.id);
                    Err(e)
                }
            }
        })
        .await
    }

    /// Mounts the rootfs over `template`, sets up the network, boots (or restores from
    /// `checkpoint`), waits for envd and records the sandbox as running. On error, what was
    /// made is left in `held` for the caller to release.
    async fn bring_up(
        &self,
        slot: &Arc<Slot>,
        held: &mut Held,
        template: &TemplateName,
        checkpoint: Option<&Path>,
    ) -> Result<(), SandboxError> {
        let id = slot.id.clone();
        let t0 = Instant::now();
        if held.rootfs.is_none() {
            let images = self.inner.images.clone();
            let data_dir = self.inner.config.data_dir.clone();
            let (id2, template) = (id.clone(), template.clone());
            held.rootfs = Some(
                blocking(&id, move || {
                    let lease = images.acquire(&template).map_err(storage(&id2))?;
                    SandboxRootfs::mount(&data_dir, &id2, lease).map_err(storage(&id2))
                })
                .await?,
            );
        }
        let opts = NetOptions {
            allow_internet: slot.record().allow_internet,
        };
        let network = {
            let this = self.clone();
            let id2 = id.clone();
            blocking(&id, move || {
                let n = this.inner.net.setup(&id2, opts).map_err(net_err(&id2))?;
                this.inner
                    .net
                    .prepare_for_runsc(&n)
                    .map_err(net_err(&id2))?;
                Ok(n)
            })
            .await?
        };
        held.network = Some(network.clone());
        let rootfs_path = held.rootfs.as_ref().expect("mounted above").path();
        let spec = self.boot_spec(slot, &rootfs_path, &network);
        let t_prep = t0.elapsed();
        match checkpoint {
            Some(image) => self.inner.runtime.resume(&spec, image).await?,
            None => self.inner.runtime.boot(&spec).await?,
        }
        let t_boot = t0.elapsed();
        wait_for_envd(
            &id,
            network.sandbox_ip,
            self.inner.config.envd_ready_timeout,
        )
        .await?;
        let record = slot.record();
        let token = record.envd_access_token.as_ref().map(|t| t.0.as_str());
        if checkpoint.is_none() && !record.env.is_empty() {
            // envd gives its processes a clean environment plus what `/init` set.
            let body = serde_json::json!({ "envVars": record.env });
            init_envd(&id, network.sandbox_ip, &body, token).await?;
        }
        if let Some(forked_token) = checkpoint.and_then(snapshot_token) {
            // Forked from a snapshot: envd woke up with its parent's token; give it ours.
            if forked_token.as_deref() != token {
                let body = serde_json::json!({ "accessToken": token.unwrap_or("") });
                init_envd(&id, network.sandbox_ip, &body, forked_token.as_deref()).await?;
            }
        }
        tracing::info!(
            sandbox_id = %id,
            prepare_ms = t_prep.as_millis() as u64,
            boot_ms = (t_boot - t_prep).as_millis() as u64,
            envd_ms = (t0.elapsed() - t_boot).as_millis() as u64,
            "sandbox running"
        );
        let ip = network.sandbox_ip.to_string();
        slot.update(|r| {
            r.status = PersistedStatus::Running;
            r.sandbox_ip = Some(ip);
            let now = now_unix();
            r.last_active_at_unix = now;
            if r.timeout_sec > 0 {
                r.expires_at_unix = now + i64::from(r.timeout_sec);
            }
        })
    }

    /// Stops the runtime instance and releases network and rootfs (unmounted; its upper dir
    /// and everything else under the sandbox dir is deleted too when `remove` is set).
    async fn tear_down(
        &self,
        slot: &Slot,
        held: &mut Held,
        remove: bool,
    ) -> Result<(), SandboxError> {
        let id = slot.id.clone();
        self.inner.runtime.destroy(&id).await?;
        let rootfs = held.rootfs.take();
        held.network = None;
        let this = self.clone();
        let dir = slot.dir.clone();
        blocking(&id.clone(), move || {
            this.inner.net.teardown(&id).map_err(net_err(&id))?;
            match rootfs {
                Some(r) if remove => r.remove().map_err(storage(&id))?,
                Some(r) => r.unmount().map_err(storage(&id))?,
                None if remove => SandboxRootfs::remove_unmounted(&this.inner.config.data_dir, &id)
                    .map_err(storage(&id))?,
                None => {}
            }
            if remove {
                match std::fs::remove_dir_all(&dir) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(storage(&id)(StorageError::io("remove", &dir)(e))),
                }
            }
            Ok(())
        })
        .await
    }

    // ---- destroy ----

    /// Destroys a sandbox (running or paused) and every host resource it holds. Unknown ids
    /// are not an error (idempotent).
    pub async fn destroy(&self, sandbox_id: &str) -> Result<(), SandboxError> {
        validate_name("sandbox id", sandbox_id).map_err(storage(sandbox_id))?;
        let slot = match self.slot(sandbox_id) {
            Ok(s) => s,
            Err(SandboxError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let this = self.clone();
        self.detached(sandbox_id, async move {
            let mut held = slot.op.lock().await;
            if !this.slot(&slot.id).is_ok_and(|s| Arc::ptr_eq(&s, &slot)) {
                return Ok(()); // destroyed while we waited for the lock
            }
            slot.update(|r| r.status = PersistedStatus::Destroying)?;
            this.tear_down(&slot, &mut held, true).await?;
            this.remove_slot(&slot.id);
            tracing::info!(sandbox_id = %slot.id, "sandbox destroyed");
            Ok(())
        })
        .await
    }

    // ---- pause / resume ----

    fn checkpoint_dir(slot: &Slot) -> PathBuf {
        slot.dir.join("checkpoint")
    }

    /// Checkpoints a running sandbox into its dir and releases runtime and network (the
    /// overlay upper stays). Zero CPU and memory while paused.
    pub async fn pause(&self, sandbox_id: &str) -> Result<SandboxInfo, SandboxError> {
        validate_name("sandbox id", sandbox_id).map_err(storage(sandbox_id))?;
        let slot = self.slot(sandbox_id)?;
        let this = self.clone();
        self.detached(sandbox_id, async move {
            let mut held = slot.op.lock().await;
            this.pause_locked(&slot, &mut held).await?;
            Ok(this.info_of(&slot))
        })
        .await
    }

    async fn pause_locked(&self, slot: &Arc<Slot>, held: &mut Held) -> Result<(), SandboxError> {
        let status = slot.record().status;
        if status != PersistedStatus::Running {
            return Err(wrong_state(&slot.id, status, "pause", "running"));
        }
        slot.update(|r| r.status = PersistedStatus::Pausing)?;
        let t0 = Instant::now();
        if let Err(e) = self
            .inner
            .runtime
            .pause(
                &slot.id,
                slot.record()
                    .sandbox_ip
                    .as_deref()
                    .and_then(|s| s.parse().ok()),
                &Self::checkpoint_dir(slot),
            )
            .await
        {
            // Still running: revert. Gone without an image: nothing left to resume.
            let alive = matches!(
                self.inner.runtime.state(&slot.id).await,
                Ok(Some(i)) if i.state == InstanceState::Running
            );
            if alive {
                slot.update(|r| r.status = PersistedStatus::Running)?;
            } else {
                tracing::error!(sandbox_id = %slot.id, error = %e, "pause failed and the sandbox is gone");
                slot.update(|r| r.status = PersistedStatus::Running)?;
            }
            return Err(e.into());
        }
        let rootfs = held.rootfs.take();
        held.network = None;
        let this = self.clone();
        let id = slot.id.clone();
        blocking(&id.clone(), move || {
            this.inner.net.teardown(&id).map_err(net_err(&id))?;
            if let Some(r) = rootfs {
                r.unmount().map_err(storage(&id))?;
            }
            Ok(())
        })
        .await?;
        slot.update(|r| {
            r.status = PersistedStatus::Paused;
            r.sandbox_ip = None;
        })?;
        tracing::info!(sandbox_id = %slot.id, pause_ms = t0.elapsed().as_millis() as u64, "sandbox paused");
        Ok(())
    }

    /// Restores a paused sandbox: same id, files, processes and memory; a new network (its
    /// address may change). A failed resume leaves it paused with its checkpoint intact.
    pub async fn resume(
        &self,
        sandbox_id: &str,
        timeout_sec: u32,
    ) -> Result<SandboxInfo, SandboxError> {
        validate_name("sandbox id", sandbox_id).map_err(storage(sandbox_id))?;
        let slot = self.slot(sandbox_id)?;
        let this = self.clone();
        self.detached(sandbox_id, async move {
            let mut held = slot.op.lock().await;
            let status = slot.record().status;
            if status != PersistedStatus::Paused {
                return Err(wrong_state(&slot.id, status, "resume", "paused"));
            }
            slot.update(|r| {
                r.status = PersistedStatus::Resuming;
                if timeout_sec > 0 {
                    r.timeout_sec = timeout_sec;
                }
            })?;
            let template = TemplateName::new(&slot.record().template).map_err(storage(&slot.id))?;
            let image = Self::checkpoint_dir(&slot);
            let t0 = Instant::now();
            match this.bring_up(&slot, &mut held, &template, Some(&image)).await {
                Ok(()) => {
                    tracing::info!(sandbox_id = %slot.id, resume_ms = t0.elapsed().as_millis() as u64, "sandbox resumed");
                    // The image has served; a later pause writes a new one.
                    let _ = std::fs::remove_dir_all(&image);
                    Ok(this.info_of(&slot))
                }
                Err(e) => {
                    tracing::warn!(sandbox_id = %slot.id, error = %e, "resume failed; staying paused");
                    if let Err(e2) = this.tear_down(&slot, &mut held, false).await {
                        tracing::error!(sandbox_id = %slot.id, error = %e2, "cleanup after failed resume failed");
                    }
                    slot.update(|r| {
                        r.status = PersistedStatus::Paused;
                        r.sandbox_ip = None;
                    })?;
                    Err(e)
                }
            }
        })
        .await
    }

    /// Pauses every running sandbox, one after another; failures are logged and reported.
    pub async fn pause_all(&self) -> (Vec<String>, Vec<String>) {
        let ids: Vec<String> = self
            .list()
            .into_iter()
            .filter(|i| i.status == SandboxStatus::Running)
            .map(|i| i.record.sandbox_id)
            .collect();
        let (mut ok, mut failed) = (Vec::new(), Vec::new());
        for id in ids {
            match self.pause(&id).await {
                Ok(_) => ok.push(id),
                Err(e) => {
                    tracing::warn!(sandbox_id = %id, error = %e, "pause-all: pause failed");
                    failed.push(id);
                }
            }
        }
        (ok, failed)
    }

    // ---- snapshot / flatten ----

    /// Pauses the sandbox if it runs, then makes template `name` of its flattened rootfs and
    /// its checkpoint: many new sandboxes can be created from it, each restoring the memory
    /// onto its own disk and network. The sandbox stays paused and resumable.
    pub async fn snapshot(
        &self,
        sandbox_id: &str,
        name: &str,
        overwrite: bool,
    ) -> Result<TemplateCreated, SandboxError> {
        validate_name("sandbox id", sandbox_id).map_err(storage(sandbox_id))?;
        let name = TemplateName::new(name).map_err(storage(sandbox_id))?;
        let slot = self.slot(sandbox_id)?;
        let this = self.clone();
        self.detached(sandbox_id, async move {
            let mut held = slot.op.lock().await;
            if slot.record().status == PersistedStatus::Running {
                this.pause_locked(&slot, &mut held).await?;
            }
            let status = slot.record().status;
            if status != PersistedStatus::Paused {
                return Err(wrong_state(
                    &slot.id,
                    status,
                    "snapshot",
                    "running or paused",
                ));
            }
            this.make_template(&slot, &name, overwrite, true).await
        })
        .await
    }

    /// Stops the sandbox, folds its rootfs into a new image template `name` (no memory), and
    /// destroys the sandbox.
    pub async fn flatten(
        &self,
        sandbox_id: &str,
        name: &str,
        overwrite: bool,
    ) -> Result<TemplateCreated, SandboxError> {
        validate_name("sandbox id", sandbox_id).map_err(storage(sandbox_id))?;
        let name = TemplateName::new(name).map_err(storage(sandbox_id))?;
        let slot = self.slot(sandbox_id)?;
        let this = self.clone();
        self.detached(sandbox_id, async move {
            let mut held = slot.op.lock().await;
            let status = slot.record().status;
            if !matches!(status, PersistedStatus::Running | PersistedStatus::Paused) {
                return Err(wrong_state(
                    &slot.id,
                    status,
                    "flatten",
                    "running or paused",
                ));
            }
            slot.update(|r| r.status = PersistedStatus::Destroying)?;
            this.tear_down(&slot, &mut held, false).await?;
            let created = this.make_template(&slot, &name, overwrite, false).await;
            this.tear_down(&slot, &mut held, true).await?;
            this.remove_slot(&slot.id);
            created
        })
        .await
    }

    async fn make_template(
        &self,
        slot: &Arc<Slot>,
        name: &TemplateName,
        overwrite: bool,
        with_checkpoint: bool,
    ) -> Result<TemplateCreated, SandboxError> {
        let record = slot.record();
        let store = TemplateStore::new(&self.inner.config.data_dir);
        if store.exists(name) && !overwrite {
            return Err(SandboxError::TemplateExists(name.to_string()));
        }
        let parent = TemplateName::new(&record.template).map_err(storage(&slot.id))?;
        let images = self.inner.images.clone();
        let (id, name2, dir) = (slot.id.clone(), name.clone(), slot.dir.clone());
        let t0 = Instant::now();
        let size = blocking(&slot.id, move || {
            let staging = store.create_staging(&name2).map_err(storage(&id))?;
            let result = (|| {
                let lease = images.acquire(&parent).map_err(storage(&id))?;
                let flat = crate::storage::flatten(
                    lease.mount_point(),
                    &dir.join("upper"),
                    &staging.join("rootfs.ext4"),
                );
                lease.release().map_err(storage(&id))?;
                flat.map_err(storage(&id))?;
                if with_checkpoint {
                    let src = dir.join("checkpoint");
                    let dst = staging.join("checkpoint");
                    copy_dir(&src, &dst).map_err(storage(&id))?;
                    // Forks wake up with this token in envd's memory (see bring_up).
                    let token = record.envd_access_token.as_ref().map(|t| t.0.as_str());
                    let file = dst.join(SNAPSHOT_TOKEN_FILE);
                    crate::storage::write_file_atomic(&file, token.unwrap_or("").as_bytes())
                        .map_err(storage(&id))?;
                }
                store
                    .commit_staging(&staging, &name2, overwrite)
                    .map_err(storage(&id))?;
                let mut meta = TemplateMeta::new(if with_checkpoint {
                    TemplateKind::Snapshot
                } else {
                    TemplateKind::Image
                });
                if with_checkpoint {
                    meta.vcpus = Some(record.vcpus);
                    meta.memory_mib = Some(record.memory_mib);
                }
                meta.parent = Some(parent.to_string());
                store.write_meta(&name2, &meta).map_err(storage(&id))?;
                crate::storage::disk_usage(&store.dir(&name2))
                    .map(|u| u.bytes)
                    .map_err(storage(&id))
            })();
            if result.is_err() {
                let _ = std::fs::remove_dir_all(&staging);
            }
            result
        })
        .await?;
        tracing::info!(sandbox_id = %slot.id, template = %name, size, ms = t0.elapsed().as_millis() as u64, "template made from sandbox");
        Ok(TemplateCreated {
            name: name.to_string(),
            size_bytes: size,
        })
    }

    /// Deletes template `name` (snapshot or image). Idempotent.
    pub async fn delete_template(&self, name: &str) -> Result<(), SandboxError> {
        let name = TemplateName::new(name).map_err(storage(""))?;
        let store = TemplateStore::new(&self.inner.config.data_dir);
        blocking("", move || store.delete(&name).map_err(storage(""))).await
    }

    // ---- queries ----

    fn info_of(&self, slot: &Slot) -> SandboxInfo {
        let record = slot.record();
        let status = match record.status {
            PersistedStatus::Running => SandboxStatus::Running,
            PersistedStatus::Paused => SandboxStatus::Paused,
            s => SandboxStatus::Transition(s),
        };
        SandboxInfo { record, status }
    }

    /// Every sandbox this agent holds, running, paused or in transition.
    pub fn list(&self) -> Vec<SandboxInfo> {
        let slots: Vec<Arc<Slot>> = self
            .inner
            .sandboxes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        let mut v: Vec<SandboxInfo> = slots.iter().map(|s| self.info_of(s)).collect();
        v.sort_by(|a, b| a.record.sandbox_id.cmp(&b.record.sandbox_id));
        v
    }

    /// One sandbox.
    pub fn get(&self, sandbox_id: &str) -> Result<SandboxInfo, SandboxError> {
        validate_name("sandbox id", sandbox_id).map_err(storage(sandbox_id))?;
        Ok(self.info_of(&*self.slot(sandbox_id)?))
    }

    /// Keepalive: the TTL restarts from now (with `timeout_sec` as the new timeout if > 0).
    /// Returns the new expiry (0: none).
    pub fn ping(&self, sandbox_id: &str, timeout_sec: u32) -> Result<i64, SandboxError> {
        let info = self.get(sandbox_id)?;
        if info.status != SandboxStatus::Running {
            return Err(wrong_state(
                sandbox_id,
                info.record.status,
                "ping",
                "running",
            ));
        }
        let slot = self.slot(sandbox_id)?;
        slot.update(|r| {
            if timeout_sec > 0 {
                r.timeout_sec = timeout_sec;
            }
            let now = now_unix();
            r.last_active_at_unix = now;
            r.expires_at_unix = if r.timeout_sec > 0 {
                now + i64::from(r.timeout_sec)
            } else {
                0
            };
        })?;
        Ok(slot.record().expires_at_unix)
    }

    /// The address of a running sandbox's envd, and bumps its activity (exec, files).
    pub fn envd_addr(&self, sandbox_id: &str, touch: bool) -> Result<SocketAddr, SandboxError> {
        validate_name("sandbox id", sandbox_id).map_err(storage(sandbox_id))?;
        let slot = self.slot(sandbox_id)?;
        let r = slot.record();
        let ip = match (
            r.status,
            r.sandbox_ip
                .as_deref()
                .and_then(|s| s.parse::<Ipv4Addr>().ok()),
        ) {
            (PersistedStatus::Running, Some(ip)) => ip,
            (s, _) => return Err(wrong_state(sandbox_id, s, "this call", "running")),
        };
        if touch {
            slot.touch();
        }
        Ok(SocketAddr::from((ip, ENVD_PORT)))
    }

    /// envd's access token of a sandbox (`X-Access-Token` on the agent's own envd calls).
    pub fn envd_access_token(&self, sandbox_id: &str) -> Result<Option<String>, SandboxError> {
        validate_name("sandbox id", sandbox_id).map_err(storage(sandbox_id))?;
        Ok(self
            .slot(sandbox_id)?
            .record()
            .envd_access_token
            .map(|t| t.0))
    }

    /// Host resource usage of a running sandbox, and its disk usage.
    pub async fn metrics(&self, sandbox_id: &str) -> Result<(InstanceUsage, u64), SandboxError> {
        let info = self.get(sandbox_id)?;
        let usage = if info.status == SandboxStatus::Running {
            self.inner.runtime.usage(sandbox_id).await?
        } else {
            InstanceUsage::default()
        };
        let upper = self.slot(sandbox_id)?.dir.join("upper");
        let id = sandbox_id.to_string();
        let disk = blocking(sandbox_id, move || {
            crate::storage::disk_usage(&upper)
                .map(|u| u.bytes)
                .map_err(storage(&id))
        })
        .await?;
        Ok((usage, disk))
    }

    // ---- recovery ----

    async fn recover(&self) -> Result<(), SandboxError> {
        let instances = self.inner.runtime.list().await?;
        let running = |id: &str| {
            instances
                .iter()
                .any(|i| i.id == id && i.state == InstanceState::Running)
        };
        let mut live: Vec<String> = Vec::new();
        for (id, loaded) in persist::load_all(&self.inner.config.data_dir) {
            let record = match loaded {
                Ok(Some(r)) => r,
                Ok(None) => {
                    tracing::warn!(sandbox_id = %id, "sandbox dir without state; removing its leftovers");
                    self.cleanup_dead(&id).await;
                    continue;
                }
                Err(e) => {
                    // Never guess at a state file we cannot read: keep its files, skip it.
                    tracing::error!(sandbox_id = %id, error = %e, "unreadable sandbox state; leaving it alone");
                    continue;
                }
            };
            let dir = sandbox_dir(&self.inner.config.data_dir, &id).map_err(storage(&id))?;
            let has_image = dir.join("checkpoint").join("checkpoint.img").is_file();
            let is_running = running(&id);
            let next = match record.status {
                PersistedStatus::Running
                | PersistedStatus::Creating
                | PersistedStatus::Resuming
                    if is_running =>
                {
                    Some(PersistedStatus::Running)
                }
                PersistedStatus::Pausing if is_running => Some(PersistedStatus::Running),
                PersistedStatus::Paused => Some(PersistedStatus::Paused),
                PersistedStatus::Pausing | PersistedStatus::Resuming if has_image => {
                    Some(PersistedStatus::Paused)
                }
                _ => None,
            };
            let slot = Arc::new(Slot {
                id: id.clone(),
                dir,
                op: tokio::sync::Mutex::new(Held::default()),
                record: Mutex::new(record.clone()),
            });
            match next {
                Some(PersistedStatus::Running) => match self.adopt(&slot).await {
                    Ok(()) => {
                        live.push(id.clone());
                        self.insert_slot(slot);
                        tracing::info!(sandbox_id = %id, "adopted running sandbox");
                    }
                    Err(e) => {
                        tracing::error!(sandbox_id = %id, error = %e, "cannot adopt running sandbox; destroying it");
                        self.cleanup_dead(&id).await;
                    }
                },
                Some(_) => {
                    // Paused: nothing of it may run or hold a network.
                    let _ = self.inner.runtime.destroy(&id).await;
                    let data_dir = self.inner.config.data_dir.clone();
                    let id2 = id.clone();
                    let _ = blocking(&id, move || {
                        if SandboxRootfs::is_mounted(&data_dir, &id2).unwrap_or(false) {
                            let rootfs_dir = data_dir.join("sandboxes").join(&id2).join("rootfs");
                            let _ =
                                nix::mount::umount2(&rootfs_dir, nix::mount::MntFlags::MNT_DETACH);
                        }
                        Ok(())
                    })
                    .await;
                    slot.update(|r| {
                        r.status = PersistedStatus::Paused;
                        r.sandbox_ip = None;
                    })?;
                    self.insert_slot(slot);
                    tracing::info!(sandbox_id = %id, "found paused sandbox");
                }
                None => {
                    tracing::info!(sandbox_id = %id, status = ?record.status, "sandbox did not survive; removing its leftovers");
                    self.cleanup_dead(&id).await;
                }
            }
        }
        // Runtime instances nobody owns (their state is gone): stop them.
        for i in &instances {
            if !live.contains(&i.id)
                && let Err(e) = self.inner.runtime.destroy(&i.id).await
            {
                tracing::warn!(sandbox_id = %i.id, error = %e, "removing orphan runtime instance failed");
            }
        }
        let this = self.clone();
        blocking("", move || {
            let refs: Vec<&str> = live.iter().map(String::as_str).collect();
            let removed = this
                .inner
                .net
                .cleanup_leftovers(&refs)
                .map_err(net_err(""))?;
            if !removed.is_empty() {
                tracing::info!(?removed, "removed leftover sandbox networks");
            }
            this.inner.images.unmount_unused().map_err(storage(""))?;
            Ok(())
        })
        .await
    }

    fn insert_slot(&self, slot: Arc<Slot>) {
        self.inner
            .sandboxes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(slot.id.clone(), slot);
    }

    /// Re-takes the host resources of a sandbox still running in the runtime.
    async fn adopt(&self, slot: &Arc<Slot>) -> Result<(), SandboxError> {
        let record = slot.record();
        let template = TemplateName::new(&record.template).map_err(storage(&slot.id))?;
        let images = self.inner.images.clone();
        let data_dir = self.inner.config.data_dir.clone();
        let id = slot.id.clone();
        let rootfs = blocking(&slot.id, move || {
            let lease = images.acquire(&template).map_err(storage(&id))?;
            SandboxRootfs::mount(&data_dir, &id, lease).map_err(storage(&id))
        })
        .await?;
        let network = self
            .inner
            .net
            .get(&slot.id)
            .ok_or_else(|| SandboxError::Net {
                sandbox_id: slot.id.clone(),
                source: NetError::NotFound(slot.id.clone()),
            })?;
        let ip = network.sandbox_ip.to_string();
        {
            let mut held = slot.op.lock().await;
            held.rootfs = Some(rootfs);
            held.network = Some(network);
        }
        slot.update(|r| {
            r.status = PersistedStatus::Running;
            r.sandbox_ip = Some(ip);
        })
    }

    /// Removes everything a dead sandbox left: runtime instance, network, overlay, dir.
    async fn cleanup_dead(&self, sandbox_id: &str) {
        let slot = Slot {
            id: sandbox_id.to_string(),
            dir: self
                .inner
                .config
                .data_dir
                .join("sandboxes")
                .join(sandbox_id),
            op: tokio::sync::Mutex::new(Held::default()),
            record: Mutex::new(PersistedSandbox {
                version: persist::STATE_VERSION,
                sandbox_id: sandbox_id.to_string(),
                template: String::new(),
                vcpus: 0,
                memory_mib: 0,
                timeout_sec: 0,
                env: BTreeMap::new(),
                metadata: BTreeMap::new(),
                allow_internet: true,
                status: PersistedStatus::Destroying,
                created_at_unix: 0,
                last_active_at_unix: 0,
                expires_at_unix: 0,
                sandbox_ip: None,
                envd_access_token: None,
                auto_pause: false,
            }),
        };
        let mut held = Held::default();
        if let Err(e) = self.tear_down(&slot, &mut held, true).await {
            tracing::warn!(sandbox_id, error = %e, "cleaning up a dead sandbox failed");
        }
    }

    /// Sandboxes whose TTL expired (for the reaper).
    fn expired(&self, now: i64) -> Vec<String> {
        self.list()
            .into_iter()
            .filter(|i| {
                i.status == SandboxStatus::Running
                    && i.record.expires_at_unix > 0
                    && i.record.expires_at_unix <= now
            })
            .map(|i| i.record.sandbox_id)
            .collect()
    }
}

fn wrong_state(
    sandbox_id: &str,
    status: PersistedStatus,
    op: &'static str,
    needed: &'static str,
) -> SandboxError {
    SandboxError::WrongState {
        sandbox_id: sandbox_id.to_string(),
        status: match status {
            PersistedStatus::Creating => "creating",
            PersistedStatus::Running => "running",
            PersistedStatus::Pausing => "pausing",
            PersistedStatus::Paused => "paused",
            PersistedStatus::Resuming => "resuming",
            PersistedStatus::Destroying => "destroying",
        },
        op,
        needed,
    }
}

fn copy_dir(src: &Path, dst: &Path) -> Result<(), StorageError> {
    std::fs::create_dir_all(dst).map_err(StorageError::io("create dir", dst))?;
    for entry in std::fs::read_dir(src).map_err(StorageError::io("read dir", src))? {
        let entry = entry.map_err(StorageError::io("read dir", src))?;
        let to = dst.join(entry.file_name());
        std::fs::copy(entry.path(), &to).map_err(StorageError::io("copy", &to))?;
        std::fs::File::open(&to)
            .and_then(|f| f.sync_all())
            .map_err(StorageError::io("fsync", &to))?;
    }
    Ok(())
}

/// Polls envd's `/health` on `ip` until it answers 2xx (fast: connection refusals return at
/// once, so the loop sleeps only a millisecond between tries).
pub async fn wait_for_envd(
    sandbox_id: &str,
    ip: Ipv4Addr,
    timeout: Duration,
) -> Result<(), SandboxError> {
    let addr = SocketAddr::from((ip, ENVD_PORT));
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Ok(true)) =
            tokio::time::timeout(Duration::from_millis(500), health_once(addr)).await
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(SandboxError::EnvdNotReady {
                sandbox_id: sandbox_id.to_string(),
                after: timeout,
            });
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The file in a snapshot template's checkpoint dir holding the envd token its memory holds
/// (empty: none).
const SNAPSHOT_TOKEN_FILE: &str = "warren-envd-access-token";

/// For a snapshot template's checkpoint: the envd token its envd has (`Some(None)`: none);
/// `None` for a sandbox's own checkpoint (no file: its envd has the sandbox's token).
fn snapshot_token(checkpoint: &Path) -> Option<Option<String>> {
    let t = std::fs::read_to_string(checkpoint.join(SNAPSHOT_TOKEN_FILE)).ok()?;
    Some((!t.is_empty()).then_some(t))
}

/// `POST /init` to envd with `body` (`{"envVars": ...}`: the env vars of every process it
/// starts; `{"accessToken": ...}`: its new token), sending `token` if envd has one.
async fn init_envd(
    sandbox_id: &str,
    ip: Ipv4Addr,
    body: &serde_json::Value,
    token: Option<&str>,
) -> Result<(), SandboxError> {
    let addr = SocketAddr::from((ip, ENVD_PORT));
    let body = body.to_string();
    let token_header = token
        .map(|t| format!("X-Access-Token: {t}\r\n"))
        .unwrap_or_default();
    let fail = |message: String| SandboxError::Envd {
        sandbox_id: sandbox_id.to_string(),
        message,
        caller_fault: false,
        not_found: false,
    };
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.set_zero_linger()?;
        s.write_all(
            format!(
                "POST /init HTTP/1.1\r\nHost: {addr}\r\n{token_header}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await?;
        let mut buf = [0u8; 32];
        let mut n = 0;
        while n < 12 {
            let m = s.read(&mut buf[n..]).await?;
            if m == 0 {
                break;
            }
            n += m;
        }
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&buf[..n]).into_owned())
    };
    let status = tokio::time::timeout(Duration::from_secs(10), attempt)
        .await
        .map_err(|_| fail("POST /init timed out".into()))?
        .map_err(|e| fail(format!("POST /init: {e}")))?;
    if status.starts_with("HTTP/1.1 2") || status.starts_with("HTTP/1.0 2") {
        Ok(())
    } else {
        Err(fail(format!(
            "POST /init answered {}",
            status.lines().next().unwrap_or("")
        )))
    }
}

async fn health_once(addr: SocketAddr) -> std::io::Result<bool> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    // Closed by us with a reset (below), never by envd: this runsc cannot checkpoint a
    // sandbox holding a TCP connection in any connected state, TIME_WAIT included.
    s.set_zero_linger()?;
    s.write_all(format!("GET /health HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut buf = [0u8; 32];
    let mut n = 0;
    while n < 12 {
        let m = s.read(&mut buf[n..]).await?;
        if m == 0 {
            break;
        }
        n += m;
    }
    Ok(buf[..n].starts_with(b"HTTP/1.1 2") || buf[..n].starts_with(b"HTTP/1.0 2"))
}
