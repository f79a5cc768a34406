//! The OpenAPI document lists every route with its error responses, and Swagger UI is served
//! from vendored assets.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{Auth, TestApp, both_stores};

/// Every route of the API: (method, OpenAPI path, a concrete path to call).
const ROUTES: &[(&str, &str, &str)] = &[
    ("get", "/healthz", "/healthz"),
    ("get", "/readyz", "/readyz"),
    ("post", "/v1/auth/signup", "/v1/auth/signup"),
    ("post", "/v1/auth/login", "/v1/auth/login"),
    ("post", "/v1/auth/switch-team", "/v1/auth/switch-team"),
    ("get", "/v1/me", "/v1/me"),
    ("get", "/v1/teams", "/v1/teams"),
    ("post", "/v1/teams", "/v1/teams"),
    ("get", "/v1/teams/{team_id}", "/v1/teams/x"),
    ("get", "/v1/teams/{team_id}/members", "/v1/teams/x/members"),
    ("post", "/v1/teams/{team_id}/members", "/v1/teams/x/members"),
    (
        "delete",
        "/v1/teams/{team_id}/members/{user_id}",
        "/v1/teams/x/members/y",
    ),
    ("post", "/v1/api-keys", "/v1/api-keys"),
    ("get", "/v1/api-keys", "/v1/api-keys"),
    ("delete", "/v1/api-keys/{key_id}", "/v1/api-keys/x"),
    ("post", "/v1/hosts", "/v1/hosts"),
    ("get", "/v1/hosts", "/v1/hosts"),
    ("get", "/v1/hosts/{host_id}", "/v1/hosts/x"),
    ("delete", "/v1/hosts/{host_id}", "/v1/hosts/x"),
    ("post", "/v1/hosts/{host_id}/token", "/v1/hosts/x/token"),
    ("post", "/v1/hosts/{host_id}/revoke", "/v1/hosts/x/revoke"),
    ("post", "/v1/hosts/register", "/v1/hosts/register"),
    ("post", "/v1/hosts/auth/refresh", "/v1/hosts/auth/refresh"),
    ("post", "/v1/hosts/heartbeat", "/v1/hosts/heartbeat"),
    ("post", "/v1/sandboxes", "/v1/sandboxes"),
    ("get", "/v1/sandboxes", "/v1/sandboxes"),
    ("get", "/v1/sandboxes/{sandbox_id}", "/v1/sandboxes/x"),
    ("delete", "/v1/sandboxes/{sandbox_id}", "/v1/sandboxes/x"),
    (
        "post",
        "/v1/sandboxes/{sandbox_id}/pause",
        "/v1/sandboxes/x/pause",
    ),
    (
        "post",
        "/v1/sandboxes/{sandbox_id}/resume",
        "/v1/sandboxes/x/resume",
    ),
    (
        "post",
        "/v1/sandboxes/{sandbox_id}/timeout",
        "/v1/sandboxes/x/timeout",
    ),
    (
        "post",
        "/v1/sandboxes/{sandbox_id}/exec",
        "/v1/sandboxes/x/exec",
    ),
    (
        "get",
        "/v1/sandboxes/{sandbox_id}/exec/stream",
        "/v1/sandboxes/x/exec/stream",
    ),
    (
        "get",
        "/v1/sandboxes/{sandbox_id}/files",
        "/v1/sandboxes/x/files",
    ),
    (
        "put",
        "/v1/sandboxes/{sandbox_id}/files",
        "/v1/sandboxes/x/files",
    ),
    (
        "post",
        "/v1/sandboxes/{sandbox_id}/files",
        "/v1/sandboxes/x/files",
    ),
    (
        "get",
        "/v1/sandboxes/{sandbox_id}/metrics",
        "/v1/sandboxes/x/metrics",
    ),
    ("post", "/v1/snapshots", "/v1/snapshots"),
    ("get", "/v1/snapshots", "/v1/snapshots"),
    ("delete", "/v1/snapshots/{name}", "/v1/snapshots/x"),
];

both_stores!(document_lists_every_route);

async fn document_lists_every_route(app: TestApp) {
    let (status, doc) = app.get("/openapi.json", Auth::None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(
        documented,
        ROUTES.len(),
        "documented operations vs known routes"
    );

    for (method, path, concrete) in ROUTES {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} not documented");
        let responses = op["responses"].as_object().expect("responses");
        assert!(
            responses.keys().any(|k| k.starts_with('2')),
            "{method} {path}: no success response"
        );
        if *path != "/healthz" {
            let errors: Vec<&Value> = responses
                .iter()
                .filter(|(k, _)| k.starts_with('4') || k.starts_with('5'))
                .map(|(_, v)| v)
                .collect();
            assert!(
                !errors.is_empty(),
                "{method} {path}: no error responses documented"
            );
            for e in errors {
                assert_eq!(
                    e.pointer("/content/application~1json/schema/$ref")
                        .and_then(Value::as_str),
                    Some("#/components/schemas/ErrorBody"),
                    "{method} {path}"
                );
            }
        }
        // The router has it too: not the unknown-route 404, not a 405.
        let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let got = app
            .send(app.client.request(m, app.url(concrete)), Auth::None)
            .await;
        assert_ne!(
            got.0,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {concrete}: {}",
            got.1
        );
        assert_ne!(
            got.1.pointer("/error/message").and_then(Value::as_str),
            Some("no such route"),
            "{method} {concrete}"
        );
    }
    for scheme in ["bearer", "api_key"] {
        assert!(
            doc["components"]["securitySchemes"][scheme].is_object(),
            "{scheme}"
        );
    }

    let yaml = app
        .client
        .get(app.url("/openapi.yaml"))
        .send()
        .await
        .unwrap();
    assert_eq!(yaml.status(), StatusCode::OK);
    assert!(yaml.text().await.unwrap().starts_with("openapi: 3.1.0"));

    // Swagger UI, from assets inside the binary.
    let docs = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.text().await.unwrap().contains("swagger-ui"));
    let js = app
        .client
        .get(app.url("/docs/swagger-ui-bundle.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), StatusCode::OK);
    assert!(js.bytes().await.unwrap().len() > 100_000);
}
