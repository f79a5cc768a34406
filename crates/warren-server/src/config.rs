//! The control plane's typed configuration, built by the `warren` binary from flags and
//! environment (or by tests), then passed down. Secrets are wrapped in [`Secret`] so that a
//! `{:?}` of the config never prints them.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// A string that must not appear in logs: `Debug` prints `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The secret itself; call only where it is used.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Where the control plane keeps its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseConfig {
    /// An SQLite file (created if missing), opened in WAL mode.
    Sqlite {
        /// Path of the database file.
        path: PathBuf,
    },
    /// A PostgreSQL server.
    Postgres {
        /// `postgres://` URL (may hold a password, hence [`Secret`]).
        url: Secret,
    },
}

impl DatabaseConfig {
    /// `postgres://` or `postgresql://` URLs select PostgreSQL; anything else (or none) is
    /// the SQLite file `warren.db` in `data_dir`.
    pub fn from_url(url: Option<&str>, data_dir: &std::path::Path) -> Self {
        match url {
            Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
                DatabaseConfig::Postgres {
                    url: Secret::new(u),
                }
            }
            Some(u) if !u.trim().is_empty() => {
                let path = u
                    .strip_prefix("sqlite://")
                    .or_else(|| u.strip_prefix("sqlite:"))
                    .unwrap_or(u);
                DatabaseConfig::Sqlite {
                    path: PathBuf::from(path),
                }
            }
            _ => DatabaseConfig::Sqlite {
                path: data_dir.join("warren.db"),
            },
        }
    }
}

/// Argon2id cost parameters. [`PasswordParams::default`] is the OWASP recommendation
/// (19 MiB, 2 passes); tests lower it so hashing takes microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordParams {
    /// Memory cost in KiB.
    pub memory_kib: u32,
    /// Number of passes.
    pub iterations: u32,
    /// Degree of parallelism.
    pub parallelism: u32,
}

impl Default for PasswordParams {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl PasswordParams {
    /// Cheap parameters for tests only: never use in production.
    pub fn insecure_fast_for_tests() -> Self {
        Self {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        }
    }
}

/// Everything `warren server` needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Directory for the SQLite file and the generated JWT secret.
    pub data_dir: PathBuf,
    /// The store.
    pub database: DatabaseConfig,
    /// HS256 signing secret for user JWTs; `None` = generated once into
    /// `data_dir/jwt-secret` (mode 0600) and reused on restart.
    pub jwt_secret: Option<Secret>,
    /// Lifetime of a user JWT.
    pub jwt_ttl: Duration,
    /// Argon2id parameters for new password hashes.
    pub password: PasswordParams,
    /// Largest accepted request body.
    pub body_limit_bytes: usize,
    /// Most database connections held at once.
    pub max_db_connections: u32,
    /// Platform admin (email, password) created or updated at start
    /// (`WARREN_ADMIN_EMAIL` / `WARREN_ADMIN_PASSWORD`).
    pub admin: Option<(String, Secret)>,
    /// Lifetime of a host registration token (1 h).
    pub registration_token_ttl: Duration,
    /// Lifetime of a host JWT (7 days; `WARREN_HOST_TOKEN_TTL_MS`).
    pub host_token_ttl: Duration,
    /// Lifetime of a host refresh token (60 days).
    pub refresh_token_ttl: Duration,
    /// A host silent this long is `unreachable` (90 s; `WARREN_HEARTBEAT_TIMEOUT_MS`).
    pub heartbeat_timeout: Duration,
    /// How often the host monitor runs a pass (30 s; `WARREN_MONITOR_INTERVAL_MS`).
    pub monitor_interval: Duration,
    /// The monitor leaves alone a sandbox whose row changed this recently, so a pause or
    /// resume in flight (status written before the host acts) is not "corrected" under it
    /// (60 s; `WARREN_RECONCILE_GRACE_MS`).
    pub reconcile_grace: Duration,
    /// Wildcard domain of the sandbox proxy's host form (`PORT-SANDBOXID.<domain>` resolves to
    /// this control plane), told to E2B SDKs as the sandbox `domain` so their `get_host(port)`
    /// names a working URL (none; `WARREN_PROXY_DOMAIN`).
    pub proxy_domain: Option<String>,
}

impl Config {
    /// Production defaults for the given data dir and store.
    pub fn new(data_dir: PathBuf, database: DatabaseConfig) -> Self {
        Self {
            data_dir,
            database,
            jwt_secret: None,
            jwt_ttl: Duration::from_secs(24 * 3600),
            password: PasswordParams::default(),
            body_limit_bytes: 1024 * 1024,
            max_db_connections: 10,
            admin: None,
            registration_token_ttl: Duration::from_secs(3600),
            host_token_ttl: Duration::from_secs(7 * 24 * 3600),
            refresh_token_ttl: Duration::from_secs(60 * 24 * 3600),
            heartbeat_timeout: Duration::from_secs(90),
            monitor_interval: Duration::from_secs(30),
            reconcile_grace: Duration::from_secs(60),
            proxy_domain: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_selects_store() {
        let dir = std::path::Path::new("/data");
        let check = |url: Option<&str>, want: DatabaseConfig| {
            assert_eq!(DatabaseConfig::from_url(url, dir), want, "{url:?}");
        };
        check(
            None,
            DatabaseConfig::Sqlite {
                path: "/data/warren.db".into(),
            },
        );
        check(
            Some(""),
            DatabaseConfig::Sqlite {
                path: "/data/warren.db".into(),
            },
        );
        check(
            Some("postgres://u:p@h/db"),
            DatabaseConfig::Postgres {
                url: Secret::new("postgres://u:p@h/db"),
            },
        );
        check(
            Some("postgresql://h/db"),
            DatabaseConfig::Postgres {
                url: Secret::new("postgresql://h/db"),
            },
        );
        check(
            Some("sqlite:///x/y.db"),
            DatabaseConfig::Sqlite {
                path: "/x/y.db".into(),
            },
        );
    }

    #[test]
    fn secrets_are_redacted() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "[redacted]");
    }
}
