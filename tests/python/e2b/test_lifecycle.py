"""Sandbox lifecycle through the unmodified e2b SDK against the E2B REST surface (/e2b):
create, info, list with filters and paging, connect, timeouts that really expire, pause and
resume with a live process, metrics, snapshots, and the error paths."""

import os
import time
import uuid
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from e2b import Sandbox, SandboxQuery, SandboxState
from e2b.exceptions import AuthenticationException, NotFoundException, SandboxException

TEMPLATE = os.environ.get("WARREN_E2B_TEMPLATE", "minimal")


def poll(what, f, timeout=30.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            if f():
                return
        except Exception as e:  # noqa: BLE001 - e.g. the file is not written yet
            last = e
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout}s (last error: {last!r})")


def test_create_info_and_kill(fresh):
    tag = uuid.uuid4().hex
    sb = fresh(metadata={"tag": tag}, timeout=120)
    info = sb.get_info()
    assert info.sandbox_id == sb.sandbox_id
    assert info.template_id == TEMPLATE
    assert info.metadata == {"tag": tag}
    assert info.state == SandboxState.RUNNING
    assert info.cpu_count >= 1 and info.memory_mb >= 128
    assert 100 <= (info.end_at - info.started_at).total_seconds() <= 130
    assert sb.is_running()
    assert sb.kill() is True
    assert not sb.is_running()
    assert Sandbox.kill(sb.sandbox_id) is False
    with pytest.raises(NotFoundException):
        Sandbox.get_info(sb.sandbox_id)


def test_list_filters_by_metadata_and_state_with_paging(fresh):
    tag = uuid.uuid4().hex
    a = fresh(metadata={"tag": tag, "n": "1"})
    b = fresh(metadata={"tag": tag, "n": "2"})
    fresh(metadata={"tag": "someone-else"})

    def ids(query, limit=None):
        p = Sandbox.list(query=query, limit=limit)
        out, pages = [], 0
        while p.has_next:
            out += [s.sandbox_id for s in p.next_items()]
            pages += 1
        return out, pages

    got, _ = ids(SandboxQuery(metadata={"tag": tag}))
    assert sorted(got) == sorted([a.sandbox_id, b.sandbox_id])
    got, _ = ids(SandboxQuery(metadata={"tag": tag, "n": "2"}))
    assert got == [b.sandbox_id]
    got, pages = ids(SandboxQuery(metadata={"tag": tag}), limit=1)
    assert sorted(got) == sorted([a.sandbox_id, b.sandbox_id]) and pages >= 2
    got, _ = ids(SandboxQuery(metadata={"tag": tag}, state=[SandboxState.PAUSED]))
    assert got == []
    got, _ = ids(SandboxQuery(metadata={"tag": tag}, template=TEMPLATE))
    assert len(got) == 2
    got, _ = ids(SandboxQuery(metadata={"tag": tag}, template="no-such-template"))
    assert got == []
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    got, _ = ids(SandboxQuery(metadata={"tag": tag}, started_after=later))
    assert got == []
    listed = Sandbox.list(query=SandboxQuery(metadata={"tag": tag})).next_items()
    assert {s.metadata["n"] for s in listed} == {"1", "2"}
    assert all(s.state == SandboxState.RUNNING for s in listed)


def test_connect_from_a_second_object(fresh):
    sb = fresh()
    sb.files.write("/tmp/shared.txt", "from the first")
    again = Sandbox.connect(sb.sandbox_id)
    assert again.sandbox_id == sb.sandbox_id
    assert again.files.read("/tmp/shared.txt") == "from the first"
    again.commands.run("echo from the second > /tmp/back.txt")
    assert sb.files.read("/tmp/back.txt") == "from the second\n"


def test_set_timeout_really_expires(fresh):
    sb = fresh(timeout=300)
    sb.set_timeout(2)
    info = sb.get_info()
    assert (info.end_at - info.started_at).total_seconds() < 300
    poll("sandbox gone after its timeout", lambda: not sb.is_running(), timeout=30)
    def gone():
        try:
            Sandbox.get_info(sb.sandbox_id)
            return False
        except NotFoundException:
            return True
    poll("control plane knows it is gone", gone, timeout=30)


def test_pause_and_resume_keep_a_running_process_and_its_memory(fresh):
    sb = fresh()
    # A counter that lives only in the shell's memory, written out on every tick.
    h = sb.commands.run(
        "n=0; while true; do n=$((n+1)); echo $n > /tmp/count; sleep 0.1; done",
        background=True,
    )
    poll("counter running", lambda: int(sb.files.read("/tmp/count")) >= 3)
    before = int(sb.files.read("/tmp/count"))
    assert sb.pause() is True
    assert Sandbox.get_info(sb.sandbox_id).state == SandboxState.PAUSED
    paused = Sandbox.list(query=SandboxQuery(state=[SandboxState.PAUSED])).next_items()
    assert sb.sandbox_id in [s.sandbox_id for s in paused]
    assert not sb.is_running()
    # Connecting resumes it: same process, counting on from where it was.
    again = Sandbox.connect(sb.sandbox_id)
    assert Sandbox.get_info(sb.sandbox_id).state == SandboxState.RUNNING
    assert any(p.pid == h.pid for p in again.commands.list())
    after = int(again.files.read("/tmp/count"))
    assert after >= before
    poll("counter goes on", lambda: int(again.files.read("/tmp/count")) > after)
    assert int(again.files.read("/tmp/count")) < before + 1000  # not restarted from 0 either


def test_metrics(sandbox):
    metrics = sandbox.get_metrics()
    assert len(metrics) >= 1
    m = metrics[-1]
    assert m.cpu_count >= 1 and m.mem_total > 0 and m.mem_used > 0
    assert 0 <= m.cpu_used_pct <= 100


def test_snapshot_is_a_template_for_new_sandboxes(fresh):
    sb = fresh()
    sb.files.write("/tmp/snap.txt", "in the snapshot")
    snap = sb.create_snapshot()
    try:
        assert sb.is_running(), "E2B keeps the sandbox running after a snapshot"
        listed = Sandbox.list_snapshots(sandbox_id=sb.sandbox_id).next_items()
        assert snap.snapshot_id in [s.snapshot_id for s in listed]
        child = fresh(template=snap.snapshot_id)
        assert child.files.read("/tmp/snap.txt") == "in the snapshot"
        child.kill()
    finally:
        assert Sandbox.delete_snapshot(snap.snapshot_id) is True
    assert Sandbox.delete_snapshot(snap.snapshot_id) is False


def test_unknown_template_fails(team):
    with pytest.raises(SandboxException):
        Sandbox.create(template=f"no-such-template-{uuid.uuid4().hex[:6]}")


def test_wrong_api_key_is_an_authentication_error(team):
    with pytest.raises(AuthenticationException):
        Sandbox.create(template=TEMPLATE, api_key="wk_" + "0" * 40)
    with pytest.raises(AuthenticationException):
        Sandbox.list(api_key="not-a-key").next_items()


def test_another_teams_sandbox_is_not_found(fresh, other_team, fleet):
    sb = fresh()
    other = {"api_key": other_team.api_key}
    with pytest.raises(NotFoundException):
        Sandbox.connect(sb.sandbox_id, **other)
    with pytest.raises(NotFoundException):
        Sandbox.get_info(sb.sandbox_id, **other)
    assert Sandbox.kill(sb.sandbox_id, **other) is False
    with pytest.raises(NotFoundException):
        Sandbox.set_timeout(sb.sandbox_id, 30, **other)
    assert sb.sandbox_id not in [s.sandbox_id for s in Sandbox.list(**other).next_items()]
    # The envd proxy: the other team's key, no credentials, a wrong envd token.
    proxy = {"E2b-Sandbox-Id": sb.sandbox_id, "E2b-Sandbox-Port": "49983"}
    r = httpx.get(f"{fleet.url}/health", headers={**proxy, "X-API-Key": other_team.api_key})
    assert r.status_code == 502 and "was not found" in r.json()["message"]
    r = httpx.get(f"{fleet.url}/envs", headers=proxy)
    assert r.status_code == 401
    r = httpx.get(f"{fleet.url}/envs", headers={**proxy, "X-Access-Token": "wrong"})
    assert r.status_code == 401
    # The owner's key does reach it (what browsers and curl use), and so does the host form.
    r = httpx.get(f"{fleet.url}/health", headers={**proxy, "X-API-Key": fleet.teams[0].api_key})
    assert r.status_code == 204
    port = fleet.url.rsplit(":", 1)[1]
    r = httpx.get(
        f"{fleet.url}/health",
        headers={"Host": f"49983-{sb.sandbox_id}.sandbox.localhost:{port}", "X-API-Key": fleet.teams[0].api_key},
    )
    assert r.status_code == 204
    assert sb.is_running()


def test_auto_pause_at_timeout_then_connect_resumes(fresh):
    sb = fresh(timeout=3, lifecycle={"on_timeout": "pause"})
    sb.files.write("/tmp/kept.txt", "kept")
    poll(
        "paused at its timeout",
        lambda: Sandbox.get_info(sb.sandbox_id).state == SandboxState.PAUSED,
        timeout=30,
    )
    assert not sb.is_running()
    again = sb.connect(timeout=60)
    assert Sandbox.get_info(sb.sandbox_id).state == SandboxState.RUNNING
    assert again.files.read("/tmp/kept.txt") == "kept"


def test_fork_copies_memory_processes_and_files(fresh):
    sb = fresh()
    sb.files.write("/tmp/parent.txt", "from the parent")
    h = sb.commands.run("sleep 600", background=True)
    forks = sb.fork(count=2, timeout=120)
    assert len(forks) == 2 and all(isinstance(f, Sandbox) for f in forks), forks
    try:
        assert sb.is_running(), "the source keeps running"
        ids = {f.sandbox_id for f in forks}
        assert len(ids) == 2 and sb.sandbox_id not in ids
        for f in forks:
            assert f.files.read("/tmp/parent.txt") == "from the parent"
            assert any(p.pid == h.pid for p in f.commands.list())
            f.files.write("/tmp/own.txt", f.sandbox_id)
        # Each fork has its own disk and its own envd token.
        assert forks[0].files.read("/tmp/own.txt") != forks[1].files.read("/tmp/own.txt")
        assert forks[0]._envd_access_token != sb._envd_access_token
    finally:
        for f in forks:
            f.kill()
