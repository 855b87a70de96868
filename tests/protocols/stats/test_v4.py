"""NanoMQ's HTTP API v4 on the stats listener (nanomq/rest_api.c): routes, bodies byte for byte, auth, errors."""

from __future__ import annotations

import json
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
            assert [e["path"] for e in httpx.Response(200, content=body).json()["data"]] == [
                "/brokers/", "/nodes/", "/clients/", "/clients/:clientid", "/clients/username/:username",
                "/subscriptions/", "/subscriptions/:clientid", "/topic-tree/", "/metrics", "/prometheus"]  # no publish
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
                             ("GET", "/clients/a/b"), ("GET", "/reload"), ("GET", "/configuration"),
                             ("POST", "/mqtt/publish"), ("POST", "/mqtt/subscribe")):  # publish: without [mqtt]
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


async def test_publish_reaches_mqtt_and_websocket_subscribers(start_hub):
    """`POST /api/v4/mqtt/publish` as the reference's curl example sends it: through the core on the MQTT listener's
    project, the topic as the channel; the paho MQTT 5 subscriber gets the exact payload, QoS, content type and user
    properties; a websocket subscriber of the channel gets the payload's JSON value; a retained message is kept."""
    need_mqtt()
    from tests.protocols.mqtt.clients import Paho, mqtt_port

    running = await start_hub(MQTT)
    base = running.url("stats") + "/api/v4"
    sub = Paho(mqtt_port(running), "listener", version=5)
    try:
        await sub.connect()
        await sub.subscribe("a/#", qos=1)
        async with httpx.AsyncClient(auth=AUTH) as http, sdk_client(running, "carol") as carol:
            listed = (await http.get(base)).json()["data"]
            assert listed[7:9] == [
                {"path": "/mqtt/publish", "name": "mqtt_publish", "method": "POST", "descr": "Publish a MQTT message"},
                {"path": "/mqtt/publish_batch", "name": "mqtt_publish_batch", "method": "POST",
                 "descr": "Batch publish MQTT messages"}] and len(listed) == 12
            await carol.call("subscribe", {"channel": "a/b/c"})
            body = ('{"topic":"a/b/c", "payload":"Hello World", "qos":1, "retain":false, "clientid":"example", '
                    '"properties": {"user_properties": { "id": 10010, "name": "emqx", "foo": "bar"}, "content_type": "text/plain"}}')
            proc = await trio.run_process(["curl", "-s", "-i", "--basic", "-u", "admin:public", "-X", "POST",
                                           base + "/mqtt/publish", "-d", body], capture_stdout=True)
            head, _, payload = proc.stdout.decode().partition("\r\n\r\n")
            assert head.startswith("HTTP/1.1 200") and payload == '{"code":0}', proc.stdout
            msg = await sub.message()
            assert (msg.topic, msg.payload, msg.qos, msg.retain) == ("a/b/c", b"Hello World", 1, False)
            assert msg.properties.ContentType == "text/plain"
            assert msg.properties.UserProperty == [("id", "10010"), ("name", "emqx"), ("foo", "bar")]
            assert [p["pub"]["data"] for p in await carol.wait_pubs(1)] == ["Hello World"]

            # JSON payloads are JSON to websocket clients; decoding base64 publishes the bytes; encoding base64 the text
            for request, wire, data in (({"topic": "a/b/c", "payload": '{"t": 21.5}'}, b'{"t": 21.5}', {"t": 21.5}),
                                        ({"topic": "a/b/c", "payload": "AAEC/w==", "decoding": "base64"}, b"\0\1\2\xff",
                                         {"$base64": "AAEC/w=="}),
                                        ({"topic": "a/b/c", "payload": "hi", "encoding": "base64"}, b"aGk=", "aGk=")):
                response = await http.post(base + "/mqtt/publish", json=request)
                assert response.content == b'{"code":0}'
                msg = await sub.message()
                assert (msg.payload, msg.qos) == (wire, 0)
                assert (await carol.wait_pubs(len(carol.pubs) + 1))[-1]["pub"]["data"] == data

            # retained, then a new subscriber gets it; `topics` publishes to each
            response = await http.post(base + "/mqtt/publish", json={"topics": "a/x,,a/y", "payload": "kept", "retain": True})
            assert response.content == b'{"code":0}'
            assert sorted((m.topic, m.payload) for m in await sub.messages_for(2)) == [("a/x", b"kept"), ("a/y", b"kept")]
            late = Paho(mqtt_port(running), "late", version=4)
            try:
                await late.connect()
                await late.subscribe("a/y")
                msg = await late.message()
                assert (msg.topic, msg.payload, msg.retain) == ("a/y", b"kept", True)
            finally:
                late.stop()

            response = await http.post(base + "/mqtt/publish_batch", content=json.dumps([
                {"topic": "a/1", "payload": "one", "qos": 2}, {"topics": "a/2", "topic": "a/ignored", "payload": "two"},
                {"topic": "a/3"}, {"payload": "no topic"}, 7, {"topic": "$SYS/x", "payload": "p"}]))
            assert (response.status_code, response.content) == (200, b'{"data":[{"topic":"a/1","code":0},{"topic":"a/2","code":0},'
                                                                     b'{"topic":"a/3","code":108},{"code":108},{"code":108},'
                                                                     b'{"topic":"$SYS/x","code":108}]}'.replace(b"]}", b'],"code":0}'))
            got = await sub.messages_for(2)
            assert [(m.topic, m.payload, m.qos) for m in got] == [("a/1", b"one", 1), ("a/ignored", b"two", 0)]
    finally:
        sub.stop()


async def test_publish_refusals(start_hub):
    """A body that is not a JSON object (array for the batch) is 400 `{"code": 109}`; a message that cannot be
    published is 200 `{"code": 108}` and publishes nothing."""
    need_mqtt()
    running = await start_hub(MQTT)
    url = running.url("stats") + "/api/v4/mqtt/publish"
    async with httpx.AsyncClient(auth=AUTH) as http:
        for body in (b"", b"not json", b"[1]", b'"x"'):
            response = await http.post(url, content=body)
            assert (response.status_code, response.content) == (400, b'{"code":109}'), body
        response = await http.post(url + "_batch", content=b'{"topic": "a"}')
        assert (response.status_code, response.content) == (400, b'{"code":109}')
        before = running.hub.stats.messages_in
        for request in ({"topic": "a"}, {"payload": "p"}, {"topic": "a", "payload": 5}, {"topic": 5, "payload": "p"},
                        {"topic": "a/+", "payload": "p"}, {"topic": "$x", "payload": "p"}, {"topic": "", "payload": "p"},
                        {"topic": "nope:x", "payload": "p"}, {"topic": "a", "payload": "p", "qos": 3},
                        {"topic": "a", "payload": "p", "qos": -1}, {"topic": "a", "payload": "!", "decoding": "base64"},
                        {"topic": "a", "payload": "p", "properties": {"user_properties": [1]}},
                        {"topic": "a", "payload": "/w==", "decoding": "base64", "properties": {"payload_format_indicator": 1}}):
            response = await http.post(url, json=request)
            assert (response.status_code, response.content) == (200, b'{"code":108}'), request
        assert running.hub.stats.messages_in == before
        # what NanoMQ reads loosely: qos as a number (truncated), keys in any case, retain only as a boolean
        response = await http.post(url, json={"TOPIC": "a", "Payload": "p", "qos": 1.9, "retain": "yes"})
        assert response.content == b'{"code":0}'
        assert running.hub.stats.messages_in == before + 1


PROMETHEUS = """# TYPE nanomq_connections_count gauge
# HELP nanomq_connections_count
nanomq_connections_count {connections}
# TYPE nanomq_connections_max gauge
# HELP nanomq_connections_max
nanomq_connections_max {connections_max}
# TYPE nanomq_sessions_count gauge
# HELP nanomq_sessions_count
nanomq_sessions_count {connections}
# TYPE nanomq_sessions_max gauge
# HELP nanomq_sessions_max
nanomq_sessions_max {connections_max}
# TYPE nanomq_topics_count gauge
# HELP nanomq_topics_count
nanomq_topics_count {topics}
# TYPE nanomq_topics_max gauge
# HELP nanomq_topics_max
nanomq_topics_max 2
# TYPE nanomq_subscribers_count gauge
# HELP nanomq_subscribers_count
nanomq_subscribers_count {subscribers}
# TYPE nanomq_subscribers_max gauge
# HELP nanomq_subscribers_max
nanomq_subscribers_max 2
# TYPE nanomq_messages_received counter
# HELP nanomq_messages_received
nanomq_messages_received 1
# TYPE nanomq_messages_sent counter
# HELP nanomq_messages_sent
nanomq_messages_sent 2
# TYPE nanomq_messages_dropped counter
# HELP nanomq_messages_dropped
nanomq_messages_dropped 0
# TYPE nanomq_memory_usage gauge
# HELP nanomq_memory_usage (b)
nanomq_memory_usage MEMORY
# TYPE nanomq_memory_usage_max gauge
# HELP nanomq_memory_usage_max (b)
nanomq_memory_usage_max MEMORY
# TYPE nanomq_cpu_usage gauge
# HELP nanomq_cpu_usage (%)
nanomq_cpu_usage CPU
# TYPE nanomq_cpu_usage_max gauge
# HELP nanomq_cpu_usage_max (%)
nanomq_cpu_usage_max CPU
"""


async def test_prometheus_and_metrics(start_hub):
    """`/prometheus` is `compose_metrics`' text line for line (maxima as seen at scrapes, which outlive the clients);
    `/metrics` is `get_metrics`' JSON without `code`."""
    running = await start_hub()
    base = running.url("stats") + "/api/v4"
    async with httpx.AsyncClient(auth=AUTH) as http:
        async with sdk_client(running, "carol") as carol, legacy_client(running.url("realtime")) as alice:
            await alice.connect("alice")
            await alice.subscribe("news")
            await carol.call("subscribe", {"channel": "news"})
            await carol.call("subscribe", {"channel": "sport"})
            await running.publish("news", 1)
            await carol.wait_pubs(1)
            response = await http.get(base + "/prometheus")
            assert response.status_code == 200 and response.headers["content-type"] == "text/plain"
            expected = PROMETHEUS.format(connections=2, connections_max=2, topics=2, subscribers=2)
            pattern = re.escape(expected).replace("MEMORY", r"[1-9]\d*").replace("CPU", r"\d+\.\d\d")
            assert re.fullmatch(pattern, response.text), response.text
            response = await http.get(base + "/metrics/")
            assert re.fullmatch(r'\{"metrics":\[\],"cpuinfo":"\d+\.\d\d%","memory":"[1-9]\d*","connections":2\}',
                                response.text), response.text
        with trio.fail_after(5):
            while running.hub.sessions:
                await trio.sleep(0.02)
        response = await http.get(base + "/prometheus?x=1")
        expected = PROMETHEUS.format(connections=0, connections_max=2, topics=0, subscribers=0)
        pattern = re.escape(expected).replace("MEMORY", r"[1-9]\d*").replace("CPU", r"\d+\.\d\d")
        assert re.fullmatch(pattern, response.text), response.text


def test_process_sampler_reads_proc():
    from protocols.stats.process import ProcessSampler

    sampler = ProcessSampler()
    memory, cpu = sampler.sample()
    assert memory > 0 and cpu >= 0
    sum(range(10**6))
    memory, cpu = sampler.sample()
    assert memory > 0 and 0 <= cpu <= 100


async def test_topic_tree(start_hub):
    """`/topic-tree` as `get_tree` prints `dbtree_get_tree`: levels from the root `""`, wildcards before the other
    levels (the last inserted first), those in strcmp order, client ids where a filter ends, and the walk's
    trailing empty level when the number of levels is odd."""
    need_mqtt()
    from tests.protocols.mqtt.clients import Paho, mqtt_port

    running = await start_hub(MQTT)
    url = running.url("stats") + "/api/v4/topic-tree"
    async with httpx.AsyncClient(auth=AUTH) as http:
        assert (await http.get(url)).content == b'{"code":0,"data":[[{"topic":"","cld_cnt":0,"clientid":[]}],[]]}'
        a, b = Paho(mqtt_port(running), "a", version=4), Paho(mqtt_port(running), "b", version=5)
        try:
            await a.connect()
            await b.connect()
            await a.subscribe("s/#")
            await a.subscribe("s/+")
            await b.subscribe("s/+")
            await b.subscribe("s/b/c")
            await b.subscribe("s/a")
            async with sdk_client(running, "carol") as carol:
                await carol.call("subscribe", {"channel": "news"})
                data = (await http.get(url + "/")).json()["data"]
                assert data == [
                    [{"topic": "", "cld_cnt": 2, "clientid": []}],
                    [{"topic": "news", "cld_cnt": 0, "clientid": [carol.client_id]},
                     {"topic": "s", "cld_cnt": 4, "clientid": []}],
                    [{"topic": "+", "cld_cnt": 0, "clientid": ["a", "b"]}, {"topic": "#", "cld_cnt": 0, "clientid": ["a"]},
                     {"topic": "a", "cld_cnt": 0, "clientid": ["b"]}, {"topic": "b", "cld_cnt": 1, "clientid": []}],
                    [{"topic": "c", "cld_cnt": 0, "clientid": ["b"]}],
                ]
        finally:
            a.stop()
            b.stop()


async def test_v4_guesses_count_in_the_login_limiter(start_hub):
    """Wrong credentials on v4 are failed logins like v1's: the 11th is 429 `{"code": 103}` with Retry-After, the
    block covers both APIs and ends on time; undecodable credentials (108) count too, missing ones do not."""
    from tests.login_helpers import Clock

    running = await start_hub("[login_limit]\nmax_failures_per_ip = 1000\n")
    running.login_limiter.clock = clock = Clock()
    url = running.url("stats") + "/api/v4/brokers"
    async with httpx.AsyncClient() as http:
        for _ in range(3):
            assert (await http.get(url)).status_code == 401  # no credentials: not a guess
        for i in range(11):
            r = await http.get(url, auth=("admin", f"guess-{i}"))
            assert (r.status_code, r.content) == ((401, b'{"code":103}') if i < 10 else (429, b'{"code":103}'))
        r = await http.get(url, auth=AUTH)
        assert (r.status_code, r.content) == (429, b'{"code":103}') and r.headers["retry-after"] == "300"
        r = await http.post(running.url("stats") + "/api/v1", auth=AUTH, json={"req": 2, "seq": 1})
        assert (r.status_code, r.json()) == (429, {"code": 103, "seq": 0})
        clock.now = 300
        assert (await http.get(url, auth=AUTH)).status_code == 200
    assert running.login_limiter.failures["stats"] == 10  # the 11th was refused, not checked
