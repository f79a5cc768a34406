//! Typed identifiers. Each is a UUID (v7, so ids sort by creation time) wrapped in a newtype,
//! so a `TeamId` can never be passed where a `SandboxId` is expected.

use std::fmt;
use std::str::FromStr;

/// An id string that is not a UUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} id {input:?}")]
pub struct IdParseError {
    /// Which kind of id was expected (`sandbox`, `team`, ...).
    pub kind: &'static str,
    /// The rejected input (truncated to 64 chars).
    pub input: String,
}

macro_rules! define_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(uuid::Uuid);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn new() -> Self {
                Self(uuid::Uuid::now_v7())
            }
            /// Wraps an existing UUID.
            pub fn from_uuid(u: uuid::Uuid) -> Self {
                Self(u)
            }
            /// The UUID inside.
            pub fn as_uuid(&self) -> uuid::Uuid {
                self.0
            }
            /// What kind of id this is, for error messages.
            pub const KIND: &'static str = $kind;
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.as_hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                uuid::Uuid::try_parse(s).map(Self).map_err(|_| IdParseError {
                    kind: $kind,
                    input: s.chars().take(64).collect(),
                })
            }
        }
    };
}

define_id!(
    /// A sandbox.
    SandboxId,
    "sandbox"
);
define_id!(
    /// A team: the unit of ownership for sandboxes, templates and API keys.
    TeamId,
    "team"
);
define_id!(
    /// A user account.
    UserId,
    "user"
);
define_id!(
    /// A host running `warren agent`.
    HostId,
    "host"
);
define_id!(
    /// A template image or snapshot.
    TemplateId,
    "template"
);
define_id!(
    /// A team API key (the id, never the secret).
    ApiKeyId,
    "api key"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_string() {
        let id = SandboxId::new();
        let parsed: SandboxId = id.to_string().parse().unwrap();
        assert_eq!(id, parsed);
    }

    #[test]
    fn rejects_garbage_naming_the_kind() {
        let err = "nope".parse::<TeamId>().unwrap_err();
        assert_eq!(err.to_string(), "invalid team id \"nope\"");
    }

    #[test]
    fn new_ids_sort_by_creation() {
        let a = HostId::new();
        let b = HostId::new();
        assert!(a < b);
    }
}
