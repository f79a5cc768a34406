//! API keys: shown once, hashed at rest, team-scoped, dead after delete.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Auth, TestApp, assert_error, assert_field_error, both_stores, str_at};

both_stores!(key_lifecycle, key_bad_inputs, key_header_forms);

async fn key_lifecycle(app: TestApp) {
    let s = app.signup("kim@example.com").await;
    let t = Auth::Bearer(&s.token);
    let (status, created) = app
        .post("/v1/api-keys", &json!({"name": "ci runner"}), t)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let key = str_at(&created, "/key");
    let id = str_at(&created, "/id");
    let rest = key.strip_prefix("wr_").expect("wr_ prefix");
    assert!(
        rest.len() >= 32 && rest.bytes().all(|b| b.is_ascii_alphanumeric()),
        "{key}"
    );
    assert!(key.starts_with(&str_at(&created, "/prefix")));
    assert!(created["last_used_at"].is_null());

    // Listed without the secret.
    let (status, list) = app.get("/v1/api-keys", t).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(list[0].get("key").is_none());
    assert!(
        !list.to_string().contains(rest),
        "secret leaked in list: {list}"
    );
    assert_eq!(list[0]["name"], "ci runner");

    // The key authenticates as its team; last use is recorded.
    let (status, me) = app.get("/v1/me", Auth::Key(&key)).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(
        (me["auth"].as_str(), str_at(&me, "/team/id")),
        (Some("api_key"), s.team_id.clone())
    );
    assert_eq!(str_at(&me, "/api_key_id"), id);
    assert!(me["user"].is_null());
    let (_, list) = app.get("/v1/api-keys", t).await;
    assert!(list[0]["last_used_at"].is_string(), "{list}");

    // Keys cannot manage keys or teams: those need a user token.
    for got in [
        app.get("/v1/api-keys", Auth::Key(&key)).await,
        app.post("/v1/api-keys", &json!({"name": "x"}), Auth::Key(&key))
            .await,
        app.get("/v1/teams", Auth::Key(&key)).await,
    ] {
        assert_error(&got, StatusCode::UNAUTHORIZED, "unauthenticated");
    }

    // Delete: gone for good.
    let (status, body) = app.delete(&format!("/v1/api-keys/{id}"), t).await;
    assert_eq!(
        (status, body),
        (StatusCode::NO_CONTENT, serde_json::Value::Null)
    );
    assert_error(
        &app.get("/v1/me", Auth::Key(&key)).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    assert_error(
        &app.delete(&format!("/v1/api-keys/{id}"), t).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let (_, list) = app.get("/v1/api-keys", t).await;
    assert_eq!(list, json!([]));
    for bad in [
        "nope",
        "00000000-0000-0000-0000-000000000000",
        "%27%20OR%201=1",
    ] {
        assert_error(
            &app.delete(&format!("/v1/api-keys/{bad}"), t).await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
    }
}

async fn key_bad_inputs(app: TestApp) {
    let s = app.signup("kai@example.com").await;
    let t = Auth::Bearer(&s.token);
    for body in [
        json!({}),
        json!({"name": 7}),
        json!({"name": null}),
        json!(["name"]),
    ] {
        assert_error(
            &app.post("/v1/api-keys", &body, t).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
        );
    }
    for name in [
        String::new(),
        " ".into(),
        "k".repeat(101),
        "k".repeat(300_000),
        "tab\there".into(),
    ] {
        assert_field_error(
            &app.post("/v1/api-keys", &json!({"name": name}), t).await,
            "name",
        );
    }
    for name in ["clé 🔑", "x' OR '1'='1", "DROP TABLE team_api_keys"] {
        let (status, body) = app.post("/v1/api-keys", &json!({"name": name}), t).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["name"], name);
    }
    let (_, list) = app.get("/v1/api-keys", t).await;
    assert_eq!(list.as_array().unwrap().len(), 3);
    assert_error(
        &app.post("/v1/api-keys", &json!({"name": "x"}), Auth::None)
            .await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
}

async fn key_header_forms(app: TestApp) {
    let s = app.signup("kit@example.com").await;
    let (_, key) = app.create_key(&s, "k").await;
    let mut almost = key.clone().into_bytes();
    let last = almost.len() - 1;
    almost[last] = if almost[last] == b'a' { b'b' } else { b'a' };
    let almost = String::from_utf8(almost).unwrap();
    let forged = format!("wr_{}", "A".repeat(40));
    let long = format!("wr_{}", "A".repeat(5000));
    for bad in [
        "",
        "wr_",
        "wr_short",
        forged.as_str(),
        almost.as_str(),
        long.as_str(),
        "' OR 1=1 --",
    ] {
        assert_error(
            &app.get("/v1/me", Auth::Key(bad)).await,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        );
    }
    assert_eq!(app.get("/v1/me", Auth::Key(&key)).await.0, StatusCode::OK);
}
