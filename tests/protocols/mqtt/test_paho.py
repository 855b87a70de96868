"""The MQTT listener with the real paho-mqtt 2.x client (3.1.1 and 5.0), raw sockets for bad packets, and the
other adapters on the same channels."""

from __future__ import annotations

import json
import logging
import sys

import httpx
import pytest
import trio
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions
from trio_websocket import open_websocket_url

from protocols.mqtt import codec
from protocols.mqtt.auth import hash_password, write_password_file
from tests.conftest import SECRET
from tests.protocols.stats.test_stats import jsonrpc_events_token, sdk_client

from .clients import Paho, RawClient, mqtt_port, props

MQTT = """
[mqtt]
port = 0
allow_anonymous = true
max_queued_messages = 3
"""

API_KEY = {"X-API-Key": "test-api-key"}
pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")


@pytest.fixture
async def mqtt_hub(start_hub):
    return await start_hub(MQTT)


@pytest.fixture
def clients():
    made: list[Paho] = []

    def make(*args, **kwargs) -> Paho:
        c = Paho(*args, **kwargs)
        made.append(c)
        return c

    yield make
    for c in made:
        c.stop()


def rc_value(rc) -> int:
    return rc.value if isinstance(rc, ReasonCode) else int(rc)


@pytest.mark.parametrize("version", [3, 4, 5])
async def test_qos_round_trips_and_wildcards(mqtt_hub, clients, version):
    port = mqtt_port(mqtt_hub)
    sub, pub = clients(port, f"sub{version}", version=version), clients(port, f"pub{version}", version=version)
    await sub.connect()
    await pub.connect()
    granted = await sub.subscribe("sensors/+/temp", 2)
    assert [rc_value(g) for g in granted] == [2]
    assert [rc_value(g) for g in await sub.subscribe("exact/topic", 1)] == [1]
    for qos in (0, 1, 2):
        rc = await pub.publish("sensors/garage/temp", f"21.{qos}", qos)
        if version == 5 and qos:
            assert rc_value(rc) == 0
        msg = await sub.message()
        assert (msg.topic, msg.payload, msg.qos, msg.retain) == ("sensors/garage/temp", f"21.{qos}".encode(), qos, False)
    await pub.publish("exact/topic", b"\x00\xffbinary", 2)  # delivered at the subscription's QoS 1
    msg = await sub.message()
    assert (msg.topic, msg.payload, msg.qos) == ("exact/topic", b"\x00\xffbinary", 1)
    await pub.publish("sensors/garage/humidity", "55", 1)
    await sub.nothing()
    await sub.unsubscribe("sensors/+/temp")
    await pub.publish("sensors/garage/temp", "22", 1)
    await sub.nothing()
    stats = mqtt_hub.hub.stats
    assert stats.messages_in == 6 and stats.messages_delivered == 4 and stats.messages_dropped == 2


async def test_one_channel_space_with_the_other_adapters(mqtt_hub, clients):
    """HTTP API and websocket publications reach MQTT wildcard subscribers; MQTT publications reach
    websocket subscribers, history and /ws/events."""
    port = mqtt_port(mqtt_hub)
    sub = clients(port, "dev", version=5)
    await sub.connect()
    await sub.subscribe("sensors/+/temp", 1)
    await sub.subscribe("public:chat", 0)
    async with httpx.AsyncClient(headers=API_KEY) as http:
        token = await jsonrpc_events_token(mqtt_hub, http, "ops")
        events_url = mqtt_hub.url("jsonrpc").replace("http://", "ws://") + f"/ws/events?token={token}"
        async with sdk_client(mqtt_hub, "alice") as alice, open_websocket_url(events_url) as events:
            await alice.call("subscribe", {"channel": "sensors/garage/temp"})
            await alice.call("subscribe", {"channel": "public:chat"})
            response = await http.post(mqtt_hub.url("command_api") + "/api/publish",
                                       json={"channel": "sensors/garage/temp", "data": {"celsius": 21}})
            assert response.status_code == 200 and "error" not in response.json()
            msg = await sub.message()
            assert (msg.topic, msg.payload, msg.qos) == ("sensors/garage/temp", b'{"celsius":21}', 0)
            await alice.call("publish", {"channel": "public:chat", "data": "hello from a websocket"})
            msg = await sub.message()
            assert (msg.topic, msg.payload) == ("public:chat", b"hello from a websocket")

            pub = clients(port, "sensor-1", version=4)
            await pub.connect()
            await pub.publish("sensors/kitchen/temp", b'{"celsius": 19.5}', 1)  # not canonical JSON: MQTT gets it exact
            await pub.publish("sensors/garage/temp", b"22.5", 1)
            assert (await sub.message()).payload == b'{"celsius": 19.5}'
            assert (await sub.message()).payload == b"22.5"
            pubs = await alice.wait_pubs(3)
            assert [p["pub"]["data"] for p in pubs] == [{"celsius": 21}, "hello from a websocket", 22.5]
            history = (await http.post(mqtt_hub.url("command_api") + "/api/history",
                                       json={"channel": "sensors/kitchen/temp", "limit": 10})).json()["result"]["publications"]
            assert [p["data"] for p in history] == [{"celsius": 19.5}]
            seen = []
            with trio.fail_after(5):
                while len(seen) < 2:
                    event = json.loads(await events.get_message())["args"]
                    if event.get("subtype") == "hub.publication" and event.get("channel", "").startswith("sensors/"):
                        seen.append(event)
            assert "19.5" in json.dumps(seen[0]) or "19.5" in json.dumps(seen[1])


async def test_retained_messages(mqtt_hub, clients):
    port = mqtt_port(mqtt_hub)
    pub = clients(port, "pub", version=5)
    await pub.connect()
    await pub.publish("home/door", "open", 1, retain=True)
    await pub.publish("home/window", "closed", 2, retain=True)
    await pub.publish("home/light", "on", 0, retain=False)
    late = clients(port, "late", version=4)
    await late.connect()
    await late.subscribe("home/#", 1)
    got = {m.topic: (m.payload, m.retain, m.qos) for m in await late.messages_for(2)}
    assert got == {"home/door": (b"open", True, 1), "home/window": (b"closed", True, 1)}
    await late.nothing()
    # live publications of a retained message carry RETAIN=0 to existing subscribers
    await pub.publish("home/door", "closed", 1, retain=True)
    msg = await late.message()
    assert (msg.payload, msg.retain) == (b"closed", False)
    # an empty retained publish clears it (and is delivered as an empty message)
    await pub.publish("home/door", b"", 1, retain=True)
    assert (await late.message()).payload == b""
    later = clients(port, "later", version=5)
    await later.connect()
    await later.subscribe("home/door", 1)
    await later.nothing()
    assert mqtt_hub.hub.retained.get("development", "home/door") is None
    # retain handling 2: never send retained on subscribe; retain-as-published keeps the flag live
    await later.subscribe("home/window", options=SubscribeOptions(qos=1, retainHandling=2, retainAsPublished=True))
    await later.nothing()
    await pub.publish("home/window", "open", 1, retain=True)
    msg = await later.message()
    assert (msg.payload, msg.retain) == (b"open", True)


@pytest.mark.parametrize("version", [4, 5])
async def test_will_on_abrupt_drop_not_on_disconnect(mqtt_hub, clients, version):
    port = mqtt_port(mqtt_hub)
    watcher = clients(port, "watcher", version=version)
    await watcher.connect()
    await watcher.subscribe("status/#", 1)
    graceful = clients(port, "graceful", version=version)
    graceful.client.will_set("status/graceful", "gone", 1)
    await graceful.connect()
    await graceful.disconnect()
    await watcher.nothing()
    abrupt = clients(port, "abrupt", version=version)
    abrupt.client.will_set("status/abrupt", "lost", 1, retain=True)
    await abrupt.connect()
    abrupt.drop()
    msg = await watcher.message()
    assert (msg.topic, msg.payload, msg.qos) == ("status/abrupt", b"lost", 1)
    assert mqtt_hub.hub.retained.get("development", "status/abrupt").data == "lost"


async def test_keepalive_timeout_fires_the_will(mqtt_hub, clients):
    port = mqtt_port(mqtt_hub)
    watcher = clients(port, "watcher")
    await watcher.connect()
    await watcher.subscribe("status/+", 0)
    raw = await RawClient.open(port)
    assert (await raw.connect("silent", keepalive=1, will=("status/silent", b"timed out")))[:1] == b"\x20"
    with trio.fail_after(4):
        assert await raw.closed() == b""          # closed after 1.5 x keepalive of silence
    msg = await watcher.message()
    assert (msg.topic, msg.payload) == ("status/silent", b"timed out")
    await raw.aclose()


async def test_persistent_session_311_across_reconnect(mqtt_hub, clients):
    port = mqtt_port(mqtt_hub)
    dev = clients(port, "device-7", clean=False)
    flags, rc, _ = await dev.connect()
    assert not flags.session_present
    await dev.subscribe("cmd/device-7", 1)
    await dev.disconnect()
    pub = clients(port, "backend", version=5)
    await pub.connect()
    for i in range(5):  # the queue holds 3 (max_queued_messages): 2 dropped, counted
        await pub.publish("cmd/device-7", f"c{i}", 1)
    await pub.publish("cmd/device-7", "qos0 while offline", 0)
    dropped_before = mqtt_hub.hub.stats.messages_dropped
    assert dropped_before == 3
    again = clients(port, "device-7", clean=False)
    flags, rc, _ = await again.connect()
    assert flags.session_present
    got = await again.messages_for(3)
    assert [(m.payload, m.qos) for m in got] == [(b"c0", 1), (b"c1", 1), (b"c2", 1)]
    await again.nothing()
    # clean session again: the old one is gone
    await again.disconnect()
    fresh = clients(port, "device-7", clean=True)
    flags, rc, _ = await fresh.connect()
    assert not flags.session_present
    await pub.publish("cmd/device-7", "nobody", 1)
    await fresh.nothing()


async def test_persistent_session_v5_expiry_and_inflight_resend(mqtt_hub, clients):
    port = mqtt_port(mqtt_hub)
    dev = clients(port, "v5dev", version=5)
    await dev.connect(clean_start=False, properties=props(PacketTypes.CONNECT, SessionExpiryInterval=60))
    await dev.subscribe("jobs/#", 2)
    dev.drop()
    pub = clients(port, "producer", version=5)
    await pub.connect()
    await pub.publish("jobs/1", "a", 2)
    await pub.publish("jobs/2", "b", 1)
    back = clients(port, "v5dev", version=5)
    flags, rc, _ = await back.connect(clean_start=False, properties=props(PacketTypes.CONNECT, SessionExpiryInterval=0))
    assert flags.session_present
    got = await back.messages_for(2)
    # (paho hands a QoS 2 message over only after PUBREL, so the QoS 1 one may come first)
    assert sorted((m.topic, m.payload, m.qos) for m in got) == [("jobs/1", b"a", 2), ("jobs/2", b"b", 1)]
    await back.disconnect()  # expiry 0 now: the session ends
    with trio.fail_after(2):
        while "v5dev" in mqtt_hub.contexts["mqtt"].state["broker"].sessions:
            await trio.sleep(0.01)


async def test_session_takeover(mqtt_hub, clients):
    port = mqtt_port(mqtt_hub)
    first = clients(port, "same-id", version=5)
    first.client.will_set("status/same-id", "taken", 0)
    await first.connect()
    watcher = clients(port, "w")
    await watcher.connect()
    await watcher.subscribe("status/#")
    second = clients(port, "same-id", version=5)
    await second.connect()
    assert rc_value(await first.event("disconnect")) == codec.SESSION_TAKEN_OVER
    assert (await watcher.message()).payload == b"taken"
    await second.subscribe("x", 0)
    await watcher.publish("x", "to the new one")
    assert (await second.message()).payload == b"to the new one"


async def test_shared_subscriptions(mqtt_hub, clients):
    port = mqtt_port(mqtt_hub)
    workers = [clients(port, f"worker{i}", version=v) for i, v in enumerate((4, 5))]
    for w in workers:
        await w.connect()
        assert [rc_value(g) for g in await w.subscribe("$share/pool/jobs/#", 1)] == [1]
    pub = clients(port, "boss", version=5)
    await pub.connect()
    for i in range(10):
        await pub.publish(f"jobs/{i}", str(i), 1)
    got = []
    for w in workers:
        while True:
            try:
                got.append((await w.message(timeout=0.5)).payload)
            except Exception:
                break
    assert sorted(got, key=int) == [str(i).encode() for i in range(10)]
    assert all(w.messages.qsize() == 0 for w in workers)


async def test_mqtt5_properties_forwarded(mqtt_hub, clients):
    port = mqtt_port(mqtt_hub)
    sub = clients(port, "props-sub", version=5)
    await sub.connect()
    await sub.subscribe("rpc/#", options=SubscribeOptions(qos=1), properties=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=42))
    pub = clients(port, "props-pub", version=5)
    await pub.connect()
    p = props(PayloadFormatIndicator=1, ContentType="application/json", ResponseTopic="rpc/reply", CorrelationData=b"\x01\x02",
              MessageExpiryInterval=120, UserProperty=[("trace", "abc"), ("trace", "def")])
    await pub.publish("rpc/call", b'{"x":1}', 1, properties=p)
    msg = await sub.message()
    mp = msg.properties
    assert mp.ContentType == "application/json" and mp.ResponseTopic == "rpc/reply" and mp.CorrelationData == b"\x01\x02"
    assert mp.UserProperty == [("trace", "abc"), ("trace", "def")] and mp.PayloadFormatIndicator == 1
    assert 118 <= mp.MessageExpiryInterval <= 120 and mp.SubscriptionIdentifier == [42]
    # topic alias: the second PUBLISH carries only the alias
    await pub.publish("rpc/aliased", "one", 1, properties=props(TopicAlias=3))
    await pub.publish("", "two", 1, properties=props(TopicAlias=3))
    assert [(m.topic, m.payload) for m in await sub.messages_for(2)] == [("rpc/aliased", b"one"), ("rpc/aliased", b"two")]
    # no local: a client's own publications do not come back
    await pub.subscribe("echo", options=SubscribeOptions(qos=0, noLocal=True))
    await pub.publish("echo", "me", 1)
    await pub.nothing()
    # a bad UTF-8 payload that claims to be UTF-8 is refused with 0x99
    assert rc_value(await pub.publish("rpc/bad", b"\xff", 1, properties=props(PayloadFormatIndicator=1))) == 0x99


async def test_topic_rules_and_namespaces(mqtt_hub, clients):
    port = mqtt_port(mqtt_hub)
    c = clients(port, "rules", version=5)
    await c.connect()
    codes = await c.subscribe("nope:x/#")
    assert rc_value(codes[0]) == codec.TOPIC_FILTER_INVALID      # no namespace "nope"
    assert rc_value((await c.subscribe("$private/x"))[0]) == codec.NOT_AUTHORIZED
    assert rc_value(await c.publish("nope:x", "y", 1)) == codec.TOPIC_NAME_INVALID
    assert rc_value(await c.publish("$SYS/x", "y", 1)) == codec.TOPIC_NAME_INVALID
    assert rc_value((await c.subscribe("public:room/#"))[0]) == 0


async def test_users_passwords_and_acls(start_hub, clients, tmp_path):
    acl = tmp_path / "acl"
    acl.write_text("user alice\ntopic readwrite alice/#\ntopic read shared/#\npattern write devices/%c/#\n")
    running = await start_hub(f"""
        [mqtt]
        port = 0
        acl_file = "{acl}"
        [mqtt.users.alice]
        password = "{hash_password('wonderland')}"
        """)
    port = mqtt_port(running)
    anon = clients(port, "anon", version=5)
    _, rc, _ = await anon.connect()
    assert rc_value(rc) == codec.NOT_AUTHORIZED
    wrong = clients(port, "wrong", version=4, username="alice", password="nope")
    _, rc, _ = await wrong.connect()
    assert rc_value(rc) == codec.BAD_CREDENTIALS  # paho reports the 3.1.1 return code 4 as its MQTT 5 equivalent
    alice = clients(port, "dev1", version=5, username="alice", password="wonderland")
    _, rc, _ = await alice.connect()
    assert rc_value(rc) == 0
    codes = [rc_value(c) for c in await alice.subscribe([("alice/+", 1), ("shared/x", 0), ("bob/#", 0), ("#", 0)])]
    assert codes == [1, 0, codec.NOT_AUTHORIZED, codec.NOT_AUTHORIZED]
    assert rc_value(await alice.publish("alice/x", "ok", 1)) == 0
    assert (await alice.message()).payload == b"ok"
    assert rc_value(await alice.publish("shared/x", "no", 1)) == codec.NOT_AUTHORIZED
    assert rc_value(await alice.publish("devices/dev1/state", "on", 1)) == 0
    assert rc_value(await alice.publish("devices/other/state", "on", 1)) == codec.NOT_AUTHORIZED


async def test_without_users_credentials_are_not_checked_as_mosquitto_without_a_password_file(start_hub, clients):
    """No users table and no password file: a client that sends a user name and password is anonymous (let in
    with the anonymous ACLs when allow_anonymous is on, refused "not authorized" when it is off), as Mosquitto
    treats them without a password_file. Devices configured with credentials keep working after a migration."""
    running = await start_hub('[mqtt]\nport = 0\nallow_anonymous = true\nanonymous_read = ["open/#"]\n'
                              'anonymous_write = ["open/#"]\n')
    port = mqtt_port(running)
    device = clients(port, "device", version=4, username="homeassistant", password="whatever")
    _, rc, _ = await device.connect()
    assert rc_value(rc) == 0
    codes = [rc_value(c) for c in await device.subscribe([("open/#", 1), ("closed/#", 0)])]
    assert codes == [1, 0x80]  # the anonymous ACLs (3.1.1: failure 0x80), not a user's full access
    closed = await start_hub("[mqtt]\nport = 0\nallow_anonymous = false\n")
    for version in (4, 5):
        refused = clients(mqtt_port(closed), f"r{version}", version=version, username="u", password="p")
        _, rc, _ = await refused.connect()
        assert rc_value(rc) == codec.NOT_AUTHORIZED  # 3.1.1: 5, MQTT 5: 0x87, as Mosquitto answers


async def test_password_and_acl_files_are_read_again_when_they_change(start_hub, clients, tmp_path, caplog):
    """`hub mqtt passwd` (or mosquitto_passwd) and an ACL edit apply from the next CONNECT while the hub runs, as
    Mosquitto users expect after a SIGHUP; an edit that does not read keeps the users and ACLs read before."""
    passwd, acl = tmp_path / "passwd", tmp_path / "acl"
    write_password_file(str(passwd), "alice", hash_password("wonderland"))
    acl.write_text("user alice\ntopic readwrite alice/#\n")
    running = await start_hub(f"""
        [mqtt]
        port = 0
        password_file = "{passwd}"
        acl_file = "{acl}"
        """)
    port = mqtt_port(running)
    _, rc, _ = await clients(port, "bob1", version=5, username="bob", password="builder").connect()
    assert rc_value(rc) == codec.BAD_CREDENTIALS
    added = await trio.run_process([sys.executable, "-m", "hub", "mqtt", "passwd", "bob", "--file", str(passwd)],
                                   stdin=b"builder\n", capture_stdout=True, capture_stderr=True, check=False)
    assert added.returncode == 0, added.stderr
    acl.write_text(acl.read_text() + "user bob\ntopic read bob/#\n")
    bob = clients(port, "bob2", version=5, username="bob", password="builder")
    _, rc, _ = await bob.connect()
    assert rc_value(rc) == 0
    assert [rc_value(c) for c in await bob.subscribe([("bob/#", 0), ("alice/#", 0)])] == [0, codec.NOT_AUTHORIZED]
    passwd.write_text(passwd.read_text() + "carol:not-a-hash\n")
    with caplog.at_level(logging.ERROR, logger="hub.mqtt"):
        _, rc, _ = await clients(port, "alice1", version=5, username="alice", password="wonderland").connect()
    assert rc_value(rc) == 0
    assert "line 3 (carol): not a password hash" in caplog.text and "read before stay in force" in caplog.text


async def test_mqtt_over_websocket(mqtt_hub, clients):
    port = mqtt_port(mqtt_hub)
    ws = clients(port, "browser", version=5, transport="websockets")
    await ws.connect()
    await ws.subscribe("ws/+", 2)
    tcp = clients(port, "tcp", version=4)
    await tcp.connect()
    await tcp.publish("ws/a", "over tcp", 2)
    msg = await ws.message()
    assert (msg.topic, msg.payload, msg.qos) == ("ws/a", b"over tcp", 2)
    await tcp.subscribe("back", 1)
    await ws.publish("back", "over ws", 1)
    assert (await tcp.message()).payload == b"over ws"
    async with httpx.AsyncClient() as http:  # the same port still answers HTTP
        assert (await http.get(mqtt_hub.url("mqtt") + "/other")).status_code == 404


@pytest.mark.parametrize("bad", [
    pytest.param(codec.fixed(codec.PUBLISH, 0, b"\x00\x09short"), id="wrong-length"),
    pytest.param(codec.fixed(codec.PUBLISH, 2, b"\x00\x03\xc3\x28x\x00\x01hi"), id="bad-utf8-topic"),
    pytest.param(codec.fixed(codec.SUBSCRIBE, 0, b"\x00\x01\x00\x01a\x00"), id="reserved-flags"),
    pytest.param(b"\x30\xff\xff\xff\xff\x7f", id="five-byte-length"),
    pytest.param(codec.fixed(codec.PUBLISH, 0, codec.encode_string("a/+") + b"x"), id="wildcard-topic"),
])
@pytest.mark.parametrize("version", [4, 5])
async def test_bad_packets_close_only_that_client(mqtt_hub, clients, bad, version):
    port = mqtt_port(mqtt_hub)
    good = clients(port, "good", version=5)
    await good.connect()
    await good.subscribe("t/#", 1)
    raw = await RawClient.open(port)
    assert (await raw.connect("bad", version=version))[:1] == b"\x20"
    await raw.send(bad)
    last = await raw.closed()
    if version == 5:
        assert last[:1] == bytes((codec.DISCONNECT << 4,)) and last[1] >= 0x80
    else:
        assert last == b""
    await raw.aclose()
    await good.publish("t/still", "alive", 1)
    assert (await good.message()).payload == b"alive"


async def test_first_packet_must_be_connect_and_unsupported_versions(mqtt_hub):
    port = mqtt_port(mqtt_hub)
    raw = await RawClient.open(port)
    await raw.send(b"\x10" + codec.encode_varint(10) + codec.encode_string("MQTT") + b"\x07\x02\x00\x1e\x00\x00")
    assert await raw.packet() == b"\x20\x00\x01"          # CONNACK (3.1.1 layout): unacceptable protocol version
    assert await raw.closed() == b""
    await raw.aclose()
    raw = await RawClient.open(port)
    assert await raw.connect("", version=4, clean=False) == b"\x20\x00\x02"  # identifier rejected
    await raw.aclose()
    for first in (b"\x82\x06\x00\x01\x00\x01a\x00", b"\x30\x04\x00\x01ax", b"\xc0\x00"):  # SUBSCRIBE, PUBLISH, PINGREQ
        raw = await RawClient.open(port)
        await raw.send(first)
        with trio.fail_after(1):  # at once, as Mosquitto does (not left to the HTTP server's header timeout)
            assert await raw.closed() == b""
        await raw.aclose()


async def test_stats_list_mqtt_clients_as_nanomq_does(mqtt_hub, clients):
    port = mqtt_port(mqtt_hub)
    a = clients(port, "nanomq-ebd54382", version=4)
    await a.connect(keepalive=60)
    await a.subscribe("a/b/c", 0)
    b = clients(port, "sensor-5", version=5)
    await b.connect(keepalive=30)
    await b.subscribe("sensors/+/temp", 2)
    await b.subscribe("$share/g/jobs/#", 1)
    url = mqtt_hub.url("stats") + "/api/v1"
    async with httpx.AsyncClient(auth=("admin", "public")) as http:
        topics = (await http.post(url, json={"req": 4, "seq": 1111111})).json()
        clients_info = (await http.post(url, json={"req": 5, "seq": 1111111})).json()
    by_id = {c["client_id"]: c["subscriptions"] for c in topics["data"]}
    assert by_id["nanomq-ebd54382"] == [{"topic": "a/b/c", "qos": 0}]
    assert sorted(by_id["sensor-5"], key=lambda s: s["topic"]) == [
        {"topic": "$share/g/jobs/#", "qos": 1}, {"topic": "sensors/+/temp", "qos": 2}]
    info = {c["client_id"]: c for c in clients_info["data"]}
    assert {k: info["nanomq-ebd54382"][k] for k in ("username", "keepalive", "protocol", "connect_status")} == \
        {"username": "", "keepalive": 60, "protocol": 4, "connect_status": 1}
    assert info["sensor-5"]["protocol"] == 5 and info["sensor-5"]["keepalive"] == 30


async def test_server_side_disconnect_and_shutdown_notice(mqtt_hub, clients):
    port = mqtt_port(mqtt_hub)
    c = clients(port, "kicked", version=5, username=None)
    await c.connect()
    await c.subscribe("x")
    await mqtt_hub.hub.disconnect("development", "", "bye", False)  # the core's disconnect of a user
    assert rc_value(await c.event("disconnect")) == codec.ADMINISTRATIVE_ACTION
    mqtt_hub.shutdown()
    _ = SECRET


async def test_a_burst_in_one_write_is_delivered_in_order(start_hub, clients):
    """Consecutive publications to one topic go to the core as a batch; order, QoS and acks stay exact."""
    port = mqtt_port(await start_hub(MQTT.replace("max_queued_messages = 3", "max_queued_messages = 100")))
    q0, q1 = clients(port, "q0", version=4), clients(port, "q1", version=5)
    for c, qos in ((q0, 0), (q1, 1)):
        await c.connect()
        await c.subscribe("burst/#", qos)
    raw = await RawClient.open(port)
    await raw.connect("burster")
    plan = [("burst/a" if i % 7 < 5 else "burst/b", i % 2) for i in range(60)]
    await raw.send(b"".join(codec.publish(4, topic, str(i).encode(), qos, packet_id=i + 1 if qos else 0)
                            for i, (topic, qos) in enumerate(plan)))
    acks = [await raw.packet() for _ in range(30)]
    assert acks == [b"\x40" + (i + 1).to_bytes(2, "big") for i, (_, qos) in enumerate(plan) if qos]
    for c, sub_qos in ((q0, 0), (q1, 1)):
        got = [(m.topic, m.payload, m.qos) for m in await c.messages_for(60)]
        want = [(t, str(i).encode(), min(q, sub_qos)) for i, (t, q) in enumerate(plan)]
        for qos in (0, 1):  # in order per QoS (QoS 1 may wait for the in-flight window while QoS 0 goes on)
            assert [g for g in got if g[2] == qos] == [w for w in want if w[2] == qos]
    await raw.aclose()


async def test_will_delay_and_session_expiry_v5(mqtt_hub, clients):
    port = mqtt_port(mqtt_hub)
    broker = mqtt_hub.contexts["mqtt"].state["broker"]
    watcher = clients(port, "watcher", version=5)
    await watcher.connect()
    await watcher.subscribe("status/#", 1)
    connect_props = props(PacketTypes.CONNECT, SessionExpiryInterval=2)
    will_props = props(PacketTypes.WILLMESSAGE, WillDelayInterval=1)
    dev = clients(port, "delayed", version=5)
    dev.client.will_set("status/delayed", "late", 1, properties=will_props)
    await dev.connect(clean_start=False, properties=connect_props)
    dev.drop()
    back = clients(port, "delayed", version=5)   # back within the delay: no will
    back.client.will_set("status/delayed", "late", 1, properties=will_props)
    flags, _, _ = await back.connect(clean_start=False, properties=connect_props)
    assert flags.session_present
    await watcher.nothing(1.3)
    back.drop()
    started = trio.current_time()
    msg = await watcher.message()
    assert msg.payload == b"late" and trio.current_time() - started >= 0.8
    with trio.fail_after(4):  # the session expires 2 s after the drop (the core's housekeeping ends it)
        while "delayed" in broker.sessions:
            await trio.sleep(0.05)


async def test_server_keepalive_cap(start_hub, clients):
    running = await start_hub(MQTT + "max_keepalive = 5\n")
    c = clients(mqtt_port(running), "lazy", version=5)
    _, rc, p = await c.connect(keepalive=600)
    assert rc_value(rc) == 0 and p.ServerKeepAlive == 5
    assert running.contexts["mqtt"].state["broker"].sessions["lazy"].core.keepalive == 5


async def test_a_client_that_stops_reading_is_disconnected_as_slow_and_counted(start_hub, clients):
    running = await start_hub(MQTT + "[hub]\nmax_queue_bytes = 65536\n")
    port = mqtt_port(running)
    stuck = await RawClient.open(port)
    await stuck.connect("stuck", version=5)
    await stuck.send(codec.fixed(codec.SUBSCRIBE, 2, b"\x00\x01\x00" + codec.encode_string("flood") + b"\x00"))
    assert (await stuck.packet())[:1] == b"\x90"
    fine = clients(port, "fine", version=4)
    await fine.connect()
    await fine.subscribe("other")
    flooder = await RawClient.open(port)
    await flooder.connect("flooder")
    packet = codec.publish(4, "flood", b"x" * 4000)
    broker = running.contexts["mqtt"].state["broker"]
    with trio.fail_after(20):
        while "stuck" in broker.sessions:  # the stuck client's socket and then its queue fill up
            await flooder.send(packet * 100)
            await trio.sleep(0)
    stats = running.hub.stats
    assert stats.slow_disconnects == 1 and stats.messages_dropped >= 1
    await flooder.send(codec.publish(4, "other", b"still served"))
    assert (await fine.message()).payload == b"still served"
    await stuck.aclose()
    await flooder.aclose()


async def test_no_mqtt_table_no_listener(start_hub):
    from tests.conftest import hub_config

    data = hub_config()
    data.pop("mqtt", None)
    running = await start_hub(data=data)
    assert "mqtt" not in running.urls
