//! The E2B envd protocol: Connect services `process.Process` and `filesystem.Filesystem`
//! plus the plain HTTP endpoints (`/health`, `/files`, `/init`, `/envs`, `/metrics`).

pub use crate::filesystem;
pub use crate::process;

/// The default port envd listens on (the one the E2B SDK dials).
pub const DEFAULT_PORT: u16 = 49983;

pub mod client;
