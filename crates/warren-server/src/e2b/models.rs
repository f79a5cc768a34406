//! The JSON shapes of the E2B REST API, field for field as the `e2b` SDK (2.63) parses them
//! (`e2b/api/client/models/*.py`): camelCase with a few exceptions (`allow_internet_access`),
//! RFC 3339 times, states `running` / `paused`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The envd version we announce. The SDK turns features on by envd version (stdin 0.3.0,
/// default user 0.4.0, octet-stream upload 0.5.7, file metadata 0.6.2, watch entry info
/// 0.6.3, ...); Warren's envd does all of them (tests/python/envd runs the SDK at its newest).
pub const ENVD_VERSION: &str = "0.6.4";

/// `NewSandbox` / `NewSandboxV2` (`POST /sandboxes`, `POST /v2/sandboxes`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewSandbox {
    /// Template name (our templates: `minimal`, `base`, snapshots).
    #[serde(rename = "templateID")]
    pub template_id: String,
    /// Seconds to live.
    pub timeout: Option<u32>,
    /// Pause instead of kill at timeout.
    #[serde(default)]
    pub auto_pause: Option<bool>,
    /// Ignored: every sandbox is secure (has an envd token).
    #[serde(default)]
    pub secure: Option<bool>,
    /// Egress allowed (snake case in the SDK, too).
    #[serde(default)]
    pub allow_internet_access: Option<bool>,
    /// Labels.
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
    /// Environment of every process.
    #[serde(default)]
    pub env_vars: Option<BTreeMap<String, String>>,
}

/// `Sandbox` (create, connect, resume answers).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedSandbox {
    /// Template.
    #[serde(rename = "templateID")]
    pub template_id: String,
    /// Sandbox id.
    #[serde(rename = "sandboxID")]
    pub sandbox_id: String,
    /// Host id (E2B: the node).
    #[serde(rename = "clientID")]
    pub client_id: String,
    /// [`ENVD_VERSION`].
    pub envd_version: &'static str,
    /// Template name.
    pub alias: String,
    /// envd's `X-Access-Token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub envd_access_token: Option<String>,
    /// Not used by Warren.
    pub traffic_access_token: Option<String>,
    /// `WARREN_PROXY_DOMAIN`, or null (the SDK then uses `E2B_SANDBOX_URL` and its own domain).
    pub domain: Option<String>,
}

/// `SandboxLifecycle`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Lifecycle {
    /// Never: resume is explicit.
    pub auto_resume: bool,
    /// `pause` or `kill`.
    pub on_timeout: &'static str,
}

/// `SandboxDetail` (`GET /sandboxes/{id}`) and `ListedSandbox` (lists): the same fields,
/// the detail adding a few.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SandboxDetail {
    /// Template.
    #[serde(rename = "templateID")]
    pub template_id: String,
    /// Sandbox id.
    #[serde(rename = "sandboxID")]
    pub sandbox_id: String,
    /// Host id.
    #[serde(rename = "clientID")]
    pub client_id: String,
    /// Template name.
    pub alias: String,
    /// Creation time.
    pub started_at: DateTime<Utc>,
    /// When it times out.
    pub end_at: DateTime<Utc>,
    /// vCPUs.
    pub cpu_count: u32,
    /// Memory, MiB.
    #[serde(rename = "memoryMB")]
    pub memory_mb: u32,
    /// Not tracked per sandbox: 0.
    #[serde(rename = "diskSizeMB")]
    pub disk_size_mb: u32,
    /// `running` or `paused`.
    pub state: &'static str,
    /// [`ENVD_VERSION`].
    pub envd_version: &'static str,
    /// Labels.
    pub metadata: BTreeMap<String, String>,
    /// envd's token (detail only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub envd_access_token: Option<String>,
    /// Egress allowed (detail only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_internet_access: Option<bool>,
    /// As in [`CreatedSandbox`] (detail only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Timeout behaviour (detail only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Lifecycle>,
}

/// `SandboxMetric`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SandboxMetric {
    /// When measured.
    pub timestamp: DateTime<Utc>,
    /// Same, unix seconds.
    pub timestamp_unix: i64,
    /// vCPUs.
    pub cpu_count: u32,
    /// CPU use since start, percent of its vCPUs.
    pub cpu_used_pct: f64,
    /// Bytes.
    pub mem_used: u64,
    /// Bytes.
    pub mem_total: u64,
    /// Not measured: 0.
    pub mem_cache: u64,
    /// Bytes written to its copy-on-write layer.
    pub disk_used: u64,
    /// Not tracked: 0.
    pub disk_total: u64,
}

/// `SnapshotInfo`.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotInfo {
    /// The snapshot's name (create sandboxes from it with `template=`).
    #[serde(rename = "snapshotID")]
    pub snapshot_id: String,
    /// Its names.
    pub names: Vec<String>,
}

/// `Template` (`GET /templates`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Template {
    /// Name.
    #[serde(rename = "templateID")]
    pub template_id: String,
    /// Name again (no builds in Warren).
    #[serde(rename = "buildID")]
    pub build_id: String,
    /// Default vCPUs.
    pub cpu_count: u32,
    /// Default memory.
    #[serde(rename = "memoryMB")]
    pub memory_mb: u32,
    /// Not tracked: 0.
    #[serde(rename = "diskSizeMB")]
    pub disk_size_mb: u32,
    /// Built in or the team's.
    pub public: bool,
    /// `[name]`.
    pub aliases: Vec<String>,
    /// `[name]`.
    pub names: Vec<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Same.
    pub updated_at: DateTime<Utc>,
    /// Null.
    pub created_by: Option<()>,
    /// Null.
    pub last_spawned_at: Option<DateTime<Utc>>,
    /// 0.
    pub spawn_count: u64,
    /// 1.
    pub build_count: u64,
    /// [`ENVD_VERSION`].
    pub envd_version: &'static str,
    /// `ready` (or the snapshot's status).
    pub build_status: String,
}

/// `SandboxTimeoutRequest`.
#[derive(Debug, Clone, Deserialize)]
pub struct TimeoutRequest {
    /// Seconds from now.
    pub timeout: u32,
}

/// `SandboxRefreshRequest`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RefreshRequest {
    /// Seconds from now.
    #[serde(default)]
    pub duration: Option<u32>,
}

/// `ConnectSandbox(V2)` and `ResumedSandbox`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ConnectRequest {
    /// Seconds from now.
    #[serde(default)]
    pub timeout: Option<u32>,
}

/// `SandboxSnapshotRequest`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SnapshotRequest {
    /// Name (default: generated).
    #[serde(default)]
    pub name: Option<String>,
}

/// `SandboxForkRequest`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ForkRequest {
    /// Seconds to live of each fork (default 15, like E2B).
    #[serde(default)]
    pub timeout: Option<u32>,
    /// How many forks, 1–20 (default 1).
    #[serde(default)]
    pub count: Option<u32>,
}

/// `SandboxForkResult`: one fork, or why it failed.
#[derive(Debug, Clone, Serialize)]
pub struct ForkResult {
    /// The fork.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<CreatedSandbox>,
    /// Its failure, as `{"code", "message"}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<serde_json::Value>,
}
