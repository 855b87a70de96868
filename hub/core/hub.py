"""The Hub: channels, subscriptions, presence, history, sessions and stats behind one small API."""

from __future__ import annotations

import dataclasses
import fnmatch
import heapq
import itertools
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import trio

from .channels import ChannelName, channel_options, parse_channel
from .errors import HubError, NotAvailable, PermissionDenied, ProjectNotFound, Unrecoverable
from .events import EventFeed, HubEvent
from .history import HistoryResult, Publication
from .options import NamespaceOptions, Project
from .outbox import Outbox, fan_out
from .patterns import TopicFilters
from .retained import RetainedStore
from .session import Session, WireFormat, new_client_id
from .stats import Stats
from .timers import Slicer

if TYPE_CHECKING:
    from hub.engine import Engine, StreamPosition

log = logging.getLogger("hub.core")

Key = tuple[str, str]
OPTIONS_CACHE = 1 << 14  # channel names whose options publishing remembers (past that, all are forgotten at once; ~4 MB)


class _SlowDrop:
    """A session outbox's overflow handler: drop the session as slow (counted), then run the transport's own."""

    __slots__ = ("hub", "session", "transport")

    def __init__(self, hub: Hub, session: Session, transport: Callable[[int], None] | None) -> None:
        self.hub, self.session, self.transport = hub, session, transport

    def __call__(self, messages: int) -> None:
        if not self.session.closed:
            self.hub._drop_slow(self.session, messages)
        if self.transport is not None:
            self.transport(messages)


class Hub:
    """The core every adapter feeds. Nothing here awaits a client; the coroutine methods are the ones an
    engine shared across processes may need to wait on (with the memory engine they never suspend).

    What is local lives here (sessions, this node's subscriber map, encode-once fan-out, counters);
    what every node must agree on (offsets, epochs, history, presence, control) is the engine's
    (`hub.engine`). Publications always come back from the engine through `deliver`, on the
    publishing node too, so each channel has one order: its offsets.
    """

    def __init__(
        self,
        projects: Iterable[Project] = (),
        *,
        max_queue_bytes: int = 1 << 20,
        clock: Callable[[], float] = time.time,
        engine: Engine | None = None,
        node_name: str | None = None,
    ) -> None:
        self.projects: dict[str, Project] = {p.key: p for p in projects}
        self.max_queue_bytes = max_queue_bytes
        self.clock = clock
        self.stats = Stats()
        self.events = EventFeed()
        self.sessions: dict[str, Session] = {}
        self._expiry_hook = self._schedule_expiry  # one bound method shared by every session
        self._by_user: dict[Key, Session | set[Session]] = {}  # a user's one session, or a set once they have several
        self._channels: dict[Key, dict[str, Session]] = {}
        self._options: dict[Key, NamespaceOptions] = {}  # see options_of
        self._subscriptions = 0
        self._filtered: dict[Key, int] = {}  # channels where some subscriber has a publication filter
        self._delta: dict[Key, int] = {}  # channels where some subscriber takes deltas
        self._last: dict[Key, Publication] = {}  # their latest publication: the base of the next delta
        # Topic-filter subscriptions (MQTT wildcards, shared groups) and retained publications: see patterns.py, retained.py.
        self.filters = TopicFilters()
        self.retained = RetainedStore()
        self.started_at = clock()
        self.node_id = secrets.token_hex(8)
        # Publication uids: this node's random id then a counter, 32 hex characters like the original's uuid4 hex,
        # unique across nodes and restarts without a random draw per publication.
        self._uid_seq = itertools.count(1)
        self.node_name = node_name or f"{socket.gethostname()}:{os.getpid()}"
        # Why this node wants every publication of every channel (event feed listeners, topic filters).
        self._watch_all: set[str] = set()
        self.events.on_change = lambda: self.need_all_publications("events", bool(self.events))
        self.filters.on_change = lambda on: self.need_all_publications("topic filters", on)
        # (encode, decode) of Publication.meta to and from msgpack-able values, set by the protocol that
        # attaches it (MQTT), so it survives a trip through a shared engine; without it, meta stays local.
        self.meta_codec: tuple[Callable[[Any], Any], Callable[[Any], Any]] | None = None
        # Connection lifetimes: a heap of (expires_at, seq, session); an entry whose time is no longer the
        # session's `expires_at` is stale (setting it pushes a new entry, see session.py).
        self._expiries: list[tuple[float, int, Session]] = []
        self._expiry_seq = 0
        # The longest a housekeeping step may hold the event loop (seconds) before it checkpoints.
        self.housekeeping_slice = 0.001
        # The runtime sets this to reload the config file when another node asks (control "reload").
        self.on_reload: Callable[[], Any] | None = None
        # Publishing in a protocol's own terms, registered by the adapter that owns them (MQTT: "mqtt", a message
        # with topic, payload bytes, QoS, retain and properties), so another adapter (the stats API's
        # /api/v4/mqtt/publish) can publish such a message through the core without importing that adapter.
        self.publishers: dict[str, Callable[..., Awaitable[Any]]] = {}
        if engine is None:
            from hub.engine import MemoryEngine

            engine = MemoryEngine()
        self.engine = engine
        engine.bind(self)

    # -- projects -------------------------------------------------------------------------
    def project(self, key: str) -> Project:
        try:
            return self.projects[key]
        except (KeyError, TypeError):
            raise ProjectNotFound() from None

    def set_projects(self, projects: Iterable[Project]) -> None:
        """Swap project settings in place (live reload); connections and history stay."""
        self.projects = {p.key: p for p in projects}
        self._options.clear()

    def channel(self, project: str, channel: object) -> ChannelName:
        return parse_channel(self.project(project), channel)

    def options_of(self, project: str, channel: str) -> NamespaceOptions:
        """The options that govern `channel`, checked as `channel()` checks it (the same errors); remembered per
        name, since publishing asks once per publication (forgotten when the projects change)."""
        try:
            return self._options[(project, channel)]
        except (KeyError, TypeError):
            pass
        options = channel_options(self.project(project), channel)
        cache = self._options
        if len(cache) >= OPTIONS_CACHE:
            cache.clear()
        cache[(project, channel)] = options
        return options

    # -- sessions -------------------------------------------------------------------------
    def connect(
        self,
        project: str,
        user: str,
        protocol: str,
        wire: WireFormat | None,
        *,
        info: Any = None,
        keepalive: int = 0,
        expires_at: float | None = None,
        outbox: Outbox | None = None,
        meta: dict[str, Any] | None = None,
        session_id: str | None = None,
    ) -> Session:
        """Register a new session of `protocol` for `user`; it appears in stats and presence."""
        self.project(project)
        session = Session(
            project=project,
            user=user,
            protocol=protocol,
            wire=wire,
            outbox=outbox or Outbox(self.max_queue_bytes),
            info=info,
            keepalive=keepalive,
            expires_at=expires_at,
            meta=meta or {},
            id=session_id or new_client_id(),
        )
        session.on_expiry = self._expiry_hook
        if expires_at is not None:
            self._schedule_expiry(session, expires_at)
        self._own_overflow(session)
        self.sessions[session.id] = session
        key = (project, user)
        others = self._by_user.get(key)
        if others is None:
            self._by_user[key] = session
        elif isinstance(others, set):
            others.add(session)
        else:
            self._by_user[key] = {others, session}
        self.stats.connections_total += 1
        if self.events:
            self.events.emit(HubEvent("connect", project, self._session_event(session)))
        return session

    def _own_overflow(self, session: Session) -> None:
        """An adapter's `outbox.send` that overflows drops the session as slow here (counted), then lets
        the transport's own handler (which picked the close code) run."""
        session.outbox.on_overflow = _SlowDrop(self, session, session.outbox.on_overflow)

    def close(self, session: Session, reason: str, reconnect: bool = True) -> None:
        """Close a session from the server side: disconnect notice, then its writer stops."""
        if session.closed:
            return
        session.close_reason = reason
        session.reconnect = reconnect
        if session.wire is not None:
            session.outbox.force(session.wire.disconnect(reason, reconnect))
        session.outbox.close()
        self._detach(session)

    def release(self, session: Session, reason: str = "connection closed") -> None:
        """The adapter lost the connection: forget the session (idempotent)."""
        if session.close_reason is None:
            session.close_reason = reason
            session.outbox.close()
        self._detach(session)

    def _detach(self, session: Session) -> None:
        if self.sessions.pop(session.id, None) is None:
            return
        for channel in list(session.channels):
            self._leave(session, channel)
        if self.filters:
            self.filters.discard_session(session)
        key = (session.project, session.user)
        users = self._by_user.get(key)
        if users is session:
            del self._by_user[key]
        elif isinstance(users, set):
            users.discard(session)
            if not users:
                del self._by_user[key]
        if self.events:
            data = self._session_event(session)
            data["reason"] = session.close_reason
            self.events.emit(HubEvent("disconnect", session.project, data))

    @staticmethod
    def _session_event(session: Session) -> dict[str, Any]:
        return {"client": session.id, "user": session.user, "protocol": session.protocol}

    def user_sessions(self, project: str, user: str) -> list[Session]:
        users = self._by_user.get((project, user))
        return [] if users is None else list(users) if isinstance(users, set) else [users]

    # -- subscriptions --------------------------------------------------------------------
    async def subscribe(
        self, session: Session, channel: str, channel_info: Any = None, *, private_ok: bool = False,
        authorized: bool = False, rejoin: bool = False,
    ) -> ChannelName:
        """Add `session` to `channel` (checked against the name rules); join pushes if enabled.

        `authorized`: the adapter granted this with its own access rules (MQTT ACLs), so the
        namespace's `anonymous` option does not apply; private and user-limited channels still do.
        Subscribing again only updates the channel info, unless `rejoin` (the original protocol
        announces every subscribe, repeated ones too).
        """
        name = self._check_subscribe(session, channel, private_ok, authorized)
        if channel in session.channels:
            self._resubscribe(session, channel, channel_info, name, rejoin)
            return name
        await self.engine.subscribe(session.project, channel, name.options)
        if session.closed:
            return name
        if channel in session.channels:
            self._resubscribe(session, channel, channel_info, name, rejoin)
            return name
        self._attach(session, channel, channel_info, name)
        return name

    def _resubscribe(self, session: Session, channel: str, channel_info: Any, name: ChannelName, rejoin: bool) -> None:
        """A repeated subscribe: new channel info; with `rejoin`, announced again as a join."""
        session.channels[channel] = channel_info
        if rejoin and name.options.join_leave:
            self.engine.join(session.project, channel, session.client_info(channel))

    async def subscribe_at(
        self, session: Session, channel: str, channel_info: Any = None, *, private_ok: bool = False,
        recover: tuple[int, str] | None = None, strict: bool = False, authorized: bool = False,
    ) -> StreamPosition:
        """Subscribe and tell where the subscriber starts: the channel's offset and epoch as this node
        has delivered them, and, with `recover=(offset, epoch)`, every publication after that offset
        (`recovered`), Centrifugo's rule. Nothing published meanwhile is missed or delivered twice.

        `strict`: raise Unrecoverable (and do not subscribe) when recovery is impossible.
        A channel without history starts at offset 0, epoch "".
        """
        from hub.engine import StreamPosition

        name = self._check_subscribe(session, channel, private_ok, authorized)
        if not name.options.keeps_history:
            await self.subscribe(session, channel, channel_info, private_ok=private_ok, authorized=authorized)
            return StreamPosition(0, "", since=recover)
        engine = self.engine
        pos = await engine.position(session.project, channel, name.options, recover)
        pos = engine.catch_up(session.project, channel, pos)  # from here on, no await until attached
        if strict and recover is not None and not pos.recovered:
            raise Unrecoverable()
        if session.closed:
            return pos
        if channel in session.channels:
            session.channels[channel] = channel_info
        else:
            self._attach(session, channel, channel_info, name)
        return pos

    def _check_subscribe(self, session: Session, channel: str, private_ok: bool, authorized: bool = False) -> ChannelName:
        name = self.channel(session.project, channel)
        if name.private and not private_ok:
            raise PermissionDenied()
        if not name.allows_user(session.user):
            raise PermissionDenied()
        if not session.user and not name.options.anonymous and not authorized:
            raise PermissionDenied()
        return name

    def _attach(self, session: Session, channel: str, channel_info: Any, name: ChannelName) -> None:
        session.channels[channel] = channel_info
        self._subscriptions += 1
        self._channels.setdefault((session.project, channel), {})[session.id] = session
        options = name.options
        if not (options.presence or options.join_leave or options.map_presence_prefix or self.events):
            return  # no one to tell: no client record made
        record = session.client_info(channel)
        if options.presence:
            self.engine.presence_add(session.project, channel, session.id, record)
        if options.join_leave:
            self.engine.join(session.project, channel, record)
        if options.map_presence_prefix:  # Centrifugo's map clients presence: an entry per subscriber
            self._map_presence(session.project, options.map_presence_prefix + channel, session.id, record)
        if self.events:
            self.events.emit(HubEvent("join", session.project, {"channel": channel, **record}))

    def unsubscribe_session(self, session: Session, channel: str, *, notify: bool = False) -> bool:
        """Remove `session` from `channel`; False (and no leave) if it was not subscribed."""
        if channel not in session.channels:
            return False
        if notify and session.wire is not None and not session.closed:
            session.outbox.force(session.wire.unsubscribe(channel))
        self._leave(session, channel)
        return True

    def set_filter(self, session: Session, channel: str, accept: Callable[[Publication], bool] | None) -> None:
        """Deliver to `session` only the publications of `channel` that `accept` (None: all of them)."""
        key = (session.project, channel)
        had = session.filters.pop(channel, None) is not None
        if had:
            self._filtered[key] -= 1
            if not self._filtered[key]:
                del self._filtered[key]
        if accept is not None:
            session.filters[channel] = accept
            self._filtered[key] = self._filtered.get(key, 0) + 1

    def set_delta(self, session: Session, channel: str, on: bool) -> None:
        """Deliver `channel` to `session` as deltas from the previous publication (its wire's `publication_delta`);
        the first publication it gets after this is whole."""
        key = (session.project, channel)
        if session.deltas.pop(channel, None) is not None:
            self._delta[key] -= 1
            if not self._delta[key]:
                del self._delta[key]
                self._last.pop(key, None)
        if on:
            session.deltas[channel] = False
            self._delta[key] = self._delta.get(key, 0) + 1

    def _leave(self, session: Session, channel: str) -> None:
        if channel in session.filters:
            self.set_filter(session, channel, None)
        if channel in session.deltas:
            self.set_delta(session, channel, False)
        record = session.client_info(channel)
        del session.channels[channel]
        self._subscriptions -= 1
        key = (session.project, channel)
        subs = self._channels.get(key)
        if subs is not None:
            subs.pop(session.id, None)
            if not subs:
                del self._channels[key]
                self.engine.unsubscribe(session.project, channel)
        project = self.projects.get(session.project)
        options = None
        if project is not None:
            try:
                options = parse_channel(project, channel).options
            except Exception:
                options = None
        if options is None or options.presence:
            self.engine.presence_remove(session.project, channel, session.id)
        if options is not None and options.join_leave:
            self.engine.leave(session.project, channel, record)
        if options is not None and options.map_presence_prefix:
            self._map_presence(session.project, options.map_presence_prefix + channel, session.id, None)
        if self.events:
            self.events.emit(HubEvent("leave", session.project, {"channel": channel, **record}))

    # -- what the engine hands back --------------------------------------------------------
    def deliver(self, project: str, channel: str, pubs: list[Publication]) -> None:
        """Publications of `channel`, in offset order, to this node's subscribers (called by the engine)."""
        stats = self.stats
        key = (project, channel)
        subs = self._channels.get(key)
        if not subs:
            targets = 0
        elif (self._filtered or self._delta) and (key in self._filtered or key in self._delta):  # tags filters, Fossil deltas
            targets = self._deliver_each(key, subs, pubs)
        else:
            targets = self._deliver(subs, pubs)
        watch_all = self._watch_all  # empty unless there are topic filters or event listeners (one check, not two)
        if watch_all and self.filters:  # topic-filter subscribers (MQTT wildcards) not already subscribed to the channel itself
            matched = self.filters.match(project, channel, subs)
            if matched:
                targets += self._deliver(matched, pubs)
        if not targets and self.engine.local_drops:
            # no subscriber, or only sessions without a wire format (nothing is queued to them)
            stats.messages_dropped += len(pubs)
        if watch_all and self.events:
            for pub in pubs:
                self.events.emit(HubEvent("publication", project, {"publication": pub}))

    def deliver_join(self, project: str, channel: str, record: dict[str, Any]) -> None:
        self._push_all(project, channel, lambda w: w.join(channel, record))

    def deliver_leave(self, project: str, channel: str, record: dict[str, Any]) -> None:
        self._push_all(project, channel, lambda w: w.leave(channel, record))

    def local_subscribers(self, project: str, channel: str) -> set[str]:
        """The ids of this node's sessions subscribed to `channel`."""
        return set(self._channels.get((project, channel), ()))

    def insufficient_state(self, project: str, channel: str, only: set[str] | None = None) -> int:
        """The node could not get every publication of `channel` (Redis lost them): no local subscriber
        may silently miss one. Sessions whose protocol can resubscribe and recover get its
        insufficient-state unsubscribe (SDK: code 2500, the client resubscribes with `recover` and
        learns `recovered: false`); the others are disconnected with reconnect. `only`: just these session
        ids. Returns how many."""
        subs = self._channels.get((project, channel))
        if not subs:
            return 0
        sessions = [s for sid, s in subs.items() if only is None or sid in only]
        if not sessions:
            return 0
        for session in sessions:
            notice = getattr(session.wire, "insufficient_state", None)
            if notice is not None and not session.closed:
                session.outbox.force(notice(channel))
                self._leave(session, channel)
            elif session.wire is not None:
                self.close(session, "insufficient state", reconnect=True)
            else:
                self._leave(session, channel)
        log.warning("%s/%s: insufficient state, %d local subscriber(s) told", project, channel, len(sessions))
        return len(sessions)

    def local_presence(self, project: str, channel: str) -> dict[str, dict[str, Any]]:
        subs = self._channels.get((project, channel), {})
        return {sid: s.client_info(channel) for sid, s in subs.items()}

    def local_channels(self) -> dict[str, dict[str, int]]:
        """This node's channels with local subscribers: project → channel → count."""
        out: dict[str, dict[str, int]] = {}
        for (project, channel), subs in self._channels.items():
            out.setdefault(project, {})[channel] = len(subs)
        return out

    def need_all_publications(self, reason: str, on: bool) -> None:
        """Ask the engine for every publication of every channel while some `reason` needs it (the event
        feed's listeners; topic-filter subscriptions such as MQTT wildcards, whose matching channels
        this node may not subscribe to). With several nodes that costs one pattern subscription."""
        before = bool(self._watch_all)
        if on:
            self._watch_all.add(reason)
        else:
            self._watch_all.discard(reason)
        if bool(self._watch_all) != before:
            self.engine.watch_all(bool(self._watch_all))

    # -- user operations, on every node ------------------------------------------------------
    async def subscribe_user(self, project: str, user: str, channel: str, *, client: str | None = None) -> int:
        """Server-side subscribe: every live session of `user` (or only `client`) joins `channel`, on every node."""
        self.channel(project, channel)
        self.engine.control({"op": "subscribe", "project": project, "user": user, "channel": channel, "client": client})
        return await self._subscribe_user(project, user, channel, client)

    async def _subscribe_user(self, project: str, user: str, channel: str, client: str | None) -> int:
        count = 0
        for session in self.user_sessions(project, user):
            if channel in session.channels or (client is not None and session.id != client):
                continue
            await self.subscribe(session, channel, private_ok=True)
            if session.wire is not None:
                frame = session.wire.subscribe(channel)
                if frame:
                    session.outbox.force(frame)
            count += 1
        return count

    async def unsubscribe(self, project: str, user: str, channel: str | None = None, *, client: str | None = None) -> int:
        """Forced unsubscribe of every session of `user` (or only `client`) from `channel`, or from every
        channel, on every node. Returns how many subscriptions this node removed."""
        self.project(project)
        self.engine.control({"op": "unsubscribe", "project": project, "user": user, "channel": channel, "client": client})
        return self._unsubscribe_user(project, user, channel, client)

    def _unsubscribe_user(self, project: str, user: str, channel: str | None, client: str | None) -> int:
        count = 0
        for session in self.user_sessions(project, user):
            if client is not None and session.id != client:
                continue
            targets = [channel] if channel is not None else list(session.channels)
            for ch in targets:
                if self.unsubscribe_session(session, ch, notify=True):
                    count += 1
        return count

    async def disconnect(self, project: str, user: str, reason: str = "disconnect", reconnect: bool = False, *,
                         client: str | None = None, whitelist: Iterable[str] = ()) -> int:
        """Close every session of `user` (or only `client`, never those in `whitelist`) with a disconnect
        notice, on every node. Returns how many sessions this node closed."""
        self.project(project)
        whitelist = list(whitelist)
        self.engine.control({"op": "disconnect", "project": project, "user": user, "reason": reason,
                             "reconnect": reconnect, "client": client, "whitelist": whitelist})
        return self._disconnect_user(project, user, reason, reconnect, client, whitelist)

    def _disconnect_user(self, project: str, user: str, reason: str, reconnect: bool, client: str | None,
                         whitelist: Iterable[str]) -> int:
        skip = set(whitelist)
        sessions = [s for s in self.user_sessions(project, user)
                    if (client is None or s.id == client) and s.id not in skip]
        for session in sessions:
            self.close(session, reason, reconnect)
        return len(sessions)

    async def refresh(self, project: str, user: str, *, client: str | None = None, expire_at: float | None = None,
                      expired: bool = False) -> int:
        """Server-side refresh of `user`'s sessions (or only `client`), on every node: `expired` closes them
        as expired; else `expire_at` (clock time; 0 or less: never) replaces their expiry."""
        self.project(project)
        self.engine.control({"op": "refresh", "project": project, "user": user, "client": client,
                             "expire_at": expire_at, "expired": expired})
        return self._refresh_user(project, user, client, expire_at, expired)

    def _refresh_user(self, project: str, user: str, client: str | None, expire_at: float | None, expired: bool) -> int:
        count = 0
        for session in self.user_sessions(project, user):
            if client is not None and session.id != client:
                continue
            count += 1
            if expired:
                self.close(session, "connection expired", True)
            elif expire_at is not None:
                session.expires_at = float(expire_at) if expire_at > 0 else None
        return count

    def reload_cluster(self) -> None:
        """Ask every other node to reload its own configuration file."""
        self.engine.control({"op": "reload"})

    async def on_control(self, message: dict[str, Any]) -> None:
        """A control message from another node."""
        op = message.get("op")
        try:
            if op == "disconnect":
                self._disconnect_user(message["project"], message["user"], message["reason"], message["reconnect"],
                                      message.get("client"), message.get("whitelist") or ())
            elif op == "unsubscribe":
                self._unsubscribe_user(message["project"], message["user"], message.get("channel"), message.get("client"))
            elif op == "subscribe":
                await self._subscribe_user(message["project"], message["user"], message["channel"], message.get("client"))
            elif op == "refresh":
                self._refresh_user(message["project"], message["user"], message.get("client"), message.get("expire_at"),
                                   bool(message.get("expired")))
            elif op == "reload" and self.on_reload is not None:
                self.on_reload()
        except Exception:
            log.exception("control message %r failed", op)

    # -- publishing -----------------------------------------------------------------------
    async def publish(
        self, project: str, channel: str, data: Any, info: Any = None, client: str | None = None, *, meta: Any = None,
        tags: dict[str, str] | None = None, skip_history: bool = False, raw: bytes | None = None,
    ) -> Publication:
        """Store (if the namespace keeps history and not `skip_history`) and deliver to every subscriber,
        encoding once per wire format.

        `meta`: what a protocol attaches for its own kind (MQTT: payload bytes, QoS, properties); see Publication.
        `tags` travel with the publication; `raw` are the exact bytes the publisher sent when it sent bytes
        (`data` is their JSON value, or a stand-in).
        """
        return (await self.publish_many(project, channel, [(data, info, client)], meta=None if meta is None else [meta],
                                        tags=tags, skip_history=skip_history, raw=raw))[0]

    async def publish_many(self, project: str, channel: str, items: list[tuple[Any, Any, str | None]], *,
                           meta: list[Any] | None = None, tags: dict[str, str] | None = None, skip_history: bool = False,
                           raw: bytes | None = None) -> list[Publication]:
        """Publish several (data, info, client) items to one channel in order; each subscriber gets them in one push.

        `meta`: one Publication.meta per item, or None; `tags`, `skip_history` apply to all; `raw` (one item only):
        the exact payload bytes."""
        options = self.options_of(project, channel)
        now = self.clock()
        node, seq = self.node_id, self._uid_seq
        pubs = [Publication(node + format(next(seq), "016x"), project, channel, data, info, client, now, 0, "",
                            meta[i] if meta else None, tags) for i, (data, info, client) in enumerate(items)]
        if raw is not None and len(pubs) == 1:
            pubs[0].raw = raw
        if skip_history and options.keeps_history:  # delivered, not stored: no offset (Centrifugo's skip_history)
            options = dataclasses.replace(options, history_size=0)
        self.stats.messages_in += len(pubs)
        try:
            return await self.engine.publish(project, channel, options, pubs)
        except BaseException:
            self.stats.messages_in -= len(pubs)
            raise

    async def publish_batch(self, project: str, items: list[tuple[str, Any]],
                            options: Mapping[str, Any] | None = None) -> None:
        """Publish `(channel, data)` items, each to its own channel, in order per channel: what a batch of API
        publish commands does, with the per-publication work done once per batch (one engine call; the
        memory engine delivers the whole batch without an await per channel, and a channel with several
        items gets them in one push). `options`: each item channel's `options_of`, when the caller has them."""
        now = self.clock()
        node, seq = self.node_id, self._uid_seq
        groups: dict[str, list[Publication]] = {}
        for channel, data in items:
            pub = Publication(node + format(next(seq), "016x"), project, channel, data, None, None, now, 0, "", None, None)
            pubs = groups.get(channel)
            if pubs is None:
                groups[channel] = [pub]
            else:
                pubs.append(pub)
        if options is None:
            options_of = self.options_of
            batch = [(channel, options_of(project, channel), pubs) for channel, pubs in groups.items()]
        else:
            batch = [(channel, options[channel], pubs) for channel, pubs in groups.items()]
        self.stats.messages_in += len(items)
        try:
            await self.engine.publish_batch(project, batch)
        except BaseException:
            self.stats.messages_in -= len(items)
            raise

    def new_uid(self) -> str:
        return self.node_id + format(next(self._uid_seq), "016x")  # half the f-string's 0.4 us

    async def map_publish(self, project: str, channel: str, key: str, data: Any, info: Any = None,
                          client: str | None = None, *, removed: bool = False, tags: dict[str, str] | None = None,
                          raw: bytes | None = None) -> Publication | None:
        """Set (or remove) one key of a map channel and deliver the change; None when removing a key not there."""
        name = self.channel(project, channel)
        if not name.options.is_map:
            raise NotAvailable()
        pub = Publication(self.new_uid(), project, channel, None if removed else data, info, client, self.clock(), 0, "",
                          None, tags, None if removed else raw, key=key, removed=removed)
        self.stats.messages_in += 1
        return await self.engine.map_update(project, channel, name.options, pub)

    async def map_stats(self, project: str, channel: str) -> int:
        """How many keys a map channel holds."""
        name = self.channel(project, channel)
        if not name.options.is_map:
            raise NotAvailable()
        return await self.engine.map_stats(project, channel, name.options)

    async def map_clear(self, project: str, channel: str) -> None:
        """Delete a map channel's keys and stream (Centrifugo's map_clear: subscribers are not told; see Engine)."""
        name = self.channel(project, channel)
        if not name.options.is_map:
            raise NotAvailable()
        await self.engine.map_clear(project, channel, name.options)

    def _map_presence(self, project: str, channel: str, client: str, record: dict[str, Any] | None) -> None:
        """Add (or, `record` None, remove) `client`'s entry in the map clients channel `channel` (fire and forget)."""
        try:
            options = self.channel(project, channel).options
        except HubError:
            return
        if not options.is_map:
            return
        pub = Publication(self.new_uid(), project, channel, None, record, client, self.clock(), 0, "", key=client,
                          removed=record is None)
        self.engine.map_presence(project, channel, options, pub)

    async def map_snapshot(self, project: str, channel: str, cursor: str = "", limit: int | None = None) -> Any:
        """A map channel's entries (sorted by key) and their stream position (hub.core.mapstate.MapSnapshot); with
        `cursor`/`limit`, at least those that page needs."""
        return await self.engine.map_snapshot(project, channel, self.channel(project, channel).options, cursor, limit)

    def _deliver_each(self, key: Key, subs: dict[str, Session], pubs: list[Publication]) -> int:
        """Fan-out when some subscribers filter or take deltas: the others get the shared frames; a filtering
        one what it accepts; a delta one each publication as a delta from the one before (encoded once per
        wire format and base). Returns how many subscribers had a wire format."""
        channel = key[1]
        prev = self._last.get(key)
        if key in self._delta:
            self._last[key] = pubs[-1]
        plain = {sid: s for sid, s in subs.items() if channel not in s.filters and channel not in s.deltas}
        targets = self._deliver(plain, pubs) if plain else 0
        frames: dict[tuple[Any, int, bool], bytes] = {}
        for sid, session in subs.items():
            if sid in plain:
                continue
            accept = session.filters.get(channel)
            chosen = pubs if accept is None else [p for p in pubs if accept(p)]
            wire = session.wire
            if not chosen:
                continue
            if channel not in session.deltas or wire is None or not hasattr(wire, "publication_delta"):
                targets += self._deliver({sid: session}, chosen)
                continue
            parts = []
            ready = session.deltas[channel]
            for i, pub in enumerate(pubs):
                if pub.key is not None:  # a map entry: a delta from the key's previous entry, which the client holds
                    base = None if pub.removed else pub.base
                else:
                    base = (pubs[i - 1] if i else prev) if ready else None
                fkey = (wire, i, base is not None)
                frame = frames.get(fkey)
                if frame is None:
                    frame = frames[fkey] = wire.publication_delta(pub, base)
                parts.append(frame)
                ready = True
            session.deltas[channel] = True
            joined = b"".join(parts)
            targets += self._fan_out({sid: session}, lambda _w, data=joined: data, len(pubs))
        return targets

    def _deliver(self, subs: dict[str, Session], pubs: list[Publication]) -> int:
        if len(subs) == 1:  # one subscriber (a channel per client): no frame cache, no closure
            (session,) = subs.values()
            wire = session.wire
            if wire is None:
                return 0
            messages = len(pubs)
            frame = wire.publication(pubs[0]) if messages == 1 else b"".join([wire.publication(p) for p in pubs])
            if session.outbox.push(frame, messages):
                session.received += messages
                self.stats.messages_delivered += messages
            elif not session.closed:
                self._overflowed(session, messages)  # drops the session: `subs` changes
            return 1
        if len(pubs) == 1:
            pub = pubs[0]
            return self._fan_out(subs, lambda wire: wire.publication(pub), 1)
        return self._fan_out(subs, lambda wire: b"".join([wire.publication(p) for p in pubs]), len(pubs))

    def _fan_out(self, subs: dict[str, Session], encode: Callable[[WireFormat], bytes], messages: int) -> int:
        """Queue one frame per wire format to every subscriber (`messages` publications in it; 0 for join/leave).

        Returns how many subscribers had a wire format (were sent to, or dropped as slow).
        """
        targets, pushed, slow = fan_out(tuple(subs.values()), encode, messages, {})
        self.stats.messages_delivered += pushed * messages
        for session in slow:
            self._overflowed(session, messages)
        return targets

    def _overflowed(self, session: Session, messages: int) -> None:
        """A push did not fit: drop the session as slow through its outbox's overflow handler, so the transport
        learns why too."""
        overflow = session.outbox.on_overflow
        if overflow is not None:
            overflow(messages)
        else:
            self._drop_slow(session, messages)

    def _drop_slow(self, session: Session, overflow: int = 1) -> None:
        lost_queued = session.outbox.discard()
        lost = lost_queued + overflow
        session.received -= lost_queued
        session.dropped += lost
        self.stats.messages_delivered -= lost_queued
        self.stats.messages_dropped += lost
        self.stats.slow_disconnects += 1
        by_protocol = self.stats.slow_by_protocol
        by_protocol[session.protocol] = by_protocol.get(session.protocol, 0) + 1
        by_protocol = self.stats.dropped_by_protocol
        by_protocol[session.protocol] = by_protocol.get(session.protocol, 0) + lost
        log.info("session %s too slow, disconnected (%d messages dropped)", session.id, lost)
        self.close(session, "slow", reconnect=True)

    def _push_all(self, project: str, channel: str, encode: Callable[[WireFormat], bytes]) -> None:
        """Join/leave pushes to the subscribers of `channel` that want them."""
        subs = self._channels.get((project, channel))
        if subs:
            if any(channel in s.quiet for s in subs.values()):
                subs = {sid: s for sid, s in subs.items() if channel not in s.quiet}
            self._fan_out(subs, encode, 0)

    # -- queries --------------------------------------------------------------------------
    async def presence(self, project: str, channel: str, *, ignore_option: bool = False) -> dict[str, dict[str, Any]]:
        """Clients subscribed to `channel` on every node, keyed by client id. `ignore_option`: also where the
        namespace turns presence off for clients (the original's server API shows presence everywhere)."""
        name = self.channel(project, channel)
        if not name.options.presence and not ignore_option:
            raise NotAvailable()
        return await self.engine.presence(project, channel)

    async def presence_stats(self, project: str, channel: str) -> dict[str, int]:
        clients = await self.presence(project, channel)
        return {"num_clients": len(clients), "num_users": len({c["user"] for c in clients.values()})}

    async def history(
        self,
        project: str,
        channel: str,
        *,
        limit: int | None = None,
        since: int | None = None,
        newest_first: bool = False,
        before: int | None = None,
    ) -> HistoryResult:
        """Publications kept for `channel` (after offset `since` and/or before offset `before`, at most `limit`),
        with the stream's offset and epoch."""
        options = self._history_options(project, channel)
        return await self.engine.history(project, channel, options, limit=limit, since=since, newest_first=newest_first,
                                         before=before)

    async def stream_position(self, project: str, channel: str) -> tuple[int, str]:
        """Top offset and epoch of `channel`'s stream, starting an empty one if none is live.

        A subscriber that gets its position this way can later recover from it: the epoch it saw
        is the one its first publications are stored under. (To subscribe from a position without
        a race, use `subscribe_at`.)
        """
        return await self.engine.stream_position(project, channel, self._history_options(project, channel))

    async def history_remove(self, project: str, channel: str) -> None:
        self.channel(project, channel)
        await self.engine.remove_history(project, channel)

    def _history_options(self, project: str, channel: str) -> NamespaceOptions:
        options = self.channel(project, channel).options
        if not options.keeps_history:
            raise NotAvailable()
        return options

    async def channels(self, project: str, pattern: str | None = None) -> dict[str, int]:
        """Active channels of `project` (those with subscribers on any node) and their subscriber counts.

        Other nodes' counts are those of their last heartbeat (a few seconds old at most).
        """
        self.project(project)
        out: dict[str, int] = {}
        for (proj, channel), subs in self._channels.items():
            if proj == project:
                out[channel] = len(subs)
        for node in self.engine.nodes().values():
            for channel, count in (node.get("channels") or {}).get(project, {}).items():
                out[channel] = out.get(channel, 0) + count
        if pattern is not None:
            out = {c: n for c, n in out.items() if fnmatch.fnmatchcase(c, pattern)}
        return out

    def stats_snapshot(self) -> dict[str, Any]:
        """Counters plus live gauges of this node: sessions, subscriptions, channels."""
        data: dict[str, Any] = self.stats.as_dict()
        data["sessions"] = len(self.sessions)
        data["subscriptions"] = self._subscriptions + len(self.filters)
        data["channels"] = len(self._channels)
        data["uptime"] = int(self.clock() - self.started_at)
        return data

    def project_counts(self) -> dict[str, dict[str, int]]:
        """Per project on this node: clients, distinct users, subscriptions (for node heartbeats and `info`)."""
        out: dict[str, dict[str, int]] = {}
        users: dict[str, set[str]] = {}
        for session in self.sessions.values():
            counts = out.setdefault(session.project, {"clients": 0, "users": 0, "subscriptions": 0})
            counts["clients"] += 1
            counts["subscriptions"] += len(session.channels)
            users.setdefault(session.project, set()).add(session.user)
        for project, names in users.items():
            out[project]["users"] = len(names)
        return out

    def nodes(self) -> list[dict[str, Any]]:
        """Every node of the cluster (this one first): id, name, engine, stats and per-project counts, as of
        its last heartbeat (`[engine] heartbeat`, 3 s by default)."""
        me = {"id": self.node_id, "name": self.node_name, "engine": self.engine.name, "this": True,
              "updated": self.clock(), "stats": self.stats_snapshot(), "projects": self.project_counts()}
        others = [{"id": nid, "name": n.get("name", nid), "engine": self.engine.name, "this": False,
                   "updated": n.get("updated", 0.0), "stats": n.get("stats") or {}, "projects": n.get("projects") or {}}
                  for nid, n in sorted(self.engine.nodes().items())]
        return [me, *others]

    def cluster_stats(self) -> dict[str, Any]:
        """`stats_snapshot` summed over every node (other nodes as of their last heartbeat), plus `nodes`.

        `channels` counts distinct channels across nodes when the heartbeats list them."""
        total: dict[str, Any] = {}
        nodes = self.nodes()
        for node in nodes:
            for key, value in node["stats"].items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    total[key] = total.get(key, 0) + value
        names = {(p, c) for (p, c) in self._channels}
        for node in self.engine.nodes().values():
            for project, chans in (node.get("channels") or {}).items():
                names.update((project, c) for c in chans)
        if names:
            total["channels"] = len(names)
        total["uptime"] = int(self.clock() - self.started_at)
        total["nodes"] = len(nodes)
        return total

    # -- housekeeping ---------------------------------------------------------------------
    def _schedule_expiry(self, session: Session, when: float) -> None:
        self._expiry_seq += 1
        heapq.heappush(self._expiries, (when, self._expiry_seq, session))

    def _expire_sessions(self, now: float, budget: float | None) -> bool:
        """Close the sessions whose lifetime ended by `now`; True if the slice ran out first."""
        heap = self._expiries
        slicer = Slicer(budget, every=8)
        while heap and heap[0][0] <= now:
            if not slicer.more():
                return True
            when, _, session = heapq.heappop(heap)
            if session.closed or session.expires_at != when or session.id not in self.sessions:
                continue  # closed, or its lifetime changed (a newer entry stands for it)
            self.close(session, "connection expired", reconnect=True)
        return False

    def expire(self) -> None:
        """Everything due now at once: streams past their lifetimes, sessions past their connection lifetime."""
        now = self.clock()
        self.engine.expire_some(now, None)
        self._expire_sessions(now, None)

    async def expire_sliced(self, budget: float | None = None) -> int:
        """What `expire` does, in slices of about `budget` seconds (default `housekeeping_slice`) with a
        checkpoint between them, so a mass expiry never holds the loop; then, after a large sweep, the
        freed memory goes back to the OS (in a thread). Returns how many slices it took."""
        budget = self.housekeeping_slice if budget is None else budget
        now = self.clock()
        slices = 1
        while self.engine.expire_some(now, budget) | self._expire_sessions(now, budget):
            await trio.sleep(0)
            slices += 1
        if self.engine.trim_due():
            await trio.to_thread.run_sync(self.engine.trim_memory)
        return slices

    async def housekeeping(self, interval: float = 1.0) -> None:
        """Run `expire_sliced` every `interval` seconds until cancelled."""
        while True:
            await trio.sleep(interval)
            await self.expire_sliced()

    def shutdown(self, reason: str = "shutdown") -> None:
        """Tell every client the hub is going away and close their sessions."""
        for session in list(self.sessions.values()):
            self.close(session, reason, reconnect=True)
