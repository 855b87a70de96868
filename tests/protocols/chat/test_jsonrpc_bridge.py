"""The chat seen from the JSON-RPC adapter: REST messages on /ws/events, chat.* actions through /execute."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest
import trio
from trio_websocket import open_websocket_url

from hub.adapters import adapter_registry

pytestmark = pytest.mark.skipif("jsonrpc" not in adapter_registry(), reason="needs the JSON-RPC adapter")


async def rpc_token(hub, tmp_path) -> str:
    """Add a JSON-RPC user with its CLI, then log in over /auth."""
    running = hub.running
    port = running.url("jsonrpc").rsplit(":", 1)[1]
    users = running.settings.adapters["jsonrpc"].users_file
    config = tmp_path / "rpc-client.toml"
    config.write_text(f'[projects.development]\nsecret = "secret"\n[jsonrpc]\nport = {port}\nusers_file = "{users}"\n')
    await trio.run_process([sys.executable, "-m", "hub", "user", "add", "ops", "--config", str(config)],
                           stdin=b"ops password\n", capture_stdout=True, capture_stderr=True)
    async with httpx.AsyncClient() as http:
        r = await http.post(running.url("jsonrpc") + "/auth", json={"username": "ops", "password": "ops password"})
    assert r.status_code == 200, r.text
    return r.json()["token"]


async def test_rest_message_on_events_socket_and_actions_over_execute(chat_hub, tmp_path):
    hub = await chat_hub()
    await hub.add_user("alice")
    token = await rpc_token(hub, tmp_path)
    rpc_url = hub.running.url("jsonrpc")
    async with httpx.AsyncClient() as client, \
            open_websocket_url(rpc_url.replace("http://", "ws://") + f"/ws/events?token={token}") as events:
        await trio.sleep(0.1)
        auth = await hub.login(client, "alice")
        await client.post(f"{hub.url}/api/rooms/GENERAL/join", headers=auth)
        assert (await client.post(f"{hub.url}/api/rooms/GENERAL/send", headers=auth, json={"msg": "to the events"})).status_code == 200
        with trio.fail_after(5):
            while True:
                event = json.loads(await events.get_message())["args"]
                if event.get("subtype") == "hub.publication":  # a Platypush CustomEvent
                    break
        assert event["channel"] == "chat.GENERAL" and event["data"]["msg"] == "to the events"
        assert event["data"]["u"]["username"] == "alice"

        found = (await client.get(f"{rpc_url}/actions?token={token}")).json()["actions"]
        assert found["chat.send"]["args"] == {"room": {"type": "str", "required": True}, "msg": {"type": "str", "required": True},
                                              "user": {"type": "str", "required": True}}
        assert found["chat.history"]["args"]["limit"] == {"type": "int", "required": False, "default": 50}

        async def execute(action: str, args: dict) -> dict:
            r = await client.post(f"{rpc_url}/execute", headers={"Authorization": f"Bearer {token}"},
                                  json={"type": "request", "action": action, "args": args})
            return r.json()["response"]

        sent = await execute("chat.send", {"room": "GENERAL", "msg": "from json-rpc", "user": "alice"})
        assert sent["errors"] == [] and sent["output"]["msg"] == "from json-rpc"
        history = await execute("chat.history", {"room": "general", "limit": 2})
        assert [m["msg"] for m in history["output"]] == ["to the events", "from json-rpc"]
        failed = await execute("chat.send", {"room": "nope", "msg": "x", "user": "alice"})
        assert failed["errors"] and "room not found" in json.dumps(failed["errors"])
        unread = (await client.get(f"{hub.url}/api/rooms/GENERAL/messages", headers=auth)).json()["messages"]
        assert [m["msg"] for m in unread] == ["to the events", "from json-rpc"]


def test_cli_commands_coexist():
    """`hub chat` and the JSON-RPC `hub user` commands coexist in one parser."""
    out = subprocess.run([sys.executable, "-m", "hub", "--help"], capture_output=True, text=True, timeout=30).stdout
    assert "chat" in out and "user" in out
