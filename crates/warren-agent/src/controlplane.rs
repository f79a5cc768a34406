//! The agent's side of the control plane: registration, stored credentials, heartbeats.
//!
//! `warren agent --register TOKEN --address HOST:PORT --control-plane URL` trades the one-time
//! token for credentials ([`register`]) and keeps them in `$DATA/credentials.json` (mode 0600,
//! written to a temp file, fsynced, renamed), so later starts need no token. The heartbeat
//! loop ([`spawn_heartbeat`]) reports load, templates and every sandbox held (running or
//! paused: PauseAll must never look like a loss) every interval. On 401/403 it refreshes the
//! credentials and retries; when the refresh itself is refused (credentials revoked, or a
//! reused refresh token) it pauses every running sandbox (nothing lost) and keeps trying every
//! interval, so the control plane learns the new states once it is back.
//!
//! The same credentials carry `control_plane_key`: the public key the agent's RPC layer
//! verifies the control plane's tokens with ([`crate::rpc::ControlPlaneVerifier`]).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::sandbox::{SandboxManager, SandboxStatus};
use crate::storage::TemplateStore;

/// File name of the credentials in the data dir.
pub const CREDENTIALS_FILE: &str = "credentials.json";
const HTTP_TIMEOUT: Duration = Duration::from_secs(20);

/// Errors talking to the control plane or keeping the credentials.
#[derive(Debug, thiserror::Error)]
pub enum ControlPlaneError {
    /// The credentials file could not be read or written.
    #[error("credentials file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The credentials file is not valid JSON of the right shape.
    #[error("credentials file {path}: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The control plane refused the credential (401/403).
    #[error("{what}: control plane refused the credentials ({status})")]
    Refused {
        /// Which call.
        what: &'static str,
        /// HTTP status.
        status: u16,
    },
    /// Any other HTTP answer.
    #[error("{what}: control plane answered {status}: {body}")]
    Status {
        /// Which call.
        what: &'static str,
        /// HTTP status.
        status: u16,
        /// Response body (truncated).
        body: String,
    },
    /// The control plane could not be reached.
    #[error("{what}: {source}")]
    Http {
        /// Which call.
        what: &'static str,
        /// The transport error.
        source: reqwest::Error,
    },
}

/// What the agent keeps after registering.
#[derive(Clone, Serialize, Deserialize)]
pub struct Credentials {
    /// This host's id.
    pub host_id: String,
    /// Base URL of the control plane.
    pub control_plane_url: String,
    /// Host JWT (heartbeats).
    pub host_token: String,
    /// Its expiry (RFC 3339).
    pub host_token_expires_at: String,
    /// Refresh token.
    pub refresh_token: String,
    /// Its expiry (RFC 3339).
    pub refresh_token_expires_at: String,
    /// The control plane's Ed25519 public key (base64, 32 bytes).
    pub control_plane_key: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("host_id", &self.host_id)
            .field("control_plane_url", &self.control_plane_url)
            .field("host_token_expires_at", &self.host_token_expires_at)
            .field("refresh_token_expires_at", &self.refresh_token_expires_at)
            .finish_non_exhaustive()
    }
}

/// The answer of register and refresh.
#[derive(Deserialize)]
struct Issued {
    host_id: String,
    host_token: String,
    host_token_expires_at: String,
    refresh_token: String,
    refresh_token_expires_at: String,
    control_plane_key: String,
}

impl Issued {
    fn into_credentials(self, url: &str) -> Credentials {
        Credentials {
            host_id: self.host_id,
            control_plane_url: url.trim_end_matches('/').to_owned(),
            host_token: self.host_token,
            host_token_expires_at: self.host_token_expires_at,
            refresh_token: self.refresh_token,
            refresh_token_expires_at: self.refresh_token_expires_at,
            control_plane_key: self.control_plane_key,
        }
    }
}

impl Credentials {
    /// `$DATA/credentials.json`.
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(CREDENTIALS_FILE)
    }

    /// The stored credentials, if any.
    pub fn load(data_dir: &Path) -> Result<Option<Self>, ControlPlaneError> {
        let path = Self::path(data_dir);
        match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| ControlPlaneError::Corrupt {
                        path,
                        message: e.to_string(),
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ControlPlaneError::Io { path, source }),
        }
    }

    /// Writes them (0600) atomically: temp file, fsync, rename, fsync of the dir.
    pub fn save(&self, data_dir: &Path) -> Result<(), ControlPlaneError> {
        let path = Self::path(data_dir);
        let tmp = data_dir.join(format!(".{CREDENTIALS_FILE}.tmp"));
        let io = |source| ControlPlaneError::Io {
            path: path.clone(),
            source,
        };
        let json = serde_json::to_vec_pretty(self).expect("credentials always serialize");
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        f.write_all(&json).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
        if let Ok(dir) = std::fs::File::open(data_dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

/// What the agent reports at registration.
#[derive(Debug, Clone, Serialize)]
pub struct HostSpecs {
    /// `host:port` the control plane dials.
    pub address: String,
    /// CPU architecture.
    pub arch: String,
    /// CPUs.
    pub cpu_count: u32,
    /// Memory, MiB.
    pub memory_mb: u64,
    /// Disk of the data dir's file system, MiB.
    pub disk_mb: u64,
    /// `gvisor` or `firecracker`.
    pub runtime: String,
    /// Agent version.
    pub agent_version: String,
    /// Most sandboxes.
    pub sandbox_capacity: u32,
    /// Template names present.
    pub templates: Vec<String>,
}

/// Memory (total, available) in MiB from `/proc/meminfo`.
pub fn memory_mb() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb / 1024)
    };
    (field("MemTotal:"), field("MemAvailable:"))
}

/// Disk (total, free) in MiB of the file system holding `dir`.
pub fn disk_mb(dir: &Path) -> (u64, u64) {
    match nix::sys::statvfs::statvfs(dir) {
        Ok(s) => {
            let frag = s.fragment_size().max(1);
            let mib = |blocks: u64| blocks.saturating_mul(frag) / (1024 * 1024);
            (mib(s.blocks()), mib(s.blocks_available()))
        }
        Err(_) => (0, 0),
    }
}

/// Names of the templates in the data dir.
pub fn template_names(data_dir: &Path) -> Vec<String> {
    match TemplateStore::new(data_dir).list() {
        Ok(list) => list.into_iter().map(|t| t.name.to_string()).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "listing templates for the control plane");
            Vec::new()
        }
    }
}

impl HostSpecs {
    /// Measures this host.
    pub fn measure(data_dir: &Path, address: &str, runtime: &str, capacity: u32) -> Self {
        let (memory_mb, _) = memory_mb();
        let (disk_mb, _) = disk_mb(data_dir);
        Self {
            address: address.to_owned(),
            arch: std::env::consts::ARCH.to_owned(),
            cpu_count: std::thread::available_parallelism()
                .map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX)),
            memory_mb,
            disk_mb,
            runtime: runtime.to_owned(),
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            sandbox_capacity: capacity,
            templates: template_names(data_dir),
        }
    }
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .build()
        .expect("a reqwest client with a timeout always builds")
}

async fn post_json(
    http: &reqwest::Client,
    what: &'static str,
    url: String,
    bearer: Option<&str>,
    body: &serde_json::Value,
) -> Result<reqwest::Response, ControlPlaneError> {
    let mut req = http.post(url).json(body);
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    let resp = req
        .send()
        .await
        .map_err(|source| ControlPlaneError::Http { what, source })?;
    let status = resp.status();
    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
        return Err(ControlPlaneError::Refused {
            what,
            status: status.as_u16(),
        });
    }
    if !status.is_success() {
        let body: String = resp
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(500)
            .collect();
        return Err(ControlPlaneError::Status {
            what,
            status: status.as_u16(),
            body,
        });
    }
    Ok(resp)
}

async fn issued(
    resp: reqwest::Response,
    what: &'static str,
    url: &str,
) -> Result<Credentials, ControlPlaneError> {
    let issued: Issued = resp
        .json()
        .await
        .map_err(|source| ControlPlaneError::Http { what, source })?;
    Ok(issued.into_credentials(url))
}

/// Registers with the control plane using a one-time token.
pub async fn register(
    control_plane_url: &str,
    token: &str,
    specs: &HostSpecs,
) -> Result<Credentials, ControlPlaneError> {
    let url = control_plane_url.trim_end_matches('/');
    let mut body = serde_json::to_value(specs).expect("specs always serialize");
    body["token"] = serde_json::Value::String(token.to_owned());
    let resp = post_json(
        &http_client(),
        "register",
        format!("{url}/v1/hosts/register"),
        None,
        &body,
    )
    .await?;
    issued(resp, "register", url).await
}

/// Trades the refresh token for a new pair.
pub async fn refresh(
    http: &reqwest::Client,
    creds: &Credentials,
) -> Result<Credentials, ControlPlaneError> {
    let url = &creds.control_plane_url;
    let body = serde_json::json!({"refresh_token": creds.refresh_token});
    let resp = post_json(
        http,
        "refresh",
        format!("{url}/v1/hosts/auth/refresh"),
        None,
        &body,
    )
    .await?;
    issued(resp, "refresh", url).await
}

/// Settings of the heartbeat loop.
#[derive(Debug, Clone)]
pub struct HeartbeatConfig {
    /// Data dir (credentials, templates, disk).
    pub data_dir: PathBuf,
    /// How often.
    pub interval: Duration,
    /// Most sandboxes, as reported.
    pub sandbox_capacity: u32,
}

/// The heartbeat body: load, templates, and every sandbox held running or paused.
pub fn heartbeat_body(mgr: &SandboxManager, config: &HeartbeatConfig) -> serde_json::Value {
    let list = mgr.list();
    let sandboxes: Vec<serde_json::Value> = list
        .iter()
        .filter_map(|i| {
            let status = match i.status {
                SandboxStatus::Running => "running",
                SandboxStatus::Paused => "paused",
                SandboxStatus::Transition(_) => return None,
            };
            Some(serde_json::json!({"sandbox_id": i.record.sandbox_id, "status": status}))
        })
        .collect();
    let (_, free_memory_mb) = memory_mb();
    let (_, free_disk_mb) = disk_mb(&config.data_dir);
    serde_json::json!({
        "live_sandboxes": list.len(),
        "free_memory_mb": free_memory_mb,
        "free_disk_mb": free_disk_mb,
        "sandbox_capacity": config.sandbox_capacity,
        "templates": template_names(&config.data_dir),
        "sandboxes": sandboxes,
    })
}

/// Runs the heartbeat loop until `shutdown` fires (the first beat goes out at once).
pub fn spawn_heartbeat(
    mgr: SandboxManager,
    creds: Credentials,
    config: HeartbeatConfig,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let http = http_client();
        let mut creds = creds;
        let mut tick = tokio::time::interval(config.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            beat_once(&http, &mgr, &mut creds, &config).await;
        }
    })
}

/// One heartbeat, with refresh-and-retry on 401/403 and PauseAll when refresh is refused.
pub async fn beat_once(
    http: &reqwest::Client,
    mgr: &SandboxManager,
    creds: &mut Credentials,
    config: &HeartbeatConfig,
) {
    let send = |creds: &Credentials| {
        let body = heartbeat_body(mgr, config);
        let url = format!("{}/v1/hosts/heartbeat", creds.control_plane_url);
        let token = creds.host_token.clone();
        async move { post_json(http, "heartbeat", url, Some(&token), &body).await }
    };
    match send(creds).await {
        Ok(_) => return,
        Err(ControlPlaneError::Refused { .. }) => {}
        Err(e) => {
            tracing::warn!(error = %e, "heartbeat failed; retrying next interval");
            return;
        }
    }
    match refresh(http, creds).await {
        Ok(new) => {
            if let Err(e) = new.save(&config.data_dir) {
                tracing::error!(error = %e, "saving refreshed credentials");
            }
            *creds = new;
            tracing::info!(host_id = %creds.host_id, "host credentials refreshed");
            if let Err(e) = send(creds).await {
                tracing::warn!(error = %e, "heartbeat after refresh failed");
            }
        }
        Err(ControlPlaneError::Refused { .. }) => {
            let (paused, failed) = mgr.pause_all().await;
            tracing::error!(
                host_id = %creds.host_id,
                paused = paused.len(),
                failed = failed.len(),
                "control plane refuses this host's credentials: every sandbox paused; \
                 register again with a fresh token (warren agent --register)"
            );
        }
        Err(e) => tracing::warn!(error = %e, "refresh failed; retrying next interval"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_round_trip_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        assert!(Credentials::load(dir.path()).unwrap().is_none());
        let c = Credentials {
            host_id: "h".into(),
            control_plane_url: "http://cp".into(),
            host_token: "t".into(),
            host_token_expires_at: "2030-01-01T00:00:00Z".into(),
            refresh_token: "r".into(),
            refresh_token_expires_at: "2030-01-01T00:00:00Z".into(),
            control_plane_key: "k".into(),
        };
        c.save(dir.path()).unwrap();
        c.save(dir.path()).unwrap();
        let mode = std::fs::metadata(Credentials::path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let back = Credentials::load(dir.path()).unwrap().unwrap();
        assert_eq!(back.host_id, "h");
        assert_eq!(back.refresh_token, "r");
        assert!(!format!("{back:?}").contains("\"r\""), "debug hides tokens");
        std::fs::write(Credentials::path(dir.path()), b"{").unwrap();
        assert!(Credentials::load(dir.path()).is_err());
    }

    #[test]
    fn host_measures_are_plausible() {
        let (total, avail) = memory_mb();
        assert!(total > 0 && avail <= total);
        let (disk, free) = disk_mb(Path::new("/"));
        assert!(disk > 0 && free <= disk);
    }
}
