"""The JSON-RPC adapter on a running hub: the reference's curl flow, procedures, discovery, events,
requests, webhooks, the CLI and `run()` from another process, and every error path."""

import json
import subprocess
import sys
import time

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from tests.legacy_client import legacy_client

EXTRA = """
[jsonrpc.procedures.at_home]
args = ["room"]
doc = "Lights on, tell everyone."
actions = [
  {action = "hub.publish", args = {channel = "home", data = {event = "arrived", room = "${room}"}}},
  {action = "hub.channels", args = {}},
]

[jsonrpc.hooks.at_home]
procedure = "at_home"
token_header = "X-Token"
token = "abcdefabcdef"

[jsonrpc.hooks.doorbell]
channel = "doorbell"
status = 202
response = {accepted = true}
"""


def write_config(tmp_path, running) -> str:
    port = running.url("jsonrpc").rsplit(":", 1)[1]
    users = running.settings.adapters["jsonrpc"].users_file
    path = tmp_path / "client.toml"
    path.write_text(f'[projects.development]\nsecret = "secret"\n[jsonrpc]\nport = {port}\nusers_file = "{users}"\n'
                    f'client_user = "alice"\n')
    return str(path)


def add_user(config: str, name: str, password: str) -> None:
    subprocess.run([sys.executable, "-m", "hub", "user", "add", name, "--config", config], input=password + "\n",
                   text=True, check=True, capture_output=True)


async def curl(*args: str) -> tuple[int, dict]:
    proc = await trio.run_process(["curl", "-s", "-w", "\n%{http_code}", *args], capture_stdout=True)
    body, _, status = proc.stdout.decode().rpartition("\n")
    return int(status), json.loads(body)


@pytest.fixture
async def rpc(start_hub, tmp_path):
    running = await start_hub(EXTRA)
    config = write_config(tmp_path, running)
    add_user(config, "alice", "s3cret pass")
    return running, config


async def token_for(running, user="alice", password="s3cret pass") -> str:
    async with httpx.AsyncClient() as http:
        response = await http.post(running.url("jsonrpc") + "/auth", json={"username": user, "password": password})
    assert response.status_code == 200, response.text
    return response.json()["token"]


async def test_reference_curl_flow_reaches_a_websocket_client(rpc):
    running, _ = rpc
    url = running.url("jsonrpc")
    status, body = await curl("-XPOST", "-H", "Content-Type: application/json", "-d",
                              '{"username": "alice", "password": "s3cret pass"}', f"{url}/auth")
    assert status == 200 and body["token"]
    token = body["token"]
    async with legacy_client(running.url("realtime")) as c:
        await c.connect("bob")
        await c.subscribe("news")
        status, reply = await curl("-XPOST", "-d", '{"type":"request", "action":"hub.publish", "args": {"channel": "news", '
                                   '"data": {"text": "from curl"}}}', "-H", f"Authorization: Bearer {token}",
                                   "-H", "Content-Type: application/json", f"{url}/execute")
        assert status == 200
        assert reply["type"] == "response" and reply["target"] == "http" and len(reply["id"]) == 32
        assert reply["origin"] and isinstance(reply["_timestamp"], float)
        assert reply["response"]["errors"] == [] and reply["response"]["output"]["channel"] == "news"
        assert (await c.next_push("message"))["body"]["data"] == {"text": "from curl"}


async def test_procedure_and_discovery(rpc):
    running, _ = rpc
    token = await token_for(running)
    async with legacy_client(running.url("realtime")) as c, httpx.AsyncClient(base_url=running.url("jsonrpc")) as http:
        await c.connect("bob")
        await c.subscribe("home")
        response = await http.post("/execute", headers={"X-Token": token},
                                   json={"type": "request", "action": "procedure.at_home", "args": {"room": "hall"}})
        assert response.status_code == 200
        assert response.json()["response"]["output"] == {"home": 1}
        assert (await c.next_push("message"))["body"]["data"] == {"event": "arrived", "room": "hall"}
        found = (await http.get(f"/actions?token={token}")).json()
    publish = found["actions"]["hub.publish"]
    assert publish["args"]["channel"] == {"type": "str", "required": True}
    assert publish["args"]["project"] == {"type": "str | null", "required": False, "default": None}
    assert "Publish" in publish["doc"]
    assert found["procedures"]["procedure.at_home"]["args"] == {"room": {"type": "any", "required": False}}
    assert "chat.send" in found["actions"] or "chat" not in running.urls


async def test_events_socket_gets_publications_and_custom_events(rpc):
    running, _ = rpc
    token = await token_for(running)
    ws_url = running.url("jsonrpc").replace("http://", "ws://")
    async with open_websocket_url(f"{ws_url}/ws/events?token={token}") as a, \
            open_websocket_url(f"{ws_url}/ws/events", extra_headers=[("Authorization", f"Bearer {token}")]) as b:
        await trio.sleep(0.1)
        running.publish("news", {"n": 1})

        async def next_of(ws, kind):
            with trio.fail_after(5):
                while True:
                    msg = json.loads(await ws.get_message())
                    if msg["args"]["type"] == kind:
                        return msg

        for ws in (a, b):
            msg = await next_of(ws, "hub.publication")
            assert msg["type"] == "event" and msg["args"]["channel"] == "news" and msg["args"]["data"] == {"n": 1}
        custom = {"type": "event", "args": {"type": "platypush.message.event.custom.CustomEvent", "subtype": "foo",
                                            "args": {"bar": "baz"}}}
        await a.send_message(json.dumps(custom))
        assert await next_of(b, "platypush.message.event.custom.CustomEvent") == custom
        await a.send_message("not json")
        assert json.loads(await a.get_message())["type"] == "error"


async def test_requests_socket_runs_requests_concurrently(rpc):
    running, _ = rpc

    async def nap(seconds: float, tag: str) -> str:
        """Sleep, then answer `tag`."""
        await trio.sleep(seconds)
        return tag

    running.actions.register("test.nap", nap)
    token = await token_for(running)
    ws_url = running.url("jsonrpc").replace("http://", "ws://")
    async with open_websocket_url(f"{ws_url}/ws/requests?token={token}") as ws:
        started = time.monotonic()
        for i, delay in enumerate((0.6, 0.3, 0.0)):
            await ws.send_message(json.dumps({"type": "request", "id": f"req-{i}", "action": "test.nap",
                                              "args": {"seconds": delay, "tag": f"t{i}"}}))
        await ws.send_message(json.dumps({"type": "request", "id": "bad", "action": "test.nope"}))
        replies = {}
        with trio.fail_after(5):
            while len(replies) < 4:
                reply = json.loads(await ws.get_message())
                replies[reply["id"]] = reply
        # Run one after another, the 0.6 s request would answer first; in flight together, the shortest does.
        order = [k for k in replies if k != "bad"]
        assert order == ["req-2", "req-1", "req-0"]
        assert time.monotonic() - started < 2.0
    assert {k: r["response"]["output"] for k, r in replies.items() if k != "bad"} == {"req-0": "t0", "req-1": "t1", "req-2": "t2"}
    assert replies["bad"]["response"]["errors"] == ["unknown action 'test.nope'"]


async def test_webhooks(rpc):
    running, _ = rpc
    async with legacy_client(running.url("realtime")) as c, httpx.AsyncClient(base_url=running.url("jsonrpc")) as http:
        await c.connect("bob")
        await c.subscribe("home")
        await c.subscribe("doorbell")
        assert (await http.get("/hook/at_home")).status_code == 401
        assert (await http.get("/hook/at_home", headers={"X-Token": "wrong"})).status_code == 401
        response = await http.get("/hook/at_home", headers={"X-Token": "abcdefabcdef"})
        assert response.status_code == 200 and response.json() == {"home": 1, "doorbell": 1}
        assert (await c.next_push("message"))["body"]["data"]["event"] == "arrived"
        response = await http.post("/hook/doorbell?who=me", json={"ring": 2})
        assert response.status_code == 202 and response.json() == {"accepted": True}
        data = (await c.next_push("message"))["body"]["data"]
        assert data["hook"] == "doorbell" and data["method"] == "POST" and data["body"] == {"ring": 2}
        assert data["query"] == {"who": "me"}
        assert (await http.get("/hook/nope")).status_code == 404


async def test_run_from_another_process_and_hub_exec(rpc):
    running, config = rpc
    async with legacy_client(running.url("realtime")) as c:
        await c.connect("bob")
        await c.subscribe("news")
        code = (f"from hub import run\nprint(run('hub.publish', config={config!r}, channel='news', data={{'from': 'run'}})"
                "['channel'])")
        proc = await trio.run_process([sys.executable, "-c", code], capture_stdout=True, capture_stderr=True)
        assert proc.stdout.decode().strip() == "news"
        assert (await c.next_push("message"))["body"]["data"] == {"from": "run"}
        proc = await trio.run_process([sys.executable, "-m", "hub", "exec", "hub.publish", "channel=news", 'data={"n": 2}',
                                       "--config", config], capture_stdout=True)
        assert json.loads(proc.stdout)["channel"] == "news"
        assert (await c.next_push("message"))["body"]["data"] == {"n": 2}
        proc = await trio.run_process([sys.executable, "-m", "hub", "exec", "hub.nope", "--config", config],
                                      capture_stderr=True, check=False)
        assert proc.returncode == 1 and b"unknown action" in proc.stderr


async def test_cli_token_and_logout_revocation_survive_restart(rpc, start_hub):
    running, config = rpc
    proc = await trio.run_process([sys.executable, "-m", "hub", "token", "alice", "--config", config], capture_stdout=True)
    token = proc.stdout.decode().strip()
    async with httpx.AsyncClient(base_url=running.url("jsonrpc")) as http:
        body = {"type": "request", "action": "hub.stats"}
        assert (await http.post("/execute", json=body, headers={"Authorization": f"Bearer {token}"})).status_code == 200
        assert (await http.post("/logout", headers={"Authorization": f"Bearer {token}"})).json() == {"revoked": True}
        assert (await http.post("/execute", json=body, headers={"Authorization": f"Bearer {token}"})).status_code == 401
    users_file = running.settings.adapters["jsonrpc"].users_file
    again = await start_hub(EXTRA + f'\n[jsonrpc]\nusers_file = "{users_file}"\n')
    async with httpx.AsyncClient(base_url=again.url("jsonrpc")) as http:
        fresh = (await http.post("/auth", json={"username": "alice", "password": "s3cret pass"})).json()["token"]
        assert (await http.post("/execute", json=body, headers={"X-Token": fresh})).status_code == 200
        assert (await http.post("/execute", json=body, headers={"X-Token": token})).status_code == 401


async def test_error_paths(rpc):
    running, _ = rpc
    token = await token_for(running)

    async def fail(**kwargs):
        raise RuntimeError("boom")

    running.actions.register("test.fail", fail)
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=running.url("jsonrpc")) as http:
        assert (await http.post("/auth", json={"username": "alice", "password": "wrong"})).status_code == 401
        assert (await http.post("/auth", json={"username": "nobody", "password": "x"})).status_code == 401
        assert (await http.post("/auth", content=b"nope")).status_code == 400
        assert (await http.post("/register", json={"username": "eve", "password": "x"})).status_code == 403
        assert (await http.post("/execute", json={"type": "request", "action": "hub.stats"})).status_code == 401
        bad_token = await http.post("/execute", json={"type": "request", "action": "hub.stats"}, headers={"X-Token": "x.y.z"})
        assert bad_token.status_code == 401 and bad_token.json()["error"]
        assert (await http.get("/actions")).status_code == 401
        cases = [
            (b"{nope", 400, "not valid JSON"),
            (json.dumps({"type": "nope", "action": "hub.stats"}).encode(), 400, '"type" must be "request"'),
            (json.dumps({"type": "request"}).encode(), 400, '"action" must be'),
            (json.dumps({"type": "request", "action": "hub.stats", "args": [1]}).encode(), 400, '"args" must be an object'),
            (json.dumps({"type": "request", "action": "hub.nope"}).encode(), 404, "unknown action 'hub.nope'"),
            (json.dumps({"type": "request", "action": "procedure.nope"}).encode(), 404, "unknown procedure"),
            (json.dumps({"type": "request", "action": "hub.publish", "args": {"channel": "x"}}).encode(), 400,
             "missing argument 'data'"),
            (json.dumps({"type": "request", "action": "hub.publish", "args": {"channel": 5, "data": 1}}).encode(), 400,
             "argument 'channel' must be str"),
            (json.dumps({"type": "request", "action": "hub.stats", "args": {"x": 1}}).encode(), 400, "unknown argument 'x'"),
            (json.dumps({"type": "request", "action": "hub.publish", "args": {"channel": "nope:x", "data": 1}}).encode(), 500,
             "namespace not found"),
            (json.dumps({"type": "request", "action": "test.fail"}).encode(), 500, "RuntimeError: boom"),
        ]
        for body, status, text in cases:
            response = await http.post("/execute", content=body, headers=auth)
            assert response.status_code == status, (body, response.text)
            reply = response.json()
            assert reply["type"] == "response" and reply["response"]["output"] is None
            assert text in reply["response"]["errors"][0], (text, reply)
        assert (await http.get("/execute", headers=auth)).status_code == 405
        assert (await http.get("/nowhere")).json() == {"error": "not found"}
    ws_url = running.url("jsonrpc").replace("http://", "ws://")
    for path in ("/ws/events", "/ws/requests", "/ws/events?token=bad"):
        async with open_websocket_url(ws_url + path) as ws:
            with pytest.raises(ConnectionClosed) as info:
                with trio.fail_after(5):
                    await ws.get_message()
            assert info.value.reason.code == 1008


async def test_registration_while_no_user_exists(start_hub):
    running = await start_hub()
    async with httpx.AsyncClient(base_url=running.url("jsonrpc")) as http:
        first = await http.post("/register", json={"username": "root", "password": "pw"})
        assert first.status_code == 200 and first.json()["token"]
        again = await http.post("/register", json={"username": "eve", "password": "pw"})
        assert again.status_code == 403
        store = json.loads(open(running.settings.adapters["jsonrpc"].users_file).read())
        assert store["users"]["root"]["hash"].startswith("$argon2")
