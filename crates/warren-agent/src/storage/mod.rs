//! Storage on one host: template images, their shared read-only mounts, each sandbox's
//! copy-on-write rootfs, flatten and disk usage (DESIGN §3 "Storage", gvisor flavour).
//!
//! Why this shape: a template is one ext4 image (the same file will serve Firecracker later).
//! For gVisor the image is loop-mounted read-only **once per host** ([`ImageRegistry`],
//! refcounted: the last [`ImageLease`] to go unmounts it and frees the loop device), and every
//! sandbox gets an overlayfs whose upper dir is its own ([`SandboxRootfs`]): creating a sandbox
//! costs a mkdir and a mount, never a copy. [`flatten`] turns base + upper into a new standalone
//! image (snapshot templates), [`disk_usage`] counts blocks really used.
//!
//! On-disk layout under the data dir `$DATA`:
//! ```text
//! $DATA/templates/<name>/rootfs.ext4      the image
//! $DATA/templates/<name>/checkpoint/      runsc checkpoint of a snapshot template (optional)
//! $DATA/templates/<name>/template.json    metadata (versioned)
//! $DATA/mnt/templates/<name>/             the image's read-only mount (while leased)
//! $DATA/sandboxes/<id>/{upper,work}/      the sandbox's copy-on-write layer
//! $DATA/sandboxes/<id>/rootfs/            the merged overlay the runtime uses as its root
//! ```
//! Everything is re-derivable from the kernel's mount table, so an agent restarted while
//! sandboxes run adopts existing mounts instead of mounting twice.
//!
//! All functions here block (mount, mkfs, directory walks): async callers use `spawn_blocking`.
//! Names that become paths (template names, sandbox ids) are validated by [`validate_name`].

mod flatten;
mod image;
mod loopdev;
pub mod mountinfo;
mod rootfs;
mod template_store;

use std::io::Write;
use std::path::{Path, PathBuf};

pub use flatten::{DiskUsage, disk_usage, flatten, make_ext4};
pub use image::{ImageLease, ImageRegistry};
pub use rootfs::SandboxRootfs;
pub use template_store::{Template, TemplateKind, TemplateMeta, TemplateName, TemplateStore};

use crate::command::CommandError;

/// Errors of the storage module. Every variant names the path, name or command that failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A template name or sandbox id is not a safe path component.
    #[error("invalid {kind} {name:?}: {reason}")]
    InvalidName {
        /// What the name names ("template name", "sandbox id").
        kind: &'static str,
        /// The offending input.
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The template does not exist (no image).
    #[error("template {0} not found")]
    TemplateNotFound(String),
    /// The template already exists.
    #[error("template {0} already exists")]
    TemplateExists(String),
    /// Metadata on disk has a version this agent does not understand.
    #[error("{path}: unsupported metadata version {version}")]
    UnsupportedVersion {
        /// The metadata file.
        path: PathBuf,
        /// The version found.
        version: u32,
    },
    /// Metadata on disk could not be parsed.
    #[error("{path}: malformed metadata: {source}")]
    Metadata {
        /// The metadata file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A path is unusable in overlayfs mount options (contains `,`, `:` or `\`).
    #[error("path {0} cannot be used in overlay options")]
    UnsafePath(PathBuf),
    /// A filesystem operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// The operation ("create dir", "read", ...).
        op: &'static str,
        /// The path it failed on.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A mount or unmount failed.
    #[error("{op} {path}: {source}")]
    Mount {
        /// "mount ext4", "mount overlay", "unmount".
        op: &'static str,
        /// The mount point.
        path: PathBuf,
        /// The errno.
        #[source]
        source: nix::Error,
    },
    /// Attaching or detaching a loop device failed.
    #[error("loop device for {path}: {op}: {source}")]
    Loop {
        /// The step ("get free", "configure", "detach", ...).
        op: &'static str,
        /// The image or device path.
        path: PathBuf,
        /// The errno.
        #[source]
        source: nix::Error,
    },
    /// An external command (mkfs.ext4, ...) failed.
    #[error(transparent)]
    Command(#[from] CommandError),
}

impl StorageError {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| StorageError::Io { op, path, source }
    }
}

/// Longest accepted name (it is a path component and part of kernel object names).
pub const MAX_NAME_LEN: usize = 63;

/// Checks that `name` is a safe single path component: `[a-z0-9][a-z0-9._-]{0,62}`, and no
/// `..` anywhere. Used for template names and sandbox ids (`kind` names which, for the error).
pub fn validate_name(kind: &'static str, name: &str) -> Result<(), StorageError> {
    let bad = |reason| {
        Err(StorageError::InvalidName {
            kind,
            name: name.to_string(),
            reason,
        })
    };
    let bytes = name.as_bytes();
    let Some(first) = bytes.first() else {
        return bad("must not be empty");
    };
    if bytes.len() > MAX_NAME_LEN {
        return bad("longer than 63 characters");
    }
    if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
        return bad("must start with a lower-case letter or digit");
    }
    if !bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
    {
        return bad("only a-z, 0-9, '.', '_' and '-' are allowed");
    }
    if name.contains("..") {
        return bad("must not contain '..'");
    }
    Ok(())
}

/// `$DATA/sandboxes/<id>`: everything of one sandbox on disk.
pub fn sandbox_dir(data_dir: &Path, sandbox_id: &str) -> Result<PathBuf, StorageError> {
    validate_name("sandbox id", sandbox_id)?;
    Ok(data_dir.join("sandboxes").join(sandbox_id))
}

/// Writes `bytes` to `path` atomically and durably: a temp file in the same dir, fsynced,
/// renamed over `path`, then the directory fsynced. Readers see the old or the new content.
pub fn write_file_atomic(path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(StorageError::io("create dir", dir))?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp).map_err(StorageError::io("create", &tmp))?;
    f.write_all(bytes)
        .map_err(StorageError::io("write", &tmp))?;
    f.sync_all().map_err(StorageError::io("fsync", &tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(StorageError::io("rename", path))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StorageError::io("fsync dir", dir))?;
    Ok(())
}

/// True when running as root (tests use it to skip with a printed reason).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, ok: bool) {
        let r = validate_name("template name", name);
        assert_eq!(r.is_ok(), ok, "{name:?}: {r:?}");
    }

    #[test]
    fn names() {
        for good in [
            "minimal",
            "base",
            "a",
            "0",
            "py3.11",
            "my_tpl-2",
            &"a".repeat(63),
        ] {
            check(good, true);
        }
        for bad in [
            "",
            "..",
            "a..b",
            ".hidden",
            "-x",
            "_x",
            "Upper",
            "a/b",
            "/abs",
            "a b",
            "a\0b",
            "é",
            &"a".repeat(64),
            "x:y",
            "x,y",
        ] {
            check(bad, false);
        }
    }

    #[test]
    fn sandbox_dir_validates() {
        assert!(sandbox_dir(Path::new("/d"), "../etc").is_err());
        assert_eq!(
            sandbox_dir(Path::new("/d"), "sb1").unwrap(),
            Path::new("/d/sandboxes/sb1")
        );
    }

    #[test]
    fn atomic_write_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/f.json");
        write_file_atomic(&p, b"one").unwrap();
        write_file_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let leftovers: Vec<_> = std::fs::read_dir(p.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1);
    }
}
