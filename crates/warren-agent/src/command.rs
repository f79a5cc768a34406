//! The one way the agent runs external commands (`mkfs.ext4`, `ip`, `nft`, `runsc`, ...).
//!
//! Why one helper: every command gets the same treatment (house style rule 9): its argv is
//! logged at debug before it runs, it has a timeout (a hung `runsc` or `mkfs` must not hang the
//! agent), and a failure is a typed [`CommandError`] carrying the command line, the exit code and
//! the (trimmed) stderr, so callers never parse message text.
//!
//! A command runs in its own process group; on timeout the whole group is killed. Output is
//! read until the pipes close, so a command that leaves a daemon holding its stdout/stderr
//! must have that daemon's output redirected.
//!
//! [`Cmd::run`] blocks the calling thread (use it from `spawn_blocking` or plain threads);
//! [`Cmd::run_async`] is the tokio version for async callers.

use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Default timeout of a command when none is set.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Most stderr bytes kept in an error (the tail, where the reason usually is).
const STDERR_KEEP: usize = 4096;

/// Errors of running an external command.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The program could not be started (not installed, not executable).
    #[error("cannot start `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The program ran longer than its timeout and was killed.
    #[error("`{command}` timed out after {timeout:?}")]
    Timeout {
        /// The command line.
        command: String,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// The program exited unsuccessfully.
    #[error("`{command}` failed with {}: {stderr}", exit_description(*.code))]
    Failed {
        /// The command line.
        command: String,
        /// The exit code, `None` if killed by a signal.
        code: Option<i32>,
        /// The end of its standard error, trimmed.
        stderr: String,
    },
    /// Talking to the child's pipes failed.
    #[error("i/o with `{command}`: {source}")]
    Io {
        /// The command line.
        command: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

fn exit_description(code: Option<i32>) -> String {
    match code {
        Some(c) => format!("exit code {c}"),
        None => "a signal".to_string(),
    }
}

impl CommandError {
    /// The exit code if the command ran and failed with one.
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            CommandError::Failed { code, .. } => *code,
            _ => None,
        }
    }
}

/// The captured output of a successful command.
#[derive(Debug, Clone, Default)]
pub struct CmdOutput {
    /// Standard output bytes.
    pub stdout: Vec<u8>,
    /// Standard error bytes (commands may warn on success).
    pub stderr: Vec<u8>,
}

impl CmdOutput {
    /// Standard output as (lossy) UTF-8.
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// An external command to run: program, arguments, optional stdin bytes and a timeout.
#[derive(Debug, Clone)]
pub struct Cmd {
    program: OsString,
    args: Vec<OsString>,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
    pre_exec: Option<fn() -> std::io::Result<()>>,
}

impl Cmd {
    /// A command running `program` (looked up in `PATH`) with the default timeout.
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        Cmd {
            program: program.as_ref().to_os_string(),
            args: Vec::new(),
            stdin: None,
            timeout: DEFAULT_TIMEOUT,
            pre_exec: None,
        }
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    /// Appends arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// Bytes written to the command's standard input (closed afterwards).
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    /// Sets the timeout after which the command is killed.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Runs `hook` in the child between fork and exec (e.g.
    /// [`crate::net::gvisor::hide_proc_sys_net`] for `runsc run`/`restore`).
    ///
    /// # Safety
    /// `hook` runs in a forked child of a multi-threaded process: it must only make
    /// async-signal-safe calls (no allocation, no locks), see `CommandExt::pre_exec`.
    pub unsafe fn pre_exec(mut self, hook: fn() -> std::io::Result<()>) -> Self {
        self.pre_exec = Some(hook);
        self
    }

    /// The command line as one display string (for logs and errors).
    pub fn display(&self) -> String {
        let mut s = self.program.to_string_lossy().into_owned();
        for a in &self.args {
            s.push(' ');
            s.push_str(&a.to_string_lossy());
        }
        s
    }

    fn std_command(&self) -> Command {
        use std::os::unix::process::CommandExt;
        let mut c = Command::new(&self.program);
        // Its own process group, so a timeout kills the helpers a command forked too.
        c.process_group(0);
        if let Some(hook) = self.pre_exec {
            // SAFETY: the caller of the unsafe `Cmd::pre_exec` promised `hook` is
            // async-signal-safe.
            unsafe {
                c.pre_exec(hook);
            }
        }
        c.args(&self.args)
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// Runs the command to completion, blocking the calling thread.
    pub fn run(&self) -> Result<CmdOutput, CommandError> {
        let command = self.display();
        tracing::debug!(%command, "running command");
        let started = Instant::now();
        let mut child = self
            .std_command()
            .spawn()
            .map_err(|source| CommandError::Spawn {
                command: command.clone(),
                source,
            })?;
        let io_err = |source| CommandError::Io {
            command: command.clone(),
            source,
        };
        // Readers run on their own threads so a chatty child cannot block on a full pipe.
        let mut stdout = child.stdout.take().expect("stdout was configured as piped");
        let mut stderr = child.stderr.take().expect("stderr was configured as piped");
        let out_t = std::thread::spawn(move || {
            let mut v = Vec::new();
            stdout.read_to_end(&mut v).map(|_| v)
        });
        let err_t = std::thread::spawn(move || {
            let mut v = Vec::new();
            stderr.read_to_end(&mut v).map(|_| v)
        });
        if let Some(bytes) = &self.stdin {
            let mut stdin = child.stdin.take().expect("stdin was configured as piped");
            // A child that exits without reading its input is not our error: its status says.
            if let Err(e) = stdin.write_all(bytes)
                && e.kind() != std::io::ErrorKind::BrokenPipe
            {
                let _ = child.kill();
                let _ = child.wait();
                return Err(io_err(e));
            }
        }
        let pid = child.id();
        let (tx, rx) = mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let r = child.wait();
            let _ = tx.send(());
            r
        });
        let timed_out = match rx.recv_timeout(self.timeout) {
            Ok(()) => false,
            Err(_) => {
                // The waiter has not reaped the child yet (it would have sent first), so the
                // pid still names our child, not a recycled process.
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
                true
            }
        };
        let status = waiter
            .join()
            .expect("waiter thread does not panic")
            .map_err(io_err)?;
        let stdout = out_t
            .join()
            .expect("reader thread does not panic")
            .map_err(io_err)?;
        let stderr = err_t
            .join()
            .expect("reader thread does not panic")
            .map_err(io_err)?;
        tracing::debug!(%command, elapsed_ms = started.elapsed().as_millis() as u64, ?status, "command finished");
        if timed_out {
            return Err(CommandError::Timeout {
                command,
                timeout: self.timeout,
            });
        }
        if !status.success() {
            return Err(CommandError::Failed {
                command,
                code: status.code(),
                stderr: tail(&stderr),
            });
        }
        Ok(CmdOutput { stdout, stderr })
    }

    /// Like [`Cmd::run`], but hands each line of standard output to `on_line` as it arrives
    /// (progress of long builds); the returned output's `stdout` is empty.
    pub fn run_lines(&self, on_line: &mut dyn FnMut(&str)) -> Result<CmdOutput, CommandError> {
        use std::io::BufRead;
        let command = self.display();
        tracing::debug!(%command, "running command");
        let mut child = self
            .std_command()
            .spawn()
            .map_err(|source| CommandError::Spawn {
                command: command.clone(),
                source,
            })?;
        let io_err = |source| CommandError::Io {
            command: command.clone(),
            source,
        };
        // Streaming commands take no stdin.
        drop(child.stdin.take());
        let stdout = child.stdout.take().expect("stdout was configured as piped");
        let mut stderr = child.stderr.take().expect("stderr was configured as piped");
        let err_t = std::thread::spawn(move || {
            let mut v = Vec::new();
            stderr.read_to_end(&mut v).map(|_| v)
        });
        let pid = child.id();
        let timeout = self.timeout;
        let (cancel_tx, cancel_rx) = mpsc::channel::<()>();
        let watchdog = std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = cancel_rx.recv_timeout(timeout) {
                // The child is not reaped before the watchdog is cancelled, so the group id
                // still names our command.
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
                return true;
            }
            false
        });
        let mut read_result = Ok(());
        for line in std::io::BufReader::new(stdout).lines() {
            match line {
                Ok(l) => on_line(&l),
                Err(e) => {
                    read_result = Err(e);
                    break;
                }
            }
        }
        if read_result.is_err() {
            let _ = child.kill();
        }
        let status = child.wait();
        let _ = cancel_tx.send(());
        let timed_out = watchdog.join().expect("watchdog thread does not panic");
        let status = status.map_err(io_err)?;
        read_result.map_err(io_err)?;
        let stderr = err_t
            .join()
            .expect("reader thread does not panic")
            .map_err(io_err)?;
        if timed_out {
            return Err(CommandError::Timeout { command, timeout });
        }
        if !status.success() {
            return Err(CommandError::Failed {
                command,
                code: status.code(),
                stderr: tail(&stderr),
            });
        }
        Ok(CmdOutput {
            stdout: Vec::new(),
            stderr,
        })
    }

    /// Runs the command to completion on the tokio runtime (the child is killed on timeout or
    /// when the future is dropped).
    pub async fn run_async(&self) -> Result<CmdOutput, CommandError> {
        use tokio::io::AsyncWriteExt;
        let command = self.display();
        tracing::debug!(%command, "running command");
        let mut c = tokio::process::Command::from(self.std_command());
        c.kill_on_drop(true);
        let mut child = c.spawn().map_err(|source| CommandError::Spawn {
            command: command.clone(),
            source,
        })?;
        let pid = child.id();
        let stdin_bytes = self.stdin.clone();
        let mut stdin = child.stdin.take();
        let io_err = |source| CommandError::Io {
            command: command.clone(),
            source,
        };
        let fut = async {
            if let (Some(bytes), Some(mut pipe)) = (stdin_bytes, stdin.take())
                && let Err(e) = pipe.write_all(&bytes).await
                && e.kind() != std::io::ErrorKind::BrokenPipe
            {
                return Err(e);
            }
            child.wait_with_output().await
        };
        let output = match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r.map_err(io_err)?,
            Err(_) => {
                // The child itself is killed on drop; its process group (helpers it forked)
                // is killed here. The child is not reaped yet, so the group id is still ours.
                if let Some(pid) = pid {
                    let _ = nix::sys::signal::killpg(
                        nix::unistd::Pid::from_raw(pid as i32),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                return Err(CommandError::Timeout {
                    command,
                    timeout: self.timeout,
                });
            }
        };
        if !output.status.success() {
            return Err(CommandError::Failed {
                command,
                code: output.status.code(),
                stderr: tail(&output.stderr),
            });
        }
        Ok(CmdOutput {
            stdout: output.stdout,
            stderr: output.stderr,
        })
    }
}

fn tail(stderr: &[u8]) -> String {
    let start = stderr.len().saturating_sub(STDERR_KEEP);
    String::from_utf8_lossy(&stderr[start..]).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_captures_stdout() {
        let out = Cmd::new("sh").args(["-c", "echo hello"]).run().unwrap();
        assert_eq!(out.stdout_str(), "hello\n");
    }

    #[test]
    fn failure_carries_code_and_stderr() {
        let err = Cmd::new("sh")
            .args(["-c", "echo oops >&2; exit 3"])
            .run()
            .unwrap_err();
        match &err {
            CommandError::Failed {
                code,
                stderr,
                command,
            } => {
                assert_eq!(*code, Some(3));
                assert_eq!(stderr, "oops");
                assert!(command.starts_with("sh -c"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(err.exit_code(), Some(3));
        assert!(err.to_string().contains("exit code 3"));
    }

    #[test]
    fn missing_program_is_spawn_error() {
        let err = Cmd::new("/nonexistent/warren-no-such-program")
            .run()
            .unwrap_err();
        assert!(matches!(err, CommandError::Spawn { .. }), "{err:?}");
    }

    #[test]
    fn timeout_kills() {
        let started = Instant::now();
        let err = Cmd::new("sleep")
            .arg("30")
            .timeout(Duration::from_millis(200))
            .run()
            .unwrap_err();
        assert!(matches!(err, CommandError::Timeout { .. }), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn stdin_is_fed() {
        let out = Cmd::new("cat").stdin("abc").run().unwrap();
        assert_eq!(out.stdout, b"abc");
    }

    #[test]
    fn lines_are_streamed() {
        let mut lines = Vec::new();
        Cmd::new("sh")
            .args(["-c", "echo a; echo b"])
            .run_lines(&mut |l| lines.push(l.to_string()))
            .unwrap();
        assert_eq!(lines, ["a", "b"]);
        let err = Cmd::new("sh")
            .args(["-c", "echo x; exit 2"])
            .run_lines(&mut |_| {})
            .unwrap_err();
        assert_eq!(err.exit_code(), Some(2));
        let err = Cmd::new("sleep")
            .arg("30")
            .timeout(Duration::from_millis(100))
            .run_lines(&mut |_| {})
            .unwrap_err();
        assert!(matches!(err, CommandError::Timeout { .. }));
    }

    #[tokio::test]
    async fn async_variant_matches() {
        let out = Cmd::new("cat").stdin("xyz").run_async().await.unwrap();
        assert_eq!(out.stdout, b"xyz");
        let err = Cmd::new("sh")
            .args(["-c", "exit 4"])
            .run_async()
            .await
            .unwrap_err();
        assert_eq!(err.exit_code(), Some(4));
        let err = Cmd::new("sleep")
            .arg("30")
            .timeout(Duration::from_millis(100))
            .run_async()
            .await
            .unwrap_err();
        assert!(matches!(err, CommandError::Timeout { .. }));
    }
}
