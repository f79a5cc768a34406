//! Building template images on a host: `minimal` (busybox + envd, offline, seconds) and
//! `base` (Debian bookworm by debootstrap from the host's apt mirror + python3, pip, git,
//! curl + envd). DESIGN §5.
//!
//! Both fill a root directory, then [`crate::storage::make_ext4`] turns it into
//! `$DATA/templates/<name>/rootfs.ext4` (sized to content plus headroom, sparse). A build
//! happens in a staging dir and is moved into place at the end, so a failed build never leaves
//! a half-made template under its name. The sandbox's init is envd (`/usr/bin/envd`), started
//! by the runtime; the image only has to contain it and what it needs to run.

mod base;
mod elf;

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

pub use base::build_base;

use crate::command::{Cmd, CommandError};
use crate::storage::{
    StorageError, Template, TemplateKind, TemplateMeta, TemplateName, TemplateStore, make_ext4,
};

/// Where envd lives inside every template.
pub const ENVD_PATH: &str = "/usr/bin/envd";
/// Uid/gid of the unprivileged `user` account in every template.
pub const USER_UID: u32 = 1000;

/// Errors of a template build; variants name the file or command.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// A needed host tool or file is missing.
    #[error("{what} not found at {path} ({hint})")]
    Missing {
        /// What is missing ("busybox", "envd binary", ...).
        what: &'static str,
        /// Where we looked.
        path: PathBuf,
        /// How to get it.
        hint: &'static str,
    },
    /// The apt mirror could not be determined.
    #[error("no Debian mirror found in /etc/apt/sources.list or /etc/apt/sources.list.d")]
    NoMirror,
    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// The operation.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Storage (validation, mkfs, moving into place) failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A build command failed.
    #[error(transparent)]
    Command(#[from] CommandError),
}

fn io_err(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> TemplateError {
    let path = path.into();
    move |source| TemplateError::Io { op, path, source }
}

/// Build progress reported to the caller (the CLI renders it with indicatif).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// A new phase started: `step` of `total`.
    Phase {
        /// 1-based step number.
        step: u32,
        /// Number of steps.
        total: u32,
        /// What it does.
        message: String,
    },
    /// A line of output of the current phase (e.g. debootstrap's "I: Retrieving ...").
    Line(String),
}

/// The `minimal` template built from `envd`, cached under `cache_root` and keyed by the envd
/// binary's size and mtime: built on the first call, reused until envd changes (older keys are
/// removed). Concurrent callers (parallel test processes) build aside and race on a rename;
/// the loser uses the winner's. Returns the template dir (`…/templates/minimal`).
pub fn cached_minimal(cache_root: &Path, envd: &Path) -> Result<PathBuf, TemplateError> {
    let meta = std::fs::metadata(envd).map_err(io_err("stat", envd))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    std::fs::create_dir_all(cache_root).map_err(io_err("create dir", cache_root))?;
    let key = format!("minimal-{}-{mtime}", meta.len());
    let done = cache_root.join(&key);
    let template = |base: &Path| base.join("templates").join("minimal");
    if template(&done).join("rootfs.ext4").is_file() {
        return Ok(template(&done));
    }
    let building = cache_root.join(format!("building-{}-{key}", std::process::id()));
    let _ = std::fs::remove_dir_all(&building);
    build_minimal(&building, envd, &mut |_| {})?;
    if std::fs::rename(&building, &done).is_err() {
        let _ = std::fs::remove_dir_all(&building);
    }
    if let Ok(entries) = std::fs::read_dir(cache_root) {
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("minimal-") && name != key {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    Ok(template(&done))
}

/// Builds template `minimal` from Debian's `busybox-static` and the envd binary `envd`, into
/// `$DATA/templates/minimal/` (replacing an existing one). Offline, seconds.
pub fn build_minimal(
    data_dir: &Path,
    envd: &Path,
    progress: &mut dyn FnMut(Progress),
) -> Result<Template, TemplateError> {
    let name = TemplateName::new("minimal")?;
    let store = TemplateStore::new(data_dir);
    let staging = store.create_staging(&name)?;
    let result = (|| {
        let root = staging.join("root");
        progress(Progress::Phase {
            step: 1,
            total: 3,
            message: "populating rootfs (busybox, envd, accounts)".into(),
        });
        populate_minimal_rootfs(&root, envd)?;
        progress(Progress::Phase {
            step: 2,
            total: 3,
            message: "making ext4 image".into(),
        });
        make_ext4(&root, &staging.join("rootfs.ext4"))?;
        std::fs::remove_dir_all(&root).map_err(io_err("remove", &root))?;
        progress(Progress::Phase {
            step: 3,
            total: 3,
            message: "installing template".into(),
        });
        finish(&store, &staging, &name)
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    result
}

fn finish(
    store: &TemplateStore,
    staging: &Path,
    name: &TemplateName,
) -> Result<Template, TemplateError> {
    store.commit_staging(staging, name, true)?;
    store.write_meta(name, &TemplateMeta::new(TemplateKind::Image))?;
    Ok(store.get(name)?)
}

/// The busybox binary on this host (Debian's `busybox-static`).
fn host_busybox() -> Result<PathBuf, TemplateError> {
    for p in ["/bin/busybox", "/usr/bin/busybox"] {
        let p = Path::new(p);
        if p.is_file() {
            return Ok(p.to_path_buf());
        }
    }
    Err(TemplateError::Missing {
        what: "busybox",
        path: "/bin/busybox".into(),
        hint: "apt-get install busybox-static",
    })
}

/// Fills `root` with the minimal template's files: busybox and its applet links, envd (with
/// its ELF interpreter and libraries if it is dynamically linked), accounts, /tmp, hostname,
/// resolv.conf.
pub fn populate_minimal_rootfs(root: &Path, envd: &Path) -> Result<(), TemplateError> {
    let busybox = host_busybox()?;
    if elf::interpreter(&busybox)?.is_some() {
        return Err(TemplateError::Missing {
            what: "statically linked busybox",
            path: busybox,
            hint: "apt-get install busybox-static",
        });
    }
    for d in [
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "usr/local/bin",
        "etc",
        "proc",
        "sys",
        "dev",
        "run",
        "var/tmp",
        "root",
        "home/user",
    ] {
        let p = root.join(d);
        std::fs::create_dir_all(&p).map_err(io_err("create dir", &p))?;
    }
    let tmp = root.join("tmp");
    std::fs::create_dir_all(&tmp).map_err(io_err("create dir", &tmp))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777))
        .map_err(io_err("chmod", &tmp))?;
    let home = root.join("home/user");
    std::os::unix::fs::chown(&home, Some(USER_UID), Some(USER_UID))
        .map_err(io_err("chown", &home))?;

    let bb = root.join("bin/busybox");
    std::fs::copy(&busybox, &bb).map_err(io_err("copy", &bb))?;
    let list = Cmd::new(&busybox).arg("--list-full").run()?;
    for applet in list.stdout_str().lines() {
        let rel = applet.trim().trim_start_matches('/');
        if rel.is_empty() || rel.contains("..") {
            continue;
        }
        let link = root.join(rel);
        if link.symlink_metadata().is_ok() {
            continue;
        }
        if let Some(parent) = link.parent() {
            std::fs::create_dir_all(parent).map_err(io_err("create dir", parent))?;
        }
        symlink("/bin/busybox", &link).map_err(io_err("symlink", &link))?;
    }

    install_binary(root, envd, Path::new(ENVD_PATH))?;

    let files: [(&str, String, u32); 6] = [
        (
            "etc/passwd",
            format!(
                "root:x:0:0:root:/root:/bin/sh\nuser:x:{USER_UID}:{USER_UID}:user:/home/user:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
            ),
            0o644,
        ),
        (
            "etc/group",
            format!("root:x:0:\nuser:x:{USER_UID}:\nnogroup:x:65534:\n"),
            0o644,
        ),
        ("etc/hostname", "sandbox\n".into(), 0o644),
        (
            "etc/hosts",
            "127.0.0.1\tlocalhost sandbox\n::1\tlocalhost ip6-localhost\n".into(),
            0o644,
        ),
        ("etc/resolv.conf", crate::net::resolv_conf(), 0o644),
        (
            "etc/os-release",
            "NAME=\"Warren minimal\"\nID=warren-minimal\nPRETTY_NAME=\"Warren minimal (busybox)\"\n"
                .into(),
            0o644,
        ),
    ];
    for (rel, content, mode) in files {
        let p = root.join(rel);
        std::fs::write(&p, content).map_err(io_err("write", &p))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
            .map_err(io_err("chmod", &p))?;
    }
    // The e2b SDK runs every command as `/bin/bash -l -c ...`; busybox has no bash applet, so
    // bash is its sh (ash takes the same -l and -c).
    let bash = root.join("bin/bash");
    if bash.symlink_metadata().is_err() {
        std::fs::write(&bash, "#!/bin/sh\nexec /bin/sh \"$@\"\n")
            .map_err(io_err("write", &bash))?;
        std::fs::set_permissions(&bash, std::fs::Permissions::from_mode(0o755))
            .map_err(io_err("chmod", &bash))?;
    }
    Ok(())
}

/// Copies executable `src` to `dest` (absolute, inside `root`), mode 0755. If it is dynamically
/// linked, also copies its ELF interpreter and the libraries `ldd` lists, at the same paths,
/// so it runs inside the image.
pub fn install_binary(root: &Path, src: &Path, dest: &Path) -> Result<(), TemplateError> {
    if !src.is_file() {
        return Err(TemplateError::Missing {
            what: "binary to install",
            path: src.to_path_buf(),
            hint: "build envd first: cargo build -p envd",
        });
    }
    let target = root.join(dest.strip_prefix("/").unwrap_or(dest));
    copy_file(src, &target, Some(0o755))?;
    if elf::interpreter(src)?.is_none() {
        return Ok(());
    }
    let out = Cmd::new("ldd").arg(src).run()?;
    for lib in elf::ldd_paths(&out.stdout_str()) {
        let t = root.join(lib.strip_prefix("/").unwrap_or(&lib));
        if !t.exists() {
            copy_file(&lib, &t, None)?;
        }
    }
    Ok(())
}

/// Copies `src` (following symlinks) to `dst`, creating parent dirs.
fn copy_file(src: &Path, dst: &Path, mode: Option<u32>) -> Result<(), TemplateError> {
    if let Some(parent) = dst.parent() {
        std::fs::create_dir_all(parent).map_err(io_err("create dir", parent))?;
    }
    std::fs::copy(src, dst).map_err(io_err("copy", src))?;
    if let Some(mode) = mode {
        std::fs::set_permissions(dst, std::fs::Permissions::from_mode(mode))
            .map_err(io_err("chmod", dst))?;
    }
    Ok(())
}
