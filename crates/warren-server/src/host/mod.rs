//! Hosts: the machines running `warren agent`. Admins create a host and hand its one-time
//! registration token to the agent; the agent registers (specs in, host JWT + refresh token +
//! the control plane's agent-signing public key out), then heartbeats with its load and the
//! sandboxes it holds. Refresh rotates issue-then-revoke in one transaction; a reused (already
//! revoked) refresh token revokes the host's whole chain. Every bad host credential is a 401,
//! never a 400 or 500.
//!
//! Routes: `POST/GET /v1/hosts`, `GET/DELETE /v1/hosts/{id}`, `POST /v1/hosts/{id}/token`,
//! `POST /v1/hosts/{id}/revoke` (admins); `POST /v1/hosts/register`,
//! `POST /v1/hosts/auth/refresh` (token in the body), `POST /v1/hosts/heartbeat` (host JWT).

pub mod token;

use std::collections::BTreeMap;

use axum::extract::{FromRequestParts, RawQuery, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use warren_types::{HostId, HostStatus, SandboxStatus};

use crate::AppState;
use crate::auth::admin::AdminAuth;
use crate::error::{ApiError, ErrorBody, Json, Path, path_id};
use crate::store::host::{Host, Load, Specs};
use crate::store::{self, StoreError, now_ms};

fn rfc3339(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// A host, as admins see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct HostDto {
    /// Host id.
    pub id: String,
    /// `pending`, `online`, `unreachable`, `draining` or `deleted`.
    pub status: String,
    /// `host:port` the control plane dials.
    pub address: Option<String>,
    /// `gvisor` or `firecracker`.
    pub runtime: Option<String>,
    /// CPU architecture.
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
    /// Labels.
    #[schema(value_type = Object)]
    pub labels: serde_json::Value,
    /// Agent version.
    pub agent_version: Option<String>,
    /// Templates present on the host.
    pub templates: Vec<String>,
    /// Last heartbeat.
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

impl From<&Host> for HostDto {
    fn from(h: &Host) -> Self {
        Self {
            id: h.id.to_string(),
            status: h.status.as_str().to_owned(),
            address: h.address.clone(),
            runtime: h.runtime.clone(),
            arch: h.arch.clone(),
            cpu_count: h.cpu_count,
            memory_mb: h.memory_mb,
            disk_mb: h.disk_mb,
            sandbox_capacity: h.sandbox_capacity,
            live_sandboxes: h.live_sandboxes,
            free_memory_mb: h.free_memory_mb,
            labels: serde_json::from_str(&h.labels).unwrap_or_else(|_| serde_json::json!({})),
            agent_version: h.agent_version.clone(),
            templates: h.templates.clone(),
            last_heartbeat_at: h.last_heartbeat_at.map(rfc3339),
            created_at: rfc3339(h.created_at),
        }
    }
}

/// Body of `POST /v1/hosts`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateHostRequest {
    /// `host:port` the control plane will dial (the agent may report another at registration).
    #[serde(default)]
    pub address: Option<String>,
    /// Free-form labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Answer of `POST /v1/hosts`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreateHostResponse {
    /// The new host (`pending`).
    pub host: HostDto,
    /// One-time registration token for `warren agent --register`, shown once.
    pub registration_token: String,
    /// When the token expires (1 h).
    pub token_expires_at: DateTime<Utc>,
}

/// Answer of `POST /v1/hosts/{id}/token`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// One-time registration token, shown once.
    pub registration_token: String,
    /// When it expires.
    pub token_expires_at: DateTime<Utc>,
}

/// Body of `POST /v1/hosts/register`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterRequest {
    /// The registration token.
    pub token: String,
    /// `host:port` the control plane dials.
    pub address: String,
    /// CPU architecture.
    #[serde(default)]
    pub arch: String,
    /// CPUs.
    #[serde(default)]
    pub cpu_count: u32,
    /// Memory, MiB.
    #[serde(default)]
    pub memory_mb: u64,
    /// Disk, MiB.
    #[serde(default)]
    pub disk_mb: u64,
    /// `gvisor` or `firecracker`.
    pub runtime: String,
    /// Agent version.
    #[serde(default)]
    pub agent_version: String,
    /// Most sandboxes.
    #[serde(default)]
    pub sandbox_capacity: u32,
    /// Templates present.
    #[serde(default)]
    pub templates: Vec<String>,
}

/// Credentials a host receives at registration and at every refresh.
#[derive(Debug, Serialize, ToSchema)]
pub struct HostCredentials {
    /// The host's id.
    pub host_id: String,
    /// Host JWT for heartbeats (`Authorization: Bearer`).
    pub host_token: String,
    /// Its expiry.
    pub host_token_expires_at: DateTime<Utc>,
    /// Refresh token (rotated at every use).
    pub refresh_token: String,
    /// Its expiry.
    pub refresh_token_expires_at: DateTime<Utc>,
    /// The control plane's Ed25519 public key (base64 of 32 bytes): the agent accepts RPCs
    /// only with tokens it verifies.
    pub control_plane_key: String,
}

/// Body of `POST /v1/hosts/auth/refresh`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RefreshRequest {
    /// The current refresh token.
    pub refresh_token: String,
}

/// One sandbox a heartbeat reports.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ReportedSandbox {
    /// Its id.
    pub sandbox_id: String,
    /// `running` or `paused`.
    pub status: String,
}

/// Body of `POST /v1/hosts/heartbeat`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct HeartbeatRequest {
    /// Sandboxes held.
    #[serde(default)]
    pub live_sandboxes: u32,
    /// Free memory, MiB.
    #[serde(default)]
    pub free_memory_mb: u64,
    /// Free disk, MiB.
    #[serde(default)]
    pub free_disk_mb: u64,
    /// Most sandboxes.
    #[serde(default)]
    pub sandbox_capacity: u32,
    /// Templates present.
    #[serde(default)]
    pub templates: Vec<String>,
    /// Every sandbox held, running or paused.
    #[serde(default)]
    pub sandboxes: Vec<ReportedSandbox>,
}

/// Query of `DELETE /v1/hosts/{id}`.
#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct DeleteQuery {
    /// Destroy the host's sandboxes instead of refusing.
    #[serde(default)]
    pub force: bool,
}

impl DeleteQuery {
    /// Parses the query string ourselves so a bad value answers in our error shape.
    fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        let mut q = DeleteQuery::default();
        for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, "true"));
            if k == "force" {
                q.force = match v {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => return Err(ApiError::field("force", "must be true or false")),
                };
            }
        }
        Ok(q)
    }
}

async fn load_host(state: &AppState, raw_id: &str) -> Result<Host, ApiError> {
    let id: HostId = path_id("host", raw_id)?;
    match store::host::by_id(state.store().pool(), id).await? {
        Some(h) if h.status != HostStatus::Deleted => Ok(h),
        _ => Err(ApiError::NotFound(format!("host {id} not found"))),
    }
}

/// Issues a fresh registration token for `host` (expiring unused older ones).
async fn new_registration_token(
    state: &AppState,
    host: HostId,
    admin: &AdminAuth,
) -> Result<(String, i64), ApiError> {
    let now = now_ms();
    let tok = token::generate(token::REGISTRATION_PREFIX);
    let ttl = state.config().registration_token_ttl;
    let expires = now + i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2);
    let mut tx = state
        .store()
        .pool()
        .begin()
        .await
        .map_err(StoreError::from)?;
    store::host::expire_registration_tokens(&mut *tx, host, now).await?;
    store::host::insert_registration_token(
        &mut *tx,
        host,
        &token::hash(&tok),
        Some(admin.user_id),
        expires,
        now,
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok((tok, expires))
}

fn validate_address(field: &str, a: &str) -> Result<String, ApiError> {
    let a = a.trim();
    let ok = a.rsplit_once(':').is_some_and(|(h, p)| {
        !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p != 0) && !a.contains(['/', ' '])
    });
    if ok {
        Ok(a.to_owned())
    } else {
        Err(ApiError::field(field, "must be host:port"))
    }
}

/// Create a host and its one-time registration token (admins).
#[utoipa::path(
    post, path = "/v1/hosts", tag = "hosts",
    security(("bearer" = [])),
    request_body = CreateHostRequest,
    responses(
        (status = 201, description = "Host created", body = CreateHostResponse),
        (status = 400, description = "Validation failed", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Not a platform admin", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    admin: AdminAuth,
    Json(req): Json<CreateHostRequest>,
) -> Result<(StatusCode, axum::Json<CreateHostResponse>), ApiError> {
    let address = req
        .address
        .as_deref()
        .map(|a| validate_address("address", a))
        .transpose()?;
    let labels = serde_json::to_string(&req.labels)
        .map_err(|e| ApiError::Internal(format!("labels: {e}")))?;
    let host = Host::new_pending(address, labels, now_ms());
    store::host::insert(state.store().pool(), &host).await?;
    let (tok, expires) = new_registration_token(&state, host.id, &admin).await?;
    tracing::info!(host_id = %host.id, "host created");
    Ok((
        StatusCode::CREATED,
        axum::Json(CreateHostResponse {
            host: HostDto::from(&host),
            registration_token: tok,
            token_expires_at: rfc3339(expires),
        }),
    ))
}

/// A fresh registration token for a host (admins); unused older ones stop working.
#[utoipa::path(
    post, path = "/v1/hosts/{host_id}/token", tag = "hosts",
    security(("bearer" = [])),
    params(("host_id" = String, Path, description = "Host id")),
    responses(
        (status = 201, description = "Token issued", body = TokenResponse),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Not a platform admin", body = ErrorBody),
        (status = 404, description = "No such host", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(host_id = %host_id))]
pub async fn new_token(
    State(state): State<AppState>,
    admin: AdminAuth,
    Path(host_id): Path<String>,
) -> Result<(StatusCode, axum::Json<TokenResponse>), ApiError> {
    let host = load_host(&state, &host_id).await?;
    let (tok, expires) = new_registration_token(&state, host.id, &admin).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(TokenResponse {
            registration_token: tok,
            token_expires_at: rfc3339(expires),
        }),
    ))
}

/// Revoke a host's credentials (admins): its refresh tokens and host JWTs stop working at
/// once; the agent pauses its sandboxes until it registers again with a fresh token.
#[utoipa::path(
    post, path = "/v1/hosts/{host_id}/revoke", tag = "hosts",
    security(("bearer" = [])),
    params(("host_id" = String, Path, description = "Host id")),
    responses(
        (status = 204, description = "Credentials revoked"),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Not a platform admin", body = ErrorBody),
        (status = 404, description = "No such host", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(host_id = %host_id))]
pub async fn revoke(
    State(state): State<AppState>,
    _admin: AdminAuth,
    Path(host_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let host = load_host(&state, &host_id).await?;
    let pool = state.store().pool();
    let now = now_ms();
    let n = store::host::revoke_all_refresh_tokens(pool, host.id, now).await?;
    // It can no longer heartbeat: stop placing sandboxes there now rather than at the
    // heartbeat timeout. Its sandboxes are `missing` until the monitor reads the host's list.
    let mut unreachable = false;
    for from in [HostStatus::Online, HostStatus::Draining] {
        unreachable |=
            store::host::set_status(pool, host.id, from, HostStatus::Unreachable, now).await?;
    }
    if unreachable {
        store::host::mark_host_sandboxes_missing(pool, host.id, now).await?;
    }
    tracing::info!(host_id = %host.id, revoked = n, "host credentials revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// Every host not deleted (admins).
#[utoipa::path(
    get, path = "/v1/hosts", tag = "hosts",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Hosts", body = [HostDto]),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Not a platform admin", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    _admin: AdminAuth,
) -> Result<axum::Json<Vec<HostDto>>, ApiError> {
    let hosts = store::host::list(state.store().pool()).await?;
    Ok(axum::Json(hosts.iter().map(HostDto::from).collect()))
}

/// One host (admins).
#[utoipa::path(
    get, path = "/v1/hosts/{host_id}", tag = "hosts",
    security(("bearer" = [])),
    params(("host_id" = String, Path, description = "Host id")),
    responses(
        (status = 200, description = "The host", body = HostDto),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Not a platform admin", body = ErrorBody),
        (status = 404, description = "No such host", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    _admin: AdminAuth,
    Path(host_id): Path<String>,
) -> Result<axum::Json<HostDto>, ApiError> {
    let host = load_host(&state, &host_id).await?;
    Ok(axum::Json(HostDto::from(&host)))
}

/// Statuses of sandboxes that keep a host from a graceful delete.
const HELD: &[&str] = &["pending", "running", "paused", "missing"];

/// Delete a host (admins). Refused with 409 and the list of its sandboxes while it holds
/// any, unless `?force=true`: then they are destroyed on the host (best effort) and marked
/// `stopped`.
#[utoipa::path(
    delete, path = "/v1/hosts/{host_id}", tag = "hosts",
    security(("bearer" = [])),
    params(("host_id" = String, Path, description = "Host id"), DeleteQuery),
    responses(
        (status = 204, description = "Host deleted"),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Not a platform admin", body = ErrorBody),
        (status = 404, description = "No such host", body = ErrorBody),
        (status = 409, description = "The host holds sandboxes; `error.sandboxes` lists them", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(host_id = %host_id))]
pub async fn delete(
    State(state): State<AppState>,
    _admin: AdminAuth,
    Path(host_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = DeleteQuery::parse(raw.as_deref())?;
    let host = load_host(&state, &host_id).await?;
    let pool = state.store().pool();
    let held = store::host::sandboxes_on_host(pool, host.id, HELD).await?;
    if !held.is_empty() && !q.force {
        let ids: Vec<&str> = held.iter().map(|s| s.id.as_str()).collect();
        let body = serde_json::json!({"error": {
            "code": "conflict",
            "message": format!(
                "host {} holds {} sandbox(es); delete them first or pass ?force=true",
                host.id, ids.len()),
            "sandboxes": ids,
        }});
        return Ok((StatusCode::CONFLICT, axum::Json(body)).into_response());
    }
    // Draining first, so the scheduler places nothing new here while its sandboxes go; then
    // the sandboxes (the agent is told while the pool still knows the host); then the host is
    // deleted and its credentials revoked.
    let now = now_ms();
    sqlx::query(
        "UPDATE hosts SET status = 'draining', updated_at = $2 \
         WHERE id = $1 AND status IN ('online', 'unreachable')",
    )
    .bind(host.id.to_string())
    .bind(now)
    .execute(pool)
    .await
    .map_err(StoreError::from)?;
    for sb in &held {
        // Best effort: an unreachable host cannot be told; the rows stop all the same.
        crate::fleet::monitor::destroy_on_host(&state, host.id, &sb.id).await;
        let status: SandboxStatus = sb.status.parse().unwrap_or(SandboxStatus::Running);
        if status.can_become(SandboxStatus::Stopped) {
            store::host::set_sandbox_status(pool, &sb.id, &sb.status, "stopped", None, now_ms())
                .await?;
        }
    }
    let now = now_ms();
    let mut tx = pool.begin().await.map_err(StoreError::from)?;
    sqlx::query("UPDATE hosts SET status = 'deleted', updated_at = $2 WHERE id = $1")
        .bind(host.id.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
    store::host::revoke_all_refresh_tokens(&mut *tx, host.id, now).await?;
    store::host::expire_registration_tokens(&mut *tx, host.id, now).await?;
    tx.commit().await.map_err(StoreError::from)?;
    crate::fleet::monitor::forget_host(&state, host.id);
    tracing::info!(host_id = %host.id, force = q.force, sandboxes = held.len(), "host deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn unauthorized(why: &'static str) -> ApiError {
    ApiError::Unauthenticated(why)
}

/// Issues a host JWT + refresh token pair inside `tx` (new refresh token stored, `replaces`
/// revoked in the same transaction by the caller).
fn credentials(
    state: &AppState,
    host: HostId,
    rt_id: &str,
    refresh: String,
    refresh_expires: i64,
) -> HostCredentials {
    let (jwt, jwt_expires) = state
        .host_tokens()
        .issue(host, rt_id, state.config().host_token_ttl);
    HostCredentials {
        host_id: host.to_string(),
        host_token: jwt,
        host_token_expires_at: rfc3339(jwt_expires),
        refresh_token: refresh,
        refresh_token_expires_at: rfc3339(refresh_expires),
        control_plane_key: state.agent_signer().public_key_b64(),
    }
}

fn refresh_expiry(state: &AppState, now: i64) -> i64 {
    now + i64::try_from(state.config().refresh_token_ttl.as_millis()).unwrap_or(i64::MAX / 2)
}

/// Trade a one-time registration token for host credentials (agents).
#[utoipa::path(
    post, path = "/v1/hosts/register", tag = "hosts",
    request_body = RegisterRequest,
    responses(
        (status = 200, description = "Registered", body = HostCredentials),
        (status = 400, description = "Validation failed", body = ErrorBody),
        (status = 401, description = "Unknown, used or expired token", body = ErrorBody),
    )
)]
pub async fn register(
    State(state): State<AppState>,
    Json(req): Json<RegisterRequest>,
) -> Result<axum::Json<HostCredentials>, ApiError> {
    let bad = || unauthorized("invalid, used or expired registration token");
    if !token::looks_like(token::REGISTRATION_PREFIX, &req.token) {
        return Err(bad());
    }
    let address = validate_address("address", &req.address)?;
    if !matches!(req.runtime.as_str(), "gvisor" | "firecracker") {
        return Err(ApiError::field("runtime", "must be gvisor or firecracker"));
    }
    let now = now_ms();
    let specs = Specs {
        address,
        arch: req.arch,
        cpu_count: i64::from(req.cpu_count),
        memory_mb: i64::try_from(req.memory_mb).unwrap_or(i64::MAX),
        disk_mb: i64::try_from(req.disk_mb).unwrap_or(i64::MAX),
        runtime: req.runtime,
        agent_version: req.agent_version,
        sandbox_capacity: i64::from(req.sandbox_capacity),
        templates: req.templates,
    };
    let refresh = token::generate(token::REFRESH_PREFIX);
    let rt_id = uuid::Uuid::now_v7().to_string();
    let refresh_expires = refresh_expiry(&state, now);
    let mut tx = state
        .store()
        .pool()
        .begin()
        .await
        .map_err(StoreError::from)?;
    let Some(host) =
        store::host::consume_registration_token(&mut tx, &token::hash(&req.token), now).await?
    else {
        return Err(bad());
    };
    store::host::register(&mut *tx, host, &specs, now).await?;
    // A re-registration replaces every older credential of the host.
    store::host::revoke_all_refresh_tokens(&mut *tx, host, now).await?;
    store::host::insert_refresh_token(
        &mut *tx,
        &rt_id,
        host,
        &token::hash(&refresh),
        None,
        refresh_expires,
        now,
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    tracing::info!(host_id = %host, address = %specs.address, "host registered");
    Ok(axum::Json(credentials(
        &state,
        host,
        &rt_id,
        refresh,
        refresh_expires,
    )))
}

/// Rotate host credentials: a new pair is issued and the old refresh token revoked, in one
/// transaction. Reusing a revoked refresh token revokes the host's whole chain.
#[utoipa::path(
    post, path = "/v1/hosts/auth/refresh", tag = "hosts",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New credentials", body = HostCredentials),
        (status = 401, description = "Unknown, expired, revoked or reused refresh token", body = ErrorBody),
    )
)]
pub async fn refresh(
    State(state): State<AppState>,
    Json(req): Json<RefreshRequest>,
) -> Result<axum::Json<HostCredentials>, ApiError> {
    let bad = || unauthorized("invalid, expired or revoked refresh token");
    if !token::looks_like(token::REFRESH_PREFIX, &req.refresh_token) {
        return Err(bad());
    }
    let pool = state.store().pool();
    let now = now_ms();
    let Some(old) = store::host::refresh_by_hash(pool, &token::hash(&req.refresh_token)).await?
    else {
        return Err(bad());
    };
    if old.revoked_at.is_some() {
        let n = store::host::revoke_all_refresh_tokens(pool, old.host_id, now).await?;
        tracing::warn!(host_id = %old.host_id, revoked = n,
            "revoked refresh token reused: the host's credentials are all revoked");
        return Err(bad());
    }
    if old.expires_at <= now {
        return Err(bad());
    }
    match store::host::by_id(pool, old.host_id).await? {
        Some(h) if h.status != HostStatus::Deleted => {}
        _ => return Err(bad()),
    }
    let refresh = token::generate(token::REFRESH_PREFIX);
    let rt_id = uuid::Uuid::now_v7().to_string();
    let refresh_expires = refresh_expiry(&state, now);
    let mut tx = pool.begin().await.map_err(StoreError::from)?;
    // Issue first, then revoke: both in this transaction, so no crash leaves the host with
    // neither token.
    store::host::insert_refresh_token(
        &mut *tx,
        &rt_id,
        old.host_id,
        &token::hash(&refresh),
        Some(&old.id),
        refresh_expires,
        now,
    )
    .await?;
    if !store::host::revoke_refresh_token(&mut *tx, &old.id, now).await? {
        // Someone used the same token a moment ago: that is reuse too.
        drop(tx);
        store::host::revoke_all_refresh_tokens(pool, old.host_id, now).await?;
        tracing::warn!(host_id = %old.host_id, "refresh token used twice at once: chain revoked");
        return Err(bad());
    }
    tx.commit().await.map_err(StoreError::from)?;
    tracing::debug!(host_id = %old.host_id, "host credentials rotated");
    Ok(axum::Json(credentials(
        &state,
        old.host_id,
        &rt_id,
        refresh,
        refresh_expires,
    )))
}

/// A request authenticated with a live host JWT.
#[derive(Debug, Clone, Copy)]
pub struct HostAuth {
    /// The host.
    pub host_id: HostId,
}

impl FromRequestParts<AppState> for HostAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let bad = || unauthorized("invalid, expired or revoked host token");
        let token = parts
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .ok_or_else(bad)?;
        let (host_id, rt) = state.host_tokens().verify(token.trim()).ok_or_else(bad)?;
        let pool = state.store().pool();
        match store::host::refresh_by_id(pool, &rt).await? {
            Some(t) if t.host_id == host_id && t.revoked_at.is_none() => {}
            _ => return Err(bad()),
        }
        match store::host::by_id(pool, host_id).await? {
            Some(h) if h.status != HostStatus::Deleted => Ok(HostAuth { host_id }),
            _ => Err(bad()),
        }
    }
}

/// An agent's heartbeat: load, templates, and every sandbox it holds.
#[utoipa::path(
    post, path = "/v1/hosts/heartbeat", tag = "hosts",
    security(("bearer" = [])),
    request_body = HeartbeatRequest,
    responses(
        (status = 200, description = "Recorded", body = Object),
        (status = 401, description = "Invalid, expired or revoked host token", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(host_id = %auth.host_id))]
pub async fn heartbeat(
    State(state): State<AppState>,
    auth: HostAuth,
    Json(req): Json<HeartbeatRequest>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let load = Load {
        live_sandboxes: i64::from(req.live_sandboxes),
        free_memory_mb: i64::try_from(req.free_memory_mb).unwrap_or(i64::MAX),
        free_disk_mb: i64::try_from(req.free_disk_mb).unwrap_or(i64::MAX),
        sandbox_capacity: i64::from(req.sandbox_capacity),
        templates: req.templates,
    };
    let now = now_ms();
    if !store::host::heartbeat(state.store().pool(), auth.host_id, &load, now).await? {
        return Err(unauthorized("invalid, expired or revoked host token"));
    }
    let reported: Vec<(String, SandboxStatus)> = req
        .sandboxes
        .into_iter()
        .filter_map(|s| match s.status.as_str() {
            "running" => Some((s.sandbox_id, SandboxStatus::Running)),
            "paused" => Some((s.sandbox_id, SandboxStatus::Paused)),
            _ => None,
        })
        .collect();
    crate::fleet::monitor::apply_reported(&state, auth.host_id, &reported).await?;
    Ok(axum::Json(serde_json::json!({})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let check = |a: &str, ok: bool| {
            assert_eq!(validate_address("address", a).is_ok(), ok, "{a:?}");
        };
        check("10.0.0.7:50051", true);
        check("agent.example:1", true);
        check("[::1]:8080", true);
        check(" host:9 ", true);
        check("host", false);
        check("host:0", false);
        check("host:70000", false);
        check(":80", false);
        check("http://host:80", false);
        check("a b:80", false);
    }

    #[test]
    fn delete_query() {
        let check = |raw: Option<&str>, want: Option<bool>| {
            assert_eq!(
                DeleteQuery::parse(raw).ok().map(|q| q.force),
                want,
                "{raw:?}"
            );
        };
        check(None, Some(false));
        check(Some(""), Some(false));
        check(Some("force=true"), Some(true));
        check(Some("force=1"), Some(true));
        check(Some("force"), Some(true));
        check(Some("force=false"), Some(false));
        check(Some("other=x&force=0"), Some(false));
        check(Some("force=maybe"), None);
    }
}
