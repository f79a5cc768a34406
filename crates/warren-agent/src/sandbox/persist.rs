//! `$DATA/sandboxes/<id>/state.json`: what the agent knows about one sandbox, on disk, so a
//! restarted agent (even after SIGKILL) finds its running sandboxes again (they belong to
//! runsc, not to the agent process) and keeps paused ones resumable.
//!
//! The intended status is written *before* acting (e.g. `pausing` before the checkpoint) and
//! the outcome after, so start-up recovery knows what was in flight. Writes are atomic and
//! fsynced ([`crate::storage::write_file_atomic`]). Any change of the format needs a bump of
//! [`STATE_VERSION`]; files of an unknown version are refused, never guessed at.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::storage::{StorageError, write_file_atomic};

/// Version of the state file format written by this agent.
pub const STATE_VERSION: u32 = 1;

/// The file name under the sandbox dir.
pub const STATE_FILE: &str = "state.json";

/// Lifecycle status as persisted. The `-ing` states mark an operation in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PersistedStatus {
    /// Being created (rootfs, network, boot, envd).
    Creating,
    /// Running.
    Running,
    /// Being checkpointed.
    Pausing,
    /// Checkpointed to disk; runtime and network released.
    Paused,
    /// Being restored from its checkpoint.
    Resuming,
    /// Being destroyed.
    Destroying,
}

/// One sandbox's persisted state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersistedSandbox {
    /// Always [`STATE_VERSION`] when written by this agent.
    pub version: u32,
    /// The sandbox id.
    pub sandbox_id: String,
    /// Template the rootfs lies on (an image template, or the snapshot it was forked from).
    pub template: String,
    /// vCPUs.
    pub vcpus: u32,
    /// Memory limit, MiB.
    pub memory_mib: u32,
    /// Inactivity timeout, seconds (0: none).
    pub timeout_sec: u32,
    /// Environment of envd (and so of every process it starts).
    pub env: BTreeMap<String, String>,
    /// Caller's metadata, returned as is.
    pub metadata: BTreeMap<String, String>,
    /// Egress beyond the host allowed.
    pub allow_internet: bool,
    /// Status.
    pub status: PersistedStatus,
    /// Seconds since the epoch.
    pub created_at_unix: i64,
    /// Last exec/ping, seconds since the epoch.
    pub last_active_at_unix: i64,
    /// When the TTL reaper acts (0: never).
    pub expires_at_unix: i64,
    /// The sandbox's address while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox_ip: Option<String>,
    /// envd's access token (`X-Access-Token`), if the sandbox has one. Added without a
    /// version bump: older files simply have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envd_access_token: Option<AccessToken>,
    /// At expiry, pause (keep memory and disk) whatever the agent's TTL action.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub auto_pause: bool,
}

/// envd's access token: stored as the plain string, never shown by `Debug` (logs).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AccessToken(pub String);

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

/// Errors of reading or writing state files.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// Reading failed.
    #[error("read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid state JSON.
    #[error("{path}: malformed sandbox state: {source}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The file has a version this agent does not understand.
    #[error("{path}: unsupported sandbox state version {version}")]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// Its version.
        version: u32,
    },
    /// Writing failed.
    #[error(transparent)]
    Write(#[from] StorageError),
}

/// The state file of the sandbox whose dir is `sandbox_dir`.
pub fn state_path(sandbox_dir: &Path) -> PathBuf {
    sandbox_dir.join(STATE_FILE)
}

/// Writes `state` atomically and durably into `sandbox_dir`.
pub fn save(sandbox_dir: &Path, state: &PersistedSandbox) -> Result<(), PersistError> {
    let bytes = serde_json::to_vec_pretty(state).expect("sandbox state always serialises");
    write_file_atomic(&state_path(sandbox_dir), &bytes)?;
    Ok(())
}

/// Reads the state file in `sandbox_dir` (`None` if there is none).
pub fn load(sandbox_dir: &Path) -> Result<Option<PersistedSandbox>, PersistError> {
    let path = state_path(sandbox_dir);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(PersistError::Read { path, source }),
    };
    parse(&path, &bytes).map(Some)
}

fn parse(path: &Path, bytes: &[u8]) -> Result<PersistedSandbox, PersistError> {
    #[derive(Deserialize)]
    struct Versioned {
        version: u32,
    }
    let v: Versioned = serde_json::from_slice(bytes).map_err(|source| PersistError::Malformed {
        path: path.to_path_buf(),
        source,
    })?;
    if v.version != STATE_VERSION {
        return Err(PersistError::UnsupportedVersion {
            path: path.to_path_buf(),
            version: v.version,
        });
    }
    serde_json::from_slice(bytes).map_err(|source| PersistError::Malformed {
        path: path.to_path_buf(),
        source,
    })
}

/// Every sandbox dir under `$DATA/sandboxes` with its parsed state (or the error).
pub fn load_all(data_dir: &Path) -> Vec<(String, Result<Option<PersistedSandbox>, PersistError>)> {
    let root = data_dir.join("sandboxes");
    let Ok(entries) = std::fs::read_dir(&root) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        if !entry.path().is_dir() {
            continue;
        }
        let id = entry.file_name().to_string_lossy().into_owned();
        out.push((id, load(&entry.path())));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PersistedSandbox {
        PersistedSandbox {
            version: STATE_VERSION,
            sandbox_id: "sb1".into(),
            template: "minimal".into(),
            vcpus: 1,
            memory_mib: 256,
            timeout_sec: 60,
            env: BTreeMap::from([("A".into(), "1".into())]),
            metadata: BTreeMap::new(),
            allow_internet: true,
            status: PersistedStatus::Paused,
            created_at_unix: 1,
            last_active_at_unix: 2,
            expires_at_unix: 3,
            sandbox_ip: None,
            envd_access_token: Some(AccessToken("secret".into())),
            auto_pause: true,
        }
    }

    #[test]
    fn token_is_not_in_debug_output() {
        assert!(!format!("{:?}", sample()).contains("secret"));
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), &sample()).unwrap();
        assert_eq!(load(dir.path()).unwrap(), Some(sample()));
        assert_eq!(load(&dir.path().join("none")).unwrap(), None);
    }

    #[test]
    fn refuses_unknown_version_and_garbage() {
        let p = Path::new("/x/state.json");
        let mut v = serde_json::to_value(sample()).unwrap();
        v["version"] = 99.into();
        let err = parse(p, &serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(matches!(
            err,
            PersistError::UnsupportedVersion { version: 99, .. }
        ));
        assert!(matches!(
            parse(p, b"{").unwrap_err(),
            PersistError::Malformed { .. }
        ));
    }
}
