//! The E2B-compatible REST API, mounted at `/e2b`: code written for the `e2b` SDK runs
//! against Warren with `E2B_API_URL=<warren>/e2b`, `E2B_SANDBOX_URL=<warren>` and
//! `E2B_API_KEY=<a Warren API key>`.
//!
//! Why a separate surface rather than making `/v1` look like E2B: the SDK fixes paths, field
//! names (camelCase, `sandboxID`), status codes (204 for pause, 201 for a resume, 409 for
//! "already paused") and its error body `{"code": N, "message": "..."}`; our own API keeps its
//! conventions. Every handler here is a translation: auth (`X-API-KEY` or a user JWT, via
//! [`TeamAuth`]), then one call of [`crate::sandbox::service`] — no sandbox logic lives here.
//! Envd traffic does not come here at all: the SDK sends it to `E2B_SANDBOX_URL` with the
//! `E2b-Sandbox-*` headers, which [`crate::proxy`] routes.
//!
//! Differences from E2B are listed in `docs/e2b.md`.

pub mod models;

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chrono::{DateTime, Duration, Utc};
use serde::de::DeserializeOwned;
use warren_types::{SandboxId, SandboxStatus, TeamId};

use crate::AppState;
use crate::auth::principal::TeamAuth;
use crate::error::ApiError;
use crate::sandbox::service::{self, CreateSandbox, ListFilter, Sandbox};
use models::*;

/// The routes, relative to the `/e2b` prefix.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/sandboxes", post(create).get(list_v1))
        .route("/v2/sandboxes", post(create).get(list_v2))
        .route("/sandboxes/{id}", get(detail).delete(kill))
        .route("/sandboxes/{id}/timeout", post(set_timeout))
        .route("/sandboxes/{id}/refreshes", post(refresh))
        .route("/sandboxes/{id}/pause", post(pause))
        .route("/sandboxes/{id}/resume", post(resume))
        .route("/sandboxes/{id}/connect", post(connect))
        .route("/v2/sandboxes/{id}/connect", post(connect))
        .route("/sandboxes/{id}/metrics", get(metrics))
        .route("/sandboxes/{id}/snapshots", post(create_snapshot))
        .route("/sandboxes/{id}/fork", post(fork))
        .route("/snapshots", get(list_snapshots))
        .route("/templates", get(templates))
        .route("/templates/{id}", delete(delete_template))
        .fallback(|| async { E2bError::new(StatusCode::NOT_FOUND, "no such E2B API route") })
        .with_state(state)
}

// ---------------------------------------------------------------------------------------
// Errors and auth

/// An error in E2B's shape: `{"code": <status>, "message": "..."}`.
#[derive(Debug)]
pub struct E2bError {
    status: StatusCode,
    message: String,
}

impl E2bError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        E2bError {
            status,
            message: message.into(),
        }
    }

    fn not_found(id: &str) -> Self {
        E2bError::new(StatusCode::NOT_FOUND, format!("sandbox {id} not found"))
    }
}

impl From<ApiError> for E2bError {
    fn from(e: ApiError) -> Self {
        let (status, _) = e.status_and_code();
        let message = match &e {
            ApiError::Validation(fields) => fields
                .iter()
                .map(|f| format!("{}: {}", f.field, f.message))
                .collect::<Vec<_>>()
                .join("; "),
            ApiError::Internal(m) => {
                tracing::error!(error = %m, "e2b api: internal error");
                "internal error".to_owned()
            }
            other => other.to_string(),
        };
        E2bError { status, message }
    }
}

impl IntoResponse for E2bError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "code": self.status.as_u16(), "message": self.message });
        (self.status, Json(body)).into_response()
    }
}

type Res<T> = Result<T, E2bError>;

/// The caller's team: `X-API-KEY` (what the SDK sends) or a user JWT.
pub struct E2bTeam(pub TeamId);

impl FromRequestParts<AppState> for E2bTeam {
    type Rejection = E2bError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Res<Self> {
        match TeamAuth::from_request_parts(parts, state).await {
            Ok(a) => Ok(E2bTeam(a.team_id())),
            Err(ApiError::Unauthenticated(m)) => Err(E2bError::new(StatusCode::UNAUTHORIZED, m)),
            Err(e) => Err(e.into()),
        }
    }
}

fn sandbox_id(raw: &str) -> Res<SandboxId> {
    raw.parse().map_err(|_| E2bError::not_found(raw))
}

/// Parses a JSON body leniently: empty is the default, unknown fields are ignored (the SDK
/// sends options Warren does not have).
fn body<T: DeserializeOwned + Default>(bytes: &Bytes) -> Res<T> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes)
        .map_err(|e| E2bError::new(StatusCode::BAD_REQUEST, format!("invalid body: {e}")))
}

// ---------------------------------------------------------------------------------------
// Translations

/// Stopped or failed; or running past its end (E2B: a sandbox is gone at its end time; the
/// host reaps it within its reaper interval and the monitor records that later).
fn is_gone(s: &Sandbox) -> bool {
    let expired = s.status == "running"
        && !s.auto_pause
        && s.expires_at
            .is_some_and(|e| e + Duration::seconds(EXPIRY_SLACK_S) < Utc::now());
    expired || matches!(s.status.as_str(), "stopped" | "error")
}

fn past_end(s: &Sandbox) -> bool {
    s.expires_at.is_some_and(|e| e < Utc::now())
}

/// An auto-pause sandbox past its end is paused by its host's reaper; the host monitor
/// records that only after its grace period. E2B callers expect `paused` at once, so ask the
/// host (waiting out a pause in progress, a few seconds at most) and record what it did.
async fn sync_auto_paused(state: &AppState, team: TeamId, id: SandboxId, s: Sandbox) -> Sandbox {
    use warren_proto::hostagent::v1 as pb;
    let pool = state.store().pool();
    let Ok(Some(r)) = crate::store::sandbox::get_for_team(pool, team, id).await else {
        return s;
    };
    let Some(host) = r.host_id else { return s };
    let Ok(client) = state.pool().client(host).await else {
        return s;
    };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let req = pb::GetSandboxRequest {
            sandbox_id: id.to_string(),
            ..Default::default()
        };
        let status = match client.rpc().get_sandbox(req).await {
            Ok(resp) => resp
                .into_owned()
                .sandbox
                .into_option()
                .map(|i| i.status.as_known()),
            Err(_) => return s,
        };
        match status {
            Some(Some(pb::SandboxStatus::SANDBOX_STATUS_PAUSED)) => break,
            Some(Some(pb::SandboxStatus::SANDBOX_STATUS_TRANSITION))
            | Some(Some(pb::SandboxStatus::SANDBOX_STATUS_RUNNING))
                if tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            _ => return s,
        }
    }
    let moved = crate::store::sandbox::set_status(
        pool,
        id,
        SandboxStatus::Running,
        SandboxStatus::Paused,
        &crate::store::sandbox::StatusUpdate::default(),
        crate::store::now_ms(),
    )
    .await;
    if let Err(e) = moved {
        tracing::warn!(sandbox_id = %id, error = %e, "recording an auto-pause");
    }
    service::get(state, team, id).await.unwrap_or(s)
}

/// Seconds past its end after which a sandbox the monitor has not yet seen go counts as gone.
const EXPIRY_SLACK_S: i64 = 2;

fn state_of(s: &Sandbox) -> &'static str {
    if s.status == "paused" {
        "paused"
    } else {
        "running"
    }
}

fn client_id(s: &Sandbox) -> String {
    s.host_id
        .map(|h| h.to_string())
        .unwrap_or_else(|| "warren".to_owned())
}

fn end_at(s: &Sandbox) -> DateTime<Utc> {
    s.expires_at.unwrap_or_else(|| {
        s.created_at
            + Duration::seconds(if s.timeout_s > 0 {
                i64::from(s.timeout_s)
            } else {
                // No TTL: far enough to never matter, but a valid time for the SDK.
                100 * 365 * 86_400
            })
    })
}

fn domain(state: &AppState) -> Option<String> {
    state.config().proxy_domain.clone()
}

fn created(state: &AppState, s: &Sandbox) -> CreatedSandbox {
    CreatedSandbox {
        template_id: s.template.clone(),
        sandbox_id: s.id.to_string(),
        client_id: client_id(s),
        envd_version: ENVD_VERSION,
        alias: s.template.clone(),
        envd_access_token: s.envd_access_token.clone(),
        traffic_access_token: None,
        domain: domain(state),
    }
}

fn listed(s: &Sandbox) -> SandboxDetail {
    SandboxDetail {
        template_id: s.template.clone(),
        sandbox_id: s.id.to_string(),
        client_id: client_id(s),
        alias: s.template.clone(),
        started_at: s.created_at,
        end_at: end_at(s),
        cpu_count: s.vcpus,
        memory_mb: s.memory_mb,
        disk_size_mb: 0,
        state: state_of(s),
        envd_version: ENVD_VERSION,
        metadata: s.metadata.clone(),
        envd_access_token: None,
        allow_internet_access: None,
        domain: None,
        lifecycle: None,
    }
}

fn detailed(state: &AppState, s: &Sandbox) -> SandboxDetail {
    SandboxDetail {
        envd_access_token: s.envd_access_token.clone(),
        allow_internet_access: Some(s.allow_internet),
        domain: domain(state),
        lifecycle: Some(Lifecycle {
            auto_resume: false,
            on_timeout: if s.auto_pause { "pause" } else { "kill" },
        }),
        ..listed(s)
    }
}

/// The team's sandbox, unless it is gone (stopped, failed): E2B knows only live ones.
async fn live(state: &AppState, team: TeamId, raw: &str) -> Res<Sandbox> {
    let id = sandbox_id(raw)?;
    match service::get(state, team, id).await {
        Ok(s) if s.auto_pause && s.status == "running" && past_end(&s) => {
            Ok(sync_auto_paused(state, team, id, s).await)
        }
        Ok(s) if !is_gone(&s) => Ok(s),
        Ok(_) | Err(ApiError::NotFound(_)) => Err(E2bError::not_found(raw)),
        Err(e) => Err(e.into()),
    }
}

// ---------------------------------------------------------------------------------------
// Handlers

async fn create(
    State(state): State<AppState>,
    E2bTeam(team): E2bTeam,
    raw: Bytes,
) -> Res<Response> {
    let req: NewSandbox = serde_json::from_slice(&raw)
        .map_err(|e| E2bError::new(StatusCode::BAD_REQUEST, format!("invalid body: {e}")))?;
    let s = service::create(
        &state,
        team,
        CreateSandbox {
            template: req.template_id,
            timeout_s: req.timeout,
            env: req.env_vars.unwrap_or_default(),
            metadata: req.metadata.unwrap_or_default(),
            allow_internet: req.allow_internet_access.unwrap_or(true),
            auto_pause: req.auto_pause.unwrap_or(false),
            ..Default::default()
        },
    )
    .await?;
    e2b_defaults(&state, team, &s).await;
    Ok((StatusCode::CREATED, Json(created(&state, &s))).into_response())
}

/// E2B's templates run requests as `user` in `/home/user` (relative paths resolve there);
/// Warren's envd defaults to the user it runs as. Sandboxes created through the E2B API get
/// E2B's defaults (envd's `/init`), when the template has that user.
async fn e2b_defaults(state: &AppState, team: TeamId, s: &Sandbox) {
    let Ok(id) = sandbox_id(&s.id.to_string()) else {
        return;
    };
    let result = match crate::pty::envd_for(state, team, id).await {
        Ok(envd) => envd
            .set_defaults(Some(E2B_USER), Some(E2B_WORKDIR))
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = result {
        tracing::info!(sandbox_id = %id, error = %e, "E2B default user not set; envd's stays");
    }
}

/// E2B's default user and working directory.
const E2B_USER: &str = "user";
const E2B_WORKDIR: &str = "/home/user";

async fn detail(
    State(state): State<AppState>,
    E2bTeam(team): E2bTeam,
    Path(id): Path<String>,
) -> Res<Json<SandboxDetail>> {
    Ok(Json(detailed(&state, &live(&state, team, &id).await?)))
}

async fn kill(
    State(state): State<AppState>,
    E2bTeam(team): E2bTeam,
    Path(id): Path<String>,
) -> Res<StatusCode> {
    let s = live(&state, team, &id).await?;
    service::destroy(&state, team, sandbox_id(&s.id.to_string())?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_timeout(
    State(state): State<AppState>,
    E2bTeam(team): E2bTeam,
    Path(id): Path<String>,
    raw: Bytes,
) -> Res<StatusCode> {
    let req: TimeoutRequest = serde_json::from_slice(&raw)
        .map_err(|e| E2bError::new(StatusCode::BAD_REQUEST, format!("invalid body: {e}")))?;
    live(&state, team, &id).await?;
    service::set_timeout(&state, team, sandbox_id(&id)?, req.timeout.max(1)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn refresh(
    State(state): State<AppState>,
    E2bTeam(team): E2bTeam,
    Path(id): Path<String>,
    raw: Bytes,
) -> Res<StatusCode> {
    let req: RefreshRequest = body(&raw)?;
    let s = live(&state, team, &id).await?;
    let timeout = req
        .duration
        .filter(|d| *d > 0)
        .unwrap_or(s.timeout_s.max(1));
    service::set_timeout(&state, team, sandbox_id(&id)?, timeout).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn pause(
    State(state): State<AppState>,
    E2bTeam(team): E2bTeam,
    Path(id): Path<String>,
) -> Res<StatusCode> {
    let s = live(&state, team, &id).await?;
    if s.status == "paused" {
        return Err(E2bError::new(
            StatusCode::CONFLICT,
            format!("sandbox {id} is already paused"),
        ));
    }
    service::pause(&state, team, sandbox_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn resume(
    State(state): State<AppState>,
    E2bTeam(team): E2bTeam,
    Path(id): Path<String>,
    raw: Bytes,
) -> Res<Response> {
    let req: ConnectRequest = body(&raw)?;
    let s = live(&state, team, &id).await?;
    if s.status != "paused" {
        return Err(E2bError::new(
            StatusCode::CONFLICT,
            format!("sandbox {id} is already running"),
        ));
    }
    let s = service::resume(&state, team, sandbox_id(&id)?, req.timeout).await?;
    Ok((StatusCode::CREATED, Json(created(&state, &s))).into_response())
}

/// Running: 200, the timeout only ever extended. Paused: resumed, 201.
async fn connect(
    State(state): State<AppState>,
    E2bTeam(team): E2bTeam,
    Path(id): Path<String>,
    raw: Bytes,
) -> Res<Response> {
    let req: ConnectRequest = body(&raw)?;
    let s = live(&state, team, &id).await?;
    let sid = sandbox_id(&id)?;
    if s.status == "paused" {
        let s = service::resume(&state, team, sid, req.timeout).await?;
        return Ok((StatusCode::CREATED, Json(created(&state, &s))).into_response());
    }
    let s = match req.timeout {
        Some(t) if t > 0 => {
            let wanted = Utc::now() + Duration::seconds(i64::from(t));
            if s.expires_at.is_some_and(|e| e < wanted) {
                service::set_timeout(&state, team, sid, t).await?
            } else {
                s
            }
        }
        _ => s,
    };
    Ok((StatusCode::OK, Json(created(&state, &s))).into_response())
}

async fn metrics(
    State(state): State<AppState>,
    E2bTeam(team): E2bTeam,
    Path(id): Path<String>,
) -> Res<Json<Vec<SandboxMetric>>> {
    let s = live(&state, team, &id).await?;
    if s.status != "running" {
        return Ok(Json(Vec::new()));
    }
    let m = service::metrics(&state, team, sandbox_id(&id)?).await?;
    let alive_ns = (m.timestamp - s.created_at)
        .num_nanoseconds()
        .unwrap_or(0)
        .max(1) as f64;
    let cpu_used_pct =
        (m.cpu_usage_ns as f64 / alive_ns / f64::from(s.vcpus.max(1)) * 100.0).clamp(0.0, 100.0);
    Ok(Json(vec![SandboxMetric {
        timestamp: m.timestamp,
        timestamp_unix: m.timestamp.timestamp(),
        cpu_count: s.vcpus,
        cpu_used_pct: (cpu_used_pct * 100.0).round() / 100.0,
        mem_used: m.memory_bytes,
        mem_total: if m.memory_limit_bytes > 0 {
            m.memory_limit_bytes
        } else {
            u64::from(s.memory_mb) * 1024 * 1024
        },
        mem_cache: 0,
        disk_used: m.disk_bytes,
        disk_total: 0,
    }]))
}

/// `?a=b&a=c` → `[(a, b), (a, c)]`, percent-decoded.
fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// The SDK's `metadata` parameter: a query string of (again percent-encoded) pairs.
fn metadata_filter(value: &str) -> BTreeMap<String, String> {
    let unquote = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    query_pairs(Some(value))
        .into_iter()
        .map(|(k, v)| (unquote(&k), unquote(&v)))
        .collect()
}

struct ListQuery {
    filter: ListFilter,
    /// Only this template (applied to each page).
    template: Option<String>,
    /// Only sandboxes started at or after this time (applied to each page).
    started_after: Option<DateTime<Utc>>,
}

fn list_query(raw: Option<&str>, default_states: &[SandboxStatus]) -> Res<ListQuery> {
    let mut filter = ListFilter::default();
    let mut states = Vec::new();
    let (mut template, mut started_after) = (None, None);
    for (k, v) in query_pairs(raw) {
        match k.as_str() {
            "metadata" => filter.metadata.extend(metadata_filter(&v)),
            "state" => {
                for s in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    match s {
                        "running" => states.extend([
                            SandboxStatus::Running,
                            SandboxStatus::Pending,
                            SandboxStatus::Missing,
                        ]),
                        "paused" => states.push(SandboxStatus::Paused),
                        other => {
                            return Err(E2bError::new(
                                StatusCode::BAD_REQUEST,
                                format!("invalid state {other:?}: running or paused"),
                            ));
                        }
                    }
                }
            }
            "limit" => {
                filter.limit = v.parse().map_err(|_| {
                    E2bError::new(StatusCode::BAD_REQUEST, format!("invalid limit {v:?}"))
                })?;
            }
            "nextToken" => filter.cursor = Some(v).filter(|c| !c.is_empty()),
            "template" => template = Some(v).filter(|t| !t.is_empty()),
            "startedAfter" => {
                started_after = Some(
                    DateTime::parse_from_rfc3339(&v)
                        .map_err(|_| {
                            E2bError::new(
                                StatusCode::BAD_REQUEST,
                                format!("invalid startedAfter {v:?}: RFC 3339 expected"),
                            )
                        })?
                        .with_timezone(&Utc),
                );
            }
            _ => {}
        }
    }
    filter.statuses = if states.is_empty() {
        default_states.to_vec()
    } else {
        states
    };
    Ok(ListQuery {
        filter,
        template,
        started_after,
    })
}

async fn list_with(
    state: &AppState,
    team: TeamId,
    raw: Option<&str>,
    default_states: &[SandboxStatus],
) -> Res<Response> {
    let q = list_query(raw, default_states)?;
    let page = service::list(state, team, q.filter).await?;
    let items: Vec<SandboxDetail> = page
        .items
        .iter()
        .filter(|s| q.template.as_ref().is_none_or(|t| s.template == *t))
        .filter(|s| q.started_after.is_none_or(|a| s.created_at >= a))
        .map(listed)
        .collect();
    let mut headers = HeaderMap::new();
    if let Some(next) = page.next_cursor
        && let Ok(v) = HeaderValue::from_str(&next)
    {
        headers.insert("x-next-token", v);
    }
    Ok((StatusCode::OK, headers, Json(items)).into_response())
}

const LIVE: &[SandboxStatus] = &[
    SandboxStatus::Pending,
    SandboxStatus::Running,
    SandboxStatus::Missing,
    SandboxStatus::Paused,
];

async fn list_v2(
    State(state): State<AppState>,
    E2bTeam(team): E2bTeam,
    RawQuery(raw): RawQuery,
) -> Res<Response> {
    list_with(&state, team, raw.as_deref(), LIVE).await
}

async fn list_v1(
    State(state): State<AppState>,
    E2bTeam(team): E2bTeam,
    RawQuery(raw): RawQuery,
) -> Res<Response> {
    list_with(
        &state,
        team,
        raw.as_deref(),
        &[
            SandboxStatus::Pending,
            SandboxStatus::Running,
            SandboxStatus::Missing,
        ],
    )
    .await
}

/// Snapshot names Warren makes when the caller gives none.
fn generated_snapshot_name() -> String {
    use rand::Rng;
    let n: u64 = rand::rng().random();
    format!("snapshot-{n:016x}")
}

/// E2B keeps the sandbox running after a snapshot: Warren's snapshot leaves it paused, so a
/// sandbox that ran is resumed.
async fn create_snapshot(
    State(state): State<AppState>,
    E2bTeam(team): E2bTeam,
    Path(id): Path<String>,
    raw: Bytes,
) -> Res<Response> {
    let req: SnapshotRequest = body(&raw)?;
    let s = live(&state, team, &id).await?;
    let sid = sandbox_id(&id)?;
    let name = req
        .name
        .filter(|n| !n.is_empty())
        .unwrap_or_else(generated_snapshot_name);
    let snap = service::snapshot(&state, team, sid, name).await?;
    if s.status == "running" {
        service::resume(&state, team, sid, None).await?;
    }
    Ok((
        StatusCode::CREATED,
        Json(SnapshotInfo {
            snapshot_id: snap.name.clone(),
            names: vec![snap.name],
        }),
    )
        .into_response())
}

/// Most forks per call (the SDK's limit too).
const MAX_FORKS: u32 = 20;

/// Forks: a snapshot of the sandbox (kept as the team's snapshot template `fork-…`, which the
/// forks' disks lie on), the sandbox resumed if it ran, then `count` sandboxes from it.
async fn fork(
    State(state): State<AppState>,
    E2bTeam(team): E2bTeam,
    Path(id): Path<String>,
    raw: Bytes,
) -> Res<Response> {
    let req: ForkRequest = body(&raw)?;
    let count = req.count.unwrap_or(1);
    if !(1..=MAX_FORKS).contains(&count) {
        return Err(E2bError::new(
            StatusCode::BAD_REQUEST,
            format!("count must be between 1 and {MAX_FORKS}"),
        ));
    }
    let s = live(&state, team, &id).await?;
    let sid = sandbox_id(&id)?;
    let name = format!("fork-{}", &generated_snapshot_name()["snapshot-".len()..]);
    service::snapshot(&state, team, sid, name.clone()).await?;
    if s.status == "running" {
        service::resume(&state, team, sid, None).await?;
    }
    let mut results = Vec::new();
    for _ in 0..count {
        let made = service::create(
            &state,
            team,
            CreateSandbox {
                template: name.clone(),
                timeout_s: Some(req.timeout.unwrap_or(15)),
                metadata: s.metadata.clone(),
                allow_internet: s.allow_internet,
                auto_pause: s.auto_pause,
                ..Default::default()
            },
        )
        .await;
        results.push(match made {
            Ok(f) => ForkResult {
                sandbox: Some(created(&state, &f)),
                error: None,
            },
            Err(e) => {
                let e = E2bError::from(e);
                ForkResult {
                    sandbox: None,
                    error: Some(serde_json::json!({
                        "code": e.status.as_u16(),
                        "message": e.message,
                    })),
                }
            }
        });
    }
    Ok((StatusCode::CREATED, Json(results)).into_response())
}

async fn list_snapshots(
    State(state): State<AppState>,
    E2bTeam(team): E2bTeam,
    RawQuery(raw): RawQuery,
) -> Res<Json<Vec<SnapshotInfo>>> {
    let mut sandbox = None;
    let mut name = None;
    for (k, v) in query_pairs(raw.as_deref()) {
        match k.as_str() {
            "sandboxID" => sandbox = Some(v),
            "name" => name = Some(v),
            _ => {}
        }
    }
    let items = service::list_snapshots(&state, team)
        .await?
        .into_iter()
        .filter(|s| {
            sandbox
                .as_ref()
                .is_none_or(|id| s.sandbox_id.is_some_and(|sid| sid.to_string() == *id))
                && name.as_ref().is_none_or(|n| s.name == *n)
        })
        .map(|s| SnapshotInfo {
            snapshot_id: s.name.clone(),
            names: vec![s.name],
        })
        .collect();
    Ok(Json(items))
}

async fn delete_template(
    State(state): State<AppState>,
    E2bTeam(team): E2bTeam,
    Path(id): Path<String>,
) -> Res<StatusCode> {
    match service::delete_snapshot(&state, team, &id).await {
        Ok(_) => Ok(StatusCode::NO_CONTENT),
        Err(ApiError::NotFound(m)) => Err(E2bError::new(StatusCode::NOT_FOUND, m)),
        Err(ApiError::Validation(_)) => Err(E2bError::new(
            StatusCode::NOT_FOUND,
            format!("template {id} not found"),
        )),
        Err(e) => Err(e.into()),
    }
}

async fn templates(
    State(state): State<AppState>,
    E2bTeam(team): E2bTeam,
) -> Res<Json<Vec<Template>>> {
    let epoch = DateTime::<Utc>::UNIX_EPOCH;
    let mut out: Vec<Template> = service::BUILTIN_TEMPLATES
        .iter()
        .map(|name| Template {
            template_id: (*name).to_owned(),
            build_id: (*name).to_owned(),
            cpu_count: service::DEFAULT_VCPUS,
            memory_mb: service::DEFAULT_MEMORY_MB,
            disk_size_mb: 0,
            public: true,
            aliases: vec![(*name).to_owned()],
            names: vec![(*name).to_owned()],
            created_at: epoch,
            updated_at: epoch,
            created_by: None,
            last_spawned_at: None,
            spawn_count: 0,
            build_count: 1,
            envd_version: ENVD_VERSION,
            build_status: "ready".to_owned(),
        })
        .collect();
    for s in service::list_snapshots(&state, team).await? {
        out.push(Template {
            template_id: s.name.clone(),
            build_id: s.id.to_string(),
            cpu_count: s.vcpus.unwrap_or(service::DEFAULT_VCPUS),
            memory_mb: s.memory_mb.unwrap_or(service::DEFAULT_MEMORY_MB),
            disk_size_mb: 0,
            public: false,
            aliases: vec![s.name.clone()],
            names: vec![s.name.clone()],
            created_at: s.created_at,
            updated_at: s.created_at,
            created_by: None,
            last_spawned_at: None,
            spawn_count: 0,
            build_count: 1,
            envd_version: ENVD_VERSION,
            build_status: s.status,
        });
    }
    Ok(Json(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_filter_is_decoded_twice_like_the_sdk_encodes_it() {
        // The SDK: urlencode({quote(k): quote(v)}), then httpx encodes the parameter again;
        // the handler sees the parameter decoded once.
        assert_eq!(
            metadata_filter("user=alice%2540x&a%2520b=c"),
            BTreeMap::from([
                ("user".to_owned(), "alice@x".to_owned()),
                ("a b".to_owned(), "c".to_owned())
            ])
        );
    }

    #[test]
    fn list_query_states_and_paging() {
        let q = list_query(
            Some("state=paused&limit=2&nextToken=abc&metadata=k%3Dv"),
            LIVE,
        )
        .unwrap();
        assert_eq!(q.filter.statuses, vec![SandboxStatus::Paused]);
        assert_eq!(q.filter.limit, 2);
        assert_eq!(q.filter.cursor.as_deref(), Some("abc"));
        assert_eq!(q.filter.metadata.get("k").map(String::as_str), Some("v"));
        assert!(list_query(Some("state=dead"), LIVE).is_err());
        assert_eq!(list_query(None, LIVE).unwrap().filter.statuses, LIVE);
    }
}
