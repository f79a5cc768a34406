//! The bare-`runsc` baseline shared by the benchmarks (`#[path]`-included by
//! `warren-agent/examples/bench.rs` and `warren/benches/bench_fleet.rs`): a template's image
//! loop-mounted read-only as an OCI bundle's root, and `runsc` run on it with no network, so
//! our numbers can be set against the engine alone, measured in the same run.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// Runs `runsc --root=<root> --network=none <args>`; stderr goes to `<root>/runsc.log`.
pub fn runsc(root: &Path, args: &[&str]) -> anyhow::Result<()> {
    // `run`/`restore` leave daemons holding stdio: send it to a file, not a pipe.
    let log = root.join("runsc.log");
    let err = std::fs::File::create(&log)?;
    let status = std::process::Command::new("runsc")
        .arg(format!("--root={}", root.display()))
        .arg("--network=none")
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(err)
        .status()?;
    anyhow::ensure!(
        status.success(),
        "runsc {args:?}: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    Ok(())
}

/// A bundle whose root is a template image mounted read-only; `Drop` unmounts it.
pub struct BareBundle {
    /// `runsc --root`.
    pub root: PathBuf,
    /// The bundle dir (`config.json`), as a string for `--bundle`.
    pub bundle: String,
    mnt: PathBuf,
}

impl BareBundle {
    /// Mounts `rootfs` (an ext4 image) under `dir` and writes a bundle running `sleep`.
    pub fn new(dir: &Path, rootfs: &Path) -> anyhow::Result<BareBundle> {
        let root = dir.join("bare-root");
        let mnt = dir.join("bare-mnt");
        let bundle = dir.join("bare-bundle");
        for d in [&root, &mnt, &bundle] {
            std::fs::create_dir_all(d)?;
        }
        let st = std::process::Command::new("mount")
            .args(["-o", "loop,ro"])
            .arg(rootfs)
            .arg(&mnt)
            .status()?;
        anyhow::ensure!(st.success(), "mount template image {}", rootfs.display());
        let me = BareBundle {
            root,
            bundle: bundle.to_string_lossy().into_owned(),
            mnt: mnt.clone(),
        };
        let spec = warren_agent::runtime::BootSpec {
            sandbox_id: "bare".into(),
            sandbox_dir: bundle.clone(),
            rootfs: mnt,
            netns_path: "/proc/self/ns/net".into(),
            vcpus: 1,
            memory_mib: 256,
            env: vec![],
            hostname: "bare".into(),
            args: vec!["/bin/sleep".into(), "100000".into()],
        };
        let mut cfg = serde_json::to_value(warren_agent::runtime::gvisor::oci_config(&spec)?)?;
        cfg["root"]["readonly"] = true.into();
        cfg["linux"]["namespaces"] = serde_json::json!([{"type":"pid"},{"type":"ipc"},{"type":"uts"},{"type":"mount"},{"type":"network"}]);
        cfg["linux"]["cgroupsPath"] = "/warren-bench/bare".into();
        std::fs::write(bundle.join("config.json"), serde_json::to_vec(&cfg)?)?;
        Ok(me)
    }

    /// `runsc run --detach` then `runsc exec <id> /bin/true`: the engine's create → first exec.
    pub fn run_and_exec(&self, id: &str) -> anyhow::Result<()> {
        runsc(
            &self.root,
            &["run", "--detach", "--bundle", &self.bundle, id],
        )?;
        runsc(&self.root, &["exec", id, "/bin/true"])
    }

    /// `runsc delete --force <id>`.
    pub fn delete(&self, id: &str) -> anyhow::Result<()> {
        runsc(&self.root, &["delete", "--force", id])
    }
}

impl Drop for BareBundle {
    fn drop(&mut self) {
        if let Ok(out) = std::process::Command::new("runsc")
            .arg(format!("--root={}", self.root.display()))
            .args(["list", "-quiet"])
            .output()
        {
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = self.delete(id);
            }
        }
        let _ = std::process::Command::new("umount").arg(&self.mnt).status();
    }
}
