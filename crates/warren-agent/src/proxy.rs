//! The agent's HTTP proxy into its sandboxes: `/proxy/{sandbox_id}/{port}/{*rest}`.
//!
//! Why it exists: the control plane (and through it the `e2b` SDK, browsers and the console's
//! terminal) reaches any port inside a sandbox, envd's 49983 included, without a route to the
//! sandbox network: only the agent can reach a sandbox's address. It sits behind the same auth
//! layer as the RPCs ([`crate::rpc::router`] merges [`router`] before its auth layer).
//!
//! What it keeps: the method, the headers minus hop-by-hop ones and our `Authorization` (the
//! caller's own `Authorization`, e.g. the SDK's `Basic user:` that picks envd's user, travels
//! in [`FORWARDED_AUTHORIZATION`] and is restored), the body and the response streamed chunk by
//! chunk (Connect streaming stays streaming), and HTTP upgrades (WebSocket): after a 101 both
//! upgraded connections are copied into each other. The upstream HTTP version follows the
//! caller's (HTTP/1.1, or h2c for HTTP/2).
//!
//! Every request opens its own connection to the sandbox and closes it with a reset when done:
//! nothing pooled stays open inside the sandbox, because this runsc cannot checkpoint a sandbox
//! holding a TCP connection (pause also aborts the open ones first). Unknown sandboxes are a
//! 502 `sandbox … was not found`, not a 404 (that would look like envd's own 404s). The TTL is
//! not bumped: like E2B, a sandbox's timeout runs from its last create/resume/set-timeout.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use http::{HeaderMap, StatusCode, header};

use crate::sandbox::{SandboxError, SandboxManager};

/// Header carrying the caller's own `Authorization` through hops that use `Authorization`
/// for themselves; restored as `Authorization` towards the sandbox.
pub const FORWARDED_AUTHORIZATION: &str = "x-warren-forwarded-authorization";

/// Errors of forwarding one request.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The port is not a TCP port number.
    #[error("invalid port {0:?}")]
    InvalidPort(String),
    /// The sandbox is unknown here.
    #[error("sandbox {0} was not found")]
    NotFound(String),
    /// The sandbox exists but is not running (paused, in transition).
    #[error("sandbox {sandbox_id} is not running: {reason}")]
    NotRunning {
        /// The sandbox.
        sandbox_id: String,
        /// Its state.
        reason: String,
    },
    /// Connecting or talking to the sandbox failed.
    #[error("sandbox {sandbox_id} port {port}: {reason}")]
    Upstream {
        /// The sandbox.
        sandbox_id: String,
        /// The port.
        port: u16,
        /// What failed.
        reason: String,
    },
}

impl IntoResponse for ProxyError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            ProxyError::InvalidPort(_) => (StatusCode::BAD_REQUEST, "invalid_argument"),
            // 502 like E2B's proxy: the SDK's `is_running()` reads a 502 "… was not found"
            // as "the sandbox is gone" (a 404 would look like envd's own, e.g. a missing file).
            ProxyError::NotFound(_) => (StatusCode::BAD_GATEWAY, "not_found"),
            ProxyError::NotRunning { .. } => (StatusCode::BAD_GATEWAY, "failed_precondition"),
            ProxyError::Upstream { .. } => (StatusCode::BAD_GATEWAY, "unavailable"),
        };
        let body = serde_json::json!({ "code": code, "message": self.to_string() });
        (status, axum::Json(body)).into_response()
    }
}

/// The proxy routes (no auth here: the caller mounts them behind the agent's auth layer).
pub fn router(mgr: SandboxManager) -> axum::Router {
    axum::Router::new()
        .route("/proxy/{sandbox_id}/{port}", any(proxy_root))
        .route("/proxy/{sandbox_id}/{port}/", any(proxy_root))
        .route("/proxy/{sandbox_id}/{port}/{*rest}", any(proxy_rest))
        .with_state(mgr)
}

async fn proxy_root(
    State(mgr): State<SandboxManager>,
    Path((sandbox_id, port)): Path<(String, String)>,
    req: Request,
) -> Response {
    proxy(mgr, sandbox_id, port, String::new(), req).await
}

async fn proxy_rest(
    State(mgr): State<SandboxManager>,
    Path((sandbox_id, port, rest)): Path<(String, String, String)>,
    req: Request,
) -> Response {
    proxy(mgr, sandbox_id, port, rest, req).await
}

async fn proxy(
    mgr: SandboxManager,
    sandbox_id: String,
    port: String,
    rest: String,
    req: Request,
) -> Response {
    let port: u16 = match port.parse() {
        Ok(p) if p > 0 => p,
        _ => return ProxyError::InvalidPort(port).into_response(),
    };
    let addr = match mgr.envd_addr(&sandbox_id, false) {
        Ok(a) => SocketAddr::new(a.ip(), port),
        Err(SandboxError::NotFound(_) | SandboxError::InvalidArgument(_)) => {
            return ProxyError::NotFound(sandbox_id).into_response();
        }
        Err(e) => {
            return ProxyError::NotRunning {
                sandbox_id,
                reason: e.to_string(),
            }
            .into_response();
        }
    };
    // The raw (still percent-encoded) rest of the path, not the decoded capture.
    let raw_path = req.uri().path();
    let prefix = format!("/proxy/{sandbox_id}/{port}");
    let rest_raw = raw_path
        .split_once(&prefix)
        .map(|(_, r)| r.to_string())
        .unwrap_or_else(|| format!("/{rest}"));
    let mut path = if rest_raw.is_empty() {
        "/".to_string()
    } else {
        rest_raw
    };
    if let Some(q) = req.uri().query() {
        path.push('?');
        path.push_str(q);
    }
    match forward(addr, &path, req).await {
        Ok(r) => r,
        Err(reason) => ProxyError::Upstream {
            sandbox_id,
            port,
            reason,
        }
        .into_response(),
    }
}

/// Sends `req` into the sandbox at `addr` as `path_and_query` (one fresh connection closed
/// with a reset, streaming, upgrades spliced: `warren_proto::forward`). Our own
/// `Authorization` (the control plane's token) goes no further; the caller's, parked by the
/// control plane in [`FORWARDED_AUTHORIZATION`], is put back for envd.
pub async fn forward(
    addr: SocketAddr,
    path_and_query: &str,
    mut req: Request,
) -> Result<Response, String> {
    restore_caller_auth(req.headers_mut());
    let resp = warren_proto::forward::forward(
        &addr.to_string(),
        path_and_query,
        req,
        warren_proto::forward::Options {
            reset_on_close: true,
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(resp.map(|b| b.map_or_else(Body::empty, Body::new)))
}

fn restore_caller_auth(headers: &mut HeaderMap) {
    let caller = headers.remove(FORWARDED_AUTHORIZATION);
    headers.remove(header::AUTHORIZATION);
    if let Some(a) = caller {
        headers.insert(header::AUTHORIZATION, a);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn our_auth_goes_no_further_and_the_callers_comes_back() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer agent"),
        );
        h.insert("x-access-token", HeaderValue::from_static("t"));
        restore_caller_auth(&mut h);
        assert!(h.get(header::AUTHORIZATION).is_none());
        assert_eq!(h.get("x-access-token").unwrap(), "t");
        h.insert(
            FORWARDED_AUTHORIZATION,
            HeaderValue::from_static("Basic dXNlcjo="),
        );
        restore_caller_auth(&mut h);
        assert_eq!(h[header::AUTHORIZATION], "Basic dXNlcjo=");
        assert!(h.get(FORWARDED_AUTHORIZATION).is_none());
    }
}
