//! The sandbox service: every sandbox operation of the control plane, independent of HTTP, so
//! the REST handlers ([`super`]), the E2B-compatible layer and the web console share one
//! implementation of each rule:
//!
//! - the team always comes from the caller's credential; another team's sandbox is a 404;
//! - the *intended* status is written to the database **before** the host acts, and reverted
//!   if the host fails (DESIGN.md §8), with compare-and-set writes so a concurrent monitor
//!   pass or request cannot be overwritten silently;
//! - the host part of create, pause, resume, snapshot and destroy runs on a spawned task, so a
//!   client that hangs up mid-request does not leave a sandbox half-created or a status
//!   un-reverted (house style 13);
//! - everything user-supplied is validated here (names that become paths, sizes, timeouts),
//!   even when an edge validated it already.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warren_proto::connectrpc::client::CallOptions;
use warren_proto::connectrpc::{ConnectError, ErrorCode};
use warren_proto::envd::client::{
    ClientError as EnvdClientError, Command as EnvdCommand, ProcessEvent as EnvdEvent,
};
pub use warren_proto::envd::client::{EnvdClient, ProcessEvents};
use warren_proto::hostagent::v1 as pb;
use warren_proto::hostagent::v1::__buffa::oneof::{
    exec_data, exec_stream_response, write_file_stream_request,
};
use warren_types::{HostId, SandboxId, SandboxStatus, TeamId, TemplateId};

use crate::AppState;
use crate::auth::ts;
use crate::error::{ApiError, FieldError};
use crate::fleet::pool::{FleetError, HostClient};
use crate::fleet::scheduler::{HostLoad, Placement};
use crate::store::sandbox::{SandboxRecord, StatusUpdate};
use crate::store::template::{HOST_NAME_PREFIX, Template, TemplateKind, TemplateStatus};
use crate::store::{self, now_ms};

/// Template used when a create request names none.
pub const DEFAULT_TEMPLATE: &str = "minimal";
/// Public templates every Warren host can build; they resolve even before a host reports them.
pub const BUILTIN_TEMPLATES: &[&str] = &["minimal", "base"];
/// Default vCPUs.
pub const DEFAULT_VCPUS: u32 = 1;
/// Most vCPUs a sandbox may ask for.
pub const MAX_VCPUS: u32 = 32;
/// Default memory, MiB.
pub const DEFAULT_MEMORY_MB: u32 = 512;
/// Least memory, MiB.
pub const MIN_MEMORY_MB: u32 = 128;
/// Most memory, MiB.
pub const MAX_MEMORY_MB: u32 = 65536;
/// Default TTL, seconds.
pub const DEFAULT_TIMEOUT_S: u32 = 300;
/// Longest TTL, seconds (24 h).
pub const MAX_TIMEOUT_S: u32 = 86_400;
/// Default exec timeout, seconds.
pub const DEFAULT_EXEC_TIMEOUT_S: u32 = 30;
/// Longest exec timeout, seconds.
pub const MAX_EXEC_TIMEOUT_S: u32 = 3600;
/// Most entries in `env` or `metadata`.
pub const MAX_MAP_ENTRIES: usize = 128;
/// Longest path inside a sandbox, bytes.
pub const MAX_PATH_BYTES: usize = 4096;
/// Chunk size of streamed file writes to the host.
pub const FILE_CHUNK: usize = 64 * 1024;
/// Most items in one page of a list.
pub const MAX_PAGE: u32 = 1000;
/// Items in a page when `limit` is not given.
pub const DEFAULT_PAGE: u32 = 100;

const CREATE_TIMEOUT: Duration = Duration::from_secs(180);
const LIFECYCLE_TIMEOUT: Duration = Duration::from_secs(180);
const SHORT_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------
// Public types

/// A create request (REST body of `POST /v1/sandboxes`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSandbox {
    /// Template or snapshot name (default `minimal`). The team's templates and snapshots are
    /// looked up first, then public ones.
    #[serde(default = "default_template")]
    pub template: String,
    /// Virtual CPUs, 1–32 (default 1).
    #[serde(default)]
    pub vcpus: Option<u32>,
    /// Memory in MiB, 128–65536 (default 512).
    #[serde(default)]
    pub memory_mb: Option<u32>,
    /// Seconds until the sandbox is reaped, 0–86400 (default 300; 0: never).
    #[serde(default)]
    pub timeout_s: Option<u32>,
    /// Environment variables of every process.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Your labels, filterable with `?metadata.KEY=VALUE`.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Egress to the internet (default true).
    #[serde(default = "yes")]
    pub allow_internet: bool,
    /// Pause instead of destroy at expiry (the host's reaper pauses it; memory is kept).
    #[serde(default)]
    pub auto_pause: bool,
}

fn default_template() -> String {
    DEFAULT_TEMPLATE.to_owned()
}

fn yes() -> bool {
    true
}

impl Default for CreateSandbox {
    fn default() -> Self {
        Self {
            template: default_template(),
            vcpus: None,
            memory_mb: None,
            timeout_s: None,
            env: BTreeMap::new(),
            metadata: BTreeMap::new(),
            allow_internet: true,
            auto_pause: false,
        }
    }
}

/// A sandbox as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Sandbox {
    /// Sandbox id.
    pub id: uuid::Uuid,
    /// `pending`, `running`, `paused`, `stopped`, `missing` or `error`.
    pub status: String,
    /// Template name as given at create.
    pub template: String,
    /// The host it runs on.
    pub host_id: Option<uuid::Uuid>,
    /// Virtual CPUs.
    pub vcpus: u32,
    /// Memory, MiB.
    pub memory_mb: u32,
    /// Your labels.
    pub metadata: BTreeMap<String, String>,
    /// Environment given at create.
    pub env: BTreeMap<String, String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// When the host reaps it unless kept alive (null: never).
    pub expires_at: Option<DateTime<Utc>>,
    /// TTL in seconds (0: none).
    pub timeout_s: u32,
    /// Egress to the internet.
    pub allow_internet: bool,
    /// Pause instead of destroy at expiry.
    pub auto_pause: bool,
    /// Why it is in `error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// envd's `X-Access-Token`, when the sandbox has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub envd_access_token: Option<String>,
}

impl From<&SandboxRecord> for Sandbox {
    fn from(r: &SandboxRecord) -> Self {
        Sandbox {
            id: r.id.as_uuid(),
            status: r.status.as_str().to_owned(),
            template: r.template.clone(),
            host_id: r.host_id.map(|h| h.as_uuid()),
            vcpus: r.vcpus,
            memory_mb: r.memory_mb,
            metadata: r.metadata.clone(),
            env: r.env.clone(),
            created_at: ts(r.created_at),
            expires_at: r.expires_at.map(ts),
            timeout_s: r.timeout_secs,
            allow_internet: r.allow_internet,
            auto_pause: r.auto_pause,
            error: r.error.clone(),
            envd_access_token: r.envd_access_token.clone(),
        }
    }
}

/// What `list` returns.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only these statuses; empty: every status but `stopped` and `error`.
    pub statuses: Vec<SandboxStatus>,
    /// Only sandboxes whose metadata has all these pairs.
    pub metadata: BTreeMap<String, String>,
    /// Page size (1–1000; 0: default 100).
    pub limit: u32,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One page of a list.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    /// The items, newest first.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; null on the last one.
    pub next_cursor: Option<String>,
}

/// Resource usage of a sandbox.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Metrics {
    /// Sandbox id.
    pub sandbox_id: uuid::Uuid,
    /// Cumulative CPU time, nanoseconds.
    pub cpu_usage_ns: u64,
    /// Memory in use, bytes.
    pub memory_bytes: u64,
    /// Memory limit, bytes.
    pub memory_limit_bytes: u64,
    /// Disk used by its copy-on-write layer, bytes.
    pub disk_bytes: u64,
    /// When measured.
    pub timestamp: DateTime<Utc>,
}

/// A snapshot template.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Snapshot {
    /// Template id.
    pub id: uuid::Uuid,
    /// Name to create sandboxes from (`template`).
    pub name: String,
    /// The sandbox it was taken from.
    pub sandbox_id: Option<uuid::Uuid>,
    /// `building`, `ready` or `error`.
    pub status: String,
    /// Bytes it uses on its host.
    pub size_bytes: Option<u64>,
    /// vCPUs of sandboxes made from it.
    pub vcpus: Option<u32>,
    /// Memory of sandboxes made from it, MiB.
    pub memory_mb: Option<u32>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

impl From<&Template> for Snapshot {
    fn from(t: &Template) -> Self {
        Snapshot {
            id: t.id.as_uuid(),
            name: t.name.clone(),
            sandbox_id: t.source_sandbox_id.map(|s| s.as_uuid()),
            status: t.status.as_str().to_owned(),
            size_bytes: t.size_bytes,
            vcpus: t.vcpus,
            memory_mb: t.memory_mb,
            created_at: ts(t.created_at),
        }
    }
}

/// Where the proxy sends a sandbox's traffic.
#[derive(Debug, Clone)]
pub struct SandboxRoute {
    /// The host.
    pub host_id: HostId,
    /// `http://host:port` of its agent (append `/proxy/{sandbox_id}/{port}/...`).
    pub agent_base_url: String,
    /// Bearer token the agent accepts (without `Bearer `).
    pub bearer: String,
    /// envd's access token of the sandbox, if any.
    pub envd_access_token: Option<String>,
}

/// A command to run (REST body of `POST /v1/sandboxes/{id}/exec`).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecRequest {
    /// A shell line, run by `/bin/sh -c`. Give this or `argv`.
    #[serde(default)]
    pub cmd: Option<String>,
    /// Program and arguments, run directly. Give this or `cmd`.
    #[serde(default)]
    pub argv: Option<Vec<String>>,
    /// Extra environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory (absolute).
    #[serde(default)]
    pub cwd: Option<String>,
    /// User to run as (default: the sandbox's default user).
    #[serde(default)]
    pub user: Option<String>,
    /// Seconds before the command is given up on, 1–3600 (default 30; streams: none).
    #[serde(default)]
    pub timeout_s: Option<u32>,
}

/// Output of a finished command.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExecOutput {
    /// Standard output (base64 when `encoding` is `base64`).
    pub stdout: String,
    /// Standard error (base64 when `encoding` is `base64`).
    pub stderr: String,
    /// Exit code (-1 when killed by a signal).
    pub exit_code: i32,
    /// `utf-8`, or `base64` when either output is not valid UTF-8.
    pub encoding: String,
}

/// One event of a streamed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecEvent {
    /// Started, with its pid in the sandbox.
    Start(u32),
    /// Standard output.
    Stdout(Bytes),
    /// Standard error.
    Stderr(Bytes),
    /// Ended (always last, unless the stream failed).
    Exit {
        /// Exit code.
        exit_code: i32,
        /// An error the sandbox reported about the process.
        error: Option<String>,
    },
    /// The stream failed (always last).
    Failed(String),
}

/// A validated command.
#[derive(Debug, Clone)]
struct Command {
    cmd: String,
    args: Vec<String>,
    env: BTreeMap<String, String>,
    cwd: String,
    user: String,
    timeout_s: u32,
}

// ---------------------------------------------------------------------------------------
// Validation (pure; unit-tested below)

/// Checks a template or snapshot name: `[a-z0-9][a-z0-9._-]{0,62}`, the rule the hosts apply
/// to names that become directories.
pub fn template_name(field: &str, name: &str) -> Result<(), FieldError> {
    let err = |m: &str| Err(FieldError::new(field, m));
    let b = name.as_bytes();
    match b.first() {
        None => return err("must not be empty"),
        Some(c) if !(c.is_ascii_lowercase() || c.is_ascii_digit()) => {
            return err("must start with a lower-case letter or a digit");
        }
        _ => {}
    }
    if b.len() > 63 {
        return err("must be at most 63 characters");
    }
    if !b
        .iter()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-".contains(c))
    {
        return err("may only contain a-z, 0-9, '.', '_' and '-'");
    }
    Ok(())
}

fn env_map(field: &str, env: &BTreeMap<String, String>) -> Result<(), FieldError> {
    if env.len() > MAX_MAP_ENTRIES {
        return Err(FieldError::new(field, "at most 128 variables"));
    }
    for (k, v) in env {
        let b = k.as_bytes();
        let ok = b
            .first()
            .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_')
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
            && b.len() <= 256;
        if !ok {
            return Err(FieldError::new(
                field,
                format!("invalid variable name {:?}", truncate(k)),
            ));
        }
        if v.len() > 32 * 1024 || v.contains('\0') {
            return Err(FieldError::new(
                field,
                format!("value of {k} must be at most 32 KiB, without NUL"),
            ));
        }
    }
    Ok(())
}

fn metadata_map(field: &str, m: &BTreeMap<String, String>) -> Result<(), FieldError> {
    if m.len() > MAX_MAP_ENTRIES {
        return Err(FieldError::new(field, "at most 128 entries"));
    }
    for (k, v) in m {
        if k.is_empty() || k.chars().count() > 128 || k.chars().any(char::is_control) {
            return Err(FieldError::new(
                field,
                "keys must be 1-128 characters without control characters",
            ));
        }
        if v.chars().count() > 1024 || v.chars().any(char::is_control) {
            return Err(FieldError::new(
                field,
                format!(
                    "value of {:?} must be at most 1024 characters without control characters",
                    truncate(k)
                ),
            ));
        }
    }
    Ok(())
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Checks a path inside a sandbox: non-empty, at most 4096 bytes, no NUL or control
/// characters.
pub fn sandbox_path(field: &str, path: &str) -> Result<(), FieldError> {
    if path.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(FieldError::new(field, "must be at most 4096 bytes"));
    }
    if path.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

fn user_name(field: &str, user: &str) -> Result<(), FieldError> {
    let b = user.as_bytes();
    let ok = b
        .first()
        .is_some_and(|c| c.is_ascii_lowercase() || *c == b'_')
        && b.len() <= 32
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            "must be a user name: [a-z_][a-z0-9_-]{0,31}",
        ))
    }
}

fn check(errors: Vec<Option<FieldError>>) -> Result<(), ApiError> {
    let errors: Vec<FieldError> = errors.into_iter().flatten().collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

fn range(field: &str, v: Option<u32>, lo: u32, hi: u32) -> Option<FieldError> {
    match v {
        Some(v) if v < lo || v > hi => Some(FieldError::new(
            field,
            format!("must be between {lo} and {hi}"),
        )),
        _ => None,
    }
}

/// Validates a create request.
pub fn validate_create(req: &CreateSandbox) -> Result<(), ApiError> {
    check(vec![
        template_name("template", &req.template).err(),
        range("vcpus", req.vcpus, 1, MAX_VCPUS),
        range("memory_mb", req.memory_mb, MIN_MEMORY_MB, MAX_MEMORY_MB),
        range("timeout_s", req.timeout_s, 0, MAX_TIMEOUT_S),
        env_map("env", &req.env).err(),
        metadata_map("metadata", &req.metadata).err(),
    ])
}

fn validate_exec(req: ExecRequest, streaming: bool) -> Result<Command, ApiError> {
    let mut errors = vec![
        range("timeout_s", req.timeout_s, 1, MAX_EXEC_TIMEOUT_S),
        env_map("env", &req.env).err(),
        req.cwd.as_deref().and_then(|c| {
            sandbox_path("cwd", c).err().or_else(|| {
                (!c.starts_with('/')).then(|| FieldError::new("cwd", "must be an absolute path"))
            })
        }),
        req.user.as_deref().and_then(|u| user_name("user", u).err()),
    ];
    let (cmd, args) = match (req.cmd, req.argv) {
        (Some(_), Some(_)) => {
            errors.push(Some(FieldError::new(
                "cmd",
                "give either cmd or argv, not both",
            )));
            (String::new(), vec![])
        }
        (None, None) => {
            errors.push(Some(FieldError::new(
                "cmd",
                "give cmd (a shell line) or argv",
            )));
            (String::new(), vec![])
        }
        (Some(line), None) => {
            if line.trim().is_empty() || line.len() > 64 * 1024 || line.contains('\0') {
                errors.push(Some(FieldError::new(
                    "cmd",
                    "must be a non-empty shell line of at most 64 KiB, without NUL",
                )));
            }
            ("/bin/sh".to_owned(), vec!["-c".to_owned(), line])
        }
        (None, Some(mut argv)) => {
            let total: usize = argv.iter().map(String::len).sum();
            if argv.is_empty()
                || argv[0].is_empty()
                || argv.len() > 4096
                || total > 256 * 1024
                || argv.iter().any(|a| a.contains('\0'))
            {
                errors.push(Some(FieldError::new(
                    "argv",
                    "must be a non-empty program and arguments (at most 4096, 256 KiB, no NUL)",
                )));
                (String::new(), vec![])
            } else {
                let program = argv.remove(0);
                (program, argv)
            }
        }
    };
    check(errors)?;
    Ok(Command {
        cmd,
        args,
        env: req.env,
        cwd: req.cwd.unwrap_or_default(),
        user: req.user.unwrap_or_default(),
        timeout_s: req
            .timeout_s
            .unwrap_or(if streaming { 0 } else { DEFAULT_EXEC_TIMEOUT_S }),
    })
}

// ---------------------------------------------------------------------------------------
// Errors from hosts

/// Maps an agent's Connect error to our error, by code (never by message text).
fn host_error(host_id: HostId, op: &str, e: ConnectError) -> ApiError {
    let msg = e.message.clone().unwrap_or_default();
    match e.code {
        ErrorCode::NotFound => ApiError::NotFound(msg),
        ErrorCode::InvalidArgument | ErrorCode::OutOfRange => ApiError::Unprocessable(msg),
        ErrorCode::FailedPrecondition | ErrorCode::AlreadyExists | ErrorCode::Aborted => {
            ApiError::Conflict(msg)
        }
        ErrorCode::ResourceExhausted => {
            ApiError::NoCapacity(format!("host {host_id} is out of capacity: {msg}"))
        }
        ErrorCode::DeadlineExceeded => ApiError::Timeout(format!("{op} timed out: {msg}")),
        ErrorCode::Unavailable => {
            tracing::warn!(host_id = %host_id, op, error = %e, "host unavailable");
            ApiError::Upstream(format!("host {host_id} is unavailable for {op}"))
        }
        _ => {
            tracing::error!(host_id = %host_id, op, error = %e, "host call failed");
            ApiError::Upstream(format!("host {host_id} failed to {op}"))
        }
    }
}

fn fleet_error(e: FleetError) -> ApiError {
    match e {
        FleetError::Store(s) => s.into(),
        other => {
            tracing::warn!(error = %other, "no client for host");
            ApiError::Upstream(other.to_string())
        }
    }
}

fn opts(timeout: Duration) -> CallOptions {
    CallOptions::default().with_timeout(timeout)
}

fn spawn_error(e: tokio::task::JoinError) -> ApiError {
    ApiError::Internal(format!("sandbox task failed: {e}"))
}

fn ms_from_unix(s: i64) -> Option<i64> {
    (s > 0).then(|| s.saturating_mul(1000))
}

// ---------------------------------------------------------------------------------------
// Lookup helpers

fn not_found(id: SandboxId) -> ApiError {
    ApiError::NotFound(format!("sandbox {id} not found"))
}

/// The team's sandbox or 404.
async fn load(state: &AppState, team: TeamId, id: SandboxId) -> Result<SandboxRecord, ApiError> {
    store::sandbox::get_for_team(state.store().pool(), team, id)
        .await?
        .ok_or_else(|| not_found(id))
}

fn wrong_state(r: &SandboxRecord, op: &str, needed: &str) -> ApiError {
    ApiError::Conflict(format!(
        "sandbox {} is {}; {op} needs it {needed}",
        r.id,
        r.status.as_str()
    ))
}

/// The team's running sandbox and a client of its host.
async fn running(
    state: &AppState,
    team: TeamId,
    id: SandboxId,
    op: &str,
) -> Result<(SandboxRecord, HostClient), ApiError> {
    let r = load(state, team, id).await?;
    if r.status != SandboxStatus::Running {
        return Err(wrong_state(&r, op, "running"));
    }
    let client = host_client(state, &r).await?;
    Ok((r, client))
}

async fn host_client(state: &AppState, r: &SandboxRecord) -> Result<HostClient, ApiError> {
    let host = r
        .host_id
        .ok_or_else(|| ApiError::Conflict(format!("sandbox {} has no host", r.id)))?;
    state.pool().client(host).await.map_err(fleet_error)
}

async fn reload(state: &AppState, id: SandboxId) -> Result<Sandbox, ApiError> {
    store::sandbox::get(state.store().pool(), id)
        .await?
        .map(|r| Sandbox::from(&r))
        .ok_or_else(|| not_found(id))
}

// ---------------------------------------------------------------------------------------
// Templates and placement

/// A template resolved for one team.
#[derive(Debug, Clone)]
struct Resolved {
    /// Row, when there is one.
    template_id: Option<TemplateId>,
    /// Name on the hosts.
    host_name: String,
    /// Fixed by a snapshot.
    vcpus: Option<u32>,
    memory_mb: Option<u32>,
    /// A host known to hold it even if its last heartbeat predates it.
    known_host: Option<HostId>,
}

async fn resolve_template(
    state: &AppState,
    team: TeamId,
    name: &str,
    hosts: &[store::sandbox::HostRow],
) -> Result<Resolved, ApiError> {
    let pool = state.store().pool();
    if let Some(t) = store::template::team_by_name(pool, team, name).await? {
        if t.status != TemplateStatus::Ready {
            return Err(ApiError::Conflict(format!(
                "template '{name}' is {}",
                t.status.as_str()
            )));
        }
        let known_host = match t.source_sandbox_id {
            Some(s) => store::sandbox::get(pool, s).await?.and_then(|r| r.host_id),
            None => None,
        };
        return Ok(Resolved {
            template_id: Some(t.id),
            host_name: t.host_name(),
            vcpus: t.vcpus,
            memory_mb: t.memory_mb,
            known_host,
        });
    }
    // Host-side names of team templates are never public, whoever reports them.
    if !name.starts_with(HOST_NAME_PREFIX) {
        let public = store::template::public_by_name(pool, name).await?;
        let reported = hosts.iter().any(|h| h.templates.iter().any(|t| t == name));
        if public.is_none() && !reported && !hosts.is_empty() && BUILTIN_TEMPLATES.contains(&name) {
            // Hosts exist but none has ever held it: waiting cannot help, building can.
            return Err(ApiError::NotFound(format!(
                "template '{name}' is not on any host yet: build it on one with \
                 `warren template build {name}` (`warren up` builds base in the background; \
                 retry when it is done)"
            )));
        }
        if public.is_some() || reported || BUILTIN_TEMPLATES.contains(&name) {
            let template_id = match public {
                Some(t) => Some(t.id),
                None if reported => Some(ensure_public(state, name).await?),
                None => None,
            };
            return Ok(Resolved {
                template_id,
                host_name: name.to_owned(),
                vcpus: None,
                memory_mb: None,
                known_host: None,
            });
        }
    }
    Err(ApiError::NotFound(format!("template '{name}' not found")))
}

/// Records a public template some host reported, so it has a row (and an id) from now on.
async fn ensure_public(state: &AppState, name: &str) -> Result<TemplateId, ApiError> {
    let now = now_ms();
    let t = Template {
        id: TemplateId::new(),
        team_id: None,
        name: name.to_owned(),
        kind: TemplateKind::Image,
        status: TemplateStatus::Ready,
        size_bytes: None,
        vcpus: None,
        memory_mb: None,
        source_sandbox_id: None,
        created_at: now,
        updated_at: now,
    };
    store::template::insert(state.store().pool(), &t).await?;
    // Two first uses at once may both insert; the oldest row wins every lookup.
    Ok(store::template::public_by_name(state.store().pool(), name)
        .await?
        .map_or(t.id, |t| t.id))
}

async fn host_loads(
    state: &AppState,
    hosts: Vec<store::sandbox::HostRow>,
    known_host: Option<(HostId, &str)>,
) -> Result<Vec<HostLoad>, ApiError> {
    let counts: BTreeMap<HostId, u32> = store::sandbox::active_counts(state.store().pool())
        .await?
        .into_iter()
        .collect();
    Ok(hosts
        .into_iter()
        .map(|h| {
            let mut templates = h.templates;
            if let Some((k, name)) = known_host
                && k == h.id
                && !templates.iter().any(|t| t == name)
            {
                templates.push(name.to_owned());
            }
            HostLoad {
                host_id: h.id,
                status: h.status,
                sandbox_capacity: h.sandbox_capacity,
                active: counts.get(&h.id).copied().unwrap_or(0),
                free_memory_mb: h.free_memory_mb,
                templates,
            }
        })
        .collect())
}

// ---------------------------------------------------------------------------------------
// Lifecycle

/// Creates a sandbox: resolves the template, picks a host, writes a `pending` row, asks the
/// host, then marks it `running` (or `error`, with the reason, when the host fails).
#[tracing::instrument(skip(state, req), fields(team_id = %team))]
pub async fn create(
    state: &AppState,
    team: TeamId,
    req: CreateSandbox,
) -> Result<Sandbox, ApiError> {
    validate_create(&req)?;
    let hosts = store::sandbox::hosts(state.store().pool()).await?;
    let resolved = resolve_template(state, team, &req.template, &hosts).await?;
    let vcpus = resolved.vcpus.unwrap_or(req.vcpus.unwrap_or(DEFAULT_VCPUS));
    let memory_mb = resolved
        .memory_mb
        .unwrap_or(req.memory_mb.unwrap_or(DEFAULT_MEMORY_MB));
    let placement = Placement {
        template: resolved.host_name.clone(),
        vcpus,
        memory_mb,
    };
    let loads = host_loads(
        state,
        hosts,
        resolved
            .known_host
            .map(|h| (h, resolved.host_name.as_str())),
    )
    .await?;
    let Some(host_id) = state.scheduler().pick(&loads, &placement) else {
        let online = loads
            .iter()
            .filter(|h| h.status.accepts_sandboxes())
            .count();
        return Err(ApiError::NoCapacity(if online == 0 {
            "no host is online to run the sandbox; start or register a host agent".to_owned()
        } else {
            format!(
                "none of the {online} online hosts has template '{}' and room for a sandbox \
                 of {vcpus} vCPU / {memory_mb} MiB; retry later or free capacity",
                req.template
            )
        }));
    };
    let now = now_ms();
    let timeout_s = req.timeout_s.unwrap_or(DEFAULT_TIMEOUT_S);
    let record = SandboxRecord {
        id: SandboxId::new(),
        team_id: team,
        host_id: Some(host_id),
        template_id: resolved.template_id,
        template: req.template.clone(),
        status: SandboxStatus::Pending,
        vcpus,
        memory_mb,
        metadata: req.metadata,
        env: req.env,
        timeout_secs: timeout_s,
        expires_at: None,
        error: None,
        allow_internet: req.allow_internet,
        auto_pause: req.auto_pause,
        // Every sandbox's envd wants a token (E2B: every sandbox is secure); see proxy.rs.
        envd_access_token: Some(crate::proxy::new_envd_access_token()),
        created_at: now,
        updated_at: now,
        started_at: None,
        stopped_at: None,
    };
    store::sandbox::insert(state.store().pool(), &record).await?;
    tracing::info!(sandbox_id = %record.id, host_id = %host_id, template = %record.template, "creating sandbox");
    let state = state.clone();
    let host_name = resolved.host_name;
    tokio::spawn(async move { create_on_host(&state, record, host_name).await })
        .await
        .map_err(spawn_error)?
}

async fn create_on_host(
    state: &AppState,
    r: SandboxRecord,
    host_template: String,
) -> Result<Sandbox, ApiError> {
    let pool = state.store().pool();
    let host_id = r
        .host_id
        .expect("create_on_host is called with a placed sandbox");
    let fail = |message: String| {
        let extra = StatusUpdate {
            error: Some(message),
            ..Default::default()
        };
        async move {
            let done = store::sandbox::set_status(
                pool,
                r.id,
                SandboxStatus::Pending,
                SandboxStatus::Error,
                &extra,
                now_ms(),
            )
            .await;
            if let Err(e) = done {
                tracing::error!(sandbox_id = %r.id, error = %e, "recording a failed create");
            }
        }
    };
    let client = match state.pool().client(host_id).await {
        Ok(c) => c,
        Err(e) => {
            fail(e.to_string()).await;
            return Err(fleet_error(e));
        }
    };
    let request = pb::CreateSandboxRequest {
        template: host_template,
        vcpus: r.vcpus,
        memory_mb: r.memory_mb,
        timeout_sec: r.timeout_secs,
        sandbox_id: r.id.to_string(),
        env_vars: r.env.clone().into_iter().collect(),
        metadata: r.metadata.clone().into_iter().collect(),
        allow_internet: Some(r.allow_internet),
        envd_access_token: r.envd_access_token.clone().unwrap_or_default(),
        auto_pause: r.auto_pause,
        ..Default::default()
    };
    match client
        .rpc()
        .create_sandbox_with_options(request, opts(CREATE_TIMEOUT))
        .await
    {
        Ok(resp) => {
            let info = resp.into_owned().sandbox.into_option().unwrap_or_default();
            let extra = StatusUpdate {
                expires_at: Some(ms_from_unix(info.expires_at_unix)),
                started: true,
                ..Default::default()
            };
            let moved = store::sandbox::set_status(
                pool,
                r.id,
                SandboxStatus::Pending,
                SandboxStatus::Running,
                &extra,
                now_ms(),
            )
            .await?;
            if !moved {
                // Deleted while the host was creating it: the row says stopped, so the host
                // must not keep it.
                destroy_on_host(&client, r.id).await;
                return Err(ApiError::Conflict(format!(
                    "sandbox {} was deleted while it was being created",
                    r.id
                )));
            }
            tracing::info!(sandbox_id = %r.id, host_id = %host_id, "sandbox running");
            reload(state, r.id).await
        }
        Err(e) => {
            let msg = e
                .message
                .clone()
                .unwrap_or_else(|| e.code.as_str().to_owned());
            fail(format!("create on host {host_id} failed: {msg}")).await;
            if matches!(
                e.code,
                ErrorCode::Unavailable | ErrorCode::DeadlineExceeded | ErrorCode::Unknown
            ) {
                // It may exist half-made on the host; the row says error, so remove it.
                state.pool().evict(host_id);
                destroy_on_host(&client, r.id).await;
            }
            Err(host_error(host_id, "create sandbox", e))
        }
    }
}

async fn destroy_on_host(client: &HostClient, id: SandboxId) {
    let req = pb::DestroySandboxRequest {
        sandbox_id: id.to_string(),
        ..Default::default()
    };
    match client
        .rpc()
        .destroy_sandbox_with_options(req, opts(LIFECYCLE_TIMEOUT))
        .await
    {
        Ok(_) => {}
        Err(e) if e.code == ErrorCode::NotFound => {}
        Err(e) => {
            tracing::warn!(sandbox_id = %id, host_id = %client.host_id(), error = %e,
                "destroy on host failed; the host monitor removes it as an orphan");
        }
    }
}

/// The team's sandbox.
pub async fn get(state: &AppState, team: TeamId, id: SandboxId) -> Result<Sandbox, ApiError> {
    Ok(Sandbox::from(&load(state, team, id).await?))
}

/// The team's sandboxes, newest first, filtered and paginated.
pub async fn list(
    state: &AppState,
    team: TeamId,
    filter: ListFilter,
) -> Result<Page<Sandbox>, ApiError> {
    let limit = match filter.limit {
        0 => DEFAULT_PAGE,
        n if n > MAX_PAGE => {
            return Err(ApiError::field("limit", "must be between 1 and 1000"));
        }
        n => n,
    };
    check(vec![metadata_map("metadata", &filter.metadata).err()])?;
    let mut before: Option<SandboxId> = match &filter.cursor {
        Some(c) => Some(
            c.parse()
                .map_err(|_| ApiError::field("cursor", "not a cursor of this list"))?,
        ),
        None => None,
    };
    let statuses = if filter.statuses.is_empty() {
        vec![
            SandboxStatus::Pending,
            SandboxStatus::Running,
            SandboxStatus::Paused,
            SandboxStatus::Missing,
        ]
    } else {
        filter.statuses.clone()
    };
    // Metadata is a JSON document, filtered here rather than in dialect-specific SQL: read
    // batches until the page (plus one, to know whether there is more) is full.
    let batch = if filter.metadata.is_empty() {
        limit + 1
    } else {
        (limit + 1).max(200)
    };
    let mut items: Vec<SandboxRecord> = Vec::new();
    loop {
        let rows =
            store::sandbox::list_for_team(state.store().pool(), team, &statuses, before, batch)
                .await?;
        let exhausted = rows.len() < batch as usize;
        before = rows.last().map(|r| r.id);
        items.extend(rows.into_iter().filter(|r| {
            filter
                .metadata
                .iter()
                .all(|(k, v)| r.metadata.get(k) == Some(v))
        }));
        if items.len() > limit as usize || exhausted {
            break;
        }
    }
    let next_cursor = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(|r| r.id.to_string())
    } else {
        None
    };
    Ok(Page {
        items: items.iter().map(Sandbox::from).collect(),
        next_cursor,
    })
}

/// Destroys the team's sandbox: the row becomes `stopped` first, then the host removes it
/// (if the host cannot be reached, its monitor pass removes the orphan later). Deleting a
/// stopped sandbox again is a no-op.
#[tracing::instrument(skip(state), fields(team_id = %team, sandbox_id = %id))]
pub async fn destroy(state: &AppState, team: TeamId, id: SandboxId) -> Result<(), ApiError> {
    let mut r = load(state, team, id).await?;
    for _ in 0..5 {
        if r.status == SandboxStatus::Stopped {
            return Ok(());
        }
        if r.status == SandboxStatus::Error
            || store::sandbox::set_status(
                state.store().pool(),
                id,
                r.status,
                SandboxStatus::Stopped,
                &StatusUpdate::default(),
                now_ms(),
            )
            .await?
        {
            if let Ok(client) = host_client(state, &r).await {
                tokio::spawn(async move { destroy_on_host(&client, id).await })
                    .await
                    .map_err(spawn_error)?;
            }
            tracing::info!("sandbox destroyed");
            return Ok(());
        }
        // Changed under us (a create finishing, a monitor pass): look again.
        r = load(state, team, id).await?;
    }
    Err(ApiError::Conflict(format!(
        "sandbox {id} keeps changing status; retry"
    )))
}

/// Pauses the team's running sandbox (memory and files kept).
#[tracing::instrument(skip(state), fields(team_id = %team, sandbox_id = %id))]
pub async fn pause(state: &AppState, team: TeamId, id: SandboxId) -> Result<Sandbox, ApiError> {
    let (r, client) = running(state, team, id, "pause").await?;
    let pool = state.store().pool();
    if !store::sandbox::set_status(
        pool,
        id,
        SandboxStatus::Running,
        SandboxStatus::Paused,
        &StatusUpdate::default(),
        now_ms(),
    )
    .await?
    {
        return Err(wrong_state(
            &load(state, team, id).await?,
            "pause",
            "running",
        ));
    }
    let state2 = state.clone();
    tokio::spawn(async move {
        let req = pb::PauseSandboxRequest {
            sandbox_id: id.to_string(),
            ..Default::default()
        };
        match client
            .rpc()
            .pause_sandbox_with_options(req, opts(LIFECYCLE_TIMEOUT))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                revert(
                    &state2,
                    id,
                    SandboxStatus::Paused,
                    SandboxStatus::Running,
                    &r,
                )
                .await;
                Err(host_error(client.host_id(), "pause sandbox", e))
            }
        }
    })
    .await
    .map_err(spawn_error)??;
    tracing::info!("sandbox paused");
    reload(state, id).await
}

/// Puts a row back to `to` after the host failed an operation that moved it to `from`.
async fn revert(
    state: &AppState,
    id: SandboxId,
    from: SandboxStatus,
    to: SandboxStatus,
    before: &SandboxRecord,
) {
    let extra = StatusUpdate {
        expires_at: Some(before.expires_at),
        timeout_secs: Some(before.timeout_secs),
        ..Default::default()
    };
    match store::sandbox::set_status(state.store().pool(), id, from, to, &extra, now_ms()).await {
        Ok(true) => tracing::info!(sandbox_id = %id, to = to.as_str(), "status reverted"),
        Ok(false) => {
            tracing::warn!(sandbox_id = %id, "status changed meanwhile; not reverted")
        }
        Err(e) => tracing::error!(sandbox_id = %id, error = %e, "reverting status"),
    }
}

/// Resumes the team's paused sandbox; `timeout_s` (if given) becomes its TTL.
#[tracing::instrument(skip(state), fields(team_id = %team, sandbox_id = %id))]
pub async fn resume(
    state: &AppState,
    team: TeamId,
    id: SandboxId,
    timeout_s: Option<u32>,
) -> Result<Sandbox, ApiError> {
    check(vec![range("timeout_s", timeout_s, 0, MAX_TIMEOUT_S)])?;
    let r = load(state, team, id).await?;
    if r.status != SandboxStatus::Paused {
        return Err(wrong_state(&r, "resume", "paused"));
    }
    let client = host_client(state, &r).await?;
    let now = now_ms();
    let intended = StatusUpdate {
        timeout_secs: timeout_s,
        expires_at: timeout_s.map(|t| (t > 0).then(|| now + i64::from(t) * 1000)),
        ..Default::default()
    };
    if !store::sandbox::set_status(
        state.store().pool(),
        id,
        SandboxStatus::Paused,
        SandboxStatus::Running,
        &intended,
        now,
    )
    .await?
    {
        return Err(wrong_state(
            &load(state, team, id).await?,
            "resume",
            "paused",
        ));
    }
    let state2 = state.clone();
    tokio::spawn(async move {
        let req = pb::ResumeSandboxRequest {
            sandbox_id: id.to_string(),
            timeout_sec: timeout_s.unwrap_or(0),
            ..Default::default()
        };
        match client
            .rpc()
            .resume_sandbox_with_options(req, opts(LIFECYCLE_TIMEOUT))
            .await
        {
            Ok(resp) => {
                let info = resp.into_owned().sandbox.into_option().unwrap_or_default();
                store::sandbox::set_expiry(
                    state2.store().pool(),
                    id,
                    SandboxStatus::Running,
                    info.timeout_sec,
                    ms_from_unix(info.expires_at_unix),
                    now_ms(),
                )
                .await?;
                Ok(())
            }
            Err(e) => {
                revert(
                    &state2,
                    id,
                    SandboxStatus::Running,
                    SandboxStatus::Paused,
                    &r,
                )
                .await;
                Err(host_error(client.host_id(), "resume sandbox", e))
            }
        }
    })
    .await
    .map_err(spawn_error)??;
    tracing::info!("sandbox resumed");
    reload(state, id).await
}

/// Keepalive: the running sandbox's TTL becomes `timeout_s` from now.
#[tracing::instrument(skip(state), fields(team_id = %team, sandbox_id = %id))]
pub async fn set_timeout(
    state: &AppState,
    team: TeamId,
    id: SandboxId,
    timeout_s: u32,
) -> Result<Sandbox, ApiError> {
    check(vec![range("timeout_s", Some(timeout_s), 1, MAX_TIMEOUT_S)])?;
    let (r, client) = running(state, team, id, "timeout").await?;
    let pool = state.store().pool();
    let now = now_ms();
    if !store::sandbox::set_expiry(
        pool,
        id,
        SandboxStatus::Running,
        timeout_s,
        Some(now + i64::from(timeout_s) * 1000),
        now,
    )
    .await?
    {
        return Err(wrong_state(
            &load(state, team, id).await?,
            "timeout",
            "running",
        ));
    }
    let req = pb::PingSandboxRequest {
        sandbox_id: id.to_string(),
        timeout_sec: timeout_s,
        ..Default::default()
    };
    match client
        .rpc()
        .ping_sandbox_with_options(req, opts(SHORT_TIMEOUT))
        .await
    {
        Ok(resp) => {
            let expires = resp.into_owned().expires_at_unix;
            store::sandbox::set_expiry(
                pool,
                id,
                SandboxStatus::Running,
                timeout_s,
                ms_from_unix(expires),
                now_ms(),
            )
            .await?;
        }
        Err(e) => {
            store::sandbox::set_expiry(
                pool,
                id,
                SandboxStatus::Running,
                r.timeout_secs,
                r.expires_at,
                now_ms(),
            )
            .await?;
            return Err(host_error(client.host_id(), "set timeout", e));
        }
    }
    reload(state, id).await
}

/// Resource usage of the team's running sandbox.
pub async fn metrics(state: &AppState, team: TeamId, id: SandboxId) -> Result<Metrics, ApiError> {
    let (_, client) = running(state, team, id, "metrics").await?;
    let req = pb::GetSandboxMetricsRequest {
        sandbox_id: id.to_string(),
        ..Default::default()
    };
    let m = client
        .rpc()
        .get_sandbox_metrics_with_options(req, opts(SHORT_TIMEOUT))
        .await
        .map_err(|e| host_error(client.host_id(), "read metrics", e))?
        .into_owned();
    Ok(Metrics {
        sandbox_id: id.as_uuid(),
        cpu_usage_ns: m.cpu_usage_ns,
        memory_bytes: m.memory_bytes,
        memory_limit_bytes: m.memory_limit_bytes,
        disk_bytes: m.disk_bytes,
        timestamp: DateTime::from_timestamp(m.timestamp_unix, 0).unwrap_or_else(Utc::now),
    })
}

/// Where to send proxied traffic of the team's sandbox: 404 when it is not the team's (or is
/// gone), 409 while it is paused or starting.
pub async fn route(
    state: &AppState,
    team: TeamId,
    id: SandboxId,
) -> Result<SandboxRoute, ApiError> {
    let r = load(state, team, id).await?;
    route_of(state, &r).await
}

/// [`route`] for a sandbox already loaded (e.g. found by its envd access token).
pub async fn route_of(state: &AppState, r: &SandboxRecord) -> Result<SandboxRoute, ApiError> {
    match r.status {
        SandboxStatus::Running => {}
        SandboxStatus::Stopped | SandboxStatus::Error => return Err(not_found(r.id)),
        SandboxStatus::Missing => {
            return Err(ApiError::Upstream(format!(
                "the host of sandbox {} is unreachable",
                r.id
            )));
        }
        _ => return Err(wrong_state(r, "connecting", "running")),
    }
    let client = host_client(state, r).await?;
    Ok(SandboxRoute {
        host_id: client.host_id(),
        agent_base_url: client.base_url().to_owned(),
        bearer: client.bearer(),
        envd_access_token: r.envd_access_token.clone(),
    })
}

// ---------------------------------------------------------------------------------------
// Exec

fn encode_output(stdout: Vec<u8>, stderr: Vec<u8>, exit_code: i32) -> ExecOutput {
    match (String::from_utf8(stdout), String::from_utf8(stderr)) {
        (Ok(stdout), Ok(stderr)) => ExecOutput {
            stdout,
            stderr,
            exit_code,
            encoding: "utf-8".into(),
        },
        (out, err) => {
            let b64 = |r: Result<String, std::string::FromUtf8Error>| {
                let bytes = r.map(String::into_bytes).unwrap_or_else(|e| e.into_bytes());
                base64::engine::general_purpose::STANDARD.encode(bytes)
            };
            ExecOutput {
                stdout: b64(out),
                stderr: b64(err),
                exit_code,
                encoding: "base64".into(),
            }
        }
    }
}

fn exec_rpc(id: SandboxId, c: Command) -> pb::ExecRequest {
    pb::ExecRequest {
        sandbox_id: id.to_string(),
        cmd: c.cmd,
        args: c.args,
        timeout_sec: c.timeout_s,
        envs: c.env.into_iter().collect(),
        cwd: c.cwd,
        user: c.user,
        ..Default::default()
    }
}

/// Runs a command in the team's running sandbox to completion.
#[tracing::instrument(skip(state, req), fields(team_id = %team, sandbox_id = %id))]
pub async fn exec(
    state: &AppState,
    team: TeamId,
    id: SandboxId,
    req: ExecRequest,
) -> Result<ExecOutput, ApiError> {
    let command = validate_exec(req, false)?;
    let (_, client) = running(state, team, id, "exec").await?;
    let timeout = Duration::from_secs(u64::from(command.timeout_s) + 15);
    let out = client
        .rpc()
        .exec_with_options(exec_rpc(id, command), opts(timeout))
        .await
        .map_err(|e| host_error(client.host_id(), "exec", e))?
        .into_owned();
    Ok(encode_output(out.stdout, out.stderr, out.exit_code))
}

/// The events of a command, ending with [`ExecEvent::Exit`] or [`ExecEvent::Failed`].
pub type ExecEvents = std::pin::Pin<Box<dyn Stream<Item = ExecEvent> + Send>>;

/// Starts a command in the team's running sandbox and streams its events. Errors before the
/// command starts (validation, 404, 409) are returned; later ones end the stream.
#[tracing::instrument(skip(state, req), fields(team_id = %team, sandbox_id = %id))]
pub async fn exec_stream(
    state: &AppState,
    team: TeamId,
    id: SandboxId,
    req: ExecRequest,
) -> Result<ExecEvents, ApiError> {
    let command = validate_exec(req, true)?;
    let (_, client) = running(state, team, id, "exec").await?;
    let host_id = client.host_id();
    let mut stream = client
        .rpc()
        .exec_stream(exec_rpc(id, command))
        .await
        .map_err(|e| host_error(host_id, "exec", e))?;
    // The first event tells whether the command started at all.
    let first = match stream.message::<pb::ExecStreamResponse>().await {
        Ok(Some(m)) => convert_exec(m.to_owned_message()),
        Ok(None) => Some(ExecEvent::Failed("the command produced no events".into())),
        Err(e) => return Err(host_error(host_id, "exec", e)),
    };
    let rest = futures::stream::unfold(Some(stream), move |s| async move {
        let mut s = s?;
        loop {
            match s.message::<pb::ExecStreamResponse>().await {
                Ok(Some(m)) => {
                    if let Some(ev) = convert_exec(m.to_owned_message()) {
                        let done = matches!(ev, ExecEvent::Exit { .. });
                        return Some((ev, (!done).then_some(s)));
                    }
                }
                Ok(None) => return None,
                Err(e) => {
                    let msg = e.message.unwrap_or_else(|| e.code.as_str().to_owned());
                    return Some((ExecEvent::Failed(msg), None));
                }
            }
        }
    });
    let first_done = matches!(first, Some(ExecEvent::Exit { .. } | ExecEvent::Failed(_)));
    let head = futures::stream::iter(first);
    if first_done {
        Ok(Box::pin(head))
    } else {
        Ok(Box::pin(head.chain(rest)))
    }
}

/// A command started with its stdin open (the WebSocket exec stream): envd reached through
/// the host agent's proxy, so input can follow the start (the agent's `ExecStream` RPC has no
/// stdin). Returns the client, the command's pid, its events after the start, and its
/// timeout (0: none).
pub async fn exec_interactive(
    state: &AppState,
    team: TeamId,
    id: SandboxId,
    req: ExecRequest,
) -> Result<(EnvdClient, u32, ProcessEvents, u32), ApiError> {
    let command = validate_exec(req, true)?;
    running(state, team, id, "exec").await?;
    let envd = crate::pty::envd_for(state, team, id).await?;
    let started = envd
        .start(EnvdCommand {
            cmd: command.cmd,
            args: command.args,
            envs: command.env.into_iter().collect(),
            cwd: (!command.cwd.is_empty()).then_some(command.cwd),
            user: (!command.user.is_empty()).then_some(command.user),
            stdin: true,
            ..Default::default()
        })
        .await;
    let mut events = started.map_err(|e| envd_error(id, e))?;
    match events.next().await {
        Some(Ok(EnvdEvent::Start { pid })) => Ok((envd, pid, events, command.timeout_s)),
        Some(Err(e)) => Err(envd_error(id, e)),
        other => Err(ApiError::Upstream(format!(
            "sandbox {id}: the command did not start: {other:?}"
        ))),
    }
}

/// Maps an envd error (reached through the agent's proxy) to our error, by code.
fn envd_error(id: SandboxId, e: EnvdClientError) -> ApiError {
    match e {
        EnvdClientError::Rpc { source, .. } => match source.code {
            ErrorCode::NotFound
            | ErrorCode::InvalidArgument
            | ErrorCode::PermissionDenied
            | ErrorCode::FailedPrecondition => ApiError::Unprocessable(format!(
                "sandbox {id}: {}",
                source.message.unwrap_or_default()
            )),
            _ => ApiError::Upstream(format!("sandbox {id}: envd failed: {source}")),
        },
        other => ApiError::Upstream(format!("sandbox {id}: envd failed: {other}")),
    }
}

/// Converts an envd process event to ours.
pub fn from_envd(ev: EnvdEvent) -> ExecEvent {
    match ev {
        EnvdEvent::Start { pid } => ExecEvent::Start(pid),
        EnvdEvent::Stdout(b) | EnvdEvent::Pty(b) => ExecEvent::Stdout(b),
        EnvdEvent::Stderr(b) => ExecEvent::Stderr(b),
        EnvdEvent::End {
            exit_code, error, ..
        } => ExecEvent::Exit { exit_code, error },
    }
}

fn convert_exec(m: pb::ExecStreamResponse) -> Option<ExecEvent> {
    Some(match m.event? {
        exec_stream_response::Event::Start(s) => ExecEvent::Start(s.pid),
        exec_stream_response::Event::Data(d) => match d.output? {
            exec_data::Output::Stdout(b) => ExecEvent::Stdout(Bytes::from(b)),
            exec_data::Output::Stderr(b) => ExecEvent::Stderr(Bytes::from(b)),
        },
        exec_stream_response::Event::End(e) => ExecEvent::Exit {
            exit_code: e.exit_code,
            error: (!e.error.is_empty()).then_some(e.error),
        },
    })
}

// ---------------------------------------------------------------------------------------
// Files

/// Writes `body` to `path` in the team's running sandbox, streaming it to the host in 64 KiB
/// messages (never buffering the file). Returns the bytes written. If `body` fails midway,
/// the host call is cancelled, so no truncated file is reported as written.
pub async fn write_file<S, E>(
    state: &AppState,
    team: TeamId,
    id: SandboxId,
    path: &str,
    mut body: S,
) -> Result<u64, ApiError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    sandbox_path("path", path).map_err(ApiError::from_field)?;
    let (_, client) = running(state, team, id, "writing files").await?;
    let host_id = client.host_id();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<pb::WriteFileStreamRequest>(4);
    let requests = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let rpc = client.rpc();
    let call = rpc.write_file_stream(requests);
    tokio::pin!(call);
    let meta = pb::WriteFileStreamRequest {
        msg: Some(write_file_stream_request::Msg::Meta(Box::new(
            pb::WriteFileMeta {
                sandbox_id: id.to_string(),
                path: path.to_owned(),
                ..Default::default()
            },
        ))),
        ..Default::default()
    };
    let pump = async move {
        let mut total: u64 = 0;
        if tx.send(meta).await.is_err() {
            return Ok(total);
        }
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| e.to_string())?;
            total += chunk.len() as u64;
            for piece in chunk.chunks(FILE_CHUNK) {
                let m = pb::WriteFileStreamRequest {
                    msg: Some(write_file_stream_request::Msg::Chunk(piece.to_vec())),
                    ..Default::default()
                };
                if tx.send(m).await.is_err() {
                    // The call ended (it failed); its result says why.
                    return Ok(total);
                }
            }
        }
        Ok::<u64, String>(total)
    };
    tokio::pin!(pump);
    let total = tokio::select! {
        result = &mut call => {
            result.map_err(|e| host_error(host_id, "write file", e))?;
            return Err(ApiError::Upstream(format!(
                "host {host_id} ended the upload of {path:?} before the body was sent"
            )));
        }
        pumped = &mut pump => pumped.map_err(|e| {
            ApiError::Unprocessable(format!("upload of {path:?} interrupted: {e}"))
        })?,
    };
    call.await
        .map_err(|e| host_error(host_id, "write file", e))?;
    tracing::debug!(sandbox_id = %id, path, bytes = total, "file written");
    Ok(total)
}

/// A file's bytes, streamed.
pub type FileStream = std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// Reads `path` from the team's running sandbox as a stream of chunks. A missing file is a
/// 404 before any byte is sent.
pub async fn read_file(
    state: &AppState,
    team: TeamId,
    id: SandboxId,
    path: &str,
) -> Result<FileStream, ApiError> {
    sandbox_path("path", path).map_err(ApiError::from_field)?;
    let (_, client) = running(state, team, id, "reading files").await?;
    let host_id = client.host_id();
    let req = pb::ReadFileRequest {
        sandbox_id: id.to_string(),
        path: path.to_owned(),
        ..Default::default()
    };
    let mut stream = client
        .rpc()
        .read_file_stream(req)
        .await
        .map_err(|e| host_error(host_id, "read file", e))?;
    let first = stream
        .message::<pb::ReadFileStreamResponse>()
        .await
        .map_err(|e| host_error(host_id, "read file", e))?
        .map(|m| Bytes::from(m.to_owned_message().chunk));
    let Some(first) = first else {
        return Ok(Box::pin(futures::stream::empty()));
    };
    let rest = futures::stream::unfold(Some(stream), |s| async move {
        let mut s = s?;
        match s.message::<pb::ReadFileStreamResponse>().await {
            Ok(Some(m)) => Some((Ok(Bytes::from(m.to_owned_message().chunk)), Some(s))),
            Ok(None) => None,
            Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
        }
    });
    Ok(Box::pin(futures::stream::iter([Ok(first)]).chain(rest)))
}

// ---------------------------------------------------------------------------------------
// Snapshots

/// Turns the team's running or paused sandbox into a snapshot template `name`; new
/// sandboxes created with `template: name` resume from it. The sandbox is left paused.
#[tracing::instrument(skip(state), fields(team_id = %team, sandbox_id = %sandbox_id))]
pub async fn snapshot(
    state: &AppState,
    team: TeamId,
    sandbox_id: SandboxId,
    name: String,
) -> Result<Snapshot, ApiError> {
    template_name("name", &name).map_err(ApiError::from_field)?;
    if name.starts_with(HOST_NAME_PREFIX) || BUILTIN_TEMPLATES.contains(&name.as_str()) {
        return Err(ApiError::field(
            "name",
            format!(
                "'{name}' is reserved (names may not start with '{HOST_NAME_PREFIX}', nor be a public template)"
            ),
        ));
    }
    let pool = state.store().pool();
    let r = load(state, team, sandbox_id).await?;
    if !matches!(r.status, SandboxStatus::Running | SandboxStatus::Paused) {
        return Err(wrong_state(&r, "snapshot", "running or paused"));
    }
    if store::template::team_by_name(pool, team, &name)
        .await?
        .is_some()
    {
        return Err(ApiError::Conflict(format!(
            "template '{name}' already exists"
        )));
    }
    let client = host_client(state, &r).await?;
    let now = now_ms();
    let template = Template {
        id: TemplateId::new(),
        team_id: Some(team),
        name: name.clone(),
        kind: TemplateKind::Snapshot,
        status: TemplateStatus::Building,
        size_bytes: None,
        vcpus: Some(r.vcpus),
        memory_mb: Some(r.memory_mb),
        source_sandbox_id: Some(sandbox_id),
        created_at: now,
        updated_at: now,
    };
    store::template::insert(pool, &template).await?;
    let was_running = r.status == SandboxStatus::Running;
    if was_running
        && !store::sandbox::set_status(
            pool,
            sandbox_id,
            SandboxStatus::Running,
            SandboxStatus::Paused,
            &StatusUpdate::default(),
            now,
        )
        .await?
    {
        store::template::delete(pool, template.id).await?;
        return Err(wrong_state(
            &load(state, team, sandbox_id).await?,
            "snapshot",
            "running or paused",
        ));
    }
    let state2 = state.clone();
    let host_name = template.host_name();
    let template_id = template.id;
    tokio::spawn(async move {
        let pool = state2.store().pool();
        let req = pb::CreateSnapshotRequest {
            sandbox_id: sandbox_id.to_string(),
            name: host_name,
            overwrite: false,
            ..Default::default()
        };
        match client
            .rpc()
            .create_snapshot_with_options(req, opts(LIFECYCLE_TIMEOUT))
            .await
        {
            Ok(resp) => {
                let size = resp.into_owned().size_bytes;
                store::template::set_status(
                    pool,
                    template_id,
                    TemplateStatus::Ready,
                    Some(size),
                    now_ms(),
                )
                .await?;
                Ok(())
            }
            Err(e) => {
                if let Err(e) = store::template::delete(pool, template_id).await {
                    tracing::error!(error = %e, "removing the row of a failed snapshot");
                }
                if was_running {
                    revert(
                        &state2,
                        sandbox_id,
                        SandboxStatus::Paused,
                        SandboxStatus::Running,
                        &r,
                    )
                    .await;
                }
                Err(host_error(client.host_id(), "create snapshot", e))
            }
        }
    })
    .await
    .map_err(spawn_error)??;
    tracing::info!(name = %name, "snapshot created");
    let t = store::template::team_by_name(pool, team, &name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("snapshot '{name}' not found")))?;
    Ok(Snapshot::from(&t))
}

/// The team's snapshot templates, newest first.
pub async fn list_snapshots(state: &AppState, team: TeamId) -> Result<Vec<Snapshot>, ApiError> {
    let rows =
        store::template::list_for_team(state.store().pool(), team, TemplateKind::Snapshot).await?;
    Ok(rows.iter().map(Snapshot::from).collect())
}

/// Deletes the team's snapshot `name`: the row goes first (no new sandbox can use it), then
/// every online host is told to delete its copy. Returns the hosts that failed to (they keep
/// an unreachable copy; logged).
#[tracing::instrument(skip(state), fields(team_id = %team))]
pub async fn delete_snapshot(
    state: &AppState,
    team: TeamId,
    name: &str,
) -> Result<Vec<HostId>, ApiError> {
    let pool = state.store().pool();
    let t = store::template::team_by_name(pool, team, name)
        .await?
        .filter(|t| t.kind == TemplateKind::Snapshot)
        .ok_or_else(|| ApiError::NotFound(format!("snapshot '{name}' not found")))?;
    store::template::delete(pool, t.id).await?;
    let host_name = t.host_name();
    let hosts = store::sandbox::hosts(pool).await?;
    let state2 = state.clone();
    let failed = tokio::spawn(async move {
        let calls = hosts
            .into_iter()
            .filter(|h| h.status.accepts_sandboxes())
            .map(|h| {
                let state = state2.clone();
                let host_name = host_name.clone();
                async move {
                    let client = match state.pool().client(h.id).await {
                        Ok(c) => c,
                        Err(e) => {
                            tracing::warn!(host_id = %h.id, error = %e, "snapshot delete: no client");
                            return Some(h.id);
                        }
                    };
                    let req = pb::DeleteSnapshotRequest {
                        name: host_name,
                        ..Default::default()
                    };
                    match client
                        .rpc()
                        .delete_snapshot_with_options(req, opts(SHORT_TIMEOUT))
                        .await
                    {
                        Ok(_) => None,
                        Err(e) if e.code == ErrorCode::NotFound => None,
                        Err(e) => {
                            tracing::warn!(host_id = %h.id, error = %e, "snapshot delete failed on host");
                            Some(h.id)
                        }
                    }
                }
            });
        futures::future::join_all(calls)
            .await
            .into_iter()
            .flatten()
            .collect::<Vec<HostId>>()
    })
    .await
    .map_err(spawn_error)?;
    tracing::info!(name, "snapshot deleted");
    Ok(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_names() {
        for ok in ["minimal", "base", "a", "my-snap_1.2", &"a".repeat(63)] {
            assert!(template_name("t", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-x",
            ".hidden",
            "Upper",
            "a/b",
            "../etc",
            "a b",
            "é",
            &"a".repeat(64),
            "a\0",
        ] {
            assert!(template_name("t", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn exec_commands() {
        let c = validate_exec(
            ExecRequest {
                cmd: Some("echo hi | wc -c".into()),
                ..Default::default()
            },
            false,
        )
        .unwrap();
        assert_eq!((c.cmd.as_str(), c.args.len()), ("/bin/sh", 2));
        assert_eq!(c.timeout_s, DEFAULT_EXEC_TIMEOUT_S);
        let c = validate_exec(
            ExecRequest {
                argv: Some(vec!["ls".into(), "-l".into()]),
                ..Default::default()
            },
            true,
        )
        .unwrap();
        assert_eq!(
            (c.cmd.as_str(), c.args.clone()),
            ("ls", vec!["-l".to_string()])
        );
        assert_eq!(c.timeout_s, 0);
        let bad = [
            ExecRequest::default(),
            ExecRequest {
                cmd: Some("x".into()),
                argv: Some(vec!["x".into()]),
                ..Default::default()
            },
            ExecRequest {
                cmd: Some(" ".into()),
                ..Default::default()
            },
            ExecRequest {
                argv: Some(vec![]),
                ..Default::default()
            },
            ExecRequest {
                cmd: Some("x".into()),
                cwd: Some("relative".into()),
                ..Default::default()
            },
            ExecRequest {
                cmd: Some("x".into()),
                user: Some("Root;rm".into()),
                ..Default::default()
            },
            ExecRequest {
                cmd: Some("x".into()),
                timeout_s: Some(0),
                ..Default::default()
            },
            ExecRequest {
                cmd: Some("x".into()),
                env: [("1BAD".to_string(), "v".to_string())].into(),
                ..Default::default()
            },
        ];
        for b in bad {
            assert!(validate_exec(b.clone(), false).is_err(), "{b:?}");
        }
    }

    #[test]
    fn create_requests() {
        assert!(validate_create(&CreateSandbox::default()).is_ok());
        let bad = [
            CreateSandbox {
                vcpus: Some(0),
                ..Default::default()
            },
            CreateSandbox {
                memory_mb: Some(64),
                ..Default::default()
            },
            CreateSandbox {
                timeout_s: Some(MAX_TIMEOUT_S + 1),
                ..Default::default()
            },
            CreateSandbox {
                template: "../../etc".into(),
                ..Default::default()
            },
            CreateSandbox {
                metadata: [(String::new(), "v".to_string())].into(),
                ..Default::default()
            },
        ];
        for b in bad {
            assert!(validate_create(&b).is_err(), "{b:?}");
        }
    }

    #[test]
    fn output_encoding() {
        let o = encode_output(b"hi\n".to_vec(), vec![], 0);
        assert_eq!((o.stdout.as_str(), o.encoding.as_str()), ("hi\n", "utf-8"));
        let o = encode_output(vec![0xff, 0xfe], b"ok".to_vec(), 3);
        assert_eq!(o.encoding, "base64");
        assert_eq!(o.stdout, "//4=");
        assert_eq!(o.stderr, "b2s=");
        assert_eq!(o.exit_code, 3);
    }
}
