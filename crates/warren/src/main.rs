//! `warren`: the one binary of Warren (like k3s): `warren server` runs the control plane,
//! `warren agent` a host agent, `warren up` both on one machine, `warren template` builds
//! templates on a host.
//!
//! This crate only parses flags and environment into typed configs, sets up logging and wires
//! the library crates together; it decides nothing itself. Each subcommand lives in its own
//! module under `cmd/` with an `Args` struct and an async `run`.

mod cmd;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "warren",
    version,
    about = "Self-hosted sandboxes for untrusted code"
)]
struct Cli {
    /// Log format: human-readable text or one JSON object per line.
    #[arg(long, global = true, env = "WARREN_LOG_FORMAT", default_value = "text")]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// All in one on this machine (root): control plane + a registered agent + the `minimal`
    /// template; prints the URL, an API key and a first curl.
    Up(cmd::up::Args),
    /// Run the control plane (REST API, auth, scheduling).
    Server(cmd::server::Args),
    /// Run a host agent (root): the sandboxes of this host.
    Agent(cmd::agent::Args),
    /// Build and manage templates on this host.
    #[command(subcommand)]
    Template(cmd::template::Command),
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WARREN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> anyhow::Result<()> {
    // A missing .env is the normal case; a malformed one is reported.
    if let Err(e) = dotenvy::dotenv()
        && !e.not_found()
    {
        return Err(anyhow::anyhow!("reading .env: {e}"));
    }
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Up(args) => cmd::up::run(args).await,
            Command::Server(args) => cmd::server::run(args).await,
            Command::Agent(args) => cmd::agent::run(args).await,
            Command::Template(command) => cmd::template::run(command).await,
        }
    })
}
