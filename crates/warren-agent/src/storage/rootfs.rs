//! A sandbox's copy-on-write root filesystem: an overlayfs under `$DATA/sandboxes/<id>/`
//! (`upper/` and `work/`, merged at `rootfs/`) over its template's read-only mount.
//!
//! The upper dir is the sandbox's whole disk state: it survives unmount (pause, agent restart)
//! and is what [`super::flatten`] folds into a new template. An overlay already mounted at
//! `rootfs/` (agent restarted while the sandbox ran) is adopted, not mounted twice.

use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

use super::{ImageLease, StorageError, mountinfo, sandbox_dir};

/// A mounted sandbox rootfs. Holds its template lease, so the image stays mounted as long as
/// the overlay is. Not unmounted on drop: a running sandbox outlives the agent process;
/// call [`SandboxRootfs::unmount`] or [`SandboxRootfs::remove`].
#[derive(Debug)]
pub struct SandboxRootfs {
    sandbox_id: String,
    dir: PathBuf,
    lease: ImageLease,
}

impl SandboxRootfs {
    /// Mounts (or adopts) the overlay of sandbox `sandbox_id` over `lease`'s image, creating
    /// `upper/`, `work/` and `rootfs/` if needed (an existing upper is reused: resume).
    pub fn mount(
        data_dir: &Path,
        sandbox_id: &str,
        lease: ImageLease,
    ) -> Result<SandboxRootfs, StorageError> {
        let dir = sandbox_dir(data_dir, sandbox_id)?;
        let rootfs = SandboxRootfs {
            sandbox_id: sandbox_id.to_string(),
            dir,
            lease,
        };
        for d in [rootfs.upper_dir(), rootfs.work_dir(), rootfs.path()] {
            std::fs::create_dir_all(&d).map_err(StorageError::io("create dir", &d))?;
        }
        let target = rootfs.path();
        let existing =
            mountinfo::find(&target).map_err(StorageError::io("read", "/proc/self/mountinfo"))?;
        if let Some(entry) = existing.filter(|e| e.fs_type == "overlay") {
            tracing::info!(sandbox_id, source = %entry.source, "adopting mounted sandbox rootfs");
            return Ok(rootfs);
        }
        let lower = rootfs.lease.mount_point().to_path_buf();
        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            overlay_path(&lower)?,
            overlay_path(&rootfs.upper_dir())?,
            overlay_path(&rootfs.work_dir())?
        );
        nix::mount::mount(
            Some("overlay"),
            &target,
            Some("overlay"),
            MsFlags::empty(),
            Some(options.as_str()),
        )
        .map_err(|source| StorageError::Mount {
            op: "mount overlay",
            path: target.clone(),
            source,
        })?;
        tracing::debug!(sandbox_id, rootfs = %target.display(), "sandbox rootfs mounted");
        Ok(rootfs)
    }

    /// The sandbox this rootfs belongs to.
    pub fn sandbox_id(&self) -> &str {
        &self.sandbox_id
    }

    /// The merged root (`$DATA/sandboxes/<id>/rootfs`): the runtime's root path.
    pub fn path(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    /// The copy-on-write layer (`$DATA/sandboxes/<id>/upper`).
    pub fn upper_dir(&self) -> PathBuf {
        self.dir.join("upper")
    }

    /// overlayfs's work dir.
    pub fn work_dir(&self) -> PathBuf {
        self.dir.join("work")
    }

    /// `$DATA/sandboxes/<id>`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The read-only template mount under the overlay.
    pub fn lower_dir(&self) -> &Path {
        self.lease.mount_point()
    }

    /// The template lease this rootfs holds.
    pub fn lease(&self) -> &ImageLease {
        &self.lease
    }

    /// Unmounts the overlay and releases the template lease; `upper/` is kept (pause).
    pub fn unmount(self) -> Result<(), StorageError> {
        unmount_overlay(&self.path())?;
        self.lease.release()
    }

    /// Unmounts and deletes everything under `$DATA/sandboxes/<id>/` that this module made
    /// (`upper/`, `work/`, `rootfs/`); the dir itself goes too if nothing else is left in it.
    pub fn remove(self) -> Result<(), StorageError> {
        let dir = self.dir.clone();
        self.unmount()?;
        remove_layers(&dir)
    }

    /// Deletes the layers of a sandbox whose rootfs is not mounted (e.g. destroyed while
    /// paused); unmounts a leftover overlay first. Idempotent.
    pub fn remove_unmounted(data_dir: &Path, sandbox_id: &str) -> Result<(), StorageError> {
        let dir = sandbox_dir(data_dir, sandbox_id)?;
        unmount_overlay(&dir.join("rootfs"))?;
        remove_layers(&dir)
    }

    /// True if an overlay is mounted at `$DATA/sandboxes/<id>/rootfs`.
    pub fn is_mounted(data_dir: &Path, sandbox_id: &str) -> Result<bool, StorageError> {
        let target = sandbox_dir(data_dir, sandbox_id)?.join("rootfs");
        Ok(mountinfo::find(&target)
            .map_err(StorageError::io("read", "/proc/self/mountinfo"))?
            .is_some_and(|e| e.fs_type == "overlay"))
    }
}

fn unmount_overlay(target: &Path) -> Result<(), StorageError> {
    let mounted = mountinfo::find(target)
        .map_err(StorageError::io("read", "/proc/self/mountinfo"))?
        .is_some();
    if !mounted {
        return Ok(());
    }
    nix::mount::umount2(target, MntFlags::empty()).map_err(|source| StorageError::Mount {
        op: "unmount",
        path: target.to_path_buf(),
        source,
    })?;
    tracing::debug!(rootfs = %target.display(), "sandbox rootfs unmounted");
    Ok(())
}

fn remove_layers(dir: &Path) -> Result<(), StorageError> {
    for sub in ["upper", "work", "rootfs"] {
        let p = dir.join(sub);
        match std::fs::remove_dir_all(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StorageError::io("remove", &p)(e)),
        }
    }
    // Other modules (runtime state, checkpoints) may keep files here: only an empty dir goes.
    let _ = std::fs::remove_dir(dir);
    Ok(())
}

/// overlayfs options are comma- and colon-separated with backslash escapes: refuse paths that
/// would need escaping rather than mis-mount.
pub(crate) fn overlay_path(p: &Path) -> Result<&str, StorageError> {
    match p.to_str() {
        Some(s) if !s.contains([',', ':', '\\']) => Ok(s),
        _ => Err(StorageError::UnsafePath(p.to_path_buf())),
    }
}
