"""The original client protocol without sockets: LegacyClient against an in-memory Hub."""

import json
import time

import pytest

from hub.core import Hub, NamespaceOptions, Project
from hub.core.outbox import Outbox
from protocols.realtime.legacy import BadFrame, LegacyClient, close_args
from protocols.realtime.signing import channel_sign, connect_token

SECRET = "secret"


def make_hub(lifetime: int = 0) -> Hub:
    options = NamespaceOptions(presence=True, join_leave=True, history_size=5, history_lifetime=60)
    namespaces = {"pub": NamespaceOptions(publish=True, join_leave=False),
                  "quiet": NamespaceOptions(presence=False, join_leave=False)}
    return Hub([Project("proj", SECRET, options, namespaces, connection_lifetime=lifetime, max_channel_length=40)])


def params(user="alice", ts=None, info="", project="proj", secret=SECRET):
    ts = ts or str(int(time.time()))
    return {"project": project, "user": user, "timestamp": ts, "info": info,
            "token": connect_token(secret, project, user, ts, info)}


def frames(client: LegacyClient) -> list:
    out = []
    while client.outbox.pending_bytes:
        batch = client.outbox._frames
        client.outbox.discard()
        for frame in batch:
            out.append(json.loads(frame[2:] if frame[1] < 126 else frame[4:]))
    return out


async def call(client, method, p=None):
    (reply,) = await client.handle(json.dumps({"method": method, "params": p or {}}))
    return reply


async def connected(hub, user="alice", info=""):
    client = LegacyClient(hub, Outbox(1 << 20))
    assert (await call(client, "connect", params(user, info=info)))["error"] is None
    return client


async def test_connect_body_and_info():
    hub = make_hub()
    client = LegacyClient(hub, Outbox(1 << 20))
    reply = await call(client, "connect", params(info='{"name": "Alice"}'))
    assert reply["error"] is None
    body = reply["body"]
    assert len(body["client"]) == 32 and int(body["client"], 16) >= 0
    assert body == {"client": body["client"], "expired": False, "ttl": None}
    assert hub.sessions[body["client"]].info == {"name": "Alice"}


@pytest.mark.parametrize("change, error", [
    ({"token": "0" * 64}, "invalid token"),
    ({"project": "nope"}, "project not found"),
    ({"user": None}, "user required"),
    ({"timestamp": 123}, "invalid timestamp: expected string"),
])
async def test_connect_errors(change, error):
    client = LegacyClient(make_hub(), Outbox(1 << 20))
    p = params()
    p.update(change)
    assert (await call(client, "connect", p))["error"] == error
    assert client.session is None


async def test_non_numeric_timestamp_is_invalid_timestamp():
    client = LegacyClient(make_hub(), Outbox(1 << 20))
    assert (await call(client, "connect", params(ts="yesterday")))["error"] == "invalid timestamp"


async def test_commands_before_connect_are_unauthorized():
    client = LegacyClient(make_hub(), Outbox(1 << 20))
    for method in ("subscribe", "publish", "presence", "history", "unsubscribe"):
        assert (await call(client, method, {"channel": "news"}))["error"] == "unauthorized"
    assert (await call(client, "ping"))["body"] == "pong"


async def test_batch_replies_in_order_with_uid_and_join_before_reply():
    hub = make_hub()
    client = await connected(hub)
    replies = await client.handle(json.dumps([
        {"uid": "1", "method": "subscribe", "params": {"channel": "news"}},
        {"uid": "2", "method": "presence", "params": {"channel": "news"}},
        {"uid": "3", "method": "bogus"},
        {"uid": "4", "method": "history", "params": {"channel": "news"}},
    ]))
    assert [r["uid"] for r in replies] == ["1", "2", "3", "4"]
    assert replies[0] == {"uid": "1", "method": "subscribe", "error": None, "body": {"channel": "news"}}
    assert list(replies[1]["body"]["data"]) == [client.session.id]
    assert replies[2]["error"] == "unknown method bogus"
    assert replies[3]["body"] == {"channel": "news", "data": []}
    pushes = frames(client)
    assert pushes[0]["method"] == "join" and pushes[0]["body"]["data"]["client"] == client.session.id


async def test_publish_rules_and_message_body():
    hub = make_hub()
    client = await connected(hub, info='{"n": 1}')
    assert (await call(client, "publish", {"channel": "pub:a", "data": 1}))["error"] == "permission denied"
    await call(client, "subscribe", {"channel": "pub:a"})
    await call(client, "subscribe", {"channel": "news"})
    assert (await call(client, "publish", {"channel": "news", "data": 1}))["error"] == "permission denied"
    assert (await call(client, "publish", {"channel": "pub:a"}))["error"] == "data required"
    frames(client)
    reply = await call(client, "publish", {"channel": "pub:a", "data": {"x": 1}})
    assert reply["body"] == {"channel": "pub:a", "status": True}
    (msg,) = frames(client)
    body = msg["body"]
    assert msg["method"] == "message" and msg["error"] is None
    assert set(body) == {"uid", "timestamp", "info", "channel", "data", "client"}
    assert body["info"] == {"user": "alice", "client": client.session.id, "default_info": {"n": 1}, "channel_info": None}
    assert body["client"] == client.session.id and body["data"] == {"x": 1}


async def test_channel_errors():
    hub = make_hub()
    client = await connected(hub)
    assert (await call(client, "subscribe", {}))["error"] == "channel required"
    assert (await call(client, "subscribe", {"channel": "x" * 41}))["error"] == "maximum channel length exceeded"
    assert (await call(client, "subscribe", {"channel": "nope:x"}))["error"] == "namespace not found"
    assert (await call(client, "subscribe", {"channel": "room#bob"}))["error"] == "permission denied"
    assert (await call(client, "subscribe", {"channel": "room#alice,bob"}))["error"] is None
    await call(client, "subscribe", {"channel": "quiet:x"})
    assert (await call(client, "presence", {"channel": "quiet:x"}))["error"] == "not available"
    assert (await call(client, "history", {"channel": "quiet:x"}))["error"] == "not available"
    assert (await call(client, "presence", {"channel": "news"}))["error"] == "permission denied"
    assert (await call(client, "subscribe", "x"))["error"] == "invalid params: expected an object"


async def test_private_channel_sign():
    hub = make_hub()
    client = await connected(hub)
    cid = client.session.id
    good = {"channel": "$secret", "client": cid, "info": '{"role": "x"}',
            "sign": channel_sign(SECRET, cid, "$secret", '{"role": "x"}')}
    assert (await call(client, "subscribe", {**good, "sign": "bad"}))["error"] == "unauthorized"
    assert (await call(client, "subscribe", {**good, "client": "other"}))["error"] == "unauthorized"
    assert (await call(client, "subscribe", {"channel": "$secret"}))["error"] == "client required"
    assert (await call(client, "subscribe", good))["error"] is None
    assert (await hub.presence("proj", "$secret"))[cid]["channel_info"] == {"role": "x"}


async def test_unsubscribe_from_channel_not_joined_sends_no_leave():
    hub = make_hub()
    a, b = await connected(hub, "a"), await connected(hub, "b")
    await call(a, "subscribe", {"channel": "news"})
    frames(a)
    assert (await call(b, "unsubscribe", {"channel": "news"}))["error"] is None
    assert frames(a) == []
    await call(b, "subscribe", {"channel": "news"})
    await call(b, "unsubscribe", {"channel": "news"})
    assert [f["method"] for f in frames(a)] == ["join", "leave"]


async def test_history_newest_first():
    hub = make_hub()
    client = await connected(hub)
    await call(client, "subscribe", {"channel": "news"})
    for i in range(7):
        await hub.publish("proj", "news", i)
    data = (await call(client, "history", {"channel": "news"}))["body"]["data"]
    assert [m["data"] for m in data] == [6, 5, 4, 3, 2]


async def test_expired_connect_then_refresh():
    hub = make_hub(lifetime=10)
    client = LegacyClient(hub, Outbox(1 << 20))
    old = str(int(time.time()) - 60)
    body = (await call(client, "connect", params(ts=old)))["body"]
    assert body["expired"] is True and body["ttl"] == 10
    assert client.session is None
    assert (await call(client, "subscribe", {"channel": "news"}))["error"] == "connection expired"
    assert (await call(client, "refresh", params(ts=old)))["error"] == "connection expired"
    assert (await call(client, "refresh", params()))["body"] == {"ttl": 10}
    assert client.session.id == body["client"]
    assert (await call(client, "subscribe", {"channel": "news"}))["error"] is None


async def test_refresh_extends_expiry():
    hub = make_hub(lifetime=10)
    client = LegacyClient(hub, Outbox(1 << 20))
    ts = int(time.time()) - 5
    await call(client, "connect", params(ts=str(ts)))
    assert client.session.expires_at == ts + 10
    await call(client, "refresh", params())
    assert client.session.expires_at >= int(time.time()) + 9


@pytest.mark.parametrize("frame, reason", [
    ("not json", "bad request: frame is not JSON"),
    ("42", "bad request: frame must be an object or an array"),
    (json.dumps([{"method": "ping"}] * 101), "bad request: more than 100 commands"),
])
async def test_bad_frames(frame, reason):
    client = LegacyClient(make_hub(), Outbox(1 << 20))
    with pytest.raises(BadFrame) as info:
        await client.handle(frame)
    assert info.value.reason == reason and info.value.code == 3501


def test_close_args():
    assert close_args("shutdown", True) == (3001, '{"reason":"shutdown","reconnect":true}')
    assert close_args("slow", True)[0] == 3008
