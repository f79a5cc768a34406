"""A real Warren fleet of one for the unmodified `e2b` SDK.

Starts `warren server` (SQLite in a temp dir) and one `warren agent` registered through the
fleet token flow (admin from env → `POST /v1/hosts` → `warren agent --register`), with the
`minimal` template built by `warren template build minimal` (cached under target/ by the
binary's identity) and hard-linked into the agent's data dir. WARREN_E2B_TEMPLATE=base (with
WARREN_E2B_TEMPLATE_DIR=<a built templates/base>, or minutes to build it) runs it all on `base`. Two teams sign up, each with an
API key; the SDK is pointed at the control plane with only the three E2B variables:

    E2B_API_URL=<cp>/e2b   E2B_SANDBOX_URL=<cp>   E2B_API_KEY=<team A's key>

Needs root, runsc and the `warren` binary (WARREN_BIN, default target/debug/warren; it bakes
the `envd` next to it into the template). Without them every test is skipped with the reason.
Parallel-safe: free ports, a private data dir, an address pool and net prefix from the pid.
Everything made is removed at the end (sandboxes, processes by pid, nft table, mounts, dirs).
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[3]
TEMPLATE = os.environ.get("WARREN_E2B_TEMPLATE", "minimal")
# Host form of the proxy: PORT-SANDBOXID.<domain> (any name; requests carry it in Host).
PROXY_DOMAIN = "sandboxes.localhost"


def _warren_bin() -> Path:
    return Path(os.environ.get("WARREN_BIN", REPO / "target" / "debug" / "warren"))


def _skip_reason():
    if os.geteuid() != 0:
        return "needs root (runsc, netns, loop mounts)"
    if shutil.which("runsc") is None:
        return "needs runsc (gVisor) on PATH"
    if not _warren_bin().is_file():
        return f"needs the warren binary at {_warren_bin()}: cargo build -p warren -p envd (or set WARREN_BIN)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(what, f, timeout=60.0, interval=0.05):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            v = f()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - polling until it works
            last = e
        time.sleep(interval)
    raise TimeoutError(f"{what} not ready after {timeout}s (last error: {last!r})")


def _template_cache(binary: Path) -> Path:
    """`templates/<TEMPLATE>` built by this binary once, reused until the binary changes
    (or WARREN_E2B_TEMPLATE_DIR: a template dir built already, e.g. `base`)."""
    if os.environ.get("WARREN_E2B_TEMPLATE_DIR"):
        return Path(os.environ["WARREN_E2B_TEMPLATE_DIR"])
    st = binary.stat()
    envd = binary.parent / "envd"
    est = envd.stat() if envd.exists() else st
    key = f"{TEMPLATE}-{st.st_size}-{st.st_mtime_ns}-{est.st_size}-{est.st_mtime_ns}"
    root = REPO / "target" / "tmp" / "e2b-template"
    done = root / key
    if (done / "templates" / TEMPLATE / "rootfs.ext4").is_file():
        return done / "templates" / TEMPLATE
    root.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix="building-", dir=root))
    subprocess.run(
        [str(binary), "template", "build", TEMPLATE, "--data-dir", str(building)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        building.rename(done)
    except OSError:
        shutil.rmtree(building, ignore_errors=True)  # another run won the race
    for old in root.iterdir():
        if old.name.startswith(f"{TEMPLATE}-") and old.name != done.name:
            shutil.rmtree(old, ignore_errors=True)
    return done / "templates" / TEMPLATE


def _install_template(src: Path, data: Path):
    dst = data / "templates" / TEMPLATE
    dst.mkdir(parents=True)
    for f in src.iterdir():
        try:
            os.link(f, dst / f.name)
        except OSError:
            shutil.copy2(f, dst / f.name)


@dataclass
class Team:
    jwt: str
    api_key: str


@dataclass
class Fleet:
    url: str
    admin_jwt: str
    teams: list
    host_id: str

    def api(self, token: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=60)

    def signup(self) -> Team:
        email = f"e2b-{uuid.uuid4().hex[:12]}@example.com"
        r = httpx.post(
            f"{self.url}/v1/auth/signup",
            json={"email": email, "password": "correct horse battery"},
            timeout=30,
        )
        assert r.status_code in (200, 201), r.text
        jwt = r.json()["token"]
        r = httpx.post(
            f"{self.url}/v1/api-keys",
            json={"name": "e2b"},
            headers={"Authorization": f"Bearer {jwt}"},
            timeout=30,
        )
        assert r.status_code in (200, 201), r.text
        return Team(jwt=jwt, api_key=r.json()["key"])


def _cleanup_host(data: Path, prefix: str):
    """Whatever a crashed run may have left: runsc instances, netns, nft table, mounts."""
    runsc_root = data / "runsc"
    if runsc_root.is_dir():
        out = subprocess.run(
            ["runsc", f"--root={runsc_root}", "list", "-quiet"], capture_output=True, text=True
        ).stdout
        for cid in out.split():
            subprocess.run(["runsc", f"--root={runsc_root}", "delete", "-force", cid], capture_output=True)
    for ns in Path("/run/netns").glob(f"{prefix}-*") if Path("/run/netns").is_dir() else []:
        subprocess.run(["ip", "netns", "delete", ns.name], capture_output=True)
    subprocess.run(["nft", "delete", "table", "ip", prefix], capture_output=True)
    mnt = data / "mnt"
    if mnt.is_dir():
        for line in reversed(Path("/proc/self/mounts").read_text().splitlines()):
            target = line.split()[1]
            if target.startswith(str(data)):
                subprocess.run(["umount", "-l", target], capture_output=True)


@pytest.fixture(scope="session")
def fleet():
    reason = _skip_reason()
    if reason:
        print(f"SKIPPED tests/python/e2b: {reason}")
        pytest.skip(reason)
    binary = _warren_bin()
    template = _template_cache(binary)
    tmp = Path(tempfile.mkdtemp(prefix="warren-e2b-"))
    pid = os.getpid()
    prefix = f"we{pid % 10000}"
    pool = f"10.{240 + pid % 10}.{(pid // 10) % 250}.0/24"
    cp_port, ag_port = _free_port(), _free_port()
    url = f"http://127.0.0.1:{cp_port}"
    admin = ("admin@example.com", "admin password 123")
    procs = []
    env = {
        **os.environ,
        "WARREN_LOG": os.environ.get("WARREN_LOG", "info"),
        "WARREN_ADMIN_EMAIL": admin[0],
        "WARREN_ADMIN_PASSWORD": admin[1],
        "WARREN_MONITOR_INTERVAL_MS": "1000",
        "WARREN_HEARTBEAT_TIMEOUT_MS": "15000",
        "WARREN_RECONCILE_GRACE_MS": "1000",
        "WARREN_PROXY_DOMAIN": PROXY_DOMAIN,
    }
    teams = []
    try:
        server_log = open(tmp / "server.log", "w")
        server = subprocess.Popen(
            [str(binary), "server", "--listen", f"127.0.0.1:{cp_port}", "--data-dir", str(tmp / "cp")],
            env=env,
            stdout=server_log,
            stderr=subprocess.STDOUT,
        )
        procs.append(server)
        _wait("control plane", lambda: httpx.get(f"{url}/healthz", timeout=2).status_code == 200)
        r = httpx.post(f"{url}/v1/auth/login", json={"email": admin[0], "password": admin[1]}, timeout=30)
        assert r.status_code == 200, r.text
        admin_jwt = r.json()["token"]
        r = httpx.post(
            f"{url}/v1/hosts",
            json={"address": f"127.0.0.1:{ag_port}"},
            headers={"Authorization": f"Bearer {admin_jwt}"},
            timeout=30,
        )
        assert r.status_code == 201, r.text
        host_id = r.json()["host"]["id"]
        registration = r.json()["registration_token"]
        agent_data = tmp / "agent"
        agent_data.mkdir()
        _install_template(template, agent_data)
        agent_log = open(tmp / "agent.log", "w")
        agent = subprocess.Popen(
            [
                str(binary), "agent",
                "--listen", f"127.0.0.1:{ag_port}",
                "--data-dir", str(agent_data),
                "--register", registration,
                "--address", f"127.0.0.1:{ag_port}",
                "--control-plane", url,
                "--heartbeat-interval-ms", "1000",
                "--reaper-interval-ms", "500",
                "--net-pool", pool,
                "--net-prefix", prefix,
            ],
            env=env,
            stdout=agent_log,
            stderr=subprocess.STDOUT,
        )
        procs.append(agent)

        def online():
            h = httpx.get(
                f"{url}/v1/hosts/{host_id}", headers={"Authorization": f"Bearer {admin_jwt}"}, timeout=5
            ).json()
            return h.get("status") == "online" and TEMPLATE in h.get("templates", [])

        _wait("agent registered and online", online, timeout=60)
        f = Fleet(url=url, admin_jwt=admin_jwt, teams=teams, host_id=host_id)
        teams.extend([f.signup(), f.signup()])
        yield f
    finally:
        for t in teams:
            try:
                c = httpx.Client(base_url=url, headers={"X-API-Key": t.api_key}, timeout=120)
                for s in c.get("/v1/sandboxes", params={"limit": 1000}).json().get("items", []):
                    c.delete(f"/v1/sandboxes/{s['id']}")
            except Exception as e:  # noqa: BLE001 - best effort, the host cleanup follows
                print(f"cleanup: {e!r}")
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        _cleanup_host(tmp / "agent", prefix)
        if os.environ.get("WARREN_KEEP_TEST_DIR"):
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def team(fleet):
    """Team A; points the SDK at the fleet with only the three E2B variables."""
    os.environ["E2B_API_URL"] = f"{fleet.url}/e2b"
    os.environ["E2B_SANDBOX_URL"] = fleet.url
    os.environ["E2B_API_KEY"] = fleet.teams[0].api_key
    os.environ.pop("E2B_DEBUG", None)
    return fleet.teams[0]


@pytest.fixture(scope="session")
def other_team(fleet):
    return fleet.teams[1]


@pytest.fixture(scope="module")
def sandbox(team):
    """A sandbox shared by a module's read-mostly tests."""
    from e2b import Sandbox

    sb = Sandbox.create(template=TEMPLATE, timeout=600, metadata={"suite": "e2b-shared"})
    yield sb
    sb.kill()


@pytest.fixture
def fresh(team):
    """A sandbox of its own for a test that changes its state."""
    from e2b import Sandbox

    made = []

    def make(**kw):
        kw.setdefault("template", TEMPLATE)
        kw.setdefault("timeout", 300)
        sb = Sandbox.create(**kw)
        made.append(sb)
        return sb

    yield make
    for sb in made:
        try:
            sb.kill()
        except Exception:  # noqa: BLE001 - already gone is fine
            pass
