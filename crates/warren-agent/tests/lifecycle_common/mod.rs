//! Shared setup of the lifecycle tests (real runsc, netns, overlayfs, loop devices): skip
//! checks with a printed reason, the `minimal` template built once per test run from the real
//! envd binary, and a per-test world (own data dir, own address pool and names) so tests run
//! in parallel.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use warren_agent::net::{Ipv4Pool, NetConfig};
use warren_agent::runtime::gvisor::{GvisorConfig, GvisorRuntime};
use warren_agent::sandbox::{ManagerConfig, SandboxManager};

/// The workspace's `target/` dir.
pub fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target")
}

/// The envd binary to bake into the template.
pub fn envd_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("WARREN_ENVD_BIN") {
        return Some(PathBuf::from(p));
    }
    [
        target_dir().join("x86_64-unknown-linux-gnu/debug/envd"),
        target_dir().join("debug/envd"),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

/// Why the lifecycle tests cannot run here, if they cannot.
pub fn skip_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root".into());
    }
    if warren_agent::runtime::gvisor::find_runsc(None).is_err() {
        return Some("needs runsc (apt-get install runsc)".into());
    }
    if envd_bin().is_none() {
        return Some(
            "needs an envd binary: build it (cargo build -p envd) or set WARREN_ENVD_BIN".into(),
        );
    }
    None
}

#[macro_export]
macro_rules! skip_unless_ready {
    () => {
        if let Some(reason) = lifecycle_common::skip_reason() {
            eprintln!("SKIPPED {}: {reason}", module_path!());
            return;
        }
    };
}

static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();

/// `templates/minimal` built from the current envd binary, cached under cargo's target tmp
/// dir (`warren_agent::template::cached_minimal`): built once, reused by later test
/// processes until envd changes.
pub fn minimal_template() -> &'static Path {
    TEMPLATE.get_or_init(|| {
        let envd = envd_bin().expect("skip_reason checked envd");
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("lifecycle-template");
        warren_agent::template::cached_minimal(&root, &envd).expect("build the minimal template")
    })
}

/// One test's world: data dir, manager, and everything it made is destroyed on `finish`.
pub struct World {
    pub data: tempfile::TempDir,
    pub mgr: SandboxManager,
    pub config: ManagerConfig,
}

/// Config for a world with address pool `10.210.<n>.0/24` and names prefixed `wl<n>`.
pub fn config(n: u8, data: &Path) -> ManagerConfig {
    let mut c = ManagerConfig::new(data);
    c.net = NetConfig {
        pool: Ipv4Pool::parse(&format!("10.210.{n}.0/24")).unwrap(),
        prefix: format!("wl{n}"),
    };
    c.default_memory_mib = 256;
    c
}

/// Installs the minimal template into `data` (hard link: read-only use).
pub fn install_template(data: &Path) {
    let dst = data.join("templates/minimal");
    std::fs::create_dir_all(&dst).unwrap();
    for entry in std::fs::read_dir(minimal_template()).unwrap() {
        let entry = entry.unwrap();
        let to = dst.join(entry.file_name());
        if std::fs::hard_link(entry.path(), &to).is_err() {
            std::fs::copy(entry.path(), &to).unwrap();
        }
    }
}

pub fn data_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("warren-lifecycle-")
        .tempdir()
        .expect("create data dir")
}

pub async fn world_with(n: u8, edit: impl FnOnce(&mut ManagerConfig)) -> World {
    let data = data_dir();
    install_template(data.path());
    let mut config = config(n, data.path());
    edit(&mut config);
    let mgr = start(&config).await;
    World { data, mgr, config }
}

pub async fn world(n: u8) -> World {
    world_with(n, |_| {}).await
}

pub async fn start(config: &ManagerConfig) -> SandboxManager {
    let rt = GvisorRuntime::new(GvisorConfig::new(&config.data_dir)).unwrap();
    SandboxManager::start(config.clone(), Arc::new(rt))
        .await
        .expect("start the sandbox manager")
}

impl World {
    /// Destroys every sandbox and the nft table, so nothing leaks from the test.
    pub async fn finish(self) {
        for s in self.mgr.list() {
            let _ = self.mgr.destroy(&s.record.sandbox_id).await;
        }
        self.mgr.shutdown().await;
        let _ = self.mgr.network().delete_nft_table();
        let _ = std::process::Command::new("umount")
            .arg("-R")
            .arg(self.data.path().join("mnt/templates/minimal"))
            .status();
    }
}

/// GET `path` from `addr` over HTTP/1.0; returns the status code and body.
pub async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    let mut s = tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    // Reset on close: a TCP endpoint left in TIME_WAIT inside would block checkpoints.
    s.set_zero_linger()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "read timed out"))??;
    let text = String::from_utf8_lossy(&buf);
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = match buf.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => buf[i + 4..].to_vec(),
        None => Vec::new(),
    };
    Ok((code, body))
}

/// An init that needs no envd: busybox httpd answers `/health` on envd's port and serves a
/// counter a shell loop keeps in memory and in `/tmp` (sentry memory): proof of process and
/// memory state across pause/resume and snapshots.
pub fn counter_init() -> Vec<String> {
    vec![
        "/bin/sh".into(),
        "-c".into(),
        "mkdir -p /tmp/www && echo ok > /tmp/www/health && httpd -p 49983 -h /tmp/www && \
         i=0; while true; do i=$((i+1)); echo $i > /tmp/www/c; sleep 0.05; done"
            .into(),
    ]
}

/// Reads the counter of a `counter_init` sandbox.
pub async fn counter(addr: SocketAddr) -> u64 {
    // The shell rewrites the file every 50 ms: a read can catch it truncated; read again.
    for _ in 0..50 {
        let (code, body) = http_get(addr, "/c").await.expect("GET /c");
        assert_eq!(code, 200, "GET /c");
        if let Ok(n) = String::from_utf8_lossy(&body).trim().parse() {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("counter at {addr} never readable");
}
