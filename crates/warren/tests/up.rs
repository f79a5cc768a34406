//! `warren up` as a new user meets it: the real binary, started on an empty data dir, prints
//! a banner whose "Try it" shell snippet is run verbatim (curl → create, exec, delete); then
//! Ctrl-C (SIGINT to the whole process group, as a terminal sends it) and a second `warren up`
//! on the same data dir: same API key, and a sandbox created before the stop still answers.
//!
//! Needs root, runsc, curl and an envd binary; skips with a printed reason otherwise.

mod fleet_common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

/// A running `warren up` in its own process group, and the banner it printed.
struct Up {
    child: Child,
    banner: String,
}

impl Up {
    fn start(data: &Path, listen: u16, agent_listen: u16, log: &Path) -> Up {
        use std::os::unix::process::CommandExt;
        let envd = fleet_common::envd_bin().expect("skip_reason checked envd");
        let mut child = Command::new(fleet_common::warren_bin())
            .arg("up")
            .arg(format!("--data-dir={}", data.display()))
            .arg(format!("--listen=127.0.0.1:{listen}"))
            .arg(format!("--agent-listen=127.0.0.1:{agent_listen}"))
            .arg(format!("--envd={}", envd.display()))
            .arg("--no-base")
            // Names and addresses of its own, apart from other tests and a real agent.
            .env("WARREN_NET_PREFIX", "wup")
            .env("WARREN_NET_POOL", "10.240.0.0/24")
            .env("WARREN_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).unwrap())
            .process_group(0)
            .spawn()
            .expect("start warren up");
        let mut banner = String::new();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        for line in lines.by_ref() {
            let line = line.expect("read warren up's stdout");
            banner.push_str(&line);
            banner.push('\n');
            if line.starts_with("Ctrl-C stops Warren") {
                break;
            }
        }
        assert!(
            banner.contains("Warren is up."),
            "warren up ended before its banner; stdout:\n{banner}\nlog:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        // Keep draining stdout so the process never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Up { child, banner }
    }

    fn field(&self, label: &str) -> String {
        self.banner
            .lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .map(|rest| rest.split_whitespace().next().unwrap_or("").to_owned())
            .unwrap_or_else(|| panic!("no '{label}' line in the banner:\n{}", self.banner))
    }

    /// The shell lines between "Try it:" and the Ctrl-C line, as printed.
    fn snippet(&self) -> String {
        let start = self.banner.find("Try it:").expect("a Try it section") + "Try it:".len();
        let end = self.banner.find("Ctrl-C stops Warren").unwrap();
        self.banner[start..end].to_owned()
    }

    /// Ctrl-C as a terminal sends it: SIGINT to the whole foreground process group.
    fn ctrl_c(mut self) {
        let pgid = nix::unistd::Pid::from_raw(-(self.child.id() as i32));
        nix::sys::signal::kill(pgid, nix::sys::signal::Signal::SIGINT).unwrap();
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "warren up exited with {status} after SIGINT"
        );
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Removes, even after a panic, whatever the test's agent made: runsc containers and mounts
/// under its data dir, its netns and its nft table.
struct Cleanup(std::path::PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        fleet_common::cleanup_agent_dir(&self.0.join("agent"));
        fleet_common::cleanup_prefix("wup");
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread")]
async fn warren_up_serves_the_banner_curl_and_comes_back_with_its_sandboxes() {
    if let Some(reason) = fleet_common::skip_reason() {
        eprintln!("SKIPPED warren up test: {reason}");
        return;
    }
    if Command::new("curl").arg("--version").output().is_err() {
        eprintln!("SKIPPED warren up test: needs curl (apt-get install curl)");
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("warren-up-test-")
        .tempdir()
        .unwrap();
    let data = dir.path().join("data");
    let _cleanup = Cleanup(data.clone());
    let log = dir.path().join("up.log");
    let (port, agent_port) = (free_port(), free_port());
    let base = format!("http://127.0.0.1:{port}");

    let up = Up::start(&data, port, agent_port, &log);
    let key = up.field("API key");
    assert!(key.starts_with("wr_"), "banner API key: {key}");
    assert!(up.banner.contains(&format!("E2B_API_URL={base}/e2b")));

    // The snippet exactly as printed, by a shell.
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("set -e\n{}", up.snippet()))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "snippet failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exec: Value = serde_json::from_str(stdout.lines().next().unwrap_or(""))
        .unwrap_or_else(|e| panic!("exec answer is not JSON ({e}): {stdout}"));
    assert_eq!(exec["exit_code"], 0, "{exec}");
    assert!(
        exec["stdout"]
            .as_str()
            .is_some_and(|s| s.starts_with("hello from ")),
        "{exec}"
    );

    // A sandbox that must outlive the Ctrl-C.
    let http = reqwest::Client::new();
    let created: Value = http
        .post(format!("{base}/v1/sandboxes"))
        .header("x-api-key", &key)
        .json(&json!({"template": "minimal", "timeout_s": 600}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().expect("sandbox id").to_owned();
    let wrote = http
        .post(format!("{base}/v1/sandboxes/{id}/exec"))
        .header("x-api-key", &key)
        .json(&json!({"cmd": "echo kept > /tmp/mark"}))
        .send()
        .await
        .unwrap();
    assert!(wrote.status().is_success());
    up.ctrl_c();

    let up = Up::start(&data, port, agent_port, &log);
    assert_eq!(up.field("API key"), key, "the second start reuses the key");
    let again: Value = http
        .post(format!("{base}/v1/sandboxes/{id}/exec"))
        .header("x-api-key", &key)
        .json(&json!({"cmd": "cat /tmp/mark"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["stdout"], "kept\n", "{again}");
    let gone = http
        .delete(format!("{base}/v1/sandboxes/{id}"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 204);
    up.ctrl_c();

    // Nothing of ours is left on the host (the nft table stays: it is the agent's config).
    let netns = std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("wup-"))
                .count()
        })
        .unwrap_or(0);
    assert_eq!(netns, 0, "netns left behind");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&data.display().to_string()),
        "mounts left under the data dir"
    );
}
