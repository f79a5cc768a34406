//! Fleet tests of hosts (issue 5), each on SQLite and (with `WARREN_TEST_DATABASE_URL`) on
//! PostgreSQL: three real `warren agent` processes registered with a real `warren server`
//! through the token flow; a stranger calling an agent directly; an orphan the monitor
//! destroys; a host SIGKILLed (unreachable → its sandboxes missing → back to running when it
//! returns); revoked credentials (the agent pauses everything, the database learns `paused`);
//! TTL expiry reaped on a host showing as `stopped`; graceful (409) and forced host delete.
//! See `fleet_common` for the harness. Needs root, runsc and `cargo build -p warren -p envd`.

mod fleet_common;

use std::time::Duration;

use fleet_common::{Db, Fleet, FleetOpts, wait_until};
use serde_json::{Value, json};

#[tokio::test]
async fn hosts_through_failures_sqlite() {
    hosts_through_failures(Db::Sqlite).await;
}

#[tokio::test]
async fn hosts_through_failures_postgres() {
    let Some(db) = Db::postgres_from_env() else {
        return;
    };
    hosts_through_failures(db).await;
}

/// An EdDSA agent token signed with `pkcs8` for `aud`, expiring in `ttl_s` seconds.
fn agent_jwt(pkcs8: &[u8], aud: &str, ttl_s: i64) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"iss": "warren", "aud": aud, "iat": now, "exp": now + ttl_s});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA),
        &claims,
        &jsonwebtoken::EncodingKey::from_ed_der(pkcs8),
    )
    .unwrap()
}

/// Calls a HostAgent RPC (Connect JSON) on an agent; returns status and body.
async fn agent_rpc(
    fleet: &Fleet,
    agent: usize,
    method: &str,
    bearer: Option<&str>,
    body: Value,
) -> (u16, Value) {
    let url = format!(
        "{}/hostagent.v1.HostAgent/{method}",
        fleet.agents[agent].base_url()
    );
    let mut req = fleet.http.post(url).json(&body);
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    let resp = req.send().await.expect("agent reachable");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Sandbox ids an agent holds, with their statuses.
async fn agent_sandboxes(fleet: &Fleet, agent: usize) -> Vec<(String, String)> {
    let key = fleet.agent_signing_key();
    let token = agent_jwt(&key, &fleet.agents[agent].host_id, 60);
    let (s, body) = agent_rpc(fleet, agent, "ListSandboxes", Some(&token), json!({})).await;
    assert_eq!(s, 200, "{body}");
    body["sandboxes"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    (
                        s["sandboxId"].as_str().unwrap_or("").to_owned(),
                        s["status"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn create_sandbox(fleet: &Fleet, key: &str, extra: Value) -> Value {
    let mut body = json!({"template": "minimal", "memory_mb": 256, "timeout_s": 0});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let (s, sb) = fleet
        .call("POST", "/v1/sandboxes", None, Some(key), Some(body))
        .await;
    assert_eq!(s, 201, "create sandbox: {sb}\n{}", fleet.logs());
    sb
}

async fn sandbox_status(fleet: &Fleet, key: &str, id: &str) -> String {
    let (s, sb) = fleet
        .call("GET", &format!("/v1/sandboxes/{id}"), None, Some(key), None)
        .await;
    assert_eq!(s, 200, "{sb}");
    sb["status"].as_str().unwrap_or("").to_owned()
}

async fn wait_sandbox_status(fleet: &Fleet, key: &str, id: &str, want: &str, timeout: Duration) {
    wait_until(&format!("sandbox {id} {want}"), timeout, || async {
        (sandbox_status(fleet, key, id).await == want).then_some(())
    })
    .await;
}

fn agent_index_of(placed: &[(String, usize)], id: &str) -> usize {
    placed
        .iter()
        .find(|(i, _)| i == id)
        .map(|(_, a)| *a)
        .unwrap()
}

fn agent_index(fleet: &Fleet, host_id: &str) -> usize {
    fleet
        .agents
        .iter()
        .position(|a| a.host_id == host_id)
        .expect("sandbox placed on a fleet host")
}

async fn hosts_through_failures(db: Db) {
    let Some(mut fleet) = Fleet::start(FleetOpts {
        db,
        ..FleetOpts::default()
    })
    .await
    else {
        return;
    };
    let admin = fleet.admin_token().await;

    // Registration: three online hosts reporting their specs and templates.
    let (s, hosts) = fleet
        .call("GET", "/v1/hosts", Some(&admin), None, None)
        .await;
    assert_eq!(s, 200);
    let hosts = hosts.as_array().unwrap().clone();
    assert_eq!(hosts.len(), 3);
    for h in &hosts {
        assert_eq!(h["status"], "online", "{h}");
        assert_eq!(h["runtime"], "gvisor");
        assert_eq!(h["arch"], std::env::consts::ARCH);
        assert_eq!(h["templates"], json!(["minimal"]));
        assert!(h["sandbox_capacity"].as_i64().unwrap() > 0);
        assert!(h["cpu_count"].as_i64().unwrap() > 0);
        assert!(h["last_heartbeat_at"].is_string());
    }
    for a in &fleet.agents {
        let creds = std::fs::metadata(a.data.join("credentials.json")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(creds.permissions().mode() & 0o777, 0o600);
    }

    // A stranger on the network cannot drive an agent: no token, a token signed with another
    // key, a token of the control plane for another host, an expired one. The proxy too.
    let key = fleet.agent_signing_key();
    let other_key =
        ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    let host0 = fleet.agents[0].host_id.clone();
    let host1 = fleet.agents[1].host_id.clone();
    for (why, bearer) in [
        ("no token", None),
        ("garbage", Some("garbage".to_owned())),
        ("wrong key", Some(agent_jwt(other_key.as_ref(), &host0, 60))),
        ("other host", Some(agent_jwt(&key, &host1, 60))),
        ("expired", Some(agent_jwt(&key, &host0, -120))),
    ] {
        let (s, body) = agent_rpc(&fleet, 0, "ListSandboxes", bearer.as_deref(), json!({})).await;
        assert_eq!(s, 401, "{why}: {body}");
        let (s, _) = agent_rpc(
            &fleet,
            0,
            "CreateSandbox",
            bearer.as_deref(),
            json!({"template": "minimal"}),
        )
        .await;
        assert_eq!(s, 401, "{why}");
        let proxied = fleet
            .http
            .get(format!(
                "{}/proxy/sb-x/49983/health",
                fleet.agents[0].base_url()
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(proxied.status().as_u16(), 401, "{why}: proxy");
    }
    let good = agent_jwt(&key, &host0, 60);
    let (s, _) = agent_rpc(&fleet, 0, "ListSandboxes", Some(&good), json!({})).await;
    assert_eq!(s, 200, "the control plane's own token works");

    // Sandboxes through the REST API.
    let (_, api_key) = fleet.signup().await;
    let mut placed = Vec::new();
    // Four on three hosts: one host holds two (the SIGKILL scenario below needs that).
    for _ in 0..4 {
        let sb = create_sandbox(&fleet, &api_key, json!({})).await;
        assert_eq!(sb["status"], "running", "{sb}");
        placed.push((
            sb["id"].as_str().unwrap().to_owned(),
            agent_index(&fleet, sb["host_id"].as_str().unwrap()),
        ));
    }

    // Orphan: a sandbox made on agent 1 behind the control plane's back is destroyed.
    let t1 = agent_jwt(&key, &host1, 60);
    let (s, orphan) = agent_rpc(
        &fleet,
        1,
        "CreateSandbox",
        Some(&t1),
        json!({"template": "minimal", "memoryMb": 256}),
    )
    .await;
    assert_eq!(s, 200, "{orphan}");
    let orphan_id = orphan["sandbox"]["sandboxId"].as_str().unwrap().to_owned();
    wait_until("the orphan destroyed", Duration::from_secs(30), || async {
        let list = agent_sandboxes(&fleet, 1).await;
        (!list.iter().any(|(id, _)| *id == orphan_id)).then_some(())
    })
    .await;
    for (id, _) in &placed {
        wait_sandbox_status(&fleet, &api_key, id, "running", Duration::from_secs(10)).await;
        let on_host = agent_sandboxes(&fleet, agent_index_of(&placed, id)).await;
        assert!(on_host.iter().any(|(i, _)| i == id), "{id} untouched");
    }

    // A host SIGKILLed: unreachable, its sandboxes missing; back when it returns. One of
    // them is deleted meanwhile (stopped in the database, the host could not be told): when
    // the host returns it is an orphan and is destroyed there.
    let victim = (0..3)
        .find(|i| placed.iter().filter(|(_, a)| a == i).count() >= 2)
        .expect("four sandboxes on three hosts");
    let mut on_victim = placed
        .iter()
        .filter(|(_, a)| *a == victim)
        .map(|(id, _)| id.clone());
    let victim_sb = on_victim.next().unwrap();
    let deleted_sb = on_victim.next().unwrap();
    placed.retain(|(id, _)| *id != deleted_sb);
    fleet.kill_agent(victim);
    fleet
        .wait_host_status(victim, "unreachable", Duration::from_secs(20))
        .await;
    wait_sandbox_status(
        &fleet,
        &api_key,
        &victim_sb,
        "missing",
        Duration::from_secs(10),
    )
    .await;
    let (s, body) = fleet
        .call(
            "DELETE",
            &format!("/v1/sandboxes/{deleted_sb}"),
            None,
            Some(&api_key),
            None,
        )
        .await;
    assert_eq!(s, 204, "{body}");
    assert_eq!(
        sandbox_status(&fleet, &api_key, &deleted_sb).await,
        "stopped"
    );
    fleet.restart_agent(victim);
    fleet
        .wait_host_status(victim, "online", Duration::from_secs(30))
        .await;
    wait_until(
        "the deleted sandbox destroyed on its returning host",
        Duration::from_secs(30),
        || async {
            let list = agent_sandboxes(&fleet, victim).await;
            (!list.iter().any(|(id, _)| *id == deleted_sb)).then_some(())
        },
    )
    .await;
    wait_sandbox_status(
        &fleet,
        &api_key,
        &victim_sb,
        "running",
        Duration::from_secs(20),
    )
    .await;
    // Its processes survived the agent: exec still works.
    let (s, out) = fleet
        .call(
            "POST",
            &format!("/v1/sandboxes/{victim_sb}/exec"),
            None,
            Some(&api_key),
            Some(json!({"cmd": "echo back"})),
        )
        .await;
    assert_eq!(s, 200, "{out}");
    assert_eq!(out["stdout"], "back\n");

    // TTL reaped on the host shows as stopped.
    let short = create_sandbox(&fleet, &api_key, json!({"timeout_s": 2})).await;
    let short_id = short["id"].as_str().unwrap().to_owned();
    wait_sandbox_status(
        &fleet,
        &api_key,
        &short_id,
        "stopped",
        Duration::from_secs(30),
    )
    .await;

    // Revoked credentials: the agent pauses everything and the database learns it.
    let revoked = (0..3).find(|i| *i != victim && placed.iter().any(|(_, a)| a == i));
    let revoked = revoked.unwrap_or((victim + 1) % 3);
    let mine: Vec<String> = placed
        .iter()
        .filter(|(_, a)| *a == revoked)
        .map(|(id, _)| id.clone())
        .collect();
    let extra = if mine.is_empty() {
        // Make sure the revoked host holds a running sandbox.
        let sb = create_sandbox(&fleet, &api_key, json!({})).await;
        vec![(
            sb["id"].as_str().unwrap().to_owned(),
            sb["host_id"].as_str().unwrap().to_owned(),
        )]
    } else {
        Vec::new()
    };
    let revoked_sbs: Vec<String> = if mine.is_empty() {
        extra
            .iter()
            .filter(|(_, h)| *h == fleet.agents[revoked].host_id)
            .map(|(id, _)| id.clone())
            .collect()
    } else {
        mine
    };
    let (s, _) = fleet
        .call(
            "POST",
            &format!("/v1/hosts/{}/revoke", fleet.agents[revoked].host_id),
            Some(&admin),
            None,
            None,
        )
        .await;
    assert_eq!(s, 204);
    for id in &revoked_sbs {
        wait_sandbox_status(&fleet, &api_key, id, "paused", Duration::from_secs(60)).await;
    }
    if !revoked_sbs.is_empty() {
        let on_host = agent_sandboxes(&fleet, revoked).await;
        for id in &revoked_sbs {
            assert!(
                on_host.iter().any(|(i, s)| i == id && s.contains("PAUSED")),
                "{id} paused on its host: {on_host:?}"
            );
        }
    }
    // A fresh registration token brings the host back.
    fleet.reregister_agent(revoked).await;
    fleet
        .wait_host_status(revoked, "online", Duration::from_secs(30))
        .await;

    // Host delete: refused while it holds sandboxes, then forced.
    let (target_sb, target) = placed.iter().find(|(_, a)| *a != revoked).cloned().unwrap();
    let target_host = fleet.agents[target].host_id.clone();
    let (s, body) = fleet
        .call(
            "DELETE",
            &format!("/v1/hosts/{target_host}"),
            Some(&admin),
            None,
            None,
        )
        .await;
    assert_eq!(s, 409, "{body}");
    assert_eq!(body["error"]["code"], "conflict");
    let listed: Vec<&str> = body["error"]["sandboxes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(listed.contains(&target_sb.as_str()), "{body}");
    let (s, body) = fleet
        .call(
            "DELETE",
            &format!("/v1/hosts/{target_host}?force=true"),
            Some(&admin),
            None,
            None,
        )
        .await;
    assert_eq!(s, 204, "{body}");
    assert_eq!(
        sandbox_status(&fleet, &api_key, &target_sb).await,
        "stopped"
    );
    assert!(
        agent_sandboxes(&fleet, target).await.is_empty(),
        "force delete destroyed the host's sandboxes"
    );
    let (s, _) = fleet
        .call(
            "GET",
            &format!("/v1/hosts/{target_host}"),
            Some(&admin),
            None,
            None,
        )
        .await;
    assert_eq!(s, 404);
    // The deleted host's agent is locked out: its heartbeats are refused.
    let (_, hosts) = fleet
        .call("GET", "/v1/hosts", Some(&admin), None, None)
        .await;
    assert_eq!(hosts.as_array().unwrap().len(), 2);
}

/// Host JWTs that expire every second: the agent's heartbeat meets a 401, refreshes
/// (rotating its refresh token, saved to `credentials.json`), retries, and the host stays
/// online without pausing anything.
#[tokio::test]
async fn expiring_host_tokens_are_refreshed() {
    let Some(fleet) = Fleet::start(FleetOpts {
        agents: 1,
        heartbeat: Duration::from_millis(300),
        server_env: vec![("WARREN_HOST_TOKEN_TTL_MS".into(), "1000".into())],
        ..FleetOpts::default()
    })
    .await
    else {
        return;
    };
    let creds = |f: &Fleet| -> Value {
        serde_json::from_slice(&std::fs::read(f.agents[0].data.join("credentials.json")).unwrap())
            .unwrap()
    };
    let first = creds(&fleet);
    wait_until("two refreshes", Duration::from_secs(20), || async {
        let now = creds(&fleet);
        (now["refresh_token"] != first["refresh_token"]).then_some(now)
    })
    .await;
    let before = fleet.host(0).await["last_heartbeat_at"].clone();
    wait_until(
        "a heartbeat with refreshed credentials",
        Duration::from_secs(10),
        || async {
            let h = fleet.host(0).await;
            (h["last_heartbeat_at"] != before && h["status"] == "online").then_some(())
        },
    )
    .await;
    let log = std::fs::read_to_string(fleet.agents[0].data.join("agent.log")).unwrap();
    assert!(log.contains("host credentials refreshed"), "{log}");
    assert!(!log.contains("every sandbox paused"), "{log}");
}
