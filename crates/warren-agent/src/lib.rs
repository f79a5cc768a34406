//! warren-agent: the host agent library (sandbox lifecycle on one host).
//!
//! Layout (host resources; the runtime, `SandboxManager` and RPC are wired here by their issue):
//! - [`command`]: the one helper every external command (`mkfs.ext4`, `ip`, `nft`, `runsc`) runs
//!   through: argv logged at debug, a timeout, exit code and stderr in the error.
//! - [`storage`]: template images on disk, their refcounted read-only loop mounts, each
//!   sandbox's overlayfs copy-on-write rootfs, flatten and disk usage.
//! - [`net`]: per-sandbox network namespaces, veth pairs, persisted address allocation, NAT.
//! - [`template`]: building the `minimal` and `base` template images.
//! - [`controlplane`]: registration with the control plane, stored credentials, heartbeats.
//! - [`rpc`]: the `hostagent.v1.HostAgent` service and the auth layer in front of every route.

pub mod command;
pub mod controlplane;
pub mod net;
pub mod proxy;
pub mod rpc;
pub mod runtime;
pub mod sandbox;
pub mod storage;
pub mod template;
