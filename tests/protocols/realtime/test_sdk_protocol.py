"""The current Centrifugo protocol without sockets: SdkClient, wire formats and tokens against an in-memory Hub."""

from __future__ import annotations

import json
import struct
from typing import Any

import jwt
import msgpack
import pytest

from hub.core import Hub, NamespaceOptions, Project
from hub.core.outbox import Outbox
from protocols.realtime import sdk_protobuf
from protocols.realtime.legacy import WIRE as LEGACY_WIRE
from protocols.realtime.proto import centrifugo_client_pb2 as pb
from protocols.realtime.sdk import (
    JSON_WIRE,
    MSGPACK_WIRE,
    Disconnect,
    JsonCodec,
    MsgpackCodec,
    ProtobufCodec,
    SdkClient,
    SdkWire,
    disconnect_args,
    speaks_sdk,
)
from protocols.realtime.tokens import (
    TokenExpired,
    TokenInvalid,
    check_connect_token,
    make_token,
    token_project,
)

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")

NOW = 1_700_000_000.0
SECRET, OTHER_SECRET = "secret", "another-secret"


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def now(coro: Any) -> Any:
    """Run a core or protocol coroutine to completion without an event loop: with the memory engine it never suspends."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    raise AssertionError("suspended: the memory engine must never wait")


def make_hub(clock: Clock) -> Hub:
    options = NamespaceOptions(presence=True, join_leave=True, history_size=5, history_lifetime=600)
    namespaces = {"pub": NamespaceOptions(publish=True, history_size=5, history_lifetime=600),
                  "nohist": NamespaceOptions(presence=False, join_leave=False)}
    return Hub([Project("proj", SECRET, options, namespaces), Project("other", OTHER_SECRET, options)], clock=clock)


def tok(user: str = "alice", secret: str = SECRET, **claims: Any) -> str:
    return make_token(secret, {"sub": user, **claims})


def frames(data: bytes) -> list[tuple[int, bytes]]:
    """Split concatenated server websocket frames into (opcode, payload)."""
    out = []
    while data:
        opcode, n = data[0] & 0x0F, data[1] & 0x7F
        at = 2
        if n == 126:
            n, at = struct.unpack("!H", data[2:4])[0], 4
        elif n == 127:
            n, at = struct.unpack("!Q", data[2:10])[0], 10
        out.append((opcode, data[at:at + n]))
        data = data[at + n:]
    return out


def decode(wire: SdkWire, data: bytes) -> list[Any]:
    out = []
    for _, payload in frames(data):
        if isinstance(wire.codec, ProtobufCodec):  # replies, as the generated Reply message reads them
            for part in sdk_protobuf.split(payload):
                reply = pb.Reply()
                reply.ParseFromString(part)
                out.append(_strip_raw(sdk_protobuf.to_dict(reply)))
            continue
        out.extend(wire.codec.decode(payload if isinstance(wire.codec, MsgpackCodec) else payload.decode()))
    return out


def _strip_raw(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_raw(v) for k, v in value.items() if not k.endswith(sdk_protobuf.RAW_SUFFIX)}
    if isinstance(value, list):
        return [_strip_raw(v) for v in value]
    return value


class Conn:
    """An SdkClient with helpers to send commands and read back its replies and pushes (from its outbox)."""

    def __init__(self, hub: Hub, clock: Clock, wire: SdkWire = JSON_WIRE, **kw: Any) -> None:
        self.wire = wire
        self.client = SdkClient(hub, Outbox(1 << 20), wire, default_project="proj", clock=clock, **kw)
        self.next_id = 0
        self.buffer: list[dict[str, Any]] = []

    def send(self, *commands: dict[str, Any]) -> list[dict[str, Any]]:
        codec = self.wire.codec
        if isinstance(codec, ProtobufCodec):
            message: str | bytes = b"".join(
                sdk_protobuf.varint(len(b)) + b for b in (sdk_protobuf.fill(pb.Command(), c).SerializeToString() for c in commands))
        elif isinstance(codec, MsgpackCodec):
            message = b"".join(codec.dumps(c) for c in commands)
        else:
            message = "\n".join(json.dumps(c) for c in commands)
        batch = now(self.client.handle(message))
        queued = decode(self.wire, self.client.outbox.take())
        self.buffer.extend(obj for obj in queued if "id" not in obj)
        if batch.close is not None:
            raise Disconnect(*batch.close)
        return [obj for obj in queued if "id" in obj]

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self.next_id += 1
        (reply,) = self.send({"id": self.next_id, method: params or {}})
        assert reply["id"] == self.next_id
        return reply

    def ok(self, method: str, params: dict[str, Any] | None = None) -> Any:
        reply = self.call(method, params)
        assert "error" not in reply, reply
        return reply[method]

    def error(self, method: str, params: dict[str, Any] | None = None) -> tuple[int, str]:
        reply = self.call(method, params)
        return reply["error"]["code"], reply["error"]["message"]

    def pushes(self) -> list[dict[str, Any]]:
        out = self.buffer + decode(self.wire, self.client.outbox.take())
        self.buffer = []
        return out


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def hub(clock: Clock) -> Hub:
    return make_hub(clock)


def connected(hub: Hub, clock: Clock, user: str = "alice", wire: SdkWire = JSON_WIRE, **claims: Any) -> Conn:
    conn = Conn(hub, clock, wire)
    conn.ok("connect", {"token": tok(user, **claims)})
    conn.pushes()
    return conn


@pytest.mark.parametrize("line", ['{"id": 1, "connect": {}}', '{"id": 2, "publish": {"data": {"n": 123456789012345678901234567890}}}',
                                  '{"id": 3, "publish": {"data": {"x": 1e400}}}', '{"id": 4, "rpc": {"data": "\\ud800"}}',
                                  '{"id": 5, "publish": {"data": [0.1, -0.0, 1e-400, "é", {"a": 1, "a": 2}]}}'])
def test_json_commands_decode_as_pythons_decoder_reads_them(line):
    """orjson first, Python's decoder (without NaN or Infinity) where it refuses: the same values either way."""
    assert repr(JsonCodec().decode(line + "\n" + line)) == repr([json.loads(line)] * 2)


@pytest.mark.parametrize("bad", ['{"id": 1, "publish": {"data": NaN}}', '{"x": Infinity}', '[1, 2', '{"a": 1} x'])
def test_json_commands_without_nan_or_bad_json(bad):
    with pytest.raises(Disconnect):
        JsonCodec().decode(bad)


# -- tokens -------------------------------------------------------------------------------------
def test_token_names_its_project_by_claim_then_aud_then_default():
    projects = {"proj": 1, "other": 2}
    assert token_project({"project": "other", "aud": "proj"}, projects, "proj") == "other"
    assert token_project({"aud": "other"}, projects, "proj") == "other"
    assert token_project({"aud": ["other"]}, projects, "proj") == "other"
    assert token_project({"aud": "some-api"}, projects, "proj") == "proj"
    assert token_project({}, projects, "proj") == "proj"
    with pytest.raises(TokenInvalid):
        token_project({"project": "missing"}, projects, "proj")


def test_connect_token_checks():
    projects = {"proj": SECRET, "other": OTHER_SECRET}
    check = lambda t, now=NOW: check_connect_token(t, projects, "proj", projects.__getitem__, now)  # noqa: E731
    claims = check(tok("alice", info={"a": 1}, channels=["news"], exp=NOW + 60))
    assert (claims.project, claims.user, claims.info, claims.channels, claims.expires_at) == ("proj", "alice", {"a": 1}, ["news"], NOW + 60)
    assert check(tok("bob", OTHER_SECRET, project="other")).project == "other"
    assert check(tok("bob", OTHER_SECRET, aud="other")).project == "other"
    assert check(tok("", expire_at=0, exp=NOW + 5)).expires_at is None  # expire_at 0: never
    for bad in (tok("alice", OTHER_SECRET), tok("alice", SECRET, project="other"), "not.a.jwt", "", None, 42,
                jwt.encode({"sub": "alice"}, None, algorithm="none"), tok(channels="news"), tok(nbf=NOW + 100)):
        with pytest.raises(TokenInvalid):
            check(bad)
    with pytest.raises(TokenInvalid):
        check_connect_token(tok(**{"sub": 5}), projects, "proj", projects.__getitem__, NOW)
    with pytest.raises(TokenExpired):
        check(tok(exp=NOW - 1))


def test_hmac_tokens_are_judged_as_pyjwts_own_decode_judges_them():
    """Tokens are read once and HMAC ones verified on that reading: the verdict (claims, or refused) is what
    jwt.decode gives with the same key and options, over valid, tampered, re-padded, wrongly keyed and odd tokens."""
    import base64
    import hmac
    import random

    from protocols.realtime.tokens import NO_KEYS, _unverified, _verify

    def oracle(token: object, secret: str) -> Any:
        try:
            alg = jwt.get_unverified_header(token)["alg"]
            if alg not in ("HS256", "HS384", "HS512"):
                return None
            return jwt.decode(token, secret, algorithms=[alg], options={
                "verify_exp": False, "verify_aud": False, "verify_iat": False, "verify_nbf": False})
        except (jwt.PyJWTError, KeyError, TypeError):
            return None

    def ours(token: object, secret: str) -> Any:
        try:
            return _verify(_unverified(token), secret, NOW, NO_KEYS)
        except TokenInvalid:
            return None

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    rng = random.Random(11)
    claims_pool = [{"sub": "alice"}, {"sub": 5}, {"jti": 1, "sub": "a"}, {"jti": "x"}, {"info": {"a": [1, 2]}},
                   {"sub": "b", "channels": ["x"]}, {}]
    seen = {True: 0, False: 0}
    for _ in range(600):
        alg = rng.choice(["HS256", "HS384", "HS512"])
        secret = rng.choice([SECRET, OTHER_SECRET])
        token = jwt.encode(dict(rng.choice(claims_pool)), secret, algorithm=alg,
                           headers=rng.choice([None, {"kid": "k"}, {"typ": "x"}]))
        head, body, sig = token.split(".")
        mutation = rng.randrange(9)
        if mutation == 1:
            sig = sig[:-1] + ("A" if sig[-1] != "A" else "B")
        elif mutation == 2:
            body = b64(json.dumps({"sub": "mallory"}).encode())
        elif mutation == 3:
            sig += "=" * rng.randrange(1, 4)
        elif mutation == 4:
            head = b64(json.dumps({"alg": rng.choice(["none", "RS256", "", "HS256"]), "typ": "JWT"}).encode())
        elif mutation == 5:
            body = rng.choice(["", "!!!!", b64(b"[1]"), b64(b"not json"), body + "A"])
        elif mutation == 6:
            secret = "another secret that is not the signing one"
        elif mutation == 8:  # odd headers, signed as they are (PyJWT refuses them before the signature)
            odd = rng.choice([{"kid": 3}, {"crit": ["exp"]}, {"crit": []}, {"b64": False, "crit": ["b64"]}, {"alg": None}])
            head = b64(json.dumps({"alg": alg, **odd}).encode())
            hashed = {"HS256": "sha256", "HS384": "sha384", "HS512": "sha512"}[alg]
            sig = b64(hmac.digest(secret.encode(), f"{head}.{body}".encode(), hashed))
        token = rng.choice([f"{head}.{body}.{sig}", f"{head}.{body}", f"{head}.{body}.{sig}.x"]) if mutation == 7 \
            else f"{head}.{body}.{sig}"
        want = oracle(token, secret)
        assert ours(token, secret) == want, (token, secret)
        seen[want is not None] += 1
    assert seen[True] > 40 and seen[False] > 300


# -- connect ------------------------------------------------------------------------------------
def test_connect_reply_and_session(hub, clock):
    conn = Conn(hub, clock, ping_interval=25, expired_close_delay=5)
    result = conn.ok("connect", {"token": tok("alice", info={"name": "A"}, exp=NOW + 100), "name": "js"})
    assert result == {"client": result["client"], "version": result["version"], "expires": True, "ttl": 100,
                      "ping": 25, "pong": True}
    session = hub.sessions[result["client"]]
    assert (session.user, session.info, session.protocol, session.expires_at) == ("alice", {"name": "A"}, "centrifugo", NOW + 105)
    # a refresh with a new token moves the expiry; another user's token is a terminal disconnect
    assert conn.ok("refresh", {"token": tok("alice", exp=NOW + 300)}) == {
        "client": session.id, "version": result["version"], "expires": True, "ttl": 300}
    assert session.expires_at == NOW + 305
    assert conn.error("refresh", {"token": tok("alice", exp=NOW - 1)}) == (109, "token expired")
    with pytest.raises(Disconnect) as exc:
        conn.call("refresh", {"token": tok("mallory")})
    assert (exc.value.code, exc.value.reason) == (3500, "invalid token")


def test_connect_errors(hub, clock):
    conn = Conn(hub, clock)
    assert conn.error("connect", {"token": tok(exp=NOW - 1)}) == (109, "token expired")
    assert conn.error("connect", {}) == (101, "unauthorized")
    with pytest.raises(Disconnect) as exc:
        conn.call("connect", {"token": tok(secret="wrong")})
    assert exc.value.code == 3500
    with pytest.raises(Disconnect) as exc:  # anything before connect
        Conn(hub, clock).call("subscribe", {"channel": "news"})
    assert exc.value.code == 3501
    anonymous = Conn(hub, clock, allow_anonymous=True)
    assert hub.sessions[anonymous.ok("connect", {})["client"]].user == ""
    with pytest.raises(Disconnect):  # connect twice
        anonymous.call("connect", {})
    assert hub.sessions and conn.client.session is None


def test_bad_frames_close_with_bad_request(hub, clock):
    conn = connected(hub, clock)
    for message in ("not json", "[1, 2]", '{"subscribe": {"channel": "x"}}', '{"id": "x", "presence": {}}',
                    '{"id": -1, "presence": {}}', "\n".join(['{"id": 1}'] * 1001)):
        batch = now(conn.client.handle(message))
        conn.client.outbox.take()
        assert batch.close is not None and batch.close[0] == 3501, message
    assert conn.error("frobnicate") == (104, "method not found")
    with pytest.raises(Disconnect) as exc:  # Centrifugo: subscribe without a channel is a protocol error
        conn.call("subscribe", None)
    assert exc.value.code == 3501
    conn = connected(hub, clock)
    reply = conn.send({"id": 7, "subscribe": "news"})
    assert reply == [{"id": 7, "error": {"code": 107, "message": "bad request"}}]
    assert conn.send({}) == [] and conn.send({"send": {"data": 1}}) == []  # pong; async message (no reply)


def test_replies_and_the_pushes_they_cause_keep_their_order(hub, clock):
    conn = Conn(hub, clock)
    batch = now(conn.client.handle("\n".join(json.dumps(c) for c in [
        {"id": 1, "connect": {"token": tok()}},
        {"id": 2, "subscribe": {"channel": "pub:room", "join_leave": True}},
        {"id": 3, "presence_stats": {"channel": "pub:room"}},
        {"id": 4, "publish": {"channel": "pub:room", "data": 1}},
        {"id": 5, "history": {"channel": "pub:room", "limit": 1}},
        {"id": 6, "publish": {"channel": "pub:room", "data": 2}},
    ])))
    assert [r["id"] for r in batch.replies] == [1, 2, 3, 4, 5, 6] and batch.close is None
    sent = frames(conn.client.outbox.take())
    messages = [[next(k for k in ("id", "push") if k in json.loads(line)) for line in payload.decode().split("\n")]
                for _, payload in sent]
    # connect reply; subscribe + presence_stats replies share a frame, then the own join (after its reply, as in
    # Centrifugo); the publications; the other replies
    assert messages == [["id"], ["id", "id"], ["push"], ["push"], ["push"], ["id", "id", "id"]]


# -- subscriptions ------------------------------------------------------------------------------
def test_subscribe_errors(hub, clock):
    conn = connected(hub, clock)
    assert conn.error("subscribe", {"channel": "missing:x"}) == (102, "unknown channel")
    assert conn.error("subscribe", {"channel": "$private"}) == (103, "permission denied")
    assert conn.error("subscribe", {"channel": "room#bob"}) == (103, "permission denied")
    assert conn.error("subscribe", {"channel": "x" * 300}) == (106, "limit exceeded")
    conn.ok("subscribe", {"channel": "news"})
    assert conn.error("subscribe", {"channel": "news"}) == (105, "already subscribed")
    for method in ("presence", "presence_stats", "history", "publish"):
        assert conn.error(method, {"channel": "other", "data": 1}) == (103, "permission denied")
    conn.ok("subscribe", {"channel": "nohist:x"})
    assert conn.error("presence", {"channel": "nohist:x"}) == (108, "not available")
    assert conn.error("history", {"channel": "nohist:x"}) == (108, "not available")
    assert conn.ok("subscribe", {"channel": "nohist:y"}) == {}  # no history: no position


def test_subscription_token(hub, clock):
    conn = connected(hub, clock)
    client_id = conn.client.session.id

    def sub_token(channel: str = "$room", **claims: Any) -> str:
        return make_token(SECRET, {"sub": "alice", "channel": channel, **claims})

    # a valid token for another channel, user or client closes the connection (3500), as in Centrifugo
    for bad in (sub_token("$other"), make_token(SECRET, {"sub": "bob", "channel": "$room"}), sub_token(client="someone-else")):
        other = connected(hub, clock)
        with pytest.raises(Disconnect) as exc:
            other.call("subscribe", {"channel": "$room", "token": bad})
        assert exc.value.code == 3500
    assert conn.error("subscribe", {"channel": "$room", "token": make_token("wrong", {"sub": "alice", "channel": "$room"})}) == (
        103, "permission denied")
    assert conn.error("subscribe", {"channel": "$room", "token": sub_token(exp=NOW - 1)}) == (109, "token expired")
    result = conn.ok("subscribe", {"channel": "$room", "token": sub_token(client=client_id, info={"r": 1}, exp=NOW + 30)})
    assert result["expires"] is True and result["ttl"] == 30
    assert conn.client.session.channels["$room"] == {"r": 1}
    conn.pushes()
    assert conn.ok("sub_refresh", {"channel": "$room", "token": sub_token(exp=NOW + 90)}) == {"expires": True, "ttl": 90}
    clock.now = NOW + 60
    conn.client.expire()
    assert "$room" in conn.client.session.channels and conn.pushes() == []
    clock.now = NOW + 90
    assert conn.client.next_expiry() == NOW + 90
    conn.client.expire()
    assert "$room" not in conn.client.session.channels
    assert conn.pushes() == [{"push": {"channel": "$room", "unsubscribe": {"code": 2501, "reason": "subscription expired"}}}]


def test_publish_push_presence_and_join_leave(hub, clock):
    alice, bob = connected(hub, clock, "alice", info={"n": "A"}), connected(hub, clock, "bob", wire=MSGPACK_WIRE)
    sub = alice.ok("subscribe", {"channel": "pub:room", "join_leave": True})
    assert sub == {"recoverable": True, "positioned": True, "offset": 0, "epoch": sub["epoch"]}
    bob.ok("subscribe", {"channel": "pub:room"})  # bob did not ask for join/leave: he gets none
    assert alice.pushes() == [
        {"push": {"channel": "pub:room", "join": {"info": {"client": alice.client.session.id, "user": "alice", "conn_info": {"n": "A"}}}}},
        {"push": {"channel": "pub:room", "join": {"info": {"client": bob.client.session.id, "user": "bob"}}}},
    ]
    bob.pushes()
    assert bob.ok("publish", {"channel": "pub:room", "data": {"text": "hi"}}) == {}
    expected = {"push": {"channel": "pub:room", "pub": {"data": {"text": "hi"}, "offset": 1,
                                                         "info": {"client": bob.client.session.id, "user": "bob"}}}}
    assert alice.pushes() == [expected] and bob.pushes() == [expected]
    assert bob.error("publish", {"channel": "pub:room"}) == (107, "bad request")
    presence = alice.ok("presence", {"channel": "pub:room"})["presence"]
    assert presence[alice.client.session.id] == {"client": alice.client.session.id, "user": "alice", "conn_info": {"n": "A"}}
    assert alice.ok("presence_stats", {"channel": "pub:room"}) == {"num_clients": 2, "num_users": 2}
    assert bob.ok("unsubscribe", {"channel": "pub:room"}) == {}
    assert bob.ok("unsubscribe", {"channel": "pub:room"}) == {}
    assert alice.pushes() == [{"push": {"channel": "pub:room", "leave": {"info": {"client": bob.client.session.id, "user": "bob"}}}}]


def test_history_limit_reverse_since(hub, clock):
    conn = connected(hub, clock)
    epoch = conn.ok("subscribe", {"channel": "news"})["epoch"]
    for i in range(1, 8):  # history keeps 5: offsets 3..7
        now(hub.publish("proj", "news", {"n": i}))

    def offsets(**params: Any) -> list[int]:
        result = conn.ok("history", {"channel": "news", **params})
        assert (result["offset"], result["epoch"]) == (7, epoch)
        return [p["offset"] for p in result.get("publications", [])]

    assert offsets() == [] and offsets(limit=0) == []
    assert offsets(limit=-1) == [3, 4, 5, 6, 7]
    assert offsets(limit=2) == [3, 4]
    assert offsets(limit=2, reverse=True) == [7, 6]
    assert offsets(limit=10, since={"offset": 4, "epoch": epoch}) == [5, 6, 7]
    assert offsets(limit=10, since={"offset": 6, "epoch": epoch}, reverse=True) == [5, 4, 3]
    assert conn.error("history", {"channel": "news", "limit": 1, "since": {"offset": 4, "epoch": "old"}}) == (112, "unrecoverable position")
    assert conn.error("history", {"channel": "news", "limit": "many"}) == (107, "bad request")


def test_recovery_rules(hub, clock):
    conn = connected(hub, clock)
    epoch = conn.ok("subscribe", {"channel": "news"})["epoch"]
    for i in range(1, 5):
        now(hub.publish("proj", "news", {"n": i}))
    conn.ok("unsubscribe", {"channel": "news"})

    def resubscribe(**params: Any) -> dict[str, Any]:
        result = conn.ok("subscribe", {"channel": "news", "recover": True, **params})
        conn.ok("unsubscribe", {"channel": "news"})
        return result

    result = resubscribe(offset=2, epoch=epoch)
    assert result["recovered"] is True and result["was_recovering"] is True and result["offset"] == 4
    assert [p["data"]["n"] for p in result["publications"]] == [3, 4]
    assert resubscribe(offset=4, epoch=epoch).get("publications") is None  # nothing missed: recovered, empty
    assert resubscribe(offset=4, epoch=epoch)["recovered"] is True
    for bad in ({"offset": 2, "epoch": "other"}, {"offset": 9, "epoch": epoch}, {"offset": "x", "epoch": epoch}):
        result = resubscribe(**bad)
        assert result["was_recovering"] and "recovered" not in result and "publications" not in result
    for i in range(5, 12):  # history keeps 5 (7..11): offset 2 is too old
        now(hub.publish("proj", "news", {"n": i}))
    assert "recovered" not in resubscribe(offset=2, epoch=epoch)
    assert resubscribe(offset=6, epoch=epoch)["recovered"] is True
    # flag 2: an unrecoverable position is an error (and no subscription)
    unrecoverable = {"channel": "news", "recover": True, "offset": 2, "epoch": epoch, "flag": 3}
    assert conn.error("subscribe", unrecoverable) == (112, "unrecoverable position")
    assert "news" not in conn.client.session.channels


def test_server_side_subscriptions_recover_on_connect(hub, clock):
    conn = connected(hub, clock, channels=["news"])
    assert "news" in conn.client.session.channels
    epoch = now(hub.stream_position("proj", "news"))[1]
    now(hub.publish("proj", "news", {"n": 1}))
    now(hub.publish("proj", "news", {"n": 2}))
    again = Conn(hub, clock)
    recover = {"news": {"recover": True, "offset": 1, "epoch": epoch}}
    result = again.ok("connect", {"token": tok(channels=["news", "missing:x"]), "subs": recover})
    assert list(result["subs"]) == ["news"]  # a channel the hub refuses is left out
    assert result["subs"]["news"]["recovered"] is True
    assert [p["data"] for p in result["subs"]["news"]["publications"]] == [{"n": 2}]


def test_rpc(hub, clock):
    calls = []

    def echo(text: str) -> dict[str, str]:
        calls.append(text)
        return {"echo": text}

    def broken() -> None:
        raise RuntimeError("boom")

    conn = Conn(hub, clock, rpc={"demo.echo": echo, "demo.broken": broken, "demo.bad": lambda: {1, 2}}.get)
    conn.ok("connect", {"token": tok()})
    assert conn.ok("rpc", {"method": "demo.echo", "data": {"text": "hi"}}) == {"data": {"echo": "hi"}}
    assert conn.error("rpc", {"method": "demo.echo", "data": [1]})[0] == 107
    assert conn.error("rpc", {"method": "demo.echo", "data": {"nope": 1}})[0] == 107
    assert conn.error("rpc", {"method": "demo.missing"}) == (104, "method not found")
    assert conn.error("rpc", {"method": "demo.broken"}) == (100, "internal server error")
    assert conn.error("rpc", {"method": "demo.bad"}) == (100, "internal server error")  # result not JSON
    assert calls == ["hi"]


# -- wire formats -------------------------------------------------------------------------------
def test_each_format_encodes_a_publication_once_for_all_its_subscribers(hub, clock):
    counts = {"json": 0, "msgpack": 0, "protobuf": 0}

    class Counting(SdkWire):
        def publication(self, pub: Any) -> bytes:
            counts[self.codec.name] += 1
            return super().publication(pub)

    json_wire, msgpack_wire, pb_wire = Counting(JsonCodec()), Counting(MsgpackCodec()), Counting(ProtobufCodec())
    conns = [connected(hub, clock, f"u{i}", wire=(msgpack_wire, json_wire, pb_wire)[i % 3]) for i in range(12)]
    for conn in conns:
        conn.ok("subscribe", {"channel": "nohist:fan"})
        conn.pushes()
    legacy = hub.connect("proj", "old", "centrifuge-legacy", LEGACY_WIRE)
    now(hub.subscribe(legacy, "nohist:fan"))
    now(hub.publish("proj", "nohist:fan", {"n": 1}))
    assert counts == {"json": 1, "msgpack": 1, "protobuf": 1}
    json_frames = {conn.client.outbox.take() for conn in conns if conn.wire is json_wire}
    msgpack_frames = {conn.client.outbox.take() for conn in conns if conn.wire is msgpack_wire}
    pb_frames = {conn.client.outbox.take() for conn in conns if conn.wire is pb_wire}
    assert len(json_frames) == 1 and len(msgpack_frames) == 1 and len(pb_frames) == 1
    assert decode(pb_wire, pb_frames.pop()) == [{"push": {"channel": "nohist:fan", "pub": {"data": {"n": 1}}}}]
    (payload,) = [p for _, p in frames(msgpack_frames.pop())]
    assert msgpack.unpackb(payload) == {"push": {"channel": "nohist:fan", "pub": {"data": {"n": 1}}}}
    assert frames(json_frames.pop())[0][0] == 1 and frames(MSGPACK_WIRE.ping_frame) == [(2, b"\x80")]
    assert frames(JSON_WIRE.ping_frame) == [(1, b"{}")]


def test_msgpack_publications_must_be_json_compatible(hub, clock):
    conn = connected(hub, clock, wire=MSGPACK_WIRE)
    conn.ok("subscribe", {"channel": "pub:x"})
    for bad in (b"raw bytes", {"n": float("nan")}, [1, {"k": b"v"}]):
        assert conn.error("publish", {"channel": "pub:x", "data": bad})[0] == 107
    assert conn.ok("publish", {"channel": "pub:x", "data": {"n": 1.5, "list": [1, "a", None, True]}}) == {}
    json_conn = connected(hub, clock)
    assert now(json_conn.client.handle('{"id": 1, "connect": {"data": NaN}}')).close == (3501, "bad request")


def test_msgpack_codec():
    codec = MsgpackCodec()
    data = codec.dumps({"id": 1, "connect": {}}) + codec.dumps({})
    assert codec.decode(data) == [{"id": 1, "connect": {}}, {}]
    for bad in ("text", b"\xc1", codec.dumps({"id": 1})[:-1]):
        with pytest.raises(Disconnect):
            codec.decode(bad)


def test_disconnect_codes():
    assert disconnect_args("shutdown", True) == (3001, "shutdown")
    assert disconnect_args("connection expired", True) == (3005, "connection expired")
    assert disconnect_args("slow", True) == (3008, "slow")
    assert disconnect_args("disconnect", True) == (3011, "force reconnect")
    assert disconnect_args("kicked by admin", True) == (3011, "kicked by admin")
    assert disconnect_args("disconnect", False) == (3503, "force disconnect")
    assert disconnect_args("shutdown", False) == (3503, "shutdown")
    assert json.loads(frames(JSON_WIRE.disconnect("slow", True))[0][1]) == {
        "push": {"disconnect": {"code": 3008, "reason": "slow", "reconnect": True}}}


def test_protocol_detection():
    assert speaks_sdk('{"id":1,"connect":{"token":"x"}}')
    assert speaks_sdk('{"connect":{"token":"x"},"id":1}')  # centrifuge-js puts id last
    assert speaks_sdk('{"id":1,"connect":{}}\n{"id":2,"subscribe":{"channel":"a"}}')
    assert speaks_sdk(b'{"id":1,"connect":{}}')
    assert not speaks_sdk('{"method":"connect","params":{}}')
    assert not speaks_sdk('[{"method":"connect","params":{}}]')
    assert not speaks_sdk("garbage") and not speaks_sdk("{}")


def test_lone_surrogates_are_encoded_as_their_json_escape():
    """A str from a JSON `\\ud800` cannot be strict UTF-8: JSON frames and Protobuf payload bytes carry the escape."""
    assert JsonCodec().dumps({"t": "\ud800", "k\udfff": 1}) == b'{"t":"\\ud800","k\\udfff":1}'
    assert sdk_protobuf.bytes_of({"t": "\ud800"}) == b'{"t":"\\ud800"}'
