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
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, Version, header};
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::sandbox::{SandboxError, SandboxManager};

/// Header carrying the caller's own `Authorization` through hops that use `Authorization`
/// for themselves; restored as `Authorization` towards the sandbox.
pub const FORWARDED_AUTHORIZATION: &str = "x-warren-forwarded-authorization";

/// How long connecting to the sandbox may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

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

/// Headers that describe one hop, never forwarded (RFC 9110 §7.6.1), plus our own auth.
fn strip_hop_headers(headers: &mut HeaderMap) {
    // Headers named by `Connection` are hop-by-hop too.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    for h in [
        header::CONNECTION,
        HeaderName::from_static("keep-alive"),
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        HeaderName::from_static("proxy-connection"),
        header::AUTHORIZATION,
    ] {
        headers.remove(h);
    }
}

fn upgrade_of(headers: &HeaderMap) -> Option<HeaderValue> {
    let wants = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    if wants {
        headers.get(header::UPGRADE).cloned()
    } else {
        None
    }
}

/// Sends `req` to `addr` with `path_and_query`, on a fresh connection, and returns the
/// response streaming. Upgrades are spliced. The error is a message for the caller.
pub async fn forward(
    addr: SocketAddr,
    path_and_query: &str,
    req: Request,
) -> Result<Response, String> {
    let (mut parts, body) = req.into_parts();
    let upgrade = upgrade_of(&parts.headers);
    let client_upgrade = upgrade
        .as_ref()
        .and_then(|_| parts.extensions.remove::<hyper::upgrade::OnUpgrade>());
    let caller_auth = parts.headers.remove(FORWARDED_AUTHORIZATION);
    strip_hop_headers(&mut parts.headers);
    if let Some(a) = caller_auth {
        parts.headers.insert(header::AUTHORIZATION, a);
    }
    let h2 = parts.version == Version::HTTP_2 && upgrade.is_none();
    if let Some(u) = &upgrade {
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        parts.headers.insert(header::UPGRADE, u.clone());
    }
    let authority = addr.to_string();
    parts.uri = if h2 {
        format!("http://{authority}{path_and_query}")
    } else {
        path_and_query.to_string()
    }
    .parse::<Uri>()
    .map_err(|e| format!("bad path {path_and_query:?}: {e}"))?;
    parts.headers.insert(
        header::HOST,
        HeaderValue::from_str(&authority).map_err(|e| e.to_string())?,
    );
    parts.version = if h2 {
        Version::HTTP_2
    } else {
        Version::HTTP_11
    };
    let upstream_req = http::Request::from_parts(parts, body);

    let stream = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| format!("connect timed out after {CONNECT_TIMEOUT:?}"))?
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    // Closed with a reset: no TIME_WAIT socket left inside the sandbox to block a checkpoint.
    let _ = stream.set_zero_linger();
    let io = TokioIo::new(stream);

    let mut resp = if h2 {
        let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|e| format!("h2 handshake: {e}"))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "proxy upstream h2 connection ended");
            }
        });
        send.send_request(upstream_req)
            .await
            .map_err(|e| format!("request: {e}"))?
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "proxy upstream connection ended");
            }
        });
        send.send_request(upstream_req)
            .await
            .map_err(|e| format!("request: {e}"))?
    };

    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgrade) = client_upgrade else {
            return Err("upstream switched protocols without an upgrade request".into());
        };
        let upstream_upgrade = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            let (client, upstream) = match tokio::try_join!(client_upgrade, upstream_upgrade) {
                Ok(p) => p,
                Err(e) => {
                    tracing::debug!(error = %e, "proxy upgrade failed");
                    return;
                }
            };
            let mut client = TokioIo::new(client);
            let mut upstream = TokioIo::new(upstream);
            if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                tracing::debug!(error = %e, "proxy upgraded connection ended");
            }
        });
        let (parts, _) = resp.into_parts();
        return Ok(Response::from_parts(parts, Body::empty()));
    }
    let (mut parts, body) = resp.into_parts();
    strip_response_hop_headers(&mut parts.headers);
    Ok(Response::from_parts(parts, Body::new(body)))
}

fn strip_response_hop_headers(headers: &mut HeaderMap) {
    for h in [
        header::CONNECTION,
        HeaderName::from_static("keep-alive"),
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        HeaderName::from_static("proxy-connection"),
    ] {
        headers.remove(h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_headers_and_our_auth_are_stripped() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-hop"),
        );
        h.insert("x-hop", HeaderValue::from_static("1"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer agent"),
        );
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert("x-access-token", HeaderValue::from_static("t"));
        strip_hop_headers(&mut h);
        assert!(h.get("x-hop").is_none());
        assert!(h.get(header::AUTHORIZATION).is_none());
        assert!(h.get(header::TE).is_none());
        assert_eq!(h.get("x-access-token").unwrap(), "t");
    }

    #[test]
    fn upgrade_needs_connection_upgrade() {
        let mut h = HeaderMap::new();
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(upgrade_of(&h).is_none());
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert_eq!(upgrade_of(&h).unwrap(), "websocket");
    }
}
