//! `warren agent`: the host agent (root). Parses flags into the agent's typed configs, checks
//! the host (root, runsc), opens the `SandboxManager` (which adopts sandboxes a previous agent
//! left running), and serves `hostagent.v1.HostAgent` until SIGINT/SIGTERM.
//!
//! Sandboxes do not belong to the agent process: a stopped or crashed agent leaves them running
//! and the next one adopts them, so shutdown only stops serving and the reaper.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use warren_agent::net::{Ipv4Pool, NetConfig};
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
    /// Bearer token every RPC must carry (required).
    #[arg(long, env = "WARREN_AGENT_TOKEN", hide_env_values = true)]
    token: Option<String>,
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
    let token = args
        .token
        .filter(|t| !t.is_empty())
        .context("no token: pass --token or set WARREN_AGENT_TOKEN (no token, no access)")?;
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
    config.net = NetConfig {
        pool: Ipv4Pool::parse(&args.net_pool)?,
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
    let router = warren_agent::rpc::router(mgr.clone(), token);
    warren_agent::rpc::serve(listener, router, shutdown_signal()).await?;
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
