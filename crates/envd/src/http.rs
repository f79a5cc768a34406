//! Plain HTTP routes of envd: `/health`, `/files`, `/init`, `/envs`, `/metrics`, and the
//! access-token check in front of everything.
//!
//! Errors are JSON `{"code": <status>, "message": "…"}`, the shape the E2B SDK reads.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::extract::{FromRequest, Request, State as AxState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::TryStreamExt;
use tokio::io::AsyncWriteExt;

use crate::State;
use crate::user::User;

/// An HTTP error answered as JSON.
#[derive(Debug)]
pub struct HttpError(StatusCode, String);

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "code": self.0.as_u16(), "message": self.1 });
        (self.0, axum::Json(body)).into_response()
    }
}

fn bad(msg: impl Into<String>) -> HttpError {
    HttpError(StatusCode::BAD_REQUEST, msg.into())
}

fn io_err(path: &Path, e: std::io::Error) -> HttpError {
    let msg = format!("{}: {e}", path.display());
    let status = match e.kind() {
        std::io::ErrorKind::NotFound => StatusCode::NOT_FOUND,
        std::io::ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
        std::io::ErrorKind::NotADirectory | std::io::ErrorKind::IsADirectory => {
            StatusCode::BAD_REQUEST
        }
        _ if e.raw_os_error() == Some(libc::ENOSPC) => StatusCode::INSUFFICIENT_STORAGE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    HttpError(status, msg)
}

/// The plain HTTP routes (the Connect services are mounted as the fallback by [`crate::app`]).
pub fn routes(state: State) -> axum::Router {
    axum::Router::new()
        .route("/health", get(|| async { StatusCode::NO_CONTENT }))
        .route("/files", get(download).post(upload))
        .route("/init", post(init))
        .route("/envs", get(envs))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Refuses requests without the access token once one is set (`/health` stays open).
pub async fn require_token(AxState(state): AxState<State>, req: Request, next: Next) -> Response {
    if let Some(token) = state.token() {
        let path = req.uri().path();
        let given = req
            .headers()
            .get("x-access-token")
            .and_then(|v| v.to_str().ok());
        if path != "/health" && given != Some(token.as_str()) {
            let body = serde_json::json!({ "code": "unauthenticated", "message": "missing or invalid access token" });
            return (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
        }
    }
    next.run(req).await
}

/// Decodes a query string into raw byte values (names that are not UTF-8 survive).
fn query(raw: Option<&str>) -> HashMap<String, Vec<u8>> {
    let mut out = HashMap::new();
    for pair in raw.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.insert(
            String::from_utf8_lossy(&percent_decode(k)).into_owned(),
            percent_decode(v),
        );
    }
    out
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    out
}

fn request_user(
    state: &State,
    headers: &HeaderMap,
    q: &HashMap<String, Vec<u8>>,
) -> Result<User, HttpError> {
    let from_query = q
        .get("username")
        .map(|u| String::from_utf8_lossy(u).into_owned());
    let from_header = crate::user::from_basic_auth(
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    )
    .map_err(|e| bad(e.to_string()))?;
    state
        .resolve_user(from_query.or(from_header).as_deref())
        .map_err(|e| HttpError(StatusCode::UNAUTHORIZED, e.to_string()))
}

async fn download(AxState(state): AxState<State>, req: Request) -> Result<Response, HttpError> {
    let q = query(req.uri().query());
    let user = request_user(&state, req.headers(), &q)?;
    let raw = q
        .get("path")
        .ok_or_else(|| bad("query parameter path is required"))?;
    let path = crate::path::resolve(raw, &user.home).map_err(|e| bad(e.to_string()))?;
    let meta = tokio::fs::metadata(&path)
        .await
        .map_err(|e| io_err(&path, e))?;
    if meta.is_dir() {
        return Err(bad(format!("{} is a directory", path.display())));
    }
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| io_err(&path, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stream = tokio_util::io::ReaderStream::with_capacity(file, 64 * 1024);
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, meta.len().to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename={:?}",
                    name.replace(['"', '\n', '\r'], "_")
                ),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// Creates `path` and its missing parents, each new directory owned by `user`.
pub fn make_dirs(path: &Path, user: &User) -> std::io::Result<()> {
    let mut missing = Vec::new();
    let mut cur = Some(path);
    while let Some(p) = cur {
        if p.exists() {
            break;
        }
        missing.push(p.to_path_buf());
        cur = p.parent();
    }
    for dir in missing.iter().rev() {
        match std::fs::create_dir(dir) {
            Ok(()) => chown(dir, user),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn chown(path: &Path, user: &User) {
    if nix::unistd::getuid().is_root() {
        let _ = std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid));
    }
}

fn written(path: &Path) -> serde_json::Value {
    serde_json::json!({
        "name": path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        "type": "file",
        "path": path.to_string_lossy(),
    })
}

async fn write_stream<S, E>(path: &Path, user: &User, mut body: S) -> Result<(), HttpError>
where
    S: futures::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    if let Ok(m) = tokio::fs::metadata(path).await
        && m.is_dir()
    {
        return Err(bad(format!("{} is a directory", path.display())));
    }
    if let Some(parent) = path.parent() {
        let (p, u) = (parent.to_path_buf(), user.clone());
        tokio::task::spawn_blocking(move || make_dirs(&p, &u))
            .await
            .map_err(|e| HttpError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
            .map_err(|e| io_err(parent, e))?;
    }
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(|e| io_err(path, e))?;
    chown(path, user);
    let result = async {
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| bad(format!("reading upload body: {e}")))?
        {
            file.write_all(&chunk).await.map_err(|e| io_err(path, e))?;
        }
        file.flush().await.map_err(|e| io_err(path, e))
    }
    .await;
    if result.is_err() {
        // A half-written file helps nobody (and may hold the space that ran out).
        let _ = tokio::fs::remove_file(path).await;
    }
    result
}

async fn upload(AxState(state): AxState<State>, req: Request) -> Result<Response, HttpError> {
    let q = query(req.uri().query());
    let user = request_user(&state, req.headers(), &q)?;
    let path_param = match q.get("path") {
        Some(raw) => Some(crate::path::resolve(raw, &user.home).map_err(|e| bad(e.to_string()))?),
        None => None,
    };
    let ctype = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    if req
        .headers()
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| v != "identity")
    {
        return Err(HttpError(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "compressed uploads are not supported".into(),
        ));
    }
    let mut results = Vec::new();
    if ctype.starts_with("multipart/form-data") {
        let mut mp = axum::extract::Multipart::from_request(req, &())
            .await
            .map_err(|e| bad(format!("invalid multipart body: {e}")))?;
        let mut count = 0;
        while let Some(field) = mp
            .next_field()
            .await
            .map_err(|e| bad(format!("invalid multipart body: {e}")))?
        {
            count += 1;
            let target: PathBuf = match (&path_param, field.file_name()) {
                (Some(p), _) if count == 1 => p.clone(),
                (_, Some(name)) if !name.is_empty() => {
                    crate::path::resolve(name.as_bytes(), &user.home)
                        .map_err(|e| bad(e.to_string()))?
                }
                _ => return Err(bad("multipart part has no file name and no path parameter")),
            };
            write_stream(&target, &user, field).await?;
            results.push(written(&target));
        }
    } else {
        let target = path_param.ok_or_else(|| bad("query parameter path is required"))?;
        write_stream(&target, &user, req.into_body().into_data_stream()).await?;
        results.push(written(&target));
    }
    Ok(axum::Json(results).into_response())
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct InitBody {
    env_vars: Option<HashMap<String, String>>,
    access_token: Option<String>,
    timestamp: Option<String>,
    default_user: Option<String>,
    default_workdir: Option<String>,
}

async fn init(
    AxState(state): AxState<State>,
    body: axum::body::Bytes,
) -> Result<StatusCode, HttpError> {
    let body: InitBody = if body.is_empty() {
        InitBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| bad(format!("invalid /init body: {e}")))?
    };
    if let Some(user) = &body.default_user {
        crate::user::lookup(user).map_err(|e| bad(e.to_string()))?;
        *state.inner.default_user.write().expect("lock poisoned") = Some(user.clone());
    }
    if let Some(dir) = body.default_workdir.filter(|d| !d.is_empty()) {
        *state.inner.default_workdir.write().expect("lock poisoned") = Some(dir);
    }
    if let Some(envs) = body.env_vars {
        state
            .inner
            .envs
            .write()
            .expect("lock poisoned")
            .extend(envs);
    }
    if let Some(token) = body.access_token {
        *state.inner.access_token.write().expect("lock poisoned") =
            (!token.is_empty()).then_some(token);
    }
    if let (true, Some(ts)) = (state.inner.set_clock, body.timestamp)
        && let Ok(t) = chrono::DateTime::parse_from_rfc3339(&ts)
    {
        let ts = libc::timespec {
            tv_sec: t.timestamp(),
            tv_nsec: t.timestamp_subsec_nanos() as _,
        };
        // SAFETY: clock_settime reads a valid timespec we own.
        if unsafe { libc::clock_settime(libc::CLOCK_REALTIME, &ts) } != 0 {
            let e = std::io::Error::last_os_error();
            tracing::warn!(error = %e, "cannot set the clock from /init");
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn envs(AxState(state): AxState<State>) -> axum::Json<HashMap<String, String>> {
    axum::Json(state.envs())
}

fn cpu_times() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let idle = v.get(3)? + v.get(4).copied().unwrap_or(0);
    Some((v.iter().sum(), idle))
}

async fn metrics() -> Result<axum::Json<serde_json::Value>, HttpError> {
    let a = cpu_times();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let b = cpu_times();
    let cpu_used_pct = match (a, b) {
        (Some((t1, i1)), Some((t2, i2))) if t2 > t1 => {
            100.0 * (1.0 - (i2 - i1) as f64 / (t2 - t1) as f64)
        }
        _ => 0.0,
    };
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| {
        meminfo
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    let (mem_total, mem_avail) = (field("MemTotal:"), field("MemAvailable:"));
    let (disk_total, disk_used) = match nix::sys::statvfs::statvfs(OsStr::from_bytes(b"/")) {
        Ok(s) => {
            let f = s.fragment_size();
            (s.blocks() * f, (s.blocks() - s.blocks_free()) * f)
        }
        Err(_) => (0, 0),
    };
    Ok(axum::Json(serde_json::json!({
        "ts": chrono::Utc::now().timestamp(),
        "cpu_count": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "cpu_used_pct": (cpu_used_pct * 100.0).round() / 100.0,
        "mem_total": mem_total,
        "mem_used": mem_total.saturating_sub(mem_avail),
        "disk_total": disk_total,
        "disk_used": disk_used,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_queries_to_bytes() {
        let q = query(Some("path=%2Ftmp%2Fa+b%FF&username=root&x=%zz&y=%4"));
        assert_eq!(q["path"], b"/tmp/a b\xff");
        assert_eq!(q["username"], b"root");
        assert_eq!(q["x"], b"%zz");
        assert_eq!(q["y"], b"%4");
    }
}
