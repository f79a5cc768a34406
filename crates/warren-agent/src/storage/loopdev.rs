//! Read-only loop devices through the kernel's ioctls (`LOOP_CTL_GET_FREE`, `LOOP_CONFIGURE`,
//! `LOOP_CLR_FD`), without `losetup`: one syscall each, no output parsing.
//!
//! A device is configured with `LO_FLAGS_AUTOCLEAR`, and the returned [`LoopDevice`] keeps it
//! open. While we hold it open the kernel cannot auto-clear and recycle the number, so our own
//! detach can never hit a device someone else attached; if the agent dies before mounting, the
//! kernel frees the device when the fd closes.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::StorageError;

const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_CLR_FD: libc::c_ulong = 0x4C01;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LO_FLAGS_READ_ONLY: u32 = 1;
const LO_FLAGS_AUTOCLEAR: u32 = 4;
const LO_NAME_SIZE: usize = 64;

/// `struct loop_info64` from `<linux/loop.h>` (stable kernel ABI).
#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; LO_NAME_SIZE],
    lo_crypt_name: [u8; LO_NAME_SIZE],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

/// `struct loop_config` from `<linux/loop.h>`.
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// An attached loop device, held open (see the module doc).
#[derive(Debug)]
pub(crate) struct LoopDevice {
    path: PathBuf,
    file: File,
}

impl LoopDevice {
    /// `/dev/loopN`.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Attaches `image` read-only to a free loop device.
    pub(crate) fn attach_read_only(image: &Path) -> Result<LoopDevice, StorageError> {
        let backing = File::open(image).map_err(StorageError::io("open image", image))?;
        let ctl = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open("/dev/loop-control")
            .map_err(StorageError::io("open", "/dev/loop-control"))?;
        // Another process may take the free device between GET_FREE and CONFIGURE (EBUSY):
        // ask again, a bounded number of times.
        let mut last = nix::Error::EBUSY;
        for _ in 0..16 {
            // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a device number.
            let n = unsafe { libc::ioctl(ctl.as_raw_fd(), LOOP_CTL_GET_FREE) };
            if n < 0 {
                return Err(StorageError::Loop {
                    op: "get free",
                    path: image.to_path_buf(),
                    source: nix::Error::last(),
                });
            }
            let path = PathBuf::from(format!("/dev/loop{n}"));
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_CLOEXEC)
                .open(&path)
                .map_err(StorageError::io("open", &path))?;
            let mut name = [0u8; LO_NAME_SIZE];
            let img = image.as_os_str().as_encoded_bytes();
            let len = img.len().min(LO_NAME_SIZE - 1);
            name[..len].copy_from_slice(&img[..len]);
            let config = LoopConfig {
                fd: backing.as_raw_fd() as u32,
                block_size: 0,
                info: LoopInfo64 {
                    lo_device: 0,
                    lo_inode: 0,
                    lo_rdevice: 0,
                    lo_offset: 0,
                    lo_sizelimit: 0,
                    lo_number: 0,
                    lo_encrypt_type: 0,
                    lo_encrypt_key_size: 0,
                    lo_flags: LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR,
                    lo_file_name: name,
                    lo_crypt_name: [0; LO_NAME_SIZE],
                    lo_encrypt_key: [0; 32],
                    lo_init: [0; 2],
                },
                reserved: [0; 8],
            };
            // SAFETY: `config` is a valid, fully initialised `struct loop_config` that outlives
            // the call; the kernel only reads it.
            let r = unsafe { libc::ioctl(file.as_raw_fd(), LOOP_CONFIGURE, &config) };
            if r == 0 {
                tracing::debug!(image = %image.display(), device = %path.display(), "loop device attached");
                return Ok(LoopDevice { path, file });
            }
            last = nix::Error::last();
            if last != nix::Error::EBUSY {
                break;
            }
        }
        Err(StorageError::Loop {
            op: "configure",
            path: image.to_path_buf(),
            source: last,
        })
    }

    /// Opens an already attached device (adoption after an agent restart).
    pub(crate) fn open_existing(path: &Path) -> Result<LoopDevice, StorageError> {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .map_err(StorageError::io("open", path))?;
        Ok(LoopDevice {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Detaches the device (deferred by the kernel until its last user, e.g. a lazily unmounted
    /// filesystem, is gone) and closes it.
    pub(crate) fn detach(self) -> Result<(), StorageError> {
        // SAFETY: LOOP_CLR_FD takes no argument; the fd is a loop device we hold open.
        let r = unsafe { libc::ioctl(self.file.as_raw_fd(), LOOP_CLR_FD, 0) };
        if r != 0 {
            let e = nix::Error::last();
            // ENXIO: already detached (auto-clear ran). Anything else is a real failure.
            if e != nix::Error::ENXIO {
                return Err(StorageError::Loop {
                    op: "detach",
                    path: self.path.clone(),
                    source: e,
                });
            }
        }
        tracing::debug!(device = %self.path.display(), "loop device detached");
        Ok(())
    }
}
