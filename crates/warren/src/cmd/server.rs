//! `warren server`: runs the control plane. Parses flags and environment into a
//! `warren_server::Config`, binds the listener, and serves until SIGINT or SIGTERM, then drains
//! open requests.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use warren_server::{AppState, Config, DatabaseConfig, Secret};

/// How long open requests may run after a shutdown signal.
const DRAIN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// Flags of `warren server`.
#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, env = "WARREN_LISTEN", default_value = "0.0.0.0:8000")]
    listen: SocketAddr,

    /// Directory for the SQLite database and the generated JWT secret.
    #[arg(long, env = "WARREN_DATA_DIR", default_value = "/var/lib/warren")]
    data_dir: PathBuf,

    /// `postgres://…` selects PostgreSQL; otherwise SQLite `warren.db` in the data dir.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,

    /// HS256 secret for user JWTs (at least 32 bytes); generated into the data dir if unset.
    #[arg(long, env = "WARREN_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,

    /// Email of the platform admin created (or updated) at start; needs --admin-password.
    #[arg(long, env = "WARREN_ADMIN_EMAIL", requires = "admin_password")]
    admin_email: Option<String>,

    /// Password of the platform admin.
    #[arg(
        long,
        env = "WARREN_ADMIN_PASSWORD",
        hide_env_values = true,
        requires = "admin_email"
    )]
    admin_password: Option<String>,

    /// Lifetime of host JWTs, in milliseconds (default 7 days).
    #[arg(long, env = "WARREN_HOST_TOKEN_TTL_MS")]
    host_token_ttl_ms: Option<u64>,

    /// A host silent this long becomes unreachable, in milliseconds (default 90 s).
    #[arg(long, env = "WARREN_HEARTBEAT_TIMEOUT_MS")]
    heartbeat_timeout_ms: Option<u64>,

    /// How often the host monitor compares hosts with the database, in milliseconds
    /// (default 30 s).
    #[arg(long, env = "WARREN_MONITOR_INTERVAL_MS")]
    monitor_interval_ms: Option<u64>,

    /// The monitor leaves alone sandboxes changed this recently, in milliseconds (default 60 s).
    #[arg(long, env = "WARREN_RECONCILE_GRACE_MS")]
    reconcile_grace_ms: Option<u64>,

    /// Wildcard domain whose `PORT-SANDBOXID.<domain>` names reach this control plane (the
    /// sandbox proxy's host form; E2B SDKs get it as the sandbox domain).
    #[arg(long, env = "WARREN_PROXY_DOMAIN")]
    proxy_domain: Option<String>,
}

impl std::fmt::Debug for Args {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redact = |s: &Option<String>| s.as_ref().map(|_| "[redacted]");
        f.debug_struct("Args")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("database_url", &redact(&self.database_url))
            .field("jwt_secret", &redact(&self.jwt_secret))
            .field("admin_email", &self.admin_email)
            .field("admin_password", &redact(&self.admin_password))
            .field("host_token_ttl_ms", &self.host_token_ttl_ms)
            .field("heartbeat_timeout_ms", &self.heartbeat_timeout_ms)
            .field("monitor_interval_ms", &self.monitor_interval_ms)
            .field("reconcile_grace_ms", &self.reconcile_grace_ms)
            .field("proxy_domain", &self.proxy_domain)
            .finish()
    }
}

/// Runs the control plane until a shutdown signal.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let database = DatabaseConfig::from_url(args.database_url.as_deref(), &args.data_dir);
    let mut config = Config::new(args.data_dir.clone(), database);
    config.jwt_secret = args.jwt_secret.map(Secret::new);
    if let (Some(email), Some(pw)) = (args.admin_email, args.admin_password) {
        config.admin = Some((email, Secret::new(pw)));
    }
    let ms =
        |v: Option<u64>, default: Duration| v.map_or(default, |m| Duration::from_millis(m.max(1)));
    config.host_token_ttl = ms(args.host_token_ttl_ms, config.host_token_ttl);
    config.heartbeat_timeout = ms(args.heartbeat_timeout_ms, config.heartbeat_timeout);
    config.monitor_interval = ms(args.monitor_interval_ms, config.monitor_interval);
    config.reconcile_grace = ms(args.reconcile_grace_ms, config.reconcile_grace);
    config.proxy_domain = args.proxy_domain.filter(|d| !d.is_empty());
    tracing::info!(?config, "starting control plane");

    let state = AppState::new(config)
        .await
        .context("starting the control plane")?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    tracing::info!(address = %listener.local_addr()?, "listening");
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let mut monitor_stop = stop_rx.clone();
    let background = warren_server::spawn_background(state.clone(), async move {
        let _ = monitor_stop.wait_for(|stop| *stop).await;
    });
    let stop = async move {
        // An error means the sender is gone, which also means stop.
        let _ = stop_rx.wait_for(|stop| *stop).await;
    };
    let server = warren_server::serve(listener, state, stop);
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => result.context("serving http")?,
        () = shutdown_signal() => {
            let _ = stop_tx.send(true);
            match tokio::time::timeout(DRAIN_DEADLINE, &mut server).await {
                Ok(result) => result.context("serving http")?,
                Err(_) => tracing::warn!(
                    deadline_secs = DRAIN_DEADLINE.as_secs(),
                    "open requests still running at the drain deadline; exiting"
                ),
            }
        }
    }
    let _ = stop_tx.send(true);
    let _ = background.await;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "listening for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "listening for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT: shutting down"),
        () = term => tracing::info!("SIGTERM: shutting down"),
    }
}
