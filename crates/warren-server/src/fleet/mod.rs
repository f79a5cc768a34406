//! The fleet: how the control plane reaches and watches its host agents.
//!
//! - [`agent_auth`]: the Ed25519 key the control plane signs agent RPC tokens with.

pub mod agent_auth;
