//! Per-sandbox networking on one host: a named network namespace, a veth pair to the root
//! namespace, an address block from a persisted allocator, egress NAT, and isolation.
//!
//! Why this shape (DESIGN §3 "Network"): one netns per sandbox is what both runtimes need
//! (runsc's netstack takes over the veth inside it; Firecracker will add a tap), a /30 per
//! sandbox keeps routing trivial, and the allocation file is written *before* any kernel object
//! is made, so start-up cleanup after a crash finds everything by name.
//!
//! For sandbox `<id>` with slot `i` of the pool (default `10.77.0.0/16`):
//! - netns `warren-<id>` (`/run/netns/warren-<id>`, the `ip netns` location);
//! - host-side veth `wv<8 hex digits of the host IP>` with `pool + 4i + 1/30` in the root ns;
//! - its peer, named `eth0`, inside the netns with `pool + 4i + 2/30`, up, default route via
//!   the host IP; `lo` up;
//! - nftables table `ip warren`: masquerade of the pool out of every non-sandbox interface
//!   (the default-route uplink and any other: hosts with several uplinks work too), a drop of
//!   anything forwarded from one sandbox veth to another, and a set `no_internet` of sandbox
//!   IPs whose forwarded traffic is dropped (`allow_internet: false`), and an input chain that
//!   drops new connections from sandbox veths to the host itself (the agent's RPC port, an
//!   all-in-one control plane, anything bound to 0.0.0.0): the host may connect into a
//!   sandbox (envd), a sandbox may not connect to the host.
//!
//! The prefix (`warren`) is configurable ([`NetConfig::prefix`]) so parallel tests get their own
//! netns names and nft table; veth names derive from the (per-test, distinct) pool addresses.
//!
//! # gVisor findings (runsc 0.0~20221219.0, checked on this host's 6.18 kernel)
//! - `runsc --network=sandbox` (the default) with the OCI spec's network namespace `path` set to
//!   [`SandboxNetwork::netns_path`] works: runsc reads `eth0`'s address and routes from the netns
//!   and its netstack serves them; the sandbox reaches the host IP, NAT egress and nothing else.
//! - runsc decides "this is the root netns, refuse" by testing whether
//!   `/proc/sys/net/core/rmem_default` exists; kernels since 6.x expose that file in every
//!   netns, so stock runsc 2022-12-19 refuses with "cannot run with network enabled in root
//!   network namespace". Workaround: run `runsc run`/`runsc restore` in a private mount
//!   namespace with an empty tmpfs over `/proc/sys/net`: [`gvisor::hide_proc_sys_net`], a
//!   `pre_exec` hook. `--network=host` also works (no check) but exposes the host kernel's
//!   network stack to the sandbox, so we do not use it.
//! - runsc **strips** the addresses and routes from `eth0` in the netns when its netstack
//!   takes the device over. Before every `runsc run` and `runsc restore`, call
//!   [`NetworkManager::prepare_for_runsc`] (idempotent) to put them back.
//! - Default platform is `ptrace` on this version (no systrap yet); it works here.
//! - `ping` inside needs CAP_NET_RAW in the OCI spec; use TCP (`wget`, `nc`) in tests.
//!   busybox's `wget -T <secs>` segfaults under gVisor ptrace; `timeout 4 wget ...` works.
//! - runsc puts its own tmpfs on `/tmp` (sandbox memory): files there are not in the
//!   overlay upper, so they survive checkpoint/restore but not flatten.
//! - A runsc `gofer` pins the mounts it serves (its rootfs overlay and, through it, the
//!   template mount and loop device) until the sandbox is deleted: destroy the runsc sandbox
//!   before unmounting its rootfs (else the loop device frees only when the gofer exits).
//! - Checked end to end (tests/net.rs): an `allow_internet` sandbox reaches a server in
//!   another netns that has no route back to the pool (so masquerade is proven), a denied one
//!   does not (until allowed again), neither reaches a server on the host, and one sandbox
//!   cannot reach another's listening port while the host can.

mod allocator;
pub mod gvisor;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

pub use allocator::{Allocation, Allocator, Ipv4Pool};

use crate::command::{Cmd, CommandError};
use crate::storage::{StorageError, validate_name};

/// Default address pool.
pub const DEFAULT_POOL: &str = "10.77.0.0/16";
/// Default prefix of netns names and of the nft table.
pub const DEFAULT_PREFIX: &str = "warren";
/// Name of the interface inside each sandbox's netns.
pub const GUEST_IFACE: &str = "eth0";
/// Prefix of every host-side sandbox veth (shared by all managers; the rest of the name is the
/// host IP in hex, unique on the host).
pub const VETH_PREFIX: &str = "wv";
const NETNS_DIR: &str = "/run/netns";
const CMD_TIMEOUT: Duration = Duration::from_secs(15);

/// Errors of the network module; variants name the sandbox, path or command.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The configured pool is not a usable IPv4 network.
    #[error("invalid address pool {pool:?}: {reason}")]
    InvalidPool {
        /// The input.
        pool: String,
        /// Why.
        reason: &'static str,
    },
    /// Every /30 of the pool is taken.
    #[error("address pool {0} exhausted")]
    PoolExhausted(String),
    /// The state file was written for a different pool.
    #[error("{path}: allocations are for pool {on_disk}, configured pool is {configured}")]
    PoolChanged {
        /// The state file.
        path: PathBuf,
        /// Its pool.
        on_disk: String,
        /// The configured pool.
        configured: String,
    },
    /// The state file has an unknown version.
    #[error("{path}: unsupported allocations version {version}")]
    UnsupportedVersion {
        /// The state file.
        path: PathBuf,
        /// The version found.
        version: u32,
    },
    /// The state file does not parse.
    #[error("{path}: malformed allocations: {source}")]
    State {
        /// The state file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The state file has a duplicate or out-of-pool slot.
    #[error("{path}: slot {slot} duplicated or outside the pool")]
    CorruptState {
        /// The state file.
        path: PathBuf,
        /// The bad slot.
        slot: u32,
    },
    /// The sandbox has no network.
    #[error("sandbox {0} has no network")]
    NotFound(String),
    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// The operation.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A sandbox id was invalid, or persisting state failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// `ip` or `nft` failed.
    #[error("network setup of sandbox {sandbox_id}: {source}")]
    Command {
        /// The sandbox (empty for host-wide steps).
        sandbox_id: String,
        /// The failing command.
        #[source]
        source: CommandError,
    },
}

/// Host-wide network configuration.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// The pool sandbox /30s come from.
    pub pool: Ipv4Pool,
    /// Prefix of netns names (`<prefix>-<id>`) and the nft table name.
    pub prefix: String,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            pool: Ipv4Pool::parse(DEFAULT_POOL).expect("the default pool is valid"),
            prefix: DEFAULT_PREFIX.to_string(),
        }
    }
}

/// Per-sandbox network choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetOptions {
    /// Forwarded (NATed) traffic beyond the host allowed.
    pub allow_internet: bool,
}

impl Default for NetOptions {
    fn default() -> Self {
        NetOptions {
            allow_internet: true,
        }
    }
}

/// A sandbox's network, as set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxNetwork {
    /// The sandbox.
    pub sandbox_id: String,
    /// `<prefix>-<id>`.
    pub netns_name: String,
    /// `/run/netns/<prefix>-<id>`: the OCI spec's network namespace path.
    pub netns_path: PathBuf,
    /// Host side of the veth (the sandbox's gateway): how the agent reaches the sandbox's
    /// network, and the address a sandbox reaches the host on.
    pub host_ip: Ipv4Addr,
    /// The sandbox's address (envd listens here).
    pub sandbox_ip: Ipv4Addr,
    /// Prefix length of both addresses (30).
    pub prefix_len: u8,
    /// Host-side veth name (root netns).
    pub host_veth: String,
    /// Interface name inside the netns (`eth0`).
    pub guest_veth: String,
    /// Whether egress beyond the host is allowed.
    pub allow_internet: bool,
}

/// Owner of all sandbox networks of one host. Blocking API (runs `ip`/`nft`): async callers
/// use `spawn_blocking`. Different sandboxes may be set up concurrently; the caller serialises
/// operations on one sandbox.
#[derive(Debug)]
pub struct NetworkManager {
    config: NetConfig,
    alloc: Mutex<Allocator>,
}

impl NetworkManager {
    /// Loads the allocations from `$DATA/network/allocations.json`, enables IPv4 forwarding and
    /// (re)builds the nft table from them. Kernel objects are not touched: call
    /// [`NetworkManager::cleanup_leftovers`] once the live sandboxes are known.
    pub fn new(data_dir: &Path, config: NetConfig) -> Result<NetworkManager, NetError> {
        validate_name("network prefix", &config.prefix)?;
        let path = data_dir.join("network").join("allocations.json");
        let alloc = Allocator::load(&path, config.pool)?;
        let mgr = NetworkManager {
            config,
            alloc: Mutex::new(alloc),
        };
        enable_ip_forward()?;
        mgr.rebuild_nft()?;
        Ok(mgr)
    }

    /// The configuration.
    pub fn config(&self) -> &NetConfig {
        &self.config
    }

    /// The nft table name (`ip <prefix>`).
    pub fn nft_table(&self) -> &str {
        &self.config.prefix
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Allocator> {
        // The allocator's map is only changed after the file write succeeded, so a poisoned
        // lock still guards consistent data.
        self.alloc.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The netns name of `sandbox_id`.
    pub fn netns_name(&self, sandbox_id: &str) -> String {
        format!("{}-{}", self.config.prefix, sandbox_id)
    }

    fn describe(&self, sandbox_id: &str, a: Allocation) -> SandboxNetwork {
        let (host_ip, sandbox_ip) = self.config.pool.addresses(a.slot);
        let netns_name = self.netns_name(sandbox_id);
        SandboxNetwork {
            sandbox_id: sandbox_id.to_string(),
            netns_path: Path::new(NETNS_DIR).join(&netns_name),
            netns_name,
            host_ip,
            sandbox_ip,
            prefix_len: 30,
            host_veth: veth_name(host_ip),
            guest_veth: GUEST_IFACE.to_string(),
            allow_internet: a.allow_internet,
        }
    }

    /// The network of `sandbox_id` if it has an allocation (set up, or left by a crash).
    pub fn get(&self, sandbox_id: &str) -> Option<SandboxNetwork> {
        let a = self.lock().get(sandbox_id)?;
        Some(self.describe(sandbox_id, a))
    }

    /// Every allocated sandbox network.
    pub fn list(&self) -> Vec<SandboxNetwork> {
        let alloc = self.lock();
        alloc.all().map(|(id, a)| self.describe(id, a)).collect()
    }

    /// Creates (or completes, idempotently) the network of `sandbox_id`. On failure everything
    /// made for it is removed again.
    #[tracing::instrument(skip(self), fields(sandbox_id))]
    pub fn setup(&self, sandbox_id: &str, opts: NetOptions) -> Result<SandboxNetwork, NetError> {
        validate_name("sandbox id", sandbox_id)?;
        let a = self.lock().allocate(sandbox_id, opts.allow_internet)?;
        let net = self.describe(sandbox_id, a);
        match self.create_objects(&net) {
            Ok(()) => {
                tracing::debug!(host_ip = %net.host_ip, sandbox_ip = %net.sandbox_ip, "sandbox network ready");
                Ok(net)
            }
            Err(e) => {
                if let Err(e2) = self.teardown(sandbox_id) {
                    tracing::warn!(error = %e2, "rollback of a failed network setup failed");
                }
                Err(e)
            }
        }
    }

    fn create_objects(&self, net: &SandboxNetwork) -> Result<(), NetError> {
        let id = &net.sandbox_id;
        if !net.netns_path.exists() {
            ip(id, ["netns", "add", &net.netns_name])?;
        }
        if !link_exists(&net.host_veth) {
            ip(
                id,
                [
                    "link",
                    "add",
                    &net.host_veth,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    GUEST_IFACE,
                    "netns",
                    &net.netns_name,
                ],
            )?;
        }
        let host_batch = format!(
            "addr replace {}/{} dev {}\nlink set {} up\n",
            net.host_ip, net.prefix_len, net.host_veth, net.host_veth
        );
        run(id, Cmd::new("ip").args(["-b", "-"]).stdin(host_batch))?;
        self.prepare_for_runsc(net)?;
        self.nft_set_internet(id, net.sandbox_ip, net.allow_internet)?;
        Ok(())
    }

    /// (Re)applies the sandbox side's address, link state and default route inside the netns.
    /// runsc's netstack strips them from `eth0` when it takes the device over, so call this
    /// before every `runsc run` and `runsc restore`. Idempotent.
    pub fn prepare_for_runsc(&self, net: &SandboxNetwork) -> Result<(), NetError> {
        let batch = format!(
            "addr replace {sip}/{len} dev {g}\nlink set {g} up\nlink set lo up\nroute replace default via {hip} dev {g}\n",
            sip = net.sandbox_ip,
            len = net.prefix_len,
            g = GUEST_IFACE,
            hip = net.host_ip,
        );
        run(
            &net.sandbox_id,
            Cmd::new("ip")
                .args(["-n", &net.netns_name, "-b", "-"])
                .stdin(batch),
        )
    }

    /// Removes the network of `sandbox_id`: veth pair, netns, nft element, allocation.
    /// Idempotent; a sandbox without an allocation only has its netns (if any) removed.
    #[tracing::instrument(skip(self), fields(sandbox_id))]
    pub fn teardown(&self, sandbox_id: &str) -> Result<(), NetError> {
        validate_name("sandbox id", sandbox_id)?;
        let alloc = self.lock().get(sandbox_id);
        if let Some(a) = alloc {
            let net = self.describe(sandbox_id, a);
            if link_exists(&net.host_veth) {
                ip(sandbox_id, ["link", "del", &net.host_veth])?;
            }
            self.nft_set_internet(sandbox_id, net.sandbox_ip, true)?;
        }
        let netns = self.netns_name(sandbox_id);
        if Path::new(NETNS_DIR).join(&netns).exists() {
            ip(sandbox_id, ["netns", "del", &netns])?;
        }
        self.lock().release(sandbox_id)?;
        Ok(())
    }

    /// At agent start: removes the networks of sandboxes not in `live` (allocations, their
    /// veths and netns, nft elements), plus netns named `<prefix>-*` and veths with an address
    /// of this pool that no live sandbox owns. Live sandboxes are not touched. Returns the
    /// sandbox ids whose leftovers were removed.
    pub fn cleanup_leftovers(&self, live: &[&str]) -> Result<Vec<String>, NetError> {
        let mut removed = Vec::new();
        let stale: Vec<String> = {
            let alloc = self.lock();
            alloc
                .all()
                .filter(|(id, _)| !live.contains(id))
                .map(|(id, _)| id.to_string())
                .collect()
        };
        for id in stale {
            self.teardown(&id)?;
            removed.push(id);
        }
        // Netns without an allocation (crash between netns creation and... nothing: the
        // allocation comes first; these come from a lost allocations file).
        let prefix = format!("{}-", self.config.prefix);
        if let Ok(entries) = std::fs::read_dir(NETNS_DIR) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let Some(id) = name.strip_prefix(&prefix) else {
                    continue;
                };
                if live.contains(&id) || validate_name("sandbox id", id).is_err() {
                    continue;
                }
                // Another agent or a concurrent teardown may remove it first: gone is fine.
                if let Err(e) = ip(id, ["netns", "del", &name])
                    && Path::new(NETNS_DIR).join(&name).exists()
                {
                    return Err(e);
                }
                if !removed.iter().any(|r| r == id) {
                    removed.push(id.to_string());
                }
            }
        }
        let live_veths: Vec<String> = {
            let alloc = self.lock();
            alloc
                .all()
                .map(|(id, a)| self.describe(id, a).host_veth)
                .collect()
        };
        for name in list_links()? {
            let Some(ip_addr) = veth_ip(&name) else {
                continue;
            };
            if self.config.pool.contains(ip_addr)
                && !live_veths.contains(&name)
                && let Err(e) = ip("", ["link", "del", &name])
                // Deleting a netns takes its veth peer with it, so the link may be gone
                // already: only a link that is still there is an error.
                && list_links()?.contains(&name)
            {
                return Err(e);
            }
        }
        self.rebuild_nft()?;
        Ok(removed)
    }

    fn nft_set_internet(
        &self,
        sandbox_id: &str,
        sandbox_ip: Ipv4Addr,
        allow: bool,
    ) -> Result<(), NetError> {
        let t = self.nft_table();
        // "add then delete" in one transaction makes removal idempotent without parsing.
        let script = if allow {
            format!(
                "add element ip {t} no_internet {{ {sandbox_ip} }}\ndelete element ip {t} no_internet {{ {sandbox_ip} }}\n"
            )
        } else {
            format!("add element ip {t} no_internet {{ {sandbox_ip} }}\n")
        };
        run(sandbox_id, Cmd::new("nft").args(["-f", "-"]).stdin(script))
    }

    /// Replaces the nft table atomically with one built from the current allocations.
    fn rebuild_nft(&self) -> Result<(), NetError> {
        let denied: Vec<String> = {
            let alloc = self.lock();
            alloc
                .all()
                .filter(|(_, a)| !a.allow_internet)
                .map(|(_, a)| self.config.pool.addresses(a.slot).1.to_string())
                .collect()
        };
        let script = nft_table_script(self.nft_table(), self.config.pool, &denied);
        run("", Cmd::new("nft").args(["-f", "-"]).stdin(script))
    }

    /// Deletes this manager's nft table (tests; an agent keeps it).
    pub fn delete_nft_table(&self) -> Result<(), NetError> {
        let t = self.nft_table();
        run(
            "",
            Cmd::new("nft")
                .args(["-f", "-"])
                .stdin(format!("add table ip {t}\ndelete table ip {t}\n")),
        )
    }
}

/// The nft script that (re)creates table `table` atomically.
fn nft_table_script(table: &str, pool: Ipv4Pool, denied: &[String]) -> String {
    let elements = if denied.is_empty() {
        String::new()
    } else {
        format!(" elements = {{ {} }};", denied.join(", "))
    };
    format!(
        "add table ip {table}
delete table ip {table}
table ip {table} {{
  set no_internet {{ type ipv4_addr;{elements} }}
  chain input {{
    type filter hook input priority filter; policy accept;
    iifname \"{v}*\" ct state established,related accept
    iifname \"{v}*\" drop
  }}
  chain forward {{
    type filter hook forward priority filter; policy accept;
    iifname \"{v}*\" oifname \"{v}*\" drop
    iifname \"{v}*\" ip saddr @no_internet drop
  }}
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr {pool} oifname != \"{v}*\" masquerade
  }}
}}
",
        v = VETH_PREFIX
    )
}

/// `wv` + the host IP in hex: unique per host address, at most 10 of the 15 allowed chars.
pub fn veth_name(host_ip: Ipv4Addr) -> String {
    format!("{VETH_PREFIX}{:08x}", u32::from(host_ip))
}

/// The host IP encoded in a veth name made by [`veth_name`].
fn veth_ip(name: &str) -> Option<Ipv4Addr> {
    let hex = name.strip_prefix(VETH_PREFIX)?;
    if hex.len() != 8 {
        return None;
    }
    u32::from_str_radix(hex, 16).ok().map(Ipv4Addr::from)
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

fn list_links() -> Result<Vec<String>, NetError> {
    let dir = Path::new("/sys/class/net");
    let entries = std::fs::read_dir(dir).map_err(|source| NetError::Io {
        op: "read dir",
        path: dir.to_path_buf(),
        source,
    })?;
    Ok(entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect())
}

fn ip<const N: usize>(sandbox_id: &str, args: [&str; N]) -> Result<(), NetError> {
    run(sandbox_id, Cmd::new("ip").args(args))
}

fn run(sandbox_id: &str, cmd: Cmd) -> Result<(), NetError> {
    cmd.timeout(CMD_TIMEOUT)
        .run()
        .map(|_| ())
        .map_err(|source| NetError::Command {
            sandbox_id: sandbox_id.to_string(),
            source,
        })
}

fn enable_ip_forward() -> Result<(), NetError> {
    let path = Path::new("/proc/sys/net/ipv4/ip_forward");
    if std::fs::read_to_string(path).is_ok_and(|s| s.trim() == "1") {
        return Ok(());
    }
    std::fs::write(path, "1").map_err(|source| NetError::Io {
        op: "write",
        path: path.to_path_buf(),
        source,
    })
}

/// Public fallback resolvers when the host has none usable from a sandbox.
const FALLBACK_NAMESERVERS: [&str; 2] = ["1.1.1.1", "8.8.8.8"];

/// The `/etc/resolv.conf` to write into a sandbox rootfs: the host's upstream nameservers
/// (loopback ones such as systemd-resolved's 127.0.0.53 are unreachable from a sandbox and
/// skipped), else public resolvers. Reached through the sandbox's NAT.
pub fn resolv_conf() -> String {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    resolv_conf_from(&host)
}

/// [`resolv_conf`] for a given host resolv.conf text.
pub fn resolv_conf_from(host_resolv_conf: &str) -> String {
    let mut servers: Vec<String> = host_resolv_conf
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some("nameserver")).then(|| words.next())?
        })
        .filter(|s| match s.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(v4)) => !v4.is_loopback() && !v4.is_unspecified(),
            // The sandbox has no IPv6 route.
            _ => false,
        })
        .map(str::to_string)
        .collect();
    servers.dedup();
    if servers.is_empty() {
        servers = FALLBACK_NAMESERVERS.iter().map(|s| s.to_string()).collect();
    }
    let mut out = String::from("# written by warren\n");
    for s in servers.iter().take(3) {
        out.push_str(&format!("nameserver {s}\n"));
    }
    out.push_str("options timeout:2 attempts:2\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veth_names_round_trip() {
        let ip: Ipv4Addr = "10.77.0.1".parse().unwrap();
        let name = veth_name(ip);
        assert_eq!(name, "wv0a4d0001");
        assert!(name.len() <= 15);
        assert_eq!(veth_ip(&name), Some(ip));
        assert_eq!(veth_ip("wvexp"), None);
        assert_eq!(veth_ip("eth0"), None);
    }

    #[test]
    fn resolv_conf_skips_loopback_and_falls_back() {
        let check = |host: &str, want: &[&str]| {
            let got = resolv_conf_from(host);
            let servers: Vec<&str> = got
                .lines()
                .filter_map(|l| l.strip_prefix("nameserver "))
                .collect();
            assert_eq!(servers, want, "{host:?}");
        };
        check("nameserver 10.255.255.53\n", &["10.255.255.53"]);
        check(
            "nameserver 127.0.0.53\noptions edns0\n",
            &["1.1.1.1", "8.8.8.8"],
        );
        check("", &["1.1.1.1", "8.8.8.8"]);
        check(
            "# c\nnameserver 192.0.2.1\nnameserver ::1\nnameserver fe80::1\nnameserver 192.0.2.2\n",
            &["192.0.2.1", "192.0.2.2"],
        );
    }

    #[test]
    fn nft_script_lists_denied() {
        let pool = Ipv4Pool::parse("10.77.0.0/16").unwrap();
        let s = nft_table_script("warren", pool, &[]);
        assert!(s.contains("set no_internet { type ipv4_addr; }"));
        assert!(s.contains("ip saddr 10.77.0.0/16 oifname != \"wv*\" masquerade"));
        assert!(s.contains("iifname \"wv*\" ct state established,related accept"));
        let s = nft_table_script("t", pool, &["10.77.0.2".into(), "10.77.0.6".into()]);
        assert!(s.contains("elements = { 10.77.0.2, 10.77.0.6 };"));
    }
}
