//! Templates (`templates`): what sandboxes are created from. `team_id` NULL is a public
//! (platform) template, e.g. `minimal`; otherwise the template belongs to one team, e.g. a
//! snapshot taken of one of its sandboxes.
//!
//! A template's name is what users see; on the hosts, a team template is stored under
//! [`Template::host_name`], derived from its id, so that two teams may both have a snapshot
//! called `ready` and no user-chosen string ever becomes a path on a host.

use sqlx::{Any, Executor, Row};
use warren_types::{SandboxId, TeamId, TemplateId};

use super::{StoreError, parse_id};

/// Image (booted) or snapshot (resumed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateKind {
    /// A root filesystem image; sandboxes boot from it.
    Image,
    /// A checkpoint of a sandbox; sandboxes resume from it.
    Snapshot,
}

impl TemplateKind {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            TemplateKind::Image => "image",
            TemplateKind::Snapshot => "snapshot",
        }
    }
}

/// Where a template is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateStatus {
    /// Being made.
    Building,
    /// Usable.
    Ready,
    /// Making it failed.
    Error,
    /// Removed.
    Deleted,
}

impl TemplateStatus {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            TemplateStatus::Building => "building",
            TemplateStatus::Ready => "ready",
            TemplateStatus::Error => "error",
            TemplateStatus::Deleted => "deleted",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "building" => TemplateStatus::Building,
            "ready" => TemplateStatus::Ready,
            "error" => TemplateStatus::Error,
            "deleted" => TemplateStatus::Deleted,
            _ => return None,
        })
    }
}

/// Prefix of the host-side name of team templates; user-chosen names may not start with it.
pub const HOST_NAME_PREFIX: &str = "t-";

/// A stored template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// Its id.
    pub id: TemplateId,
    /// Owner; `None` for public templates.
    pub team_id: Option<TeamId>,
    /// Name users give in `template`.
    pub name: String,
    /// Image or snapshot.
    pub kind: TemplateKind,
    /// Status.
    pub status: TemplateStatus,
    /// Blocks used on its host, bytes.
    pub size_bytes: Option<u64>,
    /// CPUs fixed by a snapshot.
    pub vcpus: Option<u32>,
    /// Memory fixed by a snapshot, MiB.
    pub memory_mb: Option<u32>,
    /// For snapshots: the sandbox it was taken from.
    pub source_sandbox_id: Option<SandboxId>,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub updated_at: i64,
}

impl Template {
    /// The name of this template on the hosts: public templates keep their name; team
    /// templates use `t-<id without dashes>` (34 characters, a valid host template name).
    pub fn host_name(&self) -> String {
        match self.team_id {
            None => self.name.clone(),
            Some(_) => format!("{HOST_NAME_PREFIX}{}", self.id.as_uuid().simple()),
        }
    }
}

const COLUMNS: &str = "id, team_id, name, kind, status, size_bytes, vcpus, memory_mb, \
                       source_sandbox_id, created_at, updated_at";
const TABLE: &str = "templates";

fn corrupt(detail: String) -> StoreError {
    StoreError::Corrupt {
        table: TABLE,
        detail,
    }
}

fn from_row(row: sqlx::any::AnyRow) -> Result<Template, StoreError> {
    let id: String = row.try_get("id")?;
    let team_id: Option<String> = row.try_get("team_id")?;
    let kind: String = row.try_get("kind")?;
    let status: String = row.try_get("status")?;
    let size: Option<i64> = row.try_get("size_bytes")?;
    let vcpus: Option<i64> = row.try_get("vcpus")?;
    let memory: Option<i64> = row.try_get("memory_mb")?;
    let source: Option<String> = row.try_get("source_sandbox_id")?;
    Ok(Template {
        id: parse_id(TABLE, &id)?,
        team_id: team_id.map(|t| parse_id(TABLE, &t)).transpose()?,
        name: row.try_get("name")?,
        kind: match kind.as_str() {
            "image" => TemplateKind::Image,
            "snapshot" => TemplateKind::Snapshot,
            other => return Err(corrupt(format!("kind {other:?}"))),
        },
        status: TemplateStatus::parse(&status)
            .ok_or_else(|| corrupt(format!("status {status:?}")))?,
        size_bytes: size.and_then(|s| u64::try_from(s).ok()),
        vcpus: vcpus.and_then(|v| u32::try_from(v).ok()),
        memory_mb: memory.and_then(|v| u32::try_from(v).ok()),
        source_sandbox_id: source.map(|s| parse_id(TABLE, &s)).transpose()?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Inserts a template.
pub async fn insert<'e, E: Executor<'e, Database = Any>>(
    db: E,
    t: &Template,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO templates (id, team_id, name, kind, status, size_bytes, vcpus, memory_mb, \
         source_sandbox_id, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(t.id.to_string())
    .bind(t.team_id.map(|x| x.to_string()))
    .bind(&t.name)
    .bind(t.kind.as_str())
    .bind(t.status.as_str())
    .bind(t.size_bytes.map(|s| i64::try_from(s).unwrap_or(i64::MAX)))
    .bind(t.vcpus.map(i64::from))
    .bind(t.memory_mb.map(i64::from))
    .bind(t.source_sandbox_id.map(|s| s.to_string()))
    .bind(t.created_at)
    .bind(t.updated_at)
    .execute(db)
    .await?;
    Ok(())
}

/// The team's live (not deleted) template of that name.
pub async fn team_by_name<'e, E: Executor<'e, Database = Any>>(
    db: E,
    team: TeamId,
    name: &str,
) -> Result<Option<Template>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM templates WHERE team_id = $1 AND name = $2 AND status <> 'deleted' \
         ORDER BY created_at DESC LIMIT 1"
    );
    sqlx::query(&sql)
        .bind(team.to_string())
        .bind(name)
        .fetch_optional(db)
        .await?
        .map(from_row)
        .transpose()
}

/// The public template of that name.
pub async fn public_by_name<'e, E: Executor<'e, Database = Any>>(
    db: E,
    name: &str,
) -> Result<Option<Template>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM templates WHERE team_id IS NULL AND name = $1 \
         AND status <> 'deleted' ORDER BY created_at LIMIT 1"
    );
    sqlx::query(&sql)
        .bind(name)
        .fetch_optional(db)
        .await?
        .map(from_row)
        .transpose()
}

/// The team's templates of one kind (not deleted), newest first.
pub async fn list_for_team<'e, E: Executor<'e, Database = Any>>(
    db: E,
    team: TeamId,
    kind: TemplateKind,
) -> Result<Vec<Template>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM templates WHERE team_id = $1 AND kind = $2 \
         AND status <> 'deleted' ORDER BY created_at DESC, id DESC"
    );
    sqlx::query(&sql)
        .bind(team.to_string())
        .bind(kind.as_str())
        .fetch_all(db)
        .await?
        .into_iter()
        .map(from_row)
        .collect()
}

/// Sets status and size.
pub async fn set_status<'e, E: Executor<'e, Database = Any>>(
    db: E,
    id: TemplateId,
    status: TemplateStatus,
    size_bytes: Option<u64>,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE templates SET status = $1, size_bytes = COALESCE($2, size_bytes), updated_at = $3 \
         WHERE id = $4",
    )
    .bind(status.as_str())
    .bind(size_bytes.map(|s| i64::try_from(s).unwrap_or(i64::MAX)))
    .bind(now)
    .bind(id.to_string())
    .execute(db)
    .await?;
    Ok(())
}

/// Deletes the row (sandboxes made from it keep their template name; their `template_id`
/// becomes NULL).
pub async fn delete<'e, E: Executor<'e, Database = Any>>(
    db: E,
    id: TemplateId,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM templates WHERE id = $1")
        .bind(id.to_string())
        .execute(db)
        .await?;
    Ok(())
}
