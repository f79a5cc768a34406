//! `warren server`: runs the control plane. Parses flags and environment into a
//! `warren_server::Config`, binds the listener, and serves until SIGINT or SIGTERM, then drains
//! open requests.

use std::net::SocketAddr;
use std::path::PathBuf;

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
}

impl std::fmt::Debug for Args {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redact = |s: &Option<String>| s.as_ref().map(|_| "[redacted]");
        f.debug_struct("Args")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("database_url", &redact(&self.database_url))
            .field("jwt_secret", &redact(&self.jwt_secret))
            .finish()
    }
}

/// Runs the control plane until a shutdown signal.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let database = DatabaseConfig::from_url(args.database_url.as_deref(), &args.data_dir);
    let mut config = Config::new(args.data_dir.clone(), database);
    config.jwt_secret = args.jwt_secret.map(Secret::new);
    tracing::info!(?config, "starting control plane");

    let state = AppState::new(config)
        .await
        .context("starting the control plane")?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    tracing::info!(address = %listener.local_addr()?, "listening");
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
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
