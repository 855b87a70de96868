"""The real centrifuge-js SDK (npm) in Node against the hub: connect, subscribe, receive, presence, history, publish.

The SDK is installed from tests/protocols/realtime/js/package.json + package-lock.json (`npm ci`)
the first time; the test is skipped only when `node` is not on the machine.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from protocols.realtime.tokens import make_token
from tests.conftest import SECRET
from tests.legacy_client import legacy_client
from tests.nodejs import node_with

JS_DIR = Path(__file__).parent / "js"
pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")


@pytest.fixture(scope="session")
def node() -> str:
    """The node binary, with centrifuge-js and ws installed next to client.js."""
    return node_with(JS_DIR, "centrifuge", "centrifuge-js")


class Lines:
    """JSON lines from a process's stdout."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self.stream = stream
        self.buffer = b""
        self.seen: list[dict[str, Any]] = []

    async def next(self, event: str, timeout: float = 10) -> dict[str, Any]:
        with trio.fail_after(timeout):
            while True:
                while b"\n" in self.buffer:
                    line, self.buffer = self.buffer.split(b"\n", 1)
                    obj = json.loads(line)
                    self.seen.append(obj)
                    if obj["event"] == "fail":
                        raise AssertionError(f"node client failed: {obj['why']} after {self.seen}")
                    if obj["event"] == event:
                        return obj
                chunk = await self.stream.receive_some(65536)
                if not chunk:
                    raise AssertionError(f"node client exited before {event!r}: {self.seen}")
                self.buffer += chunk


async def test_centrifuge_js_connects_subscribes_and_receives(start_hub, node):
    running = await start_hub()
    url = running.url("realtime").replace("http://", "ws://") + "/connection/websocket"
    token = make_token(SECRET, {"sub": "carol", "exp": int(time.time()) + 300})
    async with legacy_client(running.url("realtime")) as bob:
        await bob.connect("bob")
        await bob.subscribe("public:js")
        process = await trio.lowlevel.open_process([node, str(JS_DIR / "client.js"), url, token, "public:js", "2"],
                                                   stdout=subprocess.PIPE, cwd=JS_DIR)
        try:
            lines = Lines(process.stdout)
            connected = await lines.next("connected")
            assert len(connected["client"]) == 32 and connected["transport"] == "websocket"
            subscribed = await lines.next("subscribed")
            assert subscribed == {"event": "subscribed", "channel": "public:js", "recoverable": True, "offset": 0}

            await running.publish("public:js", {"n": 1})
            first = await lines.next("publication")
            assert first == {"event": "publication", "data": {"n": 1}, "offset": 1, "user": None}
            reply = await bob.call("publish", {"channel": "public:js", "data": {"n": 2}})
            assert reply["error"] is None
            second = await lines.next("publication")
            assert second == {"event": "publication", "data": {"n": 2}, "offset": 2, "user": "bob"}

            assert (await lines.next("presence"))["users"] == ["bob", "carol"]
            history = await lines.next("history")
            assert history["offsets"] == [1, 2] and history["epoch"]
            await lines.next("published")
            with trio.fail_after(10):
                assert await process.wait() == 0
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        received = [(await bob.next_push("message"))["body"] for _ in range(3)]
        assert [m["data"] for m in received] == [{"n": 1}, {"n": 2}, {"from": "js"}]
        assert received[2]["info"]["user"] == "carol"
