//! The fleet: how the control plane reaches and watches its host agents.
//!
//! - [`agent_auth`]: the Ed25519 key the control plane signs agent RPC tokens with.
//! - [`pool`]: `HostClientPool`, lazy RPC clients per host (HTTP/1.1, fresh bearer per call).
//! - [`scheduler`]: the `Scheduler` trait and its round-robin default.

pub mod agent_auth;
pub mod pool;
pub mod scheduler;
