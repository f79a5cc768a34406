//! The sandbox runtime: what actually runs a sandbox's processes in isolation.
//!
//! Why a trait: a host runs gVisor (`runsc`, any Linux host) or, later, Firecracker (KVM
//! hosts), chosen per host. The [`crate::sandbox::SandboxManager`] owns ids, disks, networks
//! and state files and only asks the runtime for the four things that differ: boot an instance
//! on a prepared rootfs and network namespace, pause it into files, resume an instance from such
//! files (the same sandbox after a pause, or many new ones from a snapshot template: fork), and
//! destroy it. Instances outlive the agent process, so the runtime can also list what is alive
//! and report resource usage.

pub mod gvisor;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// Which runtime implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeKind {
    /// gVisor's `runsc`.
    Gvisor,
    /// Firecracker microVMs (not built yet).
    Firecracker,
}

impl std::fmt::Display for RuntimeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RuntimeKind::Gvisor => "gvisor",
            RuntimeKind::Firecracker => "firecracker",
        })
    }
}

/// Everything a runtime needs to boot (or resume) one sandbox instance. Built by the sandbox
/// manager from the sandbox's rootfs and network.
#[derive(Debug, Clone)]
pub struct BootSpec {
    /// The sandbox id (also the runtime's instance id).
    pub sandbox_id: String,
    /// `$DATA/sandboxes/<id>`: the runtime keeps its bundle and logs here.
    pub sandbox_dir: PathBuf,
    /// The mounted, writable root filesystem.
    pub rootfs: PathBuf,
    /// The network namespace the instance joins.
    pub netns_path: PathBuf,
    /// Virtual CPUs (CPU quota for gVisor).
    pub vcpus: u32,
    /// Memory limit in MiB.
    pub memory_mib: u32,
    /// Environment of the init process (envd), `KEY=VALUE`.
    pub env: Vec<(String, String)>,
    /// Hostname inside the sandbox.
    pub hostname: String,
    /// The init process and its arguments.
    pub args: Vec<String>,
}

/// Host resource usage of an instance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InstanceUsage {
    /// Cumulative CPU time, nanoseconds.
    pub cpu_usage_ns: u64,
    /// Memory charged now, bytes.
    pub memory_bytes: u64,
    /// Memory limit, bytes (0: none).
    pub memory_limit_bytes: u64,
}

/// State of an instance as the runtime sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceState {
    /// Processes are running.
    Running,
    /// Created, not started, or stopped (dead): must be destroyed.
    Stopped,
}

/// An instance the runtime knows about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// Its id (the sandbox id).
    pub id: String,
    /// Its state.
    pub state: InstanceState,
    /// Host pid of its main process (sandbox process for gVisor), if any.
    pub pid: Option<i32>,
}

/// Errors of a runtime operation; each names the sandbox and the step.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The runtime binary is not installed.
    #[error("runtime binary {binary} not found: {hint}")]
    NotInstalled {
        /// The binary looked for.
        binary: String,
        /// How to install it.
        hint: &'static str,
    },
    /// This runtime cannot run on this host.
    #[error("runtime {kind} is not available on this host: {reason}")]
    Unavailable {
        /// The runtime.
        kind: RuntimeKind,
        /// Why.
        reason: String,
    },
    /// A runtime command failed.
    #[error("sandbox {sandbox_id}: {step} failed: {message}")]
    Failed {
        /// The sandbox.
        sandbox_id: String,
        /// The step ("run", "checkpoint", "restore", ...).
        step: &'static str,
        /// The runtime's error output.
        message: String,
    },
    /// A runtime command did not finish in time (it was killed).
    #[error("sandbox {sandbox_id}: {step} timed out")]
    Timeout {
        /// The sandbox.
        sandbox_id: String,
        /// The step.
        step: &'static str,
    },
    /// The instance does not exist in the runtime.
    #[error("sandbox {0} has no runtime instance")]
    NotFound(String),
    /// A file of the instance (bundle, checkpoint) could not be written or read.
    #[error("sandbox {sandbox_id}: {op} {path}: {source}")]
    Io {
        /// The sandbox.
        sandbox_id: String,
        /// What was done.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The checkpoint to resume from is missing or unusable.
    #[error("sandbox {sandbox_id}: no usable checkpoint at {path}")]
    NoCheckpoint {
        /// The sandbox.
        sandbox_id: String,
        /// Where it was looked for.
        path: PathBuf,
    },
}

/// A sandbox runtime (see the module doc). Methods take `&self` and may run concurrently for
/// different sandboxes; the caller serialises calls for one sandbox.
#[async_trait::async_trait]
pub trait Runtime: Send + Sync + std::fmt::Debug {
    /// Which implementation this is.
    fn kind(&self) -> RuntimeKind;

    /// Boots a new instance from `spec` (rootfs and netns ready). Returns once the init
    /// process is started; the caller waits for envd.
    async fn boot(&self, spec: &BootSpec) -> Result<(), RuntimeError>;

    /// Saves the instance's whole state (memory, processes) into `image_dir` and stops it,
    /// releasing its CPU and memory. The rootfs and network are the caller's to release.
    /// `sandbox_ip` lets the runtime close host-side connections to the sandbox first.
    async fn pause(
        &self,
        sandbox_id: &str,
        sandbox_ip: Option<Ipv4Addr>,
        image_dir: &Path,
    ) -> Result<(), RuntimeError>;

    /// Starts an instance from the state saved in `image_dir` on the rootfs and network of
    /// `spec`. The image is left in place: it may be resumed from again (failed resume, or a
    /// snapshot template restored by many sandboxes).
    async fn resume(&self, spec: &BootSpec, image_dir: &Path) -> Result<(), RuntimeError>;

    /// Stops and removes the instance. Idempotent: an unknown instance is not an error.
    async fn destroy(&self, sandbox_id: &str) -> Result<(), RuntimeError>;

    /// The instance `sandbox_id`, if the runtime knows it.
    async fn state(&self, sandbox_id: &str) -> Result<Option<Instance>, RuntimeError>;

    /// Every instance this runtime holds (including ones started by an earlier agent).
    async fn list(&self) -> Result<Vec<Instance>, RuntimeError>;

    /// Host resource usage of the instance.
    async fn usage(&self, sandbox_id: &str) -> Result<InstanceUsage, RuntimeError>;
}
