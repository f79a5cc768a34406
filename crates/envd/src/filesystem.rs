//! The `filesystem.Filesystem` service: stat, list, make, move, remove and watch.
//!
//! Paths are resolved for the request's user ([`crate::path::resolve`]). Watching uses
//! inotify through the `notify` crate; a `WatchDir` stream owns its watcher (dropped with the
//! stream), while `CreateWatcher` watchers live in [`Watchers`] until `RemoveWatcher`.

use std::collections::HashMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use notify::Watcher;
use tokio::sync::mpsc;
use warren_proto::buffa;
use warren_proto::connectrpc::{
    ConnectError, RequestContext, Response, ServiceRequest, ServiceResult, ServiceStream,
};
use warren_proto::envd::filesystem as pb;

use crate::State;

/// Watchers made by `CreateWatcher`, polled by `GetWatcherEvents`.
#[derive(Default)]
pub struct Watchers {
    // std Mutex: map lookups only.
    map: Mutex<HashMap<String, PolledWatcher>>,
}

struct PolledWatcher {
    _watcher: notify::RecommendedWatcher,
    events: Arc<Mutex<Vec<pb::FilesystemEvent>>>,
}

/// The Connect service implementation.
pub struct FilesystemService {
    state: State,
}

impl FilesystemService {
    /// A service over `state`.
    pub fn new(state: State) -> Self {
        FilesystemService { state }
    }

    fn resolve(&self, ctx: &RequestContext, raw: &str) -> Result<PathBuf, ConnectError> {
        let header = ctx.header("authorization").and_then(|v| v.to_str().ok());
        let name = crate::user::from_basic_auth(header)
            .map_err(|e| ConnectError::invalid_argument(e.to_string()))?;
        let user = self
            .state
            .resolve_user(name.as_deref())
            .map_err(|e| ConnectError::permission_denied(e.to_string()))?;
        crate::path::resolve(raw.as_bytes(), &user.home)
            .map_err(|e| ConnectError::invalid_argument(e.to_string()))
    }
}

fn io_err(path: &Path, e: std::io::Error) -> ConnectError {
    let msg = format!("{}: {e}", path.display());
    match e.kind() {
        std::io::ErrorKind::NotFound => ConnectError::not_found(msg),
        std::io::ErrorKind::AlreadyExists => ConnectError::already_exists(msg),
        std::io::ErrorKind::PermissionDenied => ConnectError::permission_denied(msg),
        std::io::ErrorKind::NotADirectory | std::io::ErrorKind::IsADirectory => {
            ConnectError::invalid_argument(msg)
        }
        _ if e.raw_os_error() == Some(libc::ENOSPC) => ConnectError::resource_exhausted(msg),
        _ => ConnectError::internal(msg),
    }
}

fn permissions_string(mode: u32, kind: pb::FileType) -> String {
    let mut s = String::with_capacity(10);
    s.push(match kind {
        pb::FileType::FILE_TYPE_DIRECTORY => 'd',
        pb::FileType::FILE_TYPE_SYMLINK => 'L',
        _ => '-',
    });
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

/// Describes `path` (not following a final symlink).
pub fn entry_info(path: &Path) -> std::io::Result<pb::EntryInfo> {
    let lmeta = std::fs::symlink_metadata(path)?;
    let is_symlink = lmeta.file_type().is_symlink();
    let (meta, target) = if is_symlink {
        let target = std::fs::read_link(path).ok();
        (std::fs::metadata(path).unwrap_or(lmeta.clone()), target)
    } else {
        (lmeta.clone(), None)
    };
    let kind = if meta.is_dir() {
        pb::FileType::FILE_TYPE_DIRECTORY
    } else if meta.is_file() {
        pb::FileType::FILE_TYPE_FILE
    } else if is_symlink {
        pb::FileType::FILE_TYPE_SYMLINK
    } else {
        pb::FileType::FILE_TYPE_UNSPECIFIED
    };
    let mode = lmeta.permissions().mode() & 0o7777;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "/".into());
    Ok(pb::EntryInfo {
        name,
        r#type: kind.into(),
        path: path.to_string_lossy().into_owned(),
        size: meta.len() as i64,
        mode,
        permissions: permissions_string(mode, kind),
        owner: crate::user::uid_name(lmeta.uid()),
        group: crate::user::gid_name(lmeta.gid()),
        modified_time: buffa::MessageField::some(
            warren_proto::buffa_types::google::protobuf::Timestamp {
                seconds: lmeta.mtime(),
                nanos: lmeta.mtime_nsec() as i32,
                ..Default::default()
            },
        ),
        symlink_target: target.map(|t| {
            let abs = if t.is_absolute() {
                t
            } else {
                path.parent().unwrap_or(Path::new("/")).join(t)
            };
            abs.to_string_lossy().into_owned()
        }),
        is_symlink,
        ..Default::default()
    })
}

fn list(dir: &Path, depth: u32, out: &mut Vec<pb::EntryInfo>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Ok(info) = entry_info(&path) else {
            continue;
        };
        let is_dir =
            info.r#type.as_known() == Some(pb::FileType::FILE_TYPE_DIRECTORY) && !info.is_symlink;
        out.push(info);
        if is_dir && depth > 1 {
            let _ = list(&path, depth - 1, out);
        }
    }
    Ok(())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ConnectError> + Send + 'static,
) -> Result<T, ConnectError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ConnectError::internal(format!("filesystem task failed: {e}")))?
}

fn event_type(kind: &notify::EventKind) -> Option<pb::EventType> {
    use notify::event::{EventKind as K, ModifyKind};
    Some(match kind {
        K::Create(_) => pb::EventType::EVENT_TYPE_CREATE,
        K::Remove(_) => pb::EventType::EVENT_TYPE_REMOVE,
        K::Modify(ModifyKind::Name(_)) => pb::EventType::EVENT_TYPE_RENAME,
        K::Modify(ModifyKind::Metadata(_)) => pb::EventType::EVENT_TYPE_CHMOD,
        K::Modify(_) => pb::EventType::EVENT_TYPE_WRITE,
        _ => return None,
    })
}

/// Starts an inotify watcher on `dir`, handing each event to `sink`.
fn watch(
    dir: &Path,
    recursive: bool,
    include_entry: bool,
    sink: impl Fn(pb::FilesystemEvent) + Send + 'static,
) -> Result<notify::RecommendedWatcher, ConnectError> {
    let meta = std::fs::metadata(dir).map_err(|e| io_err(dir, e))?;
    if !meta.is_dir() {
        return Err(ConnectError::invalid_argument(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    let root = dir.to_path_buf();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(event) = res else { return };
        let Some(kind) = event_type(&event.kind) else {
            return;
        };
        for path in &event.paths {
            let name = path
                .strip_prefix(&root)
                .unwrap_or(path)
                .to_string_lossy()
                .into_owned();
            let entry = if include_entry {
                entry_info(path).ok()
            } else {
                None
            };
            sink(pb::FilesystemEvent {
                name,
                r#type: kind.into(),
                entry: entry.into(),
                ..Default::default()
            });
        }
    })
    .map_err(|e| ConnectError::internal(format!("watch {}: {e}", dir.display())))?;
    let mode = if recursive {
        notify::RecursiveMode::Recursive
    } else {
        notify::RecursiveMode::NonRecursive
    };
    watcher
        .watch(dir, mode)
        .map_err(|e| ConnectError::internal(format!("watch {}: {e}", dir.display())))?;
    Ok(watcher)
}

impl pb::Filesystem for FilesystemService {
    async fn stat(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, pb::StatRequest>,
    ) -> ServiceResult<pb::StatResponse> {
        let path = self.resolve(&ctx, request.path)?;
        let entry = blocking(move || entry_info(&path).map_err(|e| io_err(&path, e))).await?;
        Response::ok(pb::StatResponse {
            entry: buffa::MessageField::some(entry),
            ..Default::default()
        })
    }

    async fn make_dir(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, pb::MakeDirRequest>,
    ) -> ServiceResult<pb::MakeDirResponse> {
        let path = self.resolve(&ctx, request.path)?;
        let header = ctx
            .header("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let state = self.state.clone();
        let entry = blocking(move || {
            if let Ok(m) = std::fs::metadata(&path) {
                return Err(if m.is_dir() {
                    ConnectError::already_exists(format!(
                        "directory {} already exists",
                        path.display()
                    ))
                } else {
                    ConnectError::invalid_argument(format!(
                        "{} exists and is not a directory",
                        path.display()
                    ))
                });
            }
            let user = crate::user::from_basic_auth(header.as_deref())
                .ok()
                .flatten();
            let user = state
                .resolve_user(user.as_deref())
                .map_err(|e| ConnectError::permission_denied(e.to_string()))?;
            crate::http::make_dirs(&path, &user).map_err(|e| io_err(&path, e))?;
            entry_info(&path).map_err(|e| io_err(&path, e))
        })
        .await?;
        Response::ok(pb::MakeDirResponse {
            entry: buffa::MessageField::some(entry),
            ..Default::default()
        })
    }

    async fn r#move(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, pb::MoveRequest>,
    ) -> ServiceResult<pb::MoveResponse> {
        let src = self.resolve(&ctx, request.source)?;
        let dst = self.resolve(&ctx, request.destination)?;
        let entry = blocking(move || {
            std::fs::symlink_metadata(&src).map_err(|e| io_err(&src, e))?;
            if let Some(parent) = dst.parent() {
                std::fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
            }
            std::fs::rename(&src, &dst).map_err(|e| io_err(&src, e))?;
            entry_info(&dst).map_err(|e| io_err(&dst, e))
        })
        .await?;
        Response::ok(pb::MoveResponse {
            entry: buffa::MessageField::some(entry),
            ..Default::default()
        })
    }

    async fn list_dir(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, pb::ListDirRequest>,
    ) -> ServiceResult<pb::ListDirResponse> {
        let path = self.resolve(&ctx, request.path)?;
        let depth = request.depth.max(1);
        let entries = blocking(move || {
            let meta = std::fs::metadata(&path).map_err(|e| io_err(&path, e))?;
            if !meta.is_dir() {
                return Err(ConnectError::invalid_argument(format!(
                    "{} is not a directory",
                    path.display()
                )));
            }
            let mut out = Vec::new();
            list(&path, depth, &mut out).map_err(|e| io_err(&path, e))?;
            Ok(out)
        })
        .await?;
        Response::ok(pb::ListDirResponse {
            entries,
            ..Default::default()
        })
    }

    async fn remove(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, pb::RemoveRequest>,
    ) -> ServiceResult<pb::RemoveResponse> {
        let path = self.resolve(&ctx, request.path)?;
        blocking(move || {
            // Like E2B's envd (`os.RemoveAll`): removing what is not there succeeds; the SDK's
            // own tests clean up with it.
            let meta = match std::fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(io_err(&path, e)),
            };
            match if meta.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            } {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(&path, e)),
                _ => Ok(()),
            }
        })
        .await?;
        Response::ok(pb::RemoveResponse::default())
    }

    async fn watch_dir(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, pb::WatchDirRequest>,
    ) -> ServiceResult<ServiceStream<pb::WatchDirResponse>> {
        use warren_proto::envd::filesystem::watch_dir_response::Event as E;
        let path = self.resolve(&ctx, request.path)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let watcher = watch(&path, request.recursive, request.include_entry, move |e| {
            let _ = tx.send(e);
        })?;
        let keepalive = ctx
            .header("keepalive-ping-interval")
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .filter(|s| *s > 0)
            .map(Duration::from_secs)
            .unwrap_or(Duration::from_secs(30));
        let start = pb::WatchDirResponse {
            event: Some(E::Start(Box::default())),
            ..Default::default()
        };
        let rest = futures::stream::unfold((rx, watcher), move |(mut rx, w)| async move {
            let msg = tokio::select! {
                e = rx.recv() => E::Filesystem(Box::new(e?)),
                _ = tokio::time::sleep(keepalive) => E::Keepalive(Box::default()),
            };
            Some((
                pb::WatchDirResponse {
                    event: Some(msg),
                    ..Default::default()
                },
                (rx, w),
            ))
        });
        let stream = futures::stream::once(async move { start })
            .chain(rest)
            .map(Ok);
        Ok(Response::new(Box::pin(stream) as ServiceStream<_>))
    }

    async fn create_watcher(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, pb::CreateWatcherRequest>,
    ) -> ServiceResult<pb::CreateWatcherResponse> {
        let path = self.resolve(&ctx, request.path)?;
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        let watcher = watch(&path, request.recursive, request.include_entry, move |e| {
            sink.lock().expect("lock poisoned").push(e);
        })?;
        let id = format!("{:016x}", rand_id());
        self.state
            .watchers()
            .map
            .lock()
            .expect("lock poisoned")
            .insert(
                id.clone(),
                PolledWatcher {
                    _watcher: watcher,
                    events,
                },
            );
        Response::ok(pb::CreateWatcherResponse {
            watcher_id: id,
            ..Default::default()
        })
    }

    async fn get_watcher_events(
        &self,
        _ctx: RequestContext,
        request: ServiceRequest<'_, pb::GetWatcherEventsRequest>,
    ) -> ServiceResult<pb::GetWatcherEventsResponse> {
        let map = self.state.watchers().map.lock().expect("lock poisoned");
        let w = map.get(request.watcher_id).ok_or_else(|| {
            ConnectError::not_found(format!("watcher {:?} not found", request.watcher_id))
        })?;
        let events = std::mem::take(&mut *w.events.lock().expect("lock poisoned"));
        Response::ok(pb::GetWatcherEventsResponse {
            events,
            ..Default::default()
        })
    }

    async fn remove_watcher(
        &self,
        _ctx: RequestContext,
        request: ServiceRequest<'_, pb::RemoveWatcherRequest>,
    ) -> ServiceResult<pb::RemoveWatcherResponse> {
        let removed = self
            .state
            .watchers()
            .map
            .lock()
            .expect("lock poisoned")
            .remove(request.watcher_id);
        if removed.is_none() {
            return Err(ConnectError::not_found(format!(
                "watcher {:?} not found",
                request.watcher_id
            )));
        }
        Response::ok(pb::RemoveWatcherResponse::default())
    }
}

fn rand_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_strings() {
        let check = |mode, kind, want: &str| assert_eq!(permissions_string(mode, kind), want);
        check(0o644, pb::FileType::FILE_TYPE_FILE, "-rw-r--r--");
        check(0o755, pb::FileType::FILE_TYPE_DIRECTORY, "drwxr-xr-x");
        check(0o000, pb::FileType::FILE_TYPE_FILE, "----------");
    }
}
