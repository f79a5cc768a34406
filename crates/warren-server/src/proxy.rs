//! The sandbox proxy of the control plane: HTTP (streaming both ways) and WebSocket to any
//! port inside a sandbox, through the agent of the sandbox's host.
//!
//! Why here and not a separate service: the `e2b` SDK talks to envd at `E2B_SANDBOX_URL` (our
//! control plane) with the headers `E2b-Sandbox-Id` and `E2b-Sandbox-Port`; browsers and users
//! with wildcard DNS use the host form `PORT-SANDBOXID.<domain>`. Both run *before* normal
//! routing ([`layer`], the outermost layer of [`crate::app`] but tracing), so any path
//! (`/process.Process/Start`, `/files`, a user's `/`) is proxied, and every other request passes
//! through untouched.
//!
//! Auth: the sandbox's envd token (`X-Access-Token`, what the SDK sends), or an API key / user
//! JWT of the owning team. The sandbox is resolved with `sandbox::service::route` (host, agent
//! address, a freshly minted agent bearer). Unknown, stopped and other teams' sandboxes answer
//! the same 502 `… was not found` as E2B's proxy (the SDK's `is_running()` reads exactly that),
//! so the answer reveals nothing about other teams.
//!
//! What crosses: method, path, query, headers minus hop-by-hop ones and our credentials
//! (`X-API-Key`, our bearer; `X-Access-Token` only to envd's port); a caller's `Basic`
//! `Authorization` (the SDK's way of naming envd's user) travels in
//! `x-warren-forwarded-authorization`, which the agent restores. Each request opens its own
//! connection to the agent in the caller's HTTP version (HTTP/1.1, or h2c), so one slow
//! stream never stalls another.

use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use warren_types::{SandboxId, TeamId};

use crate::AppState;
use crate::auth::principal::{API_KEY_HEADER, TeamAuth};
use crate::error::ApiError;

/// The SDK's header naming the sandbox.
pub const SANDBOX_ID_HEADER: &str = "e2b-sandbox-id";
/// The SDK's header naming the port inside the sandbox.
pub const SANDBOX_PORT_HEADER: &str = "e2b-sandbox-port";
/// envd's access token header.
pub const ACCESS_TOKEN_HEADER: &str = "x-access-token";
/// The caller's own `Authorization`, carried past the hops that use `Authorization` for
/// themselves (the agent restores it towards the sandbox).
pub const FORWARDED_AUTHORIZATION: &str = "x-warren-forwarded-authorization";
/// envd's port inside every sandbox.
pub const ENVD_PORT: u16 = 49983;

/// A fresh envd access token: 32 random bytes, hex (what `sandbox::service::create` gives
/// every sandbox's envd; the SDK sends it back as `X-Access-Token`).
pub fn new_envd_access_token() -> String {
    use rand::Rng;
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where a request is headed, if it is a proxy request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// The sandbox.
    pub sandbox_id: SandboxId,
    /// The port inside it.
    pub port: u16,
}

/// Errors of the proxy, answered in E2B's proxy shape
/// (`{"code": 502, "message": "...", "sandboxId": "..."}`) for the SDK's sake.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The proxy headers are there but malformed.
    #[error("{0}")]
    BadRequest(String),
    /// No credentials, or wrong ones.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// A signed file URL past its expiry (the SDK's exact message).
    #[error("signature is already expired")]
    Expired,
    /// No such sandbox for this caller (unknown, stopped, another team's).
    #[error("The sandbox {0} was not found")]
    NotFound(String),
    /// The sandbox exists but cannot take traffic now (paused, starting, host away).
    #[error("sandbox {sandbox_id} is not reachable: {reason}")]
    Unavailable {
        /// The sandbox.
        sandbox_id: String,
        /// Why.
        reason: String,
    },
    /// The agent could not be reached or failed mid-way.
    #[error("sandbox {sandbox_id}: {reason}")]
    Upstream {
        /// The sandbox.
        sandbox_id: String,
        /// What failed.
        reason: String,
    },
    /// Our side failed (database); logged.
    #[error("internal error")]
    Internal(String),
}

impl IntoResponse for ProxyError {
    fn into_response(self) -> Response {
        let (status, sandbox_id) = match &self {
            ProxyError::BadRequest(_) => (StatusCode::BAD_REQUEST, None),
            ProxyError::Unauthenticated(_) | ProxyError::Expired => {
                (StatusCode::UNAUTHORIZED, None)
            }
            ProxyError::NotFound(id) => (StatusCode::BAD_GATEWAY, Some(id.clone())),
            ProxyError::Unavailable { sandbox_id, .. }
            | ProxyError::Upstream { sandbox_id, .. } => {
                (StatusCode::BAD_GATEWAY, Some(sandbox_id.clone()))
            }
            ProxyError::Internal(e) => {
                tracing::error!(error = %e, "proxy failed");
                (StatusCode::INTERNAL_SERVER_ERROR, None)
            }
        };
        let mut body = serde_json::json!({ "code": status.as_u16(), "message": self.to_string() });
        if let Some(id) = sandbox_id {
            body["sandboxId"] = id.into();
        }
        (status, axum::Json(body)).into_response()
    }
}

/// Parses the proxy target of a request: the `E2b-Sandbox-Id`/`E2b-Sandbox-Port` headers,
/// else a host `PORT-SANDBOXID.<anything>`. `Ok(None)`: not a proxy request.
pub fn target(headers: &HeaderMap) -> Result<Option<Target>, ProxyError> {
    let id = headers.get(SANDBOX_ID_HEADER);
    let port = headers.get(SANDBOX_PORT_HEADER);
    if id.is_some() || port.is_some() {
        let id = id
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ProxyError::BadRequest("missing E2b-Sandbox-Id header".into()))?;
        let port = port
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ProxyError::BadRequest("missing E2b-Sandbox-Port header".into()))?;
        let sandbox_id: SandboxId = id
            .trim()
            .parse()
            .map_err(|_| ProxyError::NotFound(id.to_string()))?;
        let port = parse_port(port)
            .ok_or_else(|| ProxyError::BadRequest(format!("invalid sandbox port {port:?}")))?;
        return Ok(Some(Target { sandbox_id, port }));
    }
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    Ok(host_target(host))
}

fn parse_port(s: &str) -> Option<u16> {
    s.trim().parse::<u16>().ok().filter(|p| *p > 0)
}

/// `PORT-SANDBOXID.domain[:port]` → target; anything else → `None`.
fn host_target(host: &str) -> Option<Target> {
    let label = host.split('.').next()?;
    if label.len() == host.len() {
        return None; // no domain: "localhost:8080" or an IP
    }
    let (port, id) = label.split_once('-')?;
    Some(Target {
        port: parse_port(port)?,
        sandbox_id: id.parse().ok()?,
    })
}

/// The middleware: proxies requests that name a sandbox, passes the rest to `next`.
pub async fn layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match target(req.headers()) {
        Ok(None) if is_signed_files(&req) => match signed_files(&state, req).await {
            Ok(r) => r,
            Err(e) => e.into_response(),
        },
        Ok(None) => next.run(req).await,
        Ok(Some(t)) => match proxy(&state, t, req).await {
            Ok(r) => r,
            Err(e) => e.into_response(),
        },
        Err(e) => e.into_response(),
    }
}

/// Who is calling.
enum Caller {
    /// The sandbox's own envd token: the sandbox, loaded.
    Token(Box<crate::store::sandbox::SandboxRecord>),
    /// An API key or user JWT of this team.
    Team(TeamId),
}

/// Authenticates the request for sandbox `id`.
async fn authorize(
    state: &AppState,
    parts: &mut http::request::Parts,
    id: SandboxId,
) -> Result<Caller, ProxyError> {
    if let Some(given) = parts.headers.get(ACCESS_TOKEN_HEADER) {
        let record = crate::store::sandbox::get(state.store().pool(), id)
            .await
            .map_err(|e| ProxyError::Internal(e.to_string()))?
            .ok_or_else(|| ProxyError::NotFound(id.to_string()))?;
        use subtle::ConstantTimeEq;
        let ok = record
            .envd_access_token
            .as_deref()
            .is_some_and(|t| bool::from(t.as_bytes().ct_eq(given.as_bytes())));
        return if ok {
            Ok(Caller::Token(Box::new(record)))
        } else {
            Err(ProxyError::Unauthenticated("invalid access token"))
        };
    }
    let has_bearer = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer "));
    if has_bearer || parts.headers.contains_key(API_KEY_HEADER) {
        return match TeamAuth::from_request_parts(parts, state).await {
            Ok(a) => Ok(Caller::Team(a.team_id())),
            Err(_) => Err(ProxyError::Unauthenticated("invalid credentials")),
        };
    }
    if let Some(token) = access_token_query(parts.uri.query()) {
        // Browsers cannot set headers on a WebSocket: `?access_token=` (user JWT or API key).
        return team_from_access_token(state, &token)
            .await
            .map(Caller::Team)
            .map_err(|_| ProxyError::Unauthenticated("invalid credentials"));
    }
    Err(ProxyError::Unauthenticated(
        "missing credentials: X-Access-Token, X-API-Key or Authorization: Bearer",
    ))
}

/// The team of a user JWT or API key given as a string (`?access_token=`).
pub async fn team_from_access_token(state: &AppState, token: &str) -> Result<TeamId, ApiError> {
    let mut h = HeaderMap::new();
    let bad = |_| ApiError::Unauthenticated("invalid access_token");
    if crate::api_key::looks_like_key(token) {
        h.insert(API_KEY_HEADER, HeaderValue::from_str(token).map_err(bad)?);
    } else {
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).map_err(bad)?,
        );
    }
    let (mut p, _) = http::Request::new(()).into_parts();
    p.headers = h;
    Ok(TeamAuth::from_request_parts(&mut p, state).await?.team_id())
}

/// The `access_token` query parameter, decoded.
pub fn access_token_query(query: Option<&str>) -> Option<String> {
    query_param(query?, "access_token").filter(|v| !v.is_empty())
}

/// `GET`/`POST /files?...&signature=v1_...`: the SDK's signed file URLs
/// (`sbx.download_url`, `sbx.upload_url`). With `E2B_SANDBOX_URL` pointing here they carry
/// no sandbox id: the signature (SHA-256 of `path:operation:user:envd token[:expiry]`)
/// names it. The running sandbox whose token makes the signature is the target; the request
/// goes on to its envd with that token.
fn is_signed_files(req: &Request) -> bool {
    req.uri().path() == "/files"
        && matches!(*req.method(), http::Method::GET | http::Method::POST)
        && req
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|kv| kv.starts_with("signature=")))
}

/// The first value of query parameter `name`, decoded.
pub(crate) fn query_param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The v1 file URL signature of the e2b SDKs.
pub fn file_signature(
    path: &str,
    operation: &str,
    user: &str,
    token: &str,
    expiration: Option<i64>,
) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let raw = match expiration {
        Some(e) => format!("{path}:{operation}:{user}:{token}:{e}"),
        None => format!("{path}:{operation}:{user}:{token}"),
    };
    let digest = sha2::Sha256::digest(raw.as_bytes());
    format!(
        "v1_{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
    )
}

async fn signed_files(state: &AppState, req: Request) -> Result<Response, ProxyError> {
    let query = req.uri().query().unwrap_or_default().to_string();
    let signature = query_param(&query, "signature").unwrap_or_default();
    let path = query_param(&query, "path").unwrap_or_default();
    let user = query_param(&query, "username").unwrap_or_default();
    let operation = if req.method() == http::Method::GET {
        "read"
    } else {
        "write"
    };
    let expiration =
        match query_param(&query, "signature_expiration") {
            Some(e) => Some(e.parse::<i64>().map_err(|_| {
                ProxyError::BadRequest(format!("invalid signature_expiration {e:?}"))
            })?),
            None => None,
        };
    use sqlx::Row as _;
    let rows = sqlx::query(
        "SELECT id, envd_access_token FROM sandboxes \
         WHERE status = 'running' AND envd_access_token IS NOT NULL",
    )
    .fetch_all(state.store().pool())
    .await
    .map_err(|e| ProxyError::Internal(e.to_string()))?;
    let found = rows.iter().find_map(|row| {
        let token: String = row.try_get("envd_access_token").ok()?;
        let want = file_signature(&path, operation, &user, &token, expiration);
        use subtle::ConstantTimeEq;
        bool::from(want.as_bytes().ct_eq(signature.as_bytes())).then(|| {
            let id: String = row.try_get("id").unwrap_or_default();
            (id, token)
        })
    });
    let Some((id, token)) = found else {
        return Err(ProxyError::Unauthenticated("invalid signature"));
    };
    if expiration.is_some_and(|e| e < chrono::Utc::now().timestamp()) {
        return Err(ProxyError::Expired);
    }
    let id: SandboxId = id
        .parse()
        .map_err(|_| ProxyError::Internal(format!("bad sandbox id {id:?} in store")))?;
    let record = crate::store::sandbox::get(state.store().pool(), id)
        .await
        .map_err(|e| ProxyError::Internal(e.to_string()))?
        .ok_or_else(|| ProxyError::NotFound(id.to_string()))?;
    let route = crate::sandbox::service::route_of(state, &record)
        .await
        .map_err(|e| route_error(id, e))?;
    let (mut parts, body) = req.into_parts();
    parts.headers.remove(header::AUTHORIZATION);
    parts.headers.remove(API_KEY_HEADER);
    parts.headers.insert(
        ACCESS_TOKEN_HEADER,
        HeaderValue::from_str(&token).map_err(|e| ProxyError::Internal(e.to_string()))?,
    );
    parts.headers.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {}", route.bearer))
            .map_err(|e| ProxyError::Internal(e.to_string()))?,
    );
    let authority = route
        .agent_base_url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let path_and_query = format!("/proxy/{id}/{ENVD_PORT}/files?{query}");
    forward(
        &authority,
        &path_and_query,
        Request::from_parts(parts, body),
    )
    .await
    .map_err(|reason| ProxyError::Upstream {
        sandbox_id: id.to_string(),
        reason,
    })
}

fn route_error(id: SandboxId, e: ApiError) -> ProxyError {
    match e {
        ApiError::NotFound(_) => ProxyError::NotFound(id.to_string()),
        ApiError::Conflict(reason) => ProxyError::Unavailable {
            sandbox_id: id.to_string(),
            reason,
        },
        ApiError::Unavailable(reason) => ProxyError::Unavailable {
            sandbox_id: id.to_string(),
            reason: reason.to_string(),
        },
        ApiError::Upstream(reason) => ProxyError::Unavailable {
            sandbox_id: id.to_string(),
            reason,
        },
        other => ProxyError::Internal(other.to_string()),
    }
}

async fn proxy(state: &AppState, t: Target, req: Request) -> Result<Response, ProxyError> {
    let (mut parts, body) = req.into_parts();
    let route = match authorize(state, &mut parts, t.sandbox_id).await? {
        Caller::Token(r) => crate::sandbox::service::route_of(state, &r).await,
        Caller::Team(team) => crate::sandbox::service::route(state, team, t.sandbox_id).await,
    }
    .map_err(|e| route_error(t.sandbox_id, e))?;
    // Our credentials stop here; the caller's Basic (envd's user) travels on.
    parts.headers.remove(API_KEY_HEADER);
    parts.headers.remove(SANDBOX_ID_HEADER);
    parts.headers.remove(SANDBOX_PORT_HEADER);
    if t.port != ENVD_PORT {
        parts.headers.remove(ACCESS_TOKEN_HEADER);
    }
    parts.headers.remove(FORWARDED_AUTHORIZATION);
    if let Some(a) = parts.headers.remove(header::AUTHORIZATION)
        && a.to_str()
            .is_ok_and(|v| !v.to_ascii_lowercase().starts_with("bearer "))
    {
        parts.headers.insert(FORWARDED_AUTHORIZATION, a);
    }
    parts.headers.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {}", route.bearer))
            .map_err(|e| ProxyError::Internal(e.to_string()))?,
    );
    let mut path = format!("/proxy/{}/{}{}", t.sandbox_id, t.port, parts.uri.path());
    if let Some(q) = parts.uri.query() {
        path.push('?');
        path.push_str(q);
    }
    let authority = route
        .agent_base_url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    forward(&authority, &path, Request::from_parts(parts, body))
        .await
        .map_err(|reason| ProxyError::Upstream {
            sandbox_id: t.sandbox_id.to_string(),
            reason,
        })
}

/// Sends `req` to the agent at `authority` as `path_and_query` (one fresh connection,
/// streaming, upgrades spliced: `warren_proto::forward`). The error is a message.
pub async fn forward(
    authority: &str,
    path_and_query: &str,
    req: Request,
) -> Result<Response, String> {
    let resp = warren_proto::forward::forward(
        authority,
        path_and_query,
        req,
        warren_proto::forward::Options::default(),
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(resp.map(|b| b.map_or_else(Body::empty, Body::new)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_from_headers_and_hosts() {
        let id = SandboxId::new();
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "localhost:3000".parse().unwrap());
        assert_eq!(target(&h).unwrap(), None);
        h.insert(header::HOST, "api.example.com".parse().unwrap());
        assert_eq!(target(&h).unwrap(), None);
        h.insert(
            header::HOST,
            format!("8080-{id}.sb.example.com:443").parse().unwrap(),
        );
        assert_eq!(
            target(&h).unwrap(),
            Some(Target {
                sandbox_id: id,
                port: 8080
            })
        );
        h.insert(SANDBOX_ID_HEADER, id.to_string().parse().unwrap());
        assert!(target(&h).is_err(), "id without port");
        h.insert(SANDBOX_PORT_HEADER, "49983".parse().unwrap());
        assert_eq!(
            target(&h).unwrap(),
            Some(Target {
                sandbox_id: id,
                port: 49983
            })
        );
        h.insert(SANDBOX_PORT_HEADER, "0".parse().unwrap());
        assert!(target(&h).is_err());
    }

    #[test]
    fn file_signature_matches_the_sdk() {
        // Values computed with e2b 2.63's `e2b.sandbox.signature.get_signature`.
        assert_eq!(
            file_signature("a.txt", "read", "user", "tok", None),
            "v1_wPjHOh/p+K3FbqiyGd5vwPNc/g4IPd8sigMxb1gqu9I"
        );
        assert_eq!(
            file_signature("a.txt", "write", "", "tok", Some(1_700_000_060)),
            "v1_o2AcGNRtjnl57eHqOQzpyOGNb3/u7tpMCE+4qgfN7eY"
        );
    }

    #[test]
    fn access_token_query_is_decoded() {
        assert_eq!(
            access_token_query(Some("cols=80&access_token=a%2Bb")),
            Some("a+b".to_string())
        );
        assert_eq!(access_token_query(Some("access_token=")), None);
        assert_eq!(access_token_query(None), None);
    }
}
