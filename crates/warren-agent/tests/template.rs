//! The minimal template builds offline and boots under real runsc (root; skipped with a printed
//! reason otherwise).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use warren_agent::storage::{
    ImageRegistry, SandboxRootfs, TemplateKind, TemplateName, TemplateStore, disk_usage,
};
use warren_agent::template::{Progress, build_minimal};

#[test]
fn minimal_template_builds_and_boots_in_runsc() {
    skip_unless!("runsc", "mkfs.ext4", "losetup", "ldd");
    let data = common::data_dir();
    let d = data.path().to_path_buf();
    let _cleanup = common::Guard(|| common::force_cleanup_dir(&d));
    // envd stand-in: coreutils `env`, dynamically linked, so the build must bring its ELF
    // interpreter and libraries along for it to run inside.
    let envd = Path::new("/usr/bin/env");
    let started = Instant::now();
    let mut phases = Vec::new();
    let t = build_minimal(data.path(), envd, &mut |p| {
        if let Progress::Phase { step, .. } = p {
            phases.push(step)
        }
    })
    .unwrap();
    let build_time = started.elapsed();
    eprintln!("minimal template built in {build_time:?}");
    assert!(build_time < Duration::from_secs(60), "{build_time:?}");
    assert_eq!(phases, [1, 2, 3]);
    assert_eq!(t.kind(), TemplateKind::Image);
    assert_eq!(t.rootfs, data.path().join("templates/minimal/rootfs.ext4"));
    let apparent = std::fs::metadata(&t.rootfs).unwrap().len();
    let used = disk_usage(&t.rootfs).unwrap().bytes;
    assert!(used < apparent / 2, "image is sparse: {used} of {apparent}");
    assert!(
        !std::fs::read_dir(data.path().join("templates"))
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(".staging")),
        "staging dir gone"
    );
    // Rebuilding replaces it.
    build_minimal(data.path(), envd, &mut |_| {}).unwrap();
    let name = TemplateName::new("minimal").unwrap();
    assert_eq!(TemplateStore::new(data.path()).list().unwrap().len(), 1);

    let reg = ImageRegistry::new(data.path());
    let rootfs = SandboxRootfs::mount(data.path(), "boot", reg.acquire(&name).unwrap()).unwrap();
    let runsc = common::Runsc::new(data.path());
    let bundle = data.path().join("bundle");
    let script = "/usr/bin/envd GREETING=hi /bin/sh -c 'echo envd-says-$GREETING'; \
                  cat /etc/hostname; grep '^user:x:1000:1000:' /etc/passwd; \
                  ls -ld /tmp /home/user; grep -c nameserver /etc/resolv.conf; \
                  echo written > /root/f && cat /root/f";
    runsc.bundle(&bundle, &rootfs.path(), None, &["/bin/sh", "-c", script]);
    let (ok, out) = runsc.run(&common::unique("boot"), &bundle, Duration::from_secs(60));
    assert!(ok, "runsc run failed: {out}");
    assert!(
        out.contains("envd-says-hi"),
        "dynamic envd runs inside: {out}"
    );
    assert!(out.contains("sandbox"), "{out}");
    assert!(out.contains("user:x:1000:1000:"), "{out}");
    assert!(out.contains("drwxrwxrwt"), "/tmp is 1777: {out}");
    assert!(
        out.contains("user     user"),
        "/home/user owned by user: {out}"
    );
    assert!(out.contains("written"), "{out}");
    // The write went to the sandbox's layer, not the image. (Not /tmp: runsc mounts its own
    // tmpfs there, in sandbox memory.)
    assert!(rootfs.upper_dir().join("root/f").is_file());
    rootfs.remove().unwrap();
    assert!(common::mounts_under(data.path()).is_empty());
    assert!(common::loops_under(data.path()).is_empty());
}

/// Slow (debootstrap, minutes) and needs the apt mirror: runs only with `RUN_SLOW_TESTS=1`.
#[test]
fn base_template_builds_and_runs_python_in_runsc() {
    if std::env::var_os("RUN_SLOW_TESTS").is_none() {
        eprintln!("SKIPPED base template build: set RUN_SLOW_TESTS=1 (debootstrap, minutes)");
        return;
    }
    skip_unless!("runsc", "mkfs.ext4", "losetup", "debootstrap");
    let data = common::data_dir();
    let d = data.path().to_path_buf();
    let _cleanup = common::Guard(|| common::force_cleanup_dir(&d));
    let started = Instant::now();
    let mut lines = 0;
    let t = warren_agent::template::build_base(data.path(), Path::new("/bin/busybox"), &mut |p| {
        if matches!(p, Progress::Line(_)) {
            lines += 1
        }
    })
    .unwrap();
    eprintln!("base template built in {:?}", started.elapsed());
    assert!(lines > 10, "debootstrap progress was streamed");
    let name = TemplateName::new("base").unwrap();
    assert_eq!(t.name, name);
    let reg = ImageRegistry::new(data.path());
    let rootfs = SandboxRootfs::mount(data.path(), "py", reg.acquire(&name).unwrap()).unwrap();
    let runsc = common::Runsc::new(data.path());
    let bundle = data.path().join("bundle");
    let script = "python3 -c 'print(\"py\", 6*7)'; git --version; curl --version | head -1; \
                  pip3 --version; id user; test -x /usr/bin/envd && echo envd-present";
    runsc.bundle(&bundle, &rootfs.path(), None, &["/bin/sh", "-c", script]);
    let (ok, out) = runsc.run(&common::unique("base"), &bundle, Duration::from_secs(120));
    assert!(ok, "{out}");
    for want in [
        "py 42",
        "git version",
        "curl ",
        "pip ",
        "uid=1000(user)",
        "envd-present",
    ] {
        assert!(out.contains(want), "missing {want:?} in: {out}");
    }
    rootfs.remove().unwrap();
    assert!(common::loops_under(data.path()).is_empty());
}
