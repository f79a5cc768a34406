"""Commands and PTYs through the unmodified e2b SDK."""

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from e2b import CommandExitException, PtySize
from e2b.exceptions import SandboxException


def test_foreground_command_output_and_exit_code(sandbox):
    r = sandbox.commands.run("echo hello; echo oops >&2")
    assert (r.stdout, r.stderr, r.exit_code) == ("hello\n", "oops\n", 0)


def test_nonzero_exit_raises_command_exit_exception(sandbox):
    with pytest.raises(CommandExitException) as info:
        sandbox.commands.run("echo bad >&2; exit 42")
    assert info.value.exit_code == 42
    assert info.value.stderr == "bad\n"


def test_streaming_callbacks(sandbox):
    out, err = [], []
    r = sandbox.commands.run(
        "for i in 1 2 3; do echo o$i; echo e$i >&2; done",
        on_stdout=out.append,
        on_stderr=err.append,
    )
    assert "".join(out) == "o1\no2\no3\n" == r.stdout
    assert "".join(err) == "e1\ne2\ne3\n" == r.stderr


def test_envs_and_cwd(sandbox, tmp):
    r = sandbox.commands.run("pwd; echo $GREETING", envs={"GREETING": "hi there"}, cwd=str(tmp))
    assert r.stdout == f"{tmp}\nhi there\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="running as another user needs root")
def test_unprivileged_user(sandbox):
    r = sandbox.commands.run("id -un; id -u", user="nobody", cwd="/tmp")
    assert r.stdout.split() == ["nobody", "65534"]


def test_background_process_stdin_and_list(sandbox):
    h = sandbox.commands.run("cat", background=True, stdin=True)
    assert any(p.pid == h.pid for p in sandbox.commands.list())
    sandbox.commands.send_stdin(h.pid, "line one\n")
    h.send_stdin("line two\n")
    sandbox.commands.close_stdin(h.pid)
    r = h.wait()
    assert r.stdout == "line one\nline two\n"
    assert r.exit_code == 0


def test_kill_background_process(sandbox):
    h = sandbox.commands.run("sleep 60", background=True)
    assert sandbox.commands.kill(h.pid) is True
    with pytest.raises(CommandExitException) as info:
        h.wait()
    assert info.value.exit_code != 0
    assert sandbox.commands.kill(h.pid) is False  # already gone: not_found


def test_connect_to_running_process(sandbox):
    h = sandbox.commands.run("sleep 0.5; echo done", background=True)
    again = sandbox.commands.connect(h.pid)
    assert again.wait().stdout == "done\n"


def test_unknown_pid_is_not_found(sandbox):
    assert sandbox.commands.kill(999999) is False
    with pytest.raises(SandboxException):
        sandbox.commands.send_stdin(999999, "x")


def test_missing_cwd_is_an_error_not_a_crash(sandbox):
    with pytest.raises(SandboxException):
        sandbox.commands.run("true", cwd="/definitely/not/a/dir")
    assert sandbox.commands.run("echo alive").stdout == "alive\n"


def test_megabytes_of_output(sandbox):
    total = [0]
    r = sandbox.commands.run(
        "head -c 20000000 /dev/zero | tr '\\0' x",
        on_stdout=lambda s: total.__setitem__(0, total[0] + len(s)),
        timeout=120,
    )
    assert total[0] == 20_000_000
    assert len(r.stdout) == 20_000_000


def test_many_parallel_processes(sandbox):
    with ThreadPoolExecutor(max_workers=25) as pool:
        results = list(pool.map(lambda i: sandbox.commands.run(f"echo {i}").stdout, range(50)))
    assert results == [f"{i}\n" for i in range(50)]


def test_pty_create_input_resize_kill(sandbox):
    chunks = []
    lock = threading.Lock()
    h = sandbox.pty.create(PtySize(rows=24, cols=80))
    ended = []

    def read_all():
        try:
            h.wait(on_pty=lambda d: (lock.acquire(), chunks.append(bytes(d)), lock.release()))
        except CommandExitException as e:  # killed below
            ended.append(e.exit_code)

    reader = threading.Thread(target=read_all, daemon=True)
    reader.start()
    sandbox.pty.send_stdin(h.pid, b"stty size; echo mark-$((40+2))\n")
    deadline = time.time() + 20
    while time.time() < deadline:
        with lock:
            text = b"".join(chunks)
        if b"mark-42" in text and b"24 80" in text:
            break
        time.sleep(0.05)
    assert b"mark-42" in text and b"24 80" in text, text
    sandbox.pty.resize(h.pid, PtySize(rows=50, cols=132))
    sandbox.pty.send_stdin(h.pid, b"stty size\n")
    deadline = time.time() + 20
    while time.time() < deadline:
        with lock:
            if b"50 132" in b"".join(chunks):
                break
        time.sleep(0.05)
    with lock:
        assert b"50 132" in b"".join(chunks)
    assert sandbox.pty.kill(h.pid) is True
    reader.join(timeout=10)
    assert not reader.is_alive()
    assert ended == [-1]
