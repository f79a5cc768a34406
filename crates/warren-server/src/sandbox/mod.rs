//! Sandbox REST API (`/v1/sandboxes…`, `/v1/snapshots…`): the HTTP edge of [`service`].
//! Handlers parse paths, queries and bodies into the service's typed requests, call it with
//! the team of the caller's credential, and shape the answer; every rule lives in the service,
//! which the E2B-compatible layer and the console call too.
//!
//! Streams: files go through in both directions as streams (never a whole file in memory);
//! `GET /v1/sandboxes/{id}/exec/stream` answers a WebSocket when asked for one and server-sent
//! events otherwise, with the same JSON events: `{"type":"start","pid"}`,
//! `{"type":"stdout"|"stderr","data":<base64>}`, `{"type":"exit","exit_code"}` and, if the
//! stream breaks, `{"type":"error","message"}`.

pub mod service;

use std::convert::Infallible;

use axum::body::Body;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Multipart, RawQuery, Request, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warren_types::{SandboxId, SandboxStatus};

use crate::AppState;
use crate::auth::TeamAuth;
use crate::auth::principal::StreamAuth;
use crate::error::{ApiError, ErrorBody, Json, Path, path_id};
use service::{
    CreateSandbox, ExecEvent, ExecOutput, ExecRequest, ListFilter, Metrics, Sandbox, Snapshot,
};

fn sandbox_id(raw: &str) -> Result<SandboxId, ApiError> {
    path_id("sandbox", raw)
}

/// A page of sandboxes.
#[derive(Debug, Serialize, ToSchema)]
pub struct SandboxPage {
    /// Sandboxes, newest first.
    pub items: Vec<Sandbox>,
    /// Pass as `?cursor=` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Body of `POST /v1/sandboxes/{id}/resume` (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResumeRequest {
    /// New TTL in seconds from now, 0–86400 (default: keep the sandbox's).
    #[serde(default)]
    pub timeout_s: Option<u32>,
}

/// Body of `POST /v1/sandboxes/{id}/timeout`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeoutRequest {
    /// Seconds from now until the sandbox is reaped, 1–86400.
    pub timeout_s: u32,
}

/// Body of `POST /v1/snapshots`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSnapshotRequest {
    /// The sandbox to snapshot (running or paused; it is left paused).
    pub sandbox_id: String,
    /// Template name: `[a-z0-9][a-z0-9._-]{0,62}`.
    pub name: String,
}

/// A file written.
#[derive(Debug, Serialize, ToSchema)]
pub struct WrittenFile {
    /// Its path in the sandbox.
    pub path: String,
    /// Bytes written.
    pub size: u64,
}

/// Files written by a multipart upload.
#[derive(Debug, Serialize, ToSchema)]
pub struct WrittenFiles {
    /// One per part.
    pub files: Vec<WrittenFile>,
}

/// Create a sandbox from a template or snapshot, on a host the scheduler picks.
#[utoipa::path(
    post, path = "/v1/sandboxes", tag = "sandboxes",
    security(("api_key" = []), ("bearer" = [])),
    request_body = CreateSandbox,
    responses(
        (status = 201, description = "Sandbox running", body = Sandbox),
        (status = 400, description = "Validation failed or malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid credentials", body = ErrorBody),
        (status = 404, description = "Unknown template", body = ErrorBody),
        (status = 409, description = "Template not ready", body = ErrorBody),
        (status = 422, description = "Missing field or wrong type", body = ErrorBody),
        (status = 502, description = "The host failed to create it", body = ErrorBody),
        (status = 503, description = "`no_capacity`: no online host can take it", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    auth: TeamAuth,
    Json(req): Json<CreateSandbox>,
) -> Result<(StatusCode, axum::Json<Sandbox>), ApiError> {
    let s = service::create(&state, auth.team_id(), req).await?;
    Ok((StatusCode::CREATED, axum::Json(s)))
}

/// Parses `?status=a,b&metadata.KEY=VALUE&limit=&cursor=`.
fn list_filter(query: Option<&str>) -> Result<ListFilter, ApiError> {
    let mut f = ListFilter::default();
    let mut errors = Vec::new();
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "status" => {
                for s in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    match s.parse::<SandboxStatus>() {
                        Ok(s) => f.statuses.push(s),
                        Err(_) => errors.push(crate::error::FieldError::new(
                            "status",
                            "must be pending, running, paused, stopped, missing or error",
                        )),
                    }
                }
            }
            "limit" => match v.parse::<u32>() {
                Ok(n) if (1..=service::MAX_PAGE).contains(&n) => f.limit = n,
                _ => errors.push(crate::error::FieldError::new(
                    "limit",
                    "must be between 1 and 1000",
                )),
            },
            "cursor" => f.cursor = Some(v.into_owned()),
            key => {
                if let Some(meta) = key.strip_prefix("metadata.") {
                    f.metadata.insert(meta.to_owned(), v.into_owned());
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(f)
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// The team's sandboxes, newest first. Without `status`, every sandbox that is not stopped
/// or in error.
#[utoipa::path(
    get, path = "/v1/sandboxes", tag = "sandboxes",
    security(("api_key" = []), ("bearer" = [])),
    params(
        ("status" = Option<String>, Query, description = "Comma-separated statuses"),
        ("metadata.KEY" = Option<String>, Query, description = "Only sandboxes whose metadata KEY equals the value (repeatable)"),
        ("limit" = Option<u32>, Query, description = "Page size, 1–1000 (default 100)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "One page", body = SandboxPage),
        (status = 400, description = "Bad filter or cursor", body = ErrorBody),
        (status = 401, description = "Missing or invalid credentials", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    auth: TeamAuth,
    RawQuery(query): RawQuery,
) -> Result<axum::Json<SandboxPage>, ApiError> {
    let filter = list_filter(query.as_deref())?;
    let page = service::list(&state, auth.team_id(), filter).await?;
    Ok(axum::Json(SandboxPage {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}

/// One of the team's sandboxes.
#[utoipa::path(
    get, path = "/v1/sandboxes/{sandbox_id}", tag = "sandboxes",
    security(("api_key" = []), ("bearer" = [])),
    params(("sandbox_id" = uuid::Uuid, Path, description = "Sandbox id")),
    responses(
        (status = 200, description = "The sandbox", body = Sandbox),
        (status = 401, description = "Missing or invalid credentials", body = ErrorBody),
        (status = 404, description = "No such sandbox in this team", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    auth: TeamAuth,
    Path(id): Path<String>,
) -> Result<axum::Json<Sandbox>, ApiError> {
    Ok(axum::Json(
        service::get(&state, auth.team_id(), sandbox_id(&id)?).await?,
    ))
}

/// Destroy a sandbox (it becomes `stopped`; deleting it again is a no-op).
#[utoipa::path(
    delete, path = "/v1/sandboxes/{sandbox_id}", tag = "sandboxes",
    security(("api_key" = []), ("bearer" = [])),
    params(("sandbox_id" = uuid::Uuid, Path, description = "Sandbox id")),
    responses(
        (status = 204, description = "Destroyed"),
        (status = 401, description = "Missing or invalid credentials", body = ErrorBody),
        (status = 404, description = "No such sandbox in this team", body = ErrorBody),
        (status = 409, description = "Status kept changing", body = ErrorBody),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    auth: TeamAuth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    service::destroy(&state, auth.team_id(), sandbox_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Pause a running sandbox: memory and files are saved, it can be resumed later.
#[utoipa::path(
    post, path = "/v1/sandboxes/{sandbox_id}/pause", tag = "sandboxes",
    security(("api_key" = []), ("bearer" = [])),
    params(("sandbox_id" = uuid::Uuid, Path, description = "Sandbox id")),
    responses(
        (status = 200, description = "Paused", body = Sandbox),
        (status = 401, description = "Missing or invalid credentials", body = ErrorBody),
        (status = 404, description = "No such sandbox in this team", body = ErrorBody),
        (status = 409, description = "Not running", body = ErrorBody),
        (status = 502, description = "The host failed", body = ErrorBody),
    )
)]
pub async fn pause(
    State(state): State<AppState>,
    auth: TeamAuth,
    Path(id): Path<String>,
) -> Result<axum::Json<Sandbox>, ApiError> {
    Ok(axum::Json(
        service::pause(&state, auth.team_id(), sandbox_id(&id)?).await?,
    ))
}

/// Parses an optional JSON body: empty means the default.
fn optional_json<T: serde::de::DeserializeOwned + Default>(body: &Bytes) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    if !value.is_object() {
        return Err(ApiError::Unprocessable(
            "request body must be a json object".into(),
        ));
    }
    serde_json::from_value(value).map_err(|e| ApiError::Unprocessable(e.to_string()))
}

/// Resume a paused sandbox, optionally with a new TTL.
#[utoipa::path(
    post, path = "/v1/sandboxes/{sandbox_id}/resume", tag = "sandboxes",
    security(("api_key" = []), ("bearer" = [])),
    params(("sandbox_id" = uuid::Uuid, Path, description = "Sandbox id")),
    request_body(content = Option<ResumeRequest>, description = "Optional"),
    responses(
        (status = 200, description = "Running again", body = Sandbox),
        (status = 400, description = "Validation failed", body = ErrorBody),
        (status = 401, description = "Missing or invalid credentials", body = ErrorBody),
        (status = 404, description = "No such sandbox in this team", body = ErrorBody),
        (status = 409, description = "Not paused", body = ErrorBody),
        (status = 502, description = "The host failed", body = ErrorBody),
    )
)]
pub async fn resume(
    State(state): State<AppState>,
    auth: TeamAuth,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<axum::Json<Sandbox>, ApiError> {
    let id = sandbox_id(&id)?;
    let req: ResumeRequest = optional_json(&body)?;
    Ok(axum::Json(
        service::resume(&state, auth.team_id(), id, req.timeout_s).await?,
    ))
}

/// Keep a running sandbox alive: its TTL becomes `timeout_s` from now.
#[utoipa::path(
    post, path = "/v1/sandboxes/{sandbox_id}/timeout", tag = "sandboxes",
    security(("api_key" = []), ("bearer" = [])),
    params(("sandbox_id" = uuid::Uuid, Path, description = "Sandbox id")),
    request_body = TimeoutRequest,
    responses(
        (status = 200, description = "New expiry", body = Sandbox),
        (status = 400, description = "Validation failed", body = ErrorBody),
        (status = 401, description = "Missing or invalid credentials", body = ErrorBody),
        (status = 404, description = "No such sandbox in this team", body = ErrorBody),
        (status = 409, description = "Not running", body = ErrorBody),
        (status = 422, description = "Missing field or wrong type", body = ErrorBody),
    )
)]
pub async fn timeout(
    State(state): State<AppState>,
    auth: TeamAuth,
    Path(id): Path<String>,
    Json(req): Json<TimeoutRequest>,
) -> Result<axum::Json<Sandbox>, ApiError> {
    let id = sandbox_id(&id)?;
    Ok(axum::Json(
        service::set_timeout(&state, auth.team_id(), id, req.timeout_s).await?,
    ))
}

/// Run a command to completion and return its output.
#[utoipa::path(
    post, path = "/v1/sandboxes/{sandbox_id}/exec", tag = "sandboxes",
    security(("api_key" = []), ("bearer" = [])),
    params(("sandbox_id" = uuid::Uuid, Path, description = "Sandbox id")),
    request_body = ExecRequest,
    responses(
        (status = 200, description = "The command ran (see exit_code)", body = ExecOutput),
        (status = 400, description = "Validation failed", body = ErrorBody),
        (status = 401, description = "Missing or invalid credentials", body = ErrorBody),
        (status = 404, description = "No such sandbox in this team", body = ErrorBody),
        (status = 409, description = "Not running", body = ErrorBody),
        (status = 422, description = "Missing field or wrong type", body = ErrorBody),
        (status = 504, description = "The command exceeded timeout_s", body = ErrorBody),
    )
)]
pub async fn exec(
    State(state): State<AppState>,
    auth: TeamAuth,
    Path(id): Path<String>,
    Json(req): Json<ExecRequest>,
) -> Result<axum::Json<ExecOutput>, ApiError> {
    let id = sandbox_id(&id)?;
    Ok(axum::Json(
        service::exec(&state, auth.team_id(), id, req).await?,
    ))
}

/// Parses the exec stream's query: `cmd` or repeated `argv`, `cwd`, `user`, `timeout_s`,
/// repeated `env=KEY=VALUE`.
fn exec_query(query: Option<&str>) -> Result<ExecRequest, ApiError> {
    let mut req = ExecRequest::default();
    let mut argv = Vec::new();
    let mut errors = Vec::new();
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "cmd" => req.cmd = Some(v.into_owned()),
            "argv" => argv.push(v.into_owned()),
            "cwd" => req.cwd = Some(v.into_owned()),
            "user" => req.user = Some(v.into_owned()),
            "timeout_s" => match v.parse() {
                Ok(n) => req.timeout_s = Some(n),
                Err(_) => errors.push(crate::error::FieldError::new(
                    "timeout_s",
                    "must be a number of seconds",
                )),
            },
            "env" => match v.split_once('=') {
                Some((k, v)) => {
                    req.env.insert(k.to_owned(), v.to_owned());
                }
                None => errors.push(crate::error::FieldError::new("env", "must be KEY=VALUE")),
            },
            _ => {}
        }
    }
    if !argv.is_empty() {
        req.argv = Some(argv);
    }
    if errors.is_empty() {
        Ok(req)
    } else {
        Err(ApiError::Validation(errors))
    }
}

fn event_json(ev: &ExecEvent) -> serde_json::Value {
    let b64 = |b: &Bytes| base64::engine::general_purpose::STANDARD.encode(b);
    match ev {
        ExecEvent::Start(pid) => serde_json::json!({"type": "start", "pid": pid}),
        ExecEvent::Stdout(b) => serde_json::json!({"type": "stdout", "data": b64(b)}),
        ExecEvent::Stderr(b) => serde_json::json!({"type": "stderr", "data": b64(b)}),
        ExecEvent::Exit { exit_code, error } => {
            serde_json::json!({"type": "exit", "exit_code": exit_code, "error": error})
        }
        ExecEvent::Failed(message) => serde_json::json!({"type": "error", "message": message}),
    }
}

/// Stream a command's output: a WebSocket when the request asks for one (`Upgrade:
/// websocket`), server-sent events otherwise. Each message is a JSON event:
/// `{"type":"start","pid"}`, `{"type":"stdout"|"stderr","data":<base64>}`,
/// `{"type":"exit","exit_code"}`, `{"type":"error","message"}`. Accepts `?access_token=`.
#[utoipa::path(
    get, path = "/v1/sandboxes/{sandbox_id}/exec/stream", tag = "sandboxes",
    security(("api_key" = []), ("bearer" = [])),
    params(
        ("sandbox_id" = uuid::Uuid, Path, description = "Sandbox id"),
        ("cmd" = Option<String>, Query, description = "Shell line, run by /bin/sh -c"),
        ("argv" = Option<Vec<String>>, Query, description = "Program and arguments (repeat)"),
        ("cwd" = Option<String>, Query, description = "Working directory"),
        ("user" = Option<String>, Query, description = "User to run as"),
        ("timeout_s" = Option<u32>, Query, description = "Seconds before the stream is cut"),
        ("env" = Option<Vec<String>>, Query, description = "KEY=VALUE (repeat)"),
        ("access_token" = Option<String>, Query, description = "User JWT or API key, for browsers"),
    ),
    responses(
        (status = 101, description = "WebSocket: one JSON text message per event"),
        (status = 200, description = "Server-sent events: one JSON event per `data:`", content_type = "text/event-stream", body = String),
        (status = 400, description = "Validation failed", body = ErrorBody),
        (status = 401, description = "Missing or invalid credentials", body = ErrorBody),
        (status = 404, description = "No such sandbox in this team", body = ErrorBody),
        (status = 409, description = "Not running", body = ErrorBody),
    )
)]
pub async fn exec_stream(State(state): State<AppState>, req: Request) -> Response {
    match exec_stream_inner(state, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn exec_stream_inner(state: AppState, req: Request) -> Result<Response, ApiError> {
    let (mut parts, _body) = req.into_parts();
    let auth = StreamAuth::from_request_parts(&mut parts, &state).await?;
    let Path(id) = Path::<String>::from_request_parts(&mut parts, &state).await?;
    let id = sandbox_id(&id)?;
    let exec = exec_query(parts.uri.query())?;
    let wants_ws = parts
        .headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    // Upgrade problems (bad handshake) are found before the command starts.
    let ws = if wants_ws {
        Some(
            WebSocketUpgrade::from_request_parts(&mut parts, &state)
                .await
                .map_err(|e| ApiError::Unprocessable(format!("websocket handshake: {e}")))?,
        )
    } else {
        None
    };
    Ok(match ws {
        Some(ws) => {
            let (envd, pid, events, timeout_s) =
                service::exec_interactive(&state, auth.team_id(), id, exec).await?;
            ws.on_upgrade(move |socket| exec_over_websocket(socket, envd, pid, events, timeout_s))
                .into_response()
        }
        None => {
            let events = service::exec_stream(&state, auth.team_id(), id, exec).await?;
            let sse = events.map(|ev| {
                Ok::<Event, Infallible>(Event::default().data(event_json(&ev).to_string()))
            });
            Sse::new(sse)
                .keep_alive(KeepAlive::default())
                .into_response()
        }
    })
}

/// Client text frame of the exec WebSocket.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ExecClientText {
    /// Close the command's stdin.
    Eof,
}

/// One exec over a WebSocket: events out as JSON text frames; client binary frames are
/// stdin (an empty one, or the text frame `{"type":"eof"}`, closes it). The command is killed
/// when the client goes before it ends, or when its `timeout_s` passes (its exit event still
/// follows).
async fn exec_over_websocket(
    socket: WebSocket,
    envd: service::EnvdClient,
    pid: u32,
    mut events: service::ProcessEvents,
    timeout_s: u32,
) {
    use futures::SinkExt;
    use warren_proto::envd::client::{Selector, Signal};
    let (mut tx, mut rx) = socket.split();
    let start = event_json(&ExecEvent::Start(pid)).to_string();
    if tx.send(Message::Text(start.into())).await.is_err() {
        let _ = envd.signal(Selector::Pid(pid), Signal::Kill).await;
        return;
    }
    // Client → stdin, in order, on its own task (it owns the reading half).
    let input_envd = envd.clone();
    let mut input = tokio::spawn(async move {
        while let Some(Ok(msg)) = rx.next().await {
            let result = match msg {
                Message::Binary(b) if b.is_empty() => {
                    input_envd.close_stdin(Selector::Pid(pid)).await
                }
                Message::Binary(b) => input_envd.send_stdin(Selector::Pid(pid), b.to_vec()).await,
                Message::Text(t) => match serde_json::from_str::<ExecClientText>(&t) {
                    Ok(ExecClientText::Eof) => input_envd.close_stdin(Selector::Pid(pid)).await,
                    Err(_) => Ok(()),
                },
                Message::Close(_) => break,
                _ => Ok(()),
            };
            if let Err(e) = result {
                // The process may have ended with input in flight; its end event follows.
                tracing::debug!(pid, error = %e, "exec stdin failed");
            }
        }
    });
    let deadline = async {
        if timeout_s == 0 {
            std::future::pending::<()>().await
        } else {
            tokio::time::sleep(std::time::Duration::from_secs(u64::from(timeout_s))).await
        }
    };
    tokio::pin!(deadline);
    let mut timed_out = false;
    let finished = loop {
        tokio::select! {
            ev = events.next() => {
                let ev = match ev {
                    Some(Ok(ev)) => service::from_envd(ev),
                    Some(Err(e)) => ExecEvent::Failed(e.to_string()),
                    None => ExecEvent::Failed("the command's stream ended".into()),
                };
                let last = matches!(ev, ExecEvent::Exit { .. } | ExecEvent::Failed(_));
                if tx.send(Message::Text(event_json(&ev).to_string().into())).await.is_err() {
                    break false;
                }
                if last {
                    break true;
                }
            }
            _ = &mut input => {
                // The client closed its side: the command goes too.
                break false;
            }
            _ = &mut deadline, if !timed_out => {
                // Past its timeout: kill it and pass on its end event as usual.
                timed_out = true;
                if let Err(e) = envd.signal(Selector::Pid(pid), Signal::Kill).await {
                    tracing::debug!(pid, error = %e, "killing an exec past its timeout");
                }
            }
        }
    };
    if finished {
        let _ = tx.send(Message::Close(None)).await;
    } else if let Err(e) = envd.signal(Selector::Pid(pid), Signal::Kill).await {
        tracing::debug!(pid, error = %e, "killing an exec whose client left");
    }
    input.abort();
}

/// `?path=` of the file routes.
#[derive(Debug, Deserialize)]
struct PathQuery {
    path: Option<String>,
}

fn file_path(query: Option<&str>) -> Result<String, ApiError> {
    let q: PathQuery = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == "path")
        .map(|(_, v)| PathQuery {
            path: Some(v.into_owned()),
        })
        .unwrap_or(PathQuery { path: None });
    let path = q
        .path
        .ok_or_else(|| ApiError::field("path", "the path query parameter is required"))?;
    service::sandbox_path("path", &path).map_err(ApiError::from_field)?;
    Ok(path)
}

/// Write a file: the raw request body, streamed (any size), to `?path=`.
#[utoipa::path(
    put, path = "/v1/sandboxes/{sandbox_id}/files", tag = "sandboxes",
    security(("api_key" = []), ("bearer" = [])),
    params(
        ("sandbox_id" = uuid::Uuid, Path, description = "Sandbox id"),
        ("path" = String, Query, description = "Destination path in the sandbox"),
    ),
    request_body(content = String, content_type = "application/octet-stream", description = "File content"),
    responses(
        (status = 200, description = "Written", body = WrittenFile),
        (status = 400, description = "Bad path", body = ErrorBody),
        (status = 401, description = "Missing or invalid credentials", body = ErrorBody),
        (status = 404, description = "No such sandbox in this team", body = ErrorBody),
        (status = 409, description = "Not running", body = ErrorBody),
        (status = 422, description = "The sandbox refused the path, or the upload broke", body = ErrorBody),
    )
)]
pub async fn put_file(
    State(state): State<AppState>,
    auth: TeamAuth,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<axum::Json<WrittenFile>, ApiError> {
    let id = sandbox_id(&id)?;
    let path = file_path(query.as_deref())?;
    let size =
        service::write_file(&state, auth.team_id(), id, &path, body.into_data_stream()).await?;
    Ok(axum::Json(WrittenFile { path, size }))
}

/// Upload files as `multipart/form-data`: with `?path=` ending in `/`, each part is written
/// into that directory under its file name; otherwise the one part is written to `path`.
#[utoipa::path(
    post, path = "/v1/sandboxes/{sandbox_id}/files", tag = "sandboxes",
    security(("api_key" = []), ("bearer" = [])),
    params(
        ("sandbox_id" = uuid::Uuid, Path, description = "Sandbox id"),
        ("path" = String, Query, description = "Destination file, or directory ending in /"),
    ),
    request_body(content = String, content_type = "multipart/form-data", description = "File parts"),
    responses(
        (status = 200, description = "Written", body = WrittenFiles),
        (status = 400, description = "Bad path or form", body = ErrorBody),
        (status = 401, description = "Missing or invalid credentials", body = ErrorBody),
        (status = 404, description = "No such sandbox in this team", body = ErrorBody),
        (status = 409, description = "Not running", body = ErrorBody),
        (status = 422, description = "The sandbox refused the path, or the upload broke", body = ErrorBody),
    )
)]
pub async fn post_files(
    State(state): State<AppState>,
    auth: TeamAuth,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<axum::Json<WrittenFiles>, ApiError> {
    let id = sandbox_id(&id)?;
    let path = file_path(query.as_deref())?;
    let mut multipart = multipart.map_err(|e| ApiError::field("body", e.body_text()))?;
    // The sandbox must exist before a byte of the body is read.
    service::get(&state, auth.team_id(), id).await?;
    let into_dir = path.ends_with('/');
    let mut files = Vec::new();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(ApiError::field("body", e.body_text())),
        };
        let dest = if into_dir {
            let name = field.file_name().unwrap_or_default().to_owned();
            if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                return Err(ApiError::field(
                    "body",
                    "every part needs a file name without '/'",
                ));
            }
            format!("{path}{name}")
        } else {
            if !files.is_empty() {
                return Err(ApiError::field(
                    "body",
                    "several parts need a directory path ending in '/'",
                ));
            }
            path.clone()
        };
        let size = service::write_file(&state, auth.team_id(), id, &dest, Box::pin(field)).await?;
        files.push(WrittenFile { path: dest, size });
    }
    if files.is_empty() {
        return Err(ApiError::field("body", "no file part in the form"));
    }
    Ok(axum::Json(WrittenFiles { files }))
}

/// Read a file, streamed.
#[utoipa::path(
    get, path = "/v1/sandboxes/{sandbox_id}/files", tag = "sandboxes",
    security(("api_key" = []), ("bearer" = [])),
    params(
        ("sandbox_id" = uuid::Uuid, Path, description = "Sandbox id"),
        ("path" = String, Query, description = "File path in the sandbox"),
    ),
    responses(
        (status = 200, description = "The file's bytes", content_type = "application/octet-stream", body = String),
        (status = 400, description = "Bad path", body = ErrorBody),
        (status = 401, description = "Missing or invalid credentials", body = ErrorBody),
        (status = 404, description = "No such sandbox in this team, or no such file", body = ErrorBody),
        (status = 409, description = "Not running", body = ErrorBody),
    )
)]
pub async fn get_file(
    State(state): State<AppState>,
    auth: TeamAuth,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let id = sandbox_id(&id)?;
    let path = file_path(query.as_deref())?;
    let stream = service::read_file(&state, auth.team_id(), id, &path).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        Body::from_stream(stream),
    )
        .into_response())
}

/// CPU, memory and disk use of a running sandbox.
#[utoipa::path(
    get, path = "/v1/sandboxes/{sandbox_id}/metrics", tag = "sandboxes",
    security(("api_key" = []), ("bearer" = [])),
    params(("sandbox_id" = uuid::Uuid, Path, description = "Sandbox id")),
    responses(
        (status = 200, description = "Usage", body = Metrics),
        (status = 401, description = "Missing or invalid credentials", body = ErrorBody),
        (status = 404, description = "No such sandbox in this team", body = ErrorBody),
        (status = 409, description = "Not running", body = ErrorBody),
    )
)]
pub async fn metrics(
    State(state): State<AppState>,
    auth: TeamAuth,
    Path(id): Path<String>,
) -> Result<axum::Json<Metrics>, ApiError> {
    let id = sandbox_id(&id)?;
    Ok(axum::Json(
        service::metrics(&state, auth.team_id(), id).await?,
    ))
}

/// Snapshot a sandbox into a template: sandboxes created with `template: <name>` resume from
/// it (memory included). The sandbox is left paused.
#[utoipa::path(
    post, path = "/v1/snapshots", tag = "snapshots",
    security(("api_key" = []), ("bearer" = [])),
    request_body = CreateSnapshotRequest,
    responses(
        (status = 201, description = "Snapshot ready", body = Snapshot),
        (status = 400, description = "Validation failed", body = ErrorBody),
        (status = 401, description = "Missing or invalid credentials", body = ErrorBody),
        (status = 404, description = "No such sandbox in this team", body = ErrorBody),
        (status = 409, description = "Name taken, or sandbox not running or paused", body = ErrorBody),
        (status = 422, description = "Missing field or wrong type", body = ErrorBody),
        (status = 502, description = "The host failed", body = ErrorBody),
    )
)]
pub async fn create_snapshot(
    State(state): State<AppState>,
    auth: TeamAuth,
    Json(req): Json<CreateSnapshotRequest>,
) -> Result<(StatusCode, axum::Json<Snapshot>), ApiError> {
    let id: SandboxId = req
        .sandbox_id
        .parse()
        .map_err(|_| ApiError::NotFound(format!("sandbox {:?} not found", req.sandbox_id)))?;
    let s = service::snapshot(&state, auth.team_id(), id, req.name).await?;
    Ok((StatusCode::CREATED, axum::Json(s)))
}

/// The team's snapshots, newest first.
#[utoipa::path(
    get, path = "/v1/snapshots", tag = "snapshots",
    security(("api_key" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Snapshots", body = [Snapshot]),
        (status = 401, description = "Missing or invalid credentials", body = ErrorBody),
    )
)]
pub async fn list_snapshots(
    State(state): State<AppState>,
    auth: TeamAuth,
) -> Result<axum::Json<Vec<Snapshot>>, ApiError> {
    Ok(axum::Json(
        service::list_snapshots(&state, auth.team_id()).await?,
    ))
}

/// Delete a snapshot: no new sandbox can use it, and every online host deletes its copy.
#[utoipa::path(
    delete, path = "/v1/snapshots/{name}", tag = "snapshots",
    security(("api_key" = []), ("bearer" = [])),
    params(("name" = String, Path, description = "Snapshot name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Missing or invalid credentials", body = ErrorBody),
        (status = 404, description = "No such snapshot in this team", body = ErrorBody),
    )
)]
pub async fn delete_snapshot(
    State(state): State<AppState>,
    auth: TeamAuth,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    if service::template_name("name", &name).is_err() {
        let shown: String = name.chars().take(64).collect();
        return Err(ApiError::NotFound(format!("snapshot {shown:?} not found")));
    }
    service::delete_snapshot(&state, auth.team_id(), &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
