//! Hosts: admin-only management, the registration-token flow, refresh rotation with reuse
//! detection, heartbeats, revocation, delete (409 preview / force), and the monitor's passive
//! timeout. Agents are played by the HTTP client here; the real agents are in
//! `crates/warren/tests/fleet_hosts.rs`.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use warren_server::Config;

use crate::helpers::{Auth, TestApp, assert_error, str_at};

const ADMIN_EMAIL: &str = "root@warren.test";
const ADMIN_PASSWORD: &str = "admin-password-1";

/// Config of every test here: an admin, and a heartbeat timeout short enough for
/// `silent_host_becomes_unreachable` (no monitor runs in these in-process servers unless a
/// test calls a pass).
fn with_admin(c: &mut Config) {
    c.admin = Some((
        ADMIN_EMAIL.into(),
        warren_server::Secret::new(ADMIN_PASSWORD),
    ));
    c.heartbeat_timeout = Duration::from_millis(100);
}

macro_rules! host_tests {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    $crate::helpers::run_with($crate::helpers::Backend::Sqlite, super::with_admin, super::$name).await;
                }
                #[tokio::test]
                async fn postgres() {
                    $crate::helpers::run_with($crate::helpers::Backend::Postgres, super::with_admin, super::$name).await;
                }
            }
        )+
    };
}

host_tests!(
    host_routes_are_for_admins,
    register_heartbeat_and_tokens,
    refresh_rotates_and_reuse_revokes_the_chain,
    revoked_credentials_are_refused,
    delete_refuses_then_forces,
    heartbeat_brings_missing_sandboxes_back,
    silent_host_becomes_unreachable,
);

async fn admin_token(app: &TestApp) -> String {
    let (s, body) = app
        .post(
            "/v1/auth/login",
            &json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}),
            Auth::None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    str_at(&body, "/token")
}

/// Creates a host; returns (host id, registration token).
async fn create_host(app: &TestApp, admin: &str) -> (String, String) {
    let (s, body) = app
        .post(
            "/v1/hosts",
            &json!({"address": "127.0.0.1:1", "labels": {"zone": "a"}}),
            Auth::Bearer(admin),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    assert_eq!(body["host"]["status"], "pending");
    assert_eq!(body["host"]["labels"]["zone"], "a");
    assert!(body["token_expires_at"].is_string());
    (
        str_at(&body, "/host/id"),
        str_at(&body, "/registration_token"),
    )
}

fn register_body(token: &str) -> Value {
    json!({
        "token": token, "address": "127.0.0.1:1", "arch": "x86_64", "cpu_count": 2,
        "memory_mb": 4096, "disk_mb": 10000, "runtime": "gvisor", "agent_version": "0.1.0",
        "sandbox_capacity": 10, "templates": ["minimal"],
    })
}

async fn register(app: &TestApp, token: &str) -> Value {
    let (s, body) = app
        .post("/v1/hosts/register", &register_body(token), Auth::None)
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    body
}

async fn heartbeat(app: &TestApp, host_token: &str, sandboxes: Value) -> (StatusCode, Value) {
    app.post(
        "/v1/hosts/heartbeat",
        &json!({"live_sandboxes": 1, "free_memory_mb": 1000, "free_disk_mb": 5000,
                "sandbox_capacity": 10, "templates": ["minimal", "base"],
                "sandboxes": sandboxes}),
        Auth::Bearer(host_token),
    )
    .await
}

async fn refresh(app: &TestApp, rt: &str) -> (StatusCode, Value) {
    app.post(
        "/v1/hosts/auth/refresh",
        &json!({"refresh_token": rt}),
        Auth::None,
    )
    .await
}

/// Inserts a sandbox row of a new team on `host` with `status`; returns its id.
async fn insert_sandbox(app: &TestApp, host: &str, status: &str, updated_at: i64) -> String {
    let pool = app.state.store().pool();
    let team = uuid::Uuid::now_v7().to_string();
    sqlx::query("INSERT INTO teams (id, name, created_at) VALUES ($1, 't', 0)")
        .bind(&team)
        .execute(pool)
        .await
        .unwrap();
    let id = format!("sb-{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
    sqlx::query(
        "INSERT INTO sandboxes (id, team_id, host_id, template, status, vcpus, memory_mb, \
         created_at, updated_at) VALUES ($1, $2, $3, 'minimal', $4, 1, 256, 0, $5)",
    )
    .bind(&id)
    .bind(&team)
    .bind(host)
    .bind(status)
    .bind(updated_at)
    .execute(pool)
    .await
    .unwrap();
    id
}

async fn sandbox_status(app: &TestApp, id: &str) -> String {
    warren_server::store::host::sandbox_status(app.state.store().pool(), id)
        .await
        .unwrap()
        .unwrap()
}

async fn host_routes_are_for_admins(app: TestApp) {
    let user = app.signup("someone@example.com").await;
    for got in [
        app.get("/v1/hosts", Auth::Bearer(&user.token)).await,
        app.post("/v1/hosts", &json!({}), Auth::Bearer(&user.token))
            .await,
    ] {
        assert_error(&got, StatusCode::FORBIDDEN, "forbidden");
    }
    assert_error(
        &app.get("/v1/hosts", Auth::None).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    let admin = admin_token(&app).await;
    let (host, _) = create_host(&app, &admin).await;
    for (method, path) in [
        ("GET", format!("/v1/hosts/{host}")),
        ("DELETE", format!("/v1/hosts/{host}")),
        ("POST", format!("/v1/hosts/{host}/token")),
        ("POST", format!("/v1/hosts/{host}/revoke")),
    ] {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let got = app
            .send(
                app.client.request(m, app.url(&path)).json(&json!({})),
                Auth::Bearer(&user.token),
            )
            .await;
        assert_error(&got, StatusCode::FORBIDDEN, "forbidden");
    }
    let (s, _) = app
        .delete(&format!("/v1/hosts/{host}"), Auth::Bearer(&admin))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, list) = app.get("/v1/hosts", Auth::Bearer(&admin)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list, json!([]));
    // The bootstrap runs at every start: it updates the password and keeps one account.
    let new_pw = warren_server::Secret::new("another-password-2");
    warren_server::auth::admin::bootstrap(&app.state, ADMIN_EMAIL, &new_pw)
        .await
        .unwrap();
    let (s, _) = app
        .post(
            "/v1/auth/login",
            &json!({"email": ADMIN_EMAIL, "password": "another-password-2"}),
            Auth::None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let got = app
        .post(
            "/v1/hosts",
            &json!({"address": "no-port"}),
            Auth::Bearer(&admin),
        )
        .await;
    crate::helpers::assert_field_error(&got, "address");
    assert_error(
        &app.get("/v1/hosts/not-an-id", Auth::Bearer(&admin)).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

async fn register_heartbeat_and_tokens(app: TestApp) {
    let admin = admin_token(&app).await;
    let (host, token) = create_host(&app, &admin).await;
    // Bad tokens are all 401, never 400/500.
    for bad in [
        "",
        "garbage",
        "wrh_",
        &format!("{token}x"),
        "wrr_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    ] {
        let got = app
            .post("/v1/hosts/register", &register_body(bad), Auth::None)
            .await;
        assert_error(&got, StatusCode::UNAUTHORIZED, "unauthenticated");
    }
    // Bad specs are a 400 and leave the token usable.
    let mut bad_specs = register_body(&token);
    bad_specs["address"] = json!("no-port");
    let got = app.post("/v1/hosts/register", &bad_specs, Auth::None).await;
    crate::helpers::assert_field_error(&got, "address");
    let mut bad_specs = register_body(&token);
    bad_specs["runtime"] = json!("docker");
    let got = app.post("/v1/hosts/register", &bad_specs, Auth::None).await;
    crate::helpers::assert_field_error(&got, "runtime");
    let creds = register(&app, &token).await;
    assert_eq!(creds["host_id"], host.as_str());
    assert_eq!(creds["control_plane_key"].as_str().unwrap().len(), 44);
    assert_eq!(
        creds["control_plane_key"],
        app.state.agent_signer().public_key_b64()
    );
    // One-time.
    let got = app
        .post("/v1/hosts/register", &register_body(&token), Auth::None)
        .await;
    assert_error(&got, StatusCode::UNAUTHORIZED, "unauthenticated");

    let (s, h) = app
        .get(&format!("/v1/hosts/{host}"), Auth::Bearer(&admin))
        .await;
    assert_eq!(s, StatusCode::OK, "{h}");
    assert_eq!(h["status"], "online");
    assert_eq!(h["cpu_count"], 2);
    assert_eq!(h["runtime"], "gvisor");
    assert_eq!(h["templates"], json!(["minimal"]));

    let host_token = str_at(&creds, "/host_token");
    let (s, body) = heartbeat(&app, &host_token, json!([])).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (_, h) = app
        .get(&format!("/v1/hosts/{host}"), Auth::Bearer(&admin))
        .await;
    assert_eq!(h["templates"], json!(["minimal", "base"]));
    assert_eq!(h["live_sandboxes"], 1);
    assert_eq!(h["free_memory_mb"], 1000);
    assert!(h["last_heartbeat_at"].is_string());
    let (_, list) = app.get("/v1/hosts", Auth::Bearer(&admin)).await;
    assert_eq!(list.as_array().unwrap().len(), 1);

    for bad in ["", "x.y.z", creds["refresh_token"].as_str().unwrap()] {
        let got = heartbeat(&app, bad, json!([])).await;
        assert_error(&got, StatusCode::UNAUTHORIZED, "unauthenticated");
    }
    // A user token is not a host token.
    let got = heartbeat(&app, &admin, json!([])).await;
    assert_error(&got, StatusCode::UNAUTHORIZED, "unauthenticated");

    // A fresh registration token revokes the unused older one, and re-registration replaces
    // the host's credentials.
    let (s, t1) = app
        .post(
            &format!("/v1/hosts/{host}/token"),
            &json!({}),
            Auth::Bearer(&admin),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{t1}");
    let (_, t2) = app
        .post(
            &format!("/v1/hosts/{host}/token"),
            &json!({}),
            Auth::Bearer(&admin),
        )
        .await;
    let got = app
        .post(
            "/v1/hosts/register",
            &register_body(&str_at(&t1, "/registration_token")),
            Auth::None,
        )
        .await;
    assert_error(&got, StatusCode::UNAUTHORIZED, "unauthenticated");
    let again = register(&app, &str_at(&t2, "/registration_token")).await;
    assert_eq!(again["host_id"], host.as_str());
    let got = heartbeat(&app, &host_token, json!([])).await;
    assert_error(&got, StatusCode::UNAUTHORIZED, "unauthenticated");
    let (s, _) = heartbeat(&app, &str_at(&again, "/host_token"), json!([])).await;
    assert_eq!(s, StatusCode::OK);
}

async fn refresh_rotates_and_reuse_revokes_the_chain(app: TestApp) {
    let admin = admin_token(&app).await;
    let (_, token) = create_host(&app, &admin).await;
    let c0 = register(&app, &token).await;
    let (s, c1) = refresh(&app, &str_at(&c0, "/refresh_token")).await;
    assert_eq!(s, StatusCode::OK, "{c1}");
    assert_ne!(c1["refresh_token"], c0["refresh_token"]);
    // The old host token died with its refresh token; the new one works.
    let got = heartbeat(&app, &str_at(&c0, "/host_token"), json!([])).await;
    assert_error(&got, StatusCode::UNAUTHORIZED, "unauthenticated");
    let (s, _) = heartbeat(&app, &str_at(&c1, "/host_token"), json!([])).await;
    assert_eq!(s, StatusCode::OK);
    let (s, c2) = refresh(&app, &str_at(&c1, "/refresh_token")).await;
    assert_eq!(s, StatusCode::OK);

    // Reuse of a rotated token: 401, and the whole chain is revoked.
    let got = refresh(&app, &str_at(&c0, "/refresh_token")).await;
    assert_error(&got, StatusCode::UNAUTHORIZED, "unauthenticated");
    let got = refresh(&app, &str_at(&c2, "/refresh_token")).await;
    assert_error(&got, StatusCode::UNAUTHORIZED, "unauthenticated");
    let got = heartbeat(&app, &str_at(&c2, "/host_token"), json!([])).await;
    assert_error(&got, StatusCode::UNAUTHORIZED, "unauthenticated");

    for bad in [
        "",
        "wrr_",
        "nope",
        "wrr_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
    ] {
        let got = refresh(&app, bad).await;
        assert_error(&got, StatusCode::UNAUTHORIZED, "unauthenticated");
    }

    // Concurrent refreshes with one token: exactly one wins, and the loser's reuse revokes
    // the chain, the winner's pair included.
    let (_, t) = app
        .post("/v1/hosts", &json!({}), Auth::Bearer(&admin))
        .await;
    let c = register(&app, &str_at(&t, "/registration_token")).await;
    let rt = str_at(&c, "/refresh_token");
    let (a, b) = tokio::join!(refresh(&app, &rt), refresh(&app, &rt));
    let ok = [a.0, b.0].iter().filter(|s| **s == StatusCode::OK).count();
    assert!(ok <= 1, "{a:?} {b:?}");
    for got in [&a, &b] {
        assert!(
            got.0 == StatusCode::OK || got.0 == StatusCode::UNAUTHORIZED,
            "{got:?}"
        );
    }
}

async fn revoked_credentials_are_refused(app: TestApp) {
    let admin = admin_token(&app).await;
    let (host, token) = create_host(&app, &admin).await;
    let c = register(&app, &token).await;
    let (s, _) = app
        .post(
            &format!("/v1/hosts/{host}/revoke"),
            &json!({}),
            Auth::Bearer(&admin),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let got = heartbeat(&app, &str_at(&c, "/host_token"), json!([])).await;
    assert_error(&got, StatusCode::UNAUTHORIZED, "unauthenticated");
    let got = refresh(&app, &str_at(&c, "/refresh_token")).await;
    assert_error(&got, StatusCode::UNAUTHORIZED, "unauthenticated");
    // No new sandboxes go there: it is unreachable until it registers again.
    let (_, h) = app
        .get(&format!("/v1/hosts/{host}"), Auth::Bearer(&admin))
        .await;
    assert_eq!(h["status"], "unreachable");
    let (_, t) = app
        .post(
            &format!("/v1/hosts/{host}/token"),
            &json!({}),
            Auth::Bearer(&admin),
        )
        .await;
    let again = register(&app, &str_at(&t, "/registration_token")).await;
    let (s, _) = heartbeat(&app, &str_at(&again, "/host_token"), json!([])).await;
    assert_eq!(s, StatusCode::OK);
    let (_, h) = app
        .get(&format!("/v1/hosts/{host}"), Auth::Bearer(&admin))
        .await;
    assert_eq!(h["status"], "online");
}

async fn delete_refuses_then_forces(app: TestApp) {
    let admin = admin_token(&app).await;
    let (empty, _) = create_host(&app, &admin).await;
    let (s, _) = app
        .delete(&format!("/v1/hosts/{empty}"), Auth::Bearer(&admin))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_error(
        &app.get(&format!("/v1/hosts/{empty}"), Auth::Bearer(&admin))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );

    let (host, token) = create_host(&app, &admin).await;
    let c = register(&app, &token).await;
    let running = insert_sandbox(&app, &host, "running", 0).await;
    let stopped = insert_sandbox(&app, &host, "stopped", 0).await;
    let missing = insert_sandbox(&app, &host, "missing", 0).await;
    let got = app
        .delete(&format!("/v1/hosts/{host}"), Auth::Bearer(&admin))
        .await;
    assert_error(&got, StatusCode::CONFLICT, "conflict");
    let mut listed: Vec<&str> = got.1["error"]["sandboxes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    listed.sort();
    let mut want = vec![running.as_str(), missing.as_str()];
    want.sort();
    assert_eq!(listed, want);
    assert!(!listed.contains(&stopped.as_str()));

    let got = app
        .delete(
            &format!("/v1/hosts/{host}?force=maybe"),
            Auth::Bearer(&admin),
        )
        .await;
    crate::helpers::assert_field_error(&got, "force");
    // Force: the agent (none listens at 127.0.0.1:1) is told best effort; the rows stop.
    let (s, body) = app
        .delete(
            &format!("/v1/hosts/{host}?force=true"),
            Auth::Bearer(&admin),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(sandbox_status(&app, &running).await, "stopped");
    assert_eq!(sandbox_status(&app, &missing).await, "stopped");
    let got = heartbeat(&app, &str_at(&c, "/host_token"), json!([])).await;
    assert_error(&got, StatusCode::UNAUTHORIZED, "unauthenticated");
    let (_, list) = app.get("/v1/hosts", Auth::Bearer(&admin)).await;
    assert_eq!(list, json!([]));
}

async fn heartbeat_brings_missing_sandboxes_back(app: TestApp) {
    let admin = admin_token(&app).await;
    let (host, token) = create_host(&app, &admin).await;
    let c = register(&app, &token).await;
    let a = insert_sandbox(&app, &host, "missing", 0).await;
    let b = insert_sandbox(&app, &host, "missing", 0).await;
    // Changed just now: the grace period protects an operation in flight.
    let fresh = insert_sandbox(&app, &host, "running", warren_server::store::now_ms()).await;
    let old = insert_sandbox(&app, &host, "running", 0).await;
    let (s, body) = heartbeat(
        &app,
        &str_at(&c, "/host_token"),
        json!([{"sandbox_id": a, "status": "running"}, {"sandbox_id": b, "status": "paused"},
               {"sandbox_id": fresh, "status": "paused"}, {"sandbox_id": old, "status": "paused"},
               {"sandbox_id": "sb-unknown", "status": "running"}]),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(sandbox_status(&app, &a).await, "running");
    assert_eq!(sandbox_status(&app, &b).await, "paused");
    assert_eq!(sandbox_status(&app, &fresh).await, "running");
    assert_eq!(sandbox_status(&app, &old).await, "paused");
}

async fn silent_host_becomes_unreachable(app: TestApp) {
    let admin = admin_token(&app).await;
    let (host, token) = create_host(&app, &admin).await;
    register(&app, &token).await;
    let sb = insert_sandbox(&app, &host, "running", 0).await;
    let paused = insert_sandbox(&app, &host, "paused", 0).await;
    // The heartbeat timeout is 100 ms here (`with_admin`).
    tokio::time::sleep(Duration::from_millis(250)).await;
    warren_server::fleet::monitor::pass(&app.state)
        .await
        .unwrap();
    let (_, h) = app
        .get(&format!("/v1/hosts/{host}"), Auth::Bearer(&admin))
        .await;
    assert_eq!(h["status"], "unreachable");
    assert_eq!(sandbox_status(&app, &sb).await, "missing");
    assert_eq!(sandbox_status(&app, &paused).await, "missing");
}

/// Two replicas on one PostgreSQL database: only one holds the monitor lease; when its
/// connection goes, the other takes over. (SQLite: always held, one process owns the file.)
#[tokio::test]
async fn monitor_lease_is_exclusive_on_postgres() {
    crate::helpers::run(
        crate::helpers::Backend::Postgres,
        |app: TestApp| async move {
            use warren_server::fleet::monitor::Lease;
            let second = warren_server::AppState::new(app.state.config().clone())
                .await
                .expect("second replica on the same database");
            let (mut a, mut b) = (Lease::default(), Lease::default());
            assert!(a.hold(&app.state).await.unwrap());
            assert!(!b.hold(&second).await.unwrap(), "second replica must wait");
            assert!(a.hold(&app.state).await.unwrap(), "holder keeps it");
            drop(a);
            second.store().close().await;
            let third = warren_server::AppState::new(app.state.config().clone())
                .await
                .unwrap();
            // The server ends the closed session (and its lock) as soon as it sees the EOF.
            let mut c = Lease::default();
            let mut held = false;
            for _ in 0..50 {
                if c.hold(&third).await.unwrap() {
                    held = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert!(held, "released with its connection");
            third.store().close().await;
        },
    )
    .await;
}

#[tokio::test]
async fn monitor_lease_is_trivial_on_sqlite() {
    crate::helpers::run(crate::helpers::Backend::Sqlite, |app: TestApp| async move {
        let mut a = warren_server::fleet::monitor::Lease::default();
        assert!(a.hold(&app.state).await.unwrap());
    })
    .await;
}
