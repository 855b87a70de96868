"""The Redis engine: several hub processes share channels, positions, history, presence and control.

One publication is one Redis message (never one per wire format). Per node: one pipelined command
connection and one PUB/SUB connection, both on the thin hiredis client (`resp.py`). The node
SUBSCRIBEs a channel while it has local subscribers (plus a short linger), tracks one position per
channel (not per client), fills gaps from the stored stream and tells its subscribers when state is
insufficient: never a silent loss. See README "Running several hubs".
"""

from __future__ import annotations

import bisect
import hashlib
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import hiredis
import msgpack
import trio

from hub.core.errors import HubError, Unavailable
from hub.core.history import HistoryResult, Publication, new_epoch
from hub.core.mapstate import MapSnapshot
from hub.core.options import NamespaceOptions
from hub.core.timers import Slicer

from .base import Engine, StreamPosition
from .redis_scripts import SCRIPTS
from .resp import Connection, ConnectionLost, Pipeline, RedisError, backoff, pack_command, parse_url

if TYPE_CHECKING:
    from hub.config import EngineSettings

log = logging.getLogger("hub.engine.redis")

Key = tuple[str, str]
SUBSCRIBE_CHUNK = 512
TAIL_CACHE = 1000


def _pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def _unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def _fields(pub: Publication, codec: Any) -> list[Any]:
    """A publication as stored and sent over Redis: uid, data, info, client, time, then meta, tags, raw, and a map
    entry's key and removal, when set."""
    fields = [pub.uid, pub.data, pub.info, pub.client, pub.timestamp]
    extra = [None if pub.meta is None or codec is None else codec[0](pub.meta), pub.tags, pub.raw, pub.key,
             True if pub.removed else None]
    while extra and extra[-1] is None:
        extra.pop()
    return fields + extra


class ChannelState:
    """What this node knows of one channel it receives: the position it has delivered up to, a tail
    cache of those publications (recovery without Redis), and arrivals held while it (re)syncs."""

    __slots__ = ("project", "channel", "name", "meta", "stream", "history", "lifetime_ms", "offset", "epoch",
                 "acked", "synced", "ready", "held", "cache", "pending", "filling", "touched", "recent")

    def __init__(self, project: str, channel: str, keys: tuple[bytes, bytes, bytes], options: NamespaceOptions,
                 now: float) -> None:
        self.project, self.channel = project, channel
        self.name, self.meta, self.stream = keys
        self.history = options.keeps_history
        self.lifetime_ms = int(options.history_lifetime * 1000)
        self.offset = 0
        self.epoch = ""
        self.acked = False  # Redis confirmed the SUBSCRIBE on the current PUB/SUB connection
        self.synced = False
        self.ready = trio.Event()
        self.held: list[tuple[int, str, bytes]] = []
        self.cache: deque[Publication] = deque(maxlen=max(1, min(options.history_size, TAIL_CACHE)))
        self.pending: dict[int, tuple[str, bytes]] = {}
        self.filling = False
        self.touched = now
        # A map channel without a stream: its changes received (sequence, publication), newest last; `offset`
        # is then the last sequence received (see `map_snapshot`).
        self.recent: deque[tuple[int, Publication]] | None = None


class RedisEngine(Engine):
    name = "redis"
    local_drops = False

    def __init__(self, settings: EngineSettings, *, clock: Any = time.time) -> None:
        self.settings = settings
        self.addr = parse_url(settings.url)
        self.prefix = settings.prefix
        self.timeout = settings.timeout
        self.meta_ttl = int(settings.history_meta_ttl)
        self.presence_ttl = settings.presence_ttl
        self.heartbeat = settings.heartbeat
        self.linger = settings.linger
        self.clock = clock
        self.cmd = Pipeline(self.addr, timeout=settings.timeout, connect_timeout=settings.connect_timeout,
                            on_connect=self._load_scripts, on_ready=self._commands_ready)
        self.shas = {name: hashlib.sha1(src.encode()).hexdigest() for name, src in SCRIPTS.items()}
        self.control_name = f"{self.prefix}.control".encode()
        self._map_registry = f"{self.prefix}.mapx".encode()  # (project, channel, key) -> its deadline, for the sweep
        self._map_writes: trio.MemorySendChannel[tuple[str, str, NamespaceOptions, Publication]]
        self._map_writes_rx: trio.MemoryReceiveChannel[tuple[str, str, NamespaceOptions, Publication]]
        self._map_writes, self._map_writes_rx = trio.open_memory_channel(float("inf"))
        self._sweeping = False
        self._map_members: dict[Key, dict[str, tuple[NamespaceOptions, Publication]]] = {}  # this node's map clients
        self._cleared: dict[Key, set[str]] = {}  # map channels cleared: local subscribers of the old epoch
        self.all_pattern = f"{self.prefix}.ch.*".encode()
        self._ch_prefix = f"{self.prefix}.ch.{{".encode()
        self._subs: dict[Key, ChannelState] = {}
        # (when, state) each time a channel is touched, oldest first: housekeeping looks only at those past the
        # linger (one look per touch), not at every channel this node receives.
        self._touches: deque[tuple[float, ChannelState]] = deque()
        self._by_name: dict[bytes, ChannelState] = {}
        self._sync_wanted = trio.Event()
        self._ps: Connection | None = None
        self._ps_lock = trio.Lock()
        self._ps_up = False
        self._watch_all = False
        self._nodes: dict[str, dict[str, Any]] = {}
        self._presence: dict[Key, dict[str, bytes]] = {}
        self._nursery: trio.Nursery | None = None
        self._fills: trio.MemorySendChannel[ChannelState]
        self._fills_rx: trio.MemoryReceiveChannel[ChannelState]
        self._fills, self._fills_rx = trio.open_memory_channel(float("inf"))
        self._barrier: dict[bytes, trio.Event] = {}
        self._last_seen = 0.0
        self.pubsub_reconnects = 0

    # -- keys ----------------------------------------------------------------------------------
    def _tag(self, project: str, channel: str) -> str:
        return f"{{{project}:{channel}}}"

    def _keys(self, project: str, channel: str) -> tuple[bytes, bytes, bytes]:
        tag, p = self._tag(project, channel), self.prefix
        return f"{p}.ch.{tag}".encode(), f"{p}.meta.{tag}".encode(), f"{p}.stream.{tag}".encode()

    def _presence_keys(self, project: str, channel: str) -> tuple[bytes, bytes]:
        tag, p = self._tag(project, channel), self.prefix
        return f"{p}.pz.{tag}".encode(), f"{p}.ph.{tag}".encode()

    def _parse_name(self, name: bytes) -> Key | None:
        if not name.startswith(self._ch_prefix) or not name.endswith(b"}"):
            return None
        project, _, channel = name[len(self._ch_prefix):-1].decode("utf-8", "replace").partition(":")
        return project, channel

    # -- commands --------------------------------------------------------------------------------
    async def _load_scripts(self, conn: Connection) -> None:
        for name, src in SCRIPTS.items():
            sha = await conn.call("SCRIPT", "LOAD", src)
            self.shas[name] = sha.decode() if isinstance(sha, bytes) else sha

    def _commands_ready(self) -> None:
        """The command connection is (back) up: re-add this node's presence and map clients entries (Redis may have
        restarted empty; an entry still there is not announced again)."""
        if self._nursery is not None:
            self._nursery.start_soon(self._refresh_presence)
        for (project, channel), mine in self._map_members.items():
            for options, pub in mine.values():
                self._map_writes.send_nowait((project, channel, options, pub))

    async def _script(self, name: str, keys: tuple[bytes, ...], *args: Any) -> Any:
        try:
            try:
                return await self.cmd.execute("EVALSHA", self.shas[name], len(keys), *keys, *args)
            except RedisError as exc:
                if not str(exc).startswith("NOSCRIPT"):
                    raise
                return await self.cmd.execute("EVAL", SCRIPTS[name], len(keys), *keys, *args)
        except ConnectionLost as exc:
            log.warning("redis unavailable: %s", exc)
            raise Unavailable() from None
        except RedisError as exc:
            log.error("redis error: %s", exc)
            raise Unavailable() from None

    async def _read(self, project: str, channel: str, options: NamespaceOptions, *, since: int | None,
                    limit: int | None, newest_first: bool = False, create: bool = False
                    ) -> tuple[int, str, list[Publication]]:
        _, meta, stream = self._keys(project, channel)
        top, epoch, entries = await self._script(
            "read", (meta, stream), -1 if since is None else since, -1 if limit is None else limit,
            1 if newest_first else 0, 1 if create else 0, new_epoch(), int(options.history_lifetime * 1000),
            self.meta_ttl)
        epoch = epoch.decode() if isinstance(epoch, bytes) else epoch
        pubs = [self._decode(project, channel, int(eid.split(b"-", 1)[0]), epoch, fields[1]) for eid, fields in entries]
        return int(top), epoch, pubs

    def _decode(self, project: str, channel: str, offset: int, epoch: str, body: bytes) -> Publication:
        base = None
        if body[:1] == b"B":  # a map change with its key's previous entry (see redis_scripts.MAP_UPDATE)
            colon = body.index(b":")
            end = colon + 1 + int(body[1:colon])
            base = self._decode(project, channel, 0, epoch, body[colon + 1:end])
            body = body[end:]
        fields = _unpack(body)
        uid, data, info, client, ts = fields[:5]
        meta = None
        n = len(fields)
        if n > 5 and fields[5] is not None and self.hub.meta_codec is not None:
            meta = self.hub.meta_codec[1](fields[5])
        tags = fields[6] if n > 6 else None  # Centrifugo publication tags
        raw = fields[7] if n > 7 else None  # the exact bytes a Protobuf client published
        if n <= 8:
            return Publication(uid, project, channel, data, info, client, ts, offset, epoch, meta, tags, raw)
        return Publication(uid, project, channel, data, info, client, ts, offset, epoch, meta, tags, raw, key=fields[8],
                           removed=n > 9 and bool(fields[9]), base=base)

    # -- publications and streams ---------------------------------------------------------------
    async def publish(self, project: str, channel: str, options: NamespaceOptions,
                      pubs: list[Publication]) -> list[Publication]:
        name, meta, stream = self._keys(project, channel)
        codec = self.hub.meta_codec
        bodies = [_pack(_fields(p, codec)) for p in pubs]
        size = options.history_size if options.keeps_history else 0
        first, epoch, receivers = await self._script(
            "publish", (meta, stream, name), size, int(options.history_lifetime * 1000), self.meta_ttl, new_epoch(), *bodies)
        if size:
            epoch = epoch.decode()
            for i, pub in enumerate(pubs):
                pub.offset, pub.epoch = first + i, epoch
        if not receivers:
            self.hub.stats.messages_dropped += len(pubs)
        return pubs

    async def history(self, project: str, channel: str, options: NamespaceOptions, *, limit: int | None,
                      since: int | None, newest_first: bool, before: int | None = None) -> HistoryResult:
        if before is None:
            top, epoch, pubs = await self._read(project, channel, options, since=since, limit=limit, newest_first=newest_first)
            return HistoryResult(pubs, top, epoch)
        # Before a position (Centrifugo's reverse history from `since`): the stream is at most history_size long.
        top, epoch, pubs = await self._read(project, channel, options, since=since, limit=None, newest_first=newest_first)
        pubs = [p for p in pubs if p.offset < before]
        return HistoryResult(pubs if limit is None or limit < 0 else pubs[:limit], top, epoch)

    async def stream_position(self, project: str, channel: str, options: NamespaceOptions) -> tuple[int, str]:
        top, epoch, _ = await self._read(project, channel, options, since=None, limit=0, create=True)
        return top, epoch

    async def remove_history(self, project: str, channel: str) -> None:
        _, _, stream = self._keys(project, channel)
        try:
            await self.cmd.execute("DEL", stream)
        except (ConnectionLost, RedisError):
            raise Unavailable() from None

    # -- map channels (Centrifugo's map subscriptions) --------------------------------------------
    def _map_keys(self, project: str, channel: str) -> tuple[bytes, bytes, bytes]:
        """A map channel's entries hash, deadlines zset and keys zset (in key order)."""
        tag, p = self._tag(project, channel), self.prefix
        return f"{p}.map.{tag}".encode(), f"{p}.mapt.{tag}".encode(), f"{p}.mapk.{tag}".encode()

    def _map_args(self, project: str, channel: str, options: NamespaceOptions, pub: Publication,
                  mode: str) -> tuple[tuple[bytes, ...], list[Any]]:
        """The keys and arguments of redis_scripts.MAP_UPDATE for `pub`."""
        name, meta, stream = self._keys(project, channel)
        entries, deadlines, order = self._map_keys(project, channel)
        size = options.history_size if options.keeps_history else 0
        now_ms = int(self.clock() * 1000)
        return (meta, stream, name, entries, deadlines, order), [
            size, int(options.history_lifetime * 1000), self.meta_ttl, new_epoch(), pub.key,
            _pack(_fields(pub, self.hub.meta_codec)), 1 if pub.removed else 0, mode, int(options.map_key_ttl * 1000),
            now_ms, 1 if options.delta_fossil else 0]

    def _map_done(self, project: str, channel: str, pub: Publication, reply: Any) -> Publication | None:
        """Account for MAP_UPDATE's reply: None if nothing was done; else `pub` placed in the stream, and its key's
        deadline registered for the expiry sweep of every node."""
        if reply[0] == -1:
            return None
        offset, epoch, receivers, expires = reply
        if epoch:
            pub.offset, pub.epoch = int(offset), epoch.decode() if isinstance(epoch, bytes) else epoch
        if expires:
            self.cmd.send_nowait("ZADD", self._map_registry, int(expires), _pack([project, channel, pub.key]))
        if not receivers:
            self.hub.stats.messages_dropped += 1
        return pub

    async def map_update(self, project: str, channel: str, options: NamespaceOptions,
                         pub: Publication) -> Publication | None:
        keys, args = self._map_args(project, channel, options, pub, "")
        return self._map_done(project, channel, pub, await self._script("map_update", keys, *args))

    def map_presence(self, project: str, channel: str, options: NamespaceOptions, pub: Publication) -> None:
        """Queued, written in order by `_map_presence_writer` (an entry already there is not announced again). This
        node's entries are kept, to add them again if Redis comes back without them."""
        mine = self._map_members.setdefault((project, channel), {})
        if pub.removed:
            mine.pop(pub.key, None)  # type: ignore[arg-type]
            if not mine:
                del self._map_members[(project, channel)]
        else:
            mine[pub.key] = (options, pub)  # type: ignore[index]
        self._map_writes.send_nowait((project, channel, options, pub))

    async def _map_presence_writer(self) -> None:
        """Map clients entries in the order their sessions came and went, what is queued sent in one round."""
        rx = self._map_writes_rx
        while True:
            batch = [await rx.receive()]
            while len(batch) < 1000:
                try:
                    batch.append(rx.receive_nowait())
                except trio.WouldBlock:
                    break
            commands = []
            for project, channel, options, pub in batch:
                keys, args = self._map_args(project, channel, options, pub, "" if pub.removed else "if_new")
                commands.append(("EVALSHA", self.shas["map_update"], len(keys), *keys, *args))
            try:
                replies = await self.cmd.execute_many(commands)
            except ConnectionLost:
                log.warning("redis unavailable: %d map clients entr(ies) not written", len(batch))
                continue
            for (project, channel, _options, pub), reply in zip(batch, replies, strict=True):
                if isinstance(reply, RedisError):
                    log.error("redis: map clients entry not written: %s", reply)
                else:
                    self._map_done(project, channel, pub, reply)

    async def map_snapshot(self, project: str, channel: str, options: NamespaceOptions, cursor: str = "",
                           limit: int | None = None) -> MapSnapshot:
        """With a stream: entries and top offset read in one step (the subscriber then recovers from that offset).
        Without: this node subscribes the channel first, reads the entries and their sequence, waits until it has
        received every change up to that sequence (a PING through the PUB/SUB connection), and applies those it
        received after it: the entries are then as of what this node has delivered, so a session attached without
        suspending misses nothing and gets nothing twice."""
        meta = self._keys(project, channel)[1]
        entries_key, _, order = self._map_keys(project, channel)
        keys = (meta, entries_key, order)
        history = options.keeps_history
        args = (1 if history else 0, new_epoch(), int(options.history_lifetime * 1000), self.meta_ttl, cursor)
        if history:
            top, epoch, flat = await self._script("map_read", keys, *args, -1 if limit is None else limit + 1)
            epoch = epoch.decode()
            raw: dict[bytes, Any] = dict(zip(flat[::2], flat[1::2], strict=True))
            return MapSnapshot(self._map_page(project, channel, epoch, raw, cursor, limit), int(top), epoch)
        st = await self._ensure(project, channel, options)
        extra = 64  # entries read beyond the page: room for the changes received after the read
        for _ in range(3):
            count = -1 if limit is None else limit + 1 + extra
            seq, epoch, flat = await self._script("map_read", keys, *args, count)
            seq, epoch = int(seq), epoch.decode()
            await self._ps_sync()
            if not st.synced:
                raise Unavailable()
            if st.recent is None:  # nothing received since this node subscribed: it follows the sequence from here
                st.recent, st.offset, st.epoch = deque(maxlen=TAIL_CACHE), seq, epoch
            newer = [(s, pub) for s, pub in st.recent if s > seq]
            if epoch != st.epoch or [s for s, _ in newer] != list(range(seq + 1, st.offset + 1)):
                continue  # not lined up (PUB/SUB reconnected meanwhile, or Redis lost the state): read again
            if count >= 0 and len(flat) // 2 == count and len(newer) > extra:
                extra = len(newer) + 64  # more removals than the read has room for: read a longer page
                continue
            raw = dict(zip(flat[::2], flat[1::2], strict=True))
            for _, pub in newer:
                if pub.removed:
                    raw.pop(pub.key.encode(), None)  # type: ignore[union-attr]
                else:
                    raw[pub.key.encode()] = pub  # type: ignore[union-attr]
            return MapSnapshot(self._map_page(project, channel, "", raw, cursor, limit), 0, "")
        raise Unavailable()

    async def map_stats(self, project: str, channel: str, options: NamespaceOptions) -> int:
        try:
            return int(await self.cmd.execute("HLEN", self._map_keys(project, channel)[0]))
        except (ConnectionLost, RedisError):
            raise Unavailable() from None

    async def map_clear(self, project: str, channel: str, options: NamespaceOptions) -> None:
        """One Lua call (redis_scripts.MAP_CLEAR); the nodes following the channel then see `_map_cleared`."""
        name, meta, stream = self._keys(project, channel)
        entries, deadlines, order = self._map_keys(project, channel)
        await self._script("map_clear", (meta, stream, entries, deadlines, order, name),
                           new_epoch() if options.keeps_history else "", int(options.history_lifetime * 1000),
                           self.meta_ttl)

    def _map_cleared(self, st: ChannelState, epoch: str) -> None:
        """A map channel with a stream was cleared: this node follows its new epoch from offset 0, and the local
        subscribers of the old one are told insufficient state by the next change (Centrifugo's epoch check)."""
        if not st.synced:
            return  # the resync reads the new epoch and tells every local subscriber
        stale = self.hub.local_subscribers(st.project, st.channel)
        if stale:
            self._cleared[(st.project, st.channel)] = stale
        st.epoch, st.offset = epoch, 0
        st.cache.clear()
        st.pending.clear()

    def _map_page(self, project: str, channel: str, epoch: str, raw: dict[bytes, Any], cursor: str,
                  limit: int | None) -> list[Publication]:
        """Entries after key `cursor`, sorted, `limit` + 1 of them (all without a limit): only those are decoded.
        `raw`: key -> "offset:body" as stored, or a publication received since. UTF-8 bytes sort as the keys do."""
        keys = sorted(raw)
        start = bisect.bisect_right(keys, cursor.encode()) if cursor else 0
        out = []
        for k in keys[start:] if limit is None else keys[start:start + limit + 1]:
            value = raw[k]
            if isinstance(value, bytes):
                offset, _, body = value.partition(b":")
                value = self._decode(project, channel, int(offset), epoch, body)
            out.append(value)
        return out

    def _map_seen(self, st: ChannelState, seq: int, epoch: str, pub: Publication, out: list[Publication]) -> None:
        """A change of a streamless map channel received: remembered (with its sequence) for `map_snapshot`, then
        added to `out`. A change missed (PUB/SUB reconnected) or a new sequence (Redis lost the state): see `_map_lost`."""
        recent = st.recent
        if recent is None:
            recent = st.recent = deque(maxlen=TAIL_CACHE)
        elif seq != st.offset + 1 or (st.epoch and epoch != st.epoch):  # "": no sequence yet when it was read
            if out:
                self.hub.deliver(st.project, st.channel, out[:])
                out.clear()
            self._map_lost(st)
        st.offset, st.epoch = seq, epoch
        recent.append((seq, pub))
        out.append(pub)

    def _map_lost(self, st: ChannelState) -> None:
        """This node missed changes of a streamless map channel: its local subscribers' entries are not the channel's
        any more; they are told (insufficient state: an SDK client subscribes again, from the state)."""
        assert st.recent is not None
        st.recent.clear()
        self.hub.insufficient_state(st.project, st.channel)

    async def _map_recheck(self, states: list[ChannelState]) -> None:
        """After a PUB/SUB reconnect: the streamless map channels this node follows, checked against their sequence in
        Redis once everything sent before the read has arrived (changes published while it was away were lost)."""
        try:
            replies = await self.cmd.execute_many([("HMGET", st.meta, "m", "me") for st in states])
            await self._ps_sync()
        except (ConnectionLost, Unavailable):
            return  # the next reconnect checks again; a change arriving meanwhile shows the gap itself
        for st, reply in zip(states, replies, strict=True):
            if isinstance(reply, RedisError) or st.recent is None or self._subs.get((st.project, st.channel)) is not st:
                continue
            seq, epoch = int(reply[0] or 0), (reply[1] or b"").decode()
            if epoch != st.epoch or seq > st.offset:
                self._map_lost(st)
                st.offset, st.epoch = seq, epoch

    async def _map_expiry(self) -> None:
        """Remove the map keys whose TTL is over, telling their subscribers everywhere (Centrifugo's cleanup). Every
        node sweeps; each removal is a MAP_UPDATE that checks the key's own deadline, so a key goes once."""
        hub = self.hub
        now_ms = int(self.clock() * 1000)
        due = await self.cmd.execute("ZRANGEBYSCORE", self._map_registry, "-inf", now_ms, "LIMIT", 0, 1000)
        if not due:
            return
        commands = []
        for member in due:
            project, channel, key = _unpack(member)
            try:
                options = hub.channel(project, channel).options
            except HubError:  # its project or namespace went with a reload: remove it quietly
                options = NamespaceOptions()
            pub = Publication(hub.new_uid(), project, channel, None, None, None, now_ms / 1000, 0, "", key=key,
                              removed=True)
            keys, args = self._map_args(project, channel, options, pub, "expired")
            args[9] = now_ms  # the deadline the registry was read against
            commands.append(("EVALSHA", self.shas["map_update"], len(keys), *keys, *args))
            commands.append(("EVALSHA", self.shas["map_done"], 1, self._map_registry, member, now_ms))
        replies = await self.cmd.execute_many(commands)
        for reply in replies:
            if isinstance(reply, RedisError):
                log.error("redis: map key expiry failed: %s", reply)
                break

    def _map_ttls(self) -> bool:
        """Whether some namespace has map keys that expire (else housekeeping does not ask Redis for due keys)."""
        return any(o.map_key_ttl > 0 for p in self.hub.projects.values() for o in (p.options, *p.namespaces.values()))

    async def _map_sweep(self) -> None:
        """One sweep at a time, started by housekeeping; a failure is logged and the next housekeeping tries again."""
        try:
            await self._map_expiry()
        except (ConnectionLost, RedisError) as exc:
            log.warning("redis: map key expiry: %s", exc)
        except Exception:
            log.exception("redis: map key expiry failed")
        finally:
            self._sweeping = False

    # -- node-level subscriptions ----------------------------------------------------------------
    async def subscribe(self, project: str, channel: str, options: NamespaceOptions) -> None:
        await self._ensure(project, channel, options)

    async def _ensure(self, project: str, channel: str, options: NamespaceOptions) -> ChannelState:
        if not self._ps_up:
            raise Unavailable()
        key = (project, channel)
        now = self.clock()
        st = self._subs.get(key)
        if st is None:
            st = ChannelState(project, channel, self._keys(project, channel), options, now)
            self._subs[key] = st
            self._by_name[st.name] = st
            assert self._nursery is not None
            self._nursery.start_soon(self._sync_new, st)
        self._touch(st, now)
        if not st.ready.is_set():
            with trio.move_on_after(self.timeout):
                await st.ready.wait()
        if not st.synced:
            raise Unavailable()
        self._touch(st, self.clock())
        return st

    def _touch(self, st: ChannelState, now: float) -> None:
        st.touched = now
        self._touches.append((now, st))

    def unsubscribe(self, project: str, channel: str) -> None:
        st = self._subs.get((project, channel))
        if st is not None:
            self._touch(st, self.clock())  # lingers `linger` s, then housekeeping unsubscribes

    async def _ps_send(self, *commands: tuple[Any, ...]) -> None:
        conn = self._ps
        if conn is None:
            return
        async with self._ps_lock:
            try:
                await conn.send(b"".join(pack_command(c) for c in commands))
            except ConnectionLost:
                pass  # the PUB/SUB loop notices and resubscribes everything

    async def _sync_new(self, st: ChannelState) -> None:
        """First local subscriber of a channel: SUBSCRIBE; once Redis acknowledges it, the syncer reads
        the position (arrivals meanwhile are held and merged by offset)."""
        await self._ps_send(("SUBSCRIBE", st.name))

    async def _syncer(self) -> None:
        """Bring every acknowledged, unsynced channel in sync, retrying while the command connection is down."""
        while True:
            await self._sync_wanted.wait()
            self._sync_wanted = trio.Event()
            while True:
                states = [st for st in self._subs.values() if st.acked and not st.synced]
                if not states:
                    break
                if self.cmd.connected:
                    for i in range(0, len(states), 1000):
                        await self._resync(states[i:i + 1000])
                if any(st.acked and not st.synced for st in self._subs.values()):
                    await trio.sleep(0.05)

    async def _resync(self, states: list[ChannelState]) -> None:
        """Read the stream position (and, for a channel this node was already delivering, what it missed)
        of each channel in one pipelined round, then deliver in order or declare insufficient state."""
        hist = [st for st in states if st.history]
        for st in states:
            if not st.history:
                self._synced(st)
        maps = [st for st in states if st.recent is not None]
        if maps and self._nursery is not None:
            self._nursery.start_soon(self._map_recheck, maps)
        if not hist:
            return
        commands = []
        known = [bool(st.epoch) for st in hist]
        for st, k in zip(hist, known, strict=True):
            commands.append(("EVALSHA", self.shas["read"], 2, st.meta, st.stream, st.offset if k else -1,
                             -1 if k else 0, 0, 1, new_epoch(), st.lifetime_ms, self.meta_ttl))
        try:
            replies = await self.cmd.execute_many(commands)
        except ConnectionLost:
            log.warning("redis: could not read stream positions of %d channel(s); retrying", len(hist))
            return  # stays unsynced; the PUB/SUB loop retries
        for st, k, reply in zip(hist, known, replies, strict=True):
            if isinstance(reply, RedisError):
                log.error("redis: position read failed: %s", reply)
                continue
            if self._subs.get((st.project, st.channel)) is not st or st.synced:
                continue
            top, epoch, entries = reply
            top, epoch = int(top), epoch.decode()
            if not k:
                st.offset, st.epoch = top, epoch
            elif epoch != st.epoch or (entries and int(entries[0][0].split(b"-", 1)[0]) != st.offset + 1) or (
                    not entries and top > st.offset):
                self.hub.insufficient_state(st.project, st.channel)
                st.offset, st.epoch = top, epoch
                st.cache.clear()
            else:
                pubs = [self._decode(st.project, st.channel, int(eid.split(b"-", 1)[0]), epoch, f[1]) for eid, f in entries]
                pubs = [p for p in pubs if p.offset > st.offset]
                if pubs:
                    st.offset = pubs[-1].offset
                    st.cache.extend(pubs)
                    self.hub.deliver(st.project, st.channel, pubs)
            self._synced(st)

    def _synced(self, st: ChannelState) -> None:
        st.synced = True
        held, st.held = st.held, []
        out: list[Publication] = []
        for offset, epoch, body in held:
            self._arrive(st, offset, epoch, body, out)
        if out:
            self.hub.deliver(st.project, st.channel, out)
        st.ready.set()

    # -- what arrives on PUB/SUB -----------------------------------------------------------------
    def _arrive(self, st: ChannelState, offset: int, epoch: str, body: bytes, out: list[Publication]) -> None:
        """One publication of a history channel in arrival order; accepted ones go to `out` (delivered by the caller)."""
        if not st.synced:
            st.held.append((offset, epoch, body))
            return
        if epoch != st.epoch:
            # The stream restarted under a new epoch (Redis lost it): nobody here may silently miss anything.
            if out:
                self.hub.deliver(st.project, st.channel, out[:])
                out.clear()
            self.hub.insufficient_state(st.project, st.channel)
            st.epoch, st.offset = epoch, offset - 1
            st.cache.clear()
            st.pending.clear()
        if offset <= st.offset:
            return  # already delivered
        if offset > st.offset + 1:
            st.pending[offset] = (epoch, body)
            if not st.filling:
                st.filling = True
                self._fills.send_nowait(st)
            return
        if self._cleared:
            stale = self._cleared.pop((st.project, st.channel), None)
            if stale:
                self.hub.insufficient_state(st.project, st.channel, only=stale)
        pub = self._decode(st.project, st.channel, offset, epoch, body)
        st.offset = offset
        st.cache.append(pub)
        out.append(pub)
        while st.pending and st.offset + 1 in st.pending:
            epoch, body = st.pending.pop(st.offset + 1)
            pub = self._decode(st.project, st.channel, st.offset + 1, epoch, body)
            st.offset += 1
            st.cache.append(pub)
            out.append(pub)

    async def _filler(self) -> None:
        """Gaps (a publication arrived before ones it follows): read the missing ones from the stream."""
        async for st in self._fills_rx:
            try:
                await self._fill(st)
            finally:
                st.filling = False

    async def _fill(self, st: ChannelState) -> None:
        while st.pending and self._subs.get((st.project, st.channel)) is st:
            want_to = min(st.pending) - 1
            try:
                _, epoch, pubs = await self._read(st.project, st.channel, NamespaceOptions(history_size=1, history_lifetime=1),
                                                  since=st.offset, limit=want_to - st.offset)
            except Unavailable:
                await trio.sleep(0.1)
                continue
            if not st.pending:
                break
            out: list[Publication] = []
            pubs = [p for p in pubs if st.offset < p.offset <= want_to]
            if epoch == st.epoch and pubs and pubs[0].offset == st.offset + 1 and pubs[-1].offset == want_to and \
                    all(b.offset == a.offset + 1 for a, b in zip(pubs, pubs[1:], strict=False)):
                st.offset = want_to
                st.cache.extend(pubs)
                out.extend(pubs)
            elif st.offset < want_to:
                self.hub.insufficient_state(st.project, st.channel)
                st.offset = want_to
                st.cache.clear()
            while st.pending and st.offset + 1 in st.pending:
                e, body = st.pending.pop(st.offset + 1)
                pub = self._decode(st.project, st.channel, st.offset + 1, e, body)
                st.offset += 1
                st.cache.append(pub)
                out.append(pub)
            if out:
                self.hub.deliver(st.project, st.channel, out)

    def _on_messages(self, replies: list[Any]) -> None:
        """Replies read in one go from the PUB/SUB connection, in order. Consecutive publications of one
        channel are delivered as one batch (one push per subscriber)."""
        hub = self.hub
        run_st: ChannelState | None = None
        run: list[Publication] = []
        for reply in replies:
            kind = reply[0]
            if kind == b"message":
                name, data = reply[1], reply[2]
                st = self._by_name.get(name)
            elif kind == b"pmessage":
                name, data = reply[2], reply[3]
                if name in self._by_name:
                    continue  # this node subscribes the channel itself: it comes as a message too
                st = None
            else:
                self._on_reply(reply)
                continue
            if st is not None and data.startswith(b"__c:"):  # a map cleared (redis_scripts.MAP_CLEAR)
                if run:
                    hub.deliver(run_st.project, run_st.channel, run)  # type: ignore[union-attr]
                    run = []
                self._map_cleared(st, data[4:-2].decode())
                continue
            if st is not None and (data.startswith(b"__p") or data.startswith(b"__m")):
                if st is not run_st:
                    if run:
                        hub.deliver(run_st.project, run_st.channel, run)  # type: ignore[union-attr]
                        run = []
                    run_st = st
                if data.startswith(b"__p1:"):
                    end = data.index(b"__", 5)
                    offset_s, _, epoch_b = data[5:end].partition(b":")
                    self._arrive(st, int(offset_s), epoch_b.decode(), data[end + 2:], run)
                elif data.startswith(b"__p0__"):
                    run.append(self._decode(st.project, st.channel, 0, "", data[6:]))
                elif data.startswith(b"__m0:"):
                    end = data.index(b"__", 5)
                    seq, _, epoch_b = data[5:end].partition(b":")
                    pub = self._decode(st.project, st.channel, 0, "", data[end + 2:])
                    self._map_seen(st, int(seq), epoch_b.decode(), pub, run)
                continue
            if run:
                hub.deliver(run_st.project, run_st.channel, run)  # type: ignore[union-attr]
                run = []
            if name == self.control_name:
                self._on_control(data)
            elif data.startswith(b"__p1:"):
                end = data.index(b"__", 5)
                offset_s, _, epoch_b = data[5:end].partition(b":")
                self._deliver_unsubscribed(name, data[end + 2:], int(offset_s), epoch_b.decode())
            elif data.startswith(b"__p0__"):
                self._deliver_unsubscribed(name, data[6:], 0, "")
            elif data.startswith(b"__m0:"):
                self._deliver_unsubscribed(name, data[data.index(b"__", 5) + 2:], 0, "")
            elif st is not None and data[:5] in (b"__J__", b"__L__", b"__j__", b"__l__"):
                record = _unpack(data[5:])
                if data[2:3] in b"JL":  # [node, record]: this node's own were delivered when sent
                    node, record = record
                    if node == hub.node_id:
                        continue
                if data[2:3] in b"jJ":
                    hub.deliver_join(st.project, st.channel, record)
                else:
                    hub.deliver_leave(st.project, st.channel, record)
        if run and run_st is not None:
            hub.deliver(run_st.project, run_st.channel, run)

    def _deliver_unsubscribed(self, name: bytes, body: bytes, offset: int, epoch: str) -> None:
        key = self._parse_name(name)
        if key is not None:
            self.hub.deliver(key[0], key[1], [self._decode(key[0], key[1], offset, epoch, body)])

    def _on_reply(self, reply: list[Any]) -> None:
        kind = reply[0]
        if kind == b"subscribe":
            st = self._by_name.get(reply[1])
            if st is not None and not st.acked:
                st.acked = True
                self._sync_wanted.set()
        elif kind == b"pong":
            event = self._barrier.pop(reply[1], None)
            if event is not None:
                event.set()

    def _on_control(self, data: bytes) -> None:
        try:
            message = _unpack(data)
        except Exception:
            log.warning("redis: unreadable control message")
            return
        if not isinstance(message, dict) or message.get("node") == self.hub.node_id:
            return
        if message.get("op") == "node":
            message["received"] = self.clock()
            self._nodes[message["node"]] = message
        elif self._nursery is not None:
            self._nursery.start_soon(self.hub.on_control, message)

    # -- the PUB/SUB connection ------------------------------------------------------------------
    async def _pubsub(self, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        attempt = 0
        started = False
        while True:
            try:
                conn = await Connection.open(self.addr, self.settings.connect_timeout)
            except (OSError, trio.TooSlowError, ConnectionLost, RedisError) as exc:
                if attempt == 0 or attempt % 50 == 0:
                    log.warning("redis PUB/SUB connection to %s failed: %s", self.addr, exc or type(exc).__name__)
                if not started and attempt >= 3:
                    started = True
                    task_status.started()
                await trio.sleep(backoff(attempt))
                attempt += 1
                continue
            try:
                async with trio.open_nursery() as nursery:
                    self._ps = conn
                    self._last_seen = trio.current_time()
                    nursery.start_soon(self._ps_reader, conn)
                    nursery.start_soon(self._ps_pinger, conn)
                    await self._ps_resubscribe(conn)
                    if attempt or self.pubsub_reconnects:
                        log.info("redis PUB/SUB connection to %s restored; %d channel(s) resynced", self.addr, len(self._subs))
                    attempt = 0
                    self.pubsub_reconnects += 1
                    if not started:
                        started = True
                        task_status.started()
                    # The reader and the pinger run until the connection fails.
            except* (ConnectionLost, trio.TooSlowError, hiredis.ProtocolError) as group:
                log.warning("redis PUB/SUB connection to %s lost: %s", self.addr, group.exceptions[0])
            except* Exception as group:  # never take the hub down: reconnect, and the resync covers any gap
                log.error("redis PUB/SUB connection to %s failed", self.addr, exc_info=group.exceptions[0])
            finally:
                self._ps = None
                self._ps_up = False
                for st in self._subs.values():
                    st.acked = st.synced = False
                    if st.ready.is_set():
                        st.ready = trio.Event()
                self._barrier.clear()
                await conn.aclose()
            await trio.sleep(backoff(attempt))
            attempt += 1

    async def _ps_resubscribe(self, conn: Connection) -> None:
        """(Re)subscribe everything, wait until Redis has acknowledged it all, then resync every channel."""
        names = [self.control_name, *self._by_name]
        async with self._ps_lock:
            for i in range(0, len(names), SUBSCRIBE_CHUNK):
                await conn.send(pack_command(("SUBSCRIBE", *names[i:i + SUBSCRIBE_CHUNK])))
            if self._watch_all:
                await conn.send(pack_command(("PSUBSCRIBE", self.all_pattern)))
        await self._ps_barrier(conn)
        self._ps_up = True
        # Every SUBSCRIBE is acknowledged by now; wait (bounded) for the syncer to resync them all.
        with trio.move_on_after(self.timeout * 4):
            while any(not st.synced for st in self._subs.values()):
                await trio.sleep(0.01)
        await self._refresh_presence()

    async def _ps_sync(self) -> None:
        """Wait until this node has received every PUB/SUB message Redis sent it before now (Unavailable if it cannot)."""
        conn = self._ps
        if conn is None:
            raise Unavailable()
        try:
            await self._ps_barrier(conn)
        except trio.TooSlowError:
            raise Unavailable() from None

    async def _ps_barrier(self, conn: Connection) -> None:
        """Wait until Redis has answered everything sent before (a PING with a token answers in order)."""
        token = new_epoch().encode()
        event = self._barrier[token] = trio.Event()
        async with self._ps_lock:
            await conn.send(pack_command(("PING", token)))
        with trio.fail_after(self.timeout + len(self._by_name) / 50000):
            await event.wait()

    async def _ps_reader(self, conn: Connection) -> None:
        reader = conn.reader
        while True:
            await conn.fill()
            self._last_seen = trio.current_time()
            replies = []
            while True:
                reply = reader.gets()
                if reply is False:
                    break
                replies.append(reply)
            if replies:
                self._on_messages(replies)

    async def _ps_pinger(self, conn: Connection) -> None:
        """Liveness: a PUB/SUB connection that stops answering is dropped and re-opened (a silently dead
        subscriber behind a green health check is the failure this prevents)."""
        interval = self.settings.ping_interval
        while True:
            await trio.sleep(interval)
            if trio.current_time() - self._last_seen > interval * 3:
                raise ConnectionLost(f"no answer on PUB/SUB for {interval * 3:.1f} s")
            async with self._ps_lock:
                await conn.send(pack_command(("PING",)))

    # -- recovery positions ----------------------------------------------------------------------
    async def position(self, project: str, channel: str, options: NamespaceOptions,
                       since: tuple[int, str] | None) -> StreamPosition:
        st = await self._ensure(project, channel, options)
        if since is not None and ((since[0] > st.offset and (not since[1] or since[1] == st.epoch)) or
                                  (since[1] and since[1] != st.epoch)):
            # The client has a position this node has not received yet (read from Redis: a map snapshot, another
            # node, a map's new epoch after a clear): wait until what was published before it has arrived here.
            await self._ps_sync()
        pos = StreamPosition(st.offset, st.epoch, since=since, read_top=st.offset)
        if since is None:
            return pos
        offset, epoch = since
        if (epoch and epoch != st.epoch) or offset < 0 or offset > st.offset:  # an empty epoch matches any (Centrifugo)
            return pos
        if offset == st.offset:
            pos.recovered = True
            return pos
        if st.cache and st.cache[0].offset <= offset + 1:
            pos.publications = [p for p in st.cache if p.offset > offset]
            pos.recovered = True
            return pos
        top, epoch, pubs = await self._read(project, channel, options, since=offset, limit=None)
        pos.publications = pubs
        pos.read_top = pubs[-1].offset if pubs else offset
        pos.recovered = epoch == st.epoch
        return pos

    def catch_up(self, project: str, channel: str, pos: StreamPosition) -> StreamPosition:
        st = self._subs.get((project, channel))
        if st is None or not st.synced:
            raise Unavailable()
        if st.epoch != pos.epoch:
            return StreamPosition(st.offset, st.epoch, since=pos.since, read_top=st.offset)
        top = st.offset
        if pos.since is None or not pos.recovered:
            pos.offset = top
            pos.publications, pos.recovered = [], pos.recovered and pos.since is not None and pos.since[0] == top
            return pos
        since = pos.since[0]
        pubs = [p for p in pos.publications if p.offset <= top]
        last = pubs[-1].offset if pubs else since
        if last < top:
            if not st.cache or st.cache[0].offset > last + 1:
                pos.offset, pos.publications, pos.recovered = top, [], False
                return pos
            pubs.extend(p for p in st.cache if p.offset > last)
        ok = since == top or (bool(pubs) and pubs[0].offset == since + 1 and pubs[-1].offset == top and
                              all(b.offset == a.offset + 1 for a, b in zip(pubs, pubs[1:], strict=False)))
        pos.offset = top
        pos.publications = pubs if ok else []
        pos.recovered = ok
        return pos

    # -- presence, join/leave ----------------------------------------------------------------------
    def presence_add(self, project: str, channel: str, client: str, record: dict[str, Any]) -> None:
        packed = _pack(record)
        self._presence.setdefault((project, channel), {})[client] = packed
        self._presence_write(project, channel, {client: packed})

    def _presence_write(self, project: str, channel: str, entries: dict[str, bytes]) -> None:
        zkey, hkey = self._presence_keys(project, channel)
        expires = self.clock() + self.presence_ttl
        zargs: list[Any] = []
        hargs: list[Any] = []
        for client, packed in entries.items():
            zargs += [expires, client]
            hargs += [client, packed]
        ttl = int(self.presence_ttl) + 1
        self.cmd.send_nowait("ZADD", zkey, *zargs)
        self.cmd.send_nowait("HSET", hkey, *hargs)
        self.cmd.send_nowait("EXPIRE", zkey, ttl)
        self.cmd.send_nowait("EXPIRE", hkey, ttl)

    def presence_remove(self, project: str, channel: str, client: str) -> None:
        local = self._presence.get((project, channel))
        if local is not None:
            local.pop(client, None)
            if not local:
                del self._presence[(project, channel)]
        zkey, hkey = self._presence_keys(project, channel)
        self.cmd.send_nowait("ZREM", zkey, client)
        self.cmd.send_nowait("HDEL", hkey, client)

    async def presence(self, project: str, channel: str) -> dict[str, dict[str, Any]]:
        zkey, hkey = self._presence_keys(project, channel)
        flat = await self._script("presence", (zkey, hkey), self.clock())
        return {flat[i].decode(): _unpack(flat[i + 1]) for i in range(0, len(flat), 2)}

    async def _refresh_presence(self) -> None:
        for (project, channel), entries in list(self._presence.items()):
            items = list(entries.items())
            for i in range(0, len(items), 1000):
                self._presence_write(project, channel, dict(items[i:i + 1000]))
            await trio.lowlevel.checkpoint()

    async def _presence_refresher(self) -> None:
        while True:
            await trio.sleep(self.presence_ttl / 3)
            if self.cmd.connected:
                await self._refresh_presence()

    def join(self, project: str, channel: str, record: dict[str, Any]) -> None:
        """Delivered here at once (as the memory engine does: a session that hushes its own join until its subscribe
        reply gets it once), and to the other nodes through PUB/SUB."""
        self.hub.deliver_join(project, channel, record)
        self.cmd.send_nowait("PUBLISH", self._keys(project, channel)[0], b"__J__" + _pack([self.hub.node_id, record]))

    def leave(self, project: str, channel: str, record: dict[str, Any]) -> None:
        self.hub.deliver_leave(project, channel, record)
        self.cmd.send_nowait("PUBLISH", self._keys(project, channel)[0], b"__L__" + _pack([self.hub.node_id, record]))

    # -- cluster -----------------------------------------------------------------------------------
    def control(self, message: dict[str, Any]) -> None:
        message = {**message, "node": self.hub.node_id}
        if not self.cmd.send_nowait("PUBLISH", self.control_name, _pack(message)):
            log.warning("redis unavailable: control %r reached this node only", message.get("op"))

    def nodes(self) -> dict[str, dict[str, Any]]:
        return dict(self._nodes)

    def watch_all(self, on: bool) -> None:
        self._watch_all = on
        if self._nursery is not None and self._ps is not None:
            self._nursery.start_soon(self._ps_send, ("PSUBSCRIBE" if on else "PUNSUBSCRIBE", self.all_pattern))

    async def _heartbeats(self) -> None:
        while True:
            if self.cmd.connected:
                hub = self.hub
                # the channel list only while it is small: built every beat, it would cost 30 ms at 100,000
                channels = hub.local_channels() if len(hub._channels) <= 10000 else {}
                beat = {"op": "node", "node": hub.node_id, "name": hub.node_name, "updated": self.clock(),
                        "stats": hub.stats_snapshot(), "projects": hub.project_counts(), "channels": channels}
                self.cmd.send_nowait("PUBLISH", self.control_name, _pack(beat))
            await trio.sleep(self.heartbeat)

    def expire(self, now: float) -> None:
        self.expire_some(now, None)

    def expire_some(self, now: float, budget: float | None) -> bool:
        """Forget nodes that stopped sending heartbeats, and UNSUBSCRIBE the channels whose linger is over (only
        the touches past it are looked at, in slices of about `budget` seconds); True if some are left. Map keys
        past their TTL are swept by a task of their own."""
        if not self._sweeping and self._nursery is not None and self.cmd.connected and self._map_ttls():
            self._sweeping = True  # map keys past their TTL
            self._nursery.start_soon(self._map_sweep)
        dead = [nid for nid, n in self._nodes.items() if n["received"] < now - self.heartbeat * 3 - 1]
        for nid in dead:
            log.info("node %s (%s) stopped sending heartbeats", nid, self._nodes[nid].get("name"))
            del self._nodes[nid]
        local = self.hub._channels
        touches, subs, cutoff = self._touches, self._subs, now - self.linger
        slicer = Slicer(budget)
        stale = []
        while touches and touches[0][0] < cutoff:
            if not slicer.more():
                break
            when, st = touches.popleft()
            key = (st.project, st.channel)
            # Touched again since (a later entry decides), gone, or subscribed here (its unsubscribe touches it):
            if st.touched == when and subs.get(key) is st and key not in local:
                stale.append(st)
        if stale:
            for st in stale:
                del subs[(st.project, st.channel)]
                self._by_name.pop(st.name, None)
            if self._nursery is not None and self._ps is not None:
                names = [st.name for st in stale]
                self._nursery.start_soon(self._ps_send, *[("UNSUBSCRIBE", *names[i:i + SUBSCRIBE_CHUNK])
                                                          for i in range(0, len(names), SUBSCRIBE_CHUNK)])
        return bool(touches) and touches[0][0] < cutoff

    # -- lifecycle ---------------------------------------------------------------------------------
    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await nursery.start(self.cmd.run)
            with trio.move_on_after(self.settings.connect_timeout):
                await self.cmd.ever_connected.wait()
            if not self.cmd.connected:
                log.error("redis at %s is not reachable; publishes fail until it is (retrying)", self.addr)
            await nursery.start(self._pubsub)
            for task in (self._filler, self._syncer, self._heartbeats, self._presence_refresher,
                         self._map_presence_writer):
                nursery.start_soon(self._guarded, task)
            log.info("redis engine: %s, prefix %r, node %s", self.addr, self.prefix, self.hub.node_id)
            task_status.started()

    async def _guarded(self, task: Any) -> None:
        """Run a background loop; an unexpected error is logged and the loop restarted, never the hub stopped."""
        while True:
            try:
                await task()
            except Exception:
                log.exception("redis engine: %s failed; restarting it", task.__name__)
                await trio.sleep(0.1)

    async def close(self) -> None:
        """Send what is queued (the leaving sessions' presence removals and leaves), then stop."""
        if self.cmd.connected:
            with trio.move_on_after(self.timeout):
                try:
                    await self.cmd.execute("PING")
                except (ConnectionLost, RedisError):
                    pass
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

