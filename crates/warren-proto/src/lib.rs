//! warren-proto: the only wire types in Warren.
//!
//! Every `.proto` file under `crates/warren-proto/proto/` is compiled by `build.rs`
//! (`connectrpc-build`: buffa message types with the binary and JSON codecs, Connect service
//! traits for servers and typed clients). Nothing else in the workspace defines wire types.
//!
//! # Layout
//!
//! - One module per proto package, at the crate root, named after the package: package
//!   `process` is [`process`], `filesystem` is [`filesystem`], and a file declaring
//!   `package hostagent.v1;` becomes `warren_proto::hostagent::v1` with no change to this
//!   crate: drop the file under `proto/` (e.g. `proto/hostagent/v1/hostagent.proto`) and
//!   rebuild. Each package module holds the messages, `<Service>` server traits with their
//!   `<Service>Ext::register` helpers, and `<Service>Client` clients.
//! - [`envd`]: the E2B-compatible envd protocol (`process.Process`, `filesystem.Filesystem`),
//!   re-exported under one name, and [`envd::client::EnvdClient`], a typed client for a
//!   running envd (processes, files over `/files`, health) used by the host agent.
//! - [`forward`]: one proxied HTTP request over a fresh connection (streaming, upgrades
//!   spliced), the hop both the control plane's and the agent's proxies make.
//!
//! The envd `.proto` files are ours, written to match on the wire what the public `e2b`
//! Python SDK speaks (package, message and field numbers); they live in `proto/envd/`.

#![warn(missing_docs)]

#[allow(missing_docs, clippy::all, clippy::pedantic, unused_qualifications)]
mod generated {
    connectrpc::include_generated!();
}

pub use generated::*;

/// Re-exports used by generated code and by users of it, so dependants need not pin them.
pub use buffa;
pub use buffa_types;
pub use connectrpc;

pub mod envd;
pub mod forward;
