//! Per-sandbox address blocks from a pool, persisted in `$DATA/network/allocations.json`.
//!
//! Each sandbox gets a /30 (slot `i` = `pool + 4i`): host side `.1`, sandbox side `.2`. The
//! file is the source of truth: written atomically and fsynced before any kernel object is
//! made, so after a crash every veth/netns/nft element the agent may have made is named by an
//! allocation, and start-up cleanup can find it.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::NetError;
use crate::storage::write_file_atomic;

/// Version of `allocations.json`; any change to its shape needs a bump.
pub const ALLOCATIONS_VERSION: u32 = 1;

/// An IPv4 network `addr/prefix` (host bits zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Pool {
    base: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Pool {
    /// Parses `a.b.c.d/n` with `n` in 8..=30 and no host bits set.
    pub fn parse(s: &str) -> Result<Ipv4Pool, NetError> {
        let bad = |reason: &'static str| NetError::InvalidPool {
            pool: s.to_string(),
            reason,
        };
        let (addr, prefix) = s.split_once('/').ok_or_else(|| bad("expected a.b.c.d/n"))?;
        let base: Ipv4Addr = addr.parse().map_err(|_| bad("bad address"))?;
        let prefix: u8 = prefix.parse().map_err(|_| bad("bad prefix length"))?;
        if !(8..=30).contains(&prefix) {
            return Err(bad("prefix length must be between 8 and 30"));
        }
        let mask = u32::MAX << (32 - prefix);
        if u32::from(base) & !mask != 0 {
            return Err(bad("host bits set"));
        }
        Ok(Ipv4Pool { base, prefix })
    }

    /// Number of /30 slots in the pool.
    pub fn slots(&self) -> u32 {
        1u32 << (30 - self.prefix)
    }

    /// The first address.
    pub fn base(&self) -> Ipv4Addr {
        self.base
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// (host side, sandbox side) addresses of slot `slot`.
    pub fn addresses(&self, slot: u32) -> (Ipv4Addr, Ipv4Addr) {
        let b = u32::from(self.base) + slot * 4;
        (Ipv4Addr::from(b + 1), Ipv4Addr::from(b + 2))
    }

    /// True if `ip` is inside the pool.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX << (32 - self.prefix);
        u32::from(ip) & mask == u32::from(self.base)
    }
}

impl std::fmt::Display for Ipv4Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

/// One sandbox's allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    /// Index of the /30 in the pool.
    pub slot: u32,
    /// Whether forwarded traffic to outside the host is allowed.
    pub allow_internet: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct FileV1 {
    version: u32,
    pool: String,
    allocations: BTreeMap<String, Allocation>,
}

/// The allocator: an in-memory map mirrored to its file on every change. Not internally
/// locked: the [`super::NetworkManager`] owns it behind its mutex.
#[derive(Debug)]
pub struct Allocator {
    path: PathBuf,
    pool: Ipv4Pool,
    by_id: BTreeMap<String, Allocation>,
}

impl Allocator {
    /// Loads `path` (or starts empty if it does not exist). Refuses unknown versions, a file
    /// written for another pool, and duplicate or out-of-pool slots.
    pub fn load(path: &Path, pool: Ipv4Pool) -> Result<Allocator, NetError> {
        let by_id = match std::fs::read(path) {
            Ok(bytes) => {
                let file: FileV1 =
                    serde_json::from_slice(&bytes).map_err(|source| NetError::State {
                        path: path.to_path_buf(),
                        source,
                    })?;
                if file.version != ALLOCATIONS_VERSION {
                    return Err(NetError::UnsupportedVersion {
                        path: path.to_path_buf(),
                        version: file.version,
                    });
                }
                if file.pool != pool.to_string() {
                    return Err(NetError::PoolChanged {
                        path: path.to_path_buf(),
                        on_disk: file.pool,
                        configured: pool.to_string(),
                    });
                }
                let mut slots = std::collections::HashSet::new();
                for a in file.allocations.values() {
                    if a.slot >= pool.slots() || !slots.insert(a.slot) {
                        return Err(NetError::CorruptState {
                            path: path.to_path_buf(),
                            slot: a.slot,
                        });
                    }
                }
                file.allocations
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => {
                return Err(NetError::Io {
                    op: "read",
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        Ok(Allocator {
            path: path.to_path_buf(),
            pool,
            by_id,
        })
    }

    /// The pool.
    pub fn pool(&self) -> Ipv4Pool {
        self.pool
    }

    /// The allocation of `sandbox_id`, if any.
    pub fn get(&self, sandbox_id: &str) -> Option<Allocation> {
        self.by_id.get(sandbox_id).copied()
    }

    /// Every allocation, by sandbox id.
    pub fn all(&self) -> impl Iterator<Item = (&str, Allocation)> {
        self.by_id.iter().map(|(k, v)| (k.as_str(), *v))
    }

    /// Allocates the lowest free slot to `sandbox_id` (or returns its existing one, updating
    /// `allow_internet`), and persists.
    pub fn allocate(
        &mut self,
        sandbox_id: &str,
        allow_internet: bool,
    ) -> Result<Allocation, NetError> {
        if let Some(a) = self.by_id.get_mut(sandbox_id) {
            if a.allow_internet != allow_internet {
                a.allow_internet = allow_internet;
                let a = *a;
                self.persist()?;
                return Ok(a);
            }
            return Ok(*a);
        }
        let used: std::collections::HashSet<u32> = self.by_id.values().map(|a| a.slot).collect();
        let slot = (0..self.pool.slots())
            .find(|s| !used.contains(s))
            .ok_or_else(|| NetError::PoolExhausted(self.pool.to_string()))?;
        let a = Allocation {
            slot,
            allow_internet,
        };
        self.by_id.insert(sandbox_id.to_string(), a);
        if let Err(e) = self.persist() {
            self.by_id.remove(sandbox_id);
            return Err(e);
        }
        Ok(a)
    }

    /// Frees `sandbox_id`'s slot (idempotent) and persists.
    pub fn release(&mut self, sandbox_id: &str) -> Result<(), NetError> {
        if self.by_id.remove(sandbox_id).is_some() {
            self.persist()?;
        }
        Ok(())
    }

    fn persist(&self) -> Result<(), NetError> {
        let file = FileV1 {
            version: ALLOCATIONS_VERSION,
            pool: self.pool.to_string(),
            allocations: self.by_id.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&file).expect("allocations always serialise");
        write_file_atomic(&self.path, &bytes).map_err(NetError::Storage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_parsing() {
        let check = |s: &str, ok: bool| assert_eq!(Ipv4Pool::parse(s).is_ok(), ok, "{s}");
        check("10.77.0.0/16", true);
        check("10.77.3.0/24", true);
        check("10.77.0.0/30", true);
        check("10.77.0.1/16", false);
        check("10.77.0.0", false);
        check("10.77.0.0/31", false);
        check("10.77.0.0/7", false);
        check("x/16", false);
        let p = Ipv4Pool::parse("10.77.0.0/16").unwrap();
        assert_eq!(p.slots(), 16384);
        assert_eq!(
            p.addresses(0),
            ("10.77.0.1".parse().unwrap(), "10.77.0.2".parse().unwrap())
        );
        assert_eq!(
            p.addresses(16383),
            (
                "10.77.255.253".parse().unwrap(),
                "10.77.255.254".parse().unwrap()
            )
        );
        assert!(p.contains("10.77.9.9".parse().unwrap()));
        assert!(!p.contains("10.78.0.1".parse().unwrap()));
    }

    #[test]
    fn allocates_lowest_free_and_survives_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("network/allocations.json");
        let pool = Ipv4Pool::parse("10.1.0.0/28").unwrap(); // 4 slots
        let mut a = Allocator::load(&path, pool).unwrap();
        assert_eq!(a.allocate("a", true).unwrap().slot, 0);
        assert_eq!(a.allocate("b", false).unwrap().slot, 1);
        assert_eq!(a.allocate("c", true).unwrap().slot, 2);
        assert_eq!(a.allocate("a", true).unwrap().slot, 0, "idempotent");
        a.release("b").unwrap();
        a.release("b").unwrap();
        assert_eq!(a.allocate("d", true).unwrap().slot, 1, "lowest free reused");
        assert_eq!(a.allocate("e", true).unwrap().slot, 3);
        assert!(matches!(
            a.allocate("f", true),
            Err(NetError::PoolExhausted(_))
        ));
        assert_eq!(a.get("f"), None);
        drop(a);
        let a = Allocator::load(&path, pool).unwrap();
        let got: Vec<_> = a.all().map(|(id, al)| (id.to_string(), al.slot)).collect();
        assert_eq!(
            got,
            vec![
                ("a".to_string(), 0),
                ("c".to_string(), 2),
                ("d".to_string(), 1),
                ("e".to_string(), 3)
            ]
        );
        let other = Ipv4Pool::parse("10.2.0.0/28").unwrap();
        assert!(matches!(
            Allocator::load(&path, other),
            Err(NetError::PoolChanged { .. })
        ));
    }

    #[test]
    fn refuses_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("allocations.json");
        let pool = Ipv4Pool::parse("10.1.0.0/28").unwrap();
        std::fs::write(
            &path,
            r#"{"version":2,"pool":"10.1.0.0/28","allocations":{}}"#,
        )
        .unwrap();
        assert!(matches!(
            Allocator::load(&path, pool),
            Err(NetError::UnsupportedVersion { version: 2, .. })
        ));
        std::fs::write(
            &path,
            r#"{"version":1,"pool":"10.1.0.0/28","allocations":{"a":{"slot":1,"allow_internet":true},"b":{"slot":1,"allow_internet":true}}}"#,
        )
        .unwrap();
        assert!(matches!(
            Allocator::load(&path, pool),
            Err(NetError::CorruptState { slot: 1, .. })
        ));
        std::fs::write(&path, "not json").unwrap();
        assert!(matches!(
            Allocator::load(&path, pool),
            Err(NetError::State { .. })
        ));
    }
}
