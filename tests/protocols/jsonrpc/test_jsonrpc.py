"""The JSON-RPC adapter on a running hub: the reference's curl flow, procedures, discovery, events,
requests, webhooks, the CLI and `run()` from another process, and every error path."""

import json
import subprocess
import sys
import time

import httpx
import jwt
import pytest
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from protocols.jsonrpc import auth
from protocols.jsonrpc.store import UserStore
from tests.legacy_client import legacy_client

from .platypush_pkg import platypush_build

INVALID_CREDENTIALS = {"code": 401, "error": "INVALID_CREDENTIALS", "message": "Invalid credentials"}

EXTRA = """
[jsonrpc.procedures.at_home]
args = {room = "hall"}
doc = "Lights on, tell everyone."
actions = [
  {action = "hub.publish", args = {channel = "home", data = {event = "arrived", room = "${room}"}}},
  {action = "hub.channels", args = {}},
]

[jsonrpc.procedures.shout]
args = ["text"]
actions = [{action = "hub.broadcast", args = {channels = ["home", "news"], data = "${text}"}}]

[jsonrpc.procedures.broken]
actions = [{action = "hub.publish", args = {channel = "nope:x", data = 1}}]

[jsonrpc.hooks.at_home]
procedure = "at_home"
token_header = "X-Token"
token = "abcdefabcdef"

[jsonrpc.hooks.doorbell]
channel = "doorbell"
status = 202
response = {accepted = true}

[jsonrpc.hooks.broken]
procedure = "broken"

[jsonrpc.hooks.nowhere]
channel = "nope:x"
"""
PASSWORD = "s3cret pass"


def write_config(tmp_path, running, credentials: str = 'client_user = "alice"\n', name: str = "client.toml") -> str:
    port = running.url("jsonrpc").rsplit(":", 1)[1]
    users = running.settings.adapters["jsonrpc"].users_file
    path = tmp_path / name
    path.write_text(f'[projects.development]\nsecret = "secret"\n[jsonrpc]\nport = {port}\nusers_file = "{users}"\n{credentials}')
    return str(path)


async def hub_cli_async(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return await trio.run_process([sys.executable, "-m", "hub", *args], stdin=stdin, capture_stdout=True,
                                  capture_stderr=True, check=False)


async def curl(*args: str) -> tuple[int, dict]:
    proc = await trio.run_process(["curl", "-s", "-w", "\n%{http_code}", *args], capture_stdout=True)
    body, _, status = proc.stdout.decode().rpartition("\n")
    return int(status), json.loads(body)


@pytest.fixture
async def rpc(start_hub, tmp_path):
    running = await start_hub(EXTRA)
    config = write_config(tmp_path, running)
    added = await hub_cli_async("user", "add", "alice", "--config", config, stdin=(PASSWORD + "\n").encode())
    assert added.returncode == 0 and added.stdout.decode().strip() == "user alice added", added.stderr
    return running, config


async def token_for(running, user="alice", password=PASSWORD) -> str:
    async with httpx.AsyncClient() as http:
        response = await http.post(running.url("jsonrpc") + "/auth", json={"username": user, "password": password})
    assert response.status_code == 200, response.text
    return response.json()["token"]


def ws_url(running, path: str) -> str:
    return running.url("jsonrpc").replace("http://", "ws://") + path


async def test_reference_curl_flow_reaches_a_websocket_client(rpc):
    running, _ = rpc
    url = running.url("jsonrpc")
    status, body = await curl("-XPOST", "-H", "Content-Type: application/json", "-d",
                              '\n{\n  "username": "alice",\n  "password": "s3cret pass"\n}', f"{url}/auth")
    assert status == 200 and body["token"] and body["expires_at"] > time.time() + 86400
    token = body["token"]
    async with legacy_client(running.url("realtime")) as c:
        await c.connect("bob")
        await c.subscribe("home")
        await c.subscribe("news")
        # The reference's request, as written: a procedure without args.
        status, reply = await curl("-XPOST", "-d", '{"type":"request", "action":"procedure.at_home"}',
                                   "-H", f"Authorization: Bearer {token}", "-H", "Content-Type: application/json", f"{url}/execute")
        assert status == 200, reply
        assert set(reply) == {"id", "type", "target", "origin", "_timestamp", "response", "_logging_level"}
        assert reply["type"] == "response" and reply["target"] == "http" and len(reply["id"]) == 32
        int(reply["id"], 16)
        assert reply["origin"] and isinstance(reply["_timestamp"], float)
        assert reply["response"] == {"output": {"home": 1, "news": 1}, "errors": []}
        assert (await c.next_push("message"))["body"]["data"] == {"event": "arrived", "room": "hall"}
        status, reply = await curl("-XPOST", "-d", '{"type":"request", "action":"hub.publish", "args": {"channel": "news", '
                                   '"data": {"text": "from curl"}}}', "-H", f"Authorization: Bearer {token}",
                                   "-H", "Content-Type: application/json", f"{url}/execute")
        assert status == 200 and reply["response"]["errors"] == [] and reply["response"]["output"]["channel"] == "news"
        assert (await c.next_push("message"))["body"]["data"] == {"text": "from curl"}


async def test_procedure_and_discovery(rpc):
    running, _ = rpc
    token = await token_for(running)
    async with legacy_client(running.url("realtime")) as c, httpx.AsyncClient(base_url=running.url("jsonrpc")) as http:
        await c.connect("bob")
        await c.subscribe("home")
        response = await http.post("/execute", headers={"X-Token": token},
                                   json={"type": "request", "action": "procedure.at_home", "args": {"room": "attic"}, "id": "mine"})
        assert response.status_code == 200 and response.json()["id"] == "mine"
        assert response.json()["response"]["output"] == {"home": 1}
        assert (await c.next_push("message"))["body"]["data"] == {"event": "arrived", "room": "attic"}
        response = await http.post("/execute", headers={"X-Token": token},
                                   json={"type": "request", "action": "procedure.shout", "args": {"text": "hey"}})
        assert [p["channel"] for p in response.json()["response"]["output"]] == ["home", "news"]
        assert (await c.next_push("message"))["body"]["data"] == "hey"
        found = (await http.get(f"/actions?token={token}")).json()
    expected = {"hub.publish", "hub.broadcast", "hub.presence", "hub.history", "hub.channels", "hub.unsubscribe",
                "hub.disconnect", "hub.stats"}
    assert expected <= set(found["actions"])
    publish = found["actions"]["hub.publish"]
    assert publish["args"] == {"channel": {"type": "str", "required": True}, "data": {"type": "any", "required": True},
                               "project": {"type": "str | null", "required": False, "default": None}}
    assert "Publish" in publish["doc"] and publish["name"] == "hub.publish"
    assert found["actions"]["hub.broadcast"]["args"]["channels"]["type"] == "list[str]"
    assert found["actions"]["hub.history"]["args"]["limit"] == {"type": "int | null", "required": False, "default": None}
    assert found["procedures"]["procedure.at_home"] == {
        "name": "procedure.at_home", "doc": "Lights on, tell everyone.", "returns": "any",
        "args": {"room": {"type": "str", "required": False, "default": "hall"}}, "actions": ["hub.publish", "hub.channels"]}
    assert found["procedures"]["procedure.shout"]["args"] == {"text": {"type": "any", "required": True}}
    if "chat" in running.urls:  # another adapter's actions, registered from its own code
        assert {"chat.send", "chat.history", "chat.rooms"} <= set(found["actions"])


async def test_actions_registered_later_are_listed_and_run(rpc):
    running, _ = rpc
    token = await token_for(running)

    def greet(name: str, punctuation: str = "!") -> dict:
        """Say hello."""
        return {"text": f"hello {name}{punctuation}", "set": {1}}

    running.actions.register("demo.greet", greet)
    async with httpx.AsyncClient(base_url=running.url("jsonrpc"), headers={"X-Token": token}) as http:
        found = (await http.get("/actions")).json()["actions"]["demo.greet"]
        assert found == {"name": "demo.greet", "doc": "Say hello.", "returns": "dict",
                         "args": {"name": {"type": "str", "required": True},
                                  "punctuation": {"type": "str", "required": False, "default": "!"}}}
        reply = (await http.post("/execute", json={"type": "request", "action": "demo.greet", "args": {"name": "ann"}})).json()
        assert reply["response"]["output"] == {"text": "hello ann!", "set": [1]}
        running.actions.unregister("demo.greet")
        assert "demo.greet" not in (await http.get("/actions")).json()["actions"]


async def next_event(ws, kind: str, subtype: str | None = None, **match) -> dict:
    """The next /ws/events message whose args.type is `kind` (and subtype, and args matching `match`)."""
    with trio.fail_after(5):
        while True:
            msg = json.loads(await ws.get_message())
            args = msg["args"]
            if args["type"] == kind and (subtype is None or args.get("subtype") == subtype) and \
                    all(args.get(k) == v for k, v in match.items()):
                return msg


CUSTOM = "platypush.message.event.custom.CustomEvent"
WEBHOOK = "platypush.message.event.http.hook.WebhookEvent"


async def test_events_socket_gets_publications_and_custom_events(rpc, tmp_path):
    running, _ = rpc
    token = await token_for(running)
    seen = []

    async with open_websocket_url(ws_url(running, f"/ws/events?token={token}")) as a, \
            open_websocket_url(ws_url(running, "/ws/events"), extra_headers=[("Authorization", f"Bearer {token}")]) as b, \
            open_websocket_url(ws_url(running, "/ws/events"), extra_headers=[("X-Token", token)]) as c:
        await trio.sleep(0.1)
        async with legacy_client(running.url("realtime")) as client:
            await client.connect("carol")
            await client.subscribe("news")
            await running.publish("news", {"n": 1})
            for ws in (a, b, c):
                connect = await next_event(ws, CUSTOM, "hub.connect", user="carol")
                assert connect["args"]["protocol"] and connect["args"]["client"]
                join = await next_event(ws, CUSTOM, "hub.join")
                assert join["args"]["channel"] == "news" and join["args"]["user"] == "carol"
                msg = await next_event(ws, CUSTOM, "hub.publication")
                # Platypush's envelope: type, target, origin, id, _timestamp, args (Event.as_dict's keys, in its order)
                assert list(msg) == ["type", "target", "origin", "id", "_timestamp", "args"]
                assert msg["type"] == "event" and msg["target"] == msg["origin"] and msg["origin"]
                assert len(msg["id"]) == 32 and isinstance(msg["_timestamp"], float)
                assert msg["args"]["channel"] == "news" and msg["args"]["data"] == {"n": 1}
                assert msg["args"]["project"] == "development" and msg["args"]["uid"]
                seen += [connect, join, msg]
        for ws in (a, b, c):
            assert (await next_event(ws, CUSTOM, "hub.leave", user="carol"))["args"]["channel"] == "news"
            seen.append(await next_event(ws, CUSTOM, "hub.disconnect", user="carol"))
            assert seen[-1]["args"]["reason"]
        # The reference's custom event: every listener gets it, the sender too, completed as Platypush completes it.
        custom = {"type": "event", "args": {"type": CUSTOM, "subtype": "foo", "args": {"bar": "baz"}}}
        await a.send_message(json.dumps(custom))
        relayed = [await next_event(ws, CUSTOM, "foo") for ws in (a, b, c)]
        assert relayed[0] == relayed[1] == relayed[2]
        assert relayed[0]["args"] == custom["args"] and relayed[0]["type"] == "event" and len(relayed[0]["id"]) == 32
        # what the sender gave of the envelope is kept
        given = {"type": "event", "id": "e-1", "target": "kitchen", "origin": "phone", "_timestamp": 12.5,
                 "args": {"type": "platypush.message.event.custom.CustomEvent", "subtype": "bar"}}
        await c.send_message(json.dumps(given))
        assert await next_event(a, CUSTOM, "bar") == given
        # Anything else is dropped, as Platypush drops what it cannot build: no reply, the socket stays open.
        for bad in ("not json", json.dumps({"type": "request", "args": {}}), json.dumps({"type": "event", "args": []}),
                    json.dumps({"type": "event", "args": {"subtype": "no type"}}), json.dumps({"type": "event", "args": {"type": 5}})):
            await a.send_message(bad)
        await running.publish("news", {"n": 2})
        after = json.loads(await a.get_message())  # the very next message is the publication: nothing came back
        assert after["args"]["subtype"] == "hub.publication" and after["args"]["data"] == {"n": 2}
        seen += relayed[:1] + [after]
    await trio.sleep(0.1)
    assert not running.contexts["jsonrpc"].state["jsonrpc"].listeners

    # Platypush's own Message.build() reads every one of them: CustomEvents with the hub's fields as attributes.
    built = await platypush_build(seen + [given], tmp_path)
    for raw, event in zip(seen + [given], built, strict=True):
        assert event["class"] == "platypush.message.event.custom.CustomEvent", event
        assert event["id"] == raw["id"] and event["target"] == raw["target"] and event["origin"] == raw["origin"]
        assert event["timestamp"] == raw["_timestamp"]
        assert event["args"] == {k: v for k, v in raw["args"].items() if k not in ("type", "timestamp")}
        assert event["as_dict"]["args"]["type"] == CUSTOM
    assert built[2]["args"]["subtype"] == "hub.publication" and built[2]["args"]["data"] == {"n": 1}
    assert built[-1]["args"] == {"subtype": "bar"} and built[-1]["target"] == "kitchen"


async def test_requests_socket_runs_requests_concurrently(rpc):
    running, _ = rpc

    async def nap(seconds: float, tag: str) -> str:
        """Sleep, then answer `tag`."""
        await trio.sleep(seconds)
        return tag

    running.actions.register("test.nap", nap)
    token = await token_for(running)
    async with open_websocket_url(ws_url(running, "/ws/requests"), extra_headers=[("Authorization", f"Bearer {token}")]) as ws:
        started = time.monotonic()
        for i, delay in enumerate((0.6, 0.3, 0.0)):
            await ws.send_message(json.dumps({"type": "request", "id": f"req-{i}", "action": "test.nap",
                                              "args": {"seconds": delay, "tag": f"t{i}"}}))
        await ws.send_message(json.dumps({"type": "request", "id": "bad", "action": "test.nope"}))
        await ws.send_message(json.dumps({"type": "requests", "id": "ref", "action": "procedure.at_home"}))  # the reference's spelling
        # Platypush's Request.build looks at no `type`, and drops (logs) what it cannot build: nothing comes back.
        await ws.send_message("{not json")
        await ws.send_message(json.dumps({"type": "request", "id": "no-action"}))
        await ws.send_message(json.dumps({"id": "untyped", "action": "hub.stats"}))
        replies = {}
        with trio.fail_after(5):
            while len(replies) < 6:
                reply = json.loads(await ws.get_message())
                replies[reply["id"]] = reply
        # Run one after another, the 0.6 s request would answer first; in flight together, the shortest does.
        order = [k for k in replies if k.startswith("req-")]
        assert order == ["req-2", "req-1", "req-0"]
        assert time.monotonic() - started < 2.0
    assert {k: r["response"]["output"] for k, r in replies.items() if k.startswith("req-")} == {
        "req-0": "t0", "req-1": "t1", "req-2": "t2"}
    assert all(r["type"] == "response" and r["target"] == "http" for r in replies.values())  # Platypush's target here too
    assert replies["bad"]["response"] == {"output": {"success": False}, "errors": ["nope is not a registered action on TestPlugin"]}
    assert replies["ref"]["response"]["errors"] == [] and isinstance(replies["ref"]["response"]["output"], dict)
    assert set(replies) == {"req-0", "req-1", "req-2", "bad", "ref", "untyped"}
    assert replies["untyped"]["response"]["errors"] == [] and isinstance(replies["untyped"]["response"]["output"], dict)


async def test_webhooks(rpc):
    running, _ = rpc
    async with legacy_client(running.url("realtime")) as c, httpx.AsyncClient(base_url=running.url("jsonrpc")) as http:
        await c.connect("bob")
        await c.subscribe("home")
        await c.subscribe("doorbell")
        for headers in ({}, {"X-Token": "wrong"}, {"Authorization": "Bearer abcdefabcdef"}):
            refused = await http.get("/hook/at_home", headers=headers)
            assert refused.status_code == 401 and "X-Token" in refused.json()["error"]
        # The reference's call, as written (a GET with the token header), then one passing a procedure arg.
        status, body = await curl("-H", "X-Token: abcdefabcdef", f"{running.url('jsonrpc')}/hook/at_home")
        assert status == 200 and body == {"home": 1, "doorbell": 1}
        assert (await c.next_push("message"))["body"]["data"] == {"event": "arrived", "room": "hall"}
        response = await http.post("/hook/at_home", headers={"X-Token": "abcdefabcdef"}, json={"room": "garage"})
        assert response.status_code == 200
        assert (await c.next_push("message"))["body"]["data"] == {"event": "arrived", "room": "garage"}
        response = await http.post("/hook/doorbell?who=me", json={"ring": 2}, headers={"Authorization": "Bearer secret"})
        assert response.status_code == 202 and response.json() == {"accepted": True}
        data = (await c.next_push("message"))["body"]["data"]
        assert data["hook"] == "doorbell" and data["method"] == "POST" and data["body"] == {"ring": 2}
        assert data["query"] == {"who": "me"} and data["headers"]["content-type"] == "application/json"
        assert "authorization" not in data["headers"]
        response = await http.put("/hook/doorbell", content=b"plain text")
        assert response.status_code == 202 and (await c.next_push("message"))["body"]["data"]["body"] == "plain text"
        broken = await http.get("/hook/broken")
        assert broken.status_code == 400 and broken.json() == {"error": "procedure.broken: hub.publish: namespace not found"}
        nowhere = await http.get("/hook/nowhere")
        assert nowhere.status_code == 500 and "namespace not found" in nowhere.json()["error"]


async def test_every_hook_call_is_a_webhook_event_and_unknown_hooks_answer_as_platypush(rpc, start_hub, tmp_path):
    running, _ = rpc
    token = await token_for(running)
    async with open_websocket_url(ws_url(running, f"/ws/events?token={token}")) as events, \
            httpx.AsyncClient(base_url=running.url("jsonrpc")) as http:
        await trio.sleep(0.1)
        # A hook nobody configured: 200 with Platypush's default answer, the event on /ws/events (X-Token kept:
        # a listener checks it, as in the reference's example; the caller's credentials for the hub are not).
        response = await http.post("/hook/garage?door=open&door=closed", json={"state": 1},
                                   headers={"X-Token": "abc", "Authorization": "Bearer x", "Cookie": "c=1"})
        assert response.status_code == 200 and response.headers["content-type"] == "application/json"
        answer = response.json()
        assert list(answer) == ["status", "hook", "method", "args", "data", "headers"]
        assert answer["status"] == "ok" and answer["hook"] == "garage" and answer["method"] == "POST"
        assert answer["args"] == {"door": "open"} and answer["data"] == {"state": 1}
        assert answer["headers"]["X-Token"] == "abc" and answer["headers"]["Content-Type"] == "application/json"
        assert "Authorization" not in answer["headers"] and "Cookie" not in answer["headers"]
        garage = await next_event(events, WEBHOOK, hook="garage")
        # WebhookEvent's args in its constructor's order, with the response_queue it adds
        assert list(garage["args"]) == ["type", "hook", "method", "data", "args", "headers", "response", "response_queue"]
        assert garage["args"] == {"type": WEBHOOK, **{k: v for k, v in answer.items() if k != "status"}, "response": None,
                                  "response_queue": garage["args"]["response_queue"]}
        assert garage["args"]["response_queue"].startswith("platypush/webhook/")
        text = await http.get("/hook/plain")
        assert text.status_code == 200 and text.json()["data"] == "" and text.json()["method"] == "GET"
        plain = await next_event(events, WEBHOOK, hook="plain")
        # A configured hook: the event too, without the hook's own token header.
        response = await http.get("/hook/at_home", headers={"X-Token": "abcdefabcdef"})
        assert response.status_code == 200
        at_home = await next_event(events, WEBHOOK, hook="at_home")
        assert "X-Token" not in at_home["args"]["headers"]
        refused = await http.get("/hook/at_home", headers={"X-Token": "nope"})
        assert refused.status_code == 401
    built = await platypush_build([garage, plain, at_home], tmp_path)
    for raw, event in zip([garage, plain, at_home], built, strict=True):
        assert event["class"] == "platypush.message.event.http.hook.WebhookEvent", event
        assert {k: event["args"][k] for k in ("hook", "method", "args", "data", "headers")} == {
            k: raw["args"][k] for k in ("hook", "method", "args", "data", "headers")}
    # strict_hooks: a name that is not configured is 404
    strict = await start_hub("[jsonrpc]\nstrict_hooks = true\n")
    async with httpx.AsyncClient(base_url=strict.url("jsonrpc")) as http:
        missing = await http.get("/hook/nope")
        assert missing.status_code == 404 and missing.json() == {"error": "unknown hook 'nope'"}


async def test_run_from_another_process_and_hub_exec(rpc, tmp_path):
    running, config = rpc
    with_password = write_config(tmp_path, running, f'client_user = "alice"\nclient_password = "{PASSWORD}"\n', "pw.toml")
    token = await token_for(running)
    with_token = write_config(tmp_path, running, f'client_token = "{token}"\n', "token.toml")
    async with legacy_client(running.url("realtime")) as c:
        await c.connect("bob")
        await c.subscribe("news")
        for i, path in enumerate((config, with_password, with_token)):
            code = (f"from hub import run\nprint(run('hub.publish', config={path!r}, channel='news', data={{'from': 'run', 'i': {i}}})"
                    "['channel'])")
            proc = await trio.run_process([sys.executable, "-c", code], capture_stdout=True, capture_stderr=True)
            assert proc.stdout.decode().strip() == "news"
            assert (await c.next_push("message"))["body"]["data"] == {"from": "run", "i": i}
        # $HUB_CONFIG names the file when run() is not given one; failures raise RunError with the hub's errors.
        code = ("from hub import run\nfrom protocols.jsonrpc.client import RunError\n"
                "print(run('procedure.at_home', room='den')['news'])\n"
                "try:\n    run('hub.publish', channel='news')\nexcept RunError as e:\n    print(e.status, e.errors)\n")
        proc = await trio.run_process([sys.executable, "-c", code], capture_stdout=True, capture_stderr=True,
                                      env={"HUB_CONFIG": with_password, "PATH": "/usr/bin:/bin"})
        assert proc.stdout.decode().splitlines() == ["1", "200 [\"hub.publish: missing argument 'data'\"]"]
        proc = await hub_cli_async("exec", "hub.publish", "channel=news", 'data={"n": 2}', "--config", config)
        assert proc.returncode == 0 and json.loads(proc.stdout)["channel"] == "news"
        assert (await c.next_push("message"))["body"]["data"] == {"n": 2}
        proc = await hub_cli_async("exec", "hub.publish", "channel=news", "data=plain words", "--config", with_token)
        assert proc.returncode == 0
        assert (await c.next_push("message"))["body"]["data"] == "plain words"
    for args, code, text in [
        (("hub.nope",), 1, b"nope is not a registered action on HubPlugin"),
        (("hub.publish", "channel"), 2, b"expected key=value"),
        (("hub.history", "channel=nohist:x"), 1, b"hub.history: not available"),
    ]:
        proc = await hub_cli_async("exec", *args, "--config", config)
        assert proc.returncode == code and text in proc.stderr, proc.stderr


async def test_run_errors_without_a_usable_hub(rpc, tmp_path):
    running, _ = rpc
    from protocols.jsonrpc.client import RunError, run

    store = UserStore(running.settings.adapters["jsonrpc"].users_file)
    store.add_user("bob", "pw")  # two users: the one to act as must be named
    cases = [
        ("", "several users (alice, bob)"),
        ('client_token = "x.y.z"\n', "Invalid credentials (invalid token)"),
        ('client_user = "alice"\nclient_password = "wrong"\n',
         "login as 'alice' failed: Invalid credentials (invalid username or password)"),
        ('client_user = "zed"\n', "unknown user 'zed'"),
        ('client_user = "alice"\nclient_url = "http://127.0.0.1:9"\n', "cannot reach the hub"),
    ]
    for i, (credentials, message) in enumerate(cases):
        path = write_config(tmp_path, running, credentials, f"bad{i}.toml")
        with pytest.raises(RunError) as info:
            await trio.to_thread.run_sync(lambda p=path: run("hub.stats", config=p))
        assert message in str(info.value), (credentials, str(info.value))
    with pytest.raises(RunError, match="config error"):
        run("hub.stats", config=str(tmp_path / "missing.toml"))
    elsewhere = tmp_path / "elsewhere.toml"
    elsewhere.write_text('[projects.p]\nsecret = "s"\n[jsonrpc]\nclient_user = "alice"\nusers_file = "/nonexistent/users.json"\n')
    with pytest.raises(RunError, match="no users file"):
        run("hub.stats", config=str(elsewhere))
    store.remove_user("bob")
    store.remove_user("alice")
    with pytest.raises(RunError, match="has no JSON-RPC user yet; add one with `hub user add NAME`"):
        run("hub.stats", config=write_config(tmp_path, running, "", "none.toml"))


async def test_cli_users_and_tokens(rpc, start_hub):
    running, config = rpc
    proc = await hub_cli_async("token", "alice", "--config", config)
    token = proc.stdout.decode().strip()
    body = {"type": "request", "action": "hub.stats"}
    async with httpx.AsyncClient(base_url=running.url("jsonrpc")) as http:
        assert (await http.post("/execute", json=body, headers={"Authorization": f"Bearer {token}"})).status_code == 200
        assert (await http.post("/logout", headers={"Authorization": f"Bearer {token}"})).json() == {"revoked": True}
        revoked = await http.post("/execute", json=body, headers={"Authorization": f"Bearer {token}"})
        assert revoked.status_code == 401 and revoked.json() == INVALID_CREDENTIALS
        assert revoked.headers["www-authenticate"].startswith("Bearer") and "token revoked" in revoked.headers["www-authenticate"]

        assert (await hub_cli_async("user", "add", "bob", "--config", config, stdin=b"bob pw\n")).returncode == 0
        dup = await hub_cli_async("user", "add", "bob", "--config", config, stdin=b"x\n")
        assert dup.returncode == 1 and b"already exists" in dup.stderr
        listed = await hub_cli_async("user", "list", "--config", config)
        assert listed.stdout.decode().split() == ["alice", "bob"]
        bob = await token_for(running, "bob", "bob pw")
        assert (await http.post("/execute", json=body, headers={"X-Token": bob})).status_code == 200
        await trio.sleep(1.1)  # a token of an earlier second than the password change
        assert (await hub_cli_async("user", "passwd", "bob", "--config", config, stdin=b"new pw\n")).returncode == 0
        stale = await http.post("/execute", json=body, headers={"X-Token": bob})
        assert stale.status_code == 401 and "password changed" in stale.headers["www-authenticate"]
        assert (await http.post("/auth", json={"username": "bob", "password": "bob pw"})).status_code == 401
        bob = await token_for(running, "bob", "new pw")
        assert (await hub_cli_async("user", "remove", "bob", "--config", config)).returncode == 0
        gone = await http.post("/execute", json=body, headers={"X-Token": bob})
        assert gone.status_code == 401 and gone.json() == INVALID_CREDENTIALS and "unknown user" in gone.headers["www-authenticate"]
        short = (await hub_cli_async("token", "alice", "--ttl", "3", "--config", config)).stdout.decode().strip()
        assert (await http.post("/execute", json=body, headers={"X-Token": short})).status_code == 200
        for args, text in [(("token", "nobody"), b"unknown user 'nobody'"), (("user", "remove", "nobody"), b"unknown user"),
                           (("user", "passwd", "nobody"), b"unknown user")]:
            proc = await hub_cli_async(*args, "--config", config)
            assert proc.returncode == 1 and text in proc.stderr
    # Users, revocations and the generated signing key survive a restart.
    users_file = running.settings.adapters["jsonrpc"].users_file
    again = await start_hub(EXTRA + f'\n[jsonrpc]\nusers_file = "{users_file}"\n')
    async with httpx.AsyncClient(base_url=again.url("jsonrpc")) as http:
        fresh = (await http.post("/auth", json={"username": "alice", "password": PASSWORD})).json()["token"]
        assert (await http.post("/execute", json=body, headers={"X-Token": fresh})).status_code == 200
        old = await token_for(running)  # signed by the first hub: same key
        assert (await http.post("/execute", json=body, headers={"X-Token": old})).status_code == 200
        assert (await http.post("/execute", json=body, headers={"X-Token": token})).status_code == 401
        exp = jwt.decode(short, options={"verify_signature": False})["exp"]
        await trio.sleep(max(0.0, exp - time.time() + 0.1))
        expired = await http.post("/execute", json=body, headers={"X-Token": short})
        assert expired.status_code == 401 and expired.json() == INVALID_CREDENTIALS
        assert 'error_description="token expired"' in expired.headers["www-authenticate"]


async def test_configured_secret_signs_tokens(start_hub, monkeypatch):
    secret = "k" * 40
    monkeypatch.setenv("TEST_JSONRPC_SECRET", secret)
    running = await start_hub('[jsonrpc]\ntoken_secret_env = "TEST_JSONRPC_SECRET"\n')
    store = UserStore(running.settings.adapters["jsonrpc"].users_file)
    store.add_user("ops", "pw")
    assert not store.data["secret"]  # no key generated when hub.toml gives one
    async with httpx.AsyncClient(base_url=running.url("jsonrpc")) as http:
        body = {"type": "request", "action": "hub.stats"}
        assert (await http.post("/execute", json=body, headers={"X-Token": auth.issue(secret, "ops", 60)})).status_code == 200
        assert (await http.post("/execute", json=body, headers={"X-Token": auth.issue("x" * 40, "ops", 60)})).status_code == 401


async def test_error_paths(rpc, tmp_path):
    running, _ = rpc
    token = await token_for(running)

    async def fail(**kwargs):
        raise RuntimeError("boom")

    running.actions.register("test.fail", fail)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=running.url("jsonrpc")) as http:
        # /auth as Platypush answers it (its UserAuthStatus bodies); the hub's reason in WWW-Authenticate
        invalid_session = {"code": 401, "error": "INVALID_CREDENTIALS", "message": "Invalid session"}
        for kwargs, status, body in [
            (dict(json={"username": "alice", "password": "wrong"}), 401, INVALID_CREDENTIALS),
            (dict(json={"username": "nobody", "password": "x"}), 401, INVALID_CREDENTIALS),
            (dict(json={"username": "alice"}), 401, INVALID_CREDENTIALS),
            (dict(json=[1]), 401, invalid_session),
            (dict(content=b"nope"), 401, invalid_session),
            (dict(json={"username": "alice", "password": PASSWORD, "expiry_days": "x"}), 400,
             {"status": "error", "error": "bad_request", "message": "expiry_days must be a number of days from 0 to 36500"}),
            (dict(json={"username": "alice", "password": PASSWORD}, params={"type": "session"}), 400,
             {"code": 400, "error": "INVALID_AUTH_TYPE", "message": "Invalid authentication type"}),
        ]:
            response = await http.post("/auth", **kwargs)
            assert (response.status_code, response.json()) == (status, body), kwargs
        closed = await http.post("/register", json={"username": "eve", "password": "x"})
        assert closed.status_code == 401 and closed.json() == {"code": 401, "error": "REGISTRATION_DISABLED",
                                                               "message": "Registrations are disabled"}
        assert (await http.get("/")).json()["registration_open"] is False
        for kwargs in ({}, {"headers": {"X-Token": "x.y.z"}}, {"headers": {"Authorization": "Basic abc"}},
                       {"params": {"token": ""}}):
            response = await http.post("/execute", json={"type": "request", "action": "hub.stats"}, **kwargs)
            assert response.status_code == 401 and response.json() == INVALID_CREDENTIALS, kwargs
            assert response.headers["www-authenticate"].startswith('Bearer realm="hub"')
        assert (await http.get("/actions")).status_code == 401
        assert (await http.post("/logout", headers={"X-Token": "bad"})).status_code == 401
        assert (await http.post("/logout")).status_code == 302  # Platypush's session logout: nothing to end
        # Bodies that are not requests: 400 with werkzeug's page (test_platypush_wire). Requests that ran and failed:
        # 200 with the error, as on Platypush.
        for body in (b"{nope", b"[1, 2]", json.dumps({"type": "nope", "action": "hub.stats"}).encode(),
                     json.dumps({"type": "request"}).encode()):
            response = await http.post("/execute", content=body, headers=headers)
            assert response.status_code == 400 and response.headers["content-type"] == "text/html; charset=utf-8"
        cases = [
            (json.dumps({"type": "request", "action": "hub.stats", "args": [1]}).encode(), 200, '"args" must be an object'),
            (json.dumps({"type": "request", "action": "hub.nope"}).encode(), 200, "nope is not a registered action on HubPlugin"),
            (json.dumps({"type": "request", "action": "music.mpd.play"}).encode(), 200,
             "No module named 'platypush.plugins.music.mpd'"),
            (json.dumps({"type": "request", "action": "procedure.nope"}).encode(), 200, "'nope'"),
            (json.dumps({"type": "request", "action": "procedure.shout"}).encode(), 200, "procedure.shout: missing argument 'text'"),
            (json.dumps({"type": "request", "action": "hub.publish", "args": {"channel": "x"}}).encode(), 200,
             "hub.publish: missing argument 'data'"),
            (json.dumps({"type": "request", "action": "hub.publish", "args": {"channel": 5, "data": 1}}).encode(), 200,
             "hub.publish: argument 'channel' must be str, got int"),
            (json.dumps({"type": "request", "action": "hub.broadcast", "args": {"channels": ["a", 1], "data": 1}}).encode(), 200,
             "hub.broadcast: argument 'channels' must be list[str], got array"),
            (json.dumps({"type": "request", "action": "hub.stats", "args": {"x": 1}}).encode(), 200,
             "hub.stats: unknown argument 'x'"),
            (json.dumps({"type": "request", "action": "hub.publish", "args": {"channel": "nope:x", "data": 1}}).encode(), 200,
             "hub.publish: namespace not found"),
            (json.dumps({"type": "request", "action": "procedure.broken"}).encode(), 200,
             "procedure.broken: hub.publish: namespace not found"),
            (json.dumps({"type": "request", "action": "test.fail"}).encode(), 200, "test.fail failed: RuntimeError: boom"),
        ]
        replies = []
        for body, status, text in cases:
            response = await http.post("/execute", content=body, headers=headers)
            assert response.status_code == status, (body, response.text)
            response.raise_for_status() if status == 200 else None  # a script's raise_for_status() passes, as on Platypush
            reply = response.json()
            assert reply["type"] == "response" and reply["response"]["output"] == {"success": False} and len(reply["id"]) == 32
            assert reply["response"]["errors"] == [text], (text, reply)
            replies.append(reply)
        assert (await http.get("/execute", headers=headers)).status_code == 405
        assert (await http.get("/nowhere")).status_code == 404
        too_big = await http.post("/execute", content=b"x" * (2 << 20), headers=headers)
        assert too_big.status_code == 413 and "<title>413 Request Entity Too Large</title>" in too_big.text
    # Platypush's Response reads each as an error response.
    for reply, built in zip(replies, await platypush_build(replies, tmp_path), strict=True):
        assert built["class"] == "platypush.message.response.Response" and built["is_error"]
        assert built["errors"] == reply["response"]["errors"] and built["output"] == {"success": False}
        assert built["text"]["response"] == reply["response"] and built["id"] == reply["id"]
    for path in ("/ws/events", "/ws/requests", "/ws/events?token=bad", "/ws/requests?token=bad"):
        async with open_websocket_url(ws_url(running, path)) as ws:
            with pytest.raises(ConnectionClosed) as info:
                with trio.fail_after(5):
                    await ws.get_message()
            assert info.value.reason.code == 1008 and info.value.reason.reason == "Invalid credentials"


async def test_registration_while_no_user_exists(start_hub):
    running = await start_hub()
    async with httpx.AsyncClient(base_url=running.url("jsonrpc")) as http:
        assert (await http.get("/")).json()["registration_open"] is True
        bad = await http.post("/register", json={"username": "a b", "password": "pw"})
        assert bad.status_code == 400 and "user names" in bad.json()["message"]
        # Before any user exists, Platypush asks for one: 412
        response = await http.post("/execute", json={"type": "request", "action": "hub.stats"})
        assert response.status_code == 412 and response.json() == {"code": 412, "error": "REGISTRATION_REQUIRED",
                                                                   "message": "Please create a user first"}

        results = []

        async def register(name):
            results.append((name, await http.post("/register", json={"username": name, "password": "pw"})))

        async with trio.open_nursery() as nursery:  # two at once: exactly one becomes the first user
            nursery.start_soon(register, "root")
            nursery.start_soon(register, "eve")
        statuses = sorted(r.status_code for _, r in results)
        assert statuses == [200, 401]
        (winner, response), = [(n, r) for n, r in results if r.status_code == 200]
        token = response.json()["token"]
        reply = await http.post("/execute", json={"type": "request", "action": "hub.stats"}, headers={"X-Token": token})
        assert reply.status_code == 200
        store = json.loads(open(running.settings.adapters["jsonrpc"].users_file).read())
        assert list(store["users"]) == [winner] and store["users"][winner]["hash"].startswith("$argon2")


async def test_registration_can_be_turned_off(start_hub):
    running = await start_hub("[jsonrpc]\nregistration = false\n")
    async with httpx.AsyncClient(base_url=running.url("jsonrpc")) as http:
        refused = await http.post("/register", json={"username": "root", "password": "pw"})
        assert refused.status_code == 401 and refused.json()["error"] == "REGISTRATION_DISABLED"


async def test_reload_applies_procedures_and_hooks(rpc):
    from hub.config import parse_settings
    from tests.conftest import hub_config

    running, _ = rpc
    token = await token_for(running)
    data = hub_config(EXTRA + """
[jsonrpc.procedures.quiet]
actions = [{action = "hub.stats"}]
[jsonrpc.hooks.quiet]
procedure = "quiet"
""")
    data["jsonrpc"]["users_file"] = running.settings.adapters["jsonrpc"].users_file
    if "chat" in data:  # keep the running chat database
        data["chat"] = running.settings.raw["chat"]
    result = running.reload(parse_settings(data, "<test>"))
    assert "jsonrpc.procedures" in result["changed"] and "jsonrpc.hooks" in result["changed"]
    async with httpx.AsyncClient(base_url=running.url("jsonrpc"), headers={"X-Token": token}) as http:
        assert "procedure.quiet" in (await http.get("/actions")).json()["procedures"]
        reply = await http.post("/execute", json={"type": "request", "action": "procedure.quiet"})
        assert reply.status_code == 200 and reply.json()["response"]["errors"] == []
        assert isinstance(reply.json()["response"]["output"], dict)
        assert (await http.get("/hook/quiet")).status_code == 200
