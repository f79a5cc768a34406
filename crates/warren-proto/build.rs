//! Compiles every `.proto` file found under `proto/` (recursively) with `connectrpc-build`.
//!
//! Adding a proto file needs no change here: drop it under `proto/` and its package shows up as
//! a module of the crate (see `src/lib.rs`). Requires `protoc` (Debian: `protobuf-compiler`),
//! or `PROTOC` pointing at one.

use std::path::{Path, PathBuf};

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(path);
        }
    }
    Ok(())
}

fn main() {
    let root = PathBuf::from("proto");
    let mut files = Vec::new();
    collect(&root, &mut files).expect("proto/ is part of this crate and must be readable");
    files.sort();
    println!("cargo:rerun-if-changed=proto");
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    // envd's files live under proto/envd/<pkg>/ but their package names (`process`,
    // `filesystem`) are what the E2B SDK expects, so each directory that holds a package is
    // an include root of its own as well as `proto/` itself.
    connectrpc_build::Config::new()
        .files(&files)
        .includes(&[root.join("envd"), root.clone()])
        .include_file("_connectrpc.rs")
        .compile()
        .expect("compiling the .proto files under proto/ (is protoc installed?)");
}
