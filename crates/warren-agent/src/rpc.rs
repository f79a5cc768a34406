//! The agent's Connect service `hostagent.v1.HostAgent` (see
//! `crates/warren-proto/proto/hostagent/v1/hostagent.proto`).
//!
//! This is the edge (house style rule 3): it parses wire messages into typed calls on the
//! [`SandboxManager`], turns results back into messages, and owns the one mapping from typed
//! errors to Connect codes ([`to_connect`]): bad input is `invalid_argument`/`not_found`/
//! `failed_precondition`, never `internal`. Exec and files go to the sandbox's envd through the
//! shared envd client; each call makes its own client so no pooled connection outlives the
//! call (an open TCP connection inside would block a later checkpoint).
//!
//! Auth ([`AgentAuth`], one layer in front of every route of the router, the RPCs and the
//! proxy alike): every request needs `Authorization: Bearer <token>`. A registered agent
//! accepts only EdDSA JWTs signed by the control plane's key (learned at registration), with
//! `iss` `warren`, `aud` its own host id, not expired ([`ControlPlaneVerifier`]). Standalone
//! (dev) mode accepts one static token, compared in constant time; an empty token accepts
//! nothing.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use connectrpc::{
    ConnectError, ErrorCode, RequestContext, Response, ServiceRequest, ServiceResult, ServiceStream,
};
use futures::StreamExt;
use warren_proto::envd::client::{ClientError, Command, EnvdClient, ProcessEvent};
use warren_proto::hostagent::v1 as pb;
use warren_proto::hostagent::v1::__buffa::oneof::{
    exec_data, exec_stream_response, write_file_stream_request,
};
use warren_proto::hostagent::v1::HostAgentExt;

use crate::sandbox::{CreateSandbox, SandboxError, SandboxInfo, SandboxManager, SandboxStatus};

/// Size of the chunks of streamed file reads.
pub const CHUNK: usize = 64 * 1024;
/// Default timeout of a unary exec.
pub const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(30);

/// The service implementation.
#[derive(Debug, Clone)]
pub struct HostAgentService {
    mgr: SandboxManager,
}

/// Builds the HTTP router serving the service, behind a static bearer token (standalone mode).
pub fn router(mgr: SandboxManager, token: String) -> axum::Router {
    router_with_auth(mgr, AgentAuth::Static(Arc::new(token)))
}

/// Builds the HTTP router (RPCs and proxy), every route behind `auth`.
pub fn router_with_auth(mgr: SandboxManager, auth: AgentAuth) -> axum::Router {
    let proxy = crate::proxy::router(mgr.clone());
    let svc = Arc::new(HostAgentService { mgr });
    let connect = svc.register(connectrpc::Router::new());
    let routes = axum::Router::new()
        .merge(proxy)
        .fallback_service(connect.into_axum_service());
    with_auth(routes, auth)
}

/// Puts every route of `routes` (those added so far) behind `auth`.
pub fn with_auth(routes: axum::Router, auth: AgentAuth) -> axum::Router {
    routes.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let auth = auth.clone();
            async move {
                if auth.allows(&req) {
                    next.run(req).await
                } else {
                    unauthenticated()
                }
            }
        },
    ))
}

/// Who may call this agent.
#[derive(Clone)]
pub enum AgentAuth {
    /// Standalone / dev mode: one static bearer token (`--token`).
    Static(Arc<String>),
    /// Registered with a control plane: its EdDSA JWTs for this host only.
    ControlPlane(Arc<ControlPlaneVerifier>),
}

impl std::fmt::Debug for AgentAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AgentAuth::Static(_) => f.write_str("AgentAuth::Static([redacted])"),
            AgentAuth::ControlPlane(v) => write!(f, "AgentAuth::ControlPlane({})", v.host_id),
        }
    }
}

impl AgentAuth {
    /// Whether the request carries an acceptable bearer.
    pub fn allows(&self, req: &axum::extract::Request) -> bool {
        let Some(given) = bearer(req) else {
            return false;
        };
        match self {
            AgentAuth::Static(token) => {
                !token.is_empty() && constant_time_eq(given.as_bytes(), token.as_bytes())
            }
            AgentAuth::ControlPlane(v) => v.verify(given),
        }
    }
}

/// Why the control plane's key is unusable.
#[derive(Debug, thiserror::Error)]
pub enum AuthKeyError {
    /// Not base64 of 32 bytes.
    #[error("control plane key is not base64 of a 32-byte ed25519 public key")]
    BadKey,
}

/// Verifies the control plane's tokens: EdDSA with its key, `iss` `warren`, `aud` this host.
pub struct ControlPlaneVerifier {
    host_id: String,
    key: jsonwebtoken::DecodingKey,
    validation: jsonwebtoken::Validation,
}

#[derive(serde::Deserialize)]
struct AgentClaims {
    #[allow(dead_code)]
    aud: String,
}

impl ControlPlaneVerifier {
    /// A verifier for `host_id` with the control plane's public key (base64 of 32 bytes).
    pub fn new(host_id: &str, control_plane_key_b64: &str) -> Result<Self, AuthKeyError> {
        use base64::Engine;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(control_plane_key_b64.trim())
            .map_err(|_| AuthKeyError::BadKey)?;
        if raw.len() != 32 {
            return Err(AuthKeyError::BadKey);
        }
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
        validation.set_audience(&[host_id]);
        validation.set_issuer(&["warren"]);
        validation.set_required_spec_claims(&["exp", "aud", "iss"]);
        validation.leeway = 5;
        Ok(Self {
            host_id: host_id.to_owned(),
            key: jsonwebtoken::DecodingKey::from_ed_der(&raw),
            validation,
        })
    }

    /// Whether `token` is a live token of the control plane for this host.
    pub fn verify(&self, token: &str) -> bool {
        jsonwebtoken::decode::<AgentClaims>(token, &self.key, &self.validation).is_ok()
    }
}

/// Serves `router` on `listener` (HTTP/1.1 and h2c) until `shutdown` completes, then drains
/// in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    // Streams (exec output, proxied Connect streams) are written in small frames: without
    // TCP_NODELAY each one after the first waits for the peer's delayed ACK (~40 ms).
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

fn bearer(req: &axum::extract::Request) -> Option<&str> {
    req.headers()
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn unauthenticated() -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        http::StatusCode::UNAUTHORIZED,
        [(http::header::CONTENT_TYPE, "application/json")],
        r#"{"code":"unauthenticated","message":"missing or wrong bearer token"}"#,
    )
        .into_response()
}

/// The one mapping from typed errors to Connect codes.
pub fn to_connect(e: &SandboxError) -> ConnectError {
    use SandboxError as E;
    let code = match e {
        E::InvalidArgument(_) => ErrorCode::InvalidArgument,
        E::NotFound(_) | E::TemplateNotFound(_) => ErrorCode::NotFound,
        E::AlreadyExists(_) | E::TemplateExists(_) => ErrorCode::AlreadyExists,
        E::WrongState { .. } => ErrorCode::FailedPrecondition,
        E::NoCapacity(_) => ErrorCode::ResourceExhausted,
        E::EnvdNotReady { .. } => ErrorCode::Unavailable,
        E::Envd {
            not_found: true, ..
        } => ErrorCode::NotFound,
        E::Envd {
            caller_fault: true, ..
        } => ErrorCode::InvalidArgument,
        E::Envd { .. } => ErrorCode::Unavailable,
        E::Runtime(crate::runtime::RuntimeError::NoCheckpoint { .. }) => {
            ErrorCode::FailedPrecondition
        }
        E::Runtime(_) | E::Storage { .. } | E::Net { .. } | E::Persist(_) | E::TaskFailed(_) => {
            tracing::error!(error = %e, "sandbox operation failed");
            ErrorCode::Internal
        }
    };
    ConnectError::new(code, e.to_string())
}

fn envd_error(sandbox_id: &str, e: ClientError) -> SandboxError {
    let (caller_fault, not_found) = match &e {
        ClientError::Rpc { source, .. } => (
            matches!(
                source.code,
                ErrorCode::InvalidArgument
                    | ErrorCode::PermissionDenied
                    | ErrorCode::FailedPrecondition
                    | ErrorCode::AlreadyExists
                    | ErrorCode::OutOfRange
            ),
            source.code == ErrorCode::NotFound,
        ),
        ClientError::Http { status, .. } => (
            (400..500).contains(status) && *status != 404,
            *status == 404,
        ),
        _ => (false, false),
    };
    SandboxError::Envd {
        sandbox_id: sandbox_id.to_string(),
        message: e.to_string(),
        caller_fault,
        not_found,
    }
}

fn info(i: SandboxInfo) -> pb::SandboxInfo {
    let r = i.record;
    let (status, detail) = match i.status {
        SandboxStatus::Running => (pb::SandboxStatus::SANDBOX_STATUS_RUNNING, String::new()),
        SandboxStatus::Paused => (pb::SandboxStatus::SANDBOX_STATUS_PAUSED, String::new()),
        SandboxStatus::Transition(s) => (
            pb::SandboxStatus::SANDBOX_STATUS_TRANSITION,
            serde_json::to_value(s)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
        ),
    };
    pb::SandboxInfo {
        sandbox_id: r.sandbox_id,
        status: status.into(),
        template: r.template,
        vcpus: r.vcpus,
        memory_mb: r.memory_mib,
        sandbox_ip: r.sandbox_ip.unwrap_or_default(),
        created_at_unix: r.created_at_unix,
        last_active_at_unix: r.last_active_at_unix,
        timeout_sec: r.timeout_sec,
        expires_at_unix: r.expires_at_unix,
        metadata: r.metadata.into_iter().collect(),
        allow_internet: r.allow_internet,
        state_detail: detail,
        ..Default::default()
    }
}

impl HostAgentService {
    fn envd(&self, sandbox_id: &str, touch: bool) -> Result<EnvdClient, SandboxError> {
        let addr = self.mgr.envd_addr(sandbox_id, touch)?;
        let url = format!("http://{addr}");
        match self.mgr.envd_access_token(sandbox_id)? {
            Some(t) => EnvdClient::with_access_token(&url, t),
            None => EnvdClient::new(&url),
        }
        .map_err(|e| envd_error(sandbox_id, e))
    }
}

fn required<'a>(field: &'static str, v: &'a str) -> Result<&'a str, ConnectError> {
    if v.is_empty() {
        Err(ConnectError::invalid_argument(format!(
            "{field} is required"
        )))
    } else {
        Ok(v)
    }
}

fn exec_command(req: &pb::ExecRequest) -> Result<Command, ConnectError> {
    let cmd = required("cmd", &req.cmd)?;
    Ok(Command {
        cmd: cmd.to_string(),
        args: req.args.clone(),
        envs: req
            .envs
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        cwd: (!req.cwd.is_empty()).then(|| req.cwd.clone()),
        user: (!req.user.is_empty()).then(|| req.user.clone()),
        ..Default::default()
    })
}

type Res<T> = ServiceResult<T>;

fn c(e: SandboxError) -> ConnectError {
    to_connect(&e)
}

#[allow(refining_impl_trait)]
impl pb::HostAgent for HostAgentService {
    async fn create_sandbox(
        &self,
        _ctx: RequestContext,
        request: ServiceRequest<'_, pb::CreateSandboxRequest>,
    ) -> Res<pb::CreateSandboxResponse> {
        let r = request.to_owned_message();
        required("template", &r.template)?;
        let created = self
            .mgr
            .create(CreateSandbox {
                sandbox_id: (!r.sandbox_id.is_empty()).then_some(r.sandbox_id),
                template: r.template,
                vcpus: r.vcpus,
                memory_mib: r.memory_mb,
                timeout_sec: r.timeout_sec,
                env: r.env_vars.into_iter().collect(),
                metadata: r.metadata.into_iter().collect(),
                allow_internet: r.allow_internet.unwrap_or(true),
                envd_access_token: (!r.envd_access_token.is_empty())
                    .then_some(crate::sandbox::AccessToken(r.envd_access_token)),
                auto_pause: r.auto_pause,
            })
            .await
            .map_err(c)?;
        Response::ok(pb::CreateSandboxResponse {
            sandbox: info(created).into(),
            ..Default::default()
        })
    }

    async fn destroy_sandbox(
        &self,
        _ctx: RequestContext,
        request: ServiceRequest<'_, pb::DestroySandboxRequest>,
    ) -> Res<pb::DestroySandboxResponse> {
        let id = required("sandbox_id", request.sandbox_id)?.to_string();
        self.mgr.destroy(&id).await.map_err(c)?;
        Response::ok(pb::DestroySandboxResponse::default())
    }

    async fn pause_sandbox(
        &self,
        _ctx: RequestContext,
        request: ServiceRequest<'_, pb::PauseSandboxRequest>,
    ) -> Res<pb::PauseSandboxResponse> {
        let id = required("sandbox_id", request.sandbox_id)?.to_string();
        let i = self.mgr.pause(&id).await.map_err(c)?;
        Response::ok(pb::PauseSandboxResponse {
            sandbox: info(i).into(),
            ..Default::default()
        })
    }

    async fn resume_sandbox(
        &self,
        _ctx: RequestContext,
        request: ServiceRequest<'_, pb::ResumeSandboxRequest>,
    ) -> Res<pb::ResumeSandboxResponse> {
        let id = required("sandbox_id", request.sandbox_id)?.to_string();
        let i = self.mgr.resume(&id, request.timeout_sec).await.map_err(c)?;
        Response::ok(pb::ResumeSandboxResponse {
            sandbox: info(i).into(),
            ..Default::default()
        })
    }

    async fn list_sandboxes(
        &self,
        _ctx: RequestContext,
        _request: ServiceRequest<'_, pb::ListSandboxesRequest>,
    ) -> Res<pb::ListSandboxesResponse> {
        Response::ok(pb::ListSandboxesResponse {
            sandboxes: self.mgr.list().into_iter().map(info).collect(),
            ..Default::default()
        })
    }

    async fn get_sandbox(
        &self,
        _ctx: RequestContext,
        request: ServiceRequest<'_, pb::GetSandboxRequest>,
    ) -> Res<pb::GetSandboxResponse> {
        let id = required("sandbox_id", request.sandbox_id)?;
        let i = self.mgr.get(id).map_err(c)?;
        Response::ok(pb::GetSandboxResponse {
            sandbox: info(i).into(),
            ..Default::default()
        })
    }

    async fn exec(
        &self,
        _ctx: RequestContext,
        request: ServiceRequest<'_, pb::ExecRequest>,
    ) -> Res<pb::ExecResponse> {
        let r = request.to_owned_message();
        let id = required("sandbox_id", &r.sandbox_id)?.to_string();
        let command = exec_command(&r)?;
        let envd = self.envd(&id, true).map_err(c)?;
        let timeout = if r.timeout_sec == 0 {
            DEFAULT_EXEC_TIMEOUT
        } else {
            Duration::from_secs(u64::from(r.timeout_sec))
        };
        let out = tokio::time::timeout(timeout, envd.run(command))
            .await
            .map_err(|_| {
                ConnectError::deadline_exceeded(format!(
                    "exec in sandbox {id} exceeded {timeout:?}"
                ))
            })?
            .map_err(|e| c(envd_error(&id, e)))?;
        Response::ok(pb::ExecResponse {
            stdout: out.stdout,
            stderr: out.stderr,
            exit_code: out.exit_code,
            ..Default::default()
        })
    }

    async fn exec_stream(
        &self,
        _ctx: RequestContext,
        request: ServiceRequest<'_, pb::ExecRequest>,
    ) -> Res<ServiceStream<pb::ExecStreamResponse>> {
        let r = request.to_owned_message();
        let id = required("sandbox_id", &r.sandbox_id)?.to_string();
        let command = exec_command(&r)?;
        let envd = self.envd(&id, true).map_err(c)?;
        let events = envd
            .start(command)
            .await
            .map_err(|e| c(envd_error(&id, e)))?;
        let deadline = (r.timeout_sec > 0)
            .then(|| tokio::time::Instant::now() + Duration::from_secs(u64::from(r.timeout_sec)));
        let stream = events.map(move |ev| {
            let _keep = &envd;
            let ev = ev.map_err(|e| c(envd_error(&id, e)))?;
            let event = match ev {
                ProcessEvent::Start { pid } => {
                    exec_stream_response::Event::Start(Box::new(pb::ExecStart {
                        pid,
                        ..Default::default()
                    }))
                }
                ProcessEvent::Stdout(b) | ProcessEvent::Pty(b) => {
                    exec_stream_response::Event::Data(Box::new(pb::ExecData {
                        output: Some(exec_data::Output::Stdout(b.to_vec())),
                        ..Default::default()
                    }))
                }
                ProcessEvent::Stderr(b) => {
                    exec_stream_response::Event::Data(Box::new(pb::ExecData {
                        output: Some(exec_data::Output::Stderr(b.to_vec())),
                        ..Default::default()
                    }))
                }
                ProcessEvent::End {
                    exit_code, error, ..
                } => exec_stream_response::Event::End(Box::new(pb::ExecEnd {
                    exit_code,
                    error: error.unwrap_or_default(),
                    ..Default::default()
                })),
            };
            Ok(pb::ExecStreamResponse {
                event: Some(event),
                ..Default::default()
            })
        });
        let stream: ServiceStream<pb::ExecStreamResponse> = match deadline {
            Some(d) => Box::pin(stream.take_until(tokio::time::sleep_until(d))),
            None => Box::pin(stream),
        };
        Ok(Response::new(stream))
    }

    async fn write_file(
        &self,
        _ctx: RequestContext,
        request: ServiceRequest<'_, pb::WriteFileRequest>,
    ) -> Res<pb::WriteFileResponse> {
        let r = request.to_owned_message();
        let id = required("sandbox_id", &r.sandbox_id)?.to_string();
        let path = required("path", &r.path)?.to_string();
        let envd = self.envd(&id, false).map_err(c)?;
        envd.write_file(&path, r.content, Some("root"))
            .await
            .map_err(|e| c(envd_error(&id, e)))?;
        Response::ok(pb::WriteFileResponse::default())
    }

    async fn read_file(
        &self,
        _ctx: RequestContext,
        request: ServiceRequest<'_, pb::ReadFileRequest>,
    ) -> Res<pb::ReadFileResponse> {
        let id = required("sandbox_id", request.sandbox_id)?.to_string();
        let path = required("path", request.path)?.to_string();
        let envd = self.envd(&id, false).map_err(c)?;
        let content = envd
            .read_file(&path, Some("root"))
            .await
            .map_err(|e| c(envd_error(&id, e)))?;
        Response::ok(pb::ReadFileResponse {
            content: content.to_vec(),
            ..Default::default()
        })
    }

    async fn write_file_stream(
        &self,
        _ctx: RequestContext,
        mut requests: connectrpc::InboundStream<pb::WriteFileStreamRequest>,
    ) -> Res<pb::WriteFileResponse> {
        let first = match requests.next().await {
            Some(m) => m?.to_owned_message(),
            None => {
                return Err(ConnectError::invalid_argument(
                    "empty stream: the first message must be meta",
                ));
            }
        };
        let Some(write_file_stream_request::Msg::Meta(meta)) = first.msg else {
            return Err(ConnectError::invalid_argument(
                "the first message must be meta",
            ));
        };
        let id = required("sandbox_id", &meta.sandbox_id)?.to_string();
        let path = required("path", &meta.path)?.to_string();
        let envd = self.envd(&id, false).map_err(c)?;
        let body = requests.filter_map(|m| async move {
            match m {
                Ok(m) => match m.to_owned_message().msg {
                    Some(write_file_stream_request::Msg::Chunk(b)) => {
                        Some(Ok::<Bytes, std::io::Error>(Bytes::from(b)))
                    }
                    _ => None,
                },
                Err(e) => Some(Err(std::io::Error::other(e.to_string()))),
            }
        });
        envd.write_file(&path, reqwest::Body::wrap_stream(body), Some("root"))
            .await
            .map_err(|e| c(envd_error(&id, e)))?;
        Response::ok(pb::WriteFileResponse::default())
    }

    async fn read_file_stream(
        &self,
        _ctx: RequestContext,
        request: ServiceRequest<'_, pb::ReadFileRequest>,
    ) -> Res<ServiceStream<pb::ReadFileStreamResponse>> {
        let id = required("sandbox_id", request.sandbox_id)?.to_string();
        let path = required("path", request.path)?.to_string();
        let envd = self.envd(&id, false).map_err(c)?;
        let body = envd
            .read_file_stream(&path, Some("root"))
            .await
            .map_err(|e| c(envd_error(&id, e)))?;
        // Re-chunk whatever the transport delivers into 64 KiB messages.
        let stream = futures::stream::unfold(
            (Box::pin(body), Vec::<u8>::new(), false, id),
            |(mut body, mut buf, mut done, id)| async move {
                loop {
                    if buf.len() >= CHUNK || (done && !buf.is_empty()) {
                        let rest = buf.split_off(buf.len().min(CHUNK));
                        let chunk = std::mem::replace(&mut buf, rest);
                        return Some((
                            Ok(pb::ReadFileStreamResponse {
                                chunk,
                                ..Default::default()
                            }),
                            (body, buf, done, id),
                        ));
                    }
                    if done {
                        return None;
                    }
                    match body.next().await {
                        Some(Ok(b)) => buf.extend_from_slice(&b),
                        Some(Err(e)) => {
                            return Some((
                                Err(c(envd_error(&id, e))),
                                (body, Vec::new(), true, id),
                            ));
                        }
                        None => done = true,
                    }
                }
            },
        );
        Ok(Response::new(
            Box::pin(stream) as ServiceStream<pb::ReadFileStreamResponse>
        ))
    }

    async fn create_snapshot(
        &self,
        _ctx: RequestContext,
        request: ServiceRequest<'_, pb::CreateSnapshotRequest>,
    ) -> Res<pb::CreateSnapshotResponse> {
        let id = required("sandbox_id", request.sandbox_id)?.to_string();
        let name = required("name", request.name)?.to_string();
        let t = self
            .mgr
            .snapshot(&id, &name, request.overwrite)
            .await
            .map_err(c)?;
        Response::ok(pb::CreateSnapshotResponse {
            name: t.name,
            size_bytes: t.size_bytes,
            ..Default::default()
        })
    }

    async fn delete_snapshot(
        &self,
        _ctx: RequestContext,
        request: ServiceRequest<'_, pb::DeleteSnapshotRequest>,
    ) -> Res<pb::DeleteSnapshotResponse> {
        let name = required("name", request.name)?.to_string();
        self.mgr.delete_template(&name).await.map_err(c)?;
        Response::ok(pb::DeleteSnapshotResponse::default())
    }

    async fn flatten_rootfs(
        &self,
        _ctx: RequestContext,
        request: ServiceRequest<'_, pb::FlattenRootfsRequest>,
    ) -> Res<pb::FlattenRootfsResponse> {
        let id = required("sandbox_id", request.sandbox_id)?.to_string();
        let name = required("name", request.name)?.to_string();
        let t = self
            .mgr
            .flatten(&id, &name, request.overwrite)
            .await
            .map_err(c)?;
        Response::ok(pb::FlattenRootfsResponse {
            name: t.name,
            size_bytes: t.size_bytes,
            ..Default::default()
        })
    }

    async fn ping_sandbox(
        &self,
        _ctx: RequestContext,
        request: ServiceRequest<'_, pb::PingSandboxRequest>,
    ) -> Res<pb::PingSandboxResponse> {
        let id = required("sandbox_id", request.sandbox_id)?;
        let expires = self.mgr.ping(id, request.timeout_sec).map_err(c)?;
        Response::ok(pb::PingSandboxResponse {
            expires_at_unix: expires,
            ..Default::default()
        })
    }

    async fn get_sandbox_metrics(
        &self,
        _ctx: RequestContext,
        request: ServiceRequest<'_, pb::GetSandboxMetricsRequest>,
    ) -> Res<pb::GetSandboxMetricsResponse> {
        let id = required("sandbox_id", request.sandbox_id)?.to_string();
        let (u, disk) = self.mgr.metrics(&id).await.map_err(c)?;
        Response::ok(pb::GetSandboxMetricsResponse {
            cpu_usage_ns: u.cpu_usage_ns,
            memory_bytes: u.memory_bytes,
            memory_limit_bytes: u.memory_limit_bytes,
            disk_bytes: disk,
            timestamp_unix: crate::sandbox::now_unix(),
            ..Default::default()
        })
    }

    async fn pause_all(
        &self,
        _ctx: RequestContext,
        _request: ServiceRequest<'_, pb::PauseAllRequest>,
    ) -> Res<pb::PauseAllResponse> {
        let (paused, failed) = self.mgr.pause_all().await;
        Response::ok(pb::PauseAllResponse {
            paused,
            failed,
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_plane_tokens_are_checked_for_key_host_and_expiry() {
        use base64::Engine;
        use ring::signature::{Ed25519KeyPair, KeyPair};
        let keypair = || {
            let doc = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
            let pair = Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap();
            let public =
                base64::engine::general_purpose::STANDARD.encode(pair.public_key().as_ref());
            (jsonwebtoken::EncodingKey::from_ed_der(doc.as_ref()), public)
        };
        let (key, public) = keypair();
        let (other_key, _) = keypair();
        let now = chrono::Utc::now().timestamp();
        let mint = |k: &jsonwebtoken::EncodingKey, aud: &str, iss: &str, exp: i64| {
            let claims = serde_json::json!({"iss": iss, "aud": aud, "iat": now, "exp": exp});
            let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
            jsonwebtoken::encode(&header, &claims, k).unwrap()
        };
        let v = ControlPlaneVerifier::new("host-a", &public).unwrap();
        assert!(v.verify(&mint(&key, "host-a", "warren", now + 300)));
        assert!(
            !v.verify(&mint(&key, "host-b", "warren", now + 300)),
            "other host"
        );
        assert!(
            !v.verify(&mint(&other_key, "host-a", "warren", now + 300)),
            "other key"
        );
        assert!(
            !v.verify(&mint(&key, "host-a", "warren", now - 60)),
            "expired"
        );
        assert!(
            !v.verify(&mint(&key, "host-a", "mallory", now + 300)),
            "issuer"
        );
        assert!(!v.verify("not.a.jwt"));
        assert!(ControlPlaneVerifier::new("h", "AAAA").is_err());
    }

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }

    #[test]
    fn bad_input_is_never_internal() {
        let cases = [
            (
                SandboxError::InvalidArgument("x".into()),
                ErrorCode::InvalidArgument,
            ),
            (SandboxError::NotFound("sb".into()), ErrorCode::NotFound),
            (
                SandboxError::TemplateNotFound("t".into()),
                ErrorCode::NotFound,
            ),
            (
                SandboxError::TemplateExists("t".into()),
                ErrorCode::AlreadyExists,
            ),
            (
                SandboxError::WrongState {
                    sandbox_id: "sb".into(),
                    status: "paused",
                    op: "exec",
                    needed: "running",
                },
                ErrorCode::FailedPrecondition,
            ),
            (
                SandboxError::NoCapacity("sb".into()),
                ErrorCode::ResourceExhausted,
            ),
            (
                SandboxError::Envd {
                    sandbox_id: "sb".into(),
                    message: "m".into(),
                    caller_fault: false,
                    not_found: true,
                },
                ErrorCode::NotFound,
            ),
        ];
        for (e, code) in cases {
            assert_eq!(to_connect(&e).code, code, "{e}");
        }
    }
}
