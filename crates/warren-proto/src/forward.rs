//! One proxied HTTP request over a fresh TCP connection: the hop both proxies make (control
//! plane → agent `/proxy`, agent → a port inside a sandbox).
//!
//! [`forward`] strips hop-by-hop headers (RFC 9110 §7.6.1), keeps the caller's HTTP version
//! (h2c when the request came as HTTP/2 and is not an upgrade, else HTTP/1.1), streams the
//! body both ways, and splices upgrades (WebSocket) with a bidirectional copy. A connection per
//! request is deliberate: one slow stream never stalls another, and a connection into a
//! sandbox never outlives its request (it would block a checkpoint). Callers decide what to do
//! with `Authorization` before calling: it is not a hop header here.

use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// How long connecting to the next hop may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a request could not be forwarded.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The path is not a valid URI path.
    #[error("bad path {path:?}: {source}")]
    BadPath {
        /// The path and query.
        path: String,
        /// The parse error.
        source: http::uri::InvalidUri,
    },
    /// The authority is not a valid `Host` value.
    #[error("bad authority {0:?}")]
    BadAuthority(String),
    /// Connecting took longer than [`CONNECT_TIMEOUT`].
    #[error("connect to {0} timed out")]
    ConnectTimeout(String),
    /// Connecting failed.
    #[error("connect to {authority}: {source}")]
    Connect {
        /// Where.
        authority: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The HTTP handshake or exchange failed.
    #[error("{step} with {authority}: {source}")]
    Http {
        /// handshake or request.
        step: &'static str,
        /// Where.
        authority: String,
        /// The hyper error.
        source: hyper::Error,
    },
    /// The next hop answered 101 to a request that asked for no upgrade.
    #[error("{0} switched protocols without an upgrade request")]
    UnaskedUpgrade(String),
}

/// Options of one forward.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Close the connection with a reset (SO_LINGER 0): no TIME_WAIT socket is left at the
    /// other end (inside a sandbox, one would block a checkpoint).
    pub reset_on_close: bool,
}

/// Removes the headers that describe one hop, and those `Connection` names.
pub fn strip_hop_headers(headers: &mut HeaderMap) {
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
    ] {
        headers.remove(h);
    }
}

/// The protocol a request asks to upgrade to (`Connection: upgrade` + `Upgrade`), if any.
pub fn upgrade_of(headers: &HeaderMap) -> Option<HeaderValue> {
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

/// Sends `req` to `authority` (`host:port`) as `path_and_query` on a fresh connection and
/// returns the response head with its body streaming (`None` after a spliced 101 upgrade).
pub async fn forward<B>(
    authority: &str,
    path_and_query: &str,
    req: Request<B>,
    options: Options,
) -> Result<Response<Option<Incoming>>, ForwardError>
where
    B: http_body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (mut parts, body) = req.into_parts();
    let upgrade = upgrade_of(&parts.headers);
    let client_upgrade = upgrade
        .as_ref()
        .and_then(|_| parts.extensions.remove::<hyper::upgrade::OnUpgrade>());
    strip_hop_headers(&mut parts.headers);
    let h2 = parts.version == Version::HTTP_2 && upgrade.is_none();
    if let Some(u) = &upgrade {
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        parts.headers.insert(header::UPGRADE, u.clone());
    }
    parts.uri = if h2 {
        format!("http://{authority}{path_and_query}")
    } else {
        path_and_query.to_string()
    }
    .parse::<Uri>()
    .map_err(|source| ForwardError::BadPath {
        path: path_and_query.to_string(),
        source,
    })?;
    parts.headers.insert(
        header::HOST,
        HeaderValue::from_str(authority)
            .map_err(|_| ForwardError::BadAuthority(authority.to_string()))?,
    );
    parts.version = if h2 {
        Version::HTTP_2
    } else {
        Version::HTTP_11
    };
    let upstream_req = Request::from_parts(parts, body);

    let stream = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(authority))
        .await
        .map_err(|_| ForwardError::ConnectTimeout(authority.to_string()))?
        .map_err(|source| ForwardError::Connect {
            authority: authority.to_string(),
            source,
        })?;
    let _ = stream.set_nodelay(true);
    if options.reset_on_close {
        let _ = stream.set_zero_linger();
    }
    let io = TokioIo::new(stream);
    let http_err = |step| {
        move |source| ForwardError::Http {
            step,
            authority: authority.to_string(),
            source,
        }
    };
    let mut resp = if h2 {
        let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(http_err("h2 handshake"))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "forwarded h2 connection ended");
            }
        });
        send.send_request(upstream_req)
            .await
            .map_err(http_err("request"))?
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(http_err("handshake"))?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "forwarded connection ended");
            }
        });
        send.send_request(upstream_req)
            .await
            .map_err(http_err("request"))?
    };

    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgrade) = client_upgrade else {
            return Err(ForwardError::UnaskedUpgrade(authority.to_string()));
        };
        let upstream_upgrade = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            let (client, upstream) = match tokio::try_join!(client_upgrade, upstream_upgrade) {
                Ok(p) => p,
                Err(e) => {
                    tracing::debug!(error = %e, "forwarded upgrade failed");
                    return;
                }
            };
            let mut client = TokioIo::new(client);
            let mut upstream = TokioIo::new(upstream);
            if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                tracing::debug!(error = %e, "forwarded upgraded connection ended");
            }
        });
        let (parts, _) = resp.into_parts();
        return Ok(Response::from_parts(parts, None));
    }
    let (mut parts, body) = resp.into_parts();
    strip_response_hop_headers(&mut parts.headers);
    Ok(Response::from_parts(parts, Some(body)))
}

/// Response headers that describe one hop.
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
    fn hop_headers_and_the_ones_connection_names_are_stripped() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, "keep-alive, x-hop".parse().unwrap());
        h.insert("x-hop", "1".parse().unwrap());
        h.insert(header::TE, "trailers".parse().unwrap());
        h.insert(header::AUTHORIZATION, "Bearer t".parse().unwrap());
        h.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        strip_hop_headers(&mut h);
        assert!(h.get("x-hop").is_none() && h.get(header::TE).is_none());
        assert!(h.get(header::CONNECTION).is_none());
        assert_eq!(
            h[header::AUTHORIZATION],
            "Bearer t",
            "auth is the caller's call"
        );
        assert_eq!(h[header::CONTENT_TYPE], "text/plain");
    }

    #[test]
    fn upgrade_needs_both_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::UPGRADE, "websocket".parse().unwrap());
        assert_eq!(upgrade_of(&h), None);
        h.insert(header::CONNECTION, "keep-alive, Upgrade".parse().unwrap());
        assert_eq!(upgrade_of(&h).unwrap(), "websocket");
    }
}
