//! Fleet tests of the sandbox REST API (issue 5 §7), on SQLite and (with
//! `WARREN_TEST_DATABASE_URL`) on PostgreSQL: one real `warren server` and three real
//! `warren agent` processes (see `fleet_common`), driven over HTTP as a user would.
//!
//! Scheduling spreads sandboxes over the three hosts; exec (shell line, argv, env, cwd, user,
//! non-UTF-8 output), exec streams over SSE and WebSocket (stdin from binary frames), a 20 MiB file round trip (raw PUT
//! and GET, both streamed), multipart upload, metrics, pause/resume (files kept), keepalive,
//! snapshot → create from it on the host holding it → delete broadcast to every host, list
//! filters and paging, another team's access to every route (404), destroy.
//! Needs root, runsc and `cargo build -p warren -p envd`.

mod fleet_common;

use std::collections::BTreeSet;
use std::time::Duration;

use base64::Engine as _;
use fleet_common::{Db, Fleet, FleetOpts, wait_until};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};

#[tokio::test]
async fn sandboxes_across_the_fleet_sqlite() {
    sandboxes_across_the_fleet(Db::Sqlite).await;
}

#[tokio::test]
async fn sandboxes_across_the_fleet_postgres() {
    let Some(db) = Db::postgres_from_env() else {
        return;
    };
    sandboxes_across_the_fleet(db).await;
}

/// A user of the API: one team's key.
struct User<'a> {
    fleet: &'a Fleet,
    key: String,
    jwt: String,
}

impl User<'_> {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.fleet
            .call(method, path, None, Some(&self.key), body)
            .await
    }

    async fn create(&self, body: Value) -> Value {
        let (s, sb) = self.call("POST", "/v1/sandboxes", Some(body)).await;
        assert_eq!(s, 201, "create sandbox: {sb}\n{}", self.fleet.logs());
        assert_eq!(sb["status"], "running", "{sb}");
        sb
    }

    async fn exec(&self, id: &str, body: Value) -> Value {
        let (s, out) = self
            .call("POST", &format!("/v1/sandboxes/{id}/exec"), Some(body))
            .await;
        assert_eq!(s, 200, "exec: {out}");
        out
    }

    async fn sh(&self, id: &str, line: &str) -> String {
        let out = self.exec(id, json!({"cmd": line})).await;
        assert_eq!(out["exit_code"], 0, "{line}: {out}");
        out["stdout"].as_str().unwrap().to_owned()
    }
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

/// 20 MiB that no compression or chunking artefact reproduces by accident.
fn big_file() -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..20 * 1024 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Parses an SSE body into its JSON events.
fn sse_events(body: &str) -> Vec<Value> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| serde_json::from_str(d.trim()).expect("event json"))
        .collect()
}

/// (stdout, stderr, exit code) of a list of exec events.
fn collect(events: &[Value]) -> (String, String, i64) {
    let b64 = |v: &Value| {
        base64::engine::general_purpose::STANDARD
            .decode(v["data"].as_str().unwrap())
            .unwrap()
    };
    let (mut out, mut err, mut code) = (Vec::new(), Vec::new(), None);
    for e in events {
        match e["type"].as_str() {
            Some("stdout") => out.extend(b64(e)),
            Some("stderr") => err.extend(b64(e)),
            Some("exit") => code = e["exit_code"].as_i64(),
            Some("start") => {}
            other => panic!("unexpected event {other:?}: {e}"),
        }
    }
    (
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
        code.expect("an exit event"),
    )
}

async fn sandboxes_across_the_fleet(db: Db) {
    let Some(fleet) = Fleet::start(FleetOpts {
        agents: 3,
        db,
        ..Default::default()
    })
    .await
    else {
        return;
    };
    let (jwt, key) = fleet.signup().await;
    let a = User {
        fleet: &fleet,
        key,
        jwt,
    };
    let (b_jwt, b_key) = fleet.signup().await;
    let b = User {
        fleet: &fleet,
        key: b_key,
        jwt: b_jwt,
    };

    // --- scheduling: three sandboxes land on three hosts --------------------------------
    let mut spread = Vec::new();
    for n in 0..3 {
        spread.push(
            a.create(
                json!({"memory_mb": 256, "metadata": {"group": "spread", "n": n.to_string()}}),
            )
            .await,
        );
    }
    let hosts: BTreeSet<&str> = spread
        .iter()
        .map(|s| s["host_id"].as_str().unwrap())
        .collect();
    let agents: BTreeSet<&str> = fleet.agents.iter().map(|a| a.host_id.as_str()).collect();
    assert_eq!(hosts, agents, "one sandbox per host: {spread:?}");
    let sb = id_of(&spread[0]);
    assert_eq!(spread[0]["template"], "minimal");
    assert_eq!(spread[0]["metadata"]["group"], "spread");

    // --- exec --------------------------------------------------------------------------
    let out = a
        .exec(&sb, json!({"cmd": "echo hello; echo oops >&2; exit 3"}))
        .await;
    assert_eq!(
        (
            &out["stdout"],
            &out["stderr"],
            &out["exit_code"],
            &out["encoding"]
        ),
        (
            &json!("hello\n"),
            &json!("oops\n"),
            &json!(3),
            &json!("utf-8")
        )
    );
    let out = a
        .exec(
            &sb,
            json!({"cmd": "echo $GREETING; pwd", "env": {"GREETING": "hi there"}, "cwd": "/tmp"}),
        )
        .await;
    assert_eq!(out["stdout"], "hi there\n/tmp\n", "{out}");
    let out = a.exec(&sb, json!({"argv": ["printf", "\\377\\376"]})).await;
    assert_eq!(
        (&out["encoding"], &out["stdout"]),
        (&json!("base64"), &json!("//4="))
    );
    let out = a.exec(&sb, json!({"cmd": "id -u", "user": "root"})).await;
    assert_eq!(out["stdout"], "0\n", "{out}");
    let (s, _) = a
        .call(
            "POST",
            &format!("/v1/sandboxes/{sb}/exec"),
            Some(json!({"cmd": "sleep 5", "timeout_s": 1})),
        )
        .await;
    assert_eq!(s, 504, "exec past its timeout");

    // --- exec stream: SSE, then WebSocket (token in the query, as a browser does) -------
    let resp = fleet
        .http
        .get(fleet.url(&format!(
            "/v1/sandboxes/{sb}/exec/stream?cmd=echo%20a;%20sleep%200.2;%20echo%20b%20%3E%262;%20exit%204"
        )))
        .header("x-api-key", &a.key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()[reqwest::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let events = sse_events(&resp.text().await.unwrap());
    assert_eq!(events[0]["type"], "start", "{events:?}");
    assert_eq!(collect(&events), ("a\n".into(), "b\n".into(), 4));

    let ws_url = format!(
        "{}/v1/sandboxes/{sb}/exec/stream?argv=sh&argv=-c&argv=seq%201%203&access_token={}",
        fleet.base.replacen("http://", "ws://", 1),
        a.jwt
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(&ws_url)
        .await
        .expect("websocket");
    let mut events = Vec::new();
    while let Some(msg) = tokio::time::timeout(Duration::from_secs(30), ws.next())
        .await
        .expect("websocket event in time")
    {
        match msg.expect("websocket message") {
            tokio_tungstenite::tungstenite::Message::Text(t) => {
                events.push(serde_json::from_str::<Value>(&t).unwrap())
            }
            tokio_tungstenite::tungstenite::Message::Close(_) => break,
            _ => {}
        }
    }
    let _ = ws.close(None).await;
    assert_eq!(collect(&events), ("1\n2\n3\n".into(), String::new(), 0));
    // Binary frames are stdin; an empty one closes it.
    let cat_url = format!(
        "{}/v1/sandboxes/{sb}/exec/stream?cmd=tr%20a-z%20A-Z&access_token={}",
        fleet.base.replacen("http://", "ws://", 1),
        a.key
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(&cat_url)
        .await
        .expect("websocket");
    use tokio_tungstenite::tungstenite::Message as Ws;
    ws.send(Ws::Binary(b"hello ".to_vec().into()))
        .await
        .unwrap();
    ws.send(Ws::Binary(b"stdin\n".to_vec().into()))
        .await
        .unwrap();
    ws.send(Ws::Binary(Vec::new().into())).await.unwrap();
    let mut events = Vec::new();
    while let Some(msg) = tokio::time::timeout(Duration::from_secs(30), ws.next())
        .await
        .expect("websocket event in time")
    {
        match msg.expect("websocket message") {
            Ws::Text(t) => events.push(serde_json::from_str::<Value>(&t).unwrap()),
            Ws::Close(_) => break,
            _ => {}
        }
    }
    assert_eq!(collect(&events), ("HELLO STDIN\n".into(), String::new(), 0));
    // Another team's token opens nothing.
    let ws_url = ws_url.replace(&a.jwt, &b.jwt);
    let err = tokio_tungstenite::connect_async(&ws_url).await.unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");

    // --- files: 20 MiB round trip, streamed both ways -----------------------------------
    let big = big_file();
    let (s, w) = {
        let resp = fleet
            .http
            .put(fleet.url(&format!("/v1/sandboxes/{sb}/files?path=/big.bin")))
            .header("x-api-key", &a.key)
            .body(big.clone())
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
    };
    assert_eq!((s, &w["size"]), (200, &json!(big.len())), "{w}");
    assert_eq!(
        a.sh(&sb, "wc -c < /big.bin").await.trim(),
        big.len().to_string()
    );
    let resp = fleet
        .http
        .get(fleet.url(&format!("/v1/sandboxes/{sb}/files?path=/big.bin")))
        .header("x-api-key", &a.key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let got = resp.bytes().await.unwrap();
    assert_eq!(got.len(), big.len());
    assert!(got[..] == big[..], "20 MiB file changed in the round trip");
    let (s, e) = a
        .call("GET", &format!("/v1/sandboxes/{sb}/files?path=/nope"), None)
        .await;
    assert_eq!(s, 404, "{e}");
    // Multipart: two files into a directory.
    a.sh(&sb, "mkdir -p /up").await;
    let form = reqwest::multipart::Form::new()
        .part(
            "a",
            reqwest::multipart::Part::bytes(b"alpha".to_vec()).file_name("a.txt"),
        )
        .part(
            "b",
            reqwest::multipart::Part::bytes(b"beta".to_vec()).file_name("b.txt"),
        );
    let resp = fleet
        .http
        .post(fleet.url(&format!("/v1/sandboxes/{sb}/files?path=/up/")))
        .header("x-api-key", &a.key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let w: Value = resp.json().await.unwrap();
    assert_eq!(w["files"][1], json!({"path": "/up/b.txt", "size": 4}));
    assert_eq!(a.sh(&sb, "cat /up/a.txt /up/b.txt").await, "alphabeta");

    // --- metrics -----------------------------------------------------------------------
    let (s, m) = a
        .call("GET", &format!("/v1/sandboxes/{sb}/metrics"), None)
        .await;
    assert_eq!(s, 200, "{m}");
    assert_eq!(m["sandbox_id"], json!(sb));
    assert!(m["memory_bytes"].as_u64().is_some(), "{m}");
    assert!(m["disk_bytes"].as_u64().unwrap() > 0, "{m}");

    // --- pause / resume / keepalive ------------------------------------------------------
    let (s, p) = a
        .call("POST", &format!("/v1/sandboxes/{sb}/pause"), None)
        .await;
    assert_eq!((s, &p["status"]), (200, &json!("paused")), "{p}");
    let (s, _) = a
        .call(
            "POST",
            &format!("/v1/sandboxes/{sb}/exec"),
            Some(json!({"cmd": "true"})),
        )
        .await;
    assert_eq!(s, 409, "exec on a paused sandbox");
    let (s, _) = a
        .call("POST", &format!("/v1/sandboxes/{sb}/pause"), None)
        .await;
    assert_eq!(s, 409, "double pause");
    let (s, r) = a
        .call(
            "POST",
            &format!("/v1/sandboxes/{sb}/resume"),
            Some(json!({"timeout_s": 600})),
        )
        .await;
    assert_eq!((s, &r["status"]), (200, &json!("running")), "{r}");
    assert_eq!(r["timeout_s"], 600);
    assert_eq!(
        a.sh(&sb, "wc -c < /big.bin").await.trim(),
        big.len().to_string()
    );
    let (s, t) = a
        .call(
            "POST",
            &format!("/v1/sandboxes/{sb}/timeout"),
            Some(json!({"timeout_s": 120})),
        )
        .await;
    assert_eq!(s, 200, "{t}");
    let expires = chrono::DateTime::parse_from_rfc3339(t["expires_at"].as_str().unwrap()).unwrap();
    let left = expires
        .signed_duration_since(chrono::Utc::now())
        .num_seconds();
    assert!((100..=125).contains(&left), "expires in {left}s: {t}");

    // --- snapshot → create from it → delete, broadcast ------------------------------------
    let src = &spread[1];
    let src_id = id_of(src);
    a.sh(&src_id, "echo from-the-snapshot > /marker").await;
    let (s, snap) = a
        .call(
            "POST",
            "/v1/snapshots",
            Some(json!({"sandbox_id": src_id, "name": "warm"})),
        )
        .await;
    assert_eq!(s, 201, "snapshot: {snap}\n{}", fleet.logs());
    assert_eq!(
        (&snap["name"], &snap["status"]),
        (&json!("warm"), &json!("ready"))
    );
    let (_, src_now) = a
        .call("GET", &format!("/v1/sandboxes/{src_id}"), None)
        .await;
    assert_eq!(src_now["status"], "paused");
    let (s, _) = a
        .call(
            "POST",
            "/v1/snapshots",
            Some(json!({"sandbox_id": src_id, "name": "warm"})),
        )
        .await;
    assert_eq!(s, 409, "snapshot name taken");
    let (_, list) = a.call("GET", "/v1/snapshots", None).await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let (_, list) = b.call("GET", "/v1/snapshots", None).await;
    assert_eq!(list, json!([]));
    let (s, _) = b
        .call("POST", "/v1/sandboxes", Some(json!({"template": "warm"})))
        .await;
    assert_eq!(s, 404, "another team's snapshot");
    let fork = a.create(json!({"template": "warm"})).await;
    assert_eq!(
        fork["host_id"], src["host_id"],
        "placed where the snapshot is"
    );
    assert_eq!(fork["template"], "warm");
    let fork_id = id_of(&fork);
    assert_eq!(a.sh(&fork_id, "cat /marker").await, "from-the-snapshot\n");
    // The source sandbox resumes untouched, next to its fork.
    let (s, _) = a
        .call("POST", &format!("/v1/sandboxes/{src_id}/resume"), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(a.sh(&src_id, "cat /marker").await, "from-the-snapshot\n");
    // Two sandboxes on one host: a slow command in one does not hold up the other.
    let slow = a.exec(&fork_id, json!({"cmd": "sleep 4; echo slept"}));
    let quick = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let t0 = std::time::Instant::now();
        for _ in 0..5 {
            assert_eq!(a.sh(&src_id, "echo quick").await, "quick\n");
        }
        t0.elapsed()
    };
    let (slow, quick) = tokio::join!(slow, quick);
    assert_eq!(slow["stdout"], "slept\n");
    assert!(
        quick < Duration::from_secs(2),
        "5 execs took {quick:?} beside a slow one on the same host"
    );
    let (s, _) = a
        .call("DELETE", &format!("/v1/sandboxes/{fork_id}"), None)
        .await;
    assert_eq!(s, 204);
    let (s, _) = b.call("DELETE", "/v1/snapshots/warm", None).await;
    assert_eq!(s, 404, "another team deleting it");
    let (s, _) = a.call("DELETE", "/v1/snapshots/warm", None).await;
    assert_eq!(s, 204);
    let (s, _) = a
        .call("POST", "/v1/sandboxes", Some(json!({"template": "warm"})))
        .await;
    assert_eq!(s, 404, "deleted snapshot");
    let host_name = format!("t-{}", snap["id"].as_str().unwrap().replace('-', ""));
    for i in 0..fleet.agents.len() {
        wait_until(
            &format!("host {i} no longer reports snapshot {host_name}"),
            Duration::from_secs(20),
            || async {
                let h = fleet.host(i).await;
                let has = h["templates"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|n| n == &json!(host_name)));
                (!has).then_some(())
            },
        )
        .await;
    }
    assert_eq!(a.sh(&src_id, "cat /marker").await, "from-the-snapshot\n");

    // --- another team: 404 on every route ------------------------------------------------
    for (method, suffix, body) in [
        ("GET", "", None),
        ("POST", "/pause", None),
        ("POST", "/resume", None),
        ("POST", "/timeout", Some(json!({"timeout_s": 60}))),
        ("POST", "/exec", Some(json!({"cmd": "true"}))),
        ("GET", "/exec/stream?cmd=true", None),
        ("GET", "/files?path=/big.bin", None),
        ("PUT", "/files?path=/x", None),
        ("GET", "/metrics", None),
        ("DELETE", "", None),
    ] {
        let (s, e) = b
            .call(method, &format!("/v1/sandboxes/{sb}{suffix}"), body)
            .await;
        assert_eq!(s, 404, "{method} {suffix}: {e}");
    }
    let (s, _) = b
        .call(
            "POST",
            "/v1/snapshots",
            Some(json!({"sandbox_id": sb, "name": "stolen"})),
        )
        .await;
    assert_eq!(s, 404);
    assert_eq!(a.sh(&sb, "echo still-mine").await, "still-mine\n");

    // --- list filters and paging ---------------------------------------------------------
    let (_, l) = a
        .call("GET", "/v1/sandboxes?metadata.group=spread", None)
        .await;
    assert_eq!(l["items"].as_array().unwrap().len(), 3, "{l}");
    let (_, l) = a
        .call(
            "GET",
            "/v1/sandboxes?metadata.group=spread&metadata.n=2",
            None,
        )
        .await;
    assert_eq!(l["items"][0]["id"], spread[2]["id"]);
    let (_, l) = a.call("GET", "/v1/sandboxes?status=stopped", None).await;
    assert_eq!(l["items"][0]["id"], json!(fork_id), "{l}");
    let mut seen = Vec::new();
    let mut path = "/v1/sandboxes?limit=2".to_owned();
    loop {
        let (s, page) = a.call("GET", &path, None).await;
        assert_eq!(s, 200, "{page}");
        seen.extend(page["items"].as_array().unwrap().iter().map(id_of));
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/sandboxes?limit=2&cursor={c}"),
            None => break,
        }
    }
    let mut want: Vec<String> = spread.iter().map(id_of).collect();
    want.reverse();
    assert_eq!(seen, want, "live sandboxes, newest first");
    let (_, l) = b.call("GET", "/v1/sandboxes", None).await;
    assert_eq!(l["items"], json!([]));

    // --- destroy -------------------------------------------------------------------------
    for s in &spread {
        let id = id_of(s);
        let (st, _) = a.call("DELETE", &format!("/v1/sandboxes/{id}"), None).await;
        assert_eq!(st, 204);
        let (_, got) = a.call("GET", &format!("/v1/sandboxes/{id}"), None).await;
        assert_eq!(got["status"], "stopped");
        let (st, _) = a
            .call(
                "POST",
                &format!("/v1/sandboxes/{id}/exec"),
                Some(json!({"cmd": "true"})),
            )
            .await;
        assert_eq!(st, 409, "exec on a stopped sandbox");
    }
    for i in 0..fleet.agents.len() {
        wait_until(
            &format!("host {i} reports no live sandbox"),
            Duration::from_secs(20),
            || async { (fleet.host(i).await["live_sandboxes"] == json!(0)).then_some(()) },
        )
        .await;
    }
}
