//! Just enough ELF to tell static from dynamic executables, and `ldd` output parsing.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::{TemplateError, io_err};

const PT_INTERP: u32 = 3;

/// The ELF interpreter (`PT_INTERP`) of a 64-bit little-endian executable, `None` if it is
/// statically linked or not ELF64 (scripts, ...).
pub(crate) fn interpreter(path: &Path) -> Result<Option<PathBuf>, TemplateError> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(1 << 20).read_to_end(&mut bytes))
        .map_err(io_err("read", path))?;
    Ok(interpreter_of(&bytes))
}

fn interpreter_of(b: &[u8]) -> Option<PathBuf> {
    if b.len() < 64 || &b[..4] != b"\x7fELF" || b[4] != 2 || b[5] != 1 {
        return None;
    }
    let u16_at =
        |o: usize| -> Option<u16> { Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?)) };
    let u32_at =
        |o: usize| -> Option<u32> { Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?)) };
    let u64_at =
        |o: usize| -> Option<u64> { Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?)) };
    let phoff = u64_at(0x20)? as usize;
    let phentsize = u16_at(0x36)? as usize;
    let phnum = u16_at(0x38)? as usize;
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        if u32_at(ph)? != PT_INTERP {
            continue;
        }
        let off = u64_at(ph + 8)? as usize;
        let size = u64_at(ph + 32)? as usize;
        let raw = b.get(off..off + size)?;
        let s = raw.split(|c| *c == 0).next()?;
        return Some(PathBuf::from(String::from_utf8_lossy(s).into_owned()));
    }
    None
}

/// The absolute library paths in `ldd` output (`x => /path (0x..)` and `/path (0x..)`).
pub(crate) fn ldd_paths(out: &str) -> Vec<PathBuf> {
    out.lines()
        .filter_map(|l| {
            let l = l.trim();
            let p = match l.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next()?,
                None => l.split_whitespace().next()?,
            };
            p.starts_with('/').then(|| PathBuf::from(p))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_and_dynamic() {
        // busybox-static is static; the test binary itself is dynamic (glibc).
        if Path::new("/bin/busybox").is_file() {
            assert_eq!(interpreter(Path::new("/bin/busybox")).unwrap(), None);
        }
        let me = std::env::current_exe().unwrap();
        let interp = interpreter(&me).unwrap().expect("test binary is dynamic");
        assert!(interp.to_string_lossy().contains("ld-linux"), "{interp:?}");
        assert_eq!(interpreter_of(b"#!/bin/sh\n"), None);
    }

    #[test]
    fn parses_ldd() {
        let out = "\tlinux-vdso.so.1 (0x00007ffc)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x7f)\n\t/lib64/ld-linux-x86-64.so.2 (0x7f)\n\tlibmissing.so => not found\n";
        assert_eq!(
            ldd_paths(out),
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2")
            ]
        );
    }
}
