//! Path handling shared by the filesystem service and `/files`.
//!
//! Like E2B's envd, a relative path (or `~/…`) is resolved against the user's home directory;
//! an empty path or one holding a NUL byte is rejected. Paths are byte strings (`OsStr`), so
//! names that are not UTF-8 work wherever the wire allows bytes (the `/files` query string).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Why a path was refused.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    /// Empty path.
    #[error("path is empty")]
    Empty,
    /// A NUL byte inside the path.
    #[error("path {0:?} contains a NUL byte")]
    Nul(String),
}

/// Resolves `raw` for a user whose home is `home`.
pub fn resolve(raw: &[u8], home: &Path) -> Result<PathBuf, PathError> {
    if raw.is_empty() {
        return Err(PathError::Empty);
    }
    if raw.contains(&0) {
        return Err(PathError::Nul(String::from_utf8_lossy(raw).into_owned()));
    }
    let p = Path::new(OsStr::from_bytes(raw));
    if raw == b"~" {
        return Ok(home.to_path_buf());
    }
    if let Ok(rest) = p.strip_prefix("~") {
        return Ok(home.join(rest));
    }
    Ok(if p.is_absolute() {
        p.to_path_buf()
    } else {
        home.join(p)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_like_envd() {
        let home = Path::new("/home/u");
        let check = |raw: &[u8], want: Option<&str>| {
            let got = resolve(raw, home).ok();
            assert_eq!(got.as_deref(), want.map(Path::new), "{raw:?}");
        };
        check(b"/a/b", Some("/a/b"));
        check(b"a b", Some("/home/u/a b"));
        check(b"~", Some("/home/u"));
        check(b"~/x", Some("/home/u/x"));
        check(b"", None);
        check(b"/a\0b", None);
    }
}
