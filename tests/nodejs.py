"""Node.js for the tests that run a real JavaScript client: the binary, with the package's lock file installed."""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from pathlib import Path

import pytest


def node_with(js_dir: Path, package: str, what: str) -> str:
    """The node binary, after `npm ci` in `js_dir` if `package` is not installed there yet; skips without node."""
    binary = shutil.which("node")
    if binary is None:
        pytest.skip(f"node is not installed: the {what} test needs Node.js")
    # One install at a time: test workers (pytest-xdist) each have their own session, and two `npm ci` in one
    # folder delete each other's node_modules.
    with open(js_dir / ".npm-install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (js_dir / "node_modules" / package / "package.json").exists():
            npm = shutil.which("npm")
            assert npm is not None, f"node is installed but npm is not: cannot install {package}"
            result = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=js_dir, capture_output=True, text=True,
                                    timeout=300)
            assert result.returncode == 0, f"npm ci failed:\n{result.stdout}\n{result.stderr}"
    return binary
