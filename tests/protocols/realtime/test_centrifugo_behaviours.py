"""What Centrifugo's SDK suites need beyond the protocol (issue 26), through real clients against a hub started
from a Centrifugo v6 config.json: permissions as v6 names them (allow_*_for_client / _for_subscriber /
_for_anonymous, client.insecure), the user personal channel (single_connection), force_recovery and
force_positioning, recovery from an empty epoch, Fossil deltas on the wire, and RPC without handlers."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import cent
import pytest
import trio
from centrifuge import Client, DeltaType, ReplyError, StreamPosition
from trio_websocket import open_websocket_url

from hub.config import load_settings
from protocols.realtime.tokens import make_token
from tests.protocols.realtime.test_centrifugo_v6 import serve_config_json, ws_url
from tests.protocols.realtime.test_sdk_python import Recorder, run_asyncio, until

SECRET = "behaviours-hmac-secret-key-long-enough-for-hs256-" + "x" * 16
API_KEY = "behaviours-api-key"
HISTORY = {"history_size": 10, "history_ttl": "60s"}
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def config(**client: Any) -> dict[str, Any]:
    return {
        "client": {"token": {"hmac_secret_key": SECRET}, "allow_anonymous_connect_without_token": True,
                   "subscribe_to_user_personal_channel": {"enabled": True, "personal_channel_namespace": "personal",
                                                          "single_connection": True}, **client},
        "http_server": {"port": 0},
        "http_api": {"key": API_KEY},
        "log": {"level": "warn"},
        "channel": {
            "without_namespace": {"presence": True, **HISTORY},
            "namespaces": [
                {"name": "personal", "presence": True, "force_recovery": True, **HISTORY},
                {"name": "open", "presence": True, **HISTORY, "allow_presence_for_client": True,
                 "allow_history_for_client": True, "allow_publish_for_client": True, "allow_subscribe_for_client": True},
                {"name": "members", "presence": True, **HISTORY, "allow_subscribe_for_client": True,
                 "allow_presence_for_subscriber": True, "allow_history_for_subscriber": True,
                 "allow_publish_for_subscriber": True},
                {"name": "anon", "presence": True, "allow_subscribe_for_client": True, "allow_subscribe_for_anonymous": True,
                 "allow_publish_for_subscriber": True, "allow_presence_for_subscriber": True,
                 "allow_presence_for_anonymous": True},
                {"name": "pos", **HISTORY, "force_positioning": True, "allow_subscribe_for_client": True},
                {"name": "rec", **HISTORY, "force_recovery": True, "allow_subscribe_for_client": True},
                {"name": "delta", **HISTORY, "allowed_delta_types": ["fossil"], "delta_publish": True,
                 "allow_subscribe_for_client": True},
            ],
        },
    }


@pytest.fixture
async def centrifugo(nursery: trio.Nursery, tmp_path: Path) -> Any:
    async def start(**client: Any) -> Any:
        running = await serve_config_json(nursery, tmp_path / "config.json", config(**client))
        started.append(running)
        return running

    started: list[Any] = []
    yield start
    for running in started:
        running.shutdown()


def api(running: Any) -> cent.Client:
    return cent.Client(running.url("command_api") + "/api", API_KEY)


def tok(user: str) -> str:
    return make_token(SECRET, {"sub": user, "exp": int(time.time()) + 300})


async def publish(running: Any, channel: str, data: Any) -> None:
    await trio.to_thread.run_sync(api(running).publish, cent.PublishRequest(channel=channel, data=data))


async def raw(running: Any, *commands: dict[str, Any], token: str | None = None, replies: int | None = None) -> list[Any]:
    """Connect over a bare websocket, send the commands in one message; the replies (and pushes) received."""
    out: list[Any] = []
    async with open_websocket_url(ws_url(running)) as ws:
        connect = {"id": 1, "connect": {"token": token} if token else {}}
        await ws.send_message("\n".join(json.dumps(c) for c in [connect, *commands]))
        want = (replies if replies is not None else len(commands) + 1)
        with trio.fail_after(10):
            while len(out) < want:
                for line in (await ws.get_message()).split("\n"):
                    if line and line != "{}":
                        out.append(json.loads(line))
    return out


# -- permissions ----------------------------------------------------------------------------------
@pytest.mark.parametrize("use_protobuf", [False, True], ids=["json", "protobuf"])
async def test_v6_permissions_for_client_subscriber_and_anonymous(centrifugo, use_protobuf: bool) -> None:
    running = await centrifugo()
    url = ws_url(running)
    data = b'{"x":1}' if use_protobuf else {"x": 1}

    async def scenario(tr: Any) -> None:
        client = Client(url, Recorder(), token=tok("alice"), use_protobuf=use_protobuf)
        await client.connect()
        # allow_presence_for_client / allow_history_for_client / allow_publish_for_client: no subscription needed
        await client.publish("open:x", data)
        assert (await client.presence("open:x")).clients == {}
        assert len((await client.history("open:x", limit=10)).publications) == 1
        # *_for_subscriber only: 103 until subscribed
        for call in (client.presence("members:x"), client.history("members:x", limit=1), client.publish("members:x", data)):
            with pytest.raises(ReplyError) as exc:
                await call
            assert exc.value.code == 103
        sub = client.new_subscription("members:x", Recorder())
        await sub.subscribe()
        await sub.ready()
        await sub.publish(data)
        assert {c.user for c in (await sub.presence()).clients.values()} == {"alice"}
        # no RPC handler configured: Centrifugo answers 108
        with pytest.raises(ReplyError) as exc:
            await client.rpc("anything", b"{}" if use_protobuf else {})
        assert exc.value.code == 108
        await client.disconnect()

        # anonymous (allow_anonymous_connect_without_token): subscribe only with allow_subscribe_for_anonymous,
        # publish only with allow_publish_for_anonymous, presence with allow_presence_for_anonymous
        anon = Client(url, Recorder(), use_protobuf=use_protobuf)
        await anon.connect()
        ok, refused = anon.new_subscription("anon:x", Recorder()), Recorder()
        await ok.subscribe()
        await ok.ready()
        assert len((await ok.presence()).clients) == 1
        with pytest.raises(ReplyError) as exc:
            await ok.publish(data)
        assert exc.value.code == 103
        members = anon.new_subscription("members:y", refused)
        await members.subscribe()
        await until(lambda: refused.of("unsubscribed") or refused.of("error"))
        assert any(getattr(getattr(e, "error", None), "code", None) == 103 for e in refused.of("error")) or \
            refused.of("unsubscribed")[0].code == 103
        await anon.disconnect()

    await run_asyncio(scenario)


async def test_insecure_mode_allows_everything_without_tokens(centrifugo) -> None:
    running = await centrifugo(insecure=True)
    url = ws_url(running)

    async def scenario(tr: Any) -> None:
        client = Client(url, Recorder())  # no token at all
        await client.connect()
        events = Recorder()
        sub = client.new_subscription("plain", events)  # no allow_subscribe_for_client on the top level
        await sub.subscribe()
        await sub.ready()
        await sub.publish({"n": 1})
        await until(lambda: events.data() == [{"n": 1}])
        assert len((await sub.history(limit=5)).publications) == 1
        assert len((await sub.presence()).clients) == 1
        await client.publish("members:z", {"n": 2})  # neither subscribed nor allowed for anonymous: insecure allows
        await client.disconnect()

    await run_asyncio(scenario)


# -- personal channel -----------------------------------------------------------------------------
async def test_personal_channel_server_side_subscription_and_single_connection(centrifugo) -> None:
    running = await centrifugo()
    url = ws_url(running)

    async def scenario(tr: Any) -> None:
        first = Recorder()
        client = Client(url, first, token=tok("bob"))
        await client.connect()
        await until(lambda: first.of("subscribed"))
        assert first.of("subscribed")[0].channel == "personal:#bob"
        assert first.of("subscribed")[0].recoverable  # the namespace's force_recovery applies to it
        await tr.acall(publish, running, "personal:#bob", {"to": "bob"})
        await until(lambda: [p.pub.data for p in first.of("publication")] == [{"to": "bob"}])
        # single_connection: bob's second connection closes the first with 3504 (no reconnect)
        second = Client(url, Recorder(), token=tok("bob"))
        await second.connect()
        await until(lambda: first.of("disconnected"))
        assert first.of("disconnected")[0].code == 3504
        await second.disconnect()

    await run_asyncio(scenario)


def test_personal_channel_config_errors(tmp_path: Path) -> None:
    from hub.config import ConfigError

    data = config()
    data["channel"]["namespaces"] = [n for n in data["channel"]["namespaces"] if n["name"] != "personal"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError) as exc:
        load_settings(path)
    assert exc.value.key == "client.subscribe_to_user_personal_channel.personal_channel_namespace"
    data = config()
    data["channel"]["namespaces"][0]["presence"] = False
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError) as exc:
        load_settings(path)
    assert exc.value.key == "client.subscribe_to_user_personal_channel.single_connection"


# -- stream positions -----------------------------------------------------------------------------
async def test_force_positioning_and_force_recovery_apply_whatever_the_client_asks(centrifugo) -> None:
    running = await centrifugo()
    pos, rec = (await raw(running, {"id": 2, "subscribe": {"channel": "pos:a"}}, {"id": 3, "subscribe": {"channel": "rec:a"}},
                          token=tok("carol")))[1:]
    assert pos["subscribe"]["positioned"] is True and "recoverable" not in pos["subscribe"]
    assert rec["subscribe"]["recoverable"] is True and rec["subscribe"]["positioned"] is True
    assert pos["subscribe"]["epoch"] and rec["subscribe"]["epoch"]


async def test_recovery_from_an_empty_epoch(centrifugo) -> None:
    running = await centrifugo()
    for n in (1, 2, 3):
        await publish(running, "rec:b", {"n": n})
    reply = (await raw(running, {"id": 2, "subscribe": {"channel": "rec:b", "recover": True, "offset": 1, "epoch": ""}},
                       token=tok("dave")))[1]["subscribe"]
    assert reply["recovered"] is True and reply["was_recovering"] is True
    assert [(p["offset"], p["data"]) for p in reply["publications"]] == [(2, {"n": 2}), (3, {"n": 3})]

    # the SDK's get_state path: it hands back a position with an empty epoch, and recovery continues from there
    url = ws_url(running)

    async def scenario(tr: Any) -> None:
        events = Recorder()

        async def get_state(channel: str) -> StreamPosition:
            return StreamPosition(offset=2, epoch="")

        client = Client(url, Recorder(), token=tok("dave"))
        await client.connect()
        sub = client.new_subscription("rec:b", events, get_state=get_state)
        await sub.subscribe()
        await sub.ready()
        await until(lambda: events.data() == [{"n": 3}])
        await client.disconnect()

    await run_asyncio(scenario)


# -- Fossil delta ---------------------------------------------------------------------------------
async def test_fossil_delta_is_sent_to_delta_subscribers(centrifugo) -> None:
    running = await centrifugo()
    body = {"text": "a fairly long payload that changes only a little " * 4}
    pushes: list[dict[str, Any]] = []
    async with open_websocket_url(ws_url(running)) as ws:
        await ws.send_message(json.dumps({"id": 1, "connect": {"token": tok("erin")}}) + "\n"
                              + json.dumps({"id": 2, "subscribe": {"channel": "delta:a", "delta": "fossil"}}))
        replies: list[Any] = []
        with trio.fail_after(10):
            while len(replies) < 2:
                replies += [json.loads(x) for x in (await ws.get_message()).split("\n") if x]
            assert replies[1]["subscribe"]["delta"] is True
            for n in range(3):
                await publish(running, "delta:a", {**body, "n": n})
            while len(pushes) < 3:
                pushes += [json.loads(x)["push"]["pub"] for x in (await ws.get_message()).split("\n") if x and x != "{}"]
    assert "delta" not in pushes[0] and json.loads(pushes[0]["data"]) == {**body, "n": 0}  # the first one whole
    assert pushes[1]["delta"] is True and pushes[2]["delta"] is True  # then Fossil deltas, as strings
    assert len(pushes[1]["data"]) < len(json.dumps(body)) / 4

    url = ws_url(running)

    async def scenario(tr: Any) -> None:  # and centrifuge-python decodes them
        events = Recorder()
        client = Client(url, Recorder(), token=tok("erin"))
        await client.connect()
        sub = client.new_subscription("delta:a", events, delta=DeltaType.FOSSIL)
        await sub.subscribe()
        await sub.ready()
        for n in range(3, 6):
            await tr.acall(publish, running, "delta:a", {**body, "n": n})
        await until(lambda: len(events.data()) == 3)
        assert [d["n"] for d in events.data()] == [3, 4, 5]
        await client.disconnect()

    await run_asyncio(scenario)
