//! `warren-types`: the vocabulary every Warren crate shares: typed ids (`SandboxId`, `TeamId`,
//! `UserId`, `HostId`, ...) and the sandbox and host status machines.
//!
//! Why a crate of its own: the control plane, the agent and the CLI must agree on what a status
//! means and which transitions are legal, and that agreement must not depend on HTTP, SQL or
//! RPC. This crate does no I/O and derives no wire format; the edges (REST DTOs, SQL rows,
//! protobuf) convert to and from these types with `as_str` / `FromStr`.
#![deny(missing_docs)]

pub mod id;
pub mod status;

pub use id::{ApiKeyId, HostId, IdParseError, SandboxId, TeamId, TemplateId, UserId};
pub use status::{HostStatus, SandboxStatus, StatusParseError, TransitionError};
