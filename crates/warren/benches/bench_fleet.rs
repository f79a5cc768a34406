//! Control-plane benchmark (DESIGN §7): a real `warren server` (SQLite) and one registered
//! `warren agent`, started as processes by the fleet test harness, measured in one run:
//!
//! 1. create → first exec answered through the REST API, against bare `runsc run` +
//!    `runsc exec` on the same template image;
//! 2. exec `/bin/true` round trip through REST, through the agent's `Exec` RPC, and straight to
//!    envd at the sandbox's address, so the cost of each layer shows;
//! 3. `GET /v1/sandboxes` with 1,000 sandboxes in the team (rows inserted into the SQLite
//!    store, status running, on the real host) at a fixed 200 req/s for 10 s, latency taken
//!    from each request's scheduled send time (no coordinated omission); and
//!    `GET /v1/sandboxes/{id}` the same way.
//!
//! Prints a markdown table for `docs/benchmarks.md`. Run as root:
//! `cargo bench -p warren --bench bench_fleet -- [CREATES] [EXECS]` (defaults 5 and 300).
//! Needs runsc, `sqlite3` and an envd binary (`WARREN_ENVD_BIN`, else `target/release/envd`).

#[path = "../../warren-agent/examples/support/bare_runsc.rs"]
mod bare_runsc;
#[path = "../tests/fleet_common/mod.rs"]
mod fleet_common;

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;
use fleet_common::{Fleet, FleetOpts};
use serde_json::{Value, json};
use warren_proto::envd::client::{Command as EnvdCommand, EnvdClient};

/// Percentile `p` (0..=100) of `v`, in milliseconds.
fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p / 100.0).round() as usize;
    v[i].as_secs_f64() * 1000.0
}

fn agent_jwt(pkcs8: &[u8], aud: &str) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"iss": "warren", "aud": aud, "iat": now, "exp": now + 3600});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA),
        &claims,
        &jsonwebtoken::EncodingKey::from_ed_der(pkcs8),
    )
    .expect("sign agent token")
}

/// `POST`s JSON with the API key; fails unless the status is `want`.
async fn post(
    fleet: &Fleet,
    key: &str,
    path: &str,
    body: Value,
    want: u16,
) -> anyhow::Result<Value> {
    let resp = fleet
        .http
        .post(fleet.url(path))
        .header("x-api-key", key)
        .json(&body)
        .send()
        .await?;
    let s = resp.status().as_u16();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    anyhow::ensure!(s == want, "POST {path}: {s} {v}");
    Ok(v)
}

async fn delete(fleet: &Fleet, key: &str, id: &str) -> anyhow::Result<()> {
    let s = fleet
        .http
        .delete(fleet.url(&format!("/v1/sandboxes/{id}")))
        .header("x-api-key", key)
        .send()
        .await?
        .status();
    anyhow::ensure!(s.is_success(), "delete {id}: {s}");
    Ok(())
}

/// GETs `path` at `rate` req/s for `secs`; latencies from each request's scheduled start.
async fn fixed_rate(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    rate: u32,
    secs: u32,
) -> anyhow::Result<(Vec<Duration>, usize)> {
    let period = Duration::from_secs(1) / rate;
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::new();
    for i in 0..rate * secs {
        let at = start + period * i;
        tokio::time::sleep_until(at).await;
        let (http, url, key) = (http.clone(), url.to_owned(), key.to_owned());
        tasks.push(tokio::spawn(async move {
            let resp = http.get(&url).header("x-api-key", key).send().await?;
            let status = resp.status();
            let body = resp.bytes().await?;
            anyhow::ensure!(
                status.is_success(),
                "GET {url}: {status} {}",
                String::from_utf8_lossy(&body)
            );
            anyhow::Ok(at.elapsed())
        }));
    }
    // Failed requests (e.g. 503 "database busy") are counted, not timed.
    let (mut out, mut failed) = (Vec::new(), 0usize);
    for t in tasks {
        match t.await? {
            Ok(d) => out.push(d),
            Err(e) => {
                failed += 1;
                if failed == 1 {
                    eprintln!("first failure: {e:#}");
                }
            }
        }
    }
    Ok((out, failed))
}

fn sqlite(db: &std::path::Path, sql: &str) -> anyhow::Result<String> {
    use std::io::Write;
    // SQL on stdin: 999 inserts exceed the 128 KiB limit of one argument.
    let mut child = Command::new("sqlite3")
        .arg("-cmd")
        .arg(".timeout 10000")
        .arg(db)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("run sqlite3 (apt-get install sqlite3)")?;
    child
        .stdin
        .take()
        .context("sqlite3 stdin")?
        .write_all(sql.as_bytes())?;
    let out = child.wait_with_output()?;
    anyhow::ensure!(
        out.status.success(),
        "sqlite3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with("--"));
    let creates: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(5);
    let execs: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(300);
    if std::env::var_os("WARREN_ENVD_BIN").is_none() {
        let p = fleet_common::target_dir().join("release/envd");
        // SAFETY: no other thread exists yet.
        unsafe { std::env::set_var("WARREN_ENVD_BIN", p) };
    }
    if let Some(why) = fleet_common::skip_reason() {
        eprintln!("SKIPPED bench_fleet: {why}");
        return Ok(());
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(creates, execs))
}

async fn run(creates: usize, execs: usize) -> anyhow::Result<()> {
    // Bare runsc on the template image, before the fleet exists (nothing else running).
    let rootfs = fleet_common::minimal_template().join("rootfs.ext4");
    let scratch = tempfile::Builder::new()
        .prefix("warren-bench-fleet-")
        .tempdir()?;
    let bare = bare_runsc::BareBundle::new(scratch.path(), &rootfs)?;
    let mut bare_create = Vec::new();
    for i in 0..creates {
        let id = format!("bfbare{i}");
        let t = Instant::now();
        bare.run_and_exec(&id)?;
        bare_create.push(t.elapsed());
        bare.delete(&id)?;
    }
    drop(bare);

    let fleet = Fleet::start(FleetOpts {
        agents: 1,
        heartbeat: Duration::from_secs(1),
        heartbeat_timeout: Duration::from_secs(10),
        monitor_interval: Duration::from_secs(2),
        // The fake rows below are unknown to the agent: keep the monitor off them.
        reconcile_grace: Duration::from_secs(3600),
        ..Default::default()
    })
    .await
    .context("fleet did not start")?;
    let (_jwt, key) = fleet.signup().await;
    let create_body = json!({"template": "minimal"});
    let true_body = json!({"argv": ["/bin/true"]});

    // 1. create → first exec through REST.
    let mut ours_create = Vec::new();
    for _ in 0..creates {
        let t = Instant::now();
        let sb = post(&fleet, &key, "/v1/sandboxes", create_body.clone(), 201).await?;
        let id = sb["id"].as_str().context("id")?.to_owned();
        let out = post(
            &fleet,
            &key,
            &format!("/v1/sandboxes/{id}/exec"),
            true_body.clone(),
            200,
        )
        .await?;
        anyhow::ensure!(out["exit_code"] == 0, "exec: {out}");
        ours_create.push(t.elapsed());
        delete(&fleet, &key, &id).await?;
    }

    // 2. exec round trip per layer, on one sandbox.
    let sb = post(&fleet, &key, "/v1/sandboxes", create_body.clone(), 201).await?;
    let id = sb["id"].as_str().context("id")?.to_owned();
    let agent = &fleet.agents[0];
    let token = agent_jwt(&fleet.agent_signing_key(), &agent.host_id);
    let rpc = |method: &str| format!("{}/hostagent.v1.HostAgent/{method}", agent.base_url());
    let info: Value = fleet
        .http
        .post(rpc("GetSandbox"))
        .bearer_auth(&token)
        .json(&json!({"sandboxId": id}))
        .send()
        .await?
        .json()
        .await?;
    let ip = info["sandbox"]["sandboxIp"]
        .as_str()
        .or(info["sandboxIp"].as_str())
        .with_context(|| format!("sandbox ip in {info}"))?
        .to_owned();
    let db = fleet.dir.path().join("cp/warren.db");
    let envd_token = sqlite(
        &db,
        &format!("SELECT coalesce(envd_access_token, '') FROM sandboxes WHERE id = '{id}'"),
    )?;
    let envd_url = format!("http://{ip}:49983");
    let envd = if envd_token.is_empty() {
        EnvdClient::new(&envd_url)?
    } else {
        EnvdClient::with_access_token(&envd_url, envd_token)?
    };
    let exec_path = format!("/v1/sandboxes/{id}/exec");
    let (mut rest, mut agent_rpc, mut direct) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..execs + 10 {
        let t = Instant::now();
        let out = post(&fleet, &key, &exec_path, true_body.clone(), 200).await?;
        anyhow::ensure!(out["exit_code"] == 0, "rest exec: {out}");
        let d_rest = t.elapsed();
        let t = Instant::now();
        let resp = fleet
            .http
            .post(rpc("Exec"))
            .bearer_auth(&token)
            .json(&json!({"sandboxId": id, "cmd": "/bin/true"}))
            .send()
            .await?;
        anyhow::ensure!(resp.status().is_success(), "agent exec: {}", resp.status());
        let _ = resp.bytes().await?;
        let d_rpc = t.elapsed();
        let t = Instant::now();
        let out = envd
            .run(EnvdCommand::new("/bin/true", Vec::<String>::new()))
            .await?;
        anyhow::ensure!(out.exit_code == 0);
        let d_envd = t.elapsed();
        if i >= 10 {
            rest.push(d_rest);
            agent_rpc.push(d_rpc);
            direct.push(d_envd);
        }
    }

    // 3. listing with 1,000 sandboxes in the team: 999 copies of the real row.
    let mut sql =
        String::from("BEGIN; CREATE TEMP TABLE t AS SELECT * FROM sandboxes WHERE id = '");
    sql.push_str(&id);
    sql.push_str("';\n");
    for i in 0..999 {
        sql.push_str(&format!(
            "UPDATE t SET id = substr('{id}', 1, length('{id}') - 5) || '{i:05}'; \
             INSERT INTO sandboxes SELECT * FROM t;\n"
        ));
    }
    sql.push_str("COMMIT;");
    sqlite(&db, &sql)?;
    let team_count = sqlite(
        &db,
        &format!(
            "SELECT count(*) FROM sandboxes WHERE status = 'running' AND team_id = \
             (SELECT team_id FROM sandboxes WHERE id = '{id}')"
        ),
    )?;
    anyhow::ensure!(team_count == "1000", "team has {team_count} sandboxes");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(64)
        .build()?;
    // Warm the connection pool and the server's caches.
    for _ in 0..20 {
        http.get(fleet.url("/v1/sandboxes"))
            .header("x-api-key", &key)
            .send()
            .await?;
    }
    let list = fleet.url("/v1/sandboxes");
    let list_all = fleet.url("/v1/sandboxes?limit=1000");
    let get_one = fleet.url(&format!("/v1/sandboxes/{id}"));
    let check: Value = http
        .get(&list_all)
        .header("x-api-key", &key)
        .send()
        .await?
        .json()
        .await?;
    let n_all = check["sandboxes"]
        .as_array()
        .or(check["items"].as_array())
        .or(check.as_array())
        .map_or(0, Vec::len);
    let mut l_page = fixed_rate(&http, &list, &key, 200, 10).await?;
    let mut l_all = fixed_rate(&http, &list_all, &key, 200, 10).await?;
    let mut l_one = fixed_rate(&http, &get_one, &key, 200, 10).await?;

    // Clean: the fake rows first (the agent never had them), then the real sandbox.
    sqlite(
        &db,
        &format!(
            "DELETE FROM sandboxes WHERE id <> '{id}' AND team_id = \
             (SELECT team_id FROM sandboxes WHERE id = '{id}')"
        ),
    )?;
    delete(&fleet, &key, &id).await?;
    let envd_bin = std::env::var("WARREN_ENVD_BIN").unwrap_or_default();
    drop(fleet);
    drop(scratch);

    let med = |v: &mut Vec<Duration>| pct(v, 50.0);
    let (bc, oc) = (med(&mut bare_create), med(&mut ours_create));
    println!("envd: {envd_bin}; listing page check: {n_all} sandboxes with ?limit=1000");
    println!();
    println!("| what | p50 | p99 | baseline (same run) | ratio | target |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| create → first exec answered, REST (median of {creates}) | {oc:.0} ms | – | bare `runsc run` + `runsc exec`: {bc:.0} ms | {:.2}× | ≤ 1.3× |",
        oc / bc
    );
    let (d50, d99) = (pct(&mut direct, 50.0), pct(&mut direct, 99.0));
    for (name, v) in [
        (
            "exec `/bin/true` through REST (server → agent → envd)",
            &mut rest,
        ),
        (
            "exec `/bin/true` through the agent `Exec` RPC (agent → envd)",
            &mut agent_rpc,
        ),
    ] {
        let (p50, p99) = (pct(v, 50.0), pct(v, 99.0));
        let target = if name.contains("REST") {
            "p50 < 10 ms"
        } else {
            "–"
        };
        println!(
            "| {name}, n={execs} | {p50:.2} ms | {p99:.2} ms | envd direct: {d50:.2} / {d99:.2} ms | {:.2}× | {target} |",
            p50 / d50
        );
    }
    println!(
        "| exec `/bin/true` straight to envd (sandbox IP), n={execs} | {d50:.2} ms | {d99:.2} ms | – | 1.00× | – |"
    );
    for (name, v) in [
        (
            "`GET /v1/sandboxes` (default page, 100 of 1,000)",
            &mut l_page,
        ),
        ("`GET /v1/sandboxes?limit=1000` (all 1,000)", &mut l_all),
        ("`GET /v1/sandboxes/{id}`", &mut l_one),
    ] {
        let (v, failed) = (&mut v.0, v.1);
        if v.is_empty() {
            println!("| {name}, 200 req/s × 10 s | – | – | {failed} failed | – | p99 < 20 ms |");
            continue;
        }
        println!(
            "| {name}, 200 req/s × 10 s, from scheduled send ({failed} failed) | {:.2} ms | {:.2} ms | – | – | p99 < 20 ms |",
            pct(v, 50.0),
            pct(v, 99.0)
        );
    }
    Ok(())
}
