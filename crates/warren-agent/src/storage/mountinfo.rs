//! Reading `/proc/self/mountinfo`: how the agent finds mounts it made before a restart (and how
//! tests assert that nothing is left mounted).

use std::path::{Path, PathBuf};

/// One line of mountinfo, the fields we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Filesystem type (`ext4`, `overlay`, ...).
    pub fs_type: String,
    /// Mount source (`/dev/loop3`, `overlay`, ...).
    pub source: String,
    /// Per-superblock options (for overlay: `lowerdir=...,upperdir=...`).
    pub super_options: String,
}

/// Reads the current mount table of this process's mount namespace.
pub fn read() -> std::io::Result<Vec<MountEntry>> {
    Ok(parse(&std::fs::read_to_string("/proc/self/mountinfo")?))
}

/// The entry mounted at `path` (the topmost one if stacked), if any.
pub fn find(path: &Path) -> std::io::Result<Option<MountEntry>> {
    Ok(read()?.into_iter().rev().find(|m| m.mount_point == path))
}

/// Parses mountinfo text; malformed lines are skipped.
pub fn parse(text: &str) -> Vec<MountEntry> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<MountEntry> {
    // 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
    let (left, right) = line.split_once(" - ")?;
    let mount_point = left.split(' ').nth(4)?;
    let mut right = right.split(' ');
    let fs_type = right.next()?;
    let source = right.next()?;
    let super_options = right.next().unwrap_or("");
    Some(MountEntry {
        mount_point: PathBuf::from(unescape(mount_point)),
        fs_type: fs_type.to_string(),
        source: unescape(source),
        super_options: super_options.to_string(),
    })
}

/// Undoes the kernel's octal escapes (`\040` for space, `\011`, `\012`, `\134`).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines() {
        let text = "36 35 98:0 /mnt1 /mnt\\040two rw,noatime master:1 - ext4 /dev/loop3 ro\n\
                    40 1 0:50 / /d/sandboxes/x/rootfs rw - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w\n\
                    garbage\n";
        let m = parse(text);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].mount_point, Path::new("/mnt two"));
        assert_eq!(m[0].fs_type, "ext4");
        assert_eq!(m[0].source, "/dev/loop3");
        assert_eq!(m[1].fs_type, "overlay");
        assert!(m[1].super_options.contains("lowerdir=/l"));
    }

    #[test]
    fn reads_own_table() {
        let all = read().unwrap();
        assert!(all.iter().any(|m| m.mount_point == Path::new("/")));
    }
}
