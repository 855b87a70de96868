"""The real `cent` clients from PyPI, each installed apart (they cannot share one environment)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parents[3]
CLIENTS = ROOT / ".venv" / "clients"
CENT_OLD = ("cent060", ["cent==0.6.0", "six"])
CENT_NEW = ("cent5", ["cent>=5,<6"])


def install(name: str, requirements: list[str]) -> Path:
    """pip install --target .venv/clients/<name> once; later runs reuse it (until the requirements change)."""
    target = CLIENTS / name
    marker = target / ".installed"
    if not marker.exists() or marker.read_text() != " ".join(requirements):
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--upgrade",
                        "--target", str(target), *requirements], check=True, timeout=600)
        marker.write_text(" ".join(requirements))
    return target


async def run_script(target: Path, code: str) -> Any:
    """Run `code` in a fresh interpreter that sees only `target` for the client; return its last stdout line as JSON."""
    env = {**os.environ, "PYTHONPATH": str(target)}
    proc = await trio.run_process([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(target)!r})\n{code}"],
                                  capture_stdout=True, capture_stderr=True, check=False, env=env)
    if proc.returncode != 0:
        raise AssertionError(proc.stderr.decode())
    return json.loads(proc.stdout.decode().strip().splitlines()[-1])
