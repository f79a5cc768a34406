"""The control plane's sandbox proxy beyond what the SDK itself exercises: the console's PTY
WebSocket, plain HTTP and an upgraded connection to a user port inside a sandbox (header and
host forms), and HTTP/2 (h2c) end to end."""

import base64
import json
import os
import socket
import struct
import time
import uuid
from urllib.parse import urlparse

import httpx
import pytest

UPGRADE_SERVER = (
    "while read -r l; do l=$(printf %s \"$l\" | tr -d '\\r'); [ -z \"$l\" ] && break; done\n"
    "printf 'HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: echo\\r\\nConnection: Upgrade\\r\\n\\r\\n'\n"
    "exec cat\n"
)

# The same two servers for templates without busybox (e.g. `base`): python3.
PY_UPGRADE_SERVER = """
import socket, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8081)); s.listen()
def serve(c):
    head = b""
    while b"\\r\\n\\r\\n" not in head:
        b = c.recv(1)
        if not b:
            return
        head += b
    c.sendall(b"HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: echo\\r\\nConnection: Upgrade\\r\\n\\r\\n")
    while True:
        b = c.recv(65536)
        if not b:
            return
        c.sendall(b)
while True:
    threading.Thread(target=serve, args=(s.accept()[0],), daemon=True).start()
"""


class RawSocket:
    """An HTTP/1.1 request on a plain socket, kept open after a 101."""

    def __init__(self, url, path, headers):
        u = urlparse(url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=20)
        lines = [f"GET {path} HTTP/1.1", f"Host: {u.hostname}:{u.port}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            b = self.sock.recv(1)
            if not b:
                break
            head += b
        self.head = head.decode(errors="replace")
        self.status = int(self.head.split()[1]) if self.head else 0

    def recv_exact(self, n):
        out = b""
        while len(out) < n:
            b = self.sock.recv(n - len(out))
            if not b:
                raise EOFError(out)
            out += b
        return out

    def close(self):
        self.sock.close()


class WebSocket(RawSocket):
    """Just enough of RFC 6455 for the tests: masked client frames, unfragmented reads."""

    def __init__(self, url, path, headers=None):
        key = base64.b64encode(os.urandom(16)).decode()
        super().__init__(
            url,
            path,
            {
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Sec-WebSocket-Key": key,
                "Sec-WebSocket-Version": "13",
                **(headers or {}),
            },
        )

    def send(self, data, text=False):
        if isinstance(data, str):
            data = data.encode()
        opcode = 0x1 if text else 0x2
        mask = os.urandom(4)
        n = len(data)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def recv(self):
        """(opcode, payload)."""
        b0, b1 = self.recv_exact(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack(">H", self.recv_exact(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", self.recv_exact(8))[0]
        return b0 & 0x0F, self.recv_exact(n)


def test_console_pty_websocket(sandbox, fleet, team):
    ws = WebSocket(
        fleet.url,
        f"/v1/sandboxes/{sandbox.sandbox_id}/pty?cols=80&rows=24&access_token={team.api_key}",
    )
    assert ws.status == 101, ws.head
    seen = b""

    def until(needle, timeout=20):
        nonlocal seen
        deadline = time.time() + timeout
        while needle not in seen and time.time() < deadline:
            op, data = ws.recv()
            if op == 0x2:
                seen += data
            elif op == 0x1:
                raise AssertionError(f"unexpected text frame {data!r} before {needle!r}")
        assert needle in seen, seen

    ws.send(b"stty size; echo mark-$((40+2))\n")
    until(b"mark-42")
    until(b"24 80")
    ws.send(json.dumps({"type": "resize", "cols": 100, "rows": 30}), text=True)
    ws.send(b"stty size\n")
    until(b"30 100")
    ws.send(b"exit 3\n")
    deadline = time.time() + 20
    while time.time() < deadline:
        op, data = ws.recv()
        if op == 0x1:
            assert json.loads(data) == {"type": "exit", "exit_code": 3}
            break
    else:
        raise AssertionError("no exit message")
    ws.close()


def test_pty_needs_credentials_of_the_team(sandbox, fleet, other_team):
    ws = WebSocket(fleet.url, f"/v1/sandboxes/{sandbox.sandbox_id}/pty")
    assert ws.status == 401, ws.head
    ws.close()
    ws = WebSocket(
        fleet.url, f"/v1/sandboxes/{sandbox.sandbox_id}/pty?access_token={other_team.api_key}"
    )
    assert ws.status == 404, ws.head
    ws.close()


def test_http_and_upgrade_to_a_port_inside_the_sandbox(sandbox, fleet, team):
    d = f"/tmp/www-{uuid.uuid4().hex[:6]}"
    sandbox.files.write(f"{d}/index.html", "served from inside")
    if sandbox.commands.run("command -v busybox || true").stdout.strip():
        sandbox.files.write("/tmp/up.sh", UPGRADE_SERVER)
        sandbox.commands.run(f"busybox httpd -f -p 8000 -h {d}", background=True)
        sandbox.commands.run("busybox nc -ll -p 8081 -e /bin/sh /tmp/up.sh", background=True)
    else:
        sandbox.files.write("/tmp/up.py", PY_UPGRADE_SERVER)
        sandbox.commands.run(f"cd {d} && python3 -m http.server 8000", background=True)
        sandbox.commands.run("python3 /tmp/up.py", background=True)
    key = {"X-API-Key": team.api_key}
    headers = {"E2b-Sandbox-Id": sandbox.sandbox_id, "E2b-Sandbox-Port": "8000", **key}
    deadline = time.time() + 20
    while True:
        r = httpx.get(f"{fleet.url}/index.html", headers=headers)
        if r.status_code == 200 or time.time() > deadline:
            break
        time.sleep(0.1)
    assert (r.status_code, r.text) == (200, "served from inside")
    # The SDK names the host form with the domain the control plane announces.
    host = sandbox.get_host(8000)
    assert host == f"8000-{sandbox.sandbox_id}.sandboxes.localhost"
    port = urlparse(fleet.url).port
    r = httpx.get(f"{fleet.url}/index.html", headers={"Host": f"{host}:{port}", **key})
    assert (r.status_code, r.text) == (200, "served from inside")
    # A wrong envd token is refused, even next to a valid key.
    r = httpx.get(f"{fleet.url}/index.html", headers={**headers, **key, "X-Access-Token": "x"})
    assert r.status_code == 401

    deadline = time.time() + 20
    while True:
        conn = RawSocket(
            fleet.url,
            "/ws",
            {
                "E2b-Sandbox-Id": sandbox.sandbox_id,
                "E2b-Sandbox-Port": "8081",
                "Connection": "Upgrade",
                "Upgrade": "echo",
                **key,
            },
        )
        if conn.status == 101 or time.time() > deadline:
            break
        conn.close()
        time.sleep(0.1)
    assert conn.status == 101, conn.head
    for msg in [b"ping\n", b"pong pong\n"]:
        conn.sock.sendall(msg)
        assert conn.recv_exact(len(msg)) == msg
    conn.close()


def test_h2c_end_to_end(sandbox, fleet):
    pytest.importorskip("h2")
    with httpx.Client(http1=False, http2=True) as c:
        r = c.get(
            f"{fleet.url}/health",
            headers={
                "E2b-Sandbox-Id": sandbox.sandbox_id,
                "E2b-Sandbox-Port": "49983",
                "X-Access-Token": sandbox._envd_access_token,
            },
        )
    assert r.http_version == "HTTP/2"
    assert r.status_code == 204
