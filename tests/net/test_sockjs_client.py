"""The real sockjs-client (npm) in Node, speaking the original Centrifuge protocol to the hub over each
SockJS transport a browser falls back to: websocket, xhr-streaming, xhr-polling.

sockjs-client is installed from tests/net/sockjs_js/package.json + package-lock.json (`npm ci`) the
first time; the test is skipped only when `node` is not on the machine.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.conftest import connect_params
from tests.nodejs import node_with

JS_DIR = Path(__file__).parent / "sockjs_js"


@pytest.fixture(scope="session")
def node() -> str:
    return node_with(JS_DIR, "sockjs-client", "sockjs-client")


class Lines:
    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self.stream, self.buffer, self.seen = stream, b"", []

    async def next(self, event: str, timeout: float = 10) -> dict[str, Any]:
        with trio.fail_after(timeout):
            while True:
                while b"\n" in self.buffer:
                    line, self.buffer = self.buffer.split(b"\n", 1)
                    obj = json.loads(line)
                    self.seen.append(obj)
                    if obj["event"] == "fail":
                        raise AssertionError(f"node client failed: {obj} after {self.seen}")
                    if obj["event"] == event:
                        return obj
                chunk = await self.stream.receive_some(65536)
                if not chunk:
                    raise AssertionError(f"node client exited before {event!r}: {self.seen}")
                self.buffer += chunk


@pytest.mark.parametrize("transport", ["websocket", "xhr-streaming", "xhr-polling"])
async def test_sockjs_client_over_each_transport(start_hub, node, transport):
    running = await start_hub()
    url = running.url("realtime") + "/connection"
    params = json.dumps(connect_params("sam"))
    process = await trio.lowlevel.open_process([node, str(JS_DIR / "client.js"), url, transport, params, "public:sj"],
                                               stdout=subprocess.PIPE, stdin=subprocess.PIPE, cwd=JS_DIR)
    try:
        lines = Lines(process.stdout)
        assert (await lines.next("open"))["transport"] == transport
        connected = await lines.next("reply")
        assert connected["method"] == "connect" and connected["error"] is None and connected["body"]["expired"] is False
        await lines.next("subscribed")
        client_id = connected["body"]["client"]
        assert running.hub.sessions[client_id].channels == {"public:sj": None}

        await running.publish("public:sj", {"n": 1})
        message = await lines.next("push")
        while message["method"] != "message":
            message = await lines.next("push")
        assert message["body"]["data"] == {"n": 1} and message["body"]["info"] is None
        own = await lines.next("push")  # its own publish comes back before the publish reply
        assert own["method"] == "message" and own["body"]["data"] == {"from": "sockjs"}
        assert own["body"]["info"]["client"] == client_id
        reply = await lines.next("reply")
        assert reply == {"event": "reply", "method": "publish", "error": None, "body": {"channel": "public:sj", "status": True}}
        history = await running.history("public:sj")
        assert [p.data for p in history.publications] == [{"n": 1}, {"from": "sockjs"}]

        await running.hub.disconnect("development", "sam", "bye")
        push = await lines.next("push")
        assert push == {"event": "push", "method": "disconnect", "body": {"reason": "bye"}}
        closed = await lines.next("closed")
        assert (closed["code"], closed["reason"]) == (3000, "Go away!")
        with trio.fail_after(10):
            assert await process.wait() == 0
        assert client_id not in running.hub.sessions
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_sockjs_client_closing_leaves_the_channel(start_hub, node):
    running = await start_hub()
    url = running.url("realtime") + "/connection"
    process = await trio.lowlevel.open_process(
        [node, str(JS_DIR / "client.js"), url, "xhr-polling", json.dumps(connect_params("tess")), "public:bye"],
        stdout=subprocess.PIPE, stdin=subprocess.PIPE, cwd=JS_DIR)
    try:
        lines = Lines(process.stdout)
        await lines.next("subscribed")
        assert len(await running.presence("public:bye")) == 1
        await process.stdin.send_all(b"close\n")
        closed = await lines.next("closed")
        assert closed["code"] == 1000
        with trio.fail_after(10):  # the hub notices when the client stops polling
            while await running.presence("public:bye"):
                await trio.sleep(0.1)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
