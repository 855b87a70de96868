"""The Hub: channels, subscriptions, presence, history, sessions and stats behind one small API."""

from __future__ import annotations

import fnmatch
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from typing import Any

import trio

from . import history as _history
from .channels import ChannelName, parse_channel
from .errors import NotAvailable, PermissionDenied, ProjectNotFound
from .events import EventFeed, HubEvent
from .history import HistoryResult, Publication, Stream
from .options import Project
from .outbox import Outbox
from .patterns import TopicFilters
from .retained import RetainedStore
from .session import Session, WireFormat
from .stats import Stats

log = logging.getLogger("hub.core")

Key = tuple[str, str]


class Hub:
    """The core every adapter feeds. Nothing here awaits a client; the coroutine methods are the ones an
    engine shared across processes may need to wait on (with the memory engine they never suspend)."""

    def __init__(
        self,
        projects: Iterable[Project] = (),
        *,
        max_queue_bytes: int = 1 << 20,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.projects: dict[str, Project] = {p.key: p for p in projects}
        self.max_queue_bytes = max_queue_bytes
        self.clock = clock
        self.stats = Stats()
        self.events = EventFeed()
        self.sessions: dict[str, Session] = {}
        self._by_user: dict[Key, set[Session]] = {}
        self._channels: dict[Key, dict[str, Session]] = {}
        self._streams: dict[Key, Stream] = {}
        self._subscriptions = 0
        # Topic-filter subscriptions (MQTT wildcards, shared groups) and retained publications: see patterns.py, retained.py.
        self.filters = TopicFilters()
        self.retained = RetainedStore()
        self.started_at = clock()

    # -- projects -------------------------------------------------------------------------
    def project(self, key: str) -> Project:
        try:
            return self.projects[key]
        except (KeyError, TypeError):
            raise ProjectNotFound() from None

    def set_projects(self, projects: Iterable[Project]) -> None:
        """Swap project settings in place (live reload); connections and history stay."""
        self.projects = {p.key: p for p in projects}

    def channel(self, project: str, channel: object) -> ChannelName:
        return parse_channel(self.project(project), channel)

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
        )
        if session_id:
            session.id = session_id
        self._own_overflow(session)
        self.sessions[session.id] = session
        self._by_user.setdefault((project, user), set()).add(session)
        self.stats.connections_total += 1
        if self.events:
            self.events.emit(HubEvent("connect", project, self._session_event(session)))
        return session

    def _own_overflow(self, session: Session) -> None:
        """An adapter's `outbox.send` that overflows drops the session as slow here (counted), then lets
        the transport's own handler (which picked the close code) run."""
        transport = session.outbox.on_overflow

        def overflow(messages: int) -> None:
            if not session.closed:
                self._drop_slow(session, messages)
            if transport is not None:
                transport(messages)

        session.outbox.on_overflow = overflow

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
        users = self._by_user.get((session.project, session.user))
        if users is not None:
            users.discard(session)
            if not users:
                del self._by_user[(session.project, session.user)]
        if self.events:
            data = self._session_event(session)
            data["reason"] = session.close_reason
            self.events.emit(HubEvent("disconnect", session.project, data))

    @staticmethod
    def _session_event(session: Session) -> dict[str, Any]:
        return {"client": session.id, "user": session.user, "protocol": session.protocol}

    def user_sessions(self, project: str, user: str) -> list[Session]:
        return list(self._by_user.get((project, user), ()))

    # -- subscriptions --------------------------------------------------------------------
    async def subscribe(
        self, session: Session, channel: str, channel_info: Any = None, *, private_ok: bool = False,
        authorized: bool = False,
    ) -> ChannelName:
        """Add `session` to `channel` (checked against the name rules); join pushes if enabled.

        `authorized`: the adapter granted this with its own access rules (MQTT ACLs), so the
        namespace's `anonymous` option does not apply; private and user-limited channels still do.
        """
        name = self.channel(session.project, channel)
        if name.private and not private_ok:
            raise PermissionDenied()
        if not name.allows_user(session.user):
            raise PermissionDenied()
        if not session.user and not name.options.anonymous and not authorized:
            raise PermissionDenied()
        if channel in session.channels:
            session.channels[channel] = channel_info
            return name
        session.channels[channel] = channel_info
        self._subscriptions += 1
        self._channels.setdefault((session.project, channel), {})[session.id] = session
        record = session.client_info(channel)
        if name.options.join_leave:
            self._push_all(session.project, channel, lambda w: w.join(channel, record))
        if self.events:
            self.events.emit(HubEvent("join", session.project, {"channel": channel, **record}))
        return name

    def unsubscribe_session(self, session: Session, channel: str, *, notify: bool = False) -> bool:
        """Remove `session` from `channel`; False (and no leave) if it was not subscribed."""
        if channel not in session.channels:
            return False
        if notify and session.wire is not None and not session.closed:
            session.outbox.force(session.wire.unsubscribe(channel))
        self._leave(session, channel)
        return True

    def _leave(self, session: Session, channel: str) -> None:
        record = session.client_info(channel)
        del session.channels[channel]
        self._subscriptions -= 1
        key = (session.project, channel)
        subs = self._channels.get(key)
        if subs is not None:
            subs.pop(session.id, None)
            if not subs:
                del self._channels[key]
        project = self.projects.get(session.project)
        if project is not None:
            try:
                join_leave = parse_channel(project, channel).options.join_leave
            except Exception:
                join_leave = False
            if join_leave and subs:
                self._push_all(session.project, channel, lambda w: w.leave(channel, record))
        if self.events:
            self.events.emit(HubEvent("leave", session.project, {"channel": channel, **record}))

    async def subscribe_user(self, project: str, user: str, channel: str) -> int:
        """Server-side subscribe: every live session of `user` joins `channel`."""
        self.channel(project, channel)
        count = 0
        for session in self.user_sessions(project, user):
            if channel in session.channels:
                continue
            await self.subscribe(session, channel, private_ok=True)
            if session.wire is not None:
                frame = session.wire.subscribe(channel)
                if frame:
                    session.outbox.force(frame)
            count += 1
        return count

    async def unsubscribe(self, project: str, user: str, channel: str | None = None) -> int:
        """Forced unsubscribe of every session of `user` from `channel`, or from every channel."""
        self.project(project)
        count = 0
        for session in self.user_sessions(project, user):
            targets = [channel] if channel is not None else list(session.channels)
            for ch in targets:
                if self.unsubscribe_session(session, ch, notify=True):
                    count += 1
        return count

    async def disconnect(self, project: str, user: str, reason: str = "disconnect", reconnect: bool = False) -> int:
        """Close every session of `user` with a disconnect notice."""
        self.project(project)
        sessions = self.user_sessions(project, user)
        for session in sessions:
            self.close(session, reason, reconnect)
        return len(sessions)

    # -- publishing -----------------------------------------------------------------------
    async def publish(
        self, project: str, channel: str, data: Any, info: Any = None, client: str | None = None, *, meta: Any = None
    ) -> Publication:
        """Store (if the namespace keeps history) and deliver to every subscriber, encoding once per wire format.

        `meta`: what a protocol attaches for its own kind (MQTT: payload bytes, QoS, properties); see Publication.
        """
        return (await self.publish_many(project, channel, [(data, info, client)], meta=None if meta is None else [meta]))[0]

    async def publish_many(self, project: str, channel: str, items: list[tuple[Any, Any, str | None]], *,
                           meta: list[Any] | None = None) -> list[Publication]:
        """Publish several (data, info, client) items to one channel in order; each subscriber gets them in one push.

        `meta`: one Publication.meta per item, or None."""
        name = self.channel(project, channel)
        now = self.clock()
        options = name.options
        key = (project, channel)
        uids = secrets.token_hex(16 * len(items))  # one random draw for the whole batch
        if options.keeps_history:
            stream = self._streams.get(key)
            if stream is None or stream.expires_at <= now:
                stream = self._streams[key] = Stream(options.history_size)
            else:
                stream.resize(options.history_size)
            pubs = [Publication(uids[32 * i:32 * i + 32], project, channel, data, info, client, now,
                                stream.next_offset(), stream.epoch, meta[i] if meta else None)
                    for i, (data, info, client) in enumerate(items)]
            stream.items.extend(pubs)
            stream.expires_at = now + options.history_lifetime
        else:
            pubs = [Publication(uids[32 * i:32 * i + 32], project, channel, data, info, client, now, 0, "",
                                meta[i] if meta else None) for i, (data, info, client) in enumerate(items)]
        stats = self.stats
        stats.messages_in += len(pubs)
        subs = self._channels.get(key)
        targets = self._deliver(subs, pubs) if subs else 0
        if self.filters:  # topic-filter subscribers not already subscribed to the channel itself
            matched = self.filters.match(project, channel, subs)
            if matched:
                targets += self._deliver(matched, pubs)
        if not targets:
            # no subscriber, or only sessions without a wire format (nothing is queued to them)
            stats.messages_dropped += len(pubs)
        if self.events:
            for pub in pubs:
                self.events.emit(HubEvent("publication", project, {"publication": pub}))
        return pubs

    def _deliver(self, subs: dict[str, Session], pubs: list[Publication]) -> int:
        if len(pubs) == 1:
            pub = pubs[0]
            return self._fan_out(subs, lambda wire: wire.publication(pub), 1)
        return self._fan_out(subs, lambda wire: b"".join([wire.publication(p) for p in pubs]), len(pubs))

    def _fan_out(self, subs: dict[str, Session], encode: Callable[[WireFormat], bytes], messages: int) -> int:
        """Queue one frame per wire format to every subscriber (`messages` publications in it; 0 for join/leave).

        Returns how many subscribers had a wire format (were sent to, or dropped as slow).
        """
        frames: dict[WireFormat, bytes] = {}
        delivered = targets = 0
        slow: list[Session] = []
        for session in tuple(subs.values()):
            wire = session.wire
            if wire is None:
                continue
            targets += 1
            frame = frames.get(wire)
            if frame is None:
                frame = frames[wire] = encode(wire)
            if session.outbox.push(frame, messages):
                session.received += messages
                delivered += messages
            elif not session.closed:
                slow.append(session)
        self.stats.messages_delivered += delivered
        for session in slow:  # through the outbox's overflow handler, so the transport learns why too
            overflow = session.outbox.on_overflow
            if overflow is not None:
                overflow(messages)
            else:
                self._drop_slow(session, messages)
        return targets

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
        subs = self._channels.get((project, channel))
        if subs:
            self._fan_out(subs, encode, 0)

    # -- queries --------------------------------------------------------------------------
    async def presence(self, project: str, channel: str) -> dict[str, dict[str, Any]]:
        """Clients subscribed to `channel`, keyed by client id."""
        name = self.channel(project, channel)
        if not name.options.presence:
            raise NotAvailable()
        subs = self._channels.get((project, channel), {})
        return {sid: s.client_info(channel) for sid, s in subs.items()}

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
    ) -> HistoryResult:
        """Publications kept for `channel` (after offset `since`, at most `limit`), with offset and epoch."""
        name = self.channel(project, channel)
        if not name.options.keeps_history:
            raise NotAvailable()
        stream = self._live_stream((project, channel))
        return _history.read(stream, limit=limit, since=since, newest_first=newest_first)

    async def stream_position(self, project: str, channel: str) -> tuple[int, str]:
        """Top offset and epoch of `channel`'s stream, starting an empty one if none is live.

        A subscriber that gets its position this way can later recover from it: the epoch it saw
        is the one its first publications are stored under.
        """
        name = self.channel(project, channel)
        if not name.options.keeps_history:
            raise NotAvailable()
        key = (project, channel)
        stream = self._live_stream(key)
        if stream is None:
            stream = self._streams[key] = Stream(name.options.history_size)
            stream.expires_at = self.clock() + name.options.history_lifetime
        return stream.offset, stream.epoch

    async def history_remove(self, project: str, channel: str) -> None:
        self.channel(project, channel)
        stream = self._streams.get((project, channel))
        if stream is not None:
            stream.items.clear()

    def _live_stream(self, key: Key) -> Stream | None:
        stream = self._streams.get(key)
        if stream is not None and stream.expires_at <= self.clock():
            del self._streams[key]
            return None
        return stream

    async def channels(self, project: str, pattern: str | None = None) -> dict[str, int]:
        """Active channels of `project` (those with subscribers) and their subscriber counts."""
        self.project(project)
        out = {}
        for (proj, channel), subs in self._channels.items():
            if proj == project and (pattern is None or fnmatch.fnmatchcase(channel, pattern)):
                out[channel] = len(subs)
        return out

    def stats_snapshot(self) -> dict[str, Any]:
        """Counters plus live gauges: sessions, subscriptions, channels."""
        data: dict[str, Any] = self.stats.as_dict()
        data["sessions"] = len(self.sessions)
        data["subscriptions"] = self._subscriptions + len(self.filters)
        data["channels"] = len(self._channels)
        data["uptime"] = int(self.clock() - self.started_at)
        return data

    # -- housekeeping ---------------------------------------------------------------------
    def expire(self) -> None:
        """Drop streams past their lifetime and close sessions past their connection lifetime."""
        now = self.clock()
        for key in [k for k, s in self._streams.items() if s.expires_at <= now]:
            del self._streams[key]
        for session in [s for s in self.sessions.values() if s.expires_at is not None and s.expires_at <= now]:
            self.close(session, "connection expired", reconnect=True)

    async def housekeeping(self, interval: float = 1.0) -> None:
        """Run `expire` every `interval` seconds until cancelled."""
        while True:
            await trio.sleep(interval)
            self.expire()

    def shutdown(self, reason: str = "shutdown") -> None:
        """Tell every client the hub is going away and close their sessions."""
        for session in list(self.sessions.values()):
            self.close(session, reason, reconnect=True)
