//! Host agent benchmark (gVisor): our create → first exec, pause and resume against bare
//! `runsc` doing the same in the same run, RSS per idle sandbox, and growth from 1 to N live
//! sandboxes. Prints a markdown section for `docs/benchmarks.md`.
//!
//! Run as root: `cargo run -p warren-agent --example bench -- [ITERATIONS] [MAX_LIVE]`
//! (defaults 5 and 50). Needs runsc and an envd binary (`WARREN_ENVD_BIN` or
//! `target/debug/envd`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use warren_agent::net::{Ipv4Pool, NetConfig};
use warren_agent::runtime::gvisor::{GvisorConfig, GvisorRuntime};
use warren_agent::sandbox::{CreateSandbox, ManagerConfig, SandboxManager};
use warren_proto::envd::client::{Command, EnvdClient};

#[path = "support/bare_runsc.rs"]
mod bare_runsc;
use bare_runsc::{BareBundle, runsc};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

/// RSS (KiB) of every process whose command line mentions `needle`.
fn rss_kib(needle: &str) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if !String::from_utf8_lossy(&cmd).contains(needle) {
            continue;
        }
        if let Ok(status) = std::fs::read_to_string(entry.path().join("status")) {
            for l in status.lines() {
                if let Some(v) = l.strip_prefix("VmRSS:") {
                    total += v
                        .trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .unwrap_or(0);
                }
            }
        }
    }
    total
}

fn envd_bin() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("WARREN_ENVD_BIN") {
        return Ok(PathBuf::from(p));
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/envd");
    anyhow::ensure!(
        p.is_file(),
        "no envd binary: cargo build -p envd or set WARREN_ENVD_BIN"
    );
    Ok(p)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let iterations: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(5);
    let max_live: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(50);
    anyhow::ensure!(nix::unistd::geteuid().is_root(), "run as root");
    let data = tempfile::Builder::new().prefix("warren-bench-").tempdir()?;
    let envd = envd_bin()?;
    let template = warren_agent::template::build_minimal(data.path(), &envd, &mut |_| {})?;

    // Bare runsc on the same image: the image loop-mounted read-only as the bundle's root.
    let bare = BareBundle::new(data.path(), &template.rootfs)?;
    let (bare_root, bundle_s) = (bare.root.clone(), bare.bundle.clone());
    let (mut bare_create, mut bare_ckpt, mut bare_restore) = (vec![], vec![], vec![]);
    for i in 0..iterations {
        let id = format!("bare{i}");
        let t = Instant::now();
        bare.run_and_exec(&id)?;
        bare_create.push(t.elapsed());
        let img = data.path().join(format!("bare-img{i}"));
        std::fs::create_dir_all(&img)?;
        let img_s = format!("--image-path={}", img.display());
        let t = Instant::now();
        runsc(&bare_root, &["checkpoint", &img_s, &id])?;
        bare_ckpt.push(t.elapsed());
        runsc(&bare_root, &["delete", "--force", &id])?;
        let t = Instant::now();
        runsc(
            &bare_root,
            &["restore", "--detach", &img_s, "--bundle", &bundle_s, &id],
        )?;
        bare_restore.push(t.elapsed());
        runsc(&bare_root, &["delete", "--force", &id])?;
    }

    // Ours, with envd as init: create -> first exec answered.
    let mut config = ManagerConfig::new(data.path());
    config.net = NetConfig {
        pool: Ipv4Pool::parse("10.212.0.0/22")?,
        prefix: "wbench".into(),
    };
    config.default_memory_mib = 256;
    let rt = Arc::new(GvisorRuntime::new(GvisorConfig::new(data.path()))?);
    let mgr = SandboxManager::start(config.clone(), rt.clone()).await?;
    let req = || CreateSandbox {
        template: "minimal".into(),
        allow_internet: true,
        ..Default::default()
    };
    let mut ours_create = vec![];
    for _ in 0..iterations {
        let t = Instant::now();
        let sb = mgr.create(req()).await?;
        let addr = mgr.envd_addr(&sb.record.sandbox_id, false)?;
        let out = EnvdClient::new(&format!("http://{addr}"))?
            .run(Command::new("/bin/true", Vec::<String>::new()))
            .await?;
        anyhow::ensure!(out.exit_code == 0);
        ours_create.push(t.elapsed());
        mgr.destroy(&sb.record.sandbox_id).await?;
    }
    mgr.shutdown().await;

    // Pause/resume: this runsc cannot checkpoint envd's epoll-registered listener, so these use
    // a busybox init (httpd on envd's port + a counting shell) — the same runsc work.
    let mut pconfig = config.clone();
    pconfig.init = vec!["/bin/sh".into(), "-c".into(),
        "mkdir -p /tmp/www && echo ok > /tmp/www/health && httpd -p 49983 -h /tmp/www && while true; do sleep 1; done".into()];
    let mgr = SandboxManager::start(pconfig, rt.clone()).await?;
    let (mut ours_pause, mut ours_resume) = (vec![], vec![]);
    for _ in 0..iterations {
        let sb = mgr.create(req()).await?;
        let id = sb.record.sandbox_id;
        let t = Instant::now();
        mgr.pause(&id).await.context("pause")?;
        ours_pause.push(t.elapsed());
        let t = Instant::now();
        mgr.resume(&id, 0).await.context("resume")?;
        ours_resume.push(t.elapsed());
        mgr.destroy(&id).await?;
    }

    // Growth: N live idle sandboxes, create latency and RSS per sandbox.
    let mut growth = vec![];
    let mut ids = vec![];
    let marks = [1usize, 10, 25, 50, 100];
    for n in 1..=max_live {
        let t = Instant::now();
        ids.push(mgr.create(req()).await?.record.sandbox_id);
        let took = t.elapsed();
        if marks.contains(&n) || n == max_live {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let rss: u64 = ids.iter().map(|id| rss_kib(id)).sum();
            growth.push((n, took, rss / n as u64));
        }
    }
    for id in &ids {
        mgr.destroy(id).await?;
    }
    mgr.shutdown().await;
    let _ = mgr.network().delete_nft_table();
    drop(bare);
    let _ = std::process::Command::new("umount")
        .arg(data.path().join("mnt/templates/minimal"))
        .status();

    let (bc, oc) = (median(bare_create), median(ours_create));
    let (bp, op) = (median(bare_ckpt), median(ours_pause));
    let (br, or) = (median(bare_restore), median(ours_resume));
    println!("| what (median of {iterations}) | bare runsc | warren agent | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| create → first exec answered | {} (`run` + `exec`) | {} (create + envd exec `true`) | {:.2} × |",
        ms(bc),
        ms(oc),
        oc.as_secs_f64() / bc.as_secs_f64()
    );
    println!(
        "| pause | {} (`checkpoint`) | {} | {:.2} × |",
        ms(bp),
        ms(op),
        op.as_secs_f64() / bp.as_secs_f64()
    );
    println!(
        "| resume | {} (`restore`) | {} (restore + network + health) | {:.2} × |",
        ms(br),
        ms(or),
        or.as_secs_f64() / br.as_secs_f64()
    );
    println!();
    println!(
        "| live sandboxes | create latency of the last | RSS per idle sandbox (runsc sandbox + gofer) |"
    );
    println!("|---|---|---|");
    for (n, took, rss) in growth {
        println!("| {n} | {} | {:.1} MiB |", ms(took), rss as f64 / 1024.0);
    }
    Ok(())
}
