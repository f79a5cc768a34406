//! Hosts and their credentials (`hosts`, `host_registration_tokens`, `host_refresh_tokens`),
//! plus the host-scoped sandbox queries the host monitor and host delete need.
//!
//! Tokens are never stored: only their SHA-256 (hex). Consuming a registration token and
//! revoking a refresh token are conditional updates (`... AND used_at IS NULL`), so two
//! concurrent uses cannot both succeed: the caller checks `rows_affected`.

use sqlx::{Any, Executor, Row};
use warren_types::{HostId, HostStatus, UserId};

use super::{StoreError, parse_id};

/// A stored host.
#[derive(Debug, Clone)]
pub struct Host {
    /// Its id.
    pub id: HostId,
    /// Where it is in its life.
    pub status: HostStatus,
    /// `host:port` the control plane dials.
    pub address: Option<String>,
    /// `gvisor` or `firecracker`.
    pub runtime: Option<String>,
    /// CPU architecture (`x86_64`, `aarch64`).
    pub arch: Option<String>,
    /// CPUs.
    pub cpu_count: Option<i64>,
    /// Memory, MiB.
    pub memory_mb: Option<i64>,
    /// Disk, MiB.
    pub disk_mb: Option<i64>,
    /// Most sandboxes it takes.
    pub sandbox_capacity: Option<i64>,
    /// Sandboxes it holds (last heartbeat).
    pub live_sandboxes: i64,
    /// Free memory, MiB (last heartbeat).
    pub free_memory_mb: Option<i64>,
    /// Free disk, MiB (last heartbeat).
    pub free_disk_mb: Option<i64>,
    /// JSON object of labels.
    pub labels: String,
    /// Agent version.
    pub agent_version: Option<String>,
    /// Template names present on the host.
    pub templates: Vec<String>,
    /// Unix ms.
    pub last_heartbeat_at: Option<i64>,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub updated_at: i64,
}

impl Host {
    /// A new `pending` host with nothing reported yet.
    pub fn new_pending(address: Option<String>, labels: String, now: i64) -> Self {
        Self {
            id: HostId::new(),
            status: HostStatus::Pending,
            address,
            runtime: None,
            arch: None,
            cpu_count: None,
            memory_mb: None,
            disk_mb: None,
            sandbox_capacity: None,
            live_sandboxes: 0,
            free_memory_mb: None,
            free_disk_mb: None,
            labels,
            agent_version: None,
            templates: Vec::new(),
            last_heartbeat_at: None,
            created_at: now,
            updated_at: now,
        }
    }
}

const COLUMNS: &str = "id, status, address, runtime, arch, cpu_count, memory_mb, disk_mb, \
     sandbox_capacity, live_sandboxes, free_memory_mb, free_disk_mb, labels, agent_version, \
     templates, last_heartbeat_at, created_at, updated_at";

fn from_row(row: sqlx::any::AnyRow) -> Result<Host, StoreError> {
    let id: String = row.try_get("id")?;
    let status: String = row.try_get("status")?;
    let templates: String = row.try_get("templates")?;
    Ok(Host {
        id: parse_id("hosts", &id)?,
        status: status.parse().map_err(|e| StoreError::Corrupt {
            table: "hosts",
            detail: format!("{e}"),
        })?,
        address: row.try_get("address")?,
        runtime: row.try_get("runtime")?,
        arch: row.try_get("arch")?,
        cpu_count: row.try_get("cpu_count")?,
        memory_mb: row.try_get("memory_mb")?,
        disk_mb: row.try_get("disk_mb")?,
        sandbox_capacity: row.try_get("sandbox_capacity")?,
        live_sandboxes: row.try_get("live_sandboxes")?,
        free_memory_mb: row.try_get("free_memory_mb")?,
        free_disk_mb: row.try_get("free_disk_mb")?,
        labels: row.try_get("labels")?,
        agent_version: row.try_get("agent_version")?,
        templates: serde_json::from_str(&templates).map_err(|e| StoreError::Corrupt {
            table: "hosts",
            detail: format!("templates: {e}"),
        })?,
        last_heartbeat_at: row.try_get("last_heartbeat_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn templates_json(t: &[String]) -> String {
    serde_json::to_string(t).expect("a list of strings always serializes")
}

/// Inserts a host.
pub async fn insert<'e, E: Executor<'e, Database = Any>>(
    db: E,
    h: &Host,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO hosts (id, status, address, labels, live_sandboxes, templates, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(h.id.to_string())
    .bind(h.status.as_str())
    .bind(h.address.clone())
    .bind(&h.labels)
    .bind(h.live_sandboxes)
    .bind(templates_json(&h.templates))
    .bind(h.created_at)
    .bind(h.updated_at)
    .execute(db)
    .await?;
    Ok(())
}

/// The host with this id (deleted ones included).
pub async fn by_id<'e, E: Executor<'e, Database = Any>>(
    db: E,
    id: HostId,
) -> Result<Option<Host>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM hosts WHERE id = $1");
    sqlx::query(&sql)
        .bind(id.to_string())
        .fetch_optional(db)
        .await?
        .map(from_row)
        .transpose()
}

/// Every host not deleted, oldest first.
pub async fn list<'e, E: Executor<'e, Database = Any>>(db: E) -> Result<Vec<Host>, StoreError> {
    let sql =
        format!("SELECT {COLUMNS} FROM hosts WHERE status <> 'deleted' ORDER BY created_at, id");
    sqlx::query(&sql)
        .fetch_all(db)
        .await?
        .into_iter()
        .map(from_row)
        .collect()
}

/// Hosts in `status`.
pub async fn with_status<'e, E: Executor<'e, Database = Any>>(
    db: E,
    status: HostStatus,
) -> Result<Vec<Host>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM hosts WHERE status = $1 ORDER BY created_at, id");
    sqlx::query(&sql)
        .bind(status.as_str())
        .fetch_all(db)
        .await?
        .into_iter()
        .map(from_row)
        .collect()
}

/// What an agent reports when it registers.
#[derive(Debug, Clone)]
pub struct Specs {
    /// `host:port` the control plane dials.
    pub address: String,
    /// CPU architecture.
    pub arch: String,
    /// CPUs.
    pub cpu_count: i64,
    /// Memory, MiB.
    pub memory_mb: i64,
    /// Disk, MiB.
    pub disk_mb: i64,
    /// `gvisor` or `firecracker`.
    pub runtime: String,
    /// Agent version.
    pub agent_version: String,
    /// Most sandboxes.
    pub sandbox_capacity: i64,
    /// Template names present.
    pub templates: Vec<String>,
}

/// Records the specs of a (re-)registering host and marks it `online`.
pub async fn register<'e, E: Executor<'e, Database = Any>>(
    db: E,
    id: HostId,
    s: &Specs,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE hosts SET status = 'online', address = $2, arch = $3, cpu_count = $4, \
         memory_mb = $5, disk_mb = $6, runtime = $7, agent_version = $8, \
         sandbox_capacity = $9, templates = $10, last_heartbeat_at = $11, updated_at = $11 \
         WHERE id = $1 AND status <> 'deleted'",
    )
    .bind(id.to_string())
    .bind(&s.address)
    .bind(&s.arch)
    .bind(s.cpu_count)
    .bind(s.memory_mb)
    .bind(s.disk_mb)
    .bind(&s.runtime)
    .bind(&s.agent_version)
    .bind(s.sandbox_capacity)
    .bind(templates_json(&s.templates))
    .bind(now)
    .execute(db)
    .await?;
    Ok(())
}

/// What a heartbeat reports.
#[derive(Debug, Clone)]
pub struct Load {
    /// Sandboxes held.
    pub live_sandboxes: i64,
    /// Free memory, MiB.
    pub free_memory_mb: i64,
    /// Free disk, MiB.
    pub free_disk_mb: i64,
    /// Most sandboxes.
    pub sandbox_capacity: i64,
    /// Template names present.
    pub templates: Vec<String>,
}

/// Records a heartbeat: load, templates, time; an `unreachable` or `pending` host becomes
/// `online` (a draining one stays draining). Returns false when the host is deleted or
/// unknown.
pub async fn heartbeat<'e, E: Executor<'e, Database = Any>>(
    db: E,
    id: HostId,
    l: &Load,
    now: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE hosts SET live_sandboxes = $2, free_memory_mb = $3, free_disk_mb = $4, \
         sandbox_capacity = $5, templates = $6, last_heartbeat_at = $7, updated_at = $7, \
         status = CASE WHEN status = 'draining' THEN 'draining' ELSE 'online' END \
         WHERE id = $1 AND status <> 'deleted'",
    )
    .bind(id.to_string())
    .bind(l.live_sandboxes)
    .bind(l.free_memory_mb)
    .bind(l.free_disk_mb)
    .bind(l.sandbox_capacity)
    .bind(templates_json(&l.templates))
    .bind(now)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Sets a host's status if it currently is `from` (compare-and-set; false if it was not).
pub async fn set_status<'e, E: Executor<'e, Database = Any>>(
    db: E,
    id: HostId,
    from: HostStatus,
    to: HostStatus,
    now: i64,
) -> Result<bool, StoreError> {
    let done =
        sqlx::query("UPDATE hosts SET status = $3, updated_at = $4 WHERE id = $1 AND status = $2")
            .bind(id.to_string())
            .bind(from.as_str())
            .bind(to.as_str())
            .bind(now)
            .execute(db)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// Online hosts whose last heartbeat is older than `before` (unix ms) become `unreachable`.
/// Returns their ids.
pub async fn online_silent_since<'e, E: Executor<'e, Database = Any>>(
    db: E,
    before: i64,
) -> Result<Vec<HostId>, StoreError> {
    let rows = sqlx::query(
        "SELECT id FROM hosts WHERE status IN ('online', 'draining') \
         AND (last_heartbeat_at IS NULL OR last_heartbeat_at < $1)",
    )
    .bind(before)
    .fetch_all(db)
    .await?;
    rows.into_iter()
        .map(|r| {
            let id: String = r.try_get("id")?;
            parse_id("hosts", &id)
        })
        .collect()
}

// ---- registration tokens ----

/// Stores a registration token (its hash).
pub async fn insert_registration_token<'e, E: Executor<'e, Database = Any>>(
    db: E,
    host_id: HostId,
    token_hash: &str,
    created_by: Option<UserId>,
    expires_at: i64,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO host_registration_tokens (id, token_hash, host_id, created_by, \
         expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(token_hash)
    .bind(host_id.to_string())
    .bind(created_by.map(|u| u.to_string()))
    .bind(expires_at)
    .bind(now)
    .execute(db)
    .await?;
    Ok(())
}

/// Expires every unused registration token of a host.
pub async fn expire_registration_tokens<'e, E: Executor<'e, Database = Any>>(
    db: E,
    host_id: HostId,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE host_registration_tokens SET expires_at = $2 \
         WHERE host_id = $1 AND used_at IS NULL AND expires_at > $2",
    )
    .bind(host_id.to_string())
    .bind(now)
    .execute(db)
    .await?;
    Ok(())
}

/// Consumes an unused, unexpired registration token; returns its host, or `None` when the
/// token is unknown, used, expired, or its host is deleted.
pub async fn consume_registration_token(
    conn: &mut sqlx::AnyConnection,
    token_hash: &str,
    now: i64,
) -> Result<Option<HostId>, StoreError> {
    let done = sqlx::query(
        "UPDATE host_registration_tokens SET used_at = $2 \
         WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
    )
    .bind(token_hash)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() != 1 {
        return Ok(None);
    }
    let row = sqlx::query(
        "SELECT t.host_id FROM host_registration_tokens t JOIN hosts h ON h.id = t.host_id \
         WHERE t.token_hash = $1 AND h.status <> 'deleted'",
    )
    .bind(token_hash)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| {
        let id: String = r.try_get("host_id")?;
        parse_id("host_registration_tokens", &id)
    })
    .transpose()
}

// ---- refresh tokens ----

/// A stored refresh token.
#[derive(Debug, Clone)]
pub struct RefreshToken {
    /// Its id (also carried by host JWTs issued with it).
    pub id: String,
    /// Its host.
    pub host_id: HostId,
    /// Unix ms.
    pub expires_at: i64,
    /// Unix ms; set once it was rotated or revoked.
    pub revoked_at: Option<i64>,
}

/// Stores a refresh token (its hash); `replaces` is the token it rotates.
pub async fn insert_refresh_token<'e, E: Executor<'e, Database = Any>>(
    db: E,
    id: &str,
    host_id: HostId,
    token_hash: &str,
    replaces: Option<&str>,
    expires_at: i64,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO host_refresh_tokens (id, host_id, token_hash, replaces_id, expires_at, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(host_id.to_string())
    .bind(token_hash)
    .bind(replaces.map(str::to_owned))
    .bind(expires_at)
    .bind(now)
    .execute(db)
    .await?;
    Ok(())
}

fn refresh_from_row(r: sqlx::any::AnyRow) -> Result<RefreshToken, StoreError> {
    let host_id: String = r.try_get("host_id")?;
    Ok(RefreshToken {
        id: r.try_get("id")?,
        host_id: parse_id("host_refresh_tokens", &host_id)?,
        expires_at: r.try_get("expires_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

/// The refresh token with this hash.
pub async fn refresh_by_hash<'e, E: Executor<'e, Database = Any>>(
    db: E,
    token_hash: &str,
) -> Result<Option<RefreshToken>, StoreError> {
    sqlx::query(
        "SELECT id, host_id, expires_at, revoked_at FROM host_refresh_tokens \
         WHERE token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(db)
    .await?
    .map(refresh_from_row)
    .transpose()
}

/// The refresh token with this id.
pub async fn refresh_by_id<'e, E: Executor<'e, Database = Any>>(
    db: E,
    id: &str,
) -> Result<Option<RefreshToken>, StoreError> {
    sqlx::query("SELECT id, host_id, expires_at, revoked_at FROM host_refresh_tokens WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await?
        .map(refresh_from_row)
        .transpose()
}

/// Revokes one refresh token if still live; false when it already was (a concurrent use).
pub async fn revoke_refresh_token<'e, E: Executor<'e, Database = Any>>(
    db: E,
    id: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE host_refresh_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
    )
    .bind(id)
    .bind(now)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Revokes every refresh token of a host (reuse detected, credentials revoked, or host
/// deleted); host JWTs issued with them stop working at once. Returns how many were live.
pub async fn revoke_all_refresh_tokens<'e, E: Executor<'e, Database = Any>>(
    db: E,
    host_id: HostId,
    now: i64,
) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "UPDATE host_refresh_tokens SET revoked_at = $2 \
         WHERE host_id = $1 AND revoked_at IS NULL",
    )
    .bind(host_id.to_string())
    .bind(now)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

// ---- sandboxes, as seen from their host ----

/// A sandbox row as the monitor and host delete see it.
#[derive(Debug, Clone)]
pub struct HostedSandbox {
    /// Sandbox id (the same string the agent knows it by).
    pub id: String,
    /// Status string (`SandboxStatus::as_str`).
    pub status: String,
    /// Unix ms of the last change.
    pub updated_at: i64,
}

/// Sandboxes of a host whose status is one of `statuses`.
pub async fn sandboxes_on_host<'e, E: Executor<'e, Database = Any>>(
    db: E,
    host_id: HostId,
    statuses: &[&str],
) -> Result<Vec<HostedSandbox>, StoreError> {
    let all =
        sqlx::query("SELECT id, status, updated_at FROM sandboxes WHERE host_id = $1 ORDER BY id")
            .bind(host_id.to_string())
            .fetch_all(db)
            .await?;
    let mut out = Vec::new();
    for r in all {
        let s = HostedSandbox {
            id: r.try_get("id")?,
            status: r.try_get("status")?,
            updated_at: r.try_get("updated_at")?,
        };
        if statuses.contains(&s.status.as_str()) {
            out.push(s);
        }
    }
    Ok(out)
}

/// The status of one sandbox, by id (any host), if the row exists.
pub async fn sandbox_status<'e, E: Executor<'e, Database = Any>>(
    db: E,
    id: &str,
) -> Result<Option<String>, StoreError> {
    Ok(sandbox_row(db, id).await?.map(|(status, _)| status))
}

/// Status and last change (unix ms) of one sandbox, by id (any host), if the row exists.
pub async fn sandbox_row<'e, E: Executor<'e, Database = Any>>(
    db: E,
    id: &str,
) -> Result<Option<(String, i64)>, StoreError> {
    let row = sqlx::query("SELECT status, updated_at FROM sandboxes WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await?;
    row.map(|r| Ok((r.try_get("status")?, r.try_get("updated_at")?)))
        .transpose()
}

/// Compare-and-set of a sandbox status: only if it still is `from` and, when given, its row
/// has not changed since `unchanged_since` (unix ms). Stopping also sets `stopped_at`.
pub async fn set_sandbox_status<'e, E: Executor<'e, Database = Any>>(
    db: E,
    id: &str,
    from: &str,
    to: &str,
    unchanged_since: Option<i64>,
    now: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE sandboxes SET status = $3, updated_at = $4, \
         stopped_at = CASE WHEN $3 = 'stopped' THEN $4 ELSE stopped_at END \
         WHERE id = $1 AND status = $2 AND ($5 < 0 OR updated_at <= $5)",
    )
    .bind(id)
    .bind(from)
    .bind(to)
    .bind(now)
    .bind(unchanged_since.unwrap_or(-1))
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Every `running`/`paused` sandbox of a host becomes `missing` (host unreachable).
pub async fn mark_host_sandboxes_missing<'e, E: Executor<'e, Database = Any>>(
    db: E,
    host_id: HostId,
    now: i64,
) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "UPDATE sandboxes SET status = 'missing', updated_at = $2 \
         WHERE host_id = $1 AND status IN ('running', 'paused')",
    )
    .bind(host_id.to_string())
    .bind(now)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}
