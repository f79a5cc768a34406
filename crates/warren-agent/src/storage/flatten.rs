//! Building ext4 images from directories ([`make_ext4`]), folding base + copy-on-write layer
//! into a new standalone image ([`flatten`]), and real disk usage ([`disk_usage`]).

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::mount::{MntFlags, MsFlags};

use super::StorageError;
use super::rootfs::overlay_path;
use crate::command::Cmd;

/// Blocks and inodes actually used under a path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskUsage {
    /// Bytes allocated on disk (sum of `st_blocks * 512`, hard links counted once).
    pub bytes: u64,
    /// Files, dirs and links seen.
    pub inodes: u64,
}

/// Disk usage of `path` (a file or a tree), counting blocks actually allocated, not apparent
/// size: sparse files count only their data. Stays on `path`'s filesystem (like `du -x`), so a
/// mounted rootfs inside a sandbox dir is not counted twice.
pub fn disk_usage(path: &Path) -> Result<DiskUsage, StorageError> {
    let root = std::fs::symlink_metadata(path).map_err(StorageError::io("stat", path))?;
    let dev = root.dev();
    let mut seen = HashSet::new();
    let mut usage = DiskUsage::default();
    let mut stack = vec![(path.to_path_buf(), root)];
    while let Some((p, md)) = stack.pop() {
        if md.nlink() > 1 && !md.is_dir() && !seen.insert(md.ino()) {
            continue;
        }
        usage.bytes += md.blocks() * 512;
        usage.inodes += 1;
        if md.is_dir() {
            let entries = std::fs::read_dir(&p).map_err(StorageError::io("read dir", &p))?;
            for entry in entries {
                let entry = entry.map_err(StorageError::io("read dir", &p))?;
                let child = entry.path();
                let cmd = match std::fs::symlink_metadata(&child) {
                    Ok(m) => m,
                    // Vanished while walking (a running sandbox deletes files): not an error.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(StorageError::io("stat", &child)(e)),
                };
                if cmd.dev() == dev {
                    stack.push((child, cmd));
                }
            }
        }
    }
    Ok(usage)
}

/// Makes `out_image` a new ext4 filesystem holding a copy of directory `src` (`mkfs.ext4 -d`),
/// sized to the content plus headroom (25% + 64 MiB, at least 128 MiB); the file is sparse.
/// An existing `out_image` is replaced.
pub fn make_ext4(src: &Path, out_image: &Path) -> Result<u64, StorageError> {
    let usage = disk_usage_all(src)?;
    let content = usage.bytes.max(1);
    let size = (content + content / 4 + (64 << 20)).max(128 << 20);
    let size_mib = size.div_ceil(1 << 20);
    // Enough inodes for the content twice over (default ratio may run out on small images
    // with many small files, like a Debian rootfs).
    let inodes = (usage.inodes * 2 + 4096).max(16384);
    match std::fs::remove_file(out_image) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(StorageError::io("remove", out_image)(e)),
    }
    if let Some(parent) = out_image.parent() {
        std::fs::create_dir_all(parent).map_err(StorageError::io("create dir", parent))?;
    }
    Cmd::new("mkfs.ext4")
        .args(["-q", "-F", "-t", "ext4", "-m", "0", "-L", "warren"])
        .arg("-N")
        .arg(inodes.to_string())
        .args(["-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard"])
        .arg("-d")
        .arg(src)
        .arg(out_image)
        .arg(format!("{size_mib}M"))
        .timeout(Duration::from_secs(600))
        .run()?;
    Ok(size_mib << 20)
}

/// Like [`disk_usage`] but crossing filesystems (a build dir may hold bind mounts).
fn disk_usage_all(path: &Path) -> Result<DiskUsage, StorageError> {
    let mut total = DiskUsage::default();
    let mut stack: Vec<PathBuf> = vec![path.to_path_buf()];
    let mut seen = HashSet::new();
    while let Some(p) = stack.pop() {
        let md = std::fs::symlink_metadata(&p).map_err(StorageError::io("stat", &p))?;
        if md.nlink() > 1 && !md.is_dir() && !seen.insert((md.dev(), md.ino())) {
            continue;
        }
        // Apparent size rounded up to 4 KiB blocks: the copy will not be sparse-aware.
        total.bytes += md.len().div_ceil(4096) * 4096;
        total.inodes += 1;
        if md.is_dir() {
            for entry in std::fs::read_dir(&p).map_err(StorageError::io("read dir", &p))? {
                stack.push(entry.map_err(StorageError::io("read dir", &p))?.path());
            }
        }
    }
    Ok(total)
}

/// Folds a sandbox's copy-on-write layer `upper_dir` over its base `lower_dir` into a new
/// standalone ext4 image `out_image` (no dependency on the base). Deletions and opaque dirs in
/// the upper (overlay whiteouts) are honoured because the copy is taken from a read-only
/// overlay mount of the two layers, made for the duration of the call next to `out_image`.
///
/// The sandbox must not be writing (paused or stopped): overlayfs forbids changing a layer
/// while it is in use by a mount.
pub fn flatten(lower_dir: &Path, upper_dir: &Path, out_image: &Path) -> Result<u64, StorageError> {
    let parent = out_image.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(StorageError::io("create dir", parent))?;
    let merged = parent.join(format!(
        ".flatten-{}-{}",
        std::process::id(),
        out_image
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    std::fs::create_dir_all(&merged).map_err(StorageError::io("create dir", &merged))?;
    // Two lower layers and no upper: a read-only overlay, so nothing can be written into the
    // sandbox's layer while we copy.
    let options = format!(
        "lowerdir={}:{}",
        overlay_path(upper_dir)?,
        overlay_path(lower_dir)?
    );
    let mounted = nix::mount::mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        MsFlags::MS_RDONLY,
        Some(options.as_str()),
    );
    if let Err(source) = mounted {
        let _ = std::fs::remove_dir(&merged);
        return Err(StorageError::Mount {
            op: "mount overlay",
            path: merged,
            source,
        });
    }
    let result = make_ext4(&merged, out_image);
    let unmounted = nix::mount::umount2(&merged, MntFlags::empty());
    let _ = std::fs::remove_dir(&merged);
    let size = result?;
    unmounted.map_err(|source| StorageError::Mount {
        op: "unmount",
        path: merged,
        source,
    })?;
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_usage_counts_blocks_not_apparent_size() {
        let dir = tempfile::tempdir().unwrap();
        let sparse = dir.path().join("sparse");
        let f = std::fs::File::create(&sparse).unwrap();
        f.set_len(1 << 30).unwrap();
        std::fs::write(dir.path().join("data"), vec![7u8; 64 * 1024]).unwrap();
        let u = disk_usage(dir.path()).unwrap();
        assert!(u.bytes >= 64 * 1024, "{u:?}");
        assert!(u.bytes < 1 << 20, "sparse file must not count: {u:?}");
        assert_eq!(u.inodes, 3);
        let one = disk_usage(&sparse).unwrap();
        assert_eq!(one.bytes, 0);
    }
}
