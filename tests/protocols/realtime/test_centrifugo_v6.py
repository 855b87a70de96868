"""Today's Centrifugo end to end: a hub started from a Centrifugo v6 config.json, driven by the real
centrifuge-python (JSON and Protobuf), centrifuge-js (JSON and its protobuf build, under node) and cent 5.x."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import cent
import httpx
import jwt
import pytest
import trio
from centrifuge import Client, ClientEventHandler, ReplyError, StreamPosition
from centrifuge.filter import Filter
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url

from hub.config import ConfigError, load_settings
from hub.runtime import serve
from protocols.realtime import server as server_module
from protocols.realtime.tokens import make_token
from tests.protocols.realtime.test_sdk_js import JS_DIR, Lines, node  # noqa: F401  (the node fixture)
from tests.protocols.realtime.test_sdk_python import Recorder, run_asyncio, until

SECRET = "centrifugo-hmac-secret-key-long-enough-for-hs512-" + "x" * 24
API_KEY = "centrifugo-api-key"


def config(tmp_path: Path, **client: Any) -> dict[str, Any]:
    chat = {
        "name": "chat", "presence": True, "join_leave": True, "history_size": 20, "history_ttl": "300s",
        "force_recovery": True, "allow_subscribe_for_client": True, "allow_publish_for_subscriber": True,
        "allow_presence_for_subscriber": True, "allow_history_for_subscriber": True, "allow_tags_filter": True,
        "allowed_delta_types": ["fossil"],
    }
    return {
        "client": {"token": {"hmac_secret_key": SECRET, **client}, "allowed_origins": ["http://localhost:*"],
                   "stale_close_delay": "1s"},
        "http_server": {"port": 0},
        "http_api": {"key": API_KEY},
        "log": {"level": "warn"},
        "channel": {
            "history_meta_ttl": "720h",
            "without_namespace": {"allow_subscribe_for_client": True, "presence": True},
            "namespaces": [chat, {"name": "quiet", "allow_subscribe_for_client": True, "join_leave": True,
                                  "force_push_join_leave": True}],
        },
    }


async def serve_config_json(nursery: trio.Nursery, path: Path, data: dict[str, Any]) -> Any:
    """The hub on a Centrifugo config.json (`data`, written to `path`), its websocket and API listeners on free ports."""
    path.write_text(json.dumps(data))
    settings = load_settings(path)
    settings.adapters["realtime"].port = settings.adapters["command_api"].port = 0
    return await nursery.start(serve, settings)


@pytest.fixture
async def centrifugo(nursery: trio.Nursery, tmp_path: Path) -> Any:
    async def start(**client: Any) -> Any:
        running = await serve_config_json(nursery, tmp_path / "config.json", config(tmp_path, **client))
        started.append(running)
        return running

    started: list[Any] = []
    yield start
    for running in started:
        running.shutdown()


def ws_url(running: Any) -> str:
    return running.url("realtime").replace("http://", "ws://") + "/connection/websocket"


def api(running: Any) -> cent.Client:
    return cent.Client(running.url("command_api") + "/api", API_KEY)


def tok(user: str, alg: str = "HS384", key: Any = SECRET, **claims: Any) -> str:
    return make_token(key, {"sub": user, "exp": int(time.time()) + 300, **claims}, algorithm=alg)


# -- config -------------------------------------------------------------------------------------
def test_config_translation_warns_and_fails_by_name(tmp_path: Path) -> None:
    data = config(tmp_path)
    data["admin"] = {"enabled": True}
    data["channel"]["namespaces"][0]["proxy_subscribe"] = True
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    settings = load_settings(path)
    project = settings.projects[0]
    chat = project.namespaces["chat"]
    assert (project.secret, project.api_keys) == (SECRET, (API_KEY,))
    assert (chat.history_size, chat.history_lifetime, chat.join_leave, chat.publish, chat.allow_tags_filter) == (
        20, 300.0, True, True, True)
    assert not project.options.publish and not project.options.join_leave and project.options.presence
    assert settings.adapters["realtime"].allowed_origins == ["http://localhost:*"]
    assert settings.adapters["realtime"].stale_close_delay == 1.0
    assert not settings.adapters["jsonrpc"].enabled if "jsonrpc" in settings.adapters else True
    assert any(w.endswith("admin: not supported by the hub; ignored") for w in settings.warnings)
    assert any("channel.namespaces[0].proxy_subscribe" in w for w in settings.warnings)
    for broken, key in (({"client": {"token": {"hmac_secret_key": 5}}}, "client.token.hmac_secret_key"),
                        ({"channel": {"namespaces": [{"name": "x", "history_ttl": 300, "history_size": 1}]}},
                         "channel.namespaces[0].history_ttl"),
                        ({"channel": {"without_namespace": {"presence": "yes"}}}, "channel.without_namespace.presence"),
                        ({"http_server": {"port": "8000"}}, "http_server.port")):
        path.write_text(json.dumps(broken))
        with pytest.raises(ConfigError) as exc:
            load_settings(path)
        assert exc.value.key == key
    result = subprocess.run([".venv/bin/hub", "check-config", str(path)], capture_output=True, text=True,
                            cwd=Path(__file__).parents[3])
    assert result.returncode == 2 and "http_server.port" in result.stderr


# -- centrifuge-python, JSON and Protobuf -------------------------------------------------------
@pytest.mark.parametrize("use_protobuf", [False, True], ids=["json", "protobuf"])
async def test_centrifuge_python(centrifugo, use_protobuf: bool) -> None:
    running = await centrifugo()
    url, server = ws_url(running), api(running)

    def load(data: Any) -> Any:
        return json.loads(data) if isinstance(data, bytes) else data

    async def scenario(tr: Any) -> None:
        events, sub_events, filtered_events = Recorder(), Recorder(), Recorder()
        client = Client(url, events, token=tok("alice", info={"name": "Alice"}), use_protobuf=use_protobuf)
        await client.connect()
        await client.ready()
        sub = client.new_subscription("chat:room", sub_events, join_leave=True)
        await sub.subscribe()
        await sub.ready()
        assert sub_events.of("subscribed")[0].recoverable
        await until(lambda: len(sub_events.of("join")) == 1)  # its own join, after the subscribe reply
        assert sub_events.of("join")[0].info.user == "alice"

        # a second connection, subscribed with a tags filter (centrifuge-python 0.7)
        bob = Client(url, ClientEventHandler(), token=tok("bob"), use_protobuf=use_protobuf)
        await bob.connect()
        filtered = bob.new_subscription("chat:room", filtered_events, tags_filter=Filter.eq("kind", "news"))
        await filtered.subscribe()
        await filtered.ready()
        await until(lambda: len(sub_events.of("join")) == 2)

        # the server API (cent 5.x): tags, b64data, idempotency, skip_history
        first = await asyncio.to_thread(server.publish, cent.PublishRequest(channel="chat:room", data={"n": 1},
                                                                            tags={"kind": "news"}, idempotency_key="k1"))
        again = await asyncio.to_thread(server.publish, cent.PublishRequest(channel="chat:room", data={"n": 1},
                                                                            idempotency_key="k1"))
        assert (again.offset, again.epoch) == (first.offset, first.epoch)
        raw = bytes([0, 1, 2, 255])
        await asyncio.to_thread(server.publish, cent.PublishRequest(channel="chat:room", data=None,
                                                                    b64data=base64.b64encode(raw).decode()))
        await asyncio.to_thread(server.publish, cent.PublishRequest(channel="chat:room", data={"n": 3}, skip_history=True))
        await until(lambda: len(sub_events.of("publication")) == 3)
        pubs = [ctx.pub for ctx in sub_events.of("publication")]
        assert load(pubs[0].data) == {"n": 1} and pubs[0].tags == {"kind": "news"}
        if use_protobuf:
            assert pubs[1].data == raw  # b64data: the raw bytes reach Protobuf clients
        else:
            assert pubs[1].data == {"$base64": base64.b64encode(raw).decode()}
        assert load(pubs[2].data) == {"n": 3}
        await until(lambda: len(filtered_events.of("publication")) == 1)
        assert load(filtered_events.of("publication")[0].pub.data) == {"n": 1}  # only the tagged one

        # client publish, presence, history (since with an empty epoch is accepted; reverse reads back)
        await sub.publish(b'{"from":"alice"}' if use_protobuf else {"from": "alice"})
        presence = await sub.presence()
        assert {c.user for c in presence.clients.values()} == {"alice", "bob"}
        assert (await sub.presence_stats()).num_users == 2
        history = await sub.history(limit=10)
        assert load(history.publications[0].data) == {"n": 1} and len(history.publications) == 3
        since = await sub.history(limit=10, since=StreamPosition(offset=1, epoch=""))
        assert [p.offset for p in since.publications] == [2, 3]
        back = await sub.history(limit=10, since=StreamPosition(offset=3, epoch=history.epoch), reverse=True)
        assert [p.offset for p in back.publications] == [2, 1]
        with pytest.raises(ReplyError) as exc:
            await sub.history(limit=10, since=StreamPosition(offset=1, epoch="other"))
        assert exc.value.code == 112
        with pytest.raises(ReplyError) as exc:
            await client.rpc("missing", b"{}" if use_protobuf else {})
        assert exc.value.code == 108  # no RPC handler at all (Centrifugo without an RPC proxy): not available

        # a custom disconnect code from the server API reaches the client unchanged
        await bob.disconnect()
        await asyncio.to_thread(server.disconnect, cent.DisconnectRequest(
            user="alice", disconnect=cent.Disconnect(code=4501, reason="custom bye")))
        await until(lambda: len(events.of("disconnected")) == 1)
        assert (events.of("disconnected")[0].code, events.of("disconnected")[0].reason) == (4501, "custom bye")

    await run_asyncio(scenario, timeout=30)


# -- tokens -------------------------------------------------------------------------------------
async def test_rsa_ecdsa_and_jwks_tokens(centrifugo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP384R1())
    jwks_key = ec.generate_private_key(ec.SECP256R1())

    def pem(key: Any) -> str:
        return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    def private(key: Any) -> bytes:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())

    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(jwks_key.public_key()))
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [{**jwk, "kid": "k1", "alg": "ES256", "use": "sig"}]}))
    running = await centrifugo(rsa_public_key=pem(rsa_key), ecdsa_public_key=pem(ec_key),
                               jwks_public_endpoint=str(tmp_path / "jwks.json"))
    url = ws_url(running)
    tokens = {
        "hs512": tok("h", "HS512"),
        "rs256": tok("r", "RS256", private(rsa_key)),
        "rs512": tok("r5", "RS512", private(rsa_key), b64info=base64.b64encode(b'{"via":"b64"}').decode()),
        "es384": tok("e", "ES384", private(ec_key), channels=["news"], meta={"plan": "gold"}),
        "jwks": jwt.encode({"sub": "j", "exp": int(time.time()) + 60}, private(jwks_key), algorithm="ES256",
                           headers={"kid": "k1"}),
    }

    async def scenario(tr: Any) -> None:
        for token in tokens.values():
            client = Client(url, Recorder(), token=token)
            await client.connect()
            await client.ready()
            await client.disconnect()
        # the JWKS rotates: a token with a kid the cached set lacks makes the hub fetch it again
        rotated = ec.generate_private_key(ec.SECP256R1())
        jwk2 = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(rotated.public_key()))
        (tmp_path / "jwks.json").write_text(json.dumps({"keys": [{**jwk2, "kid": "k2", "alg": "ES256"}]}))
        monkeypatch.setattr(server_module, "JWKS_RETRY", 0.0)
        client = Client(url, Recorder(), token=jwt.encode({"sub": "j2", "exp": int(time.time()) + 60}, private(rotated),
                                                          algorithm="ES256", headers={"kid": "k2"}))
        await client.connect()
        await client.ready()
        await client.disconnect()
        # a token signed by an RSA key that is not the configured one: 3500, no reconnect
        bad = Client(url, Recorder(), token=tok("x", "RS256", private(rsa.generate_private_key(65537, 2048))))
        await bad.connect()
        await until(lambda: bad.state.value == "disconnected")

    await run_asyncio(scenario, timeout=60)
    assert not running.hub.sessions


# -- centrifuge-js, JSON and protobuf build ------------------------------------------------------
@pytest.mark.parametrize("fmt", ["json", "protobuf"])
async def test_centrifuge_js(centrifugo, node, fmt: str) -> None:  # noqa: F811
    running = await centrifugo()
    server = api(running)
    process = await trio.lowlevel.open_process([node, str(JS_DIR / "scenario.js"), ws_url(running), tok("carol"),
                                                "chat:js", fmt], stdout=subprocess.PIPE, cwd=JS_DIR)
    try:
        lines = Lines(process.stdout)
        await lines.next("connected")
        assert (await lines.next("subscribed"))["recoverable"] is True
        assert (await lines.next("join"))["user"] == "carol"
        assert (await lines.next("publication"))["data"] == '{"from":"js"}'
        assert (await lines.next("history"))["data"] == ['{"from":"js"}']
        await lines.next("ready")
        long = "a publication long enough for a Fossil delta to be smaller than the whole of it"
        for n in (1, 2, 3):  # the first whole, the next as deltas the SDK applies
            await trio.to_thread.run_sync(lambda n=n: server.publish(cent.PublishRequest(
                channel="chat:js", data={"n": n, "text": long}, tags={"t": "v"})))
            pub = await lines.next("publication")
            assert json.loads(pub["data"]) == {"n": n, "text": long} and pub["tags"] == {"t": "v"}
        await trio.to_thread.run_sync(lambda: server.disconnect(cent.DisconnectRequest(
            user="carol", disconnect=cent.Disconnect(code=4500, reason="go away"))))
        gone = await lines.next("disconnected")
        assert (gone["code"], gone["reason"]) == (4500, "go away")
        with trio.fail_after(10):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


# -- cent 5.x: every method, and the old POST /api -------------------------------------------------
async def test_cent_every_method_and_old_api(centrifugo) -> None:
    running = await centrifugo()
    server = api(running)
    async with open_websocket_url(ws_url(running)) as ws:
        await ws.send_message(json.dumps({"id": 1, "connect": {"token": tok("dave")}}))
        connected = json.loads(await ws.get_message())
        client_id = connected["connect"]["client"]

        def calls() -> dict[str, Any]:
            out: dict[str, Any] = {}
            out["publish"] = server.publish(cent.PublishRequest(channel="chat:x", data={"a": 1}))
            out["broadcast"] = server.broadcast(cent.BroadcastRequest(channels=["chat:x", "chat:y"], data={"b": 1}))
            out["subscribe"] = server.subscribe(cent.SubscribeRequest(user="dave", channel="chat:x", data={"welcome": 1},
                                                                      client=client_id))
            out["presence"] = server.presence(cent.PresenceRequest(channel="chat:x"))
            out["presence_stats"] = server.presence_stats(cent.PresenceStatsRequest(channel="chat:x"))
            out["history"] = server.history(cent.HistoryRequest(channel="chat:x", limit=10))
            out["channels"] = server.channels(cent.ChannelsRequest(pattern="chat:*"))
            out["info"] = server.info(cent.InfoRequest())
            out["connections"] = server.connections(cent.ConnectionsRequest(user="dave", expression=""))
            server.update_user_status(cent.UpdateUserStatusRequest(users=["dave"]))
            out["status"] = server.get_user_status(cent.GetUserStatusRequest(users=["dave"]))
            server.delete_user_status(cent.DeleteUserStatusRequest(users=["dave"]))
            out["batch"] = server.batch(cent.BatchRequest(requests=[
                cent.PublishRequest(channel="chat:x", data={"c": 1}), cent.HistoryRequest(channel="chat:x", limit=-1)]))
            server.history_remove(cent.HistoryRemoveRequest(channel="chat:x"))
            out["after_remove"] = server.history(cent.HistoryRequest(channel="chat:x", limit=10))
            server.refresh(cent.RefreshRequest(user="dave", expire_at=int(time.time()) + 600))
            server.unsubscribe(cent.UnsubscribeRequest(user="dave", channel="chat:x"))
            try:
                server.block_user(cent.BlockUserRequest(user="dave"))
            except cent.CentApiResponseError as exc:
                out["block_user"] = exc.code
            return out

        out = await trio.to_thread.run_sync(calls)
        assert out["publish"].offset == 1 and out["publish"].epoch
        assert [r.result.offset for r in out["broadcast"].responses] == [2, 1]
        assert list(out["presence"].presence.values())[0].user == "dave"
        assert out["presence_stats"].num_clients == 1
        assert [p.offset for p in out["history"].publications] == [1, 2]
        assert out["channels"].channels["chat:x"].num_clients == 1
        assert out["info"].nodes[0].num_clients == 1
        assert list(out["connections"].connections) == [client_id]
        assert out["status"].statuses[0].user == "dave" and out["status"].statuses[0].active
        assert len(out["batch"].replies) == 2
        assert out["after_remove"].publications == []
        assert out["block_user"] == 108
        pushes = []
        with trio.fail_after(5):
            while len(pushes) < 3:
                pushes.extend(json.loads(line) for line in (await ws.get_message()).split("\n"))
        subscribe = pushes[0]["push"]
        assert subscribe["channel"] == "chat:x" and subscribe["subscribe"]["data"] == {"welcome": 1}
        assert pushes[1]["push"]["pub"]["data"] == {"c": 1}
        assert pushes[2]["push"]["unsubscribe"]["code"] == 2000

    # the old API: several commands in one body, one reply line each, ids kept, methods by name or number
    async with httpx.AsyncClient(base_url=running.url("command_api")) as http:
        body = "\n".join(json.dumps(c) for c in [
            {"id": 1, "method": "publish", "params": {"channel": "chat:old", "data": {"x": 1}}},
            {"id": 2, "method": 6, "params": {"channel": "chat:old", "limit": 10}},
            {"method": "presence", "params": {"channel": "chat:nobody"}},
            {"id": 4, "method": "block_user", "params": {"user": "x"}},
            {"id": 5, "method": 99, "params": {}},
        ])
        response = await http.post("/api", content=body, headers={"Authorization": f"apikey {API_KEY}"})
        assert response.status_code == 200
        replies = [json.loads(line) for line in response.text.split("\n")]
        assert replies[0] == {"id": 1, "result": {"offset": 1, "epoch": replies[0]["result"]["epoch"]}}
        assert replies[1]["id"] == 2 and replies[1]["result"]["publications"][0]["data"] == {"x": 1}
        assert replies[2] == {"result": {"presence": {}}}
        assert replies[3] == {"id": 4, "error": {"code": 108, "message": "not available"}}
        assert replies[4] == {"id": 5, "error": {"code": 104, "message": "method not found"}}
        bad = await http.post("/api", content=b'{"method": "frobnicate"}', headers={"X-API-Key": API_KEY})
        assert (bad.status_code, bad.text) == (400, "Bad Request\n")



async def test_api_replies_carry_a_lone_surrogate_as_its_escape(centrifugo) -> None:
    """A JSON `\\ud800` in published data (valid JSON: Centrifugo passes it on) comes back from history as the same
    escape, in the new API's replies and in the old API's reply lines, rather than failing the request."""
    running = await centrifugo()
    async with httpx.AsyncClient(base_url=running.url("command_api")) as http:
        headers = {"X-API-Key": API_KEY, "Content-Type": "application/json"}
        published = await http.post("/api/publish", content=b'{"channel":"chat:odd","data":{"t":"\\ud800 x"}}', headers=headers)
        assert published.status_code == 200 and published.json()["result"]["offset"] == 1
        history = await http.post("/api/history", json={"channel": "chat:odd", "limit": 5}, headers=headers)
        assert history.status_code == 200 and '"data":{"t":"\\ud800 x"}' in history.text
        old = await http.post("/api", content=b'{"method":"history","params":{"channel":"chat:odd","limit":5}}',
                              headers={"Authorization": f"apikey {API_KEY}"})
        assert old.status_code == 200 and '"data":{"t":"\\ud800 x"}' in old.text
        assert json.loads(old.text)["result"]["publications"][0]["data"] == {"t": "\ud800 x"}

async def test_api_errors_as_centrifugo_sends_them_key_in_query_and_transport_error_mode(centrifugo, nursery, tmp_path) -> None:
    """Errors carry Centrifugo's own texts (no detail of ours); `?api_key=` authorises like the headers; with
    `X-Centrifugo-Error-Mode: transport` (or http_api.error_mode) a method's error is its HTTP status and
    {"code", "message"}, which `cent` raises as a transport error; batch replies are never affected."""
    running = await centrifugo()
    url = running.url("command_api")
    async with httpx.AsyncClient(base_url=url) as http:
        custom = await http.post("/api/publish", json={"data": 1}, headers={"X-API-Key": API_KEY})
        assert custom.status_code == 200 and custom.text == '{"error":{"code":107,"message":"bad request"}}'
        queried = await http.post(f"/api/publish?api_key={API_KEY}", json={"channel": "chat:q", "data": 1})
        assert queried.status_code == 200 and queried.json()["result"]["offset"] == 1
        assert (await http.post("/api/publish?api_key=nope", json={"channel": "chat:q", "data": 1})).status_code == 401
        transport = {"X-API-Key": API_KEY, "X-Centrifugo-Error-Mode": "transport"}
        for body, method, status, text in [
            ({"data": 1}, "publish", 400, '{"code":107,"message":"bad request"}'),
            ({"channel": "nowhere:x", "data": 1}, "publish", 404, '{"code":102,"message":"unknown channel"}'),
            ({"user": "x"}, "block_user", 400, '{"code":108,"message":"not available"}'),
        ]:
            answer = await http.post(f"/api/{method}", json=body, headers=transport)
            assert (answer.status_code, answer.text) == (status, text)
        ok = await http.post("/api/publish", json={"channel": "chat:q", "data": 2}, headers=transport)
        assert ok.status_code == 200 and ok.json()["result"]["offset"] == 2
        # results in Centrifugo's field order (apiproto structs through encoding/json)
        history = (await http.post("/api/history", json={"channel": "chat:q"}, headers=transport)).json()["result"]
        assert list(history) == ["publications", "epoch", "offset"] and history["publications"] == []
        node = (await http.post("/api/info", json={}, headers=transport)).json()["result"]["nodes"][0]
        assert [k for k in node if k != "uptime"] == ["uid", "name", "version", "num_clients", "num_users", "num_channels",
                                                      "num_subs"]
        batch = await http.post("/api/batch", json={"commands": [{"publish": {"data": 1}}]}, headers=transport)
        assert batch.status_code == 200 and batch.json()["replies"][0]["error"]["code"] == 107

    def raised(on: Any) -> Exception | None:
        try:
            api(on).publish(cent.PublishRequest(channel="nowhere:x", data={}))
        except cent.CentError as exc:
            return exc
        return None

    assert isinstance(await trio.to_thread.run_sync(raised, running), cent.CentApiResponseError)  # the default mode
    data = config(tmp_path)
    data["http_api"]["error_mode"] = "transport"
    strict = await serve_config_json(nursery, tmp_path / "strict.json", data)
    try:
        failed = await trio.to_thread.run_sync(raised, strict)
        assert isinstance(failed, cent.CentTransportError) and failed.status_code == 404
    finally:
        strict.shutdown()


# -- stale connections and origins ----------------------------------------------------------------
async def test_stale_websocket_is_closed_and_origins_are_checked(centrifugo) -> None:
    running = await centrifugo()
    async with open_websocket_url(ws_url(running)) as ws:  # never sends connect
        with trio.fail_after(5):
            with pytest.raises(ConnectionClosed) as exc:
                await ws.get_message()
        assert (exc.value.reason.code, exc.value.reason.reason) == (3502, "stale")
    with pytest.raises(ConnectionRejected) as rejected:
        async with open_websocket_url(ws_url(running), extra_headers=[("Origin", "https://evil.example")]):
            pass
    assert rejected.value.status_code == 403
    async with open_websocket_url(ws_url(running), extra_headers=[("Origin", "http://localhost:3000")]) as ws:
        await ws.send_message(json.dumps({"id": 1, "connect": {"token": tok("pat")}}))
        with trio.fail_after(5):
            assert json.loads(await ws.get_message())["id"] == 1


def test_origin_rules() -> None:
    from types import SimpleNamespace

    from protocols.realtime import origin_allowed

    def allowed(origin: str | None, patterns: list[str], check: bool, host: str = "hub.example:8000") -> bool:
        ctx = SimpleNamespace(settings=SimpleNamespace(allowed_origins=patterns, check_origin=check))
        request = SimpleNamespace(header=lambda name: {"origin": origin, "host": host}.get(name), tls=False)
        return origin_allowed(ctx, request)  # type: ignore[arg-type]

    # hub.toml default (issue 24): pages of the same host only.
    assert not allowed("https://a.example", [], False) and allowed("http://hub.example:8000", [], False)
    assert allowed("http://a.example", [], False, host="a.example:80")
    assert not allowed("https://a.example", [], True) and allowed(None, [], True)  # Centrifugo v6 without allowed_origins
    assert allowed("https://x.example.com", ["https://*.example.com"], True)
    assert not allowed("https://example.org", ["https://*.example.com"], True) and allowed("https://e.org", ["*"], True)


async def test_protobuf_by_query_and_explicit_json_subprotocol(centrifugo) -> None:
    from protocols.realtime import sdk_protobuf
    from protocols.realtime.proto import centrifugo_client_pb2 as pb

    running = await centrifugo()
    command = pb.Command(id=1, connect=pb.ConnectRequest(token=tok("pat"))).SerializeToString()
    for query in ("?format=protobuf", "?cf_protocol=protobuf"):
        async with open_websocket_url(ws_url(running) + query) as ws:
            await ws.send_message(sdk_protobuf.varint(len(command)) + command)
            with trio.fail_after(5):
                (part,) = sdk_protobuf.split(await ws.get_message())
            reply = pb.Reply()
            reply.ParseFromString(part)
            assert reply.id == 1 and len(reply.connect.client) == 32
    async with open_websocket_url(ws_url(running), subprotocols=["centrifuge-json"]) as ws:
        assert ws.subprotocol == "centrifuge-json"
        await ws.send_message(json.dumps({"id": 1, "connect": {"token": tok("pat")}}))
        with trio.fail_after(5):
            assert json.loads(await ws.get_message())["id"] == 1
