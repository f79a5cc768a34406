//! Storage on real loop devices and overlayfs (root; skipped with a printed reason otherwise).

mod common;

use std::path::Path;

use warren_agent::storage::{
    ImageRegistry, SandboxRootfs, StorageError, TemplateName, TemplateStore, disk_usage, flatten,
    mountinfo,
};

#[test]
fn refcounted_template_mount() {
    skip_unless!("losetup", "mkfs.ext4");
    let data = common::data_dir();
    let d = data.path().to_path_buf();
    let _cleanup = common::Guard(|| common::force_cleanup_dir(&d));
    let name = common::make_template(data.path(), "reftpl", &[("etc/marker", "base")]);
    let reg = ImageRegistry::new(data.path());
    let mp = reg.mount_point(&name);

    let a = reg.acquire(&name).unwrap();
    let b = reg.acquire(&name).unwrap();
    assert_eq!(reg.refcount(&name), 2);
    assert_eq!(a.mount_point(), mp);
    let m = mountinfo::find(&mp).unwrap().expect("mounted");
    assert_eq!(m.fs_type, "ext4");
    assert!(m.source.starts_with("/dev/loop"), "{m:?}");
    assert_eq!(
        common::loops_under(data.path()).len(),
        1,
        "one loop device per image"
    );
    assert_eq!(
        std::fs::read_to_string(mp.join("etc/marker")).unwrap(),
        "base"
    );
    // Read-only: writing must fail.
    assert!(std::fs::write(mp.join("etc/new"), "x").is_err());

    a.release().unwrap();
    assert_eq!(reg.refcount(&name), 1);
    assert!(mountinfo::find(&mp).unwrap().is_some(), "still mounted");
    assert_eq!(common::loops_under(data.path()).len(), 1);

    drop(b); // the last lease, by drop
    assert_eq!(reg.refcount(&name), 0);
    assert!(mountinfo::find(&mp).unwrap().is_none(), "unmounted");
    assert!(common::loops_under(data.path()).is_empty(), "loop detached");

    // Unknown template: typed error, nothing mounted.
    let missing = TemplateName::new("nope").unwrap();
    assert!(matches!(
        reg.acquire(&missing),
        Err(StorageError::TemplateNotFound(_))
    ));
}

#[test]
fn concurrent_acquire_mounts_once() {
    skip_unless!("losetup", "mkfs.ext4");
    let data = common::data_dir();
    let d = data.path().to_path_buf();
    let _cleanup = common::Guard(|| common::force_cleanup_dir(&d));
    let name = common::make_template(data.path(), "conc", &[]);
    let reg = ImageRegistry::new(data.path());
    let leases: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| reg.acquire(&name).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(reg.refcount(&name), 8);
    assert_eq!(common::loops_under(data.path()).len(), 1);
    drop(leases);
    assert!(common::loops_under(data.path()).is_empty());
    assert!(common::mounts_under(data.path()).is_empty());
}

#[test]
fn overlay_cow_isolation_and_flatten() {
    skip_unless!("losetup", "mkfs.ext4");
    let data = common::data_dir();
    let d = data.path().to_path_buf();
    let _cleanup = common::Guard(|| common::force_cleanup_dir(&d));
    let name = common::make_template(
        data.path(),
        "cow",
        &[
            ("etc/marker", "base"),
            ("data/remove-me", "x"),
            ("data/keep", "k"),
        ],
    );
    let reg = ImageRegistry::new(data.path());
    let s1 = SandboxRootfs::mount(data.path(), "sb1", reg.acquire(&name).unwrap()).unwrap();
    let s2 = SandboxRootfs::mount(data.path(), "sb2", reg.acquire(&name).unwrap()).unwrap();
    assert_eq!(reg.refcount(&name), 2);
    assert_eq!(common::loops_under(data.path()).len(), 1);

    // Writes in one sandbox are invisible to the other and to the base.
    std::fs::write(s1.path().join("etc/marker"), "changed by sb1").unwrap();
    std::fs::write(s1.path().join("new-file"), "new").unwrap();
    std::fs::remove_file(s1.path().join("data/remove-me")).unwrap();
    assert_eq!(
        std::fs::read_to_string(s2.path().join("etc/marker")).unwrap(),
        "base"
    );
    assert!(!s2.path().join("new-file").exists());
    assert!(s2.path().join("data/remove-me").exists());
    assert_eq!(
        std::fs::read_to_string(s1.lower_dir().join("etc/marker")).unwrap(),
        "base"
    );
    // The upper holds only the changes: its real usage is small.
    let upper = disk_usage(&s1.upper_dir()).unwrap();
    assert!(upper.bytes < 1 << 20, "{upper:?}");

    // Flatten base + sb1's layer into a standalone image, then use it as a new template.
    let store = TemplateStore::new(data.path());
    let flat = TemplateName::new("flat").unwrap();
    let staging = store.create_staging(&flat).unwrap();
    flatten(
        s1.lower_dir(),
        &s1.upper_dir(),
        &staging.join("rootfs.ext4"),
    )
    .unwrap();
    store.commit_staging(&staging, &flat, false).unwrap();
    assert!(
        common::mounts_under(data.path())
            .iter()
            .all(|m| !m.to_string_lossy().contains(".flatten")),
        "flatten's temporary mount is gone"
    );
    let s3 = SandboxRootfs::mount(data.path(), "sb3", reg.acquire(&flat).unwrap()).unwrap();
    assert_eq!(
        std::fs::read_to_string(s3.path().join("etc/marker")).unwrap(),
        "changed by sb1"
    );
    assert_eq!(
        std::fs::read_to_string(s3.path().join("new-file")).unwrap(),
        "new"
    );
    assert!(
        !s3.path().join("data/remove-me").exists(),
        "whiteout honoured"
    );
    assert_eq!(
        std::fs::read_to_string(s3.path().join("data/keep")).unwrap(),
        "k"
    );
    assert!(s3.path().join("bin/busybox").is_file());
    // The flattened image does not depend on the base: unmount everything of `cow`.
    s1.remove().unwrap();
    s2.remove().unwrap();
    assert_eq!(reg.refcount(&name), 0);
    assert!(mountinfo::find(&reg.mount_point(&name)).unwrap().is_none());
    assert!(s3.path().join("bin/busybox").is_file());
    assert!(!data.path().join("sandboxes/sb1").exists());
    s3.remove().unwrap();
    assert!(common::mounts_under(data.path()).is_empty());
    assert!(common::loops_under(data.path()).is_empty());
}

#[test]
fn unmount_keeps_upper_and_remount_resumes() {
    skip_unless!("losetup", "mkfs.ext4");
    let data = common::data_dir();
    let d = data.path().to_path_buf();
    let _cleanup = common::Guard(|| common::force_cleanup_dir(&d));
    let name = common::make_template(data.path(), "pause", &[]);
    let reg = ImageRegistry::new(data.path());
    let s = SandboxRootfs::mount(data.path(), "p1", reg.acquire(&name).unwrap()).unwrap();
    std::fs::write(s.path().join("tmp/state"), "kept").unwrap();
    s.unmount().unwrap();
    assert!(!SandboxRootfs::is_mounted(data.path(), "p1").unwrap());
    assert!(
        common::loops_under(data.path()).is_empty(),
        "last lease released"
    );
    let s = SandboxRootfs::mount(data.path(), "p1", reg.acquire(&name).unwrap()).unwrap();
    assert_eq!(
        std::fs::read_to_string(s.path().join("tmp/state")).unwrap(),
        "kept"
    );
    drop(s); // not unmounted on drop (a running sandbox outlives the agent)...
    assert!(SandboxRootfs::is_mounted(data.path(), "p1").unwrap());
    // ...but the lease went with it; removing by id still cleans everything up.
    SandboxRootfs::remove_unmounted(data.path(), "p1").unwrap();
    reg.unmount_unused().unwrap();
    assert!(common::mounts_under(data.path()).is_empty());
    assert!(common::loops_under(data.path()).is_empty());
    assert!(!data.path().join("sandboxes/p1").exists());
}

#[test]
fn restarted_agent_adopts_mounts() {
    skip_unless!("losetup", "mkfs.ext4");
    let data = common::data_dir();
    let d = data.path().to_path_buf();
    let _cleanup = common::Guard(|| common::force_cleanup_dir(&d));
    let name = common::make_template(data.path(), "adopt", &[]);
    // "First agent process" (it died without unmounting): its mounts, made with the
    // documented layout by the command-line tools, so no fd of ours keeps them alive.
    let image = TemplateStore::new(data.path()).rootfs_path(&name);
    let mp = ImageRegistry::new(data.path()).mount_point(&name);
    std::fs::create_dir_all(&mp).unwrap();
    let sh = |script: &str| {
        warren_agent::command::Cmd::new("sh")
            .args(["-c", script])
            .run()
            .unwrap()
            .stdout_str()
    };
    let dev = sh(&format!(
        "losetup --read-only --find --show {}",
        image.display()
    ));
    sh(&format!("mount -o ro {} {}", dev.trim(), mp.display()));
    for id in ["live", "dead"] {
        let sb = data.path().join("sandboxes").join(id);
        sh(&format!(
            "mkdir -p {sb}/upper/tmp {sb}/work {sb}/rootfs && mount -t overlay overlay \
             -o lowerdir={mp},upperdir={sb}/upper,workdir={sb}/work {sb}/rootfs",
            sb = sb.display(),
            mp = mp.display()
        ));
    }
    std::fs::write(data.path().join("sandboxes/live/rootfs/tmp/f"), "1").unwrap();
    let mounts_before = common::mounts_under(data.path()).len();
    assert_eq!(mounts_before, 3);
    // "Restarted agent": re-attaches the live sandbox, removes the dead one.
    let reg = ImageRegistry::new(data.path());
    let s = SandboxRootfs::mount(data.path(), "live", reg.acquire(&name).unwrap()).unwrap();
    assert_eq!(reg.refcount(&name), 1);
    assert_eq!(
        common::mounts_under(data.path()).len(),
        3,
        "adopted, not remounted"
    );
    assert_eq!(common::loops_under(data.path()).len(), 1);
    assert_eq!(
        std::fs::read_to_string(s.path().join("tmp/f")).unwrap(),
        "1"
    );
    SandboxRootfs::remove_unmounted(data.path(), "dead").unwrap();
    assert!(
        reg.unmount_unused().unwrap().is_empty(),
        "image still leased"
    );
    s.remove().unwrap();
    assert!(common::mounts_under(data.path()).is_empty());
    assert!(common::loops_under(data.path()).is_empty());
}

#[test]
fn invalid_sandbox_id_is_refused() {
    let data = common::data_dir();
    let err = SandboxRootfs::remove_unmounted(data.path(), "../../etc").unwrap_err();
    assert!(matches!(err, StorageError::InvalidName { .. }), "{err:?}");
    assert!(Path::new("/etc").exists());
}
