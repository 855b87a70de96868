"""Shared fixtures: a real hub on ephemeral loopback ports, and signing helpers.

Tests never read the working copy's hub.toml (a user may have edited it): every test runs in its own
empty directory with the hub's environment variables unset, and the shipped hub.toml is read as
committed (`shipped_config()`).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
import subprocess
import textwrap
import time
import tomllib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from hub.config import parse_settings
from hub.runtime import RunningHub, serve

SECRET = "secret"
PROJECT = "development"
ROOT = Path(__file__).resolve().parents[1]
HUB_ENV = ("HUB_CONFIG", "HUB_TOKEN", "HUB_USER")


# The hub's shipped default ports: no test may listen on them (the machine or its user may run a hub there), so
# the run holds them and a test that forgets a `port = 0` fails at once instead of now and then.
DEFAULT_PORTS = (8000, 8008, 8081, 8090, 3000, 1884)
_held: list[socket.socket] = []


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):  # an xdist worker: the controller holds them for the whole run
        return
    for port in DEFAULT_PORTS:
        sock = socket.socket()
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen(1)
        except OSError:  # someone else holds it already, which serves the same purpose
            sock.close()
            continue
        _held.append(sock)


def pytest_unconfigure(config: pytest.Config) -> None:
    while _held:
        _held.pop().close()


@pytest.fixture(autouse=True)
def isolated(tmp_path_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run each test in an empty directory (so nothing finds ./hub.toml or writes ./data), without HUB_* variables."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
    for name in HUB_ENV:
        monkeypatch.delenv(name, raising=False)


def shipped_config() -> str:
    """The hub.toml the project ships: the committed one (`git show HEAD:hub.toml`), never the working copy."""
    try:
        proc = subprocess.run(["git", "-C", str(ROOT), "show", "HEAD:hub.toml"], capture_output=True, text=True, timeout=30,
                              env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1"})
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"the shipped hub.toml is read from git, which is not available: {exc}")
    if proc.returncode != 0:
        pytest.skip(f"not a git checkout, so the shipped hub.toml cannot be told from an edited one: {proc.stderr.strip()}")
    return proc.stdout


def local_config(text: str, tmp: Any) -> dict[str, Any]:
    """A hub.toml text made runnable in a test: every listener on port 0, data files in `tmp`."""
    data = tomllib.loads(text)
    for table in data.values():
        if isinstance(table, dict) and "port" in table:
            table["port"] = 0
    return with_tmp_files(data, tmp)

BASE_CONFIG = """
[hub]
log_level = "warning"
housekeeping_interval = 0.05
shutdown_grace = 1.0

[projects.development]
secret = "secret"
api_keys = ["test-api-key"]
presence = true
join_leave = true
history_size = 10
history_lifetime = 60

[projects.development.namespaces.public]
publish = true
anonymous = true
history_size = 100
history_lifetime = 60

[projects.development.namespaces.nohist]
presence = false
join_leave = false

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
enabled = false
port = 0
"""


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def hub_config(extra: str = "", tmp_path: Any = None) -> dict[str, Any]:
    """BASE_CONFIG (sections of adapters that are not installed dropped) merged with `extra` TOML."""
    from hub.adapters import adapter_registry

    data = tomllib.loads(BASE_CONFIG)
    for name in ("realtime", "command_api", "jsonrpc", "stats", "chat", "dashboard"):
        if name not in adapter_registry():
            data.pop(name, None)
    return merge(data, tomllib.loads(textwrap.dedent(extra)))


StartHub = Callable[..., Awaitable[RunningHub]]


def with_tmp_files(data: dict[str, Any], tmp: Any) -> dict[str, Any]:
    """Point the adapters' files (chat database, JSON-RPC users) into `tmp` unless the test set them."""
    if "chat" in data:
        data["chat"].setdefault("database", str(tmp / "chat.db"))
    if "jsonrpc" in data:
        data["jsonrpc"].setdefault("users_file", str(tmp / "jsonrpc-users.json"))
    return data


@pytest.fixture
async def start_hub(nursery: trio.Nursery, tmp_path: Any) -> StartHub:
    """`running = await start_hub(extra_toml)`: a hub on port 0 listeners, stopped after the test."""
    started: list[RunningHub] = []

    async def start(extra: str = "", data: dict[str, Any] | None = None) -> RunningHub:
        data = with_tmp_files(data if data is not None else hub_config(extra), tmp_path)
        settings = parse_settings(data, "<test>")
        running = await nursery.start(serve, settings)
        started.append(running)
        return running

    yield start
    for running in started:
        running.shutdown()


def sign(*parts: str, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), "".join(parts).encode(), hashlib.sha256).hexdigest()


def connect_params(user: str = "alice", info: str = "", timestamp: str | None = None, project: str = PROJECT) -> dict[str, str]:
    """Params of an original-protocol `connect` with a valid token."""
    ts = timestamp or str(int(time.time()))
    return {"project": project, "user": user, "timestamp": ts, "info": info, "token": sign(project, user, ts, info)}
