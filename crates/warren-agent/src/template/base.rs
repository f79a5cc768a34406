//! The `base` template: Debian bookworm (debootstrap from the host's configured apt mirror)
//! with python3, pip, git and curl, plus envd.

use std::path::Path;
use std::time::Duration;

use super::{Progress, TemplateError, finish, install_binary, io_err};
use crate::command::Cmd;
use crate::storage::{Template, TemplateName, TemplateStore, make_ext4};

/// Debian suite of the base template.
pub const SUITE: &str = "bookworm";
/// Packages on top of debootstrap's `minbase`.
pub const PACKAGES: &str = "python3,python3-pip,git,curl,ca-certificates,procps";
const TOTAL: u32 = 4;

/// Builds template `base` into `$DATA/templates/base/` (replacing an existing one): debootstrap
/// of Debian bookworm from the apt mirror this host is configured with, plus python3, pip, git,
/// curl and envd. Minutes; needs the mirror reachable.
pub fn build_base(
    data_dir: &Path,
    envd: &Path,
    progress: &mut dyn FnMut(Progress),
) -> Result<Template, TemplateError> {
    if !Path::new("/usr/sbin/debootstrap").is_file() {
        return Err(TemplateError::Missing {
            what: "debootstrap",
            path: "/usr/sbin/debootstrap".into(),
            hint: "apt-get install debootstrap",
        });
    }
    if !envd.is_file() {
        return Err(TemplateError::Missing {
            what: "envd binary",
            path: envd.to_path_buf(),
            hint: "build envd first: cargo build -p envd",
        });
    }
    let mirror = host_mirror()?;
    let name = TemplateName::new("base")?;
    let store = TemplateStore::new(data_dir);
    let staging = store.create_staging(&name)?;
    let result = (|| {
        let root = staging.join("root");
        progress(Progress::Phase {
            step: 1,
            total: TOTAL,
            message: format!("debootstrap {SUITE} from {mirror}"),
        });
        Cmd::new("debootstrap")
            .args(["--variant=minbase", &format!("--include={PACKAGES}"), SUITE])
            .arg(&root)
            .arg(&mirror)
            .timeout(Duration::from_secs(1800))
            .run_lines(&mut |line| progress(Progress::Line(line.to_string())))?;
        progress(Progress::Phase {
            step: 2,
            total: TOTAL,
            message: "installing envd and accounts".into(),
        });
        configure(&root, envd)?;
        progress(Progress::Phase {
            step: 3,
            total: TOTAL,
            message: "making ext4 image".into(),
        });
        make_ext4(&root, &staging.join("rootfs.ext4"))?;
        std::fs::remove_dir_all(&root).map_err(io_err("remove", &root))?;
        progress(Progress::Phase {
            step: 4,
            total: TOTAL,
            message: "installing template".into(),
        });
        finish(&store, &staging, &name)
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    result
}

fn configure(root: &Path, envd: &Path) -> Result<(), TemplateError> {
    install_binary(root, envd, Path::new(super::ENVD_PATH))?;
    // An unprivileged `user` (uid 1000) with a home, as in the minimal template.
    Cmd::new("chroot")
        .arg(root)
        .args([
            "useradd",
            "--create-home",
            "--uid",
            "1000",
            "--user-group",
            "--shell",
            "/bin/bash",
            "user",
        ])
        .run()?;
    for (rel, content) in [
        ("etc/hostname", "sandbox\n".to_string()),
        (
            "etc/hosts",
            "127.0.0.1\tlocalhost sandbox\n::1\tlocalhost ip6-localhost\n".to_string(),
        ),
        ("etc/resolv.conf", crate::net::resolv_conf()),
    ] {
        let p = root.join(rel);
        // debootstrap may leave resolv.conf as a symlink to the host's: replace it.
        let _ = std::fs::remove_file(&p);
        std::fs::write(&p, content).map_err(io_err("write", &p))?;
    }
    // The package cache is not needed inside sandboxes.
    let cache = root.join("var/cache/apt/archives");
    if let Ok(entries) = std::fs::read_dir(&cache) {
        for e in entries.flatten() {
            if e.path().extension().is_some_and(|x| x == "deb") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    Ok(())
}

/// The Debian mirror this host's apt uses: the first `deb` line of `/etc/apt/sources.list`
/// or `URIs:` of a deb822 stanza in `/etc/apt/sources.list.d/*.sources` (or a `.list`) whose
/// suite is bookworm (not `-security`/`-updates`).
pub fn host_mirror() -> Result<String, TemplateError> {
    let mut texts = Vec::new();
    if let Ok(t) = std::fs::read_to_string("/etc/apt/sources.list") {
        texts.push(t);
    }
    if let Ok(entries) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
            if (ext == "sources" || ext == "list")
                && let Ok(t) = std::fs::read_to_string(&p)
            {
                texts.push(t);
            }
        }
    }
    texts
        .iter()
        .find_map(|t| mirror_from(t, SUITE))
        .ok_or(TemplateError::NoMirror)
}

/// The mirror URL for `suite` in one sources file (one-line or deb822 format).
fn mirror_from(text: &str, suite: &str) -> Option<String> {
    // One-line format: deb [opts] URL suite components...
    for line in text.lines() {
        let mut words = line.split_whitespace().peekable();
        if words.next() != Some("deb") {
            continue;
        }
        if words.peek().is_some_and(|w| w.starts_with('[')) {
            for w in words.by_ref() {
                if w.ends_with(']') {
                    break;
                }
            }
        }
        if let (Some(url), Some(s)) = (words.next(), words.next())
            && s == suite
        {
            return Some(url.to_string());
        }
    }
    // deb822: stanzas separated by blank lines.
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim().eq_ignore_ascii_case(name)).then(|| v.trim().to_string())
            })
        };
        let types = field("Types").unwrap_or_default();
        let suites = field("Suites").unwrap_or_default();
        if types.split_whitespace().any(|t| t == "deb")
            && suites.split_whitespace().any(|s| s == suite)
            && let Some(uris) = field("URIs")
        {
            return uris.split_whitespace().next().map(str::to_string);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_parsing() {
        let deb822 = "Types: deb\n# http://snapshot.debian.org/archive/debian/20250520T000000Z\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\nTypes: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\n";
        assert_eq!(
            mirror_from(deb822, "bookworm").as_deref(),
            Some("http://deb.debian.org/debian")
        );
        let sec_only =
            "Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\n";
        assert_eq!(mirror_from(sec_only, "bookworm"), None);
        let one_line = "# c\ndeb-src http://x/debian bookworm main\ndeb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian bookworm main\n";
        assert_eq!(
            mirror_from(one_line, "bookworm").as_deref(),
            Some("http://mirror.example/debian")
        );
    }
}
