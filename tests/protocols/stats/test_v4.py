"""NanoMQ's HTTP API v4 on the stats listener (nanomq/rest_api.c): routes, bodies byte for byte, auth, errors."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
import trio

from hub.version import __version__
from protocols.stats import v4
from tests.legacy_client import legacy_client
from tests.protocols.stats.test_stats import sdk_client

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")

AUTH = ("admin", "public")
UPTIME = r"\d+ Hours, \d+ minutes, \d+ seconds"
MQTT = "[mqtt]\nport = 0\nallow_anonymous = true\n"


def need_mqtt() -> None:
    from hub.adapters import adapter_registry

    pytest.importorskip("paho.mqtt.client")
    if "mqtt" not in adapter_registry():
        pytest.skip("the MQTT listener is not installed")


async def get(http: httpx.AsyncClient, url: str, **kw: Any) -> tuple[int, bytes]:
    response = await http.get(url, **kw)
    assert response.headers["content-type"] == "application/json"
    return response.status_code, response.content


async def test_root_brokers_and_nodes(start_hub):
    """`GET /api/v4` lists the endpoints served (NanoMQ's `api_ep` strings); /brokers and /nodes as `get_brokers`
    and `get_nodes` print them (cJSON_PrintUnformatted: no spaces), with or without a trailing `/` or a query."""
    running = await start_hub()
    base = running.url("stats") + "/api/v4"
    async with httpx.AsyncClient(auth=AUTH) as http, sdk_client(running, "carol"), sdk_client(running, "dave"):
        for url in (base, base + "/", base + "?page=1"):
            status, body = await get(http, url)
            assert status == 200
            assert body.startswith(b'{"code":0,"data":[{"path":"/brokers/","name":"list_brokers","method":"GET",'
                                   b'"descr":"A list of brokers in the cluster"},{"path":"/nodes/",')
            assert [e["path"] for e in httpx.Response(200, content=body).json()["data"]] == [e["path"] for e in v4.ENDPOINTS]
        for url in (base + "/brokers", base + "/brokers/", base + "/brokers?x=1"):
            status, body = await get(http, url)
            assert status == 200
            assert re.fullmatch(rb'\{"code":0,"data":\[\{"datetime":"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d","node_status":"Running",'
                                rb'"sysdescr":"hub","uptime":"' + UPTIME.encode() + rb'","version":"'
                                + re.escape(__version__).encode() + rb'"\}\]\}', body), body
        status, body = await get(http, base + "/nodes")
        assert status == 200
        assert re.fullmatch(rb'\{"code":0,"data":\[\{"connections":2,"node_status":"Running","uptime":"'
                            + UPTIME.encode() + rb'","version":"' + re.escape(__version__).encode() + rb'"\}\]\}', body), body


def test_uptime_and_target_parsing_without_sockets():
    assert v4.uptime(3 * 3600 + 25 * 60 + 7) == "3 Hours, 25 minutes, 7 seconds"
    assert v4.uptime(0) == "0 Hours, 0 minutes, 0 seconds"
    T = v4.parse_target
    assert T("/api/v4") == T("/api/v4/") == v4.Target([], [])
    assert T("/api/v4?a=b") == v4.Target([], [("a", "b")])
    assert T("/api/v4/?a=b").segments == [""]  # one empty segment: 404, as uri_parse makes it
    assert T("/api/v4/clients/").segments == T("/api/v4/clients").segments == ["", "clients"]
    assert T("/api/v4/clients//").segments == ["", "clients", ""]
    assert T("/api/v4/clients/a%2Fb").segments == ["", "clients", "a/b"]
    # uri_param_parse: pairs without `=`, an empty key or value are dropped; fewer than 3 characters are not read
    assert T("/api/v4/clients?a=1&b&=2&c=&d=x%40y").params == [("a", "1"), ("d", "x@y")]
    assert T("/api/v4/clients?a=").params == []


def test_basic_authorize_as_nanomq_reads_it():
    def code(header: str | None) -> int | None:
        try:
            v4.check_auth(header, "admin", "public")
        except v4.V4Error as exc:
            assert exc.status == 401
            return exc.code
        return None

    assert code("Basic YWRtaW46cHVibGlj") is None
    assert code(None) == code("") == code("Basic ") == code("basic YWRtaW46cHVibGlj") == code("Bearer x") == 104
    assert code("Basic YQ") == 103  # fewer than 4 characters
    assert code("Basic YWRtaW46d3Jvbmc=") == code("Basic Og==") == 103  # admin:wrong, ":"
    assert code("Basic !!!!????") == 108  # not base64: REQ_PARAM_ERROR


async def test_auth_and_errors_over_http(start_hub):
    """Credentials first (401 `{"code": N}`), then the route: 404 `{"code": 102}` for a path or method NanoMQ
    routes elsewhere or the hub does not serve, 405 for a method NanoMQ does not route at all. v1 is unchanged."""
    running = await start_hub()
    base = running.url("stats") + "/api/v4"
    async with httpx.AsyncClient() as http:
        assert await get(http, base + "/brokers") == (401, b'{"code":104}')
        assert await get(http, base + "/nope", auth=("admin", "wrong")) == (401, b'{"code":103}')
        assert await get(http, base + "/brokers", headers={"Authorization": "Basic !!!!????"}) == (401, b'{"code":108}')
        for method, path in (("GET", "/nope"), ("GET", "/?a=b"), ("POST", "/brokers"), ("PUT", "/clients"),
                             ("DELETE", "/brokers"), ("GET", "/brokers/x"), ("GET", "/rules"), ("POST", "/ctrl/stop"),
                             ("GET", "/clients/a/b"), ("GET", "/reload"), ("GET", "/configuration")):
            response = await http.request(method, base + path, auth=AUTH)
            assert (response.status_code, response.content) == (404, b'{"code":102}'), (method, path)
        response = await http.request("PATCH", base + "/brokers", auth=AUTH)
        assert (response.status_code, response.content) == (405, b'{"code":102}')
        response = await http.post(running.url("stats") + "/api/v1", auth=AUTH, json={"req": 2, "seq": 7})
        assert response.json() == {"code": 0, "seq": 7, "rep": 2, "data": {"client_size": 0, "message_in": 0,
                                                                        "message_out": 0, "message_drop": 0}}
        response = await http.get(running.url("stats") + "/api/v4x", auth=AUTH)
        assert response.status_code == 404


async def wait_clients(http: httpx.AsyncClient, url: str, count: int) -> list[dict[str, Any]]:
    with trio.fail_after(5):
        while True:
            data = (await http.get(url)).json()["data"]
            if len(data) >= count:
                return data
            await trio.sleep(0.02)


async def test_clients_and_subscriptions_of_every_protocol(start_hub):
    """`/clients` and `/subscriptions` list every session: the SDK and original websocket protocols at QoS 0 with
    their session ids, and real paho-mqtt clients with their client id, user name, keepalive, clean start,
    protocol name and level, will, and topic filters with the granted QoS; the lookups and the filters."""
    need_mqtt()
    from paho.mqtt.packettypes import PacketTypes

    from tests.protocols.mqtt.clients import Paho, mqtt_port, props

    running = await start_hub(MQTT)
    base = running.url("stats") + "/api/v4"
    port = mqtt_port(running)
    meter = Paho(port, "meter-311", version=4)
    meter.client.will_set("status/meter", b"gone", qos=1)
    sensor = Paho(port, "sensor-5", version=5)
    old = Paho(port, "old-31", version=3, clean=True)
    try:
        await meter.connect(keepalive=17)
        await sensor.connect(keepalive=33, clean_start=False, properties=props(PacketTypes.CONNECT, SessionExpiryInterval=60))
        await old.connect(keepalive=0)
        await meter.subscribe("sensors/#", qos=1)
        await sensor.subscribe("sensors/+/temp", qos=2)
        await sensor.subscribe("alerts", qos=0)
        async with httpx.AsyncClient(auth=AUTH) as http, sdk_client(running, "carol") as carol, \
                legacy_client(running.url("realtime")) as alice:
            await alice.connect("alice")
            await alice.subscribe("news")
            await carol.call("subscribe", {"channel": "news"})
            await carol.call("subscribe", {"channel": "public:chat"})
            ping = running.hub.sessions[carol.client_id].keepalive
            data = await wait_clients(http, base + "/clients", 5)
            assert data == [
                {"client_id": "meter-311", "username": "", "keepalive": 17, "conn_state": "connected", "clean_start": True,
                 "proto_name": "MQTT", "proto_ver": 4, "will_topic": "status/meter", "will_msg": "gone"},
                {"client_id": "sensor-5", "username": "", "keepalive": 33, "conn_state": "connected", "clean_start": False,
                 "proto_name": "MQTT", "proto_ver": 5},
                {"client_id": "old-31", "username": "", "keepalive": 0, "conn_state": "connected", "clean_start": True,
                 "proto_name": "MQIsdp", "proto_ver": 3},
                {"client_id": carol.client_id, "username": "carol", "keepalive": ping, "conn_state": "connected",
                 "clean_start": True, "proto_name": "centrifugo", "proto_ver": 0},
                {"client_id": alice.client_id, "username": "alice", "keepalive": 0, "conn_state": "connected",
                 "clean_start": True, "proto_name": "centrifuge-legacy", "proto_ver": 0},
            ]
            response = await http.get(base + "/clients/sensor-5")
            assert response.content == (b'{"code":0,"data":[{"client_id":"sensor-5","username":"","keepalive":33,'
                                        b'"conn_state":"connected","clean_start":false,"proto_name":"MQTT","proto_ver":5}]}')
            assert (await http.get(base + "/clients/nobody")).content == b'{"code":0,"data":[]}'
            assert [c["client_id"] for c in (await http.get(base + "/clients/username/carol")).json()["data"]] == [carol.client_id]

            async def ids(query: str) -> list[str]:
                response = await http.get(base + "/clients" + query)
                assert response.status_code == 200, response.text
                return [c["client_id"] for c in response.json()["data"]]

            assert await ids("?proto_ver=5") == ["sensor-5"]
            assert await ids("?proto_name=MQTT&clean_start=TRUE") == ["meter-311"]
            assert await ids("?clean_start=false") == ["sensor-5"]
            assert await ids("?conn_state=Connected&username=alice") == [alice.client_id]
            assert await ids("?conn_state=disconnected") == []
            assert await ids("?client_id=old-31") == await ids("?clientid=old-31") == ["old-31"]
            assert await ids("?bogus") == await ids("?a=") == await ids("")  # pairs NanoMQ does not read
            for bad in ("?proto_ver=6", "?proto_ver=4x", "?clean_start=yes", "?conn_state=gone", "?page=1", "?limit=10"):
                response = await http.get(base + "/clients" + bad)
                assert (response.status_code, response.content) == (400, b'{"code":108}'), bad
            assert [c["client_id"] for c in (await http.get(base + "/clients/sensor-5?clientid=meter-311")).json()["data"]] \
                == ["meter-311"]  # the query parameter overrides the path, as in get_clients

            response = await http.get(base + "/subscriptions")
            assert response.json() == {"code": 0, "data": [
                {"clientid": "meter-311", "topic": "sensors/#", "qos": 1},
                {"clientid": "sensor-5", "topic": "sensors/+/temp", "qos": 2},
                {"clientid": "sensor-5", "topic": "alerts", "qos": 0},
                {"clientid": carol.client_id, "topic": "news", "qos": 0},
                {"clientid": carol.client_id, "topic": "public:chat", "qos": 0},
                {"clientid": alice.client_id, "topic": "news", "qos": 0},
            ]}
            assert (await http.get(base + "/subscriptions?page=2&limit=1")).json() == response.json()  # no paging
            response = await http.get(base + "/subscriptions/sensor-5/")
            assert response.content == (b'{"code":0,"data":[{"clientid":"sensor-5","topic":"sensors/+/temp","qos":2},'
                                        b'{"clientid":"sensor-5","topic":"alerts","qos":0}]}')
            assert (await http.get(base + "/subscriptions/old-31")).content == b'{"code":0,"data":[]}'

            # a persistent MQTT session whose connection is gone stays, disconnected
            sensor.drop()
            with trio.fail_after(5):
                while running.hub.sessions and any(
                        s.meta.get("client_id") == "sensor-5" and s.meta.get("connected") for s in running.hub.sessions.values()):
                    await trio.sleep(0.02)
            assert await ids("?conn_state=disconnected") == ["sensor-5"]
            nodes = (await http.get(base + "/nodes")).json()["data"][0]
            assert nodes["connections"] == 4
    finally:
        for client in (meter, sensor, old):
            client.stop()
