"""Hub processes sharing one throwaway Redis: start them with `hub run --set`, talk to them over sockets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import trio

from hub.runtime import READY, listener_urls
from protocols.realtime.tokens import make_token
from tests.conftest import SECRET
from tests.rawws import RawWebSocket

CONFIG = """
[hub]
log_level = "info"
housekeeping_interval = 0.05
shutdown_grace = 1.0

[engine]
type = "redis"
timeout = 0.5
connect_timeout = 0.5
heartbeat = 0.3
ping_interval = 0.2

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
presence = true
join_leave = false
history_size = 5000
history_lifetime = 300

[realtime]
port = 0
[command_api]
port = 0
[jsonrpc]
enabled = false
[stats]
enabled = false
[chat]
enabled = false
[dashboard]
enabled = false
"""

API_KEY = "test-api-key"


class Node:
    """One `hub run` process; `urls` by listener title, `api` posts to its API-key command API."""

    def __init__(self, proc: subprocess.Popen[str], log: Path, urls: dict[str, str]) -> None:
        self.proc, self.log, self.urls = proc, log, urls
        self.http: httpx.AsyncClient | None = None

    @property
    def base(self) -> str:
        return self.urls["command API"]

    @property
    def ws(self) -> str:
        return self.urls["websocket clients"].replace("http://", "ws://") + "/connection/websocket"

    async def api(self, method: str, params: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
        if self.http is None:
            self.http = httpx.AsyncClient(base_url=self.base)
        r = await self.http.post("/api", json={"method": method, "params": params}, headers={"X-API-Key": API_KEY},
                                 timeout=timeout)
        return r.json()

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def write_config(tmp: Path, extra: str = "") -> Path:
    from hub.adapters import adapter_registry

    text = CONFIG
    for name in ("jsonrpc", "stats", "chat", "dashboard"):
        if name not in adapter_registry():
            text = text.replace(f"[{name}]\nenabled = false\n", "")
    path = tmp / "hub.toml"
    path.write_text(text + extra)
    return path


def start_node(tmp: Path, redis_url: str, name: str, *sets: str, config: Path | None = None,
               args: tuple[str, ...] = ()) -> Node:
    config = config or write_config(tmp)
    log = tmp / f"{name}.log"
    cmd = [sys.executable, "-m", "hub", "run", "--config", str(config), "--set", f'engine.url="{redis_url}"',
           "--set", f'engine.name="{name}"', *[x for s in sets for x in ("--set", s)], *args]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=tmp, stderr=out, stdout=subprocess.DEVNULL, text=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        text = log.read_text()
        if READY in text:
            return Node(proc, log, listener_urls(text))
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"{name} did not start:\n{log.read_text()}")


def token(user: str, **claims: Any) -> str:
    return make_token(SECRET, {"sub": user, **claims})


class SdkConn:
    """Today's client protocol (JSON) on a bare websocket: commands with ids, pushes collected in order."""

    def __init__(self, ws: RawWebSocket) -> None:
        self.ws = ws
        self.next_id = 0
        self.replies: dict[int, Any] = {}
        self.pushes: list[dict[str, Any]] = []
        self.closed: tuple[int, str] | None = None
        self.client = ""

    @classmethod
    async def open(cls, url: str, user: str = "alice") -> SdkConn:
        conn = cls(await RawWebSocket.connect(url))
        reply = await conn.call("connect", {"token": token(user)})
        assert "result" in reply, reply
        conn.client = reply["result"]["client"]
        return conn

    async def _read(self) -> None:
        opcode, payload = await self.ws.recv()
        if opcode == 8:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            self.closed = (code, payload[2:].decode())
            raise EOFError(self.closed)
        for line in payload.decode().split("\n"):
            if not line.strip():
                continue
            obj = json.loads(line)
            if obj == {}:
                await self.ws.send_json({})  # ping → pong
            elif obj.get("id"):
                self.replies[obj["id"]] = obj
            elif "push" in obj:
                self.pushes.append(obj["push"])

    async def call(self, method: str, params: dict[str, Any], timeout: float = 5.0) -> Any:
        self.next_id += 1
        cid = self.next_id
        await self.ws.send_json({"id": cid, method: params})
        with trio.fail_after(timeout):
            while cid not in self.replies:
                await self._read()
        reply = self.replies.pop(cid)
        return {"error": reply["error"]} if "error" in reply else {"result": reply.get(method, {})}

    async def until(self, predicate: Any, timeout: float = 10.0) -> None:
        with trio.fail_after(timeout):
            while not predicate():
                await self._read()

    def pubs(self, channel: str) -> list[dict[str, Any]]:
        return [p["pub"] for p in self.pushes if p.get("channel") == channel and "pub" in p]

    async def aclose(self) -> None:
        await self.ws.aclose()
