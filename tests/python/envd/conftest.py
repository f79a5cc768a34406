"""Fixtures for driving a real envd with the unmodified e2b SDK in debug mode.

`envd_url` starts the binary named by ENVD_BIN (default: target/debug/envd, relative to the
repository root) on a free port; `sandbox` points the SDK at it through E2B_DEBUG and
E2B_SANDBOX_URL, the way the SDK's debug mode connects to a local envd.
"""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def envd_url():
    binary = os.environ.get("ENVD_BIN", str(REPO / "target" / "debug" / "envd"))
    if not os.path.exists(binary):
        pytest.fail(f"envd binary {binary} not found: run `cargo build -p envd` first")
    proc = subprocess.Popen(
        [binary, "--port", "0", "--host", "127.0.0.1"],
        stdout=subprocess.PIPE,
        env={**os.environ, "ENVD_LOG": os.environ.get("ENVD_LOG", "warn")},
        text=True,
    )
    line = proc.stdout.readline()
    assert line.startswith("envd listening on"), line
    port = line.strip().rsplit(":", 1)[1]
    url = f"http://127.0.0.1:{port}"
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def sandbox(envd_url, monkeypatch):
    from e2b import Sandbox

    monkeypatch.setenv("E2B_DEBUG", "true")
    monkeypatch.setenv("E2B_SANDBOX_URL", envd_url)
    monkeypatch.setenv("E2B_API_KEY", "unused-in-debug-mode")
    sb = Sandbox.create()
    yield sb


@pytest.fixture
def tmp(tmp_path_factory):
    """A fresh directory on the host (envd runs on the host in these tests)."""
    d = Path(tempfile.mkdtemp(prefix="envd-py-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)
