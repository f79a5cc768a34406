//! The real `warren agent` binary driven over its Connect API (JSON codec, like curl):
//! create, exec, files, auth, and an agent killed with SIGKILL then restarted mid-life that
//! finds its running sandbox (same processes, same files) again.
//!
//! Needs `target/debug/warren` (`cargo build -p warren`) or `WARREN_BIN`; skips with a printed
//! reason otherwise.

mod lifecycle_common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const TOKEN: &str = "lifecycle-test-token";

fn warren_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("WARREN_BIN") {
        return Some(PathBuf::from(p));
    }
    let p = lifecycle_common::target_dir().join("debug/warren");
    p.is_file().then_some(p)
}

struct Agent {
    child: Child,
    url: String,
}

impl Agent {
    fn spawn(bin: &PathBuf, data: &std::path::Path, port: u16) -> Agent {
        let log = std::fs::File::create(data.join("agent.log")).unwrap();
        let child = Command::new(bin)
            .args([
                "agent",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(data)
            .args(["--net-pool", "10.210.30.0/24", "--net-prefix", "wl30"])
            .env("WARREN_AGENT_TOKEN", TOKEN)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn warren agent");
        Agent {
            child,
            url: format!("http://127.0.0.1:{port}/hostagent.v1.HostAgent"),
        }
    }

    async fn call(&self, method: &str, body: Value) -> (u16, Value) {
        let r = reqwest::Client::new()
            .post(format!("{}/{method}", self.url))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .expect("agent reachable");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn ok(&self, method: &str, body: Value) -> Value {
        let (status, v) = self.call(method, body).await;
        assert_eq!(status, 200, "{method}: {v}");
        v
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = reqwest::Client::new()
                .post(format!("{}/ListSandboxes", self.url))
                .bearer_auth(TOKEN)
                .json(&json!({}))
                .send()
                .await
                && r.status().is_success()
            {
                return;
            }
            assert!(Instant::now() < deadline, "agent did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn unb64(v: &Value) -> String {
    use base64::Engine;
    let s = v.as_str().unwrap_or_default();
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(s).unwrap()).unwrap()
}

async fn exec(agent: &Agent, id: &str, script: &str) -> (String, i64) {
    let v = agent
        .ok(
            "Exec",
            json!({"sandboxId": id, "cmd": "/bin/sh", "args": ["-c", script]}),
        )
        .await;
    (unb64(&v["stdout"]), v["exitCode"].as_i64().unwrap_or(0))
}

#[tokio::test(flavor = "multi_thread")]
async fn lifecycle_agent_sigkill_restart_keeps_sandboxes() {
    skip_unless_ready!();
    let Some(bin) = warren_bin() else {
        eprintln!("SKIPPED: needs target/debug/warren (cargo build -p warren) or WARREN_BIN");
        return;
    };
    let data = lifecycle_common::data_dir();
    lifecycle_common::install_template(data.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut agent = Agent::spawn(&bin, data.path(), port);
    agent.wait_ready().await;

    // No token, no access.
    let r = reqwest::Client::new()
        .post(format!("{}/ListSandboxes", agent.url))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // Bad input is a 4xx with a Connect code, never internal.
    let (status, v) = agent
        .call("Exec", json!({"sandboxId": "../etc", "cmd": "true"}))
        .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (400, Some("invalid_argument")),
        "{v}"
    );
    let (status, v) = agent
        .call("CreateSandbox", json!({"template": "no-such"}))
        .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (404, Some("not_found")),
        "{v}"
    );

    let v = agent
        .ok(
            "CreateSandbox",
            json!({"template": "minimal", "memoryMb": 256, "envVars": {"GREETING": "hello"}}),
        )
        .await;
    let id = v["sandbox"]["sandboxId"].as_str().unwrap().to_string();
    assert_eq!(v["sandbox"]["status"], "SANDBOX_STATUS_RUNNING");
    let (out, code) = exec(&agent, &id, "echo $GREETING; echo oops >&2; exit 3").await;
    assert_eq!((out.as_str(), code), ("hello\n", 3));
    agent
        .ok(
            "WriteFile",
            json!({"sandboxId": id, "path": "/root/note.txt", "content": b64("kept")}),
        )
        .await;
    // A background process that counts in memory and on disk.
    exec(
        &agent,
        &id,
        "setsid sh -c 'i=0; while true; do i=$((i+1)); echo $i > /root/count.tmp; mv /root/count.tmp /root/count; sleep 0.1; done' </dev/null >/dev/null 2>&1 &",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (before, _) = exec(&agent, &id, "sleep 0.5; cat /root/count").await;
    let before: u64 = before.trim().parse().unwrap();

    // SIGKILL: no cleanup at all.
    agent.child.kill().unwrap();
    agent.child.wait().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut agent = Agent::spawn(&bin, data.path(), port);
    agent.wait_ready().await;
    let list = agent.ok("ListSandboxes", json!({})).await;
    let found = list["sandboxes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["sandboxId"] == id.as_str())
        .cloned()
        .expect("sandbox found again after SIGKILL");
    assert_eq!(found["status"], "SANDBOX_STATUS_RUNNING");
    let v = agent
        .ok(
            "ReadFile",
            json!({"sandboxId": id, "path": "/root/note.txt"}),
        )
        .await;
    assert_eq!(unb64(&v["content"]), "kept");
    let (after, _) = exec(&agent, &id, "cat /root/count").await;
    let after: u64 = after.trim().parse().unwrap();
    assert!(
        after > before,
        "the background process kept running: {before} then {after}"
    );

    agent.ok("DestroySandbox", json!({"sandboxId": id})).await;
    let list = agent.ok("ListSandboxes", json!({})).await;
    assert!(
        list["sandboxes"].as_array().is_none_or(|a| a.is_empty()),
        "{list}"
    );
    // SIGTERM: graceful stop.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = agent.child.wait().unwrap();
    assert!(
        status.success(),
        "agent exits cleanly on SIGTERM: {status:?}"
    );
    let _ = Command::new("nft")
        .args(["delete", "table", "ip", "wl30"])
        .status();
    let _ = Command::new("umount")
        .arg(data.path().join("mnt/templates/minimal"))
        .status();
}
