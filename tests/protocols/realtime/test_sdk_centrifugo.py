"""Today's Centrifugo pieces without sockets: the Protobuf codec, Fossil deltas, tags filters, the code table,
join/leave and permission rules, delta delivery, and the Centrifugo config translation."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from centrifuge.fossil import apply_delta
from centrifuge.protocol import client_pb2 as sdk_pb  # the SDK's own generated messages, as an oracle

from hub.config import ConfigError
from hub.configs import centrifugo as cfg
from hub.core import Hub, NamespaceOptions, Project
from protocols import centrifugo as C
from protocols.realtime import fossil, sdk_protobuf, tagsfilter
from protocols.realtime.sdk import JSON_WIRE, PROTOBUF_WIRE, Disconnect, ProtobufCodec
from tests.protocols.realtime.test_sdk_protocol import NOW, SECRET, Clock, Conn, decode, frames, now, tok

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")


# -- Protobuf ------------------------------------------------------------------------------------
def sdk_command(**fields: Any) -> bytes:
    body = sdk_pb.Command(**fields).SerializeToString()
    return sdk_protobuf.varint(len(body)) + body


def test_protobuf_commands_decode_as_the_json_variant_would() -> None:
    message = sdk_command(id=1, connect=sdk_pb.ConnectRequest(token="t", data=b'{"a": 1}')) + sdk_command(
        id=2, subscribe=sdk_pb.SubscribeRequest(channel="news", recover=True, offset=5, epoch="e", join_leave=True)) + sdk_command()
    first, second, pong = ProtobufCodec().decode(message)
    assert first["id"] == 1 and first["connect"]["token"] == "t" and first["connect"]["data"] == {"a": 1}
    assert first["connect"]["data" + sdk_protobuf.RAW_SUFFIX] == b'{"a": 1}'  # the exact bytes travel along
    assert second == {"id": 2, "subscribe": {"channel": "news", "recover": True, "offset": 5, "epoch": "e", "join_leave": True}}
    assert pong == {}
    assert sdk_protobuf.value_of(b"\x00\xff") == {"$base64": "AP8="} and sdk_protobuf.bytes_of({"$base64": "AP8="}) == b"\x00\xff"
    for bad in ("text", b"\x05abc", b"\xff\xff\xff\xff\xff\xff", b"\x02\xff\xff"):
        with pytest.raises(Disconnect) as exc:
            ProtobufCodec().decode(bad)
        assert exc.value.code == 3501


def test_protobuf_replies_parse_with_the_sdks_own_messages() -> None:
    codec = ProtobufCodec()
    data = codec.dumps({"id": 3, "subscribe": {"recoverable": True, "offset": 7, "epoch": "ab", "publications": [
        {"data": {"x": 1}, "offset": 7, "info": {"client": "c", "user": "u", "conn_info": {"n": 1}}, "tags": {"k": "v"}}]}})
    data += codec.dumps({"id": 4, "error": {"code": 103, "message": "permission denied"}}) + codec.dumps({})
    replies = []
    for part in sdk_protobuf.split(data):
        reply = sdk_pb.Reply()
        reply.ParseFromString(part)
        replies.append(reply)
    sub = replies[0].subscribe
    assert (sub.recoverable, sub.offset, sub.epoch) == (True, 7, "ab")
    pub = sub.publications[0]
    assert (pub.data, pub.offset, pub.info.user, pub.info.conn_info, dict(pub.tags)) == (b'{"x":1}', 7, "u", b'{"n":1}', {"k": "v"})
    assert (replies[1].error.code, replies[1].error.message) == (103, "permission denied")
    assert replies[2] == sdk_pb.Reply() and frames(PROTOBUF_WIRE.ping_frame) == [(2, b"\x00")]


# -- Fossil ---------------------------------------------------------------------------------------
def test_fossil_deltas_apply_with_the_sdks_decoder() -> None:
    rnd = random.Random(7)
    for _ in range(200):
        old = bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 300)))
        new = bytearray(old)
        for _ in range(rnd.randrange(4)):
            at = rnd.randrange(len(new) + 1)
            new[at:at + rnd.randrange(8)] = bytes(rnd.randrange(256) for _ in range(rnd.randrange(20)))
        delta = fossil.create(old, bytes(new))
        assert fossil.apply(old, delta) == bytes(new) == bytes(apply_delta(old, delta))
    text = json.dumps({"text": "a message long enough for a delta to pay off", "n": 1}).encode()
    assert len(fossil.create(text, text.replace(b"1", b"2"))) < len(text) // 2
    with pytest.raises(fossil.DeltaError):
        fossil.apply(text, b"5\n5:abcde0;")


# -- tags filters ---------------------------------------------------------------------------------
def test_tags_filters_as_centrifuge_matches_them() -> None:
    tags = {"ticker": "AAPL", "price": "120.5", "source": "NYSE"}
    cases = [
        ({"key": "ticker", "cmp": "eq", "val": "AAPL"}, True), ({"key": "ticker", "cmp": "neq", "val": "AAPL"}, False),
        ({"key": "source", "cmp": "in", "vals": ["NASDAQ", "NYSE"]}, True), ({"key": "x", "cmp": "nin", "vals": ["a"]}, True),
        ({"key": "price", "cmp": "gte", "val": "100"}, True), ({"key": "price", "cmp": "lt", "val": "100"}, False),
        ({"key": "ticker", "cmp": "gt", "val": "1"}, False), ({"key": "x", "cmp": "ex"}, False), ({"key": "x", "cmp": "nex"}, True),
        ({"key": "ticker", "cmp": "sw", "val": "AA"}, True), ({"key": "ticker", "cmp": "ct", "val": "AP"}, True),
        ({"op": "and", "nodes": [{"key": "ticker", "cmp": "eq", "val": "AAPL"}, {"op": "not", "nodes": [
            {"key": "source", "cmp": "eq", "val": "NYSE"}]}]}, False),
        ({"op": "or", "nodes": [{"key": "ticker", "cmp": "eq", "val": "X"}, {"key": "ticker", "cmp": "ew", "val": "PL"}]}, True),
    ]
    for node, expected in cases:
        tagsfilter.validate(node)
        assert tagsfilter.match(node, tags) is expected, node
    for bad in ({"key": "a", "cmp": "eq"}, {"key": "a", "cmp": "in", "vals": []}, {"op": "not", "nodes": []},
                {"op": "xor", "nodes": [{}]}, {"key": "a", "cmp": "zz", "val": "1"}, [1]):
        with pytest.raises(tagsfilter.FilterError):
            tagsfilter.validate(bad)


# -- codes ----------------------------------------------------------------------------------------
def test_one_code_table() -> None:
    assert C.ERRORS[112] == "unrecoverable position" and C.DISCONNECTS[3502] == "stale"
    assert C.disconnect_args(C.coded_reason(4001, "custom"), False) == (4001, "custom")
    assert C.disconnect_args("no pong", True) == (3012, "no pong")
    assert C.reconnects(4499) and not C.reconnects(4500) and not C.reconnects(3500)


# -- the SDK protocol on a hub with Centrifugo namespace options ------------------------------------
def make_hub(clock: Clock) -> Hub:
    chat = NamespaceOptions(presence=True, join_leave=True, publish=True, history_size=10, history_lifetime=600,
                            allow_tags_filter=True, delta_fossil=True)
    forced = NamespaceOptions(join_leave=True, force_push_join_leave=True)
    locked = NamespaceOptions(presence=True, history_size=10, history_lifetime=600, allow_subscribe_for_client=False,
                              allow_presence_for_subscriber=False, allow_history_for_subscriber=False,
                              allow_publish_for_client=True)
    return Hub([Project("proj", SECRET, NamespaceOptions(presence=False), {"chat": chat, "forced": forced, "locked": locked})], clock=clock)


def connect(hub: Hub, clock: Clock, user: str, wire: Any = JSON_WIRE) -> Conn:
    conn = Conn(hub, clock, wire)
    conn.ok("connect", {"token": tok(user, exp=int(NOW) + 600)})
    conn.pushes()
    return conn


def test_join_leave_only_to_those_that_ask_and_after_their_own_reply() -> None:
    clock = Clock()
    hub = make_hub(clock)
    alice, bob, carol = connect(hub, clock, "alice"), connect(hub, clock, "bob"), connect(hub, clock, "carol")
    batch = now(alice.client.handle(json.dumps({"id": 9, "subscribe": {"channel": "chat:r", "join_leave": True}})))
    sent = [json.loads(p) for _, p in frames(alice.client.outbox.take())]
    assert [next(iter(m)) for m in sent] == ["id", "push"] and batch.close is None  # reply, then its own join
    assert sent[1]["push"]["join"]["info"]["user"] == "alice"
    bob.ok("subscribe", {"channel": "chat:r"})  # did not ask: no join/leave for bob
    assert [p["push"]["join"]["info"]["user"] for p in alice.pushes()] == ["bob"] and bob.pushes() == []
    carol.ok("subscribe", {"channel": "forced:r"})
    assert [p["push"]["join"]["info"]["user"] for p in carol.pushes()] == ["carol"]  # force_push_join_leave
    bob.ok("unsubscribe", {"channel": "chat:r"})
    assert [p["push"]["leave"]["info"]["user"] for p in alice.pushes()] == ["bob"]


def test_namespace_permissions() -> None:
    clock = Clock()
    hub = make_hub(clock)
    conn = connect(hub, clock, "alice")
    assert conn.error("subscribe", {"channel": "locked:x"}) == (103, "permission denied")  # no allow_subscribe_for_client
    assert conn.ok("publish", {"channel": "locked:x", "data": 1}) == {}  # allow_publish_for_client: not subscribed
    assert conn.error("publish", {"channel": "news", "data": 1}) == (103, "permission denied")
    token = tok("alice", channel="locked:x")
    assert conn.ok("subscribe", {"channel": "locked:x", "token": token})["recoverable"] is True
    assert conn.error("presence", {"channel": "locked:x"}) == (103, "permission denied")
    assert conn.error("history", {"channel": "locked:x"}) == (103, "permission denied")
    assert conn.error("presence", {"channel": "news"}) == (108, "not available")  # presence off: checked first
    assert conn.error("subscribe", {"channel": "chat:t", "tf": {"key": "a", "cmp": "zz"}}) == (107, "bad request")
    assert conn.error("subscribe", {"channel": "news", "tf": {"key": "a", "cmp": "ex"}}) == (107, "bad request")
    assert conn.error("history", {"channel": "chat:t"})[0] == 103  # not subscribed


def test_delta_subscribers_get_whole_then_deltas_encoded_once() -> None:
    clock = Clock()
    hub = make_hub(clock)
    json_sub, pb_sub, plain = connect(hub, clock, "a"), connect(hub, clock, "b", PROTOBUF_WIRE), connect(hub, clock, "c")
    assert json_sub.ok("subscribe", {"channel": "chat:d", "delta": "fossil"})["delta"] is True
    pb_sub.ok("subscribe", {"channel": "chat:d", "delta": "fossil"})
    plain.ok("subscribe", {"channel": "chat:d"})
    base = {"text": "a message that is long enough for a fossil delta to be worth it", "n": 0}
    for n in range(3):
        now(hub.publish("proj", "chat:d", {**base, "n": n}))
    pubs = [p["push"]["pub"] for p in json_sub.pushes()]
    assert "delta" not in pubs[0] and pubs[1]["delta"] is True and pubs[2]["delta"] is True
    text = pubs[0]["data"].encode()
    assert json.loads(text) == base  # JSON delta subscribers get the payload as a string
    for pub, n in zip(pubs[1:], (1, 2), strict=True):
        text = bytes(apply_delta(text, pub["data"].encode()))
        assert json.loads(text) == {**base, "n": n}
    assert [p["push"]["pub"]["data"]["n"] for p in plain.pushes()] == [0, 1, 2]
    raw = pb_sub.client.outbox.take()
    replies = []
    for _, payload in frames(raw):
        for part in sdk_protobuf.split(payload):
            reply = sdk_pb.Reply()
            reply.ParseFromString(part)
            replies.append(reply.push.pub)
    data = replies[0].data
    for pub, n in zip(replies[1:], (1, 2), strict=True):
        assert pub.delta
        data = bytes(apply_delta(data, pub.data))
        assert json.loads(data)["n"] == n
    assert decode(JSON_WIRE, JSON_WIRE.publication_delta(now(hub.history("proj", "chat:d")).publications[0], None))


# -- config ---------------------------------------------------------------------------------------
def test_centrifugo_config_translation() -> None:
    data = {
        "client": {"token": {"hmac_secret_key": "k", "audience": "x"}, "ping_interval": "10s", "pong_timeout": "4s",
                   "subscribe_to_user_personal_channel": {"enabled": True, "personal_channel_namespace": "personal"}},
        "http_server": {"port": 9000, "address": "0.0.0.0"},
        "http_api": {"key": "api"},
        "channel": {"namespaces": [{"name": "personal", "allowed_delta_types": ["fossil"], "history_ttl": "1h30m",
                                    "history_size": 5}]},
        "proxy": {"connect": {}},
    }
    assert cfg.matches(data) and not cfg.matches({"project_name": "x", "secret": "s"})
    out, warnings = cfg.translate(data, "c.json")
    assert out["realtime"]["port"] == out["command_api"]["port"] == 9000 and out["realtime"]["host"] == "0.0.0.0"
    assert (out["realtime"]["ping_interval"], out["realtime"]["pong_timeout"]) == (10, 4)
    assert out["realtime"]["personal_channel"] is True and out["realtime"]["personal_channel_namespace"] == "personal"
    ns = out["projects"]["centrifugo"]["namespaces"]["personal"]
    assert (ns["history_lifetime"], ns["history_size"], ns["delta_fossil"]) == (5400.0, 5, True)
    assert out["projects"]["centrifugo"]["api_keys"] == ["api"]
    assert out["realtime"]["token_audience"] == "x"
    assert [w.split(": ")[1] for w in warnings] == ["proxy"]
    for broken, key in (({"channel": {"namespaces": [{"name": "a:b"}]}}, "channel.namespaces[0].name"),
                        ({"client": {"ping_interval": "ten"}}, "client.ping_interval"),
                        ({"channel": {"namespaces": [{"name": "a", "allowed_delta_types": ["zstd"]}]}},
                         "channel.namespaces[0].allowed_delta_types"),
                        ({"channel": {"namespaces": {"a": {}}}}, "channel.namespaces")):
        with pytest.raises(ConfigError) as exc:
            cfg.translate(broken, "c.json")
        assert exc.value.key == key


def test_limits_and_channel_names() -> None:
    clock = Clock()
    hub = make_hub(clock)
    conn = Conn(hub, clock, channel_limit=2, user_connection_limit=1)
    conn.ok("connect", {"token": tok("alice", exp=int(NOW) + 600)})
    conn.ok("subscribe", {"channel": "chat:a"})
    conn.ok("subscribe", {"channel": "chat:b"})
    assert conn.error("subscribe", {"channel": "chat:c"}) == (106, "limit exceeded")
    assert conn.error("publish", {"channel": "chat:é", "data": 1}) == (107, "bad request")
    second = Conn(hub, clock, user_connection_limit=1)
    with pytest.raises(Disconnect) as exc:
        second.call("connect", {"token": tok("alice", exp=int(NOW) + 600)})
    assert (exc.value.code, exc.value.reason) == (3504, "connection limit")
    third = Conn(hub, clock, channel_limit=1)
    with pytest.raises(Disconnect) as exc:
        third.call("connect", {"token": tok("bob", channels=["chat:a", "chat:b"])})
    assert exc.value.code == 3505
    personal = Conn(hub, clock, personal_namespace="chat")
    assert list(personal.ok("connect", {"token": tok("carol")})["subs"]) == ["chat:#carol"]


def test_audience_issuer_and_user_claim() -> None:
    from protocols.realtime.tokens import PublicKeys, TokenInvalid, check_connect_token

    keys = PublicKeys(audience="app", issuer="auth", user_id_claim="uid")
    projects = {"proj": SECRET}

    def check(**claims: Any) -> Any:
        return check_connect_token(tok("ignored", **claims), projects, "proj", projects.__getitem__, NOW, keys)

    assert check(aud="app", iss="auth", uid="u1").user == "u1"
    assert check(aud=["other", "app"], iss="auth", uid="u2").user == "u2"
    for bad in ({"aud": "nope", "iss": "auth"}, {"aud": "app", "iss": "x"}, {"iss": "auth"}):
        with pytest.raises(TokenInvalid):
            check(**bad)


def test_centrifugo_engine_translation() -> None:
    import hub.config as hub_config

    out, warnings = cfg.translate({"engine": {"type": "redis", "redis": {"address": "localhost:6380", "prefix": "c"}}}, "c.json")
    if hasattr(hub_config, "EngineSettings"):  # the hub has its Redis engine
        assert out["engine"] == {"type": "redis", "url": "redis://localhost:6380", "prefix": "c"} and not warnings
    else:
        assert "engine" not in out and warnings == ["c.json: engine.type: engine 'redis' is not available in this hub; "
                                                    "the memory engine is used"]
    out, warnings = cfg.translate({"engine": {"type": "memory"}, "channel": {"history_meta_ttl": "24h"}}, "c.json")
    if hasattr(hub_config, "EngineSettings"):
        assert out["engine"]["history_meta_ttl"] == 86400.0
    else:
        assert warnings and "history_meta_ttl" in warnings[0]
