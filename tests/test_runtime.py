"""`hub run` as a real process: listeners logged, clients told on shutdown, exit 0 on SIGTERM/SIGINT."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trio

from hub.runtime import READY, listener_urls

from .legacy_client import legacy_client

CONFIG = """
[hub]
shutdown_grace = 2.0
[projects.development]
secret = "secret"
[realtime]
port = 0
[command_api]
port = 0
[jsonrpc]
port = 0
[stats]
port = 0
[chat]
port = 0
[dashboard]
port = 0
"""


def start(tmp_path: Path) -> tuple[subprocess.Popen, dict[str, str]]:
    """Run `hub run` in `tmp_path` (relative data paths land there); return it and its URLs by title."""
    from hub.adapters import adapter_registry

    text = CONFIG
    for name in ("realtime", "command_api", "jsonrpc", "stats", "chat", "dashboard"):
        if name not in adapter_registry():
            text = text.replace(f"[{name}]\nport = 0\n", "")
    cfg = tmp_path / "hub.toml"
    cfg.write_text(text)
    proc = subprocess.Popen([sys.executable, "-m", "hub", "run", "--config", str(cfg)], cwd=tmp_path,
                            stderr=subprocess.PIPE, text=True)
    lines, urls = read_until_ready(proc)
    assert "websocket clients" in urls, "".join(lines)
    return proc, urls


def read_until_ready(proc: subprocess.Popen, timeout: float = 20) -> tuple[list[str], dict[str, str]]:
    """The stderr lines of `hub run` up to its next READY line, and the listener URLs they name."""
    lines: list[str] = []
    urls: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        urls.update(listener_urls(line))
        if READY in line:
            return lines, urls
    raise AssertionError("no READY line from hub run:\n" + "".join(lines))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_hub_run_exits_0_and_tells_clients(tmp_path: Path, signum: int):
    proc, urls = start(tmp_path)
    try:
        async with legacy_client(urls["websocket clients"]) as client:
            assert (await client.connect("alice"))["error"] is None
            started = time.monotonic()
            proc.send_signal(signum)
            reason = await client.closed()
            # The original protocol's clients are told by the close itself (no status code, as the
            # original closes): a `disconnect` push would stop them from reconnecting to the restarted hub.
            assert reason.code == 1005 and not client.pushes
        code = await trio.to_thread.run_sync(proc.wait, 10)
        assert code == 0
        assert time.monotonic() - started < 5
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
