//! Signup, login, me, token tampering and expiry.

use base64::Engine;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Auth, TestApp, assert_error, assert_field_error, both_stores, str_at};

both_stores!(
    signup_login_me,
    signup_bad_inputs,
    login_bad_inputs,
    token_tampering_and_expiry,
    readiness_follows_the_database,
    concurrent_signups,
);

async fn signup_login_me(app: TestApp) {
    let (status, body) = app
        .post(
            "/v1/auth/signup",
            &json!({"email": "  Ada.Lovelace@Example.COM ", "password": "correct horse", "name": "Ada"}),
            Auth::None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["user"]["email"], "ada.lovelace@example.com");
    assert_eq!(body["user"]["name"], "Ada");
    assert_eq!(body["team"]["role"], "owner");
    assert!(body.get("password_hash").is_none() && !body.to_string().contains("argon2"));
    let signup_team = str_at(&body, "/team/id");

    // Login is case-insensitive on the email and lands in the default team.
    let (status, body) = app
        .post(
            "/v1/auth/login",
            &json!({"email": "ADA.LOVELACE@example.com", "password": "correct horse"}),
            Auth::None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(str_at(&body, "/team/id"), signup_team);
    let token = str_at(&body, "/token");

    let (status, me) = app.get("/v1/me", Auth::Bearer(&token)).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["auth"], "user");
    assert_eq!(me["user"]["email"], "ada.lovelace@example.com");
    assert_eq!(str_at(&me, "/team/id"), signup_team);

    // Wrong password and unknown email: the same 401, the same message.
    let wrong = app
        .post(
            "/v1/auth/login",
            &json!({"email": "ada.lovelace@example.com", "password": "correct horsE"}),
            Auth::None,
        )
        .await;
    assert_error(&wrong, StatusCode::UNAUTHORIZED, "unauthenticated");
    let unknown = app
        .post(
            "/v1/auth/login",
            &json!({"email": "nobody@example.com", "password": "correct horse"}),
            Auth::None,
        )
        .await;
    assert_error(&unknown, StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_eq!(wrong.1, unknown.1);

    // The same email in another case is taken.
    let dup = app
        .post(
            "/v1/auth/signup",
            &json!({"email": "ADA.lovelace@EXAMPLE.com", "password": "another pass"}),
            Auth::None,
        )
        .await;
    assert_error(&dup, StatusCode::CONFLICT, "conflict");
}

async fn signup_bad_inputs(app: TestApp) {
    let pw = "password123";
    let huge = "x".repeat(100_000);
    // (body, expected: Ok(field) = 400 naming the field, Err(code) = other status)
    let cases: Vec<(Value, StatusCode, &str, Option<&str>)> = vec![
        (
            json!({}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
            None,
        ),
        (
            json!({"email": "a@b.co"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
            None,
        ),
        (
            json!({"password": pw}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
            None,
        ),
        (
            json!({"email": 42, "password": pw}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
            None,
        ),
        (
            json!({"email": "a@b.co", "password": 12345678}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
            None,
        ),
        (
            json!({"email": "a@b.co", "password": pw, "name": ["x"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
            None,
        ),
        (
            json!({"email": null, "password": pw}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
            None,
        ),
        (
            json!([]),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
            None,
        ),
        (
            json!("a@b.co"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
            None,
        ),
        (
            json!(null),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
            None,
        ),
        (
            json!({"email": "", "password": pw}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            Some("email"),
        ),
        (
            json!({"email": "   ", "password": pw}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            Some("email"),
        ),
        (
            json!({"email": "not-an-email", "password": pw}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            Some("email"),
        ),
        (
            json!({"email": "a@b", "password": pw}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            Some("email"),
        ),
        (
            json!({"email": "a b@c.de", "password": pw}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            Some("email"),
        ),
        (
            json!({"email": "x'; DROP TABLE users; --", "password": pw}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            Some("email"),
        ),
        (
            json!({"email": format!("{huge}@b.co"), "password": pw}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            Some("email"),
        ),
        (
            json!({"email": "a@b.co", "password": ""}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            Some("password"),
        ),
        (
            json!({"email": "a@b.co", "password": "1234567"}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            Some("password"),
        ),
        (
            json!({"email": "a@b.co", "password": "ééééééé"}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            Some("password"),
        ),
        (
            json!({"email": "a@b.co", "password": huge}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            Some("password"),
        ),
        (
            json!({"email": "a@b.co", "password": pw, "name": ""}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            Some("name"),
        ),
        (
            json!({"email": "a@b.co", "password": pw, "name": huge}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            Some("name"),
        ),
        (
            json!({"email": "a@b.co", "password": pw, "name": "bell\u{7}"}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            Some("name"),
        ),
    ];
    for (body, status, code, field) in &cases {
        let got = app.post("/v1/auth/signup", body, Auth::None).await;
        match field {
            Some(f) => assert_field_error(&got, f),
            None => assert_error(&got, *status, code),
        }
    }
    // Wrong types name the field.
    let got = app
        .post(
            "/v1/auth/signup",
            &json!({"email": "a@b.co", "password": 12345678}),
            Auth::None,
        )
        .await;
    let message = got
        .1
        .pointer("/error/message")
        .and_then(Value::as_str)
        .unwrap_or_default();
    assert!(message.starts_with("password:"), "{message}");
    // Several bad fields are all reported.
    let got = app
        .post(
            "/v1/auth/signup",
            &json!({"email": "nope", "password": "short"}),
            Auth::None,
        )
        .await;
    assert_field_error(&got, "email");
    assert_field_error(&got, "password");

    // Unicode and SQL-looking values that are valid are stored literally.
    let sql_name = "Robert'); DROP TABLE users;--";
    for (email, name) in [
        ("üser@exämple.de", "Zoë 🦀 محمد"),
        ("bobby@tables.io", sql_name),
    ] {
        let (status, body) = app
            .post(
                "/v1/auth/signup",
                &json!({"email": email, "password": pw, "name": name}),
                Auth::None,
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["user"]["name"], name);
        assert_eq!(body["user"]["email"], email);
    }
    // ...and the tables are still there: logging in works.
    let (status, body) = app
        .post(
            "/v1/auth/login",
            &json!({"email": "BOBBY@tables.io", "password": pw}),
            Auth::None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"]["name"], sql_name);
    // None of the rejected inputs created an account.
    let got = app
        .post(
            "/v1/auth/login",
            &json!({"email": "a@b.co", "password": pw}),
            Auth::None,
        )
        .await;
    assert_error(&got, StatusCode::UNAUTHORIZED, "unauthenticated");
}

async fn login_bad_inputs(app: TestApp) {
    app.signup("eve@example.com").await;
    let huge = "p".repeat(200_000);
    let cases: Vec<(Value, StatusCode, &str)> = vec![
        (json!({}), StatusCode::UNPROCESSABLE_ENTITY, "unprocessable"),
        (
            json!({"email": "eve@example.com"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
        ),
        (
            json!({"email": true, "password": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
        ),
        (
            json!({"email": "", "password": ""}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
        ),
        (
            json!({"email": "eve@example.com", "password": ""}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
        ),
        (
            json!({"email": "eve@example.com", "password": huge}),
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        ),
        (
            json!({"email": "eve@example.com' OR '1'='1", "password": "password123"}),
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        ),
        (
            json!({"email": "eve@example.com", "password": "' OR '1'='1"}),
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        ),
        (
            json!({"email": "ёжик@пример.рф", "password": "password123"}),
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        ),
        (
            json!({"email": "not an email", "password": "password123"}),
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        ),
    ];
    for (body, status, code) in &cases {
        let got = app.post("/v1/auth/login", body, Auth::None).await;
        assert_error(&got, *status, code);
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .expect("base64url")
}

async fn token_tampering_and_expiry(app: TestApp) {
    let alice = app.signup("alice@example.com").await;
    let bob = app.signup("bob@example.com").await;
    let ok = app.get("/v1/me", Auth::Bearer(&alice.token)).await;
    assert_eq!(ok.0, StatusCode::OK);

    let parts: Vec<&str> = alice.token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let mut claims: Value = serde_json::from_slice(&unb64(parts[1])).unwrap();

    // Payload swapped to Bob's team, signature kept.
    claims["team"] = Value::String(bob.team_id.clone());
    let swapped = format!(
        "{}.{}.{}",
        parts[0],
        b64(claims.to_string().as_bytes()),
        parts[2]
    );
    // Payload with a far expiry, signature kept.
    let mut longer: Value = serde_json::from_slice(&unb64(parts[1])).unwrap();
    longer["exp"] = json!(4_000_000_000_i64);
    let extended = format!(
        "{}.{}.{}",
        parts[0],
        b64(longer.to_string().as_bytes()),
        parts[2]
    );
    // Signature bytes flipped.
    let mut sig = unb64(parts[2]);
    sig[0] ^= 1;
    let bad_sig = format!("{}.{}.{}", parts[0], parts[1], b64(&sig));
    // alg=none.
    let none_header = b64(br#"{"alg":"none","typ":"JWT"}"#);
    let alg_none = format!("{none_header}.{}.", parts[1]);
    // Signed with another secret.
    let other =
        warren_server::auth::jwt::JwtKeys::new(&[9u8; 48], std::time::Duration::from_secs(3600));
    let alice_id = alice.user_id.parse().unwrap();
    let alice_team = alice.team_id.parse().unwrap();
    let (foreign, _) = other.issue(alice_id, alice_team).unwrap();
    // Properly signed by this server's key, but issued 25 hours ago: expired.
    let (expired, exp) = app
        .state
        .jwt()
        .issue_at(
            alice_id,
            alice_team,
            chrono::Utc::now().timestamp() - 25 * 3600,
        )
        .unwrap();
    assert!(exp < chrono::Utc::now().timestamp());
    // Properly signed for a team Alice is not in.
    let (wrong_team, _) = app
        .state
        .jwt()
        .issue(alice_id, bob.team_id.parse().unwrap())
        .unwrap();

    for bad in [
        swapped.as_str(),
        extended.as_str(),
        bad_sig.as_str(),
        alg_none.as_str(),
        foreign.as_str(),
        expired.as_str(),
        wrong_team.as_str(),
        "garbage",
        "a.b.c",
        "",
    ] {
        let got = app
            .send(
                app.client
                    .get(app.url("/v1/me"))
                    .header("authorization", format!("Bearer {bad}")),
                Auth::None,
            )
            .await;
        assert_error(&got, StatusCode::UNAUTHORIZED, "unauthenticated");
    }
    for header in ["Basic YWxpY2U6cHc=", "Bearer", "Token abc", "bearer"] {
        let got = app
            .send(
                app.client
                    .get(app.url("/v1/me"))
                    .header("authorization", header),
                Auth::None,
            )
            .await;
        assert_error(&got, StatusCode::UNAUTHORIZED, "unauthenticated");
    }
    assert_error(
        &app.get("/v1/me", Auth::None).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    // The genuine token still works.
    assert_eq!(
        app.get("/v1/me", Auth::Bearer(&alice.token)).await.0,
        StatusCode::OK
    );
}

async fn readiness_follows_the_database(app: TestApp) {
    let (status, body) = app.get("/healthz", Auth::None).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let (status, body) = app.get("/readyz", Auth::None).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ready"))
    );
    app.state.store().close().await;
    assert_error(
        &app.get("/readyz", Auth::None).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
    );
    assert_eq!(app.get("/healthz", Auth::None).await.0, StatusCode::OK);
}

#[tokio::test]
async fn token_lifetime_comes_from_config() {
    for backend in [
        crate::helpers::Backend::Sqlite,
        crate::helpers::Backend::Postgres,
    ] {
        crate::helpers::run_with(
            backend,
            |c| c.jwt_ttl = std::time::Duration::from_secs(90),
            |app: TestApp| async move {
                let before = chrono::Utc::now().timestamp();
                let (_, body) = app
                    .post(
                        "/v1/auth/signup",
                        &json!({"email": "ttl@example.com", "password": "password123"}),
                        Auth::None,
                    )
                    .await;
                let exp = chrono::DateTime::parse_from_rfc3339(&str_at(&body, "/expires_at"))
                    .unwrap()
                    .timestamp();
                let after = chrono::Utc::now().timestamp();
                assert!((before + 90..=after + 90).contains(&exp), "exp {exp}");
            },
        )
        .await;
    }
}

async fn concurrent_signups(app: TestApp) {
    // Distinct emails all succeed; the same email (in different cases) succeeds exactly once.
    let mut tasks = Vec::new();
    for i in 0..12 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let email = if i % 2 == 0 {
                format!("user{i}@example.com")
            } else if i % 4 == 1 {
                "same@example.com".to_owned()
            } else {
                "SAME@example.com".to_owned()
            };
            app.post(
                "/v1/auth/signup",
                &json!({"email": email, "password": "password123"}),
                Auth::None,
            )
            .await
        }));
    }
    let mut created = 0;
    let mut conflicts = 0;
    for t in tasks {
        let got = t.await.unwrap();
        match got.0 {
            StatusCode::CREATED => created += 1,
            _ => {
                assert_error(&got, StatusCode::CONFLICT, "conflict");
                conflicts += 1;
            }
        }
    }
    assert_eq!((created, conflicts), (7, 5));
}
