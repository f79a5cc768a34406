//! The fleet test harness: one real control plane (`warren server`) and N real host agents
//! (`warren agent --register …`), each a separate process with its own data dir, port,
//! address pool and netns/nft prefix, on SQLite or on a fresh PostgreSQL database. Shared by
//! every `crates/warren/tests/fleet_*.rs`.
//!
//! - [`Fleet::start`] builds the `minimal` template once per run (cached under cargo's target
//!   tmp dir, keyed by the envd binary), hard-links it into each agent's data dir, starts the
//!   server (admin from env), creates one host per agent through the admin API, starts each
//!   agent with its registration token, and waits until every host is `online`.
//! - Helpers: [`Fleet::admin_token`], [`Fleet::signup`] (→ user JWT + API key),
//!   [`Fleet::kill_agent`] (SIGKILL by PID), [`Fleet::restart_agent`], [`wait_until`].
//! - `Drop` cleans everything, even after a panic: processes (by PID), runsc containers,
//!   netns, nft tables, mounts, dirs, the Postgres database, and the address-pool slots.
//!
//! Tests skip with a printed reason without root, runsc or an envd binary ([`skip_reason`]).
//! Env: `WARREN_ENVD_BIN` (else `target/x86_64-unknown-linux-gnu/debug/envd`, then
//! `target/debug/envd`); `WARREN_TEST_DATABASE_URL` for the PostgreSQL variants;
//! `WARREN_FLEET_LOG=1` prints the processes' logs when a fleet is dropped.
#![allow(dead_code)]

use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const ADMIN_EMAIL: &str = "admin@fleet.test";
pub const ADMIN_PASSWORD: &str = "fleet-admin-password";

/// Which store the control plane uses.
#[derive(Debug, Clone)]
pub enum Db {
    /// A SQLite file in the control plane's data dir.
    Sqlite,
    /// A fresh database created from this admin URL (`WARREN_TEST_DATABASE_URL`), dropped at
    /// the end.
    Postgres(String),
}

impl Db {
    /// Postgres from `WARREN_TEST_DATABASE_URL`, or `None` (printing why) when unset.
    pub fn postgres_from_env() -> Option<Db> {
        match std::env::var("WARREN_TEST_DATABASE_URL") {
            Ok(u) if !u.is_empty() => Some(Db::Postgres(u)),
            _ => {
                eprintln!("SKIPPED postgres variant: WARREN_TEST_DATABASE_URL is not set");
                None
            }
        }
    }
}

/// What to start.
#[derive(Debug, Clone)]
pub struct FleetOpts {
    /// Number of agents.
    pub agents: usize,
    /// Store.
    pub db: Db,
    /// Agent heartbeat interval.
    pub heartbeat: Duration,
    /// Server: a host silent this long is unreachable.
    pub heartbeat_timeout: Duration,
    /// Server: host monitor interval.
    pub monitor_interval: Duration,
    /// Server: rows changed more recently than this are left alone by the monitor.
    pub reconcile_grace: Duration,
    /// Extra environment of the server.
    pub server_env: Vec<(String, String)>,
    /// Extra flags of every agent.
    pub agent_args: Vec<String>,
}

impl Default for FleetOpts {
    fn default() -> Self {
        Self {
            agents: 3,
            db: Db::Sqlite,
            heartbeat: Duration::from_millis(500),
            heartbeat_timeout: Duration::from_secs(4),
            monitor_interval: Duration::from_millis(700),
            reconcile_grace: Duration::from_secs(2),
            server_env: Vec::new(),
            agent_args: Vec::new(),
        }
    }
}

/// The workspace's `target/` dir.
pub fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target")
}

/// The `warren` binary under test.
pub fn warren_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_warren"))
}

/// The envd binary baked into the template.
pub fn envd_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("WARREN_ENVD_BIN") {
        return Some(PathBuf::from(p));
    }
    [
        target_dir().join("x86_64-unknown-linux-gnu/debug/envd"),
        target_dir().join("debug/envd"),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

/// Why fleet tests cannot run here, if they cannot.
pub fn skip_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root (agents manage netns, mounts, runsc)".into());
    }
    if warren_agent::runtime::gvisor::find_runsc(None).is_err() {
        return Some("needs runsc (apt-get install runsc)".into());
    }
    if envd_bin().is_none() {
        return Some(
            "needs an envd binary: cargo build -p envd (static: see scripts/test) or set \
             WARREN_ENVD_BIN"
                .into(),
        );
    }
    None
}

static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();

/// `templates/minimal` built from the current envd binary, cached under cargo's target tmp
/// dir (`warren_agent::template::cached_minimal`): built once, reused by later test
/// processes until envd changes.
pub fn minimal_template() -> &'static Path {
    TEMPLATE.get_or_init(|| {
        let envd = envd_bin().expect("skip_reason checked envd");
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fleet-template");
        warren_agent::template::cached_minimal(&root, &envd).expect("build the minimal template")
    })
}

/// Installs the minimal template into an agent data dir (hard links: read-only use).
pub fn install_template(data: &Path) {
    let dst = data.join("templates/minimal");
    std::fs::create_dir_all(&dst).unwrap();
    for entry in std::fs::read_dir(minimal_template()).unwrap() {
        let entry = entry.unwrap();
        let to = dst.join(entry.file_name());
        if std::fs::hard_link(entry.path(), &to).is_err() {
            std::fs::copy(entry.path(), &to).unwrap();
        }
    }
}

/// A claimed `10.220.<n>.0/24` pool and `wf<n>` prefix, unique across concurrent test
/// processes: a file `/tmp/warren-fleet-slots/<n>` created exclusively, holding our PID; a slot
/// whose PID is dead is reclaimed.
struct Slot {
    n: u32,
    path: PathBuf,
}

impl Slot {
    fn claim() -> Slot {
        let dir = Path::new("/tmp/warren-fleet-slots");
        std::fs::create_dir_all(dir).unwrap();
        let me = std::process::id();
        for n in 0..250u32 {
            let path = dir.join(n.to_string());
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    let _ = write!(f, "{me}");
                    return Slot { n, path };
                }
                Err(_) => {
                    let owner: Option<i32> = std::fs::read_to_string(&path)
                        .ok()
                        .and_then(|s| s.trim().parse().ok());
                    let alive = owner.is_some_and(|p| {
                        nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None).is_ok()
                    });
                    if !alive && owner.is_some() {
                        // Stale (its process died without cleaning up): take it over.
                        cleanup_prefix(&format!("wf{n}"));
                        let _ = std::fs::remove_file(&path);
                    }
                }
            }
        }
        panic!("no free fleet address slot in /tmp/warren-fleet-slots");
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// One agent process and its world.
pub struct AgentProc {
    /// Host id (from its credentials, after registration).
    pub host_id: String,
    /// Data dir.
    pub data: PathBuf,
    /// Listen port.
    pub port: u16,
    /// netns / nft prefix.
    pub prefix: String,
    /// Address pool.
    pub pool: String,
    child: Option<Child>,
    _slot: Slot,
}

impl AgentProc {
    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The agent's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

/// A running fleet.
pub struct Fleet {
    /// `http://127.0.0.1:<port>` of the control plane.
    pub base: String,
    /// HTTP client with a timeout.
    pub http: reqwest::Client,
    /// The agents.
    pub agents: Vec<AgentProc>,
    /// The options it was started with.
    pub opts: FleetOpts,
    /// Root of every dir of this fleet.
    pub dir: tempfile::TempDir,
    server: Option<Child>,
    postgres: Option<(String, String)>,
    admin: OnceLock<String>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let prefix = match base[scheme_end..].rfind('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{prefix}/{db}?{q}"),
        None => format!("{prefix}/{db}"),
    }
}

async fn pg_exec(admin_url: &str, sql: &str) {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(admin_url)
        .await
        .expect("connect to WARREN_TEST_DATABASE_URL");
    sqlx::query(sql).execute(&mut c).await.expect(sql);
    c.close().await.ok();
}

/// Polls `check` every 100 ms until it yields `Some`, or panics after `timeout` naming `what`.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Fleet {
    /// Starts a fleet; `None` (with a printed reason) when the machine cannot run one.
    pub async fn start(opts: FleetOpts) -> Option<Fleet> {
        if let Some(reason) = skip_reason() {
            eprintln!("SKIPPED fleet test: {reason}");
            return None;
        }
        let template = tokio::task::spawn_blocking(|| minimal_template().to_path_buf());
        template.await.expect("template build task");
        let dir = tempfile::Builder::new()
            .prefix("warren-fleet-")
            .tempdir()
            .expect("fleet dir");
        let mut fleet = Fleet {
            base: String::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            agents: Vec::new(),
            opts: opts.clone(),
            dir,
            server: None,
            postgres: None,
            admin: OnceLock::new(),
        };
        fleet.start_server().await;
        let admin = fleet.admin_token().await;
        for i in 0..opts.agents {
            let (s, body) = fleet
                .call(
                    "POST",
                    "/v1/hosts",
                    Some(&admin),
                    None,
                    Some(json!({"labels": {"fleet": i.to_string()}})),
                )
                .await;
            assert_eq!(s, 201, "create host: {body}");
            let token = body["registration_token"].as_str().unwrap().to_owned();
            let host_id = body["host"]["id"].as_str().unwrap().to_owned();
            let slot = Slot::claim();
            let data = fleet.dir.path().join(format!("agent{i}"));
            std::fs::create_dir_all(&data).unwrap();
            install_template(&data);
            let mut agent = AgentProc {
                host_id,
                data,
                port: free_port(),
                prefix: format!("wf{}", slot.n),
                pool: format!("10.220.{}.0/24", slot.n),
                child: None,
                _slot: slot,
            };
            agent.child = Some(fleet.spawn_agent(&agent, Some(&token)));
            fleet.agents.push(agent);
        }
        for i in 0..opts.agents {
            fleet
                .wait_host_status(i, "online", Duration::from_secs(60))
                .await;
        }
        Some(fleet)
    }

    async fn start_server(&mut self) {
        let cp = self.dir.path().join("cp");
        std::fs::create_dir_all(&cp).unwrap();
        let log = std::fs::File::create(self.dir.path().join("server.log")).unwrap();
        let mut cmd = Command::new(warren_bin());
        cmd.args([
            "--log-format",
            "json",
            "server",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(&cp)
        .env_remove("DATABASE_URL")
        .env("WARREN_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("WARREN_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env(
            "WARREN_HEARTBEAT_TIMEOUT_MS",
            ms(self.opts.heartbeat_timeout),
        )
        .env("WARREN_MONITOR_INTERVAL_MS", ms(self.opts.monitor_interval))
        .env("WARREN_RECONCILE_GRACE_MS", ms(self.opts.reconcile_grace))
        .env("WARREN_LOG", "info,warren_server=debug")
        .stdout(Stdio::null())
        .stderr(log);
        if let Db::Postgres(admin_url) = &self.opts.db {
            let name = format!("warren_fleet_{}", uuid::Uuid::new_v4().simple());
            pg_exec(admin_url, &format!("CREATE DATABASE \"{name}\"")).await;
            cmd.env("DATABASE_URL", with_database(admin_url, &name));
            self.postgres = Some((admin_url.clone(), name));
        }
        for (k, v) in &self.opts.server_env {
            cmd.env(k, v);
        }
        self.server = Some(cmd.spawn().expect("spawn warren server"));
        let log_path = self.dir.path().join("server.log");
        let addr = wait_until(
            "the server's listening line",
            Duration::from_secs(30),
            || {
                let text = std::fs::read_to_string(&log_path).unwrap_or_default();
                let addr = text.lines().find_map(|l| {
                    let v: Value = serde_json::from_str(l).ok()?;
                    (v["fields"]["message"] == "listening")
                        .then(|| v["fields"]["address"].as_str().map(str::to_owned))
                        .flatten()
                });
                if addr.is_none() {
                    let exited = self
                        .server
                        .as_mut()
                        .and_then(|c| c.try_wait().ok().flatten());
                    assert!(exited.is_none(), "warren server exited: {exited:?}\n{text}");
                }
                std::future::ready(addr)
            },
        )
        .await;
        self.base = format!("http://{addr}");
    }

    fn spawn_agent(&self, a: &AgentProc, register: Option<&str>) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(a.data.join("agent.log"))
            .unwrap();
        let mut cmd = Command::new(warren_bin());
        cmd.args([
            "agent",
            "--listen",
            &format!("127.0.0.1:{}", a.port),
            "--data-dir",
        ])
        .arg(&a.data)
        .args(["--net-pool", &a.pool, "--net-prefix", &a.prefix])
        .args(["--address", &format!("127.0.0.1:{}", a.port)])
        .args(["--control-plane", &self.base])
        .args(["--heartbeat-interval-ms", &ms(self.opts.heartbeat)])
        .args(&self.opts.agent_args)
        .env_remove("WARREN_AGENT_TOKEN")
        .env_remove("WARREN_DATA_DIR")
        .env("WARREN_LOG", "info,warren_agent=debug")
        .stdout(Stdio::null())
        .stderr(log);
        if let Some(t) = register {
            cmd.args(["--register", t]);
        }
        cmd.spawn().expect("spawn warren agent")
    }

    /// Absolute URL of an API path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// One request: `bearer` (user JWT) or `api_key`, JSON body; returns status and JSON
    /// (`Null` when empty or not JSON).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        api_key: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(m, self.url(path));
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        if let Some(k) = api_key {
            req = req.header("x-api-key", k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap_or_default();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// A JWT of the platform admin (logged in once).
    pub async fn admin_token(&self) -> String {
        if let Some(t) = self.admin.get() {
            return t.clone();
        }
        let (s, body) = self
            .call(
                "POST",
                "/v1/auth/login",
                None,
                None,
                Some(json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})),
            )
            .await;
        assert_eq!(s, 200, "admin login: {body}");
        let t = body["token"].as_str().unwrap().to_owned();
        let _ = self.admin.set(t.clone());
        t
    }

    /// Signs up a fresh user; returns (user JWT, API key of its team).
    pub async fn signup(&self) -> (String, String) {
        let email = format!("u{}@fleet.test", uuid::Uuid::new_v4().simple());
        let (s, body) = self
            .call(
                "POST",
                "/v1/auth/signup",
                None,
                None,
                Some(json!({"email": email, "password": "password123"})),
            )
            .await;
        assert_eq!(s, 201, "signup: {body}");
        let jwt = body["token"].as_str().unwrap().to_owned();
        let (s, body) = self
            .call(
                "POST",
                "/v1/api-keys",
                Some(&jwt),
                None,
                Some(json!({"name": "k"})),
            )
            .await;
        assert_eq!(s, 201, "api key: {body}");
        (jwt, body["key"].as_str().unwrap().to_owned())
    }

    /// `GET /v1/hosts/{id}` of agent `i` (admin).
    pub async fn host(&self, i: usize) -> Value {
        let admin = self.admin_token().await;
        let (s, body) = self
            .call(
                "GET",
                &format!("/v1/hosts/{}", self.agents[i].host_id),
                Some(&admin),
                None,
                None,
            )
            .await;
        assert_eq!(s, 200, "get host: {body}");
        body
    }

    /// Waits until agent `i`'s host has `status`.
    pub async fn wait_host_status(&self, i: usize, status: &str, timeout: Duration) {
        let what = format!("host {i} ({}) {status}", self.agents[i].host_id);
        wait_until(&what, timeout, || async {
            let admin = self.admin_token().await;
            let (_, h) = self
                .call(
                    "GET",
                    &format!("/v1/hosts/{}", self.agents[i].host_id),
                    Some(&admin),
                    None,
                    None,
                )
                .await;
            (h["status"] == status).then_some(())
        })
        .await;
    }

    /// SIGKILLs agent `i` (its sandboxes keep running: they do not belong to the process).
    pub fn kill_agent(&mut self, i: usize) {
        if let Some(mut c) = self.agents[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERMs agent `i` and waits for it to exit.
    pub fn stop_agent(&mut self, i: usize) {
        if let Some(mut c) = self.agents[i].child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = c.wait();
        }
    }

    /// Starts agent `i` again from its stored credentials (no registration token).
    pub fn restart_agent(&mut self, i: usize) {
        self.kill_agent(i);
        let child = self.spawn_agent(&self.agents[i], None);
        self.agents[i].child = Some(child);
    }

    /// Starts agent `i` again with a fresh registration token (re-registration).
    pub async fn reregister_agent(&mut self, i: usize) {
        self.kill_agent(i);
        let admin = self.admin_token().await;
        let (s, body) = self
            .call(
                "POST",
                &format!("/v1/hosts/{}/token", self.agents[i].host_id),
                Some(&admin),
                None,
                None,
            )
            .await;
        assert_eq!(s, 201, "new token: {body}");
        let token = body["registration_token"].as_str().unwrap().to_owned();
        let child = self.spawn_agent(&self.agents[i], Some(&token));
        self.agents[i].child = Some(child);
    }

    /// The control plane's agent-signing key (PKCS#8 DER), for tests that forge tokens.
    pub fn agent_signing_key(&self) -> Vec<u8> {
        std::fs::read(self.dir.path().join("cp/agent_signing_key")).unwrap()
    }

    /// The logs of the server and agents (for failure messages).
    pub fn logs(&self) -> String {
        let mut out = String::new();
        let mut add = |name: &str, p: PathBuf| {
            let text = std::fs::read_to_string(p).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(60).collect();
            out.push_str(&format!("==== {name} (last 60 lines)\n"));
            for l in tail.into_iter().rev() {
                out.push_str(l);
                out.push('\n');
            }
        };
        add("server", self.dir.path().join("server.log"));
        for (i, a) in self.agents.iter().enumerate() {
            add(&format!("agent{i}"), a.data.join("agent.log"));
        }
        out
    }
}

fn ms(d: Duration) -> String {
    d.as_millis().to_string()
}

/// Removes the kernel objects of an agent prefix: netns `<prefix>-*`, nft table `ip <prefix>`.
pub fn cleanup_prefix(prefix: &str) {
    if let Ok(out) = Command::new("ip").args(["netns", "list"]).output() {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let name = line.split_whitespace().next().unwrap_or("");
            if name.starts_with(&format!("{prefix}-")) {
                let _ = Command::new("ip").args(["netns", "delete", name]).status();
            }
        }
    }
    let _ = Command::new("nft")
        .args(["delete", "table", "ip", prefix])
        .stderr(Stdio::null())
        .status();
}

/// Kills every runsc container under `data/runsc`, then unmounts everything under `data`.
pub fn cleanup_agent_dir(data: &Path) {
    let root = format!("--root={}", data.join("runsc").display());
    if let Ok(out) = Command::new("runsc")
        .args([&root, "list", "-quiet"])
        .output()
    {
        for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = Command::new("runsc")
                .args([&root, "delete", "-force", id])
                .stderr(Stdio::null())
                .status();
        }
    }
    let prefix = data.to_string_lossy().into_owned();
    let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(unescape_mount))
        .filter(|m| m.starts_with(&prefix))
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in mounts {
        let _ = Command::new("umount").args(["-l", &m]).status();
    }
}

fn unescape_mount(s: &str) -> String {
    // mountinfo escapes space, tab, newline and backslash as \ooo.
    let mut out = String::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8)
        {
            out.push(v as char);
            i += 4;
            continue;
        }
        out.push(b[i] as char);
        i += 1;
    }
    out
}

impl Drop for Fleet {
    fn drop(&mut self) {
        if std::env::var_os("WARREN_FLEET_LOG").is_some() || std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        for a in &mut self.agents {
            if let Some(mut c) = a.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        if let Some(mut c) = self.server.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for a in &self.agents {
            cleanup_agent_dir(&a.data);
            cleanup_prefix(&a.prefix);
        }
        if let Some((admin_url, name)) = self.postgres.take() {
            let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(pg_exec(&admin_url, &sql));
            })
            .join();
        }
    }
}
