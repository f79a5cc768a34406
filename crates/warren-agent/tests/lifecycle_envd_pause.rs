//! Pause/resume and snapshot/fork with the REAL envd as the sandbox's init (not the busybox
//! stand-in of `lifecycle_runtime`). gVisor refuses to checkpoint a TCP socket with epoll
//! waiters, so this proves envd's listener stays checkpointable: a background counter started
//! through envd keeps its memory, a written file survives, and exec works after resume and in a
//! fork.

mod lifecycle_common;

use std::net::SocketAddr;
use std::time::Duration;

use warren_agent::sandbox::{CreateSandbox, SandboxManager, SandboxStatus};
use warren_proto::envd::client::{Command, EnvdClient};

fn req(template: &str) -> CreateSandbox {
    CreateSandbox {
        template: template.into(),
        allow_internet: true,
        ..Default::default()
    }
}

/// Runs `script` with `/bin/sh -c` through envd on a fresh client (dropped at return, so no
/// idle keep-alive connection is left to block the next checkpoint); returns stdout and code.
async fn sh(addr: SocketAddr, script: &str) -> (String, i32) {
    let envd = EnvdClient::new(&format!("http://{addr}")).expect("envd client");
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        envd.run(Command::new("/bin/sh", ["-c", script])),
    )
    .await
    .expect("exec timed out")
    .expect("exec through envd");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.exit_code,
    )
}

/// The in-memory counter of the background loop, read through envd (retries a torn write).
async fn count(addr: SocketAddr) -> u64 {
    for _ in 0..50 {
        let (out, code) = sh(addr, "cat /tmp/count").await;
        if code == 0
            && let Ok(n) = out.trim().parse()
        {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("counter at {addr} never readable");
}

/// Starts a shell loop that keeps a counter in a shell variable (process memory) and mirrors
/// it to `/tmp/count`: a restarted loop would start again from 1.
async fn start_counter(addr: SocketAddr) {
    let (_, code) = sh(
        addr,
        "i=0; (while true; do i=$((i+1)); echo $i > /tmp/count.new; \
         mv /tmp/count.new /tmp/count; sleep 0.05; done) </dev/null >/dev/null 2>&1 &",
    )
    .await;
    assert_eq!(code, 0, "start the background counter");
}

async fn wait_count_above(addr: SocketAddr, n: u64) -> u64 {
    for _ in 0..100 {
        let c = count(addr).await;
        if c > n {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("counter at {addr} stuck at or below {n}");
}

/// Runs `body` on world `n`'s manager and tears the world down even when `body` panics (a
/// failed checkpoint must not leak netns, mounts or nft tables), then re-raises the panic.
async fn with_world<F, Fut>(n: u8, body: F)
where
    F: FnOnce(SandboxManager) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let w = lifecycle_common::world(n).await;
    let data = w.data.path().to_path_buf();
    let result = tokio::spawn(body(w.mgr.clone())).await;
    if result.is_err() {
        sweep(n, &data);
    }
    w.finish().await;
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Best-effort removal of what a sandbox whose checkpoint failed may leave behind: its netns
/// `wl<n>-*`, the overlay mounts under `data`, the nft table.
fn sweep(n: u8, data: &std::path::Path) {
    let run = |args: &[&str]| {
        std::process::Command::new(args[0])
            .args(&args[1..])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    let prefix = format!("wl{n}-");
    for ns in run(&["ip", "netns", "list"]).lines() {
        if let Some(name) = ns
            .split_whitespace()
            .next()
            .filter(|s| s.starts_with(&prefix))
        {
            run(&["ip", "netns", "del", name]);
        }
    }
    let data = data.to_string_lossy().into_owned();
    for line in run(&["mount"]).lines() {
        // "<what> on <target> type <fs> (<opts>)": match the target only.
        let target = line.split(" on ").nth(1).and_then(|t| t.split(' ').next());
        if let Some(target) = target.filter(|t| t.starts_with(&data)) {
            run(&["umount", target]);
        }
    }
    run(&["nft", "delete", "table", "ip", &format!("wl{n}")]);
}

#[tokio::test(flavor = "multi_thread")]
async fn lifecycle_envd_pause_resume_keeps_processes_files_memory() {
    skip_unless_ready!();
    with_world(21, pause_resume).await;
}

async fn pause_resume(mgr: SandboxManager) {
    let sb = mgr
        .create(req("minimal"))
        .await
        .expect("create with real envd");
    let id = sb.record.sandbox_id.clone();
    let addr = mgr.envd_addr(&id, false).unwrap();
    start_counter(addr).await;
    let (_, code) = sh(addr, "echo kept > /root/kept.txt").await;
    assert_eq!(code, 0);
    let before = wait_count_above(addr, 3).await;

    let paused = mgr
        .pause(&id)
        .await
        .expect("pause (runsc checkpoint) with real envd");
    assert_eq!(paused.status, SandboxStatus::Paused);
    assert!(mgr.runtime().state(&id).await.unwrap().is_none());

    let resumed = mgr.resume(&id, 0).await.expect("resume");
    assert_eq!(resumed.status, SandboxStatus::Running);
    let addr = mgr.envd_addr(&id, false).unwrap();
    let (out, code) = sh(addr, "echo alive").await;
    assert_eq!((out.trim(), code), ("alive", 0), "exec after resume");
    let (out, _) = sh(addr, "cat /root/kept.txt").await;
    assert_eq!(out.trim(), "kept", "file survives pause/resume");
    let after = count(addr).await;
    assert!(
        after >= before,
        "counter restarted: before {before}, after {after}"
    );
    let later = wait_count_above(addr, after).await;
    eprintln!("counter: {before} before pause, {after} after resume, then {later}");

    // A second round: the resumed envd's listener must be checkpointable too.
    mgr.pause(&id).await.expect("second pause");
    mgr.resume(&id, 0).await.expect("second resume");
    let addr = mgr.envd_addr(&id, false).unwrap();
    assert!(
        count(addr).await >= later,
        "counter kept across a second pause"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn lifecycle_envd_snapshot_fork_execs() {
    skip_unless_ready!();
    with_world(22, snapshot_fork).await;
}

async fn snapshot_fork(mgr: SandboxManager) {
    let sb = mgr
        .create(req("minimal"))
        .await
        .expect("create with real envd");
    let id = sb.record.sandbox_id.clone();
    let addr = mgr.envd_addr(&id, false).unwrap();
    start_counter(addr).await;
    let (_, code) = sh(addr, "echo snapped > /root/snap.txt").await;
    assert_eq!(code, 0);
    let at_snapshot = wait_count_above(addr, 3).await;

    mgr.snapshot(&id, "envdsnap", false)
        .await
        .expect("snapshot with real envd");
    let fork = mgr
        .create(req("envdsnap"))
        .await
        .expect("fork from snapshot");
    let fid = fork.record.sandbox_id.clone();
    let faddr = mgr.envd_addr(&fid, false).unwrap();
    let (out, code) = sh(faddr, "cat /root/snap.txt").await;
    assert_eq!((out.trim(), code), ("snapped", 0), "exec in the fork");
    let c = count(faddr).await;
    assert!(
        c >= at_snapshot,
        "fork starts from the snapshot's memory: {at_snapshot} {c}"
    );
    wait_count_above(faddr, c).await;
    mgr.resume(&id, 0)
        .await
        .expect("source resumes after snapshot");
}
