//! Sandboxes (`sandboxes`): one row per sandbox ever created, in every status.
//!
//! Status changes go through [`set_status`], a compare-and-set (`WHERE status = $from`) that
//! refuses what `SandboxStatus::can_become` refuses: two writers racing on one sandbox (a
//! request and the host monitor) cannot both win, and the loser learns it (`false`) instead
//! of silently overwriting. The control plane writes the *intended* status here before the
//! host acts and reverts it on failure (DESIGN.md §8).

use std::collections::BTreeMap;

use sqlx::{Any, Executor, Row};
use warren_types::{HostId, HostStatus, SandboxId, SandboxStatus, TeamId, TemplateId};

use super::{StoreError, parse_id};

/// A stored sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxRecord {
    /// Its id (also its id on the host).
    pub id: SandboxId,
    /// Owner.
    pub team_id: TeamId,
    /// Where it runs (None before placement).
    pub host_id: Option<HostId>,
    /// The template row it came from (None for public templates only known by name).
    pub template_id: Option<TemplateId>,
    /// Template name as the user gave it.
    pub template: String,
    /// Status.
    pub status: SandboxStatus,
    /// Virtual CPUs.
    pub vcpus: u32,
    /// Memory, MiB.
    pub memory_mb: u32,
    /// User metadata.
    pub metadata: BTreeMap<String, String>,
    /// Environment given at create.
    pub env: BTreeMap<String, String>,
    /// TTL in seconds (0: none).
    pub timeout_secs: u32,
    /// Unix ms when the host reaps it.
    pub expires_at: Option<i64>,
    /// Why it is in `error`.
    pub error: Option<String>,
    /// Egress allowed.
    pub allow_internet: bool,
    /// Pause instead of destroy at expiry.
    pub auto_pause: bool,
    /// envd `X-Access-Token`, if the sandbox has one.
    pub envd_access_token: Option<String>,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub updated_at: i64,
    /// Unix ms when it first ran.
    pub started_at: Option<i64>,
    /// Unix ms when it stopped.
    pub stopped_at: Option<i64>,
}

const COLUMNS: &str = "id, team_id, host_id, template_id, template, status, vcpus, memory_mb, \
     metadata, env, timeout_secs, expires_at, error, allow_internet, auto_pause, \
     envd_access_token, created_at, updated_at, started_at, stopped_at";

const TABLE: &str = "sandboxes";

fn corrupt(detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        table: TABLE,
        detail: detail.into(),
    }
}

fn json_map(raw: &str) -> Result<BTreeMap<String, String>, StoreError> {
    serde_json::from_str(raw).map_err(|e| corrupt(format!("json map: {e}")))
}

fn to_json(map: &BTreeMap<String, String>) -> String {
    // A map of strings always serializes.
    serde_json::to_string(map).unwrap_or_else(|_| "{}".to_owned())
}

fn u32_col(row: &sqlx::any::AnyRow, col: &str) -> Result<u32, StoreError> {
    let v: i64 = row.try_get(col)?;
    u32::try_from(v).map_err(|_| corrupt(format!("{col} out of range: {v}")))
}

fn from_row(row: sqlx::any::AnyRow) -> Result<SandboxRecord, StoreError> {
    let id: String = row.try_get("id")?;
    let team_id: String = row.try_get("team_id")?;
    let host_id: Option<String> = row.try_get("host_id")?;
    let template_id: Option<String> = row.try_get("template_id")?;
    let status: String = row.try_get("status")?;
    let metadata: String = row.try_get("metadata")?;
    let env: String = row.try_get("env")?;
    let timeout: Option<i64> = row.try_get("timeout_secs")?;
    let allow_internet: i64 = row.try_get("allow_internet")?;
    let auto_pause: i64 = row.try_get("auto_pause")?;
    Ok(SandboxRecord {
        id: parse_id(TABLE, &id)?,
        team_id: parse_id(TABLE, &team_id)?,
        host_id: host_id.map(|h| parse_id(TABLE, &h)).transpose()?,
        template_id: template_id.map(|t| parse_id(TABLE, &t)).transpose()?,
        template: row.try_get("template")?,
        status: status.parse().map_err(|e| corrupt(format!("{e}")))?,
        vcpus: u32_col(&row, "vcpus")?,
        memory_mb: u32_col(&row, "memory_mb")?,
        metadata: json_map(&metadata)?,
        env: json_map(&env)?,
        timeout_secs: u32::try_from(timeout.unwrap_or(0)).unwrap_or(0),
        expires_at: row.try_get("expires_at")?,
        error: row.try_get("error")?,
        allow_internet: allow_internet != 0,
        auto_pause: auto_pause != 0,
        envd_access_token: row.try_get("envd_access_token")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        started_at: row.try_get("started_at")?,
        stopped_at: row.try_get("stopped_at")?,
    })
}

/// Inserts a sandbox.
pub async fn insert<'e, E: Executor<'e, Database = Any>>(
    db: E,
    s: &SandboxRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO sandboxes (id, team_id, host_id, template_id, template, status, vcpus, \
         memory_mb, metadata, env, timeout_secs, expires_at, error, allow_internet, auto_pause, \
         envd_access_token, created_at, updated_at, started_at, stopped_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
         $18, $19, $20)",
    )
    .bind(s.id.to_string())
    .bind(s.team_id.to_string())
    .bind(s.host_id.map(|h| h.to_string()))
    .bind(s.template_id.map(|t| t.to_string()))
    .bind(&s.template)
    .bind(s.status.as_str())
    .bind(i64::from(s.vcpus))
    .bind(i64::from(s.memory_mb))
    .bind(to_json(&s.metadata))
    .bind(to_json(&s.env))
    .bind(i64::from(s.timeout_secs))
    .bind(s.expires_at)
    .bind(&s.error)
    .bind(i64::from(s.allow_internet))
    .bind(i64::from(s.auto_pause))
    .bind(&s.envd_access_token)
    .bind(s.created_at)
    .bind(s.updated_at)
    .bind(s.started_at)
    .bind(s.stopped_at)
    .execute(db)
    .await?;
    Ok(())
}

/// The sandbox, whatever its team (for the host monitor and the proxy).
pub async fn get<'e, E: Executor<'e, Database = Any>>(
    db: E,
    id: SandboxId,
) -> Result<Option<SandboxRecord>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM sandboxes WHERE id = $1");
    sqlx::query(&sql)
        .bind(id.to_string())
        .fetch_optional(db)
        .await?
        .map(from_row)
        .transpose()
}

/// The team's sandbox; `None` when it does not exist or belongs to another team.
pub async fn get_for_team<'e, E: Executor<'e, Database = Any>>(
    db: E,
    team: TeamId,
    id: SandboxId,
) -> Result<Option<SandboxRecord>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM sandboxes WHERE id = $1 AND team_id = $2");
    sqlx::query(&sql)
        .bind(id.to_string())
        .bind(team.to_string())
        .fetch_optional(db)
        .await?
        .map(from_row)
        .transpose()
}

/// One page of the team's sandboxes, newest first (ids are UUID v7, so id order is creation
/// order): rows with `id < before` (all when `None`) whose status is in `statuses` (all when
/// empty), at most `limit`.
pub async fn list_for_team<'e, E: Executor<'e, Database = Any>>(
    db: E,
    team: TeamId,
    statuses: &[SandboxStatus],
    before: Option<SandboxId>,
    limit: u32,
) -> Result<Vec<SandboxRecord>, StoreError> {
    let mut sql = format!("SELECT {COLUMNS} FROM sandboxes WHERE team_id = $1");
    let mut n = 1;
    if before.is_some() {
        n += 1;
        sql.push_str(&format!(" AND id < ${n}"));
    }
    if !statuses.is_empty() {
        let marks: Vec<String> = (0..statuses.len())
            .map(|i| format!("${}", n + 1 + i))
            .collect();
        n += statuses.len();
        sql.push_str(&format!(" AND status IN ({})", marks.join(", ")));
    }
    sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", n + 1));
    let mut q = sqlx::query(&sql).bind(team.to_string());
    if let Some(b) = before {
        q = q.bind(b.to_string());
    }
    for s in statuses {
        q = q.bind(s.as_str());
    }
    q.bind(i64::from(limit))
        .fetch_all(db)
        .await?
        .into_iter()
        .map(from_row)
        .collect()
}

/// Every sandbox on `host` whose status is in `statuses` (all when empty).
pub async fn list_for_host<'e, E: Executor<'e, Database = Any>>(
    db: E,
    host: HostId,
    statuses: &[SandboxStatus],
) -> Result<Vec<SandboxRecord>, StoreError> {
    let mut sql = format!("SELECT {COLUMNS} FROM sandboxes WHERE host_id = $1");
    if !statuses.is_empty() {
        let marks: Vec<String> = (0..statuses.len()).map(|i| format!("${}", i + 2)).collect();
        sql.push_str(&format!(" AND status IN ({})", marks.join(", ")));
    }
    sql.push_str(" ORDER BY id");
    let mut q = sqlx::query(&sql).bind(host.to_string());
    for s in statuses {
        q = q.bind(s.as_str());
    }
    q.fetch_all(db).await?.into_iter().map(from_row).collect()
}

/// Sandboxes per host that occupy a slot (pending or running), for the scheduler.
pub async fn active_counts<'e, E: Executor<'e, Database = Any>>(
    db: E,
) -> Result<Vec<(HostId, u32)>, StoreError> {
    let rows = sqlx::query(
        "SELECT host_id, COUNT(*) AS n FROM sandboxes \
         WHERE host_id IS NOT NULL AND status IN ('pending', 'running') GROUP BY host_id",
    )
    .fetch_all(db)
    .await?;
    rows.into_iter()
        .map(|row| {
            let host: String = row.try_get("host_id")?;
            let n: i64 = row.try_get("n")?;
            Ok((
                parse_id(TABLE, &host)?,
                u32::try_from(n).unwrap_or(u32::MAX),
            ))
        })
        .collect()
}

/// Extra columns written together with a status change.
#[derive(Debug, Clone, Default)]
pub struct StatusUpdate {
    /// New `expires_at` (unix ms); `Some(None)` clears it.
    pub expires_at: Option<Option<i64>>,
    /// New `timeout_secs`.
    pub timeout_secs: Option<u32>,
    /// New `error`.
    pub error: Option<String>,
    /// Set `started_at` if it is unset.
    pub started: bool,
}

/// Compare-and-set of the status: `from` → `to` only if the row is still in `from` and the
/// transition is legal. Returns whether it happened.
pub async fn set_status<'e, E: Executor<'e, Database = Any>>(
    db: E,
    id: SandboxId,
    from: SandboxStatus,
    to: SandboxStatus,
    extra: &StatusUpdate,
    now: i64,
) -> Result<bool, StoreError> {
    if !from.can_become(to) {
        return Ok(false);
    }
    let mut sets = vec!["status = $1".to_owned(), "updated_at = $2".to_owned()];
    let mut n = 2;
    let mut push = |col: &str| {
        n += 1;
        sets.push(format!("{col} = ${n}"));
    };
    if extra.expires_at.is_some() {
        push("expires_at");
    }
    if extra.timeout_secs.is_some() {
        push("timeout_secs");
    }
    if extra.error.is_some() {
        push("error");
    }
    if to.is_final() {
        push("stopped_at");
    }
    if extra.started {
        n += 1;
        sets.push(format!("started_at = COALESCE(started_at, ${n})"));
    }
    let sql = format!(
        "UPDATE sandboxes SET {} WHERE id = ${} AND status = ${}",
        sets.join(", "),
        n + 1,
        n + 2
    );
    let mut q = sqlx::query(&sql).bind(to.as_str()).bind(now);
    if let Some(e) = extra.expires_at {
        q = q.bind(e);
    }
    if let Some(t) = extra.timeout_secs {
        q = q.bind(i64::from(t));
    }
    if let Some(e) = &extra.error {
        q = q.bind(e.clone());
    }
    if to.is_final() {
        q = q.bind(now);
    }
    if extra.started {
        q = q.bind(now);
    }
    let done = q
        .bind(id.to_string())
        .bind(from.as_str())
        .execute(db)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Sets the TTL fields of a sandbox that is still in `status`. Returns whether it happened.
pub async fn set_expiry<'e, E: Executor<'e, Database = Any>>(
    db: E,
    id: SandboxId,
    status: SandboxStatus,
    timeout_secs: u32,
    expires_at: Option<i64>,
    now: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE sandboxes SET timeout_secs = $1, expires_at = $2, updated_at = $3 \
         WHERE id = $4 AND status = $5",
    )
    .bind(i64::from(timeout_secs))
    .bind(expires_at)
    .bind(now)
    .bind(id.to_string())
    .bind(status.as_str())
    .execute(db)
    .await?;
    Ok(done.rows_affected() > 0)
}

// Hosts as the sandbox layer sees them (placement and addressing). The host registry itself
// (registration, heartbeats, status) is `store::host`.

/// A host's status and address.
pub async fn host_address<'e, E: Executor<'e, Database = Any>>(
    db: E,
    host: HostId,
) -> Result<Option<(HostStatus, Option<String>)>, StoreError> {
    let row = sqlx::query("SELECT status, address FROM hosts WHERE id = $1")
        .bind(host.to_string())
        .fetch_optional(db)
        .await?;
    row.map(|row| {
        let status: String = row.try_get("status")?;
        let status = status.parse().map_err(|e| StoreError::Corrupt {
            table: "hosts",
            detail: format!("{e}"),
        })?;
        Ok((status, row.try_get("address")?))
    })
    .transpose()
}

/// What the scheduler knows of one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRow {
    /// The host.
    pub id: HostId,
    /// Its status.
    pub status: HostStatus,
    /// Most sandboxes it takes (None: not reported).
    pub sandbox_capacity: Option<u32>,
    /// Free memory it last reported, MiB.
    pub free_memory_mb: Option<u64>,
    /// Template names it last reported.
    pub templates: Vec<String>,
}

/// Every host that is not deleted.
pub async fn hosts<'e, E: Executor<'e, Database = Any>>(db: E) -> Result<Vec<HostRow>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, status, sandbox_capacity, free_memory_mb, templates FROM hosts \
         WHERE status <> 'deleted' ORDER BY id",
    )
    .fetch_all(db)
    .await?;
    rows.into_iter()
        .map(|row| {
            let bad = |detail: String| StoreError::Corrupt {
                table: "hosts",
                detail,
            };
            let id: String = row.try_get("id")?;
            let status: String = row.try_get("status")?;
            let capacity: Option<i64> = row.try_get("sandbox_capacity")?;
            let free: Option<i64> = row.try_get("free_memory_mb")?;
            let templates: String = row.try_get("templates")?;
            Ok(HostRow {
                id: parse_id("hosts", &id)?,
                status: status.parse().map_err(|e| bad(format!("{e}")))?,
                sandbox_capacity: capacity.map(|c| u32::try_from(c.max(0)).unwrap_or(u32::MAX)),
                free_memory_mb: free.and_then(|f| u64::try_from(f).ok()),
                templates: serde_json::from_str(&templates)
                    .map_err(|e| bad(format!("templates: {e}")))?,
            })
        })
        .collect()
}
