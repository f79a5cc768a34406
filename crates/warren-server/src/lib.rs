//! `warren-server`: the Warren control plane as a library: REST API, authentication, teams,
//! API keys, and the store (SQLite or PostgreSQL). The `warren server` subcommand builds a
//! [`Config`], then calls [`AppState::new`] and [`serve`]; tests do the same on `127.0.0.1:0`.
//!
//! # Layout
//! - [`config`]: the typed configuration (secrets redacted).
//! - [`state`]: `AppState`, the one handle handlers share (config, store, keys, host pool).
//! - [`store`]: repository functions over `sqlx::Any`, embedded migrations per dialect.
//! - [`error`]: `ApiError`, the only way anything becomes an error response, plus the `Json`
//!   and `Path` extractors that keep rejections in our error shape.
//! - [`auth`]: signup, login, switch-team, me; passwords (argon2id), JWTs, and the
//!   `UserAuth`/`TeamAuth` extractors.
//! - [`team`], [`api_key`]: teams and members, team API keys.
//! - [`health`], [`openapi`]: probes, and the OpenAPI 3.1 document + Swagger UI.
//! - [`console`]: the web console (`web/`, built to `web/dist`, embedded), at `/` and
//!   `/console/...`.
//!
//! - [`host`]: host registration (one-time token → host JWT + rotated refresh token),
//!   heartbeats, and the admin host routes.
//! - [`fleet`]: the agent-token signer, `HostClientPool`, the `Scheduler`, the host monitor.
//! - [`sandbox`]: the sandbox and snapshot REST API over a service layer (`sandbox::service`)
//!   that the E2B routes and the console share.
//! - [`proxy`]: traffic to ports inside sandboxes (`E2b-Sandbox-*` headers or the
//!   `PORT-ID.<domain>` host form) through the sandbox's agent; [`pty`]: the console terminal.
//! - [`e2b`]: the E2B-compatible REST surface under `/e2b`.
//!
//! **Architecture invariant**: every team-scoped query takes its team id from the principal
//! (`UserAuth`/`TeamAuth`), never from the request; another team's object is a 404.
#![deny(missing_docs)]

pub mod api_key;
pub mod auth;
pub mod config;
pub mod console;
pub mod e2b;
pub mod error;
pub mod fleet;
pub mod health;
pub mod host;
pub mod input;
pub mod openapi;
pub mod proxy;
pub mod pty;
pub mod sandbox;
pub mod state;
pub mod store;
pub mod team;

use std::future::Future;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

pub use config::{Config, DatabaseConfig, PasswordParams, Secret};
pub use fleet::monitor::spawn_background;
pub use state::{AppState, StartError};

/// The full router, with state applied.
pub fn app(state: AppState) -> Router {
    let body_limit = state.config().body_limit_bytes;
    let e2b_api = e2b::router(state.clone());
    let proxy_state = state.clone();
    let api = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/openapi.yaml", get(openapi::yaml))
        .route("/v1/auth/signup", post(auth::signup))
        .route("/v1/auth/login", post(auth::login))
        .route("/v1/auth/switch-team", post(auth::switch_team))
        .route("/v1/me", get(auth::me))
        .route("/v1/teams", get(team::list).post(team::create))
        .route("/v1/teams/{team_id}", get(team::get))
        .route(
            "/v1/teams/{team_id}/members",
            get(team::members).post(team::add_member),
        )
        .route(
            "/v1/teams/{team_id}/members/{user_id}",
            delete(team::remove_member),
        )
        .route("/v1/api-keys", get(api_key::list).post(api_key::create))
        .route("/v1/api-keys/{key_id}", delete(api_key::delete))
        .route("/v1/sandboxes", get(sandbox::list).post(sandbox::create))
        .route(
            "/v1/sandboxes/{sandbox_id}",
            get(sandbox::get).delete(sandbox::delete),
        )
        .route("/v1/sandboxes/{sandbox_id}/pause", post(sandbox::pause))
        .route("/v1/sandboxes/{sandbox_id}/resume", post(sandbox::resume))
        .route("/v1/sandboxes/{sandbox_id}/timeout", post(sandbox::timeout))
        .route("/v1/sandboxes/{sandbox_id}/exec", post(sandbox::exec))
        .route(
            "/v1/sandboxes/{sandbox_id}/exec/stream",
            get(sandbox::exec_stream),
        )
        .route(
            "/v1/sandboxes/{sandbox_id}/files",
            get(sandbox::get_file)
                .put(sandbox::put_file)
                .post(sandbox::post_files)
                // Files stream through in both directions: no whole-body limit.
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/sandboxes/{sandbox_id}/metrics", get(sandbox::metrics))
        .route(
            "/v1/snapshots",
            get(sandbox::list_snapshots).post(sandbox::create_snapshot),
        )
        .route("/v1/snapshots/{name}", delete(sandbox::delete_snapshot))
        .route("/v1/hosts", get(host::list).post(host::create))
        .route("/v1/hosts/register", post(host::register))
        .route("/v1/hosts/auth/refresh", post(host::refresh))
        .route("/v1/hosts/heartbeat", post(host::heartbeat))
        .route("/v1/hosts/{host_id}", get(host::get).delete(host::delete))
        .route("/v1/hosts/{host_id}/token", post(host::new_token))
        .route("/v1/hosts/{host_id}/revoke", post(host::revoke))
        .route("/v1/sandboxes/{sandbox_id}/pty", get(pty::pty))
        .with_state(state);
    Router::new()
        .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi::ApiDoc::openapi()))
        .merge(api)
        .merge(console::routes())
        .nest("/e2b", e2b_api)
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        // Sandbox traffic (E2b-Sandbox-* headers, PORT-ID.domain hosts) before any routing.
        .layer(axum::middleware::from_fn_with_state(
            proxy_state,
            proxy::layer,
        ))
        .layer(TraceLayer::new_for_http())
}

/// Serves [`app`] on `listener` until `shutdown` resolves, then drains open requests.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let store = state.store().clone();
    // Streams (SSE, proxied Connect streams) are written in small frames: without
    // TCP_NODELAY each one after the first waits for the peer's delayed ACK (~40 ms).
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let result = axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await;
    store.close().await;
    result
}
