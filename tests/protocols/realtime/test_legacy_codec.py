"""The original client protocol without sockets: LegacyClient against an in-memory Hub.

Expected texts are the original's (Centrifuge 0.8.4 on Python 3.6, recorded in tests/compat).
"""

import json
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.core import Hub, NamespaceOptions, Project
from hub.core.outbox import Outbox
from hub.net.framing import WS_TEXT
from hub.net.sockjs import SOCKJS_WS, SOCKJS_XHR
from protocols.centrifuge import CLOSES, dumps, hmac_hex
from protocols.centrifuge_schema import API, CLIENT, REQUEST, _errors, _valid, validate
from protocols.realtime.legacy import CODEC, LegacyClient, legacy_wire

SECRET = "secret"


def make_hub(lifetime: int = 0) -> Hub:
    options = NamespaceOptions(publish=True, anonymous=True, presence=True, join_leave=True, history_size=5, history_lifetime=60)
    namespaces = {"pub": NamespaceOptions(publish=True, join_leave=False, presence=True),
                  "quiet": NamespaceOptions(presence=False, join_leave=False)}
    return Hub([Project("proj", SECRET, options, namespaces, connection_lifetime=lifetime, max_channel_length=40)])


def params(user="alice", ts=None, info=None, project="proj", secret=SECRET):
    ts = ts or str(int(time.time()))
    p = {"project": project, "user": user, "timestamp": ts, "token": hmac_hex(secret, project, user, ts, info or "")}
    if info is not None:
        p["info"] = info
    return p


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def client_for(hub: Hub, clock=time.time) -> LegacyClient:
    return LegacyClient(hub, Outbox(1 << 20), legacy_wire(WS_TEXT), clock=clock)


def pushes(client: LegacyClient) -> list:
    """Pushes queued so far (websocket text frames, all short)."""
    data = client.outbox.take()
    out = []
    while data:
        n = data[1] & 0x7F
        head = 2 if n < 126 else 4
        if n == 126:
            n = int.from_bytes(data[2:4], "big")
        out.append(json.loads(data[head:head + n]))
        data = data[head + n:]
    return out


async def send(client, obj) -> list:
    batch = await client.handle(json.dumps(obj))
    assert batch.close is None
    return json.loads(batch.reply)


async def call(client, method, p=None):
    (reply,) = await send(client, {"method": method, "params": {} if p is None else p})
    return reply


async def connected(hub, user="alice", info=None, clock=time.time):
    client = client_for(hub, clock)
    assert (await call(client, "connect", params(user, info=info, ts=str(int(clock())))))["error"] is None
    pushes(client)
    return client


async def test_replies_are_encoded_as_the_original_encodes_them():
    client = client_for(make_hub())
    batch = await client.handle(json.dumps({"uid": "1", "method": "connect", "params": params()}))
    assert batch.reply.decode().startswith('[{"method": "connect", "error": null, "body": {"client": "')
    assert batch.reply.decode().endswith('", "expired": false, "ttl": null}}]')  # uid never echoed
    assert dumps({"a": "</script> é"}) == '{"a": "<\\/script> \\u00e9"}'


@pytest.mark.parametrize("value", [{"a": [1, 2.5, None, True]}, [], {}, "é</", 3, -0.0, 1e300, float("nan"), float("-inf"),
                                   None, False, 2 ** 70, [{"x": {"y": ["\u2028", "\ud83d"]}}], {1: "int key", None: 0}])
def test_dumps_is_the_standard_encoders(value):
    assert dumps(value) == json.dumps(value).replace("</", "<\\/")


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=2 ** 62, max_value=2 ** 90).map(lambda n: n * 3)
    | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4), max_leaves=12)


@given(_JSON_VALUES, st.booleans())
def test_loads_reads_what_the_standard_decoder_reads(value, as_bytes):
    """orjson first, Python's decoder for the rest: the same values, integers past 64 bits kept ints."""
    from protocols.centrifuge import loads

    text = json.dumps(value)
    got = loads(text.encode() if as_bytes else text)
    assert got == json.loads(text) and repr(got) == repr(json.loads(text))


@pytest.mark.parametrize("text", ["123456789012345678901234567890", '{"n": -98765432109876543210}', "[18446744073709551616]",
                                  "1e400", "NaN", '"\\ud800"', '{"a": 1, "a": 2}'])
def test_loads_edge_cases_are_the_standard_decoders(text):
    from protocols.centrifuge import loads

    want = json.loads(text)
    got = loads(text)
    assert repr(got) == repr(want)


def test_dumps_refuses_what_the_standard_encoder_refuses():
    loop: list = []
    loop.append(loop)
    for bad in ({"a": object()}, {(1, 2): 3}, loop):
        with pytest.raises((TypeError, ValueError)) as ours:
            dumps(bad)
        with pytest.raises((TypeError, ValueError)) as theirs:
            json.dumps(bad)
        assert type(ours.value) is type(theirs.value) and str(ours.value) == str(theirs.value)
    assert dumps({"ok": 1}) == '{"ok": 1}'  # nothing left over from a failed call
    # The encoder is reused: a failure part-way leaves its containers marked as being encoded, which must
    # not make the same containers look circular afterwards.
    inner = {"x": [1]}
    outer = [inner, object()]
    with pytest.raises(TypeError):
        dumps(outer)
    outer.pop()
    assert dumps(outer) == '[{"x": [1]}]'


async def test_connect_info_default_info_and_second_connect():
    hub = make_hub()
    client = client_for(hub)
    body = (await call(client, "connect", params(info='{"name": "Alice"}')))["body"]
    assert body == {"client": client.client_id, "expired": False, "ttl": None}
    assert hub.sessions[client.client_id].info == {"name": "Alice"}
    # Connected already: the bare client id, whatever the params (if the schema passes).
    assert await call(client, "connect", params("bob")) == {"method": "connect", "error": None, "body": client.client_id}
    for info, shown in (("", {}), ("{broken", {}), ("null", None), ("[1]", [1])):
        other = client_for(hub)
        await call(other, "connect", params("x", info=info))
        assert hub.sessions[other.client_id].info == shown


async def test_connect_errors_and_order_of_checks():
    client = client_for(make_hub())
    assert (await call(client, "connect", {**params(), "token": "0" * 64}))["error"] == "invalid token"
    assert (await call(client, "connect", params(project="nope")))["error"] == "project not found"
    assert (await call(client, "connect", params(ts="abc")))["error"] == "invalid timestamp"
    assert (await call(client, "ping")) == {"method": "ping", "error": "unauthorized", "body": None}
    no_token = {k: v for k, v in params(ts="1700000000").items() if k != "token"}
    error = (await call(client, "connect", no_token))["error"]
    assert error.startswith("'token' is a required property\n\nFailed validating 'required' in schema:\n")
    assert error.endswith("On instance:\n    {'project': 'proj', 'timestamp': '1700000000', 'user': 'alice'}")


async def test_expired_timestamp_hands_out_no_client_id():
    clock = Clock()
    hub = make_hub(lifetime=30)
    client = client_for(hub, clock)
    reply = await call(client, "connect", params(ts=str(int(clock.now) - 31)))
    assert reply == {"method": "connect", "error": None, "body": {"client": None, "expired": True, "ttl": 30}}
    assert client.session is None and not hub.sessions
    assert (await call(client, "ping"))["error"] == "unauthorized"
    assert (await call(client, "refresh", params(ts=str(int(clock.now)))))["error"] == "unauthorized"
    assert (await call(client, "connect", params(ts=str(int(clock.now)))))["body"]["ttl"] == 30


async def test_expiry_closes_at_connect_plus_lifetime_plus_delay():
    clock = Clock()
    client = await connected(make_hub(lifetime=30), clock=clock)
    assert client.next_expiry_check() == clock.now + 30
    clock.now += 30
    assert client.expire_due() is False  # the timer fired; the check comes 10 s later
    assert client.next_expiry_check() == clock.now + 10
    clock.now += 10
    assert client.expire_due() is True


async def test_refresh_moves_expiry_to_timestamp_plus_lifetime():
    clock = Clock()
    client = await connected(make_hub(lifetime=30), clock=clock)
    start = clock.now
    clock.now += 5
    ts = int(clock.now) - 20
    assert await call(client, "refresh", params(ts=str(ts))) == {"method": "refresh", "error": None, "body": {"ttl": 30}}
    assert client.next_expiry_check() == ts + 30
    clock.now = ts + 30
    assert client.expire_due() is False
    clock.now = ts + 40
    assert client.expire_due() is True
    assert clock.now - start == 25
    assert (await call(client, "refresh", params(ts=str(int(clock.now) - 100))))["error"] == "connection expired"


async def test_a_running_check_still_closes_if_the_refresh_bought_too_little():
    """As the original: a refresh cancels the pending timer, not a check already waiting its 10 s."""
    clock = Clock()
    client = await connected(make_hub(lifetime=30), clock=clock)
    start = clock.now
    clock.now = start + 30
    client.expire_due()  # timer fired: check at +40
    clock.now = start + 32
    await call(client, "refresh", params(ts=str(int(start) + 10)))  # 10 + 30 = +40: not past the check
    clock.now = start + 40
    assert client.expire_due() is True


async def test_refresh_without_lifetime_is_always_expired():
    client = await connected(make_hub())
    assert (await call(client, "refresh", params()))["error"] == "connection expired"


async def test_batch_stops_at_request_errors_not_at_handler_errors():
    client = await connected(make_hub())
    ping, bogus = {"method": "ping", "params": {}}, {"method": "bogus", "params": {}}
    replies = await send(client, [ping, bogus, ping])
    assert replies == [{"method": "ping", "error": None, "body": "pong"},
                       {"method": "bogus", "error": "unknown method bogus", "body": None}]
    replies = await send(client, [{"method": "subscribe", "params": {"channel": "nons:x"}},
                                  {"method": "publish", "params": {"channel": "x"}}, ping])
    assert [r["error"] for r in replies] == ["namespace not found", "permission denied", None]
    replies = await send(client, [{"method": "ping", "params": {}}, 42, {"method": "ping", "params": {}}])
    assert len(replies) == 2 and replies[1]["method"] is None and replies[1]["error"].startswith("42 is not of type 'object'")
    assert await send(client, []) == []


async def test_messages_that_are_not_text_get_no_answer():
    client = await connected(make_hub())
    for message in ("", {"method": "ping", "params": {}}, 5, None):
        batch = await client.handle(message)
        assert batch.reply is None and batch.close is None


@pytest.mark.parametrize("frame", ["{not json", "42", '"text"', "null", json.dumps([{"method": "ping", "params": {}}] * 101)])
async def test_frames_that_are_not_commands_close_after_a_second(frame):
    client = await connected(make_hub())
    batch = await client.handle(frame)
    assert batch.reply is None and batch.close == "bad request" and batch.close_delay == 1.0
    assert CLOSES["bad request"].websocket == (1005, "") and CLOSES["bad request"].sockjs == (3000, "Go away!")


async def test_schema_texts():
    assert validate({"method": "publish"}, REQUEST) == (
        "'params' is a required property\n\nFailed validating 'required' in schema:\n"
        "    {'properties': {'method': {'type': 'string'},\n                    'params': {'type': 'object'}},\n"
        "     'required': ['method', 'params'],\n     'type': 'object'}\n\nOn instance:\n    {'method': 'publish'}")
    assert validate({"channel": 5}, CLIENT["subscribe"]) == (
        "5 is not of type 'string'\n\nFailed validating 'type' in schema['properties']['channel']:\n"
        "    {'type': 'string'}\n\nOn instance['channel']:\n    5")
    assert validate({"channel": "x", "info": None}, CLIENT["subscribe"]).startswith("None is not of type 'string'")
    assert validate({}, CLIENT["ping"]) is None


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)
_KEYS = st.sampled_from(["method", "params", "channel", "user", "token", "project", "timestamp", "info", "client", "sign", "reason"])


# The keywords the compiled checks handle apart (nested objects, integer, minimum, boolean, no type), in one schema.
_EVERY_KEYWORD = {"type": "object", "properties": {
    "n": {"type": "integer", "minimum": 1}, "b": {"type": "boolean"}, "any": {"minimum": 0},
    "o": {"type": "object", "properties": {"s": {"type": "string"}, "z": {"type": "null"}}, "required": ["s"]}},
    "required": ["n"]}


@given(st.dictionaries(_KEYS | st.sampled_from(["n", "b", "any", "o", "s", "z"]), _JSON, max_size=6) | _JSON,
       st.sampled_from([REQUEST, *CLIENT.values(), *API.values(), _EVERY_KEYWORD, _EVERY_KEYWORD["properties"]["o"]]))
def test_the_quick_check_agrees_with_the_error_texts(instance, schema):
    """validate() answers valid commands from `_valid` (compiled once per schema) alone: it must agree with the
    full walk on every instance."""
    assert _valid(instance, schema) == (next(_errors(instance, schema, [], []), None) is None)


async def test_subscribe_checks_in_the_original_order():
    hub = make_hub()
    client = await connected(hub)
    assert await call(client, "subscribe", {"channel": ""}) == {"method": "subscribe", "error": "channel required", "body": None}
    assert (await call(client, "subscribe", {"channel": "x" * 41}))["body"] is None
    assert (await call(client, "subscribe", {"channel": "x" * 41}))["error"] == "maximum channel length exceeded"
    assert await call(client, "subscribe", {"channel": "nons:dm#bob"}) == {
        "method": "subscribe", "error": "permission denied", "body": {"channel": "nons:dm#bob"}}
    assert await call(client, "subscribe", {"channel": "nons:x"}) == {
        "method": "subscribe", "error": "namespace not found", "body": {"channel": "nons:x"}}
    assert (await call(client, "subscribe", {"channel": "$vip"}))["error"] == "unauthorized"
    cid = client.client_id
    info = '{"room": 1}'
    ok = await call(client, "subscribe", {"channel": "$vip", "client": cid, "info": info, "sign": hmac_hex(SECRET, cid, "$vip", info)})
    assert ok == {"method": "subscribe", "error": None, "body": {"channel": "$vip"}}
    assert pushes(client)[0]["body"]["data"]["channel_info"] == {"room": 1}
    await call(client, "subscribe", {"channel": "$bare", "client": cid, "sign": hmac_hex(SECRET, cid, "$bare", "")})
    assert pushes(client)[0]["body"]["data"]["channel_info"] == {}  # no info on a private channel: {}
    anon = await connected(hub, user="")
    assert (await call(anon, "subscribe", {"channel": "quiet:x"}))["error"] == "permission denied"


async def test_subscribe_twice_announces_again():
    client = await connected(make_hub())
    await call(client, "subscribe", {"channel": "news"})
    assert [p["method"] for p in pushes(client)] == ["join"]
    await call(client, "subscribe", {"channel": "news"})
    assert [p["method"] for p in pushes(client)] == ["join"]


async def test_publish_presence_history_bodies_and_errors():
    hub = make_hub()
    a, b = await connected(hub, "alice", info='{"n": 1}'), await connected(hub, "bob")
    for c in (a, b):
        await call(c, "subscribe", {"channel": "pub:room"})
    pushes(a)
    assert await call(a, "publish", {"channel": "pub:room", "data": {"x": 1}}) == {
        "method": "publish", "error": None, "body": {"channel": "pub:room", "status": True}}
    (message,) = pushes(b)
    assert message["method"] == "message" and list(message["body"]) == ["uid", "timestamp", "info", "channel", "data"]
    assert isinstance(message["body"]["timestamp"], int)
    assert message["body"]["info"] == {"user": "alice", "client": a.client_id, "default_info": {"n": 1}, "channel_info": None}
    assert await call(a, "publish", {"channel": "other"}) == {"method": "publish", "error": "permission denied", "body": None}
    presence = (await call(a, "presence", {"channel": "pub:room"}))["body"]
    assert presence["channel"] == "pub:room" and list(presence["data"]) == [a.client_id, b.client_id]
    await call(a, "subscribe", {"channel": "quiet:q"})
    assert await call(a, "publish", {"channel": "quiet:q", "data": 1}) == {
        "method": "publish", "error": "permission denied", "body": {"channel": "quiet:q", "status": False}}
    for method in ("presence", "history"):
        assert await call(a, method, {"channel": "quiet:q"}) == {"method": method, "error": "not available", "body": {"channel": "quiet:q"}}
    await call(a, "subscribe", {"channel": "news"})
    for n in range(3):
        await call(a, "publish", {"channel": "news", "data": n})
    history = (await call(a, "history", {"channel": "news"}))["body"]
    assert [m["data"] for m in history["data"]] == [2, 1, 0]


async def test_unsubscribe_reply_and_leave():
    hub = make_hub()
    a, b = await connected(hub, "alice"), await connected(hub, "bob")
    for c in (a, b):
        await call(c, "subscribe", {"channel": "news"})
    pushes(a)
    assert await call(b, "unsubscribe", {"channel": "news"}) == {"method": "unsubscribe", "error": None, "body": {"channel": "news"}}
    assert [p["method"] for p in pushes(a)] == ["leave"]
    assert await call(b, "unsubscribe", {"channel": "nons:x"}) == {
        "method": "unsubscribe", "error": "namespace not found", "body": {"channel": "nons:x"}}


def test_one_codec_many_framings():
    """The same payload framed for each transport; each (codec, framing) pair is one shared wire format."""
    payload = CODEC.join("news", {"user": "a"})
    assert payload == b'{"method": "join", "error": null, "body": {"channel": "news", "data": {"user": "a"}}}'
    assert legacy_wire(WS_TEXT).join("news", {"user": "a"}) == b"\x81" + bytes([len(payload)]) + payload
    sockjs = legacy_wire(SOCKJS_WS).join("news", {"user": "a"})
    assert sockjs[2:] == b"a[" + json.dumps(payload.decode()).encode() + b"]"
    assert SOCKJS_XHR.pack(legacy_wire(SOCKJS_XHR).join("c", {}) * 2).startswith(b'a["{')
    assert legacy_wire(WS_TEXT) is legacy_wire(WS_TEXT)
    # The API's disconnect tells the client; server-side closes (expiry, shutdown, slow) only close.
    assert legacy_wire(WS_TEXT).disconnect("", False) == legacy_wire(WS_TEXT).frame(
        b'{"method": "disconnect", "error": null, "body": {"reason": "default"}}')
    assert legacy_wire(WS_TEXT).disconnect("shutdown", True) == b""
    assert legacy_wire(SOCKJS_WS).disconnect("shutdown", True) == b"\x81\x12" + b'c[3000,"Go away!"]'
