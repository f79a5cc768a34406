//! The `process.Process` service: start, attach to, feed and signal processes.
//!
//! Every process is a child of envd, started with `std::process::Command` in a session of its
//! own (so signals reach its whole group). Exit statuses are collected by one reaper
//! ([`ProcessTable::start_reaper`]) that calls `waitpid(-1)` on every `SIGCHLD`: that also
//! reaps orphans re-parented to envd when it runs as PID 1. Spawning holds the table lock, so
//! the reaper never sees an exit before the pid is registered.
//!
//! Output flows with backpressure: one reader task per pipe (or PTY master) reads a chunk and
//! awaits its delivery to every subscriber's bounded channel before reading the next, so a
//! slow client slows the process instead of envd buffering megabytes. A process with no
//! subscriber (a background process whose client left) has its output read and dropped.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use warren_proto::connectrpc::{
    ConnectError, InboundStream, RequestContext, Response, ServiceRequest, ServiceResult,
    ServiceStream,
};
use warren_proto::envd::process as pb;
use warren_proto::envd::process::process_event::{self, data_event::Output};

use crate::State;

/// Bytes read from a pipe at once.
const CHUNK: usize = 32 * 1024;
/// Events buffered per subscriber before the reader waits.
const SUBSCRIBER_QUEUE: usize = 16;

/// Starts one output reader once the process is registered.
type StartReader =
    Box<dyn FnOnce(Arc<Proc>, CancellationToken) -> tokio::task::JoinHandle<()> + Send>;

/// What happens to a process, as delivered to subscribers.
#[derive(Clone, Debug)]
enum Event {
    Data(Output),
    End(process_event::EndEvent),
}

enum Input {
    Pipe(tokio::net::unix::pipe::Sender),
    Pty(Arc<AsyncFd<OwnedFd>>),
}

struct Proc {
    pid: u32,
    tag: Option<String>,
    config: pb::ProcessConfig,
    // tokio Mutex: writes to stdin await the pipe.
    input: tokio::sync::Mutex<Option<Input>>,
    pty: Option<Arc<AsyncFd<OwnedFd>>>,
    subscribers: Mutex<Vec<mpsc::Sender<Event>>>,
}

impl Proc {
    fn subscribe(&self) -> mpsc::Receiver<Event> {
        let (tx, rx) = mpsc::channel(SUBSCRIBER_QUEUE);
        self.subscribers.lock().expect("lock poisoned").push(tx);
        rx
    }

    async fn publish(&self, event: Event) {
        let subs: Vec<_> = self.subscribers.lock().expect("lock poisoned").clone();
        let mut gone = false;
        for sub in &subs {
            gone |= sub.send(event.clone()).await.is_err();
        }
        if gone {
            self.subscribers
                .lock()
                .expect("lock poisoned")
                .retain(|s| !s.is_closed());
        }
    }
}

/// The live processes and the exit statuses waiting for them.
pub struct ProcessTable {
    // std Mutex: held across fork/exec and map updates only, never across an await.
    inner: Mutex<TableInner>,
}

#[derive(Default)]
struct TableInner {
    procs: HashMap<u32, Arc<Proc>>,
    exits: HashMap<u32, oneshot::Sender<i32>>,
}

impl Default for ProcessTable {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcessTable {
    /// An empty table.
    pub fn new() -> Self {
        ProcessTable {
            inner: Mutex::new(TableInner::default()),
        }
    }

    fn reap(&self) {
        use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
        let mut inner = self.inner.lock().expect("lock poisoned");
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => deliver(&mut inner, pid.as_raw(), code),
                Ok(WaitStatus::Signaled(pid, sig, _)) => {
                    deliver(&mut inner, pid.as_raw(), -(sig as i32))
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    }

    fn get(&self, sel: &pb::ProcessSelector) -> Result<Arc<Proc>, ConnectError> {
        use warren_proto::envd::process::__buffa::oneof::process_selector::Selector;
        let inner = self.inner.lock().expect("lock poisoned");
        match &sel.selector {
            Some(Selector::Pid(pid)) => inner.procs.get(pid).cloned().ok_or_else(|| {
                ConnectError::not_found(format!("process with pid {pid} not found"))
            }),
            Some(Selector::Tag(tag)) => inner
                .procs
                .values()
                .find(|p| p.tag.as_deref() == Some(tag.as_str()))
                .cloned()
                .ok_or_else(|| {
                    ConnectError::not_found(format!("process with tag {tag:?} not found"))
                }),
            None => Err(ConnectError::invalid_argument("process selector is empty")),
        }
    }

    /// Sends SIGTERM to every process group envd started (on shutdown).
    pub fn terminate_all(&self) {
        let inner = self.inner.lock().expect("lock poisoned");
        for pid in inner.procs.keys() {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(*pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
}

fn deliver(inner: &mut TableInner, pid: i32, code: i32) {
    if let Some(tx) = inner.exits.remove(&(pid as u32)) {
        let _ = tx.send(code);
    }
}

/// Starts the task that reaps every child (ours and, as PID 1, orphans). It runs as long as
/// the runtime, holding a clone of `state`.
pub fn start_reaper(state: State) {
    let mut sigchld = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGCHLD; exits will not be seen");
            return;
        }
    };
    tokio::spawn(async move {
        loop {
            state.processes().reap();
            // A missed signal costs at most this delay.
            let _ = tokio::time::timeout(Duration::from_millis(500), sigchld.recv()).await;
        }
    });
}

/// The Connect service implementation.
pub struct ProcessService {
    state: State,
}

impl ProcessService {
    /// A service over `state`'s process table.
    pub fn new(state: State) -> Self {
        ProcessService { state }
    }
}

fn request_user(state: &State, ctx: &RequestContext) -> Result<crate::user::User, ConnectError> {
    let header = ctx.header("authorization").and_then(|v| v.to_str().ok());
    let name = crate::user::from_basic_auth(header)
        .map_err(|e| ConnectError::invalid_argument(e.to_string()))?;
    state.resolve_user(name.as_deref()).map_err(|e| match e {
        crate::user::UserError::Unknown(_) => ConnectError::permission_denied(e.to_string()),
        _ => ConnectError::invalid_argument(e.to_string()),
    })
}

fn keepalive_interval(ctx: &RequestContext) -> Duration {
    ctx.header("keepalive-ping-interval")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(30))
}

fn ev(event: process_event::Event) -> pb::ProcessEvent {
    pb::ProcessEvent {
        event: Some(event),
        ..Default::default()
    }
}

/// The event stream of one subscriber: start, data, keepalives, end.
fn event_stream(
    pid: u32,
    rx: mpsc::Receiver<Event>,
    keepalive: Duration,
) -> impl futures::Stream<Item = pb::ProcessEvent> + Send + 'static {
    let start = ev(process_event::Event::Start(Box::new(
        process_event::StartEvent {
            pid,
            ..Default::default()
        },
    )));
    let rest = futures::stream::unfold(Some(rx), move |rx| async move {
        let mut rx = rx?;
        let sleep = tokio::time::sleep(keepalive);
        tokio::pin!(sleep);
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(Event::Data(out)) => Some((
                    ev(process_event::Event::Data(Box::new(process_event::DataEvent {
                        output: Some(out),
                        ..Default::default()
                    }))),
                    Some(rx),
                )),
                Some(Event::End(end)) => Some((ev(process_event::Event::End(Box::new(end))), None)),
                None => None,
            },
            _ = &mut sleep => Some((
                ev(process_event::Event::Keepalive(Box::default())),
                Some(rx),
            )),
        }
    });
    futures::stream::once(async move { start }).chain(rest)
}

fn map_io(what: &str, e: std::io::Error) -> ConnectError {
    match e.kind() {
        std::io::ErrorKind::NotFound => ConnectError::not_found(format!("{what}: {e}")),
        std::io::ErrorKind::PermissionDenied => {
            ConnectError::permission_denied(format!("{what}: {e}"))
        }
        _ => ConnectError::internal(format!("{what}: {e}")),
    }
}

fn nonblocking(fd: &OwnedFd) -> std::io::Result<()> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let flags = fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL).map_err(std::io::Error::from)?;
    fcntl(
        fd.as_raw_fd(),
        FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
    )
    .map_err(std::io::Error::from)?;
    Ok(())
}

fn set_winsize(fd: &impl AsRawFd, cols: u32, rows: u32) -> std::io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows.min(u16::MAX as u32) as u16,
        ws_col: cols.min(u16::MAX as u32) as u16,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a valid `winsize` we own from a pointer that outlives the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

async fn pty_read(fd: &AsyncFd<OwnedFd>, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        let mut guard = fd.readable().await?;
        match guard.try_io(|inner| {
            // SAFETY: reading into a buffer we own, of the length we pass.
            let n = unsafe { libc::read(inner.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        }) {
            Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Ok(0),
            Ok(r) => return r,
            Err(_would_block) => continue,
        }
    }
}

async fn pty_write(fd: &AsyncFd<OwnedFd>, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        let mut guard = fd.writable().await?;
        match guard.try_io(|inner| {
            // SAFETY: writing from a buffer we own, of the length we pass.
            let n = unsafe { libc::write(inner.as_raw_fd(), data.as_ptr().cast(), data.len()) };
            if n < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        }) {
            Ok(r) => data = &data[r?..],
            Err(_would_block) => continue,
        }
    }
    Ok(())
}

impl ProcessService {
    fn spawn(
        &self,
        req: pb::StartRequest,
        user: crate::user::User,
    ) -> Result<(Arc<Proc>, mpsc::Receiver<Event>), ConnectError> {
        let config = req.process.as_option().cloned().unwrap_or_default();
        if config.cmd.is_empty() {
            return Err(ConnectError::invalid_argument("process cmd is empty"));
        }
        if config.cmd.contains('\0') || config.args.iter().any(|a| a.contains('\0')) {
            return Err(ConnectError::invalid_argument(
                "process cmd or args contain a NUL byte",
            ));
        }
        let cwd = match config.cwd.as_deref().filter(|c| !c.is_empty()) {
            Some(c) => crate::path::resolve(c.as_bytes(), &user.home)
                .map_err(|e| ConnectError::invalid_argument(e.to_string()))?,
            None => match self.state.default_workdir() {
                Some(d) => d.into(),
                None => user.home.clone(),
            },
        };
        if !cwd.is_dir() {
            return Err(ConnectError::invalid_argument(format!(
                "cwd {} is not a directory",
                cwd.display()
            )));
        }

        let mut cmd = std::process::Command::new(&config.cmd);
        cmd.args(&config.args).current_dir(&cwd).env_clear();
        cmd.env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("HOME", &user.home)
        .env("USER", &user.name)
        .env("LOGNAME", &user.name);
        for (k, v) in self.state.envs() {
            cmd.env(k, v);
        }
        for (k, v) in &config.envs {
            if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
                return Err(ConnectError::invalid_argument(format!(
                    "invalid env var {k:?}"
                )));
            }
            cmd.env(k, v);
        }
        let running_as = nix::unistd::getuid().as_raw();
        if user.uid != running_as {
            let groups = crate::user::groups(&user);
            let (uid, gid) = (user.uid, user.gid);
            // SAFETY: setgroups/setgid/setuid are async-signal-safe and `groups` was allocated
            // before the fork. std's own uid()/gid() would run before our hooks, after which
            // setgroups is no longer permitted, so all three happen here in order.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                        || libc::setgid(gid) != 0
                        || libc::setuid(uid) != 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }

        let pty = req.pty.as_option().cloned();
        let mut pty_master = None;
        if let Some(pty) = &pty {
            let size = pty.size.as_option().cloned().unwrap_or_default();
            let res = nix::pty::openpty(None, None).map_err(|e| map_io("openpty", e.into()))?;
            let _ = set_winsize(&res.master, size.cols.max(1), size.rows.max(1));
            let slave = res.slave;
            cmd.stdin(Stdio::from(
                slave.try_clone().map_err(|e| map_io("pty", e))?,
            ))
            .stdout(Stdio::from(
                slave.try_clone().map_err(|e| map_io("pty", e))?,
            ))
            .stderr(Stdio::from(slave));
            // SAFETY: setsid and ioctl(TIOCSCTTY) are async-signal-safe.
            unsafe {
                cmd.pre_exec(|| {
                    if libc::setsid() < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    if libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            nonblocking(&res.master).map_err(|e| map_io("pty", e))?;
            // SAFETY: the AsyncFd takes ownership of the master fd; nothing else closes it
            // while it is registered.
            let master = unsafe { AsyncFd::register(res.master) }
                .map_err(|e| map_io("pty", std::io::Error::other(e.to_string())))?;
            pty_master = Some(Arc::new(master));
        } else {
            // Unset means "stdin open" (old clients); the SDK sends false unless asked.
            let stdin_open = req.stdin.unwrap_or(true);
            cmd.stdin(if stdin_open {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
            // SAFETY: setsid is async-signal-safe.
            unsafe {
                cmd.pre_exec(|| {
                    if libc::setsid() < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }

        // Spawn under the table lock so the reaper cannot reap the child before its exit
        // channel is registered.
        let (exit_tx, exit_rx) = oneshot::channel();
        let mut table = self.state.processes().inner.lock().expect("lock poisoned");
        let mut child = cmd
            .spawn()
            .map_err(|e| map_io(&format!("start {:?}", config.cmd), e))?;
        let pid = child.id();
        table.exits.insert(pid, exit_tx);
        let mut readers: Vec<StartReader> = Vec::new();
        let input = if let Some(master) = &pty_master {
            let master = master.clone();
            readers.push(Box::new(move |p, n| tokio::spawn(read_pty(master, p, n))));
            pty_master.clone().map(Input::Pty)
        } else {
            let stdout = child.stdout.take().map(OwnedFd::from);
            let stderr = child.stderr.take().map(OwnedFd::from);
            for (fd, is_err) in [(stdout, false), (stderr, true)] {
                if let Some(fd) = fd {
                    let rx = tokio::net::unix::pipe::Receiver::from_owned_fd(fd)
                        .map_err(|e| map_io("pipe", e))?;
                    readers.push(Box::new(move |p, n| {
                        tokio::spawn(read_pipe(rx, is_err, p, n))
                    }));
                }
            }
            match child.stdin.take().map(OwnedFd::from) {
                Some(fd) => Some(Input::Pipe(
                    tokio::net::unix::pipe::Sender::from_owned_fd(fd)
                        .map_err(|e| map_io("pipe", e))?,
                )),
                None => None,
            }
        };
        let tag = req.tag.clone().filter(|t| !t.is_empty());
        let proc = Arc::new(Proc {
            pid,
            tag,
            config,
            input: tokio::sync::Mutex::new(input),
            pty: pty_master,
            subscribers: Mutex::new(Vec::new()),
        });
        let rx = proc.subscribe();
        table.procs.insert(pid, proc.clone());
        drop(table);

        let stop = CancellationToken::new();
        let handles: Vec<_> = readers
            .into_iter()
            .map(|r| r(proc.clone(), stop.clone()))
            .collect();
        let state = self.state.clone();
        let p = proc.clone();
        tokio::spawn(async move {
            let code = exit_rx.await.unwrap_or(-1);
            drain(p.pid, handles, stop).await;
            let (exit_code, status) = if code >= 0 {
                (code, format!("exit status {code}"))
            } else {
                let sig = nix::sys::signal::Signal::try_from(-code)
                    .map(|s| s.as_str().to_lowercase())
                    .unwrap_or_else(|_| format!("signal {}", -code));
                (-1, format!("signal: {}", sig.trim_start_matches("sig")))
            };
            state
                .processes()
                .inner
                .lock()
                .expect("lock poisoned")
                .procs
                .remove(&p.pid);
            p.publish(Event::End(process_event::EndEvent {
                exit_code,
                exited: code >= 0,
                status,
                error: None,
                ..Default::default()
            }))
            .await;
        });
        Ok((proc, rx))
    }
}

/// Waits for the readers to reach end-of-file after the process exited. A descendant that
/// keeps the pipe open (`sleep 100 &`) must not hold the end event back, so after a grace
/// period (200 ms when members of the process group are still alive, 2 s otherwise) the
/// readers are told to stop: each first takes what is already in its pipe, so no output
/// written before the exit is lost, then returns.
async fn drain(pid: u32, handles: Vec<tokio::task::JoinHandle<()>>, stop: CancellationToken) {
    let group_alive =
        nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid as i32), None).is_ok();
    let grace = Duration::from_millis(if group_alive { 200 } else { 2000 });
    let all = futures::future::join_all(handles);
    tokio::pin!(all);
    tokio::select! {
        _ = &mut all => return,
        _ = tokio::time::sleep(grace) => stop.cancel(),
    }
    all.await;
}

async fn read_pipe(
    mut rx: tokio::net::unix::pipe::Receiver,
    is_err: bool,
    proc: Arc<Proc>,
    stop: CancellationToken,
) {
    let mut buf = vec![0u8; CHUNK];
    let wrap = |data: Vec<u8>| {
        Event::Data(if is_err {
            Output::Stderr(data)
        } else {
            Output::Stdout(data)
        })
    };
    loop {
        tokio::select! {
            biased;
            r = rx.read(&mut buf) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => proc.publish(wrap(buf[..n].to_vec())).await,
            },
            _ = stop.cancelled() => loop {
                match rx.try_read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => proc.publish(wrap(buf[..n].to_vec())).await,
                }
            },
        }
    }
}

fn pty_try_read(fd: &AsyncFd<OwnedFd>, buf: &mut [u8]) -> isize {
    // SAFETY: reading into a buffer we own, of the length we pass; the fd is non-blocking.
    unsafe { libc::read(fd.get_ref().as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) }
}

async fn read_pty(master: Arc<AsyncFd<OwnedFd>>, proc: Arc<Proc>, stop: CancellationToken) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        tokio::select! {
            biased;
            r = pty_read(&master, &mut buf) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => proc.publish(Event::Data(Output::Pty(buf[..n].to_vec()))).await,
            },
            _ = stop.cancelled() => loop {
                let n = pty_try_read(&master, &mut buf);
                if n <= 0 {
                    return;
                }
                proc.publish(Event::Data(Output::Pty(buf[..n as usize].to_vec()))).await;
            },
        }
    }
}

async fn write_input(
    proc: &Proc,
    input: Option<warren_proto::envd::process::__buffa::oneof::process_input::Input>,
) -> Result<(), ConnectError> {
    use warren_proto::envd::process::__buffa::oneof::process_input::Input as In;
    let mut guard = proc.input.lock().await;
    let pid = proc.pid;
    let result = match (input, guard.as_mut()) {
        (None, _) => return Ok(()),
        (Some(In::Stdin(data)), Some(Input::Pipe(tx))) => tx.write_all(&data).await,
        (Some(In::Pty(data)), Some(Input::Pty(fd)))
        | (Some(In::Stdin(data)), Some(Input::Pty(fd))) => pty_write(fd, &data).await,
        (Some(In::Pty(_)), Some(Input::Pipe(_))) => {
            return Err(ConnectError::failed_precondition(format!(
                "process {pid} has no pty"
            )));
        }
        (Some(_), None) => {
            return Err(ConnectError::failed_precondition(format!(
                "stdin of process {pid} is closed or was not requested"
            )));
        }
    };
    result.map_err(|e| ConnectError::failed_precondition(format!("write to process {pid}: {e}")))
}

fn selector(
    sel: &buffa::MessageField<pb::ProcessSelector, buffa::Inline<pb::ProcessSelector>>,
) -> Result<pb::ProcessSelector, ConnectError> {
    sel.as_option()
        .cloned()
        .ok_or_else(|| ConnectError::invalid_argument("process selector is missing"))
}

use warren_proto::buffa;

impl pb::Process for ProcessService {
    async fn list(
        &self,
        _ctx: RequestContext,
        _request: ServiceRequest<'_, pb::ListRequest>,
    ) -> ServiceResult<pb::ListResponse> {
        let inner = self.state.processes().inner.lock().expect("lock poisoned");
        let processes = inner
            .procs
            .values()
            .map(|p| pb::ProcessInfo {
                config: buffa::MessageField::some(p.config.clone()),
                pid: p.pid,
                tag: p.tag.clone(),
                ..Default::default()
            })
            .collect();
        Response::ok(pb::ListResponse {
            processes,
            ..Default::default()
        })
    }

    async fn connect(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, pb::ConnectRequest>,
    ) -> ServiceResult<ServiceStream<pb::ConnectResponse>> {
        let req = request.to_owned_message();
        let proc = self.state.processes().get(&selector(&req.process)?)?;
        let rx = proc.subscribe();
        let stream = event_stream(proc.pid, rx, keepalive_interval(&ctx)).map(|e| {
            Ok(pb::ConnectResponse {
                event: buffa::MessageField::some(e),
                ..Default::default()
            })
        });
        Ok(Response::new(Box::pin(stream) as ServiceStream<_>))
    }

    async fn start(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, pb::StartRequest>,
    ) -> ServiceResult<ServiceStream<pb::StartResponse>> {
        let req = request.to_owned_message();
        let user = request_user(&self.state, &ctx)?;
        let (proc, rx) = self.spawn(req, user)?;
        let stream = event_stream(proc.pid, rx, keepalive_interval(&ctx)).map(|e| {
            Ok(pb::StartResponse {
                event: buffa::MessageField::some(e),
                ..Default::default()
            })
        });
        Ok(Response::new(Box::pin(stream) as ServiceStream<_>))
    }

    async fn update(
        &self,
        _ctx: RequestContext,
        request: ServiceRequest<'_, pb::UpdateRequest>,
    ) -> ServiceResult<pb::UpdateResponse> {
        let req = request.to_owned_message();
        let proc = self.state.processes().get(&selector(&req.process)?)?;
        if let Some(pty) = req.pty.as_option() {
            let Some(master) = &proc.pty else {
                return Err(ConnectError::failed_precondition(format!(
                    "process {} has no pty",
                    proc.pid
                )));
            };
            let size = pty.size.as_option().cloned().unwrap_or_default();
            if size.cols == 0 || size.rows == 0 {
                return Err(ConnectError::invalid_argument(
                    "pty size must be at least 1x1",
                ));
            }
            set_winsize(master.get_ref(), size.cols, size.rows)
                .map_err(|e| ConnectError::internal(format!("resize pty of {}: {e}", proc.pid)))?;
        }
        Response::ok(pb::UpdateResponse::default())
    }

    async fn stream_input(
        &self,
        _ctx: RequestContext,
        mut requests: InboundStream<pb::StreamInputRequest>,
    ) -> ServiceResult<pb::StreamInputResponse> {
        use warren_proto::envd::process::__buffa::oneof::stream_input_request::Event as E;
        let mut proc: Option<Arc<Proc>> = None;
        while let Some(msg) = requests.next().await {
            let msg = msg?.to_owned_message();
            match msg.event {
                Some(E::Start(start)) => {
                    proc = Some(self.state.processes().get(&selector(&start.process)?)?);
                }
                Some(E::Data(data)) => {
                    let Some(p) = &proc else {
                        return Err(ConnectError::failed_precondition(
                            "stream input data before the start event",
                        ));
                    };
                    let input = data.input.as_option().and_then(|i| i.input.clone());
                    write_input(p, input).await?;
                }
                Some(E::Keepalive(_)) | None => {}
            }
        }
        Response::ok(pb::StreamInputResponse::default())
    }

    async fn send_input(
        &self,
        _ctx: RequestContext,
        request: ServiceRequest<'_, pb::SendInputRequest>,
    ) -> ServiceResult<pb::SendInputResponse> {
        let req = request.to_owned_message();
        let proc = self.state.processes().get(&selector(&req.process)?)?;
        let input = req.input.as_option().and_then(|i| i.input.clone());
        write_input(&proc, input).await?;
        Response::ok(pb::SendInputResponse::default())
    }

    async fn send_signal(
        &self,
        _ctx: RequestContext,
        request: ServiceRequest<'_, pb::SendSignalRequest>,
    ) -> ServiceResult<pb::SendSignalResponse> {
        use nix::sys::signal::Signal as S;
        let req = request.to_owned_message();
        let proc = self.state.processes().get(&selector(&req.process)?)?;
        let sig = match req.signal.as_known() {
            Some(pb::Signal::SIGNAL_SIGKILL) => S::SIGKILL,
            Some(pb::Signal::SIGNAL_SIGTERM) => S::SIGTERM,
            _ => {
                return Err(ConnectError::invalid_argument(format!(
                    "unsupported signal {}",
                    req.signal.to_i32()
                )));
            }
        };
        let pid = nix::unistd::Pid::from_raw(proc.pid as i32);
        // The process leads its own session: signal the whole group, then the leader in case
        // it left the group.
        let _ = nix::sys::signal::killpg(pid, sig);
        let _ = nix::sys::signal::kill(pid, sig);
        Response::ok(pb::SendSignalResponse::default())
    }

    async fn close_stdin(
        &self,
        _ctx: RequestContext,
        request: ServiceRequest<'_, pb::CloseStdinRequest>,
    ) -> ServiceResult<pb::CloseStdinResponse> {
        let req = request.to_owned_message();
        let proc = self.state.processes().get(&selector(&req.process)?)?;
        let mut input = proc.input.lock().await;
        match input.as_ref() {
            Some(Input::Pty(fd)) => {
                // A terminal has no end of file of its own: send the EOF character.
                pty_write(fd, b"\x04").await.map_err(|e| {
                    ConnectError::failed_precondition(format!("close stdin of {}: {e}", proc.pid))
                })?;
            }
            _ => *input = None,
        }
        Response::ok(pb::CloseStdinResponse::default())
    }
}
