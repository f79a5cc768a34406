//! envd: the agent inside every Warren sandbox.
//!
//! It speaks the E2B envd protocol so that the public `e2b` SDK drives Warren sandboxes
//! unmodified: Connect RPC services `process.Process` ([`process`]) and
//! `filesystem.Filesystem` ([`filesystem`]), and plain HTTP `/health`, `/files`, `/init`,
//! `/envs`, `/metrics` ([`http`]). It keeps no state beyond the processes and watchers it
//! runs: a restarted envd starts empty.
//!
//! # Layout
//! - [`serve_std`] takes a bound blocking std listener and a shutdown future (tests bind port
//!   0); not a tokio listener, because gVisor's `runsc checkpoint` refuses to save a listening
//!   socket with epoll waiters.
//! - [`State`] is the shared handle: the process table, watchers, env vars, access token.
//! - [`init`] holds the PID-1 duties (mounts, hostname, zombie reaping is in [`process`]).
//! - [`user`] resolves sandbox users from `/etc/passwd` (static binary: no NSS).

#![warn(missing_docs)]
// Service impls name concrete message types where the traits say `impl Encodable`.
#![allow(refining_impl_trait)]

pub mod filesystem;
pub mod http;
pub mod init;
pub mod path;
pub mod process;
pub mod user;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use warren_proto::envd::filesystem::FilesystemExt;
use warren_proto::envd::process::ProcessExt;

/// Startup configuration of envd, built by `main` from flags.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Token every request must carry in `X-Access-Token` (also settable through `/init`).
    pub access_token: Option<String>,
    /// User for requests that name none; `None` means the user envd runs as.
    pub default_user: Option<String>,
    /// Whether `/init` may set the system clock (only sensible inside a sandbox).
    pub set_clock: bool,
}

/// Shared state of one envd: cheap to clone.
#[derive(Clone)]
pub struct State {
    inner: Arc<Inner>,
}

struct Inner {
    processes: process::ProcessTable,
    watchers: filesystem::Watchers,
    // std RwLocks: held for a copy or a swap only, never across an await.
    envs: RwLock<HashMap<String, String>>,
    access_token: RwLock<Option<String>>,
    default_user: RwLock<Option<String>>,
    default_workdir: RwLock<Option<String>>,
    set_clock: bool,
}

impl State {
    /// Builds the state and starts the child reaper (needs a tokio runtime).
    pub fn new(config: Config) -> Self {
        State {
            inner: Arc::new(Inner {
                processes: process::ProcessTable::new(),
                watchers: filesystem::Watchers::default(),
                envs: RwLock::new(HashMap::new()),
                access_token: RwLock::new(config.access_token),
                default_user: RwLock::new(config.default_user),
                default_workdir: RwLock::new(None),
                set_clock: config.set_clock,
            }),
        }
    }

    /// Resolves the user a request runs as: the one it names, else the default user.
    pub fn resolve_user(&self, requested: Option<&str>) -> Result<user::User, user::UserError> {
        if let Some(name) = requested.filter(|n| !n.is_empty()) {
            return user::lookup(name);
        }
        let default = self
            .inner
            .default_user
            .read()
            .expect("lock poisoned")
            .clone();
        match default {
            Some(name) => user::lookup(&name),
            None => {
                let uid = nix::unistd::getuid().as_raw();
                Ok(user::lookup_uid(uid).unwrap_or_else(|| user::User {
                    name: uid.to_string(),
                    uid,
                    gid: nix::unistd::getgid().as_raw(),
                    home: std::path::PathBuf::from("/"),
                    shell: "/bin/sh".into(),
                }))
            }
        }
    }

    /// Env vars set through `/init`, applied to every process.
    pub fn envs(&self) -> HashMap<String, String> {
        self.inner.envs.read().expect("lock poisoned").clone()
    }

    fn token(&self) -> Option<String> {
        self.inner
            .access_token
            .read()
            .expect("lock poisoned")
            .clone()
    }

    pub(crate) fn default_workdir(&self) -> Option<String> {
        self.inner
            .default_workdir
            .read()
            .expect("lock poisoned")
            .clone()
    }

    pub(crate) fn processes(&self) -> &process::ProcessTable {
        &self.inner.processes
    }

    pub(crate) fn watchers(&self) -> &filesystem::Watchers {
        &self.inner.watchers
    }
}

/// The whole envd HTTP surface: Connect services plus the plain HTTP routes.
pub fn app(state: State) -> axum::Router {
    let connect = warren_proto::connectrpc::Router::new();
    let connect = Arc::new(process::ProcessService::new(state.clone())).register(connect);
    let connect = Arc::new(filesystem::FilesystemService::new(state.clone())).register(connect);
    http::routes(state.clone())
        .fallback_service(connect.into_axum_service())
        .layer(axum::middleware::from_fn_with_state(
            state,
            http::require_token,
        ))
        .layer(axum::extract::DefaultBodyLimit::disable())
}

/// Serves envd on a blocking std `listener` until `shutdown` resolves, then stops running
/// processes.
///
/// Why not `axum::serve` on a tokio listener: tokio registers its listening socket with epoll, and gVisor (runsc
/// 2022-12-19) refuses to checkpoint a TCP endpoint that has epoll waiters ("endpoint still has
/// waiters upon save"), so a paused sandbox could never be saved. Here a dedicated std thread
/// blocks in `accept(2)` (no epoll on the listener) and hands every accepted stream to tokio,
/// which serves it with hyper's auto (HTTP/1.1 + h2c) connection builder. Accepted streams do
/// go through epoll; the host agent resets host-side connections before it checkpoints.
pub async fn serve_std(
    listener: std::net::TcpListener,
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;

    listener.set_nonblocking(false)?;
    let state = State::new(config);
    process::start_reaper(state.clone());
    let service = hyper_util::service::TowerToHyperService::new(app(state.clone()));
    let graceful = std::sync::Arc::new(std::sync::Mutex::new(Some(
        hyper_util::server::graceful::GracefulShutdown::new(),
    )));
    let handle = tokio::runtime::Handle::current();
    let listener_fd = listener.as_raw_fd();
    let accept_graceful = graceful.clone();
    let accept_thread = std::thread::Builder::new()
        .name("envd-accept".into())
        .spawn(move || accept_loop(listener, handle, service, accept_graceful))?;

    shutdown.await;
    // Wake the blocked accept(2): shutdown(2) on a listening socket makes it fail with EINVAL.
    // SAFETY: the fd stays open until the accept thread (which owns the listener) returns.
    unsafe { libc::shutdown(listener_fd, libc::SHUT_RDWR) };
    let _ = tokio::task::spawn_blocking(move || accept_thread.join()).await;
    // Processes first: a `Start` stream stays open until its process exits, so waiting for
    // connections before stopping processes would wait forever.
    state.processes().terminate_all();
    let watcher = graceful.lock().expect("lock poisoned").take();
    if let Some(graceful) = watcher
        && tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
            .await
            .is_err()
    {
        tracing::warn!("connections still open after the shutdown grace period; exiting");
    }
    Ok(())
}

/// How long shutdown waits for open connections to finish their requests.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

type HyperService = hyper_util::service::TowerToHyperService<axum::Router>;
type SharedGraceful =
    std::sync::Arc<std::sync::Mutex<Option<hyper_util::server::graceful::GracefulShutdown>>>;

/// Blocks in `accept(2)` until the listener is shut down, spawning one tokio task per stream.
fn accept_loop(
    listener: std::net::TcpListener,
    handle: tokio::runtime::Handle,
    service: HyperService,
    graceful: SharedGraceful,
) {
    loop {
        let stream = match listener.accept() {
            Ok((stream, _peer)) => stream,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if is_transient_accept_error(&e) => {
                tracing::warn!(error = %e, "accept failed; retrying");
                std::thread::sleep(std::time::Duration::from_millis(50));
                continue;
            }
            Err(e) => {
                tracing::debug!(error = %e, "accept loop stops");
                return;
            }
        };
        let watcher = match graceful.lock().expect("lock poisoned").as_ref() {
            Some(g) => g.watcher(),
            None => return,
        };
        if let Err(e) = stream.set_nonblocking(true) {
            tracing::warn!(error = %e, "cannot make an accepted stream non-blocking");
            continue;
        }
        // Without TCP_NODELAY a Start stream's second write (the end event) waits for the
        // client's delayed ACK: ~40 ms per process (tests/envd.rs, the keep-alive case).
        if let Err(e) = stream.set_nodelay(true) {
            tracing::warn!(error = %e, "cannot set TCP_NODELAY on an accepted stream");
        }
        let service = service.clone();
        handle.spawn(async move {
            let stream = match tokio::net::TcpStream::from_std(stream) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot register an accepted stream");
                    return;
                }
            };
            let mut builder =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            // h2c clients: hyper's fixed 64 KiB stream window caps a stdout stream at one
            // window per round trip; the adaptive (BDP) window grows it with the link.
            builder.http2().adaptive_window(true);
            let conn = builder
                .serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
}

/// Accept errors that concern one connection or a passing resource shortage, not the listener.
fn is_transient_accept_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionAborted | ConnectionReset | WouldBlock)
        || matches!(
            e.raw_os_error(),
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM | libc::EPROTO)
        )
}
