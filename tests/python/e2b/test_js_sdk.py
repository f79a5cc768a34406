"""The unmodified e2b JS SDK (pinned in js/package.json) against the same fleet: create,
commands (streaming), files, info, list by metadata, timeout, connect, kill."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

JS = Path(__file__).parent / "js"


def test_js_sdk_smoke(team, fleet):
    if shutil.which("node") is None:
        print("SKIPPED test_js_sdk_smoke: needs node")
        pytest.skip("needs node")
    if not (JS / "node_modules" / "e2b").is_dir():
        print(f"SKIPPED test_js_sdk_smoke: run `npm ci` (or `npm install`) in {JS}")
        pytest.skip(f"needs `npm install` in {JS}")
    r = subprocess.run(
        ["node", "smoke.mjs"],
        cwd=JS,
        env={**os.environ},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stdout + r.stderr
