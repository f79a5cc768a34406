//! Sandbox and snapshot routes without a host: validation, authentication, team scoping
//! (another team's sandbox is a 404 on every route), listing filters and paging, and a 503
//! `no_capacity` when no host is online. Sandboxes of a team are put in the store directly
//! (the public store API), since creating one through the API needs a host; the end-to-end
//! tests with real agents are `crates/warren/tests/fleet_sandboxes.rs`.

use std::collections::BTreeMap;

use reqwest::StatusCode;
use serde_json::{Value, json};
use warren_server::store::sandbox::SandboxRecord;
use warren_server::store::{self, now_ms};
use warren_types::{HostId, HostStatus, SandboxId, SandboxStatus, TeamId};

use crate::helpers::{Auth, TestApp, assert_error, assert_field_error, both_stores};

both_stores!(
    create_without_hosts_is_no_capacity,
    create_validates_input,
    every_route_hides_other_teams_sandboxes,
    list_filters_and_pages,
    snapshots_validate_and_scope,
    stream_routes_take_access_token,
    requests_need_credentials,
    host_failures_revert_statuses,
    pool_follows_the_hosts_table,
);

async fn put_sandbox(
    app: &TestApp,
    team: &str,
    status: SandboxStatus,
    metadata: &[(&str, &str)],
) -> SandboxId {
    put_sandbox_on(app, team, status, metadata, None).await
}

async fn put_sandbox_on(
    app: &TestApp,
    team: &str,
    status: SandboxStatus,
    metadata: &[(&str, &str)],
    host_id: Option<HostId>,
) -> SandboxId {
    let now = now_ms();
    let r = SandboxRecord {
        id: SandboxId::new(),
        team_id: team.parse::<TeamId>().unwrap(),
        host_id,
        template_id: None,
        template: "minimal".into(),
        status,
        vcpus: 1,
        memory_mb: 512,
        metadata: metadata
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        env: BTreeMap::new(),
        timeout_secs: 300,
        expires_at: None,
        error: None,
        allow_internet: true,
        auto_pause: false,
        envd_access_token: None,
        created_at: now,
        updated_at: now,
        started_at: None,
        stopped_at: None,
    };
    store::sandbox::insert(app.state.store().pool(), &r)
        .await
        .expect("insert sandbox");
    r.id
}

async fn create_without_hosts_is_no_capacity(app: TestApp) {
    let s = app.signup("nocap@example.com").await;
    let (_, key) = app.create_key(&s, "k").await;
    for body in [json!({}), json!({"template": "minimal", "vcpus": 2})] {
        let got = app.post("/v1/sandboxes", &body, Auth::Key(&key)).await;
        assert_error(&got, StatusCode::SERVICE_UNAVAILABLE, "no_capacity");
        let msg = got.1["error"]["message"].as_str().unwrap();
        assert!(msg.contains("no host is online"), "{msg}");
    }
    // Nothing half-made is left behind.
    let (status, list) = app
        .get("/v1/sandboxes?status=pending,error", Auth::Key(&key))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"], json!([]));
}

async fn create_validates_input(app: TestApp) {
    let s = app.signup("val@example.com").await;
    let t = Auth::Bearer(&s.token);
    for (body, field) in [
        (json!({"template": "../etc"}), "template"),
        (json!({"template": ""}), "template"),
        (json!({"template": "UPPER"}), "template"),
        (json!({"template": "a".repeat(64)}), "template"),
        (json!({"vcpus": 0}), "vcpus"),
        (json!({"vcpus": 33}), "vcpus"),
        (json!({"memory_mb": 64}), "memory_mb"),
        (json!({"memory_mb": 1_000_000}), "memory_mb"),
        (json!({"timeout_s": 86_401}), "timeout_s"),
        (json!({"env": {"1X": "y"}}), "env"),
        (json!({"env": {"A-B": "y"}}), "env"),
        (json!({"metadata": {"": "y"}}), "metadata"),
        (json!({"metadata": {"k": "x".repeat(2000)}}), "metadata"),
    ] {
        assert_field_error(&app.post("/v1/sandboxes", &body, t).await, field);
    }
    for body in [
        json!({"vcpus": "two"}),
        json!({"vcpus": -1}),
        json!({"bogus": 1}),
        json!({"env": ["A=1"]}),
        json!([]),
    ] {
        assert_error(
            &app.post("/v1/sandboxes", &body, t).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
        );
    }
    let got = app
        .post("/v1/sandboxes", &json!({"template": "nope"}), t)
        .await;
    assert_error(&got, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(got.1["error"]["message"], "template 'nope' not found");
    // Host-side names of team templates never resolve as public templates.
    let got = app
        .post(
            "/v1/sandboxes",
            &json!({"template": "t-0123456789abcdef0123456789abcdef"}),
            t,
        )
        .await;
    assert_error(&got, StatusCode::NOT_FOUND, "not_found");
}

/// Every sandbox route, as (method, path suffix after the id, JSON body).
fn sandbox_routes() -> Vec<(reqwest::Method, &'static str, Option<Value>)> {
    use reqwest::Method;
    vec![
        (Method::GET, "", None),
        (Method::POST, "/pause", None),
        (Method::POST, "/resume", None),
        (Method::POST, "/timeout", Some(json!({"timeout_s": 60}))),
        (Method::POST, "/exec", Some(json!({"cmd": "true"}))),
        (Method::GET, "/exec/stream?cmd=true", None),
        (Method::GET, "/files?path=/tmp/x", None),
        (Method::PUT, "/files?path=/tmp/x", None),
        (Method::GET, "/metrics", None),
        (Method::DELETE, "", None),
    ]
}

async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<&Value>,
    auth: Auth<'_>,
) -> (StatusCode, Value) {
    let mut req = app.client.request(method, app.url(path));
    if let Some(b) = body {
        req = req.json(b);
    }
    app.send(req, auth).await
}

async fn every_route_hides_other_teams_sandboxes(app: TestApp) {
    let a = app.signup("owner@example.com").await;
    let b = app.signup("stranger@example.com").await;
    let (_, b_key) = app.create_key(&b, "b").await;
    let running = put_sandbox(&app, &a.team_id, SandboxStatus::Running, &[]).await;
    let paused = put_sandbox(&app, &a.team_id, SandboxStatus::Paused, &[]).await;
    for id in [running, paused] {
        for (method, suffix, body) in sandbox_routes() {
            let path = format!("/v1/sandboxes/{id}{suffix}");
            for auth in [Auth::Bearer(&b.token), Auth::Key(&b_key)] {
                let got = call(&app, method.clone(), &path, body.as_ref(), auth).await;
                assert_error(&got, StatusCode::NOT_FOUND, "not_found");
                assert!(
                    !got.1.to_string().contains(&a.team_id),
                    "{method} {path} leaks the owner: {}",
                    got.1
                );
            }
        }
        // The multipart upload too.
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(b"x".to_vec()).file_name("x"),
        );
        let got = app
            .send(
                app.client
                    .post(app.url(&format!("/v1/sandboxes/{id}/files?path=/tmp/")))
                    .multipart(form),
                Auth::Key(&b_key),
            )
            .await;
        assert_error(&got, StatusCode::NOT_FOUND, "not_found");
        // Snapshotting another team's sandbox.
        let got = app
            .post(
                "/v1/snapshots",
                &json!({"sandbox_id": id.to_string(), "name": "mine"}),
                Auth::Key(&b_key),
            )
            .await;
        assert_error(&got, StatusCode::NOT_FOUND, "not_found");
    }
    // The stranger's list does not show them; the owner's does.
    let (_, list) = app.get("/v1/sandboxes", Auth::Key(&b_key)).await;
    assert_eq!(list["items"], json!([]));
    let (_, list) = app.get("/v1/sandboxes", Auth::Bearer(&a.token)).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2, "{list}");
    // Unknown and malformed ids are 404 as well.
    for id in [
        "00000000-0000-0000-0000-000000000000",
        "nope",
        "%27%20OR%201=1",
    ] {
        for (method, suffix, body) in sandbox_routes() {
            let path = format!("/v1/sandboxes/{id}{suffix}");
            let got = call(&app, method, &path, body.as_ref(), Auth::Bearer(&a.token)).await;
            assert_error(&got, StatusCode::NOT_FOUND, "not_found");
        }
    }
    // The owner is told what is wrong instead: wrong state, not a 404.
    let t = Auth::Bearer(&a.token);
    assert_error(
        &app.post(&format!("/v1/sandboxes/{paused}/pause"), &json!({}), t)
            .await,
        StatusCode::CONFLICT,
        "conflict",
    );
    assert_error(
        &app.post(&format!("/v1/sandboxes/{running}/resume"), &json!({}), t)
            .await,
        StatusCode::CONFLICT,
        "conflict",
    );
    assert_error(
        &app.post(
            &format!("/v1/sandboxes/{paused}/exec"),
            &json!({"cmd": "true"}),
            t,
        )
        .await,
        StatusCode::CONFLICT,
        "conflict",
    );
    // Delete works without a host (the row is what counts), and is idempotent.
    for _ in 0..2 {
        let (status, _) = app.delete(&format!("/v1/sandboxes/{paused}"), t).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    let (_, got) = app.get(&format!("/v1/sandboxes/{paused}"), t).await;
    assert_eq!(got["status"], "stopped");
}

async fn list_filters_and_pages(app: TestApp) {
    let a = app.signup("lister@example.com").await;
    let other = app.signup("other@example.com").await;
    let t = Auth::Bearer(&a.token);
    let mut ids = Vec::new();
    for i in 0..7 {
        let env = if i % 2 == 0 { "prod" } else { "dev" };
        let status = if i == 6 {
            SandboxStatus::Paused
        } else {
            SandboxStatus::Running
        };
        ids.push(
            put_sandbox(
                &app,
                &a.team_id,
                status,
                &[("env", env), ("n", &i.to_string())],
            )
            .await,
        );
    }
    put_sandbox(&app, &a.team_id, SandboxStatus::Stopped, &[("env", "prod")]).await;
    put_sandbox(
        &app,
        &other.team_id,
        SandboxStatus::Running,
        &[("env", "prod")],
    )
    .await;

    // Pages of 3, newest first, every live sandbox exactly once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/sandboxes?limit=3&cursor={c}"),
            None => "/v1/sandboxes?limit=3".to_string(),
        };
        let (status, page) = app.get(&path, t).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 3);
        seen.extend(items.iter().map(|s| s["id"].as_str().unwrap().to_owned()));
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let want: Vec<String> = ids.iter().rev().map(|i| i.to_string()).collect();
    assert_eq!(seen, want);

    // Filters.
    let count = |v: &Value| v["items"].as_array().unwrap().len();
    let (_, v) = app.get("/v1/sandboxes?metadata.env=prod", t).await;
    assert_eq!(count(&v), 4, "{v}");
    assert!(
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["metadata"]["env"] == "prod")
    );
    let (_, v) = app
        .get("/v1/sandboxes?metadata.env=prod&metadata.n=2", t)
        .await;
    assert_eq!(count(&v), 1, "{v}");
    let (_, v) = app.get("/v1/sandboxes?metadata.env=prod&limit=1", t).await;
    assert_eq!(count(&v), 1);
    assert!(v["next_cursor"].is_string());
    let (_, v) = app.get("/v1/sandboxes?status=paused", t).await;
    assert_eq!(count(&v), 1);
    assert_eq!(v["items"][0]["id"], ids[6].to_string());
    let (_, v) = app.get("/v1/sandboxes?status=stopped", t).await;
    assert_eq!(count(&v), 1);
    let (_, v) = app
        .get("/v1/sandboxes?status=running,paused,stopped", t)
        .await;
    assert_eq!(count(&v), 8);
    let (_, v) = app.get("/v1/sandboxes?metadata.env=%20nope", t).await;
    assert_eq!(count(&v), 0);

    // Bad filters.
    for (q, field) in [
        ("status=sleeping", "status"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=x", "limit"),
        ("cursor=garbage", "cursor"),
    ] {
        assert_field_error(&app.get(&format!("/v1/sandboxes?{q}"), t).await, field);
    }
}

async fn snapshots_validate_and_scope(app: TestApp) {
    let a = app.signup("snap@example.com").await;
    let t = Auth::Bearer(&a.token);
    let id = put_sandbox(&app, &a.team_id, SandboxStatus::Running, &[]).await;
    let (status, list) = app.get("/v1/snapshots", t).await;
    assert_eq!((status, list), (StatusCode::OK, json!([])));
    for name in ["", "Bad", "../x", "a b", "t-reserved", "minimal"] {
        assert_field_error(
            &app.post(
                "/v1/snapshots",
                &json!({"sandbox_id": id.to_string(), "name": name}),
                t,
            )
            .await,
            "name",
        );
    }
    for body in [json!({"name": "x"}), json!({"sandbox_id": 1, "name": "x"})] {
        assert_error(
            &app.post("/v1/snapshots", &body, t).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
        );
    }
    assert_error(
        &app.post(
            "/v1/snapshots",
            &json!({"sandbox_id": "nope", "name": "ok"}),
            t,
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    for name in ["ghost", "..", "%2e%2e%2fetc"] {
        assert_error(
            &app.delete(&format!("/v1/snapshots/{name}"), t).await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
    }
}

async fn stream_routes_take_access_token(app: TestApp) {
    let a = app.signup("stream@example.com").await;
    let b = app.signup("stream-b@example.com").await;
    let (_, key) = app.create_key(&a, "k").await;
    let id = put_sandbox(&app, &a.team_id, SandboxStatus::Paused, &[]).await;
    let path = format!("/v1/sandboxes/{id}/exec/stream?cmd=true");
    // The owner's JWT or key in the query authenticate (the sandbox is paused: 409).
    for token in [a.token.as_str(), key.as_str()] {
        let got = app
            .get(&format!("{path}&access_token={token}"), Auth::None)
            .await;
        assert_error(&got, StatusCode::CONFLICT, "conflict");
    }
    // Another team's token: 404; a bad one: 401.
    let got = app
        .get(&format!("{path}&access_token={}", b.token), Auth::None)
        .await;
    assert_error(&got, StatusCode::NOT_FOUND, "not_found");
    for bad in ["x", "wr_0000000000000000000000000000000000000000"] {
        let got = app
            .get(&format!("{path}&access_token={bad}"), Auth::None)
            .await;
        assert_error(&got, StatusCode::UNAUTHORIZED, "unauthenticated");
    }
    // Routes that can send headers do not read tokens from URLs.
    let got = app
        .get(
            &format!("/v1/sandboxes?access_token={}", a.token),
            Auth::None,
        )
        .await;
    assert_error(&got, StatusCode::UNAUTHORIZED, "unauthenticated");
    // Query validation of the stream.
    let got = app
        .get(
            &format!("/v1/sandboxes/{id}/exec/stream?cmd=true&argv=ls"),
            Auth::Bearer(&a.token),
        )
        .await;
    assert_field_error(&got, "cmd");
    let got = app
        .get(
            &format!("/v1/sandboxes/{id}/exec/stream?cmd=true&timeout_s=x"),
            Auth::Bearer(&a.token),
        )
        .await;
    assert_field_error(&got, "timeout_s");
}

async fn requests_need_credentials(app: TestApp) {
    let a = app.signup("creds@example.com").await;
    let id = put_sandbox(&app, &a.team_id, SandboxStatus::Running, &[]).await;
    let t = Auth::Bearer(&a.token);
    for (method, suffix, body) in sandbox_routes() {
        let path = format!("/v1/sandboxes/{id}{suffix}");
        let got = call(&app, method, &path, body.as_ref(), Auth::None).await;
        assert_error(&got, StatusCode::UNAUTHORIZED, "unauthenticated");
    }
    for (method, path) in [
        (reqwest::Method::GET, "/v1/sandboxes"),
        (reqwest::Method::POST, "/v1/sandboxes"),
        (reqwest::Method::GET, "/v1/snapshots"),
        (reqwest::Method::POST, "/v1/snapshots"),
        (reqwest::Method::DELETE, "/v1/snapshots/x"),
    ] {
        let got = call(&app, method, path, Some(&json!({})), Auth::None).await;
        assert_error(&got, StatusCode::UNAUTHORIZED, "unauthenticated");
    }
    // Input checks of the running sandbox's routes (before any host is asked).
    for (suffix, body, field) in [
        ("/exec", json!({}), "cmd"),
        ("/exec", json!({"cmd": "x", "argv": ["x"]}), "cmd"),
        ("/exec", json!({"argv": []}), "argv"),
        ("/exec", json!({"cmd": "x", "cwd": "rel"}), "cwd"),
        ("/exec", json!({"cmd": "x", "user": "Root"}), "user"),
        ("/exec", json!({"cmd": "x", "timeout_s": 0}), "timeout_s"),
        ("/exec", json!({"cmd": "x", "timeout_s": 3601}), "timeout_s"),
        ("/timeout", json!({"timeout_s": 0}), "timeout_s"),
        ("/timeout", json!({"timeout_s": 86_401}), "timeout_s"),
    ] {
        assert_field_error(
            &app.post(&format!("/v1/sandboxes/{id}{suffix}"), &body, t)
                .await,
            field,
        );
    }
    assert_error(
        &app.post(&format!("/v1/sandboxes/{id}/timeout"), &json!({}), t)
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unprocessable",
    );
    for q in ["", "?path=", "?path=a%00b"] {
        let got = app.get(&format!("/v1/sandboxes/{id}/files{q}"), t).await;
        assert_field_error(&got, "path");
    }
    // Resume takes an optional body: garbage is still refused.
    let paused = put_sandbox(&app, &a.team_id, SandboxStatus::Paused, &[]).await;
    let got = app
        .send(
            app.client
                .post(app.url(&format!("/v1/sandboxes/{paused}/resume")))
                .body("{not json"),
            t,
        )
        .await;
    assert_error(&got, StatusCode::BAD_REQUEST, "malformed_json");
    assert_field_error(
        &app.post(
            &format!("/v1/sandboxes/{paused}/resume"),
            &json!({"timeout_s": 86_401}),
            t,
        )
        .await,
        "timeout_s",
    );
}

/// An `online` host row whose address refuses connections: every call to it fails for real
/// (connection refused), which is how a host that died since its last heartbeat looks.
async fn dead_host(app: &TestApp) -> HostId {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut h =
        store::host::Host::new_pending(Some(format!("127.0.0.1:{port}")), "{}".into(), now_ms());
    h.status = HostStatus::Online;
    h.templates = vec!["minimal".into()];
    store::host::insert(app.state.store().pool(), &h)
        .await
        .expect("insert host");
    h.id
}

async fn host_failures_revert_statuses(app: TestApp) {
    let a = app.signup("revert@example.com").await;
    let t = Auth::Bearer(&a.token);
    let host = dead_host(&app).await;
    let sandbox = |id: SandboxId| {
        let app = app.clone();
        let token = a.token.clone();
        async move {
            let (s, v) = app
                .get(&format!("/v1/sandboxes/{id}"), Auth::Bearer(&token))
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            v
        }
    };

    // Create: placed on the only online host, which fails; the row says error, with why.
    let got = app.post("/v1/sandboxes", &json!({}), t).await;
    assert_error(&got, StatusCode::BAD_GATEWAY, "host_error");
    let (_, errs) = app.get("/v1/sandboxes?status=error", t).await;
    let errs = errs["items"].as_array().unwrap().clone();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0]["host_id"], json!(host.to_string()));
    assert!(
        errs[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("create")),
        "{errs:?}"
    );
    let (_, live) = app.get("/v1/sandboxes", t).await;
    assert_eq!(live["items"], json!([]), "no pending leftovers");

    // Pause: intended `paused` is reverted to `running`.
    let running = put_sandbox_on(&app, &a.team_id, SandboxStatus::Running, &[], Some(host)).await;
    let got = app
        .post(&format!("/v1/sandboxes/{running}/pause"), &json!({}), t)
        .await;
    assert_error(&got, StatusCode::BAD_GATEWAY, "host_error");
    assert_eq!(sandbox(running).await["status"], "running");

    // Resume: intended `running` (and new TTL) reverted to `paused` with the old TTL.
    let paused = put_sandbox_on(&app, &a.team_id, SandboxStatus::Paused, &[], Some(host)).await;
    let got = app
        .post(
            &format!("/v1/sandboxes/{paused}/resume"),
            &json!({"timeout_s": 99}),
            t,
        )
        .await;
    assert_error(&got, StatusCode::BAD_GATEWAY, "host_error");
    let v = sandbox(paused).await;
    assert_eq!(
        (&v["status"], &v["timeout_s"]),
        (&json!("paused"), &json!(300)),
        "{v}"
    );

    // Keepalive: the intended expiry is reverted.
    let got = app
        .post(
            &format!("/v1/sandboxes/{running}/timeout"),
            &json!({"timeout_s": 60}),
            t,
        )
        .await;
    assert_error(&got, StatusCode::BAD_GATEWAY, "host_error");
    let v = sandbox(running).await;
    assert_eq!(
        (&v["timeout_s"], &v["expires_at"]),
        (&json!(300), &Value::Null),
        "{v}"
    );

    // Snapshot: no template is left, the sandbox runs again.
    let got = app
        .post(
            "/v1/snapshots",
            &json!({"sandbox_id": running.to_string(), "name": "snap"}),
            t,
        )
        .await;
    assert_error(&got, StatusCode::BAD_GATEWAY, "host_error");
    assert_eq!(sandbox(running).await["status"], "running");
    let (_, snaps) = app.get("/v1/snapshots", t).await;
    assert_eq!(snaps, json!([]));

    // Calls that change nothing just fail.
    for got in [
        app.post(
            &format!("/v1/sandboxes/{running}/exec"),
            &json!({"cmd": "true"}),
            t,
        )
        .await,
        app.get(&format!("/v1/sandboxes/{running}/metrics"), t)
            .await,
        app.get(&format!("/v1/sandboxes/{running}/files?path=/x"), t)
            .await,
        app.get(&format!("/v1/sandboxes/{running}/exec/stream?cmd=true"), t)
            .await,
        app.send(
            app.client
                .put(app.url(&format!("/v1/sandboxes/{running}/files?path=/x")))
                .body(vec![1u8; 300_000]),
            t,
        )
        .await,
    ] {
        assert_error(&got, StatusCode::BAD_GATEWAY, "host_error");
    }

    // Delete: the row is what counts; the host's monitor pass removes the orphan later.
    let (s, _) = app.delete(&format!("/v1/sandboxes/{running}"), t).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(sandbox(running).await["status"], "stopped");

    // Once the host is not online, nothing is placed at all.
    let moved = store::host::set_status(
        app.state.store().pool(),
        host,
        HostStatus::Online,
        HostStatus::Unreachable,
        now_ms(),
    )
    .await
    .expect("mark host unreachable");
    assert!(moved);
    let got = app.post("/v1/sandboxes", &json!({}), t).await;
    assert_error(&got, StatusCode::SERVICE_UNAVAILABLE, "no_capacity");
}

async fn pool_follows_the_hosts_table(app: TestApp) {
    use warren_server::fleet::pool::FleetError;
    let host = dead_host(&app).await;
    let pool = app.state.pool();
    let c = pool.client(host).await.expect("client of a known host");
    assert!(
        c.base_url().starts_with("http://127.0.0.1:"),
        "{}",
        c.base_url()
    );
    assert_eq!(c.bearer().split('.').count(), 3, "a JWT");
    assert!(matches!(
        pool.client(HostId::new()).await,
        Err(FleetError::HostNotFound(_))
    ));
    // Deleted: after an evict (host delete does it) the pool refuses the host.
    sqlx::query("UPDATE hosts SET status = 'deleted' WHERE id = $1")
        .bind(host.to_string())
        .execute(app.state.store().pool())
        .await
        .unwrap();
    pool.evict(host);
    assert!(matches!(
        pool.client(host).await,
        Err(FleetError::HostNotFound(_))
    ));
    // An address that is not host:port never becomes a client.
    let mut h = store::host::Host::new_pending(Some("ftp://x:1".into()), "{}".into(), now_ms());
    h.status = HostStatus::Online;
    store::host::insert(app.state.store().pool(), &h)
        .await
        .unwrap();
    assert!(matches!(
        pool.client(h.id).await,
        Err(FleetError::BadAddress { .. })
    ));
}
