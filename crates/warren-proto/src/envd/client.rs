//! A typed client for one running envd: processes (start, attach, stdin, signals, list),
//! files (download and upload over `/files`) and health.
//!
//! The host agent uses it for exec and file transfer inside sandboxes. Connect calls use the
//! binary proto codec over HTTP/1.1 or h2c; `/files` uses plain HTTP.
//!
//! ```no_run
//! # async fn demo() -> Result<(), warren_proto::envd::client::ClientError> {
//! use warren_proto::envd::client::{Command, EnvdClient};
//! let envd = EnvdClient::new("http://10.11.0.2:49983")?;
//! envd.health().await?;
//! let out = envd.run(Command::shell("echo hi")).await?;
//! assert_eq!(out.exit_code, 0);
//! envd.write_file("/tmp/a.txt", b"data".to_vec(), None).await?;
//! let bytes = envd.read_file("/tmp/a.txt", None).await?;
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::pin::Pin;

use base64::Engine as _;
use bytes::Bytes;
use connectrpc::client::{CallOptions, ClientConfig, HttpClient};
use futures::Stream;

use crate::envd::process as pb;
use crate::envd::process::process_event;

/// Errors of [`EnvdClient`] calls.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The base URL does not parse.
    #[error("invalid envd url {url:?}: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// envd answered a Connect call with an error (its code tells which: not_found, ...).
    #[error("envd rpc {call}: {source}")]
    Rpc {
        /// The RPC called.
        call: &'static str,
        /// The Connect error.
        #[source]
        source: connectrpc::ConnectError,
    },
    /// envd answered a plain HTTP call with an error status.
    #[error("envd {call} answered {status}: {message}")]
    Http {
        /// The route called.
        call: &'static str,
        /// The HTTP status.
        status: u16,
        /// The message of the error body.
        message: String,
    },
    /// The connection failed.
    #[error("envd {call}: {source}")]
    Transport {
        /// The route called.
        call: &'static str,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The stream did not follow the protocol (e.g. no start event first).
    #[error("envd {call}: protocol violation: {reason}")]
    Protocol {
        /// The RPC called.
        call: &'static str,
        /// What was wrong.
        reason: String,
    },
}

/// What to run: the fields of the protocol's `StartRequest`.
#[derive(Debug, Clone, Default)]
pub struct Command {
    /// Program to execute (looked up in `PATH`).
    pub cmd: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub envs: HashMap<String, String>,
    /// Working directory (default: the user's home).
    pub cwd: Option<String>,
    /// User to run as (default: envd's default user).
    pub user: Option<String>,
    /// Tag to find the process by later.
    pub tag: Option<String>,
    /// Keep stdin open for [`EnvdClient::send_stdin`] (otherwise it is `/dev/null`).
    pub stdin: bool,
    /// Run in a pseudo-terminal of this size (cols, rows).
    pub pty: Option<(u32, u32)>,
}

impl Command {
    /// `/bin/bash -l -c script`, the way the E2B SDK runs commands.
    pub fn shell(script: impl Into<String>) -> Self {
        Command {
            cmd: "/bin/bash".into(),
            args: vec!["-l".into(), "-c".into(), script.into()],
            ..Default::default()
        }
    }

    /// A program with arguments, run directly.
    pub fn new(cmd: impl Into<String>, args: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Command {
            cmd: cmd.into(),
            args: args.into_iter().map(Into::into).collect(),
            ..Default::default()
        }
    }
}

/// One event of a running process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessEvent {
    /// The process started (always the first event).
    Start {
        /// Its pid inside the sandbox.
        pid: u32,
    },
    /// A chunk of standard output.
    Stdout(Bytes),
    /// A chunk of standard error.
    Stderr(Bytes),
    /// A chunk of terminal output (PTY mode).
    Pty(Bytes),
    /// The process ended (always the last event).
    End {
        /// Exit code (-1 when killed by a signal).
        exit_code: i32,
        /// Whether it exited by itself (false: killed by a signal).
        exited: bool,
        /// Human-readable status, e.g. `exit status 1` or `signal: killed`.
        status: String,
        /// An error envd reports about the process, if any.
        error: Option<String>,
    },
}

/// The events of one process, in order; ends after [`ProcessEvent::End`].
pub type ProcessEvents = Pin<Box<dyn Stream<Item = Result<ProcessEvent, ClientError>> + Send>>;

/// The collected result of [`EnvdClient::run`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// Pid the process had.
    pub pid: u32,
    /// Exit code (-1 when killed by a signal).
    pub exit_code: i32,
    /// All standard output (or terminal output in PTY mode).
    pub stdout: Vec<u8>,
    /// All standard error.
    pub stderr: Vec<u8>,
    /// Status text from envd.
    pub status: String,
}

/// A process to address: by pid or by tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// By pid.
    Pid(u32),
    /// By the tag given at start.
    Tag(String),
}

/// Signals envd can deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM.
    Term,
    /// SIGKILL.
    Kill,
}

/// Client of one envd. Cheap to clone.
#[derive(Clone)]
pub struct EnvdClient {
    base: String,
    rpc: pb::ProcessClient<HttpClient>,
    http: reqwest::Client,
    access_token: Option<String>,
    /// Sent on every request (e.g. a proxy's own `Authorization`).
    headers: http::HeaderMap,
    /// Where the `Basic user:` naming envd's user goes: `authorization`, or another header
    /// when a proxy in between uses `authorization` for itself.
    user_header: http::HeaderName,
}

/// Turns a `Start` or `Connect` response stream (two message types with the same `event`
/// field) into [`ProcessEvents`]: keepalives dropped, the stream ends after the end event.
/// A macro rather than a generic fn: connectrpc's `message::<M>()` bounds go through GATs
/// that a generic helper cannot name without losing `Send`.
macro_rules! process_events {
    ($stream:expr, $resp:ty, $call:literal) => {
        Box::pin(futures::stream::unfold(Some($stream), |s| async move {
            let mut s = s?;
            loop {
                match s.message::<$resp>().await {
                    // Keepalives carry nothing for the caller.
                    Ok(Some(m)) => {
                        if let Some(ev) = convert(m.to_owned_message().event.into_option()) {
                            let done = matches!(ev, ProcessEvent::End { .. });
                            return Some((Ok(ev), if done { None } else { Some(s) }));
                        }
                    }
                    Ok(None) => return None,
                    Err(e) => {
                        return Some((
                            Err(ClientError::Rpc {
                                call: $call,
                                source: e,
                            }),
                            None,
                        ));
                    }
                }
            }
        }))
    };
}

fn rpc_err(call: &'static str) -> impl FnOnce(connectrpc::ConnectError) -> ClientError {
    move |source| ClientError::Rpc { call, source }
}

fn basic_auth(user: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:"))
    )
}

impl EnvdClient {
    /// A client for the envd at `base_url` (e.g. `http://10.11.0.2:49983`).
    pub fn new(base_url: &str) -> Result<Self, ClientError> {
        Self::build(base_url, None)
    }

    /// A client that sends `token` as `X-Access-Token` on every request.
    pub fn with_access_token(
        base_url: &str,
        token: impl Into<String>,
    ) -> Result<Self, ClientError> {
        Self::build(base_url, Some(token.into()))
    }

    /// A client for an envd reached through a proxy: `base_url` may carry a path prefix
    /// (e.g. `http://agent:7000/proxy/sb-1/49983`), `headers` go on every request (the
    /// proxy's `Authorization`, envd's `X-Access-Token`), and the `Basic user:` that picks
    /// envd's user is sent in `user_header` (e.g. `x-warren-forwarded-authorization`, which
    /// Warren's agent proxy restores as `Authorization`).
    pub fn via_proxy(
        base_url: &str,
        headers: http::HeaderMap,
        user_header: http::HeaderName,
    ) -> Result<Self, ClientError> {
        let mut c = Self::build(base_url, None)?;
        let uri: http::Uri =
            c.base
                .parse()
                .map_err(|e: http::uri::InvalidUri| ClientError::InvalidUrl {
                    url: base_url.to_owned(),
                    reason: e.to_string(),
                })?;
        let config = ClientConfig::new(uri).with_default_headers(headers.clone());
        c.rpc = pb::ProcessClient::new(HttpClient::plaintext(), config);
        c.headers = headers;
        c.user_header = user_header;
        Ok(c)
    }

    fn build(base_url: &str, access_token: Option<String>) -> Result<Self, ClientError> {
        let base = base_url.trim_end_matches('/').to_owned();
        let invalid = |reason: String| ClientError::InvalidUrl {
            url: base_url.to_owned(),
            reason,
        };
        let uri: http::Uri = base
            .parse()
            .map_err(|e: http::uri::InvalidUri| invalid(e.to_string()))?;
        if uri.scheme_str() != Some("http") {
            return Err(invalid("only http:// is supported".into()));
        }
        let mut config = ClientConfig::new(uri);
        if let Some(t) = &access_token {
            config = config.with_default_header("x-access-token", t.as_str());
        }
        let rpc = pb::ProcessClient::new(HttpClient::plaintext(), config);
        let http = reqwest::Client::builder()
            .build()
            .map_err(|e| invalid(e.to_string()))?;
        Ok(EnvdClient {
            base,
            rpc,
            http,
            access_token,
            headers: http::HeaderMap::new(),
            user_header: http::header::AUTHORIZATION,
        })
    }

    fn options(&self, user: Option<&str>) -> CallOptions {
        let opts = CallOptions::default();
        match user {
            Some(u) => opts.with_header(self.user_header.clone(), basic_auth(u)),
            None => opts,
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .headers(self.headers.clone());
        match &self.access_token {
            Some(t) => req.header("x-access-token", t),
            None => req,
        }
    }

    /// `GET /health`: Ok when envd answers 204.
    pub async fn health(&self) -> Result<(), ClientError> {
        let r = self
            .request(reqwest::Method::GET, "/health")
            .send()
            .await
            .map_err(|source| ClientError::Transport {
                call: "/health",
                source,
            })?;
        check("/health", r).await.map(drop)
    }

    /// `POST /init` with the default user and working directory of later requests (relative
    /// paths and processes without a user use them), e.g. E2B's `user` and `/home/user`.
    pub async fn set_defaults(
        &self,
        default_user: Option<&str>,
        default_workdir: Option<&str>,
    ) -> Result<(), ClientError> {
        let mut body = serde_json::Map::new();
        if let Some(u) = default_user {
            body.insert("defaultUser".into(), u.into());
        }
        if let Some(w) = default_workdir {
            body.insert("defaultWorkdir".into(), w.into());
        }
        let r = self
            .request(reqwest::Method::POST, "/init")
            .json(&body)
            .send()
            .await
            .map_err(|source| ClientError::Transport {
                call: "/init",
                source,
            })?;
        check("/init", r).await.map(drop)
    }

    /// Starts a process and returns its events (start, output chunks, end).
    pub async fn start(&self, command: Command) -> Result<ProcessEvents, ClientError> {
        let req = pb::StartRequest {
            process: buffa::MessageField::some(pb::ProcessConfig {
                cmd: command.cmd,
                args: command.args,
                envs: command.envs.into_iter().collect(),
                cwd: command.cwd,
                ..Default::default()
            }),
            pty: match command.pty {
                Some((cols, rows)) => buffa::MessageField::some(pb::PTY {
                    size: buffa::MessageField::some(pb::pty::Size {
                        cols,
                        rows,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                None => buffa::MessageField::none(),
            },
            tag: command.tag,
            stdin: Some(command.stdin),
            ..Default::default()
        };
        let stream = self
            .rpc
            .start_with_options(req, self.options(command.user.as_deref()))
            .await
            .map_err(rpc_err("Start"))?;
        Ok(process_events!(stream, pb::StartResponse, "Start"))
    }

    /// Re-attaches to a running process: its events from now on (a start event first).
    pub async fn connect(&self, process: Selector) -> Result<ProcessEvents, ClientError> {
        let req = pb::ConnectRequest {
            process: buffa::MessageField::some(selector(process)),
            ..Default::default()
        };
        let stream = self.rpc.connect(req).await.map_err(rpc_err("Connect"))?;
        Ok(process_events!(stream, pb::ConnectResponse, "Connect"))
    }

    /// Runs a command to the end, collecting its output.
    pub async fn run(&self, command: Command) -> Result<Output, ClientError> {
        use futures::StreamExt;
        let mut events = self.start(command).await?;
        let mut out = Output::default();
        while let Some(ev) = events.next().await {
            match ev? {
                ProcessEvent::Start { pid } => out.pid = pid,
                ProcessEvent::Stdout(b) | ProcessEvent::Pty(b) => out.stdout.extend_from_slice(&b),
                ProcessEvent::Stderr(b) => out.stderr.extend_from_slice(&b),
                ProcessEvent::End {
                    exit_code, status, ..
                } => {
                    out.exit_code = exit_code;
                    out.status = status;
                    return Ok(out);
                }
            }
        }
        Err(ClientError::Protocol {
            call: "Start",
            reason: "stream ended without an end event".into(),
        })
    }

    /// Writes to a process's stdin (or its terminal in PTY mode).
    pub async fn send_stdin(
        &self,
        process: Selector,
        data: impl Into<Vec<u8>>,
    ) -> Result<(), ClientError> {
        use crate::envd::process::__buffa::oneof::process_input::Input;
        let req = pb::SendInputRequest {
            process: buffa::MessageField::some(selector(process)),
            input: buffa::MessageField::some(pb::ProcessInput {
                input: Some(Input::Stdin(data.into())),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.rpc
            .send_input(req)
            .await
            .map_err(rpc_err("SendInput"))?;
        Ok(())
    }

    /// Closes a process's stdin (end of file).
    pub async fn close_stdin(&self, process: Selector) -> Result<(), ClientError> {
        let req = pb::CloseStdinRequest {
            process: buffa::MessageField::some(selector(process)),
            ..Default::default()
        };
        self.rpc
            .close_stdin(req)
            .await
            .map_err(rpc_err("CloseStdin"))?;
        Ok(())
    }

    /// Sends a signal to a process (and its process group).
    pub async fn signal(&self, process: Selector, signal: Signal) -> Result<(), ClientError> {
        let sig = match signal {
            Signal::Term => pb::Signal::SIGNAL_SIGTERM,
            Signal::Kill => pb::Signal::SIGNAL_SIGKILL,
        };
        let req = pb::SendSignalRequest {
            process: buffa::MessageField::some(selector(process)),
            signal: sig.into(),
            ..Default::default()
        };
        self.rpc
            .send_signal(req)
            .await
            .map_err(rpc_err("SendSignal"))?;
        Ok(())
    }

    /// Resizes the terminal of a PTY process.
    pub async fn resize(&self, process: Selector, cols: u32, rows: u32) -> Result<(), ClientError> {
        let req = pb::UpdateRequest {
            process: buffa::MessageField::some(selector(process)),
            pty: buffa::MessageField::some(pb::PTY {
                size: buffa::MessageField::some(pb::pty::Size {
                    cols,
                    rows,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.rpc.update(req).await.map_err(rpc_err("Update"))?;
        Ok(())
    }

    /// The running processes: (pid, tag, cmd).
    pub async fn list(&self) -> Result<Vec<(u32, Option<String>, String)>, ClientError> {
        let r = self
            .rpc
            .list(pb::ListRequest::default())
            .await
            .map_err(rpc_err("List"))?;
        let list: pb::ListResponse = r.into_owned();
        Ok(list
            .processes
            .into_iter()
            .map(|p| {
                (
                    p.pid,
                    p.tag,
                    p.config.into_option().map(|c| c.cmd).unwrap_or_default(),
                )
            })
            .collect())
    }

    /// Downloads a whole file (`GET /files`). Not found is an [`ClientError::Http`] 404.
    pub async fn read_file(&self, path: &str, user: Option<&str>) -> Result<Bytes, ClientError> {
        let r = self.read_file_response(path, user).await?;
        r.bytes().await.map_err(|source| ClientError::Transport {
            call: "/files",
            source,
        })
    }

    /// Downloads a file as a stream of chunks.
    pub async fn read_file_stream(
        &self,
        path: &str,
        user: Option<&str>,
    ) -> Result<impl Stream<Item = Result<Bytes, ClientError>> + use<>, ClientError> {
        use futures::TryStreamExt;
        let r = self.read_file_response(path, user).await?;
        Ok(r.bytes_stream().map_err(|source| ClientError::Transport {
            call: "/files",
            source,
        }))
    }

    async fn read_file_response(
        &self,
        path: &str,
        user: Option<&str>,
    ) -> Result<reqwest::Response, ClientError> {
        let mut q = vec![("path", path)];
        if let Some(u) = user {
            q.push(("username", u));
        }
        let r = self
            .request(reqwest::Method::GET, "/files")
            .query(&q)
            .send()
            .await
            .map_err(|source| ClientError::Transport {
                call: "/files",
                source,
            })?;
        check("/files", r).await
    }

    /// Uploads a file (`POST /files`, octet-stream body), making parent directories; the
    /// file is owned by `user`. `data` may be bytes or a streaming [`reqwest::Body`].
    pub async fn write_file(
        &self,
        path: &str,
        data: impl Into<reqwest::Body>,
        user: Option<&str>,
    ) -> Result<(), ClientError> {
        let mut q = vec![("path", path)];
        if let Some(u) = user {
            q.push(("username", u));
        }
        let r = self
            .request(reqwest::Method::POST, "/files")
            .query(&q)
            .header("content-type", "application/octet-stream")
            .body(data)
            .send()
            .await
            .map_err(|source| ClientError::Transport {
                call: "/files",
                source,
            })?;
        check("/files", r).await.map(drop)
    }
}

async fn check(call: &'static str, r: reqwest::Response) -> Result<reqwest::Response, ClientError> {
    if r.status().is_success() {
        return Ok(r);
    }
    let status = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or(text);
    Err(ClientError::Http {
        call,
        status,
        message,
    })
}

fn selector(s: Selector) -> pb::ProcessSelector {
    use crate::envd::process::__buffa::oneof::process_selector::Selector as S;
    pb::ProcessSelector {
        selector: Some(match s {
            Selector::Pid(p) => S::Pid(p),
            Selector::Tag(t) => S::Tag(t),
        }),
        ..Default::default()
    }
}

fn convert(ev: Option<pb::ProcessEvent>) -> Option<ProcessEvent> {
    use process_event::Event as E;
    use process_event::data_event::Output as O;
    Some(match ev?.event? {
        E::Start(s) => ProcessEvent::Start { pid: s.pid },
        E::Data(d) => match d.output? {
            O::Stdout(b) => ProcessEvent::Stdout(b.into()),
            O::Stderr(b) => ProcessEvent::Stderr(b.into()),
            O::Pty(b) => ProcessEvent::Pty(b.into()),
        },
        E::End(e) => ProcessEvent::End {
            exit_code: e.exit_code,
            exited: e.exited,
            status: e.status,
            error: e.error,
        },
        E::Keepalive(_) => return None,
    })
}
