//! The fleet: how the control plane reaches and watches its host agents.
//!
//! - [`agent_auth`]: the Ed25519 key the control plane signs agent RPC tokens with.
//! - [`pool`]: `HostClientPool`, lazy RPC clients per host (HTTP/1.1, fresh bearer per call).
//! - [`scheduler`]: the `Scheduler` trait and its round-robin default.
//! - [`monitor`]: the host monitor (heartbeat timeouts, reconciliation with each host's list).

pub mod agent_auth;
pub mod monitor;
pub mod pool;
pub mod scheduler;
