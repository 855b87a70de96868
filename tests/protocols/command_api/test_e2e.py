"""The command APIs on a running hub, driven by the real `cent` clients and plain HTTP, seen by real websocket clients."""

import json

import httpx
import pytest
import trio
from trio_websocket import open_websocket_url

from protocols.realtime.tokens import make_token
from tests.conftest import PROJECT, SECRET, sign
from tests.legacy_client import legacy_client

from .clients import CENT_NEW, CENT_OLD, install, run_script

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")


@pytest.fixture(scope="session")
def cent_old():
    return install(*CENT_OLD)


@pytest.fixture(scope="session")
def cent_new():
    return install(*CENT_NEW)


def old_client(url: str, body: str) -> str:
    return (f"import json\nfrom cent.core import Client\nc = Client({url!r}, {PROJECT!r}, {SECRET!r}, timeout=5)\n"
            f"{body}\n")


async def sdk_next_pub(ws, timeout: float = 5) -> dict:
    """The next publication push a client of today's SDK protocol receives (other pushes skipped)."""
    with trio.fail_after(timeout):
        while True:
            for line in (await ws.get_message()).split("\n"):
                frame = json.loads(line)
                if "pub" in frame.get("push", {}):
                    return frame["push"]


async def test_cent_060_against_real_websocket_clients(start_hub, cent_old):
    running = await start_hub()
    url = running.url("command_api")
    ws_url = running.url("realtime").replace("http://", "ws://") + "/connection/websocket"
    async with (legacy_client(running.url("realtime")) as alice, legacy_client(running.url("realtime")) as bob,
                legacy_client(running.url("realtime")) as bob2, open_websocket_url(ws_url) as carol):
        await alice.connect("alice", info='{"name": "Alice"}')
        for c in (bob, bob2):
            await c.connect("bob")
        for ch in ("news", "sport"):
            for c in (alice, bob, bob2):
                await c.subscribe(ch)
        # carol speaks today's SDK protocol on the same port
        await carol.send_message(json.dumps({"id": 1, "connect": {"token": make_token(SECRET, {"sub": "carol"})}}) + "\n"
                                 + json.dumps({"id": 2, "subscribe": {"channel": "news"}}))

        with trio.fail_after(5):
            while len(await running.presence("news")) < 4:
                await trio.sleep(0.01)
        result = await run_script(cent_old, old_client(url, 'print(json.dumps(c.publish("news", {"text": "héllo"}, client="c-1")))'))
        assert result == [{"method": "publish", "error": None, "body": True}, None]
        for c in (alice, bob, bob2):
            msg = (await c.next_push("message"))["body"]
            assert msg["data"] == {"text": "héllo"} and msg["info"] is None and msg["channel"] == "news"
            assert list(msg) == ["uid", "timestamp", "info", "channel", "data"]  # `client` has no effect, as in 0.8
        push = await sdk_next_pub(carol)
        assert push["channel"] == "news" and push["pub"]["data"] == {"text": "héllo"}

        presence = await run_script(cent_old, old_client(url, 'print(json.dumps(c.presence("news")))'))
        body = presence[0]["body"]
        assert set(body) == set(await running.presence("news")) and len(body) == 4
        assert body[alice.client_id] == {"user": "alice", "client": alice.client_id, "default_info": {"name": "Alice"},
                                         "channel_info": None}
        assert sorted(c["user"] for c in body.values()) == ["alice", "bob", "bob", "carol"]

        history = await run_script(cent_old, old_client(url, 'print(json.dumps(c.history("news")))'))
        assert [m["data"] for m in history[0]["body"]] == [{"text": "héllo"}]

        channels = await run_script(cent_old, old_client(url, 'print(json.dumps(c.channels()))'))
        assert channels[0] == {"method": "channels", "error": "method not found", "body": None}  # 0.8 had none

        batch = await run_script(cent_old, old_client(url, "\n".join([
            'c.add("publish", c.get_publish_params("sport", 1))',
            'c.add("publish", c.get_publish_params("nope:x", 2))',
            'c.add("publish", c.get_publish_params("sport", 3))',
            'c.add("unsubscribe", c.get_unsubscribe_params("bob", "news"))',
            'print(json.dumps(c.send()))'])))
        replies = batch[0]
        assert replies[1] == {"method": "publish", "error": "namespace not found", "body": False}
        assert [r["error"] for r in replies] == [None, "namespace not found", None, None]
        for c in (bob, bob2):  # in command order; the unsubscribed client is not told (the others get `leave`)
            assert [(await c.next_push("message"))["body"]["data"] for _ in range(2)] == [1, 3]
        leaves = {(await alice.next_push("leave"))["body"]["data"]["client"] for _ in range(2)}
        assert leaves == {bob.client_id, bob2.client_id}
        assert {running.hub.sessions[i].user for i in await running.presence("news")} == {"alice", "carol"}
        newest_first = await run_script(cent_old, old_client(url, 'print(json.dumps(c.history("sport")))'))
        assert [m["data"] for m in newest_first[0]["body"]] == [3, 1]

        everything = await run_script(cent_old, old_client(url, 'print(json.dumps(c.unsubscribe("alice")))'))
        assert everything[0] == {"method": "unsubscribe", "error": None, "body": True}  # every channel (0.8: HTTP 500)
        assert running.hub.sessions[alice.client_id].channels == {}

        await run_script(cent_old, old_client(url, 'print(json.dumps(c.disconnect("bob")))'))
        for c in (bob, bob2):
            await c.closed()
            assert (await c.next_push("disconnect"))["body"] == {"reason": "default"}
            assert c.client_id not in running.hub.sessions
        assert alice.client_id in running.hub.sessions
        presence = await run_script(cent_old, old_client(url, 'print(json.dumps(c.presence("news")))'))
        assert [c["user"] for c in presence[0]["body"].values()] == ["carol"]


async def test_current_cent_against_real_websocket_clients(start_hub, cent_new):
    running = await start_hub()
    api = running.url("command_api") + "/api"
    prelude = (f"import json\nfrom cent import *\nc = Client({api!r}, 'test-api-key')\n"
               "dump = lambda r: print(json.dumps(r.model_dump()))\n")
    async with legacy_client(running.url("realtime")) as alice:
        await alice.connect("alice")
        await alice.subscribe("news")
        result = await run_script(cent_new, prelude + 'dump(c.publish(PublishRequest(channel="news", data={"n": 1})))')
        assert result["offset"] == 1 and result["epoch"]
        assert (await alice.next_push("message"))["body"]["data"] == {"n": 1}

        result = await run_script(cent_new, prelude + 'dump(c.broadcast(BroadcastRequest(channels=["news", "sport"], data=2)))')
        assert [r["error"] for r in result["responses"]] == [None, None]
        assert (await alice.next_push("message"))["body"]["data"] == 2

        presence = await run_script(cent_new, prelude + 'dump(c.presence(PresenceRequest(channel="news")))')
        assert presence["presence"][alice.client_id]["user"] == "alice"
        stats = await run_script(cent_new, prelude + 'dump(c.presence_stats(PresenceStatsRequest(channel="news")))')
        assert stats == {"num_clients": 1, "num_users": 1}
        history = await run_script(cent_new, prelude + 'dump(c.history(HistoryRequest(channel="news", limit=10, reverse=True)))')
        assert [p["data"] for p in history["publications"]] == [2, {"n": 1}]
        channels = await run_script(cent_new, prelude + 'dump(c.channels(ChannelsRequest(pattern="n*")))')
        assert channels["channels"] == {"news": {"num_clients": 1}}
        info = await run_script(cent_new, prelude + 'dump(c.info(InfoRequest()))')
        assert info["nodes"][0]["num_clients"] == 1

        # The original protocol has no pushes for server-side (un)subscribes: its clients just start or stop receiving.
        await run_script(cent_new, prelude + 'dump(c.subscribe(SubscribeRequest(user="alice", channel="sport")))')
        assert "sport" in running.hub.sessions[alice.client_id].channels
        await run_script(cent_new, prelude + 'dump(c.unsubscribe(UnsubscribeRequest(user="alice", channel="news")))')
        assert "news" not in running.hub.sessions[alice.client_id].channels
        await run_script(cent_new, prelude + 'dump(c.history_remove(HistoryRemoveRequest(channel="news")))')
        assert (await running.history("news")).publications == []

        batch = await run_script(cent_new, prelude + "\n".join([
            'r = c.batch(BatchRequest(requests=[PublishRequest(channel="sport", data=3), PresenceStatsRequest(channel="sport")]))',
            'print(json.dumps([x.model_dump() for x in r.replies]))']))
        assert batch[1] == {"num_clients": 1, "num_users": 1}
        assert (await alice.next_push("message"))["body"]["data"] == 3

        error = await run_script(cent_new, prelude + "\n".join([
            "try:\n    c.publish(PublishRequest(channel='nope:x', data=1))\nexcept CentApiResponseError as e:\n"
            "    print(json.dumps([e.code, e.message]))"]))
        assert error == [102, "unknown channel"]
        bad_key = await run_script(cent_new, prelude.replace("test-api-key", "wrong") + "\n".join([
            "try:\n    c.info(InfoRequest())\nexcept CentUnauthorizedError:\n    print(json.dumps('unauthorized'))"]))
        assert bad_key == "unauthorized"

        await run_script(cent_new, prelude + 'dump(c.disconnect(DisconnectRequest(user="alice")))')
        await alice.closed()
        assert alice.client_id not in running.hub.sessions


async def test_whole_request_errors(start_hub):
    running = await start_hub("[command_api]\nmax_body_bytes = 2048\n")
    base = running.url("command_api")
    data = json.dumps({"method": "publish", "params": {"channel": "news", "data": 1}})
    good = {"data": data, "sign": sign(PROJECT, data)}
    page = "<html><title>{0}: {1}</title><body>{0}: {1}</body></html>"
    async with httpx.AsyncClient(base_url=base) as http:
        # The signed API answers as the original: Tornado's HTML error pages, in its order of checks.
        original = [
            (http.post("/api/development", content=b""), 400),
            (http.post("/api/development", data={"data": data}), 400),
            (http.post("/api/development", data={"sign": "x"}), 400),
            (http.post("/api/unknown", data={"data": data}), 400),  # fields before the project
            (http.post("/api/unknown", data=good), 404),
            (http.post("/api/development", data={"data": "{nope", "sign": "0" * 64}), 401),  # sign before JSON
            (http.post("/api/development", data={"data": "{nope", "sign": sign(PROJECT, "{nope")}), 400),
            (http.post("/api/development", data={"data": "3", "sign": sign(PROJECT, "3")}), 400),
            (http.post("/api/development", data={"data": json.dumps([{}] * 101), "sign": sign(PROJECT, json.dumps([{}] * 101))}), 400),
            (http.post("/api/development", data={**good, "sign": "0" * 64}), 401),
            (http.post("/api/development", data={**good, "data": "{}"}), 401),
            (http.post("/api/", data=good), 404),
            (http.post("/api/publish", data=good), 404),  # a signed form names a project
            (http.get("/api/development"), 405),
            (http.put("/api/development", data=good), 405),
        ]
        for request, status in original:
            response = await request
            assert response.status_code == status, (status, response.text)
            assert response.headers["content-type"] == "text/html; charset=UTF-8"
            assert response.text == page.format(status, {400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
                                                         405: "Method Not Allowed"}[status])
        # Today's API and the hub's own limits answer in JSON.
        today = [
            (http.post("/api/development", data={"data": "x" * 4000, "sign": "y"}), 413, "too large"),
            (http.post("/api", json={"method": "info"}), 401, "unauthorized"),
            (http.post("/api/info", json={}, headers={"X-API-Key": "nope"}), 401, "unauthorized"),
            (http.post("/api/info", content=b"{nope", headers={"X-API-Key": "test-api-key"}), 400, "not JSON"),
            (http.post("/api/info", content=b"[1]", headers={"X-API-Key": "test-api-key"}), 400, "JSON object"),
            (http.post("/api/publish", json={"channel": "news", "data": 1}), 401, "API key is required"),
            (http.post("/api/info", content=b"{}", headers={"content-type": "application/x-www-form-urlencoded"}), 401,
             "API key is required"),  # curl -d '{}' without a key
            (http.get("/api/publish"), 405, "method not allowed"),
        ]
        for request, status, text in today:
            response = await request
            assert response.status_code == status, (status, response.text)
            assert response.headers["content-type"] == "application/json"
            assert text in json.dumps(response.json())
        ok = await http.post("/api/development/", data=good)
        assert ok.status_code == 200 and ok.text == '[{"method": "publish", "error": null, "body": true}]'
        assert ok.headers["content-type"] == "application/json; charset=utf-8"
        info = await http.post("/api", json={"method": "info"}, headers={"Authorization": "apikey test-api-key"})
        assert info.status_code == 200 and info.json()["result"]["nodes"][0]["version"]
        wrong = await http.post("/api", json={"method": "info"}, headers={"Authorization": "apikey nope"})
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == 101
    assert running.hub.stats.messages_in == 1


async def test_non_ascii_signed_over_utf8_bytes_and_header_sign(start_hub):
    running = await start_hub()
    async with legacy_client(running.url("realtime")) as c, httpx.AsyncClient(base_url=running.url("command_api")) as http:
        await c.connect("alice")
        await c.subscribe("news")
        data = json.dumps({"method": "publish", "params": {"channel": "news", "data": "Grüße, 世界 🌍"}}, ensure_ascii=False)
        response = await http.post("/api/development", data={"data": data, "sign": sign(PROJECT, data)})
        assert response.json()[0]["error"] is None
        assert (await c.next_push("message"))["body"]["data"] == "Grüße, 世界 🌍"
        wrong = await http.post("/api/development", data={"data": data, "sign": sign(PROJECT, data.encode().decode("latin-1"))})
        assert wrong.status_code == 401
        response = await http.post("/api/development", content=data.encode(), headers={
            "X-API-Sign": sign(PROJECT, data), "Content-Type": "application/json"})
        assert response.status_code == 200 and response.json()[0]["body"] is True
        assert (await c.next_push("message"))["body"]["data"] == "Grüße, 世界 🌍"


async def test_project_named_like_a_method(start_hub):
    running = await start_hub("[projects.publish]\nsecret = \"pub-secret\"\n")
    data = json.dumps({"method": "publish", "params": {"channel": "news", "data": 1}})
    async with httpx.AsyncClient(base_url=running.url("command_api")) as http:
        signed = await http.post("/api/publish", data={"data": data, "sign": sign("publish", data, secret="pub-secret")})
        assert signed.json() == [{"method": "publish", "error": None, "body": True}]
        keyed = await http.post("/api/publish", json={"channel": "news", "data": 2}, headers={"X-API-Key": "test-api-key"})
        assert keyed.json()["result"]["offset"] >= 1
    assert running.hub.stats.messages_in == 2


async def test_live_reload_of_limits_keys_and_secrets(start_hub, tmp_path):
    from hub.config import parse_settings
    from tests.conftest import hub_config, with_tmp_files

    running = await start_hub()
    three = json.dumps([{"method": "ping", "params": {}}] * 3)
    async with httpx.AsyncClient(base_url=running.url("command_api")) as http:
        assert (await http.post("/api/development", data={"data": three, "sign": sign(PROJECT, three)})).status_code == 200
        extra = '[command_api]\nmax_commands = 2\n[projects.development]\nsecret = "new-secret"\napi_keys = ["rotated"]\n'
        result = running.reload(parse_settings(with_tmp_files(hub_config(extra), tmp_path), "<reloaded>"))
        assert "command_api" in result["changed"] and "projects" in result["changed"]
        too_many = await http.post("/api/development", data={"data": three, "sign": sign(PROJECT, three, secret="new-secret")})
        assert too_many.status_code == 400 and too_many.headers["content-type"] == "text/html; charset=UTF-8"
        one = json.dumps({"method": "ping", "params": {}})
        assert (await http.post("/api/development", data={"data": one, "sign": sign(PROJECT, one)})).status_code == 401
        assert (await http.post("/api/development", data={"data": one, "sign": sign(PROJECT, one, secret="new-secret")})).status_code == 200
        assert (await http.post("/api/info", json={}, headers={"X-API-Key": "test-api-key"})).status_code == 401
        assert (await http.post("/api/info", json={}, headers={"X-API-Key": "rotated"})).status_code == 200
