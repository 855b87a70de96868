"""The real centrifuge-python SDK (PyPI) against the hub's current-protocol endpoint.

centrifuge-python runs on asyncio: each scenario runs in `asyncio.run` on a worker thread, and
reaches back into the test's Trio loop (publishing through the core, the legacy client) with
`tr.call` / `tr.acall`, which do not block the asyncio loop.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
from centrifuge import (
    Client,
    ClientEventHandler,
    ClientState,
    ReplyError,
    StreamPosition,
    SubscriptionEventHandler,
    SubscriptionState,
)

from protocols.realtime.tokens import make_token
from tests.conftest import PROJECT, SECRET
from tests.legacy_client import legacy_client

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")


def ws_url(running: Any) -> str:
    return running.url("realtime").replace("http://", "ws://") + "/connection/websocket"


def token(user: str = "alice", secret: str = SECRET, **claims: Any) -> str:
    return make_token(secret, {"sub": user, **claims})


class Trio:
    """Called from the asyncio thread: run something in the test's Trio loop."""

    def __init__(self, trio_token: trio.lowlevel.TrioToken) -> None:
        self.token = trio_token

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(trio.from_thread.run_sync, fn, *args, trio_token=self.token)

    async def acall(self, afn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        return await asyncio.to_thread(trio.from_thread.run, afn, *args, trio_token=self.token)


async def run_asyncio(scenario: Callable[..., Awaitable[Any]], *args: Any, timeout: float = 20) -> Any:
    """Run `scenario(tr, *args)` under asyncio in a thread; its result (or exception) comes back here."""
    tr = Trio(trio.lowlevel.current_trio_token())

    async def main() -> Any:
        return await asyncio.wait_for(scenario(tr, *args), timeout)

    return await trio.to_thread.run_sync(asyncio.run, main())


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


class Recorder(ClientEventHandler, SubscriptionEventHandler):
    """Records every event of a client or a subscription as (name, context)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("on_"):
            async def record(ctx: Any) -> None:
                self.events.append((name[3:], ctx))
            return record
        return super().__getattribute__(name)

    def of(self, kind: str) -> list[Any]:
        return [ctx for name, ctx in self.events if name == kind]

    def data(self) -> list[Any]:
        return [ctx.pub.data for ctx in self.of("publication")]


async def test_connect_subscribe_receive_presence_history(start_hub):
    running = await start_hub()

    async def scenario(tr: Trio) -> None:
        events, sub_events = Recorder(), Recorder()
        client = Client(ws_url(running), events, token=token("alice", info={"name": "Alice"}))
        await client.connect()
        await client.ready()
        connected = events.of("connected")[0]
        assert len(connected.client) == 32 and connected.version.startswith("hub ")
        sub = client.new_subscription("news", sub_events, join_leave=True)
        await sub.subscribe()
        await sub.ready()
        subscribed = sub_events.of("subscribed")[0]
        assert subscribed.recoverable and subscribed.stream_position.offset == 0

        for i in range(3):
            await tr.acall(running.publish, "news", {"n": i})
        await until(lambda: len(sub_events.data()) == 3)
        pubs = [ctx.pub for ctx in sub_events.of("publication")]
        assert [p.data for p in pubs] == [{"n": 0}, {"n": 1}, {"n": 2}]
        assert [p.offset for p in pubs] == [1, 2, 3]

        # a second client joins: presence of both, join push to the first
        other = Client(ws_url(running), token=token("bob"))
        await other.connect()
        other_sub = other.new_subscription("news")
        await other_sub.subscribe()
        await other_sub.ready()
        # alice asked for join/leave: her own join (after her subscribe reply), then bob's
        await until(lambda: len(sub_events.of("join")) == 2)
        assert [j.info.user for j in sub_events.of("join")] == ["alice", "bob"]
        presence = await sub.presence()
        assert {c.user for c in presence.clients.values()} == {"alice", "bob"}
        mine = presence.clients[connected.client]
        assert mine.conn_info == {"name": "Alice"} and mine.chan_info is None
        stats = await client.presence_stats("news")
        assert (stats.num_clients, stats.num_users) == (2, 2)

        history = await sub.history(limit=-1)
        assert [p.data["n"] for p in history.publications] == [0, 1, 2]
        assert history.offset == 3 and history.epoch == subscribed.stream_position.epoch
        newest = await sub.history(limit=2, reverse=True)
        assert [p.offset for p in newest.publications] == [3, 2]
        after = await sub.history(limit=10, since=StreamPosition(offset=1, epoch=history.epoch))
        assert [p.offset for p in after.publications] == [2, 3]
        position_only = await sub.history()
        assert position_only.publications == [] and position_only.offset == 3
        with pytest.raises(ReplyError) as exc:
            await sub.history(limit=10, since=StreamPosition(offset=1, epoch="wrong"))
        assert exc.value.code == 112

        # publish is refused in a namespace without client publish; rpc is not configured
        with pytest.raises(ReplyError) as exc:
            await sub.publish({"n": 99})
        assert exc.value.code == 103
        with pytest.raises(ReplyError) as exc:
            await client.rpc("nothing.here", {})
        assert exc.value.code == 108  # Centrifugo without any RPC handler (no rpc_methods): "not available"

        await other.disconnect()
        await until(lambda: len(sub_events.of("leave")) == 1)
        await sub.unsubscribe()
        assert sub.state == SubscriptionState.UNSUBSCRIBED
        await tr.acall(running.publish, "news", {"n": 3})
        await asyncio.sleep(0.1)
        assert len(sub_events.data()) == 3
        await client.disconnect()

    await run_asyncio(scenario)
    assert running.hub.sessions == {}


async def test_publications_cross_protocols_with_the_legacy_client(start_hub):
    running = await start_hub()
    async with legacy_client(running.url("realtime")) as bob:
        await bob.connect("bob")
        await bob.subscribe("public:chat")

        async def scenario(tr: Trio) -> None:
            sub_events = Recorder()
            client = Client(ws_url(running), token=token("alice"))
            await client.connect()
            sub = client.new_subscription("public:chat", sub_events)
            await sub.subscribe()
            await sub.ready()
            reply = await tr.acall(bob.call, "publish", {"channel": "public:chat", "data": {"text": "from legacy"}})
            assert reply["error"] is None
            await until(lambda: sub_events.data() == [{"text": "from legacy"}])
            pub = sub_events.of("publication")[0].pub
            assert pub.info.user == "bob" and pub.info.client == bob.client_id and pub.offset == 1
            await sub.publish({"text": "from sdk"})
            await until(lambda: len(sub_events.data()) == 2)
            await client.disconnect()

        await run_asyncio(scenario)
        message = await bob.next_push("message")
        assert message["body"]["data"] == {"text": "from legacy"}
        message = await bob.next_push("message")
        assert message["body"]["data"] == {"text": "from sdk"} and message["body"]["info"]["user"] == "alice"


async def test_recovery_after_forced_reconnect_delivers_missed_publications_once_in_order(start_hub):
    running = await start_hub()
    total, cut, missed = 60, 20, 10

    async def disconnect_then_publish() -> None:
        assert await running.hub.disconnect(PROJECT, "alice", "disconnect", reconnect=True) == 1
        for i in range(cut, cut + missed):  # certainly published while alice is away
            await running.publish("public:feed", {"n": i})

    async def scenario(tr: Trio) -> None:
        events, sub_events = Recorder(), Recorder()
        client = Client(ws_url(running), events, token=token("alice"), min_reconnect_delay=0.05)
        await client.connect()
        sub = client.new_subscription("public:feed", sub_events, recoverable=True)
        await sub.subscribe()
        await sub.ready()
        for i in range(cut):
            await tr.acall(running.publish, "public:feed", {"n": i})
        await until(lambda: len(sub_events.data()) == cut)
        await tr.acall(disconnect_then_publish)
        for i in range(cut + missed, total):  # keep publishing while it reconnects and recovers
            await tr.acall(running.publish, "public:feed", {"n": i})
            await asyncio.sleep(0.005)
        await until(lambda: len(sub_events.data()) >= total)
        await asyncio.sleep(0.2)  # nothing more (no duplicates) arrives

        assert [d["n"] for d in sub_events.data()] == list(range(total))
        offsets = [ctx.pub.offset for ctx in sub_events.of("publication")]
        assert offsets == list(range(1, total + 1))
        connecting = [ctx for ctx in events.of("connecting") if ctx.code >= 3000]
        assert [(c.code, c.reason) for c in connecting] == [(3011, "force reconnect")]
        first, second = sub_events.of("subscribed")
        assert not first.was_recovering
        assert second.was_recovering and second.recovered
        # the missed ones came with the recovering subscribe, after the second `subscribed`
        order = [name if name != "publication" else ctx.pub.data["n"] for name, ctx in sub_events.events
                 if name in ("subscribed", "publication")]
        resubscribed = [i for i, x in enumerate(order) if x == "subscribed"][1]
        assert set(range(cut, cut + missed)) <= set(order[resubscribed:])
        await client.disconnect()

    await run_asyncio(scenario)


async def test_recovery_fails_cleanly_when_history_no_longer_holds_the_gap(start_hub):
    running = await start_hub("""
    [projects.development.namespaces.short]
    history_size = 3
    history_lifetime = 60
    """)

    async def disconnect_then_publish() -> None:
        await running.hub.disconnect(PROJECT, "alice", "disconnect", reconnect=True)
        for i in range(1, 6):  # 5 missed, history keeps 3
            await running.publish("short:feed", {"n": i})

    async def scenario(tr: Trio) -> None:
        sub_events = Recorder()
        client = Client(ws_url(running), token=token("alice"), min_reconnect_delay=0.05)
        await client.connect()
        sub = client.new_subscription("short:feed", sub_events, recoverable=True)
        await sub.subscribe()
        await sub.ready()
        await tr.acall(running.publish, "short:feed", {"n": 0})
        await until(lambda: len(sub_events.data()) == 1)
        await tr.acall(disconnect_then_publish)
        await until(lambda: len(sub_events.of("subscribed")) == 2)
        second = sub_events.of("subscribed")[1]
        assert second.was_recovering and not second.recovered
        assert second.stream_position.offset == 6
        await tr.acall(running.publish, "short:feed", {"n": 6})
        await until(lambda: len(sub_events.data()) == 2)
        assert sub_events.data() == [{"n": 0}, {"n": 6}]
        await client.disconnect()

    await run_asyncio(scenario)


async def test_expired_token_makes_the_sdk_fetch_a_new_one_and_refresh_keeps_the_connection(start_hub):
    running = await start_hub("""
    [realtime]
    expired_close_delay = 0.5
    """)
    issued: list[float] = []

    async def scenario(tr: Trio) -> None:
        async def get_token() -> str:
            # 2-3 s: int(time.time()) + 2 can be just over a second, and the SDK refresh then has only the 0.5 s delay
            exp = math.ceil(time.time()) + 2
            issued.append(exp)
            return token("alice", exp=exp)

        events = Recorder()
        expired = token("alice", exp=int(time.time()) - 10)
        client = Client(ws_url(running), events, token=expired, get_token=get_token)
        await client.connect()
        await client.ready()
        assert len(issued) == 1  # the server answered 109 and the SDK asked for a new token
        errors = [ctx.error for ctx in events.of("error")]
        assert any(isinstance(e, ReplyError) and e.code == 109 for e in errors)
        client_id = client.client_id
        await asyncio.sleep(3.5)  # past the first token's expiry: the SDK refreshed in time
        assert len(issued) >= 2 and client.state == ClientState.CONNECTED and client.client_id == client_id
        assert events.of("connecting")[1:] == []
        await client.disconnect()

    await run_asyncio(scenario)


async def test_invalid_token_is_a_terminal_disconnect(start_hub):
    running = await start_hub()

    async def scenario(tr: Trio) -> None:
        events = Recorder()
        client = Client(ws_url(running), events, token=token("alice", secret="wrong"))
        await client.connect()
        await until(lambda: events.of("disconnected"))
        assert (events.of("disconnected")[0].code, events.of("disconnected")[0].reason) == (3500, "invalid token")
        assert client.state == ClientState.DISCONNECTED

    await run_asyncio(scenario)


async def test_private_channel_needs_a_subscription_token(start_hub):
    running = await start_hub()

    async def scenario(tr: Trio) -> None:
        client = Client(ws_url(running), token=token("alice"))
        await client.connect()
        await client.ready()

        denied = Recorder()
        bad = client.new_subscription("$secret", denied)
        await bad.subscribe()
        await until(lambda: denied.of("unsubscribed"))
        assert denied.of("unsubscribed")[0].code == 103

        async def sub_token(channel: str) -> str:
            return make_token(SECRET, {"sub": "alice", "channel": channel, "info": {"role": "reader"},
                                       "exp": int(time.time()) + 60})

        allowed = Recorder()
        sub = client.new_subscription("$private", allowed, get_token=sub_token)
        await sub.subscribe()
        await sub.ready()
        await tr.acall(running.publish, "$private", {"ok": True})
        await until(lambda: allowed.data() == [{"ok": True}])
        presence = await sub.presence()
        assert [c.chan_info for c in presence.clients.values()] == [{"role": "reader"}]
        await client.disconnect()

    await run_asyncio(scenario)


async def test_server_side_subscriptions_from_the_token_channels_claim(start_hub):
    running = await start_hub()

    async def scenario(tr: Trio) -> None:
        events = Recorder()
        client = Client(ws_url(running), events, token=token("alice", channels=["news", "public:alerts"]))
        await client.connect()
        await until(lambda: len(events.of("subscribed")) == 2)
        assert {ctx.channel for ctx in events.of("subscribed")} == {"news", "public:alerts"}
        await tr.acall(running.publish, "public:alerts", {"level": "high"})
        await until(lambda: events.of("publication"))
        ctx = events.of("publication")[0]
        assert (ctx.channel, ctx.pub.data) == ("public:alerts", {"level": "high"})
        # a server-side subscribe made later through the core reaches the SDK as a subscribe push
        assert await tr.acall(running.hub.subscribe_user, PROJECT, "alice", "later") == 1
        await until(lambda: len(events.of("subscribed")) == 3)
        await tr.acall(running.publish, "later", {"n": 1})
        await until(lambda: len(events.of("publication")) == 2)
        assert events.of("publication")[1].channel == "later"
        await client.disconnect()

    await run_asyncio(scenario)


async def test_rpc_runs_a_configured_action(start_hub):
    running = await start_hub("""
    [realtime]
    rpc_methods = ["demo.add", "demo.slow"]
    """)

    def add(a: int, b: int) -> int:
        return a + b

    async def slow(text: str) -> str:
        await trio.sleep(0.01)
        return text.upper()

    running.actions.register("demo.add", add)
    running.actions.register("demo.slow", slow)
    running.actions.register("demo.hidden", add)

    async def scenario(tr: Trio) -> None:
        client = Client(ws_url(running), token=token("alice"))
        await client.connect()
        assert (await client.rpc("demo.add", {"a": 2, "b": 3})).data == 5
        assert (await client.rpc("demo.slow", {"text": "hi"})).data == "HI"
        with pytest.raises(ReplyError) as exc:
            await client.rpc("demo.add", {"a": 2})
        assert exc.value.code == 107
        with pytest.raises(ReplyError) as exc:
            await client.rpc("demo.hidden", {"a": 2, "b": 3})
        assert exc.value.code == 104
        await client.disconnect()

    await run_asyncio(scenario)


async def test_force_disconnect_and_shutdown_map_to_centrifugo_disconnect_codes(start_hub):
    running = await start_hub()

    async def scenario(tr: Trio) -> None:
        events = Recorder()
        client = Client(ws_url(running), events, token=token("alice"), min_reconnect_delay=5)
        await client.connect()
        await client.ready()
        await tr.acall(running.hub.disconnect, PROJECT, "alice", "disconnect", False)
        await until(lambda: events.of("disconnected"))
        assert (events.of("disconnected")[0].code, events.of("disconnected")[0].reason) == (3503, "force disconnect")

        events2 = Recorder()
        client2 = Client(ws_url(running), events2, token=token("bob"), min_reconnect_delay=5)
        await client2.connect()
        await client2.ready()
        await tr.call(running.hub.shutdown)
        await until(lambda: [c for c in events2.of("connecting") if c.code == 3001])
        await client2.disconnect()

    await run_asyncio(scenario)
