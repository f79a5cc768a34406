//! Placement: which host gets a new sandbox. A [`Scheduler`] is a pure function of the hosts'
//! load and the request, so it is unit-tested here over tables of hosts and swapped in tests
//! or deployments without touching the sandbox service.
//!
//! The default, [`RoundRobin`], keeps to the hosts that can take the sandbox at all (online,
//! holding the template, below capacity, with enough free memory when they report it), narrows
//! them to the least-loaded ones, and takes turns among those: an idle fleet fills evenly
//! instead of piling every sandbox onto the first host, and a loaded host is passed over
//! while others have room.

use std::sync::atomic::{AtomicUsize, Ordering};

use warren_types::{HostId, HostStatus};

/// One host as the scheduler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostLoad {
    /// The host.
    pub host_id: HostId,
    /// Only `online` hosts receive sandboxes.
    pub status: HostStatus,
    /// Most sandboxes it takes (None: not reported, no limit known).
    pub sandbox_capacity: Option<u32>,
    /// Sandboxes on it that hold a slot (pending or running), from the database.
    pub active: u32,
    /// Free memory it last reported, MiB (None: unknown).
    pub free_memory_mb: Option<u64>,
    /// Host-side names of the templates it holds.
    pub templates: Vec<String>,
}

impl HostLoad {
    /// Whether the host can take a sandbox of `req` right now.
    pub fn fits(&self, req: &Placement) -> bool {
        self.status.accepts_sandboxes()
            && self.templates.iter().any(|t| t == &req.template)
            && self.sandbox_capacity.is_none_or(|c| self.active < c)
            && self
                .free_memory_mb
                .is_none_or(|free| free >= u64::from(req.memory_mb))
    }

    /// Fraction of capacity in use, in thousandths (hosts without a capacity count raw).
    fn load(&self) -> u64 {
        match self.sandbox_capacity {
            Some(c) if c > 0 => u64::from(self.active) * 1000 / u64::from(c),
            _ => u64::from(self.active) * 1000,
        }
    }
}

/// What is being placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Host-side template name the host must hold.
    pub template: String,
    /// vCPUs asked for.
    pub vcpus: u32,
    /// Memory asked for, MiB.
    pub memory_mb: u32,
}

/// Chooses a host for a sandbox; `None` when no host can take it.
pub trait Scheduler: Send + Sync + std::fmt::Debug {
    /// Picks one of `hosts` for `req`.
    fn pick(&self, hosts: &[HostLoad], req: &Placement) -> Option<HostId>;
}

/// Round-robin among the least-loaded hosts that fit (see the module doc).
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: AtomicUsize,
}

impl Scheduler for RoundRobin {
    fn pick(&self, hosts: &[HostLoad], req: &Placement) -> Option<HostId> {
        let fitting: Vec<&HostLoad> = hosts.iter().filter(|h| h.fits(req)).collect();
        let least = fitting.iter().map(|h| h.load()).min()?;
        let mut candidates: Vec<HostId> = fitting
            .iter()
            .filter(|h| h.load() == least)
            .map(|h| h.host_id)
            .collect();
        candidates.sort();
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        Some(candidates[turn % candidates.len()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(n: u128, status: HostStatus, cap: Option<u32>, active: u32) -> HostLoad {
        HostLoad {
            host_id: HostId::from_uuid(uuid::Uuid::from_u128(n)),
            status,
            sandbox_capacity: cap,
            active,
            free_memory_mb: None,
            templates: vec!["minimal".into()],
        }
    }

    fn req() -> Placement {
        Placement {
            template: "minimal".into(),
            vcpus: 1,
            memory_mb: 512,
        }
    }

    fn id(n: u128) -> HostId {
        HostId::from_uuid(uuid::Uuid::from_u128(n))
    }

    #[test]
    fn nothing_fits_is_none() {
        let s = RoundRobin::default();
        assert_eq!(s.pick(&[], &req()), None);
        let mut full = host(1, HostStatus::Online, Some(2), 2);
        assert_eq!(s.pick(std::slice::from_ref(&full), &req()), None);
        full.active = 1;
        full.templates = vec!["base".into()];
        assert_eq!(s.pick(&[full], &req()), None);
        for status in [
            HostStatus::Pending,
            HostStatus::Unreachable,
            HostStatus::Draining,
            HostStatus::Deleted,
        ] {
            assert_eq!(
                s.pick(&[host(1, status, None, 0)], &req()),
                None,
                "{status}"
            );
        }
        let mut low = host(1, HostStatus::Online, None, 0);
        low.free_memory_mb = Some(100);
        assert_eq!(s.pick(&[low], &req()), None);
    }

    #[test]
    fn idle_hosts_take_turns() {
        let s = RoundRobin::default();
        let hosts = [
            host(1, HostStatus::Online, Some(10), 0),
            host(2, HostStatus::Online, Some(10), 0),
            host(3, HostStatus::Online, Some(10), 0),
        ];
        let picks: Vec<HostId> = (0..6).map(|_| s.pick(&hosts, &req()).unwrap()).collect();
        assert_eq!(picks, vec![id(1), id(2), id(3), id(1), id(2), id(3)]);
    }

    #[test]
    fn least_loaded_first() {
        let s = RoundRobin::default();
        let hosts = [
            host(1, HostStatus::Online, Some(10), 5),
            host(2, HostStatus::Online, Some(10), 1),
            host(3, HostStatus::Unreachable, Some(10), 0),
            host(4, HostStatus::Online, Some(4), 1),
        ];
        for _ in 0..4 {
            assert_eq!(s.pick(&hosts, &req()), Some(id(2)));
        }
    }

    #[test]
    fn only_hosts_with_the_template() {
        let s = RoundRobin::default();
        let mut snap = host(2, HostStatus::Online, Some(10), 3);
        snap.templates.push("t-abc".into());
        let hosts = [host(1, HostStatus::Online, Some(10), 0), snap];
        let r = Placement {
            template: "t-abc".into(),
            ..req()
        };
        assert_eq!(s.pick(&hosts, &r), Some(id(2)));
    }
}
