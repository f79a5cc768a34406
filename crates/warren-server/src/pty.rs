//! `GET /v1/sandboxes/{id}/pty?cols=&rows=&access_token=`: an interactive terminal in a
//! sandbox over one WebSocket, for the web console (and anyone with a WebSocket client).
//!
//! Frames: client binary = keystrokes; client text = JSON `{"type":"resize","cols","rows"}`;
//! server binary = terminal output; last server text = `{"type":"exit","exit_code":N}` (or
//! `{"type":"error","message"}`). Closing the socket kills the shell.
//!
//! How: envd does the terminal (a PTY process); we reach it with the typed
//! [`EnvdClient`] pointed at the agent's proxy (`{agent}/proxy/{id}/49983`, the agent's
//! bearer, the sandbox's envd token), the same path the `e2b` SDK's traffic takes. Keystrokes
//! are `SendInput` calls, in order (one task owns the socket's reading side).

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use warren_proto::envd::client::{Command, EnvdClient, ProcessEvent, Selector, Signal};
use warren_types::SandboxId;

use crate::AppState;
use crate::auth::principal::StreamAuth;
use crate::error::ApiError;
use crate::proxy::{ENVD_PORT, FORWARDED_AUTHORIZATION};
use crate::sandbox::service;

/// Query of the PTY route.
#[derive(Debug, Deserialize)]
pub struct PtyQuery {
    /// Terminal columns (default 80).
    pub cols: Option<u32>,
    /// Terminal rows (default 24).
    pub rows: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientText {
    Resize { cols: u32, rows: u32 },
}

/// The shell: bash if the template has it, else sh; a login shell in the user's home.
const SHELL: &str = "if [ -x /bin/bash ]; then exec /bin/bash -l; else exec /bin/sh -l; fi";

/// An envd client for the sandbox through its agent's proxy.
pub async fn envd_for(
    state: &AppState,
    team: warren_types::TeamId,
    id: SandboxId,
) -> Result<EnvdClient, ApiError> {
    let route = service::route(state, team, id).await?;
    let mut headers = http::HeaderMap::new();
    let bad = |e: http::header::InvalidHeaderValue| ApiError::Internal(e.to_string());
    headers.insert(
        http::header::AUTHORIZATION,
        format!("Bearer {}", route.bearer).parse().map_err(bad)?,
    );
    if let Some(t) = &route.envd_access_token {
        headers.insert("x-access-token", t.parse().map_err(bad)?);
    }
    let base = format!(
        "{}/proxy/{id}/{ENVD_PORT}",
        route.agent_base_url.trim_end_matches('/')
    );
    EnvdClient::via_proxy(
        &base,
        headers,
        http::HeaderName::from_static(FORWARDED_AUTHORIZATION),
    )
    .map_err(|e| ApiError::Internal(e.to_string()))
}

/// The route handler.
pub async fn pty(
    State(state): State<AppState>,
    auth: StreamAuth,
    Path(id): Path<String>,
    Query(q): Query<PtyQuery>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let id: SandboxId = crate::error::path_id("sandbox", &id)?;
    let cols = q.cols.unwrap_or(80).clamp(1, 1000);
    let rows = q.rows.unwrap_or(24).clamp(1, 1000);
    let envd = envd_for(&state, auth.team_id(), id).await?;
    let mut cmd = Command::new("/bin/sh", ["-c", SHELL]);
    cmd.pty = Some((cols, rows));
    cmd.envs.insert("TERM".into(), "xterm-256color".into());
    cmd.stdin = true;
    let events = envd
        .start(cmd)
        .await
        .map_err(|e| ApiError::Upstream(format!("sandbox {id}: starting a terminal: {e}")))?;
    Ok(ws.on_upgrade(move |socket| session(socket, envd, events)))
}

async fn session(
    socket: WebSocket,
    envd: EnvdClient,
    mut events: warren_proto::envd::client::ProcessEvents,
) {
    let (mut tx, mut rx) = socket.split();
    // The first event names the process.
    let pid = match events.next().await {
        Some(Ok(ProcessEvent::Start { pid })) => pid,
        other => {
            let message = format!("terminal did not start: {other:?}");
            let _ = tx
                .send(Message::Text(
                    serde_json::json!({"type": "error", "message": message})
                        .to_string()
                        .into(),
                ))
                .await;
            return;
        }
    };
    let input_envd = envd.clone();
    // Client → terminal, in order, on its own task.
    let mut input = tokio::spawn(async move {
        while let Some(Ok(msg)) = rx.next().await {
            let result = match msg {
                Message::Binary(b) => input_envd.send_stdin(Selector::Pid(pid), b.to_vec()).await,
                Message::Text(t) => match serde_json::from_str::<ClientText>(&t) {
                    Ok(ClientText::Resize { cols, rows }) => {
                        input_envd
                            .resize(Selector::Pid(pid), cols.clamp(1, 1000), rows.clamp(1, 1000))
                            .await
                    }
                    Err(_) => Ok(()),
                },
                Message::Close(_) => break,
                _ => Ok(()),
            };
            if let Err(e) = result {
                tracing::debug!(pid, error = %e, "pty input failed");
                break;
            }
        }
    });
    // Terminal → client until the process ends or the client goes.
    let end = loop {
        tokio::select! {
            ev = events.next() => match ev {
                Some(Ok(ProcessEvent::Pty(b) | ProcessEvent::Stdout(b) | ProcessEvent::Stderr(b))) => {
                    if tx.send(Message::Binary(b)).await.is_err() {
                        break None;
                    }
                }
                Some(Ok(ProcessEvent::End { exit_code, .. })) => {
                    break Some(serde_json::json!({"type": "exit", "exit_code": exit_code}));
                }
                Some(Ok(ProcessEvent::Start { .. })) => {}
                Some(Err(e)) => break Some(serde_json::json!({"type": "error", "message": e.to_string()})),
                None => break Some(serde_json::json!({"type": "error", "message": "terminal stream ended"})),
            },
            _ = &mut input => break None,
        }
    };
    match end {
        Some(msg) => {
            let _ = tx.send(Message::Text(msg.to_string().into())).await;
            let _ = tx.send(Message::Close(None)).await;
            input.abort();
        }
        None => {
            // The client left: the shell goes too.
            input.abort();
            if let Err(e) = envd.signal(Selector::Pid(pid), Signal::Kill).await {
                tracing::debug!(pid, error = %e, "killing the terminal after the client left");
            }
        }
    }
}
