//! PID-1 duties, for when envd is the first process of a sandbox.
//!
//! Mounts `/proc`, `/sys`, `/dev` and `/tmp` when they are absent and sets the hostname.
//! Zombie reaping is done by the process table's reaper ([`crate::process::start_reaper`]),
//! which collects every child, including orphans re-parented to PID 1.

use std::path::Path;

use nix::mount::{MsFlags, mount};

/// Whether envd is PID 1 in its PID namespace.
pub fn is_pid1() -> bool {
    std::process::id() == 1
}

fn mounted(target: &str) -> bool {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(target))
}

fn ensure(source: &str, target: &str, fstype: &str, flags: MsFlags, data: Option<&str>) {
    if target != "/proc" && mounted(target) {
        return;
    }
    if target == "/proc" && Path::new("/proc/self/stat").exists() {
        return;
    }
    let _ = std::fs::create_dir_all(target);
    match mount(Some(source), target, Some(fstype), flags, data) {
        Ok(()) => tracing::debug!(target, fstype, "mounted"),
        Err(e) => tracing::warn!(target, fstype, error = %e, "mount failed"),
    }
}

/// Mounts the pseudo filesystems a sandbox needs and sets the hostname.
pub fn setup(hostname: Option<&str>) {
    let nosuid = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    ensure("proc", "/proc", "proc", nosuid, None);
    ensure("sysfs", "/sys", "sysfs", nosuid, None);
    ensure(
        "devtmpfs",
        "/dev",
        "devtmpfs",
        MsFlags::MS_NOSUID,
        Some("mode=0755"),
    );
    ensure(
        "devpts",
        "/dev/pts",
        "devpts",
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    );
    if !Path::new("/dev/ptmx").exists() {
        let _ = std::os::unix::fs::symlink("pts/ptmx", "/dev/ptmx");
    }
    ensure(
        "tmpfs",
        "/tmp",
        "tmpfs",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=1777"),
    );
    if let Some(name) = hostname.filter(|n| !n.is_empty())
        && let Err(e) = nix::unistd::sethostname(name)
    {
        tracing::warn!(hostname = name, error = %e, "cannot set hostname");
    }
}
