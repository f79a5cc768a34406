//! The refcounted registry of template images mounted read-only, once per host.
//!
//! `acquire(name)` mounts `$DATA/templates/<name>/rootfs.ext4` through a read-only loop device
//! at `$DATA/mnt/templates/<name>` the first time and counts a lease; dropping (or
//! [`ImageLease::release`]-ing) the last lease unmounts it and detaches the loop device.
//! A mount left by a previous agent process is adopted (found in mountinfo), not mounted again.
//!
//! One `std::sync::Mutex` guards the map: held only for mount/unmount syscalls (milliseconds,
//! never across `.await`), so it also serialises "last release" against a concurrent "first
//! acquire" of the same image.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use nix::mount::{MntFlags, MsFlags};

use super::loopdev::LoopDevice;
use super::{StorageError, TemplateName, TemplateStore, mountinfo};

struct Mounted {
    refs: usize,
    mount_point: PathBuf,
    /// `None` when the adopted mount's source was not a loop device we could open.
    device: Option<LoopDevice>,
}

struct Inner {
    store: TemplateStore,
    mnt_root: PathBuf,
    mounted: Mutex<HashMap<TemplateName, Mounted>>,
}

/// Cheap-to-clone handle on the host's mounted template images.
#[derive(Clone)]
pub struct ImageRegistry {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ImageRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageRegistry")
            .field("mnt_root", &self.inner.mnt_root)
            .finish()
    }
}

/// One use of a mounted template image. Dropping it releases the use (errors are logged);
/// call [`ImageLease::release`] to see them.
#[derive(Debug)]
pub struct ImageLease {
    registry: ImageRegistry,
    name: TemplateName,
    mount_point: PathBuf,
    released: bool,
}

impl ImageLease {
    /// Where the image is mounted (read-only): the overlay lowerdir.
    pub fn mount_point(&self) -> &Path {
        &self.mount_point
    }

    /// The template this lease is on.
    pub fn template(&self) -> &TemplateName {
        &self.name
    }

    /// Releases this use now; the last one unmounts the image and frees its loop device.
    pub fn release(mut self) -> Result<(), StorageError> {
        self.released = true;
        self.registry.release_one(&self.name)
    }
}

impl Drop for ImageLease {
    fn drop(&mut self) {
        if !self.released
            && let Err(e) = self.registry.release_one(&self.name)
        {
            tracing::warn!(template = %self.name, error = %e, "releasing template image failed");
        }
    }
}

impl ImageRegistry {
    /// The registry of data dir `data_dir` (mounts go under `$DATA/mnt/templates`).
    pub fn new(data_dir: &Path) -> Self {
        ImageRegistry {
            inner: Arc::new(Inner {
                store: TemplateStore::new(data_dir),
                mnt_root: data_dir.join("mnt").join("templates"),
                mounted: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// `$DATA/mnt/templates/<name>`.
    pub fn mount_point(&self, name: &TemplateName) -> PathBuf {
        self.inner.mnt_root.join(name.as_str())
    }

    /// Live leases on `name` (0 if not mounted by this registry).
    pub fn refcount(&self, name: &TemplateName) -> usize {
        self.lock().get(name).map_or(0, |m| m.refs)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TemplateName, Mounted>> {
        // A panic while holding the lock leaves plain data (counts, paths) that is still
        // consistent with the kernel's state, so a poisoned lock is safe to keep using.
        self.inner
            .mounted
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Leases template `name`'s image, mounting it read-only if this is the first lease.
    pub fn acquire(&self, name: &TemplateName) -> Result<ImageLease, StorageError> {
        let mut map = self.lock();
        if let Some(m) = map.get_mut(name) {
            m.refs += 1;
            return Ok(self.lease(name, m.mount_point.clone()));
        }
        let image = self.inner.store.rootfs_path(name);
        if !image.is_file() {
            return Err(StorageError::TemplateNotFound(name.to_string()));
        }
        let mount_point = self.mount_point(name);
        std::fs::create_dir_all(&mount_point)
            .map_err(StorageError::io("create dir", &mount_point))?;
        let existing = mountinfo::find(&mount_point)
            .map_err(StorageError::io("read", "/proc/self/mountinfo"))?;
        let device = match existing {
            Some(entry) => {
                // Left by a previous agent process: adopt it.
                tracing::info!(template = %name, source = %entry.source, "adopting mounted template image");
                LoopDevice::open_existing(Path::new(&entry.source)).ok()
            }
            None => {
                let dev = LoopDevice::attach_read_only(&image)?;
                if let Err(source) = nix::mount::mount(
                    Some(dev.path()),
                    &mount_point,
                    Some("ext4"),
                    MsFlags::MS_RDONLY | MsFlags::MS_NODEV,
                    None::<&str>,
                ) {
                    let _ = dev.detach();
                    return Err(StorageError::Mount {
                        op: "mount ext4",
                        path: mount_point,
                        source,
                    });
                }
                tracing::debug!(template = %name, device = %dev.path().display(), "template image mounted");
                Some(dev)
            }
        };
        map.insert(
            name.clone(),
            Mounted {
                refs: 1,
                mount_point: mount_point.clone(),
                device,
            },
        );
        Ok(self.lease(name, mount_point))
    }

    fn lease(&self, name: &TemplateName, mount_point: PathBuf) -> ImageLease {
        ImageLease {
            registry: self.clone(),
            name: name.clone(),
            mount_point,
            released: false,
        }
    }

    fn release_one(&self, name: &TemplateName) -> Result<(), StorageError> {
        let mut map = self.lock();
        let Some(m) = map.get_mut(name) else {
            return Ok(());
        };
        m.refs -= 1;
        if m.refs > 0 {
            return Ok(());
        }
        let m = map
            .remove(name)
            .expect("entry was just found under the lock");
        unmount_image(&m.mount_point, m.device)
    }

    /// Unmounts images under `$DATA/mnt/templates` that no lease uses, e.g. mounts adopted
    /// from a previous agent process whose sandboxes are gone. Call after live sandboxes have
    /// re-acquired their leases. Returns the mount points it unmounted.
    pub fn unmount_unused(&self) -> Result<Vec<PathBuf>, StorageError> {
        let map = self.lock();
        let in_use: Vec<&Path> = map.values().map(|m| m.mount_point.as_path()).collect();
        let mounts = mountinfo::read().map_err(StorageError::io("read", "/proc/self/mountinfo"))?;
        let mut done = Vec::new();
        for entry in mounts {
            if entry.mount_point.parent() != Some(self.inner.mnt_root.as_path())
                || in_use.contains(&entry.mount_point.as_path())
            {
                continue;
            }
            let device = LoopDevice::open_existing(Path::new(&entry.source)).ok();
            unmount_image(&entry.mount_point, device)?;
            done.push(entry.mount_point);
        }
        Ok(done)
    }
}

fn unmount_image(mount_point: &Path, device: Option<LoopDevice>) -> Result<(), StorageError> {
    match nix::mount::umount2(mount_point, MntFlags::empty()) {
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
        Err(source) => {
            return Err(StorageError::Mount {
                op: "unmount",
                path: mount_point.to_path_buf(),
                source,
            });
        }
    }
    let _ = std::fs::remove_dir(mount_point);
    if let Some(dev) = device {
        dev.detach()?;
    }
    tracing::debug!(mount_point = %mount_point.display(), "template image unmounted");
    Ok(())
}
