"""Commands, PTY and files of a Warren sandbox through the unmodified e2b SDK: every call
goes SDK → control plane proxy (E2b-Sandbox-* headers, X-Access-Token) → agent → envd."""

import threading
import time
import uuid

import pytest
from e2b import CommandExitException, FileType, PtySize
from e2b.exceptions import NotFoundException


def test_foreground_command_and_exit_code(sandbox):
    r = sandbox.commands.run("echo hello; echo oops >&2")
    assert (r.stdout, r.stderr, r.exit_code) == ("hello\n", "oops\n", 0)
    with pytest.raises(CommandExitException) as info:
        sandbox.commands.run("echo bad >&2; exit 42")
    assert info.value.exit_code == 42 and info.value.stderr == "bad\n"


def test_envs_of_create_and_of_command(fresh):
    sb = fresh(envs={"FROM_CREATE": "created"})
    r = sb.commands.run("echo $FROM_CREATE $FROM_RUN", envs={"FROM_RUN": "ran"}, cwd="/tmp")
    assert r.stdout == "created ran\n"


def test_streaming_output_arrives_while_the_command_runs(sandbox):
    seen = []
    t0 = time.monotonic()

    def on_stdout(line):
        seen.append((time.monotonic() - t0, line))

    r = sandbox.commands.run("echo first; sleep 2; echo second", on_stdout=on_stdout)
    assert r.stdout == "first\nsecond\n"
    assert seen[0][1] == "first\n"
    # Streamed through both proxies, not buffered until the end.
    assert seen[0][0] < 1.5, seen
    assert time.monotonic() - t0 >= 2


def test_background_process_with_stdin(sandbox):
    h = sandbox.commands.run("cat", background=True, stdin=True)
    assert any(p.pid == h.pid for p in sandbox.commands.list())
    sandbox.commands.send_stdin(h.pid, "line one\n")
    h.send_stdin("line two\n")
    sandbox.commands.close_stdin(h.pid)
    r = h.wait()
    assert (r.stdout, r.exit_code) == ("line one\nline two\n", 0)


def test_kill_and_connect_background_process(sandbox):
    h = sandbox.commands.run("sleep 0.5; echo done", background=True)
    assert sandbox.commands.connect(h.pid).wait().stdout == "done\n"
    h = sandbox.commands.run("sleep 60", background=True)
    assert sandbox.commands.kill(h.pid) is True
    with pytest.raises(CommandExitException):
        h.wait()
    assert sandbox.commands.kill(h.pid) is False


def test_pty(sandbox):
    chunks, lock, ended = [], threading.Lock(), []
    h = sandbox.pty.create(PtySize(rows=24, cols=80))

    def read_all():
        try:
            h.wait(on_pty=lambda d: (lock.acquire(), chunks.append(bytes(d)), lock.release()))
        except CommandExitException as e:
            ended.append(e.exit_code)

    reader = threading.Thread(target=read_all, daemon=True)
    reader.start()

    def wait_for(needle):
        deadline = time.time() + 20
        while time.time() < deadline:
            with lock:
                if needle in b"".join(chunks):
                    return
            time.sleep(0.05)
        with lock:
            raise AssertionError(f"{needle!r} not in {b''.join(chunks)!r}")

    sandbox.pty.send_stdin(h.pid, b"stty size; echo mark-$((40+2))\n")
    wait_for(b"mark-42")
    wait_for(b"24 80")
    sandbox.pty.resize(h.pid, PtySize(rows=50, cols=132))
    sandbox.pty.send_stdin(h.pid, b"stty size\n")
    wait_for(b"50 132")
    assert sandbox.pty.kill(h.pid) is True
    reader.join(timeout=10)
    assert not reader.is_alive()


def test_files_text_bytes_list_remove(sandbox):
    d = f"/tmp/files-{uuid.uuid4().hex[:8]}"
    sandbox.files.make_dir(d)
    info = sandbox.files.write(f"{d}/a.txt", "hello")
    assert info.path == f"{d}/a.txt"
    assert sandbox.files.read(f"{d}/a.txt") == "hello"
    blob = bytes(range(256)) * 4096  # 1 MiB, every byte value
    sandbox.files.write(f"{d}/b.bin", blob)
    assert bytes(sandbox.files.read(f"{d}/b.bin", format="bytes")) == blob
    entries = {e.name: e for e in sandbox.files.list(d)}
    assert set(entries) == {"a.txt", "b.bin"}
    assert entries["b.bin"].type == FileType.FILE and entries["b.bin"].size == len(blob)
    assert sandbox.files.exists(f"{d}/a.txt")
    sandbox.files.rename(f"{d}/a.txt", f"{d}/c.txt")
    sandbox.files.remove(f"{d}/c.txt")
    assert not sandbox.files.exists(f"{d}/c.txt")
    with pytest.raises(NotFoundException):
        sandbox.files.read(f"{d}/c.txt")
    # A file written by the files API is seen by commands, and the other way round.
    sandbox.commands.run(f"echo from-shell > {d}/s.txt")
    assert sandbox.files.read(f"{d}/s.txt") == "from-shell\n"


def test_watch_dir(sandbox):
    d = f"/tmp/watch-{uuid.uuid4().hex[:8]}"
    sandbox.files.make_dir(d)
    handle = sandbox.files.watch_dir(d)
    try:
        sandbox.files.write(f"{d}/watched.txt", "w")
        deadline, events = time.time() + 10, []
        while time.time() < deadline:
            events += handle.get_new_events()
            if any(e.name == "watched.txt" for e in events):
                break
            time.sleep(0.05)
        assert any(e.name == "watched.txt" for e in events), events
    finally:
        handle.stop()


def test_default_user_and_home_are_e2bs(sandbox):
    # Like E2B: commands run as `user` in /home/user, relative paths resolve there.
    assert sandbox.commands.run("id -un; pwd").stdout == "user\n/home/user\n"
    info = sandbox.files.write("relative.txt", "home")
    assert info.path == "/home/user/relative.txt"
    assert sandbox.commands.run("cat relative.txt").stdout == "home"
    assert sandbox.commands.run("id -un", user="root").stdout == "root\n"


def test_signed_download_and_upload_urls(sandbox):
    import httpx

    sandbox.files.write("signed.txt", "signed content")
    url = sandbox.download_url("signed.txt", "user")
    assert "signature=" in url
    r = httpx.get(url)
    assert (r.status_code, r.text) == (200, "signed content")
    r = httpx.get(sandbox.download_url("signed.txt", "user", 120))
    assert (r.status_code, r.text) == (200, "signed content")
    r = httpx.get(sandbox.download_url("signed.txt", "user", use_signature_expiration=-120))
    assert r.status_code == 401
    assert r.json() == {"code": 401, "message": "signature is already expired"}
    # A signature for another path does not open this one.
    r = httpx.get(url.replace("signed.txt", "other.txt"))
    assert r.status_code == 401
    up = sandbox.upload_url("uploaded.txt", "user")
    r = httpx.post(up, files={"file": ("uploaded.txt", b"uploaded content")})
    assert r.status_code == 200, r.text
    assert sandbox.files.read("uploaded.txt") == "uploaded content"


def test_removing_what_is_not_there_succeeds(sandbox):
    # E2B's envd removes with os.RemoveAll; SDK code relies on it for clean-ups.
    sandbox.files.remove(f"/tmp/never-{uuid.uuid4().hex[:8]}")
    sandbox.files.make_dir("/tmp/rm-dir/nested")
    sandbox.files.remove("/tmp/rm-dir")
    assert not sandbox.files.exists("/tmp/rm-dir")
