"""The stats API on a running hub: the reference's curl examples, every error row, reload, /metrics."""

from __future__ import annotations

import itertools
import json
import logging
import signal
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families
from trio_websocket import WebSocketConnection, open_websocket_url

from protocols.realtime.tokens import make_token
from protocols.stats import api
from tests.conftest import BASE_CONFIG, SECRET
from tests.legacy_client import legacy_client

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")

BASIC = ("--basic", "-u", "admin:public")
API_KEY = {"X-API-Key": "test-api-key"}


async def curl(url: str, body: str, *extra: str) -> tuple[int, dict]:
    """The reference's curl command line (`curl -i --basic -u admin:public -X POST URL -d BODY`), run for real."""
    proc = await trio.run_process(["curl", "-s", "-i", *extra, "-X", "POST", url, "-d", body], capture_stdout=True)
    head, _, payload = proc.stdout.decode().partition("\r\n\r\n")
    assert "content-type: application/json" in head.lower(), head
    return int(head.split()[1]), json.loads(payload)


class SdkClient:
    """A bare client of the current Centrifugo JSON protocol: replies by id, publication pushes kept apart."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws, self.ids, self.pubs, self.client_id = ws, itertools.count(1), [], ""

    async def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        n = next(self.ids)
        await self.ws.send_message(json.dumps({"id": n, method: params}))
        with trio.fail_after(5):
            while True:
                for line in (await self.ws.get_message()).split("\n"):
                    frame = json.loads(line)
                    if frame.get("id") == n:
                        assert "error" not in frame, frame
                        return frame[method]
                    if "pub" in frame.get("push", {}):
                        self.pubs.append(frame["push"])

    async def wait_pubs(self, count: int) -> list[dict[str, Any]]:
        """Read until `count` publication pushes have arrived in all."""
        with trio.fail_after(5):
            while len(self.pubs) < count:
                for line in (await self.ws.get_message()).split("\n"):
                    frame = json.loads(line)
                    if "pub" in frame.get("push", {}):
                        self.pubs.append(frame["push"])
        return self.pubs


@asynccontextmanager
async def sdk_client(running: Any, user: str):
    async with open_websocket_url(running.url("realtime").replace("http://", "ws://") + "/connection/websocket") as ws:
        client = SdkClient(ws)
        client.client_id = (await client.call("connect", {"token": make_token(SECRET, {"sub": user})}))["client"]
        yield client


async def jsonrpc_events_token(running: Any, http: httpx.AsyncClient, user: str) -> str:
    """Register the first JSON-RPC user; its token opens /ws/events."""
    response = await http.post(running.url("jsonrpc") + "/register", json={"username": user, "password": "pw-of-" + user})
    assert response.status_code == 200, response.text
    return response.json()["token"]


async def messages(client: Any, count: int) -> list[Any]:
    return [(await client.next_push("message"))["body"]["data"] for _ in range(count)]


async def test_reference_curl_examples_report_the_truth(start_hub):
    running = await start_hub()
    url = running.url("stats") + "/api/v1"
    api_url = running.url("command_api") + "/api"
    async with httpx.AsyncClient(headers=API_KEY) as http:
        token = await jsonrpc_events_token(running, http, "ops")
        events_url = running.url("jsonrpc").replace("http://", "ws://") + f"/ws/events?token={token}"
        async with legacy_client(running.url("realtime")) as alice, legacy_client(running.url("realtime")) as bob, \
                sdk_client(running, "carol") as carol, open_websocket_url(events_url):
            await alice.connect("alice")
            await bob.connect("bob")
            for channel in ("news", "sport", "public:chat"):
                await alice.subscribe(channel)
            await bob.subscribe("news")
            await carol.call("subscribe", {"channel": "news"})
            await carol.call("subscribe", {"channel": "public:chat"})
            with trio.fail_after(5):  # the JSON-RPC socket's session, subscribed server-side through the command API
                while not any(s.protocol == "jsonrpc" for s in running.hub.sessions.values()):
                    await trio.sleep(0.01)
            (ops_id,) = [s.id for s in running.hub.sessions.values() if s.protocol == "jsonrpc"]
            assert (await http.post(api_url + "/subscribe", json={"user": "ops", "channel": "alerts"})).status_code == 200

            # 8 publications: 14 copies delivered, 2 that reach no websocket subscriber
            for body in ({"channel": "news", "data": 1}, {"channel": "news", "data": 2}, {"channel": "sport", "data": 3},
                         {"channel": "empty", "data": "nobody"}, {"channel": "alerts", "data": "no wire"}):
                response = await http.post(api_url + "/publish", json=body)
                assert response.status_code == 200 and "error" not in response.json(), response.text
            assert (await alice.call("publish", {"channel": "public:chat", "data": "from alice"}))["error"] is None
            await carol.call("publish", {"channel": "public:chat", "data": "from carol"})
            await running.publish("news", 4)

            assert sorted(map(str, await messages(alice, 6))) == ["1", "2", "3", "4", "from alice", "from carol"]
            assert await messages(bob, 3) == [1, 2, 4]
            assert sorted(str(p["pub"]["data"]) for p in await carol.wait_pubs(5)) == ["1", "2", "4", "from alice", "from carol"]

            status, body = await curl(url, '{"req": 2,"seq": 1111111}', *BASIC)
            assert status == 200
            assert body == {"code": 0, "seq": 1111111, "rep": 2,
                            "data": {"client_size": 4, "message_in": 8, "message_out": 14, "message_drop": 2}}

            status, body = await curl(url, '{"req": 4,"seq": 1111111}', *BASIC)
            assert status == 200 and body["code"] == 0 and body["rep"] == 4 and body["seq"] == 1111111
            topics = {c["client_id"]: sorted(s["topic"] for s in c["subscriptions"]) for c in body["data"]}
            assert topics == {alice.client_id: ["news", "public:chat", "sport"], bob.client_id: ["news"],
                              carol.client_id: ["news", "public:chat"], ops_id: ["alerts"]}
            assert all(set(c) == {"client_id", "subscriptions"} for c in body["data"])
            assert all(s == {"topic": s["topic"], "qos": 0} for c in body["data"] for s in c["subscriptions"])

            await alice.call("ping", {})  # the original protocol's client pings: keepalive is its ping interval
            await trio.sleep(1.1)
            await alice.call("ping", {})
            status, body = await curl(url, '{"req": 5,"seq": 1111111}', *BASIC)
            assert status == 200 and body["code"] == 0 and body["rep"] == 5 and body["seq"] == 1111111
            # `protocol` is NanoMQ's MQTT protocol level: 0 for clients that do not speak MQTT; protocol_name says which
            assert sorted(body["data"], key=lambda c: c["username"]) == [
                {"client_id": alice.client_id, "username": "alice", "keepalive": 1, "protocol": 0,
                 "protocol_name": "centrifuge-legacy", "connect_status": 1, "message_receive": 6},
                {"client_id": bob.client_id, "username": "bob", "keepalive": 0, "protocol": 0,
                 "protocol_name": "centrifuge-legacy", "connect_status": 1, "message_receive": 3},
                {"client_id": carol.client_id, "username": "carol", "keepalive": 25, "protocol": 0,
                 "protocol_name": "centrifugo", "connect_status": 1, "message_receive": 5},
                {"client_id": ops_id, "username": "ops", "keepalive": 0, "protocol": 0,
                 "protocol_name": "jsonrpc", "connect_status": 1, "message_receive": 0},
            ]
            assert list(body["data"][0]) == ["client_id", "username", "keepalive", "protocol", "protocol_name",
                                             "connect_status", "message_receive"]
    with trio.fail_after(5):
        while running.hub.sessions:
            await trio.sleep(0.01)
    status, body = await curl(url, '{"req": 2,"seq": 7}', *BASIC)
    assert body == {"code": 0, "seq": 7, "rep": 2, "data": {"client_size": 0, "message_in": 8, "message_out": 14, "message_drop": 2}}
    status, body = await curl(url, '{"req": 4,"seq": 8}', *BASIC)
    assert body == {"code": 0, "seq": 8, "rep": 4, "data": []}


async def test_every_error_row(start_hub, monkeypatch):
    """NanoMQ's error body: `{"code", "seq"}`, plus `rep` once the request named a positive `req`; seq is the
    request's own when the body was read, else 0 (NanoMQ checks the credentials before it reads the body)."""
    running = await start_hub("[stats]\nmax_body_bytes = 256\n")
    base = running.url("stats")
    auth = ("admin", "public")
    ok = b'{"req": 2, "seq": 1}'
    cases = [
        # 401: no credentials / empty ones (104), wrong ones (103); the body is not read
        (dict(content=ok), 401, {"code": api.EMPTY_CREDENTIALS, "seq": 0}),
        (dict(content=ok, headers={"Authorization": "Basic Og=="}), 401, {"code": api.EMPTY_CREDENTIALS, "seq": 0}),  # ":"
        (dict(content=ok, auth=("admin", "")), 401, {"code": api.EMPTY_CREDENTIALS, "seq": 0}),
        (dict(content=ok, auth=("", "public")), 401, {"code": api.EMPTY_CREDENTIALS, "seq": 0}),
        (dict(content=ok, headers={"Authorization": "Bearer admin"}), 401, {"code": api.EMPTY_CREDENTIALS, "seq": 0}),
        (dict(content=ok, auth=("admin", "wrong")), 401, {"code": api.WRONG_CREDENTIALS, "seq": 0}),
        (dict(content=ok, auth=("nobody", "public")), 401, {"code": api.WRONG_CREDENTIALS, "seq": 0}),
        (dict(content=ok, auth=("admin", "public2")), 401, {"code": api.WRONG_CREDENTIALS, "seq": 0}),
        (dict(content=ok, headers={"Authorization": "Basic !!"}), 401, {"code": api.WRONG_CREDENTIALS, "seq": 0}),
        # 400: not JSON (109), missing req (107), bad req 10 parameters or a body too large (108)
        (dict(content=b"{not json", auth=auth), 400, {"code": api.NOT_JSON, "seq": 0}),
        (dict(content=b"", auth=auth), 400, {"code": api.NOT_JSON, "seq": 0}),
        (dict(content=b"\xff\xfe", auth=auth), 400, {"code": api.NOT_JSON, "seq": 0}),
        (dict(content=b"[1]", auth=auth), 400, {"code": api.NOT_JSON, "seq": 0}),
        (dict(content=b'{"seq": 1}', auth=auth), 400, {"code": api.MISSING_PARAMETER, "seq": 1}),
        (dict(content=b"{}", auth=auth), 400, {"code": api.MISSING_PARAMETER, "seq": 0}),
        (dict(content=b'{"req": 10, "seq": 4, "data": 5}', auth=auth), 400, {"code": api.BAD_PARAMETER, "seq": 4, "rep": 10}),
        (dict(content=b'{"req": 10, "seq": 5, "action": "pause"}', auth=auth), 400,
         {"code": api.BAD_PARAMETER, "seq": 5, "rep": 10}),
        (dict(content=b'{"req": 10, "seq": "s", "action": 1}', auth=auth), 400, {"code": api.BAD_PARAMETER, "seq": "s", "rep": 10}),
        (dict(content=b'{"req": 2, "seq": 1, "pad": "' + b"x" * 300 + b'"}', auth=auth), 400, {"code": api.BAD_PARAMETER, "seq": 0}),
        # 404 with 102: a req that names no request (NanoMQ's "unknown mistake"); rep only for a positive number
        (dict(content=b'{"req": 99, "seq": 1}', auth=auth), 404, {"code": api.UNKNOWN, "seq": 1, "rep": 99}),
        (dict(content=b'{"req": 3, "seq": 7}', auth=auth), 404, {"code": api.UNKNOWN, "seq": 7, "rep": 3}),
        (dict(content=b'{"req": 1, "seq": "abc"}', auth=auth), 404, {"code": api.UNKNOWN, "seq": "abc", "rep": 1}),
        (dict(content=b'{"req": 0, "seq": 2}', auth=auth), 404, {"code": api.UNKNOWN, "seq": 2}),
        (dict(content=b'{"req": -5, "seq": 2}', auth=auth), 404, {"code": api.UNKNOWN, "seq": 2}),
        (dict(content=b'{"req": "2", "seq": 1}', auth=auth), 404, {"code": api.UNKNOWN, "seq": 1}),
        (dict(content=b'{"req": true, "seq": 1}', auth=auth), 404, {"code": api.UNKNOWN, "seq": 1}),
        (dict(content=b'{"req": null}', auth=auth), 404, {"code": api.UNKNOWN, "seq": 0}),
    ]
    async with httpx.AsyncClient(base_url=base) as http:
        for kwargs, status, body in cases:
            response = await http.post("/api/v1", **kwargs)
            assert response.status_code == status, (kwargs, response.text)
            assert response.headers["content-type"] == "application/json"
            assert response.json() == body, (kwargs, response.text)
            assert list(response.json()) == list(body)  # NanoMQ's key order: code, seq, rep
            assert response.headers["x-error"], kwargs  # what went wrong, for people; the body stays NanoMQ's
        # 404: unknown path or method on this port (102), never HTML; /api/v1 takes every method (see below)
        for response in (await http.post("/api/v2", auth=auth, content=ok),
                         await http.get("/nope"), await http.post("/metrics", content=ok), await http.put("/", content=ok)):
            assert response.status_code == 404 and response.headers["content-type"] == "application/json"
            assert response.json() == {"code": api.UNKNOWN, "seq": 0} and "<html" not in response.text.lower()
        # 500: an internal failure (102), the hub keeps serving
        def broken(hub: Any) -> dict[str, Any]:
            raise RuntimeError("boom")

        monkeypatch.setattr(api, "broker_info", broken)
        response = await http.post("/api/v1", auth=auth, content=ok)
        assert response.status_code == 500 and response.json() == {"code": api.UNKNOWN, "seq": 0}
        monkeypatch.undo()
        assert (await http.post("/api/v1", auth=auth, content=ok)).json()["code"] == 0


async def test_seq_as_nanomq_reads_it(start_hub):
    """No `seq`: answered normally (seq 0); `seq` as a string, or any other JSON value where NanoMQ's cast gives
    garbage: echoed back unchanged; a `seq` number with a fraction is truncated, as NanoMQ's `(uint64_t)` cast does,
    and `req` by its `(int)` cast."""
    running = await start_hub()
    url = running.url("stats") + "/api/v1"
    for body, seq in (('{"req": 2}', 0), ('{"req": 2, "seq": "1111111"}', "1111111"), ('{"req": 2, "seq": "abc"}', "abc"),
                      ('{"req": 2, "seq": 1.5}', 1), ('{"req": 2, "seq": 7.0}', 7),
                      ('{"req": 2, "seq": -0.5}', 0), ('{"req": 2, "seq": -1.5}', -1.5),
                      ('{"req": 2, "seq": null}', None), ('{"req": 2, "seq": -3}', -3),
                      ('{"req": 2.0, "seq": 9}', 9), ('{"req": 2.7, "seq": 9}', 9)):
        status, answer = await curl(url, body, *BASIC)
        assert status == 200 and answer["code"] == 0 and answer["rep"] == 2, (body, answer)
        assert answer["seq"] == seq and list(answer) == ["code", "seq", "rep", "data"], (body, answer)
    proc = await trio.run_process(["curl", "-s", *BASIC, url, "-d", '{"req": 2, "seq": 7.0}'], capture_stdout=True)
    assert proc.stdout.startswith(b'{"code":0,"seq":7,"rep":2,'), proc.stdout  # as cJSON prints the number
    proc = await trio.run_process(["curl", "-s", *BASIC, url + "/", "-d", '{"req": 2, "seq": 8}'], capture_stdout=True)
    assert proc.stdout.startswith(b'{"code":0,"seq":8,"rep":2,'), proc.stdout  # nng matches one trailing slash
    status, answer = await curl(url, '{"req": 4}', *BASIC)
    assert status == 200 and answer == {"code": 0, "seq": 0, "rep": 4, "data": []}
    status, answer = await curl(url, '{"req": 5, "seq": "x"}', *BASIC)
    assert status == 200 and answer == {"code": 0, "seq": "x", "rep": 5, "data": []}


async def test_every_method_reaches_api_v1_as_on_nanomq(start_hub):
    """NanoMQ registers /api/v1 for every method (web_server.c `nng_http_handler_set_method(handler, NULL)`) and
    its own docs read the configuration with `curl --request GET ... --data-raw`: the method does not matter."""
    running = await start_hub()
    url = running.url("stats") + "/api/v1"
    proc = await trio.run_process(["curl", "-s", "-i", "--location", "--request", "GET", url,
                                   "--header", "Authorization: Basic YWRtaW46cHVibGlj",
                                   "--header", "Content-Type: application/json",
                                   "--data-raw", '{\n    "req": 2,\n    "seq": 9999\n}'], capture_stdout=True)
    head, _, payload = proc.stdout.decode().partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 200"), head
    assert json.loads(payload)["seq"] == 9999 and json.loads(payload)["rep"] == 2
    async with httpx.AsyncClient() as http:
        for method in ("GET", "PUT", "DELETE", "PATCH"):
            response = await http.request(method, url, auth=("admin", "public"), content=b'{"req": 5, "seq": 3}')
            assert (response.status_code, response.json()) == (200, {"code": 0, "seq": 3, "rep": 5, "data": []}), method
        response = await http.get(url)  # credentials first, then the body
        assert (response.status_code, response.json()) == (401, {"code": api.EMPTY_CREDENTIALS, "seq": 0})
        response = await http.get(url, auth=("admin", "public"))  # no body: not JSON
        assert (response.status_code, response.json()) == (400, {"code": api.NOT_JSON, "seq": 0})
        response = await http.head(url, auth=("admin", "public"))
        assert response.status_code == 400 and response.content == b""


async def test_body_read_as_cjson_reads_it(start_hub):
    """NanoMQ 0.6 reads the body with `cJSON_Parse` (trailing data ignored, the body a C string up to a NUL) and
    its keys with `cJSON_GetObjectItem` (case-insensitive, the first of duplicates); `req` goes through `(int)`."""
    running = await start_hub()
    url = running.url("stats") + "/api/v1"
    ok = {"code": 0, "seq": 5, "rep": 5, "data": []}
    cases = [
        (b'{"req": 5, "seq": 5}\n{"req": 2}', 200, ok),           # a second value after the first is not read
        (b'{"req": 5, "seq": 5} trailing garbage', 200, ok),
        (b'{"req": 5, "seq": 5}\x00\xff\xfe', 200, ok),          # a C client that sends the NUL terminator too
        (b'\xef\xbb\xbf\x0c {"req": 5, "seq": 5}', 200, ok),     # a UTF-8 BOM, then any byte up to ' ' is whitespace
        (b'{"REQ": 5, "Seq": 5}', 200, ok),
        (b'{"req": 5, "seq": 5, "req": 2, "SEQ": 7}', 200, ok),     # the first of duplicate keys
        (b'{"Req": 5, "req": 2, "seq": 5}', 200, ok),
        (b'{"req": NaN, "seq": 5}', 400, {"code": api.NOT_JSON, "seq": 0}),  # not JSON for cJSON
        (b'{"req": Infinity}', 400, {"code": api.NOT_JSON, "seq": 0}),
        (b'{"req": 4294967298, "seq": 5}', 404, {"code": api.UNKNOWN, "seq": 5}),  # (int) of it is INT_MIN: no rep
        (b'{"req": 1e10, "seq": 5}', 404, {"code": api.UNKNOWN, "seq": 5}),
        (b'{"req": 1e999, "seq": 5}', 404, {"code": api.UNKNOWN, "seq": 5}),
        (b'{"req": 2147483647, "seq": 5}', 404, {"code": api.UNKNOWN, "seq": 5, "rep": 2147483647}),
        (b'{"req": -2147483649, "seq": 5}', 404, {"code": api.UNKNOWN, "seq": 5}),
    ]
    async with httpx.AsyncClient(auth=("admin", "public")) as http:
        for body, status, answer in cases:
            response = await http.post(url, content=body)
            assert (response.status_code, response.json()) == (status, answer), body
            assert list(response.json()) == list(answer), body


async def test_topic_info_and_client_size_count_subscribed_clients(start_hub):
    """NanoMQ's req 4 and `client_size` read its pipe-to-topics table (hash_table.c), which holds a client from its
    first SUBSCRIBE: a client without subscriptions is not in req 4 nor counted ("Subscribe client size" in the
    docs). req 5 is documented as "all clients" and lists it."""
    running = await start_hub()
    url = running.url("stats") + "/api/v1"
    async with legacy_client(running.url("realtime")) as alice, sdk_client(running, "carol") as carol, \
            httpx.AsyncClient(auth=("admin", "public")) as http:
        await alice.connect("alice")
        await alice.subscribe("news")
        broker = (await http.post(url, json={"req": 2, "seq": 1})).json()
        topics = (await http.post(url, json={"req": 4, "seq": 1})).json()
        clients = (await http.post(url, json={"req": 5, "seq": 1})).json()
        assert broker["data"]["client_size"] == 1
        assert topics["data"] == [{"client_id": alice.client_id, "subscriptions": [{"topic": "news", "qos": 0}]}]
        assert sorted(c["client_id"] for c in clients["data"]) == sorted([alice.client_id, carol.client_id])
        await carol.call("subscribe", {"channel": "news"})
        broker = (await http.post(url, json={"req": 2, "seq": 1})).json()
        topics = (await http.post(url, json={"req": 4, "seq": 1})).json()
        assert broker["data"]["client_size"] == 2
        assert sorted(c["client_id"] for c in topics["data"]) == sorted([alice.client_id, carol.client_id])


def test_auth_and_request_parsing_without_sockets():
    import base64

    def basic(user: str, password: str) -> str:
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    api.check_auth(basic("admin", "pub:lic"), "admin", "pub:lic")  # a colon in the secret is kept
    api.check_auth("basic " + base64.b64encode(b"admin:public").decode(), "admin", "public")
    api.check_auth(basic("admin", "public") + " trailing words", "admin", "public")  # sscanf "%s": the first word
    assert api.basic_user(basic("admin", "x") + " more") == "admin"
    for header, code in ((None, 104), ("", 104), (basic("admin", "x"), 103), (basic("émile", "x"), 103), ("Basic", 104), ("Basic ", 104)):
        with pytest.raises(api.ApiError) as exc:
            api.check_auth(header, "admin", "public")
        assert (exc.value.status, exc.value.code) == (401, code), header
    assert api.parse_request(b'{"req": 2, "seq": -3, "extra": 1}') == {"req": 2, "seq": -3, "extra": 1}
    assert api.parse_request(b'{"req": 5}') == {"req": 5, "seq": 0}
    assert api.parse_request(b'{"REQ": 10, "Action": "stop", "action": "restart", "DATA": "x"}') == \
        {"req": 10, "seq": 0, "action": "stop", "data": "x"}  # cJSON_GetObjectItem: any case, the first
    for body, status, code in ((b'{"seq": 1}', 400, 107), (b'{"req": "5"}', 404, 102), (b"[]", 400, 109)):
        with pytest.raises(api.ApiError) as exc:
            api.parse_request(body)
        assert (exc.value.status, exc.value.code) == (status, code), body


async def test_default_credentials_warning(start_hub, caplog):
    with caplog.at_level(logging.WARNING, logger="hub.stats"):
        await start_hub()
        assert any("default credentials" in r.getMessage() for r in caplog.records)
        caplog.clear()
        await start_hub('[stats]\napp_id = "ops"\napp_secret = "long-secret"\n')
        assert not any("default credentials" in r.getMessage() for r in caplog.records)


def posted_config(tmp_path: Any, **replace: str) -> str:
    """The running test hub's own config as TOML text (what `start_hub` used), with `replace` applied."""
    text = BASE_CONFIG.replace("[chat]\nport = 0\n", f'[chat]\nport = 0\ndatabase = "{tmp_path / "chat.db"}"\n')
    text = text.replace("[jsonrpc]\nport = 0\n", f'[jsonrpc]\nport = 0\nusers_file = "{tmp_path / "jsonrpc-users.json"}"\n')
    text = text.replace("[stats]\nport = 0\n", "[stats]\nport = 0\nallow_config_upload = true\n")
    for old, new in replace.items():
        old = old.replace("__", "\n")
        assert old in text, old
        text = text.replace(old, new.replace("__", "\n"))
    return text


async def test_reload_changes_options_live_and_reports_ports(start_hub, tmp_path, caplog):
    running = await start_hub("[stats]\nallow_config_upload = true\n")
    stats_url = running.url("stats") + "/api/v1"
    old_auth, new_auth = ("admin", "public"), ("ops", "n3w-secret")

    async def restart(auth: tuple[str, str], seq: int, config: str | None = None) -> httpx.Response:
        body = {"req": 10, "seq": seq} if config is None else {"req": 10, "seq": seq, "data": config}
        return await http.post(stats_url, auth=auth, json=body)

    async with legacy_client(running.url("realtime")) as c, httpx.AsyncClient() as http:
        await c.connect("alice")
        await c.subscribe("news")
        assert (await c.call("publish", {"channel": "news", "data": 1}))["error"] == "permission denied"

        # the same config, unchanged: nothing to do
        response = await restart(old_auth, 1, posted_config(tmp_path))
        assert response.json() == {"code": 0, "seq": 1, "rep": 10, "data": {"changed": [], "restart_required": []}}

        # posted config: publish on for channels without a namespace, a bigger queue, new credentials, a new port
        new = posted_config(tmp_path, **{"history_size = 10__": "history_size = 10\npublish = true\n",
                                         "[hub]__": "[hub]\nmax_queue_bytes = 2097152\n",
                                         "[stats]__port = 0": '[stats]\nport = 18081\napp_id = "ops"\napp_secret = "n3w-secret"'})
        response = await restart(old_auth, 2, new)
        assert response.status_code == 200, response.text
        assert response.json() == {"code": 0, "seq": 2, "rep": 10, "data": {
            "changed": ["projects", "hub.max_queue_bytes", "stats.credentials"], "restart_required": ["stats.port"]}}
        # the connected client can publish now, on the same connection
        assert (await c.call("publish", {"channel": "news", "data": 2}))["error"] is None
        assert (await c.next_push("message"))["body"]["data"] == 2
        assert c.client_id in running.hub.sessions
        assert running.hub.max_queue_bytes == 2097152 and running.listeners[0].server.outbox_bytes == 2097152
        # the listener stays where it was; the credentials changed at once
        assert running.url("stats") + "/api/v1" == stats_url
        assert (await http.post(stats_url, auth=old_auth, json={"req": 2, "seq": 3})).json()["code"] == api.WRONG_CREDENTIALS
        assert (await http.post(stats_url, auth=new_auth, json={"req": 2, "seq": 3})).json()["code"] == 0

        # bad configs are refused with 400/108 and nothing is applied
        for bad, problem in (("[hub]\nnope = 1\n", "hub.nope"), ("[hub\n", "not valid TOML"),
                             (posted_config(tmp_path, **{"[hub]__": "[hub]\nmax_queue_bytes = 5\n"}), "hub.max_queue_bytes"),
                             (posted_config(tmp_path, **{"[projects.development]__": "[projects.development]\nbogus = 1\n"}),
                              "projects.development.bogus")):
            response = await restart(new_auth, 4, bad)
            assert response.status_code == 400 and response.json() == {"code": api.BAD_PARAMETER, "seq": 4, "rep": 10}
            assert problem in response.headers["x-error"], response.headers["x-error"]
        assert running.hub.max_queue_bytes == 2097152
        assert (await c.call("publish", {"channel": "news", "data": 5}))["error"] is None
        assert (await c.next_push("message"))["body"]["data"] == 5

        # no posted config: reload the hub's file (this hub started from an in-memory config, so there is none yet)
        response = await restart(new_auth, 5)
        assert response.status_code == 400 and "file not found" in response.headers["x-error"]
        path = tmp_path / "hub.toml"
        path.write_text(posted_config(tmp_path, **{"[stats]__port = 0": "[stats]\nport = 18081"}))  # publish off, default credentials
        running.config_path = str(path)
        with caplog.at_level(logging.WARNING, logger="hub.stats"):
            response = await restart(new_auth, 6)
        assert response.status_code == 200, response.text
        assert response.json()["data"] == {"changed": ["projects", "hub.max_queue_bytes", "stats.credentials"],
                                           "restart_required": ["stats.port"]}
        assert any("default credentials" in r.getMessage() for r in caplog.records)
        assert (await c.call("publish", {"channel": "news", "data": 6}))["error"] == "permission denied"
        assert running.settings.source == str(path) and running.config_path == str(path)
        # a posted config afterwards does not make the next file reload forget the file; ports compare with what is bound
        assert (await restart(old_auth, 7, posted_config(tmp_path))).json()["data"]["restart_required"] == []
        assert running.config_path == str(path)
        assert (await restart(old_auth, 8)).json()["data"]["restart_required"] == ["stats.port"]
        assert c.client_id in running.hub.sessions


async def test_metrics_parse_with_prometheus_parser(start_hub):
    running = await start_hub()
    metrics_url = running.url("stats") + "/metrics"
    async with legacy_client(running.url("realtime")) as c, sdk_client(running, "carol") as carol, \
            httpx.AsyncClient() as http:
        await c.connect("alice")
        await c.subscribe("news")
        await carol.call("subscribe", {"channel": "news"})
        await running.publish("news", 1)
        await running.publish("nobody-here", 2)
        await c.next_push("message")
        await carol.wait_pubs(1)
        for _ in range(3):
            await http.post(running.url("stats") + "/api/v1", auth=("admin", "public"), json={"req": 2, "seq": 1})
        await http.post(running.url("stats") + "/api/v1", json={"req": 2, "seq": 1})  # 401
        response = await http.get(metrics_url)
        broker = (await http.post(running.url("stats") + "/api/v1", auth=("admin", "public"), json={"req": 2, "seq": 1})).json()
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}

    def value(name: str, sample: str | None = None, **labels: str) -> float:
        (found,) = [s.value for s in families[name].samples if s.name == (sample or name) and labels.items() <= s.labels.items()]
        return found

    assert families["hub_messages_in"].type == "counter"
    assert value("hub_messages_in", "hub_messages_in_total") == broker["data"]["message_in"] == 2
    assert value("hub_messages_delivered", "hub_messages_delivered_total") == broker["data"]["message_out"] == 2
    assert value("hub_messages_dropped", "hub_messages_dropped_total") == broker["data"]["message_drop"] == 1
    assert value("hub_connections", "hub_connections_total") == 2
    assert value("hub_slow_disconnects", "hub_slow_disconnects_total") == 0
    assert {s.labels["protocol"]: s.value for s in families["hub_sessions"].samples} == {"centrifuge-legacy": 1, "centrifugo": 1}
    assert value("hub_subscriptions") == 2 and value("hub_channels") == 1
    assert value("hub_http_requests", "hub_http_requests_total", adapter="stats", status="2xx") == 3
    assert value("hub_http_requests", "hub_http_requests_total", adapter="stats", status="4xx") == 1
    assert families["hub_http_request_duration_seconds"].type == "histogram"
    assert value("hub_http_request_duration_seconds", "hub_http_request_duration_seconds_count", adapter="stats") == 4
    buckets = [s for s in families["hub_http_request_duration_seconds"].samples
               if s.name.endswith("_bucket") and s.labels["adapter"] == "stats"]
    assert buckets[-1].labels["le"] == "+Inf" and buckets[-1].value == 4
    assert [b.value for b in buckets] == sorted(b.value for b in buckets)  # cumulative


async def test_metrics_auth(start_hub):
    running = await start_hub("[stats]\nmetrics_auth = true\n")
    async with httpx.AsyncClient(base_url=running.url("stats")) as http:
        denied = await http.get("/metrics")
        assert denied.status_code == 401 and denied.json()["code"] == api.EMPTY_CREDENTIALS
        assert (await http.get("/metrics", auth=("admin", "nope"))).json()["code"] == api.WRONG_CREDENTIALS
        allowed = await http.get("/metrics", auth=("admin", "public"))
        assert allowed.status_code == 200 and "hub_messages_in_total 0.0" in allowed.text


def test_sighup_reloads_hub_toml(tmp_path):
    """`hub run` reloads its file on SIGHUP: a namespace option changes for a connected client."""
    from tests.test_runtime import start

    proc, urls = start(tmp_path)
    cfg = tmp_path / "hub.toml"
    try:
        async def scenario():
            async with legacy_client(urls["websocket clients"]) as c:
                await c.connect("alice")
                await c.subscribe("news")
                assert (await c.call("publish", {"channel": "news", "data": 1}))["error"] == "permission denied"
                cfg.write_text(cfg.read_text().replace('secret = "secret"\n', 'secret = "secret"\npublish = true\n'))
                proc.send_signal(signal.SIGHUP)
                with trio.fail_after(5):
                    while (await c.call("publish", {"channel": "news", "data": 2}))["error"] is not None:
                        await trio.sleep(0.05)
                assert (await c.next_push("message"))["body"]["data"] == 2

        trio.run(scenario)
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
        proc.stderr.close()
