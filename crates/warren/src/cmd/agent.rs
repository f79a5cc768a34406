//! `warren agent`: the host agent (root). Parses flags into the agent's typed configs, checks
//! the host (root, runsc), opens the `SandboxManager` (which adopts sandboxes a previous agent
//! left running), registers with the control plane when given `--register` (or reads the
//! credentials of an earlier registration), heartbeats, and serves `hostagent.v1.HostAgent`
//! until SIGINT/SIGTERM. Without credentials it runs standalone behind a static `--token`.
//!
//! Sandboxes do not belong to the agent process: a stopped or crashed agent leaves them running
//! and the next one adopts them, so shutdown only stops serving and the reaper.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use warren_agent::controlplane::{self, Credentials, HeartbeatConfig, HostSpecs};
use warren_agent::net::{Ipv4Pool, NetConfig};
use warren_agent::rpc::{AgentAuth, ControlPlaneVerifier};
use warren_agent::runtime::Runtime;
use warren_agent::runtime::gvisor::{GvisorConfig, GvisorRuntime, find_runsc};
use warren_agent::sandbox::{ManagerConfig, SandboxManager, TtlAction};

/// Which runtime runs the sandboxes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RuntimeChoice {
    /// Firecracker where it can run, else gVisor (today: gVisor).
    Auto,
    /// gVisor (`runsc`).
    Gvisor,
    /// Firecracker microVMs (not built yet).
    Firecracker,
}

/// What the TTL reaper does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TtlChoice {
    /// Destroy expired sandboxes.
    Destroy,
    /// Pause them (resumable).
    Pause,
}

/// Flags of `warren agent`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to serve the host agent RPC on.
    #[arg(long, env = "WARREN_AGENT_LISTEN", default_value = "0.0.0.0:50051")]
    listen: SocketAddr,
    /// Data dir: templates, sandboxes, runsc state, network allocations.
    #[arg(long, env = "WARREN_DATA_DIR", default_value = "/var/lib/warren")]
    data_dir: PathBuf,
    /// Sandbox runtime.
    #[arg(long, env = "WARREN_RUNTIME", value_enum, default_value = "auto")]
    runtime: RuntimeChoice,
    /// Standalone (dev) mode: a static bearer token every RPC must carry. Not needed (and
    /// not used) once the agent is registered with a control plane.
    #[arg(long, env = "WARREN_AGENT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Register with the control plane using this one-time token (from `POST /v1/hosts`);
    /// the credentials are kept in `$DATA/credentials.json` and later starts need no token.
    #[arg(long, env = "WARREN_REGISTER_TOKEN", hide_env_values = true)]
    register: Option<String>,
    /// `host:port` the control plane reaches this agent at (needed to register).
    #[arg(long, env = "WARREN_AGENT_ADDRESS")]
    address: Option<String>,
    /// Base URL of the control plane, e.g. `http://10.0.0.1:8000` (needed to register).
    #[arg(long, env = "WARREN_CONTROL_PLANE")]
    control_plane: Option<String>,
    /// How often to heartbeat, in milliseconds.
    #[arg(long, env = "WARREN_HEARTBEAT_INTERVAL_MS", default_value_t = 30_000)]
    heartbeat_interval_ms: u64,
    /// Most sandboxes this host takes (0: from memory and the address pool).
    #[arg(long, env = "WARREN_SANDBOX_CAPACITY", default_value_t = 0)]
    sandbox_capacity: u32,
    /// The runsc binary (default: from PATH).
    #[arg(long, env = "WARREN_RUNSC")]
    runsc: Option<PathBuf>,
    /// gVisor platform: ptrace or kvm.
    #[arg(long, env = "WARREN_GVISOR_PLATFORM", default_value = "ptrace")]
    gvisor_platform: String,
    /// Address pool sandbox networks come from.
    #[arg(long, env = "WARREN_NET_POOL", default_value = warren_agent::net::DEFAULT_POOL)]
    net_pool: String,
    /// Prefix of netns names and of the nft table (several agents on one host need distinct ones).
    #[arg(long, env = "WARREN_NET_PREFIX", default_value = warren_agent::net::DEFAULT_PREFIX)]
    net_prefix: String,
    /// What the TTL reaper does with expired sandboxes.
    #[arg(long, env = "WARREN_TTL_ACTION", value_enum, default_value = "destroy")]
    ttl_action: TtlChoice,
    /// How often the TTL reaper looks, in milliseconds.
    #[arg(long, env = "WARREN_REAPER_INTERVAL_MS", default_value_t = 2000)]
    reaper_interval_ms: u64,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        anyhow::bail!("warren agent must run as root (it manages namespaces, mounts and runsc)");
    }
    let token = args.token.clone().filter(|t| !t.is_empty());
    if args.register.is_none() && token.is_none() && Credentials::load(&args.data_dir)?.is_none() {
        anyhow::bail!(
            "no credentials: register with --register TOKEN --address HOST:PORT \
             --control-plane URL, or pass --token for standalone mode (no token, no access)"
        );
    }
    let runtime: Arc<dyn Runtime> = match args.runtime {
        RuntimeChoice::Firecracker => {
            anyhow::bail!("the firecracker runtime is not built yet; use --runtime gvisor")
        }
        RuntimeChoice::Auto | RuntimeChoice::Gvisor => {
            let runsc = find_runsc(args.runsc.as_deref())
                .context("runsc (gVisor) is required: apt-get install runsc")?;
            let mut config = GvisorConfig::new(&args.data_dir);
            config.runsc = runsc;
            config.platform = args.gvisor_platform.clone();
            Arc::new(GvisorRuntime::new(config)?)
        }
    };
    let mut config = ManagerConfig::new(&args.data_dir);
    let pool = Ipv4Pool::parse(&args.net_pool)?;
    let capacity = match args.sandbox_capacity {
        0 => {
            let (memory, _) = controlplane::memory_mb();
            let by_memory = u32::try_from(memory / 128).unwrap_or(u32::MAX);
            pool.slots().min(by_memory).max(1)
        }
        n => n,
    };
    config.net = NetConfig {
        pool,
        prefix: args.net_prefix.clone(),
    };
    config.ttl_action = match args.ttl_action {
        TtlChoice::Destroy => TtlAction::Destroy,
        TtlChoice::Pause => TtlAction::Pause,
    };
    config.reaper_interval = Duration::from_millis(args.reaper_interval_ms.max(10));
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating data dir {}", args.data_dir.display()))?;
    let kind = runtime.kind();
    let mgr = SandboxManager::start(config, runtime)
        .await
        .context("starting the sandbox manager")?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    tracing::info!(
        listen = %listener.local_addr()?,
        data_dir = %args.data_dir.display(),
        runtime = %kind,
        sandboxes = mgr.list().len(),
        "warren agent serving hostagent.v1.HostAgent"
    );
    let credentials = match &args.register {
        Some(reg) => {
            let cp = args
                .control_plane
                .as_deref()
                .context("--register needs --control-plane URL")?;
            let address = args.address.as_deref().context(
                "--register needs --address HOST:PORT (where the control plane reaches this agent)",
            )?;
            // Port 0 stands for the port the listener got (tests listen on port 0).
            let address = match address.strip_suffix(":0") {
                Some(host) => format!("{host}:{}", listener.local_addr()?.port()),
                None => address.to_owned(),
            };
            let specs = HostSpecs::measure(&args.data_dir, &address, &kind.to_string(), capacity);
            let creds = controlplane::register(cp, reg, &specs)
                .await
                .context("registering with the control plane")?;
            creds.save(&args.data_dir)?;
            tracing::info!(host_id = %creds.host_id, control_plane = %cp, "registered");
            Some(creds)
        }
        None => Credentials::load(&args.data_dir)?.map(|mut c| {
            if let Some(cp) = &args.control_plane {
                c.control_plane_url = cp.trim_end_matches('/').to_owned();
            }
            c
        }),
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (auth, heartbeat) = match credentials {
        Some(creds) => {
            if token.is_some() {
                tracing::warn!("registered with a control plane: --token is ignored");
            }
            let verifier = ControlPlaneVerifier::new(&creds.host_id, &creds.control_plane_key)
                .context("the control plane key in credentials.json")?;
            let hb = controlplane::spawn_heartbeat(
                mgr.clone(),
                creds,
                HeartbeatConfig {
                    data_dir: args.data_dir.clone(),
                    interval: Duration::from_millis(args.heartbeat_interval_ms.max(50)),
                    sandbox_capacity: capacity,
                },
                stop_rx,
            );
            (AgentAuth::ControlPlane(Arc::new(verifier)), Some(hb))
        }
        None => {
            let token = token.context("no token: pass --token or set WARREN_AGENT_TOKEN")?;
            (AgentAuth::Static(Arc::new(token)), None)
        }
    };
    let router = warren_agent::rpc::router_with_auth(mgr.clone(), auth);
    warren_agent::rpc::serve(listener, router, shutdown_signal()).await?;
    let _ = stop_tx.send(true);
    if let Some(hb) = heartbeat {
        let _ = hb.await;
    }
    mgr.shutdown().await;
    tracing::info!("warren agent stopped; sandboxes keep running and are adopted at next start");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down: no new requests, draining");
}
