//! Lifecycle tests on the real runtime that need no envd features beyond a port answering
//! `/health`: the init is a busybox shell counting in memory (see `counter_init`). They prove
//! pause/resume keeps processes and memory, snapshots fork, TTL reaping, and that destroy
//! leaves nothing on the host.

mod lifecycle_common;

use std::time::Duration;

use warren_agent::sandbox::{CreateSandbox, SandboxStatus, TtlAction};

fn req() -> CreateSandbox {
    CreateSandbox {
        template: "minimal".into(),
        allow_internet: true,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn lifecycle_pause_resume_keeps_running_process_memory() {
    skip_unless_ready!();
    let w = lifecycle_common::world_with(1, |c| c.init = lifecycle_common::counter_init()).await;
    let sb = w.mgr.create(req()).await.expect("create");
    let id = sb.record.sandbox_id.clone();
    let addr = w.mgr.envd_addr(&id, false).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = lifecycle_common::counter(addr).await;
    assert!(before > 0);

    let paused = w.mgr.pause(&id).await.expect("pause");
    assert_eq!(paused.status, SandboxStatus::Paused);
    // Paused: no runtime instance, no network.
    assert!(w.mgr.runtime().state(&id).await.unwrap().is_none());
    assert!(w.mgr.network().get(&id).is_none());
    // Reported, still.
    assert!(w.mgr.list().iter().any(|s| s.record.sandbox_id == id));

    let resumed = w.mgr.resume(&id, 0).await.expect("resume");
    assert_eq!(resumed.status, SandboxStatus::Running);
    let addr = w.mgr.envd_addr(&id, false).unwrap();
    let after = lifecycle_common::counter(addr).await;
    // The shell's variable survived: it continues from where it was, not from 1.
    assert!(
        after >= before,
        "counter restarted: before {before}, after {after}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let later = lifecycle_common::counter(addr).await;
    assert!(
        later > after,
        "counter stopped after resume: {after} then {later}"
    );
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn lifecycle_snapshot_forks_many_independent_sandboxes() {
    skip_unless_ready!();
    let w = lifecycle_common::world_with(2, |c| c.init = lifecycle_common::counter_init()).await;
    let sb = w.mgr.create(req()).await.expect("create");
    let id = sb.record.sandbox_id.clone();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let at_snapshot = lifecycle_common::counter(w.mgr.envd_addr(&id, false).unwrap()).await;
    let snap = w.mgr.snapshot(&id, "snap1", false).await.expect("snapshot");
    assert!(snap.size_bytes > 0);
    // The source stays paused and resumable.
    assert_eq!(w.mgr.get(&id).unwrap().status, SandboxStatus::Paused);

    let a = w
        .mgr
        .create(CreateSandbox {
            template: "snap1".into(),
            ..req()
        })
        .await
        .expect("fork a");
    let b = w
        .mgr
        .create(CreateSandbox {
            template: "snap1".into(),
            ..req()
        })
        .await
        .expect("fork b");
    let (ida, idb) = (a.record.sandbox_id.clone(), b.record.sandbox_id.clone());
    assert_ne!(ida, idb);
    let (addra, addrb) = (
        w.mgr.envd_addr(&ida, false).unwrap(),
        w.mgr.envd_addr(&idb, false).unwrap(),
    );
    assert_ne!(addra.ip(), addrb.ip(), "each fork has its own address");
    let (ca, cb) = (
        lifecycle_common::counter(addra).await,
        lifecycle_common::counter(addrb).await,
    );
    assert!(
        ca >= at_snapshot && cb >= at_snapshot,
        "forks start from the snapshot's memory: {at_snapshot} {ca} {cb}"
    );
    // Diverge: pausing one does not stop the other.
    w.mgr.pause(&ida).await.expect("pause fork a");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cb2 = lifecycle_common::counter(addrb).await;
    assert!(cb2 > cb);
    w.mgr
        .resume(&id, 0)
        .await
        .expect("source resumes after snapshot");
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn lifecycle_ttl_reaper_destroys_expired_sandboxes() {
    skip_unless_ready!();
    let w = lifecycle_common::world_with(3, |c| {
        c.init = lifecycle_common::counter_init();
        c.reaper_interval = Duration::from_millis(200);
        c.ttl_action = TtlAction::Destroy;
    })
    .await;
    let sb = w
        .mgr
        .create(CreateSandbox {
            timeout_sec: 1,
            ..req()
        })
        .await
        .expect("create");
    let keep = w.mgr.create(req()).await.expect("create without ttl");
    let id = sb.record.sandbox_id.clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while w.mgr.get(&id).is_ok() {
        assert!(std::time::Instant::now() < deadline, "sandbox not reaped");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(w.mgr.runtime().state(&id).await.unwrap().is_none());
    assert!(
        w.mgr.get(&keep.record.sandbox_id).is_ok(),
        "no TTL, not reaped"
    );
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn lifecycle_ttl_reaper_can_pause_instead() {
    skip_unless_ready!();
    let w = lifecycle_common::world_with(4, |c| {
        c.init = lifecycle_common::counter_init();
        c.reaper_interval = Duration::from_millis(200);
        c.ttl_action = TtlAction::Pause;
    })
    .await;
    let sb = w
        .mgr
        .create(CreateSandbox {
            timeout_sec: 1,
            ..req()
        })
        .await
        .expect("create");
    let id = sb.record.sandbox_id.clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while w.mgr.get(&id).unwrap().status != SandboxStatus::Paused {
        assert!(
            std::time::Instant::now() < deadline,
            "sandbox not paused by the reaper"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    w.mgr.resume(&id, 0).await.expect("resume after TTL pause");
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn lifecycle_restarted_manager_adopts_running_and_keeps_paused() {
    skip_unless_ready!();
    let w = lifecycle_common::world_with(5, |c| c.init = lifecycle_common::counter_init()).await;
    let running = w
        .mgr
        .create(req())
        .await
        .expect("create a")
        .record
        .sandbox_id;
    let paused = w
        .mgr
        .create(req())
        .await
        .expect("create b")
        .record
        .sandbox_id;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = lifecycle_common::counter(w.mgr.envd_addr(&running, false).unwrap()).await;
    w.mgr.pause(&paused).await.expect("pause b");
    // The agent goes away without any cleanup (as after SIGKILL): only the reaper stops.
    w.mgr.shutdown().await;

    let mgr2 = lifecycle_common::start(&w.config).await;
    let a = mgr2.get(&running).expect("running sandbox adopted");
    assert_eq!(a.status, SandboxStatus::Running);
    let after = lifecycle_common::counter(mgr2.envd_addr(&running, false).unwrap()).await;
    assert!(
        after > before,
        "same process kept counting: {before} then {after}"
    );
    assert_eq!(
        mgr2.get(&paused).expect("paused sandbox kept").status,
        SandboxStatus::Paused
    );
    mgr2.resume(&paused, 0)
        .await
        .expect("resume after agent restart");
    // The restarted manager owns them: destroy works and cleans up.
    let w = lifecycle_common::World { mgr: mgr2, ..w };
    w.finish().await;
}

/// Host objects that mention `needle` (a sandbox id or data dir): netns, mounts, loop
/// devices, processes, cgroups.
fn host_objects(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
    {
        let n = entry.file_name().to_string_lossy().into_owned();
        if n.contains(needle) {
            found.push(format!("netns {n}"));
        }
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    found.extend(
        mounts
            .lines()
            .filter(|l| l.contains(needle))
            .map(|l| format!("mount {l}")),
    );
    let loops = std::process::Command::new("losetup")
        .arg("-a")
        .output()
        .unwrap();
    found.extend(
        String::from_utf8_lossy(&loops.stdout)
            .lines()
            .filter(|l| l.contains(needle))
            .map(|l| format!("loop {l}")),
    );
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) && !cmd.contains("lifecycle_runtime") {
                found.push(format!("process {cmd}"));
            }
        }
    }
    for c in ["memory", "cpu", "pids"] {
        if std::path::Path::new(&format!("/sys/fs/cgroup/{c}/warren/{needle}")).exists() {
            found.push(format!("cgroup {c}/warren/{needle}"));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn lifecycle_destroy_cleans_every_host_resource() {
    skip_unless_ready!();
    let w = lifecycle_common::world_with(6, |c| c.init = lifecycle_common::counter_init()).await;
    let data = w.data.path().to_string_lossy().into_owned();
    let a = w.mgr.create(req()).await.expect("create").record.sandbox_id;
    let b = w.mgr.create(req()).await.expect("create").record.sandbox_id;
    w.mgr.pause(&b).await.expect("pause");
    let veth_a = w.mgr.network().get(&a).unwrap().host_veth;
    assert!(
        !host_objects(&a).is_empty(),
        "a running sandbox holds host objects"
    );
    w.mgr.destroy(&a).await.expect("destroy running");
    w.mgr.destroy(&b).await.expect("destroy paused");
    w.mgr.destroy(&b).await.expect("destroy is idempotent");
    for id in [&a, &b] {
        let left = host_objects(id);
        assert!(left.is_empty(), "leftovers of {id}: {left:#?}");
        assert!(!w.data.path().join("sandboxes").join(id).exists());
        assert!(w.mgr.runtime().state(id).await.unwrap().is_none());
    }
    assert!(
        !std::path::Path::new(&format!("/sys/class/net/{veth_a}")).exists(),
        "veth left"
    );
    // The last sandbox gone, the template image is unmounted and its loop device detached.
    let left = host_objects(&data);
    assert!(left.is_empty(), "leftovers of the data dir: {left:#?}");
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn lifecycle_twenty_sandboxes_created_concurrently() {
    skip_unless_ready!();
    let w = lifecycle_common::world_with(7, |c| c.init = lifecycle_common::counter_init()).await;
    let started = std::time::Instant::now();
    let creates = (0..20).map(|_| {
        let mgr = w.mgr.clone();
        tokio::spawn(async move { mgr.create(req()).await })
    });
    let mut ids = Vec::new();
    for c in futures::future::join_all(creates).await {
        ids.push(c.unwrap().expect("concurrent create").record.sandbox_id);
    }
    eprintln!("20 concurrent creates took {:?}", started.elapsed());
    let mut ips = std::collections::HashSet::new();
    for id in &ids {
        let addr = w.mgr.envd_addr(id, false).unwrap();
        assert!(ips.insert(addr.ip()), "address reused");
        assert!(lifecycle_common::counter(addr).await > 0);
    }
    assert_eq!(w.mgr.list().len(), 20);
    w.finish().await;
}
