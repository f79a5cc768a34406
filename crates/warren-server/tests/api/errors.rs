//! Every failure of the HTTP layer itself (unknown route, wrong method, content type,
//! malformed or oversized body) answers in the error shape.

use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;

use crate::helpers::{Auth, TestApp, assert_error, both_stores};

both_stores!(http_layer_errors_have_the_shape);

async fn http_layer_errors_have_the_shape(app: TestApp) {
    let s = app.signup("err@example.com").await;
    let c = &app.client;
    let json_ct = (CONTENT_TYPE, "application/json");

    // Unknown routes, with and without credentials.
    for path in [
        "/nope",
        "/v1",
        "/v1/nope",
        "/v1/auth",
        "/v1/teams/x/y/z",
        "/v2/me",
    ] {
        assert_error(
            &app.get(path, Auth::None).await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
        assert_error(
            &app.get(path, Auth::Bearer(&s.token)).await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
    }
    // Wrong methods.
    for (method, path) in [
        (reqwest::Method::PUT, "/v1/me"),
        (reqwest::Method::GET, "/v1/auth/signup"),
        (reqwest::Method::DELETE, "/v1/teams"),
        (reqwest::Method::PATCH, "/v1/api-keys"),
        (reqwest::Method::POST, "/healthz"),
        (
            reqwest::Method::GET,
            "/v1/api-keys/0190aaaa-0000-7000-8000-000000000000",
        ),
    ] {
        let got = app
            .send(
                c.request(method.clone(), app.url(path)),
                Auth::Bearer(&s.token),
            )
            .await;
        assert_error(&got, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    }
    // Wrong or missing content type.
    let body = r#"{"email":"x@y.io","password":"password123"}"#;
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data"),
    ] {
        let mut req = c.post(app.url("/v1/auth/signup")).body(body);
        if let Some(ct) = ct {
            req = req.header(CONTENT_TYPE, ct);
        }
        assert_error(
            &app.send(req, Auth::None).await,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        );
    }
    // Malformed JSON (also on authenticated routes).
    for bad in [
        "",
        "{",
        "{\"email\":",
        "not json",
        "{'a': 1}",
        "\u{0}",
        "{\"name\": \"x\"}}",
    ] {
        let got = app
            .send(
                c.post(app.url("/v1/auth/login"))
                    .header(json_ct.0.clone(), json_ct.1)
                    .body(bad),
                Auth::None,
            )
            .await;
        assert_error(&got, StatusCode::BAD_REQUEST, "malformed_json");
        let got = app
            .send(
                c.post(app.url("/v1/teams"))
                    .header(json_ct.0.clone(), json_ct.1)
                    .body(bad),
                Auth::Bearer(&s.token),
            )
            .await;
        assert_error(&got, StatusCode::BAD_REQUEST, "malformed_json");
    }
    // Invalid UTF-8.
    let got = app
        .send(
            c.post(app.url("/v1/auth/login"))
                .header(json_ct.0.clone(), json_ct.1)
                .body(vec![b'"', 0xff, 0xfe, b'"']),
            Auth::None,
        )
        .await;
    assert_error(&got, StatusCode::BAD_REQUEST, "malformed_json");
    // Bodies over 1 MiB, valid JSON or not.
    let big_json = format!(
        r#"{{"email":"a@b.co","password":"{}"}}"#,
        "p".repeat(1024 * 1024 + 10)
    );
    for path in ["/v1/auth/signup", "/v1/auth/login"] {
        let got = app
            .send(
                c.post(app.url(path))
                    .header(json_ct.0.clone(), json_ct.1)
                    .body(big_json.clone()),
                Auth::None,
            )
            .await;
        assert_error(&got, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    }
    let got = app
        .send(
            c.post(app.url("/v1/api-keys"))
                .header(json_ct.0.clone(), json_ct.1)
                .body(vec![b'['; 2 * 1024 * 1024]),
            Auth::Bearer(&s.token),
        )
        .await;
    assert_error(&got, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    // Just under the limit is processed normally (and rejected by validation, not by size).
    let under = format!(r#"{{"name":"{}"}}"#, "n".repeat(1000 * 1000));
    let got = app
        .send(
            c.post(app.url("/v1/teams"))
                .header(json_ct.0.clone(), json_ct.1)
                .body(under),
            Auth::Bearer(&s.token),
        )
        .await;
    assert_error(&got, StatusCode::BAD_REQUEST, "validation_failed");

    // Error bodies are JSON by content type too.
    let resp = c.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(resp.headers()[CONTENT_TYPE], "application/json");
}
