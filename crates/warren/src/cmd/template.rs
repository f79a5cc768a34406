//! `warren template`: build template images on this host (root; writes under the data dir).
//!
//! `warren template build minimal|base --data-dir DIR [--envd PATH]` fills
//! `DIR/templates/<name>/rootfs.ext4` through `warren_agent::template`; `base` shows its
//! (minutes long) debootstrap progress with indicatif.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use warren_agent::template::{self, Progress};

/// Which built-in template to build.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Kind {
    /// busybox + envd, offline, seconds (the test default).
    Minimal,
    /// Debian bookworm from this host's apt mirror + python3, pip, git, curl + envd (minutes).
    Base,
}

/// Subcommands of `warren template`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Build a template image on this host.
    Build {
        /// Template to build.
        kind: Kind,
        /// The agent's data dir (templates go to DATA_DIR/templates/<name>).
        #[arg(long, env = "WARREN_DATA_DIR", default_value = "/var/lib/warren")]
        data_dir: PathBuf,
        /// The envd binary to bake in (default: `envd` next to this binary, else on PATH).
        #[arg(long, env = "WARREN_ENVD")]
        envd: Option<PathBuf>,
    },
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Build {
            kind,
            data_dir,
            envd,
        } => {
            let envd = match envd {
                Some(p) => p,
                None => default_envd().context(
                    "no envd binary found next to warren or on PATH; pass --envd PATH \
                     (build it with `cargo build -p envd`)",
                )?,
            };
            // Builds block (mkfs, debootstrap): keep them off the async runtime.
            tokio::task::spawn_blocking(move || build(kind, &data_dir, &envd)).await?
        }
    }
}

fn build(kind: Kind, data_dir: &Path, envd: &Path) -> anyhow::Result<()> {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {prefix} {wide_msg}")
            .expect("static progress template is valid"),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    // Not a terminal (CI, logs): indicatif draws nothing, so phases go to stderr as lines.
    let plain = bar.is_hidden();
    let mut on_progress = |p: Progress| match p {
        Progress::Phase {
            step,
            total,
            message,
        } => {
            if plain {
                eprintln!("[{step}/{total}] {message}");
            }
            bar.set_prefix(format!("[{step}/{total}]"));
            bar.println(format!("[{step}/{total}] {message}"));
            bar.set_message(message);
        }
        Progress::Line(line) => bar.set_message(line),
    };
    let result = match kind {
        Kind::Minimal => template::build_minimal(data_dir, envd, &mut on_progress),
        Kind::Base => template::build_base(data_dir, envd, &mut on_progress),
    };
    bar.finish_and_clear();
    let t = result?;
    let size = std::fs::metadata(&t.rootfs).map(|m| m.len()).unwrap_or(0);
    let used = warren_agent::storage::disk_usage(&t.rootfs)
        .map(|u| u.bytes)
        .unwrap_or(0);
    println!(
        "template {} built: {} ({} MiB, {} MiB used on disk)",
        t.name,
        t.rootfs.display(),
        size >> 20,
        used >> 20
    );
    Ok(())
}

fn default_envd() -> Option<PathBuf> {
    let beside = std::env::current_exe().ok()?.parent()?.join("envd");
    if beside.is_file() {
        return Some(beside);
    }
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join("envd"))
        .find(|p| p.is_file())
}
