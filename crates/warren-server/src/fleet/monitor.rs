//! `HostMonitor`: keeps the database true to the hosts.
//!
//! - **Passive**: a host whose last heartbeat is older than `heartbeat_timeout` becomes
//!   `unreachable` and its `running`/`paused` sandboxes `missing` (reversible).
//! - **Active**, every `monitor_interval`, per `online` or `unreachable` host that answers
//!   `ListSandboxes` (the agent lists every sandbox it holds, running or paused): a `missing`
//!   sandbox it holds goes back to the status it reports; a `running`/`paused`/`missing`
//!   sandbox it does not hold is `stopped` (destroyed, or reaped by its TTL); a sandbox it
//!   holds that the database does not know, or knows as `stopped`/`error`, is an orphan and is
//!   destroyed on the host.
//!
//! A row changed less than `reconcile_grace` ago is left alone (except `missing` coming
//! back): the control plane writes the intended status *before* the host acts, so a pause or
//! resume in flight must not be "corrected" under it. Every write is a compare-and-set on the
//! status the decision was made from.
//!
//! One runner per cluster: on PostgreSQL the pass runs only while this replica holds a
//! session advisory lock (on a connection kept for it); on SQLite there is one process, so
//! the lease is trivially held.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use sqlx::Row;
use warren_proto::hostagent::v1 as pb;
use warren_types::{HostId, HostStatus, SandboxStatus};

use crate::AppState;
use crate::error::ApiError;
use crate::store::{self, Dialect, StoreError, now_ms};

/// Key of the PostgreSQL advisory lock of the monitor ("warren-m").
const LEASE_KEY: i64 = 0x7761_7272_656e_2d6d;
/// Bound on one agent call of the monitor.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts the control plane's background loops (today: the host monitor); they stop when
/// `shutdown` resolves. `warren server` calls this next to [`crate::serve`].
pub fn spawn_background(
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        tokio::select! {
            () = run(state) => {}
            () = shutdown => tracing::debug!("host monitor stopped"),
        }
    })
}

/// The monitor loop: one pass per interval while the lease is held.
async fn run(state: AppState) {
    let mut lease = Lease::default();
    let mut tick = tokio::time::interval(state.config().monitor_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match lease.hold(&state).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "host monitor: lease");
                continue;
            }
        }
        if let Err(e) = pass(&state).await {
            tracing::warn!(error = %e, "host monitor pass failed");
        }
    }
}

/// The cluster-wide lease of the monitor: at most one replica holds it at a time.
#[derive(Default)]
pub struct Lease {
    /// PostgreSQL: the connection holding the session advisory lock (released when the
    /// connection closes, e.g. when the replica dies).
    conn: Option<sqlx::pool::PoolConnection<sqlx::Any>>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("held", &self.conn.is_some())
            .finish()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // Never hand a locked session back to the pool: closing it releases the lock.
        if let Some(conn) = self.conn.take() {
            drop(conn.detach());
        }
    }
}

impl Lease {
    /// Takes the lease if free, or confirms this replica still holds it; false when another
    /// replica holds it. Always true on SQLite (one process owns the file).
    pub async fn hold(&mut self, state: &AppState) -> Result<bool, StoreError> {
        if state.store().dialect() == Dialect::Sqlite {
            return Ok(true);
        }
        if let Some(conn) = self.conn.as_mut() {
            // Still ours while the session lives.
            if sqlx::query("SELECT 1").execute(&mut **conn).await.is_ok() {
                return Ok(true);
            }
            if let Some(dead) = self.conn.take() {
                drop(dead.detach());
            }
        }
        let mut conn = state.store().pool().acquire().await?;
        let row = sqlx::query("SELECT pg_try_advisory_lock($1) AS held")
            .bind(LEASE_KEY)
            .fetch_one(&mut *conn)
            .await?;
        let held: bool = row.try_get("held")?;
        if held {
            tracing::info!("host monitor lease acquired");
            self.conn = Some(conn);
        }
        Ok(held)
    }
}

/// One full pass: passive timeouts, then every reachable host's list.
pub async fn pass(state: &AppState) -> Result<(), StoreError> {
    let pool = state.store().pool();
    let now = now_ms();
    let timeout = i64::try_from(state.config().heartbeat_timeout.as_millis()).unwrap_or(i64::MAX);
    for host in store::host::online_silent_since(pool, now - timeout).await? {
        mark_unreachable(state, host).await?;
    }
    let mut hosts = store::host::with_status(pool, HostStatus::Online).await?;
    hosts.extend(store::host::with_status(pool, HostStatus::Unreachable).await?);
    hosts.extend(store::host::with_status(pool, HostStatus::Draining).await?);
    // Every host is asked at once: a dead one (connect timeout) must not delay the others.
    let lists = futures::future::join_all(hosts.iter().map(|h| list_on_host(state, h.id))).await;
    for (host, listed) in hosts.iter().zip(lists) {
        match listed {
            Ok(listed) => reconcile(state, host.id, &listed).await?,
            Err(e) => tracing::debug!(host_id = %host.id, error = %e, "host monitor: list failed"),
        }
    }
    Ok(())
}

async fn mark_unreachable(state: &AppState, host: HostId) -> Result<(), StoreError> {
    let pool = state.store().pool();
    let now = now_ms();
    let mut changed = false;
    for from in [HostStatus::Online, HostStatus::Draining] {
        changed |= store::host::set_status(pool, host, from, HostStatus::Unreachable, now).await?;
    }
    if changed {
        let n = store::host::mark_host_sandboxes_missing(pool, host, now).await?;
        tracing::warn!(host_id = %host, sandboxes_missing = n, "host unreachable: no heartbeat");
    }
    Ok(())
}

/// What the agent says about one sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reported {
    /// Running.
    Running,
    /// Paused.
    Paused,
    /// In an operation (creating, pausing, resuming, destroying) or failed: present, but
    /// no status to copy.
    Busy,
}

/// Why the agent's list could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// No client for the host.
    #[error(transparent)]
    Fleet(#[from] crate::fleet::pool::FleetError),
    /// The RPC failed.
    #[error("list sandboxes on host {host_id}: {message}")]
    Rpc {
        /// The host.
        host_id: HostId,
        /// What failed.
        message: String,
    },
}

/// Every sandbox the host holds.
pub async fn list_on_host(
    state: &AppState,
    host: HostId,
) -> Result<Vec<(String, Reported)>, ListError> {
    let client = state.pool().client(host).await?;
    let rpc = client.rpc();
    let call = rpc.list_sandboxes(pb::ListSandboxesRequest::default());
    let resp = match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(Ok(r)) => r.into_owned(),
        Ok(Err(e)) => {
            return Err(ListError::Rpc {
                host_id: host,
                message: e.to_string(),
            });
        }
        Err(_) => {
            return Err(ListError::Rpc {
                host_id: host,
                message: "timed out".into(),
            });
        }
    };
    Ok(resp
        .sandboxes
        .into_iter()
        .map(|s| {
            let r = match s.status.as_known() {
                Some(pb::SandboxStatus::SANDBOX_STATUS_RUNNING) => Reported::Running,
                Some(pb::SandboxStatus::SANDBOX_STATUS_PAUSED) => Reported::Paused,
                _ => Reported::Busy,
            };
            (s.sandbox_id, r)
        })
        .collect())
}

/// Applies a host's sandbox reports (heartbeat or list): `missing` ones come back to the
/// reported status; a `running`/`paused` row that disagrees with the host and has not changed
/// within the grace period takes the host's status (e.g. paused by PauseAll).
#[tracing::instrument(skip(state, reported), fields(host_id = %host))]
pub async fn apply_reported(
    state: &AppState,
    host: HostId,
    reported: &[(String, SandboxStatus)],
) -> Result<(), ApiError> {
    if reported.is_empty() {
        return Ok(());
    }
    let pool = state.store().pool();
    let rows =
        store::host::sandboxes_on_host(pool, host, &["running", "paused", "missing"]).await?;
    let rows: HashMap<&str, &store::host::HostedSandbox> =
        rows.iter().map(|r| (r.id.as_str(), r)).collect();
    let now = now_ms();
    let settled = now - grace_ms(state);
    for (id, status) in reported {
        let Some(row) = rows.get(id.as_str()) else {
            continue;
        };
        let to = status.as_str();
        if !legal(&row.status, *status) {
            continue;
        }
        let unchanged_since = (row.status != "missing").then_some(settled);
        if store::host::set_sandbox_status(pool, id, &row.status, to, unchanged_since, now).await? {
            tracing::info!(host_id = %host, sandbox_id = %id, from = %row.status, to,
                "sandbox status follows its host");
        }
    }
    Ok(())
}

/// Whether the stored status string may become `to` (the one transition table, in
/// `warren-types`); unknown strings never move.
fn legal(from: &str, to: SandboxStatus) -> bool {
    from.parse::<SandboxStatus>()
        .is_ok_and(|from| from.can_become(to))
}

fn grace_ms(state: &AppState) -> i64 {
    i64::try_from(state.config().reconcile_grace.as_millis()).unwrap_or(i64::MAX / 2)
}

/// Compares a host's complete list with the database and repairs both sides.
#[tracing::instrument(skip(state, listed), fields(host_id = %host))]
pub async fn reconcile(
    state: &AppState,
    host: HostId,
    listed: &[(String, Reported)],
) -> Result<(), StoreError> {
    let pool = state.store().pool();
    let statuses: Vec<(String, SandboxStatus)> = listed
        .iter()
        .filter_map(|(id, r)| match r {
            Reported::Running => Some((id.clone(), SandboxStatus::Running)),
            Reported::Paused => Some((id.clone(), SandboxStatus::Paused)),
            Reported::Busy => None,
        })
        .collect();
    if let Err(e) = apply_reported(state, host, &statuses).await {
        tracing::warn!(host_id = %host, error = %e, "host monitor: applying reports");
    }
    let on_host: HashMap<&str, Reported> = listed.iter().map(|(i, r)| (i.as_str(), *r)).collect();
    let now = now_ms();
    let settled = now - grace_ms(state);
    // Gone: the database thinks the host holds it, the host does not.
    for row in store::host::sandboxes_on_host(pool, host, &["running", "paused", "missing"]).await?
    {
        if on_host.contains_key(row.id.as_str()) || !legal(&row.status, SandboxStatus::Stopped) {
            continue;
        }
        if store::host::set_sandbox_status(
            pool,
            &row.id,
            &row.status,
            "stopped",
            Some(settled),
            now,
        )
        .await?
        {
            tracing::info!(host_id = %host, sandbox_id = %row.id, from = %row.status,
                "sandbox gone from its host: stopped");
        }
    }
    // Orphans: the host holds it, the database does not (or says it ended).
    for (id, r) in listed {
        if *r == Reported::Busy {
            continue;
        }
        let row = store::host::sandbox_row(pool, id).await?;
        // Unknown: the control plane writes a row before it asks a host to create, so the
        // host made it behind our back. Ended: give the destroy that ended it (in flight
        // right now, perhaps) the grace period first.
        let orphan = match &row {
            None => true,
            Some((s, updated_at)) => (s == "stopped" || s == "error") && *updated_at <= settled,
        };
        let status = row.map(|(s, _)| s);
        if orphan {
            tracing::warn!(host_id = %host, sandbox_id = %id, db_status = ?status,
                "orphan sandbox on host: destroying");
            destroy_on_host(state, host, id).await;
        }
    }
    Ok(())
}

/// Destroys a sandbox on its host, best effort (logged, never fails the caller): used by
/// host delete and orphan cleanup. Runs on its own task so a dropped request still finishes.
pub async fn destroy_on_host(state: &AppState, host: HostId, sandbox_id: &str) {
    let state = state.clone();
    let id = sandbox_id.to_owned();
    let task = tokio::spawn(async move {
        let client = match state.pool().client(host).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(host_id = %host, sandbox_id = %id, error = %e,
                    "destroy on host: no client");
                return;
            }
        };
        let rpc = client.rpc();
        let call = rpc.destroy_sandbox(pb::DestroySandboxRequest {
            sandbox_id: id.clone(),
            ..Default::default()
        });
        match tokio::time::timeout(Duration::from_secs(30), call).await {
            Ok(Ok(_)) => tracing::info!(host_id = %host, sandbox_id = %id, "destroyed on host"),
            Ok(Err(e)) if e.code == warren_proto::connectrpc::ErrorCode::NotFound => {}
            Ok(Err(e)) => tracing::warn!(host_id = %host, sandbox_id = %id, error = %e,
                "destroy on host failed"),
            Err(_) => tracing::warn!(host_id = %host, sandbox_id = %id,
                "destroy on host timed out"),
        }
    });
    let _ = task.await;
}

/// Drops what the control plane caches about a deleted host (client, minted token).
pub fn forget_host(state: &AppState, host: HostId) {
    state.pool().evict(host);
    state.agent_signer().forget(host);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_moves_only_legal_statuses() {
        let check = |from: &str, to: SandboxStatus, want: bool| {
            assert_eq!(legal(from, to), want, "{from} -> {}", to.as_str());
        };
        check("missing", SandboxStatus::Running, true);
        check("missing", SandboxStatus::Paused, true);
        check("running", SandboxStatus::Paused, true);
        check("paused", SandboxStatus::Running, true);
        check("running", SandboxStatus::Stopped, true);
        check("missing", SandboxStatus::Stopped, true);
        check("running", SandboxStatus::Running, false);
        check("stopped", SandboxStatus::Running, false);
        check("error", SandboxStatus::Paused, false);
        check("pending", SandboxStatus::Paused, false);
        check("bogus", SandboxStatus::Running, false);
    }
}
