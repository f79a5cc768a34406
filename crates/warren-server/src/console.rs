//! The web console: the single-page app built from `web/` (TypeScript, Vite) and embedded in
//! the binary, so a control plane serves its own dashboard with no CDN and no files on disk.
//!
//! `web/dist` is committed (the Rust build needs no Node); `scripts/test` rebuilds it with
//! `npm ci && npm run build` and fails when the committed build is stale. The build gives
//! assets stable names (no content hashes), so every response carries a strong `ETag` (the
//! SHA-256 rust-embed computes at build time) and `Cache-Control: no-cache`: browsers
//! revalidate and get a `304` until the binary changes.
//!
//! Routes: `/` and `/console/...` answer with `index.html` (the app routes on the client),
//! `/assets/...` and `/favicon.svg` with the files, `/test` (the seed's test page) redirects
//! into the console. Anything else, `/v1/...` included, falls through to the JSON 404.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use rust_embed::RustEmbed;

use crate::error::ApiError;

/// The built console (`web/dist`), embedded at compile time (also in debug builds:
/// `debug-embed`), so tests serve exactly what a release serves.
#[derive(RustEmbed)]
#[folder = "../../web/dist/"]
struct Dist;

/// Where the console starts; `/test` sends the seed's users here.
const CONSOLE_HOME: &str = "/console/sandboxes";

/// The policy for the console's HTML: scripts and styles from this origin only (xterm.js
/// injects `<style>` elements, hence `unsafe-inline` for styles), API and WebSocket calls to
/// this origin, no framing.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data: blob:; connect-src 'self'; font-src 'self' data:; \
                   object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// The console's routes, to merge into [`crate::app`] (they need no state).
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/console", get(index))
        .route("/console/", get(index))
        .route("/console/{*client_route}", get(index))
        .route("/assets/{*path}", get(asset))
        .route("/favicon.svg", get(favicon))
        .route("/test", get(test_page))
}

async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&format!("assets/{path}"), &headers)
}

async fn favicon(headers: HeaderMap) -> Response {
    serve("favicon.svg", &headers)
}

/// The seed served a test page here; its job is now the console's.
async fn test_page() -> Redirect {
    Redirect::to(CONSOLE_HOME)
}

/// One embedded file with its content type, ETag and cache policy; `304` when the browser's
/// copy is current; our JSON 404 when there is no such file.
fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some(file) = Dist::get(path) else {
        return ApiError::NotFound(format!("no console file {path}")).into_response();
    };
    let etag = format!("\"{}\"", hex(&file.metadata.sha256_hash()));
    let mut response = if if_none_match(headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = file.data.into_owned().into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(content_type(path)),
        );
        r
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if path.ends_with(".html") {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
    }
    response
}

/// Whether `If-None-Match` lists `etag` (or `*`).
fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

/// The content type of the file types Vite emits; anything else is opaque bytes.
fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    match ext {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" | "map" => "application/json",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get(path: &str, if_none_match: Option<&str>) -> Response {
        let mut req = Request::get(path);
        if let Some(tag) = if_none_match {
            req = req.header(header::IF_NONE_MATCH, tag);
        }
        routes::<()>()
            .oneshot(req.body(Body::empty()).expect("static request"))
            .await
            .expect("router is infallible")
    }

    fn ctype(r: &Response) -> &str {
        r.headers()[header::CONTENT_TYPE].to_str().unwrap()
    }

    #[tokio::test]
    async fn client_routes_get_the_app_with_its_policy() {
        for path in [
            "/",
            "/console",
            "/console/",
            "/console/sandboxes/abc/terminal",
        ] {
            let r = get(path, None).await;
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            assert_eq!(ctype(&r), "text/html; charset=utf-8", "{path}");
            assert_eq!(r.headers()[header::CACHE_CONTROL], "no-cache");
            assert!(r.headers().contains_key(header::CONTENT_SECURITY_POLICY));
            let body = axum::body::to_bytes(r.into_body(), usize::MAX)
                .await
                .unwrap();
            let html = String::from_utf8(body.to_vec()).unwrap();
            assert!(html.contains("/assets/console.js"), "{path}: {html}");
        }
    }

    #[tokio::test]
    async fn assets_have_types_and_revalidate_with_etags() {
        let js = get("/assets/console.js", None).await;
        assert_eq!(js.status(), StatusCode::OK);
        assert_eq!(ctype(&js), "text/javascript; charset=utf-8");
        let etag = js.headers()[header::ETAG].to_str().unwrap().to_owned();
        assert!(etag.starts_with('"') && etag.len() == 66, "{etag}");

        let again = get("/assets/console.js", Some(&etag)).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        let body = axum::body::to_bytes(again.into_body(), usize::MAX)
            .await
            .unwrap();
        assert!(body.is_empty());

        let other = get("/assets/console.js", Some("\"stale\"")).await;
        assert_eq!(other.status(), StatusCode::OK);

        let css = get("/assets/style.css", None).await;
        assert_eq!(ctype(&css), "text/css; charset=utf-8");
        let icon = get("/favicon.svg", None).await;
        assert_eq!(ctype(&icon), "image/svg+xml");
    }

    #[tokio::test]
    async fn unknown_assets_are_json_404s() {
        let r = get("/assets/nope.js", None).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(ctype(&r), "application/json");
    }

    #[tokio::test]
    async fn test_page_redirects_into_the_console() {
        let r = get("/test", None).await;
        assert!(r.status().is_redirection(), "{}", r.status());
        assert_eq!(r.headers()[header::LOCATION], CONSOLE_HOME);
    }

    #[test]
    fn content_types_and_etag_matching() {
        assert_eq!(content_type("a/b.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("noext"), "application/octet-stream");
        let mut h = HeaderMap::new();
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"x\", W/\"y\""),
        );
        assert!(if_none_match(&h, "\"y\""));
        assert!(!if_none_match(&h, "\"z\""));
        assert_eq!(hex(&[0, 15, 255]), "000fff");
    }
}
