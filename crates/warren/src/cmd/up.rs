//! `warren up`: the all-in-one. One process runs the control plane (SQLite in the data dir) and
//! one host agent, registered through the same token flow a remote host uses, with the
//! `minimal` template built; then it prints the URL, the admin login, an API key and a first
//! `curl`, and builds `base` (the E2B SDK's default, minutes) in the background.
//!
//! It decides nothing of its own: it builds the same `Args` that `warren server` and
//! `warren agent` parse from flags and runs the same code, so what works here works when the
//! two are split across machines. Everything it makes persists in the data dir, so a second
//! `warren up` finds the same admin, host, key and sandboxes (the agent adopts them).
//!
//! Layout: `DATA/control-plane/` (database, secrets), `DATA/agent/` (templates, sandboxes),
//! `DATA/up.json` (0600: admin password and the API key printed at start).

use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{agent, server, template};

/// Flags of `warren up`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where everything lives (control-plane database and secrets, templates, sandboxes).
    #[arg(long, env = "WARREN_DATA_DIR", default_value = "/var/lib/warren")]
    data_dir: PathBuf,
    /// Address of the REST API, the proxy and the web console.
    #[arg(long, env = "WARREN_LISTEN", default_value = "127.0.0.1:8000")]
    listen: SocketAddr,
    /// Address the local agent serves its RPC on (the control plane calls it there).
    #[arg(long, env = "WARREN_AGENT_LISTEN", default_value = "127.0.0.1:50051")]
    agent_listen: SocketAddr,
    /// Build the `base` template (Debian + python3, the E2B SDK's default) before starting,
    /// instead of in the background once Warren is up.
    #[arg(long, conflicts_with = "no_base")]
    with_base: bool,
    /// Do not build the `base` template at all (sandboxes then use `minimal`).
    #[arg(long)]
    no_base: bool,
    /// The envd binary baked into templates (default: `envd` next to this binary, else PATH).
    #[arg(long, env = "WARREN_ENVD")]
    envd: Option<PathBuf>,
    /// Email of the platform admin `warren up` creates.
    #[arg(long, env = "WARREN_ADMIN_EMAIL", default_value = "admin@warren.local")]
    admin_email: String,
}

/// Parses a subcommand's flags from strings, so `warren up` runs exactly what the CLI would.
#[derive(clap::Parser)]
struct Flags<T: clap::Args> {
    #[command(flatten)]
    inner: T,
}

fn parse_flags<T: clap::Args>(flags: Vec<String>) -> anyhow::Result<T> {
    Ok(Flags::<T>::try_parse_from(flags)?.inner)
}

/// What `warren up` remembers between runs (0600 in the data dir).
#[derive(Debug, Default, Serialize, Deserialize)]
struct UpState {
    admin_email: String,
    admin_password: String,
    api_key: Option<String>,
}

/// Runs the control plane and an agent until SIGINT/SIGTERM.
pub async fn run(args: Args) -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "warren up must run as root: its agent manages network namespaces, mounts and runsc \
             (try: sudo {} up)",
            std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "warren".into())
        );
    }
    let cp_dir = args.data_dir.join("control-plane");
    let agent_dir = args.data_dir.join("agent");
    for d in [&cp_dir, &agent_dir] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let state_path = args.data_dir.join("up.json");
    let mut up = load_state(&state_path)?;
    if up.admin_password.is_empty() || up.admin_email != args.admin_email {
        up.admin_email = args.admin_email.clone();
        if up.admin_password.is_empty() {
            up.admin_password = random_token(24);
        }
        save_state(&state_path, &up)?;
    }

    // Templates first: the agent reports what it holds when it registers.
    for (kind, name, wanted) in [
        (template::Kind::Minimal, "minimal", true),
        (template::Kind::Base, "base", args.with_base),
    ] {
        if wanted
            && !agent_dir
                .join("templates")
                .join(name)
                .join("rootfs.ext4")
                .exists()
        {
            eprintln!("building template {name} (once)…");
            template::run(template::Command::Build {
                kind,
                data_dir: agent_dir.clone(),
                envd: args.envd.clone(),
            })
            .await
            .with_context(|| format!("building template {name}"))?;
        }
    }

    let base_url = format!("http://{}", connect_addr(args.listen));
    let server_args: server::Args = parse_flags(vec![
        "server".to_string(),
        format!("--listen={}", args.listen),
        format!("--data-dir={}", cp_dir.display()),
        format!("--admin-email={}", up.admin_email),
        format!("--admin-password={}", up.admin_password),
    ])
    .context("building the control plane's flags")?;
    let mut server_task = tokio::spawn(server::run(server_args));

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    wait_ready(&http, &base_url, &mut server_task).await?;
    let admin_jwt = login(&http, &base_url, &up).await?;

    // The agent registers the way a remote host does: the admin creates the host, the agent
    // trades the one-time token for its own credentials (kept in its data dir).
    let agent_address = connect_addr(args.agent_listen).to_string();
    let registered = agent_dir.join("credentials.json").exists()
        && host_known(&http, &base_url, &admin_jwt, &agent_dir).await?;
    let mut agent_flags = vec![
        "agent".to_string(),
        format!("--listen={}", args.agent_listen),
        format!("--data-dir={}", agent_dir.display()),
        format!("--address={agent_address}"),
        format!("--control-plane={base_url}"),
    ];
    if !registered {
        let token = new_host_token(&http, &base_url, &admin_jwt, &agent_address).await?;
        agent_flags.push(format!("--register={token}"));
    }
    let agent_args: agent::Args = parse_flags(agent_flags).context("building the agent's flags")?;
    // The host row may still say `online` from the last run: only a heartbeat from this
    // agent process means it serves.
    let agent_started = chrono::Utc::now() - chrono::Duration::seconds(1);
    let mut agent_task = tokio::spawn(agent::run(agent_args));
    wait_host_online(&http, &base_url, &admin_jwt, agent_started, &mut agent_task).await?;

    let api_key = match up.api_key.clone() {
        Some(k) if key_works(&http, &base_url, &k).await => k,
        _ => {
            let k = new_api_key(&http, &base_url, &admin_jwt).await?;
            up.api_key = Some(k.clone());
            save_state(&state_path, &up)?;
            k
        }
    };
    print_banner(&base_url, &up, &api_key, &state_path);

    // `base` takes minutes (debootstrap from the apt mirror): by default it is built while
    // Warren already serves `minimal`; the agent reports it in its next heartbeat.
    let base_missing = !agent_dir.join("templates/base/rootfs.ext4").exists();
    if base_missing && !args.no_base {
        let (dir, envd) = (agent_dir.clone(), args.envd.clone());
        tokio::spawn(async move {
            eprintln!("building template base in the background (minutes; `--no-base` skips it)…");
            let built = template::run(template::Command::Build {
                kind: template::Kind::Base,
                data_dir: dir,
                envd,
            })
            .await;
            match built {
                Ok(()) => eprintln!("template base is ready (the E2B SDK's default)"),
                Err(e) => tracing::warn!(
                    error = format!("{e:#}"),
                    "building template base failed; `minimal` still works; retry with \
                     `warren template build base`"
                ),
            }
        });
    }

    // Either task ending ends `warren up`; both stop on SIGINT/SIGTERM by themselves.
    tokio::select! {
        r = &mut server_task => {
            let r = r.context("control plane task")?;
            agent_task.abort();
            r.context("control plane")
        }
        r = &mut agent_task => {
            let r = r.context("agent task")?;
            server_task.abort();
            r.context("agent")
        }
    }
}

/// An address clients can dial: a wildcard listen address becomes loopback.
fn connect_addr(listen: SocketAddr) -> SocketAddr {
    let mut a = listen;
    if a.ip().is_unspecified() {
        a.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    a
}

fn random_token(len: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn load_state(path: &Path) -> anyhow::Result<UpState> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("reading {} (delete it to start over)", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(UpState::default()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn save_state(path: &Path, state: &UpState) -> anyhow::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(&serde_json::to_vec_pretty(state)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Polls `/readyz` until the control plane answers, failing early if its task ended.
async fn wait_ready(
    http: &reqwest::Client,
    base: &str,
    task: &mut tokio::task::JoinHandle<anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if task.is_finished() {
            return match task.await {
                Ok(Ok(())) => Err(anyhow::anyhow!("the control plane stopped during start-up")),
                Ok(Err(e)) => Err(e.context("the control plane failed to start")),
                Err(e) => Err(anyhow::anyhow!("the control plane task failed: {e}")),
            };
        }
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the control plane at {base} was not ready within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads a JSON body, turning our error shape into a message.
async fn json_ok(resp: reqwest::Response, what: &str) -> anyhow::Result<serde_json::Value> {
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap_or(serde_json::Value::Null);
    if !status.is_success() {
        let msg = body["error"]["message"]
            .as_str()
            .unwrap_or("no error message");
        bail!("{what}: HTTP {status}: {msg}");
    }
    Ok(body)
}

async fn login(http: &reqwest::Client, base: &str, up: &UpState) -> anyhow::Result<String> {
    let resp = http
        .post(format!("{base}/v1/auth/login"))
        .json(&json!({"email": up.admin_email, "password": up.admin_password}))
        .send()
        .await?;
    let body = json_ok(resp, "logging in as the admin").await?;
    body["token"]
        .as_str()
        .map(str::to_owned)
        .context("login answered without a token")
}

/// Whether the host in the agent's credentials still exists on this control plane (a wiped
/// database means the agent must register again).
async fn host_known(
    http: &reqwest::Client,
    base: &str,
    jwt: &str,
    agent_dir: &Path,
) -> anyhow::Result<bool> {
    let creds: serde_json::Value =
        serde_json::from_slice(&std::fs::read(agent_dir.join("credentials.json"))?)
            .context("reading the agent's credentials.json")?;
    let Some(host_id) = creds["host_id"].as_str() else {
        return Ok(false);
    };
    let resp = http
        .get(format!("{base}/v1/hosts/{host_id}"))
        .bearer_auth(jwt)
        .send()
        .await?;
    if resp.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(false);
    }
    let host = json_ok(resp, "looking up the local host").await?;
    Ok(host["status"] != "deleted")
}

async fn new_host_token(
    http: &reqwest::Client,
    base: &str,
    jwt: &str,
    address: &str,
) -> anyhow::Result<String> {
    let resp = http
        .post(format!("{base}/v1/hosts"))
        .bearer_auth(jwt)
        .json(&json!({"address": address, "labels": {"warren-up": "true"}}))
        .send()
        .await?;
    let body = json_ok(resp, "creating the local host").await?;
    body["registration_token"]
        .as_str()
        .map(str::to_owned)
        .context("host creation answered without a registration token")
}

/// Waits until some host is online with the `minimal` template and has sent a heartbeat
/// since `since`.
async fn wait_host_online(
    http: &reqwest::Client,
    base: &str,
    jwt: &str,
    since: chrono::DateTime<chrono::Utc>,
    task: &mut tokio::task::JoinHandle<anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if task.is_finished() {
            return match task.await {
                Ok(Ok(())) => Err(anyhow::anyhow!("the agent stopped during start-up")),
                Ok(Err(e)) => Err(e.context("the agent failed to start")),
                Err(e) => Err(anyhow::anyhow!("the agent task failed: {e}")),
            };
        }
        let resp = http
            .get(format!("{base}/v1/hosts"))
            .bearer_auth(jwt)
            .send()
            .await?;
        let body = json_ok(resp, "listing hosts").await?;
        let hosts = body["items"]
            .as_array()
            .or_else(|| body.as_array())
            .cloned()
            .unwrap_or_default();
        let ready = hosts.iter().any(|h| {
            h["status"] == "online"
                && h["last_heartbeat_at"]
                    .as_str()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .is_some_and(|t| t >= since)
                && h["templates"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|n| n == "minimal"))
        });
        if ready {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the local agent did not come online within 120 s (see the log above)");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn key_works(http: &reqwest::Client, base: &str, key: &str) -> bool {
    http.get(format!("{base}/v1/sandboxes?limit=1"))
        .header("x-api-key", key)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

async fn new_api_key(http: &reqwest::Client, base: &str, jwt: &str) -> anyhow::Result<String> {
    let resp = http
        .post(format!("{base}/v1/api-keys"))
        .bearer_auth(jwt)
        .json(&json!({"name": "warren up"}))
        .send()
        .await?;
    let body = json_ok(resp, "creating an API key").await?;
    body["key"]
        .as_str()
        .map(str::to_owned)
        .context("API key creation answered without a key")
}

fn print_banner(base: &str, up: &UpState, key: &str, state_path: &Path) {
    println!(
        r#"
Warren is up.

  REST API     {base}/v1          (OpenAPI: {base}/docs/)
  Web console  {base}/            log in as {email} / {password}
  API key      {key}
  E2B SDK      export E2B_API_URL={base}/e2b E2B_SANDBOX_URL={base} E2B_API_KEY={key}

  (the admin password and the key are kept in {state}, mode 0600)

Try it:

  id=$(curl -s -X POST {base}/v1/sandboxes -H 'X-API-Key: {key}' \
         -H 'Content-Type: application/json' -d '{{"template":"minimal"}}' \
       | sed -n 's/.*"id":"\([^"]*\)".*/\1/p')
  curl -s -X POST {base}/v1/sandboxes/$id/exec -H 'X-API-Key: {key}' \
       -H 'Content-Type: application/json' -d '{{"cmd":"echo hello from $(hostname)"}}'
  curl -s -X DELETE {base}/v1/sandboxes/$id -H 'X-API-Key: {key}'

Ctrl-C stops Warren; sandboxes keep running and the next `warren up` adopts them.
"#,
        email = up.admin_email,
        password = up.admin_password,
        state = state_path.display(),
    );
}
