//! Benchmark of envd itself (not a test; never gates CI).
//!
//! Measures, in one run, against the same work done with `std::process::Command`:
//! - the process-start round trip of `true` (Start stream from request to end event);
//! - the throughput of 100 MiB of stdout streamed through envd.
//!
//! Run: `cargo bench -p envd --bench envd` (set `ENVD_BIN` to bench another envd binary,
//! e.g. the static release build). Prints a Markdown table for `docs/benchmarks.md`.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use warren_proto::envd::client::{Command, EnvdClient, ProcessEvent};

const ROUND_TRIPS: usize = 300;
const BYTES: usize = 100 * 1024 * 1024;

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() -> anyhow::Result<()> {
    let bin = std::env::var("ENVD_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_envd").to_owned());
    let mut child = StdCommand::new(&bin)
        .args(["--port", "0", "--host", "127.0.0.1"])
        .env("ENVD_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
    let url = format!(
        "http://{}",
        line.trim().rsplit(' ').next().unwrap_or_default()
    );
    let rt = tokio::runtime::Runtime::new()?;
    let result = rt.block_on(run(&url));
    let _ = child.kill();
    let _ = child.wait();
    result
}

async fn run(url: &str) -> anyhow::Result<()> {
    let client = EnvdClient::new(url)?;
    client.health().await?;
    for _ in 0..20 {
        client
            .run(Command::new("true", Vec::<String>::new()))
            .await?;
    }

    let mut envd = Vec::with_capacity(ROUND_TRIPS);
    for _ in 0..ROUND_TRIPS {
        let t = Instant::now();
        let out = client
            .run(Command::new("true", Vec::<String>::new()))
            .await?;
        anyhow::ensure!(out.exit_code == 0, "true failed: {}", out.status);
        envd.push(t.elapsed());
    }
    let mut raw = Vec::with_capacity(ROUND_TRIPS);
    for _ in 0..ROUND_TRIPS {
        let t = Instant::now();
        let status = StdCommand::new("true")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()?;
        anyhow::ensure!(status.status.success(), "true failed");
        raw.push(t.elapsed());
    }
    let (e50, e99) = (percentile(&mut envd, 0.5), percentile(&mut envd, 0.99));
    let (r50, r99) = (percentile(&mut raw, 0.5), percentile(&mut raw, 0.99));

    let script = format!("head -c {BYTES} /dev/zero");
    let t = Instant::now();
    let mut events = client
        .start(Command::new("sh", ["-c", script.as_str()]))
        .await?;
    let mut got = 0usize;
    while let Some(ev) = events.next().await {
        if let ProcessEvent::Stdout(b) = ev? {
            got += b.len();
        }
    }
    let envd_tp = t.elapsed();
    anyhow::ensure!(got == BYTES, "envd streamed {got} bytes, wanted {BYTES}");
    let t = Instant::now();
    let mut child = StdCommand::new("sh")
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .spawn()?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut buf = vec![0u8; 64 * 1024];
    let mut raw_got = 0usize;
    loop {
        let n = stdout.read(&mut buf)?;
        if n == 0 {
            break;
        }
        raw_got += n;
    }
    child.wait()?;
    let raw_tp = t.elapsed();
    anyhow::ensure!(raw_got == BYTES, "raw read {raw_got} bytes");
    let mib = BYTES as f64 / (1024.0 * 1024.0);

    println!("| what | envd | std::process::Command | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| start `true`, round trip p50 ({ROUND_TRIPS} runs) | {:.2} ms | {:.2} ms | {:.2}x |",
        ms(e50),
        ms(r50),
        ms(e50) / ms(r50)
    );
    println!(
        "| start `true`, round trip p99 | {:.2} ms | {:.2} ms | {:.2}x |",
        ms(e99),
        ms(r99),
        ms(e99) / ms(r99)
    );
    println!(
        "| 100 MiB of stdout | {:.0} MiB/s ({:.2} s) | {:.0} MiB/s ({:.2} s) | {:.2}x slower |",
        mib / envd_tp.as_secs_f64(),
        envd_tp.as_secs_f64(),
        mib / raw_tp.as_secs_f64(),
        raw_tp.as_secs_f64(),
        envd_tp.as_secs_f64() / raw_tp.as_secs_f64()
    );
    Ok(())
}
