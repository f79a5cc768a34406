//! What runsc needs from the host network setup (see the findings in [`super`]'s doc).

/// The runsc flag for the network mode we use: gVisor's own netstack on the netns's veth.
pub const RUNSC_NETWORK_FLAG: &str = "--network=sandbox";

/// A `pre_exec` hook for `runsc run` / `runsc restore` (not needed for `exec`, `checkpoint`,
/// `kill`, `delete`): moves the child into a private copy of the mount namespace (mounts made
/// or removed later by the agent still propagate into it as a slave) and hides
/// `/proc/sys/net` under an empty read-only tmpfs.
///
/// Why: runsc 2022-12-19 refuses `--network=sandbox` when `/proc/sys/net/core/rmem_default`
/// exists in the target netns (its test for "root netns"), and kernels since 6.x have that file
/// in every netns. Hiding it in the runsc process's view restores the intended behaviour;
/// nothing else changes for the host.
///
/// Usage: `unsafe { std_command.pre_exec(hide_proc_sys_net) }` (or on a
/// `tokio::process::Command`).
///
/// Only async-signal-safe syscalls with static strings: safe to run between fork and exec.
pub fn hide_proc_sys_net() -> std::io::Result<()> {
    // SAFETY: unshare(2) and mount(2) with NUL-terminated static strings and null data
    // pointers where allowed; no allocation, no locks (we are between fork and exec).
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::mount(
            c"none".as_ptr(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_SLAVE,
            std::ptr::null(),
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
        if libc::mount(
            c"warren-hide".as_ptr(),
            c"/proc/sys/net".as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            c"size=4k,mode=555".as_ptr().cast(),
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
