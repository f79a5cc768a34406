//! Sandbox and host status machines. Every legal transition is listed in exactly one `match`
//! per machine (`SandboxStatus::can_become`, `HostStatus::can_become`); callers ask
//! `transition` and get a typed error for anything else, so no other code decides what may follow
//! what.
//!
//! Sandbox (DESIGN.md §2): `pending → running ⇄ paused`, `running|paused → stopped` (final),
//! `missing` (reversible: the host lost track or became unreachable), `error` (final).
//! Host: `pending → online ⇄ unreachable`, `draining`, `deleted` (final).

use std::fmt;
use std::str::FromStr;

/// A status string that names no status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {machine} status {input:?}")]
pub struct StatusParseError {
    /// `sandbox` or `host`.
    pub machine: &'static str,
    /// The rejected input (truncated to 64 chars).
    pub input: String,
}

/// A transition the status machine forbids.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{machine} cannot go from {from} to {to}")]
pub struct TransitionError {
    /// `sandbox` or `host`.
    pub machine: &'static str,
    /// The current status.
    pub from: &'static str,
    /// The requested status.
    pub to: &'static str,
}

macro_rules! status_strings {
    ($ty:ident, $machine:literal, { $($variant:ident => $s:literal),+ $(,)? }) => {
        impl $ty {
            /// Every status, in declaration order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// The stable lower-case name used in the database and on the wire.
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $s),+ }
            }

            /// `Ok(to)` if `self → to` is legal, a [`TransitionError`] otherwise.
            pub fn transition(self, to: $ty) -> Result<$ty, TransitionError> {
                if self.can_become(to) {
                    Ok(to)
                } else {
                    Err(TransitionError { machine: $machine, from: self.as_str(), to: to.as_str() })
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $ty {
            type Err = StatusParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($s => Ok($ty::$variant),)+
                    _ => Err(StatusParseError { machine: $machine, input: s.chars().take(64).collect() }),
                }
            }
        }
    };
}

/// Where a sandbox is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SandboxStatus {
    /// Accepted, being created on a host.
    Pending,
    /// Running on its host.
    Running,
    /// Paused: memory and rootfs saved, can resume.
    Paused,
    /// Killed or expired: final.
    Stopped,
    /// Its host does not report it (or is unreachable); may come back.
    Missing,
    /// Creation or a lifecycle step failed beyond repair: final.
    Error,
}

status_strings!(SandboxStatus, "sandbox", {
    Pending => "pending",
    Running => "running",
    Paused => "paused",
    Stopped => "stopped",
    Missing => "missing",
    Error => "error",
});

impl SandboxStatus {
    /// The one place that says which sandbox transitions are legal. Staying in the same status
    /// is not a transition and is refused, so a double pause or double kill is visible.
    pub fn can_become(self, to: SandboxStatus) -> bool {
        use SandboxStatus::*;
        matches!(
            (self, to),
            (Pending, Running)
                | (Pending, Error)
                | (Pending, Stopped)
                | (Running, Paused)
                | (Running, Stopped)
                | (Running, Missing)
                | (Running, Error)
                | (Paused, Running)
                | (Paused, Stopped)
                | (Paused, Missing)
                | (Paused, Error)
                | (Missing, Running)
                | (Missing, Paused)
                | (Missing, Stopped)
                | (Missing, Error)
        )
    }

    /// No transition leaves a final status.
    pub fn is_final(self) -> bool {
        matches!(self, SandboxStatus::Stopped | SandboxStatus::Error)
    }
}

/// Where a host is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HostStatus {
    /// Registration token issued, agent not yet connected.
    Pending,
    /// Heartbeating; receives new sandboxes.
    Online,
    /// Missed heartbeats; its sandboxes are `missing`.
    Unreachable,
    /// Keeps its sandboxes, receives no new ones.
    Draining,
    /// Removed by an operator: final.
    Deleted,
}

status_strings!(HostStatus, "host", {
    Pending => "pending",
    Online => "online",
    Unreachable => "unreachable",
    Draining => "draining",
    Deleted => "deleted",
});

impl HostStatus {
    /// The one place that says which host transitions are legal.
    pub fn can_become(self, to: HostStatus) -> bool {
        use HostStatus::*;
        matches!(
            (self, to),
            (Pending, Online)
                | (Pending, Deleted)
                | (Online, Unreachable)
                | (Online, Draining)
                | (Online, Deleted)
                | (Unreachable, Online)
                | (Unreachable, Draining)
                | (Unreachable, Deleted)
                | (Draining, Online)
                | (Draining, Unreachable)
                | (Draining, Deleted)
        )
    }

    /// Whether the scheduler may place new sandboxes here.
    pub fn accepts_sandboxes(self) -> bool {
        self == HostStatus::Online
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks the full from × to matrix against the list of allowed pairs: every pair not
    /// listed must be refused.
    fn check<S>(all: &[S], allowed: &[(S, S)])
    where
        S: Copy + PartialEq + fmt::Debug,
        S: StatusMachine,
    {
        for &from in all {
            for &to in all {
                let expected = allowed.contains(&(from, to));
                assert_eq!(from.allows(to), expected, "{from:?} -> {to:?}");
            }
        }
    }

    trait StatusMachine {
        fn allows(self, to: Self) -> bool;
    }
    impl StatusMachine for SandboxStatus {
        fn allows(self, to: Self) -> bool {
            let ok = self.transition(to).is_ok();
            assert_eq!(ok, self.can_become(to));
            ok
        }
    }
    impl StatusMachine for HostStatus {
        fn allows(self, to: Self) -> bool {
            let ok = self.transition(to).is_ok();
            assert_eq!(ok, self.can_become(to));
            ok
        }
    }

    #[test]
    fn sandbox_transitions() {
        use SandboxStatus::*;
        check(
            SandboxStatus::ALL,
            &[
                (Pending, Running),
                (Pending, Error),
                (Pending, Stopped),
                (Running, Paused),
                (Paused, Running),
                (Running, Stopped),
                (Paused, Stopped),
                (Running, Missing),
                (Paused, Missing),
                (Missing, Running),
                (Missing, Paused),
                (Missing, Stopped),
                (Missing, Error),
                (Running, Error),
                (Paused, Error),
            ],
        );
    }

    #[test]
    fn final_sandbox_statuses_lead_nowhere() {
        for &from in SandboxStatus::ALL {
            if from.is_final() {
                assert!(SandboxStatus::ALL.iter().all(|&to| !from.can_become(to)));
            }
        }
    }

    #[test]
    fn host_transitions() {
        use HostStatus::*;
        check(
            HostStatus::ALL,
            &[
                (Pending, Online),
                (Pending, Deleted),
                (Online, Unreachable),
                (Unreachable, Online),
                (Online, Draining),
                (Unreachable, Draining),
                (Draining, Online),
                (Draining, Unreachable),
                (Online, Deleted),
                (Unreachable, Deleted),
                (Draining, Deleted),
            ],
        );
    }

    #[test]
    fn names_round_trip() {
        for &s in SandboxStatus::ALL {
            assert_eq!(s.as_str().parse::<SandboxStatus>(), Ok(s));
        }
        for &s in HostStatus::ALL {
            assert_eq!(s.as_str().parse::<HostStatus>(), Ok(s));
        }
        assert!("Running".parse::<SandboxStatus>().is_err());
        assert!("".parse::<HostStatus>().is_err());
    }

    #[test]
    fn transition_error_names_both_ends() {
        let err = SandboxStatus::Stopped
            .transition(SandboxStatus::Running)
            .unwrap_err();
        assert_eq!(err.to_string(), "sandbox cannot go from stopped to running");
    }
}
