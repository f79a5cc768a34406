//! The `envd` binary: parses flags, does the PID-1 setup when it is PID 1, binds and serves.

use clap::Parser;

/// The agent inside every Warren sandbox (E2B envd protocol).
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Port to listen on (0 picks a free one; the chosen address is printed on stdout).
    #[arg(long, env = "ENVD_PORT", default_value_t = warren_proto::envd::DEFAULT_PORT)]
    port: u16,
    /// Address to listen on.
    #[arg(long, env = "ENVD_HOST", default_value = "0.0.0.0")]
    host: std::net::IpAddr,
    /// Require this token in `X-Access-Token` on every request (also settable by `/init`).
    #[arg(long, env = "ENVD_ACCESS_TOKEN", hide_env_values = true)]
    access_token: Option<String>,
    /// User for requests that name none (default: the user envd runs as).
    #[arg(long, env = "ENVD_DEFAULT_USER")]
    default_user: Option<String>,
    /// Hostname to set when running as PID 1.
    #[arg(long, env = "ENVD_HOSTNAME")]
    hostname: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ENVD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    raise_fd_limit();
    let pid1 = envd::init::is_pid1();
    if pid1 {
        envd::init::setup(args.hostname.as_deref());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        // A blocking std listener, not tokio's: see `envd::serve_std` (gVisor checkpoint).
        let listener = std::net::TcpListener::bind((args.host, args.port))?;
        let addr = listener.local_addr()?;
        println!("envd listening on {addr}");
        tracing::info!(%addr, pid1, "envd listening");
        let config = envd::Config {
            access_token: args.access_token,
            default_user: args.default_user,
            set_clock: pid1,
        };
        let shutdown = async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("installing a SIGTERM handler at startup");
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            tracing::info!("shutting down");
        };
        envd::serve_std(listener, config, shutdown).await?;
        anyhow::Ok(())
    })
}

/// Every process costs envd up to three pipe ends: lift the soft open-file limit to the hard one
/// so a thousand parallel processes do not run out of descriptors.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write a valid rlimit we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                let e = std::io::Error::last_os_error();
                tracing::warn!(error = %e, "cannot raise the open-file limit");
            }
        }
    }
}
