"""Centrifugo 6.8's map subscriptions on the client protocol: the subscribe phases, without I/O.

A map subscription is a subscribe command repeated with `type: 1` and a `phase`: STATE (2) pages through the
channel's entries (the latest publication of each key, `cursor` the last key sent), STREAM (1) pages through the
changes since the state's position, and LIVE (0) attaches the connection and sends what is left to catch up. The
server decides when to go LIVE: on the last state page of a streamless (ephemeral) map or when the stream is at
most a page ahead, and it answers that final request with phase 0 (omitted, as Centrifugo's JSON omits zeros).
A client recovering from a position starts at STREAM (or LIVE) with `recover`. Replies carry `state` (entries)
and `publications` (stream changes), each with its `key` and, for a removal, `removed`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hub.core import Unrecoverable
from protocols import centrifugo as C

from . import tagsfilter

if TYPE_CHECKING:
    from .sdk import SdkClient

TYPE_MAP, TYPE_MAP_CLIENTS = 1, 2
LIVE, STREAM, STATE = 0, 1, 2
# Centrifugo's map page sizes: a client's `limit` within [MIN, MAX], DEFAULT without one.
DEFAULT_PAGE, MIN_PAGE, MAX_PAGE = 100, 1, 1000


@dataclass(slots=True)
class Pending:
    """A map subscription between its first request and LIVE: what was authorized, and the position it reads from."""

    info: Any
    expires: float | None
    private_ok: bool
    tf: Any
    offset: int = 0
    epoch: str = ""
    stream_start: int | None = None


def _error(code: int) -> Exception:
    from .sdk import ReplyError

    return ReplyError(code)


def page_size(params: dict[str, Any]) -> int:
    limit = params.get("limit")
    if not isinstance(limit, int) or isinstance(limit, bool) or limit <= 0:
        return DEFAULT_PAGE
    return max(MIN_PAGE, min(MAX_PAGE, limit))


def _offset(params: dict[str, Any]) -> int:
    value = params.get("offset")
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


class MapFlow:
    """One connection's map subscriptions that have not reached LIVE yet, and the phase handlers."""

    def __init__(self, client: SdkClient) -> None:
        self.client = client
        self.pending: dict[str, Pending] = {}

    def forget(self, channel: str) -> None:
        self.pending.pop(channel, None)

    async def subscribe(self, channel: str, name: Any, params: dict[str, Any], delta: bool) -> dict[str, Any]:
        options = name.options
        kind = params.get("type")
        if kind not in (0, None, TYPE_MAP, TYPE_MAP_CLIENTS):  # shared poll (4) and what else the hub does not have
            raise _error(C.NOT_AVAILABLE)
        if not options.is_map or kind != options.map_type:  # Centrifugo: the type must be the namespace's
            self.forget(channel)
            raise _error(C.BAD_REQUEST)
        try:
            return await self._phase(channel, name, params, delta)
        except Exception:  # the client starts over on any error (a later first page is not "already subscribed")
            self.forget(channel)
            raise

    async def _phase(self, channel: str, name: Any, params: dict[str, Any], delta: bool) -> dict[str, Any]:
        phase = params.get("phase") or LIVE
        if phase == STATE:
            return await self._state(channel, name, params, delta)
        if phase == STREAM:
            return await self._stream(channel, name, params, delta)
        if phase == LIVE:
            pending = self.pending.get(channel)
            epoch = params.get("epoch") or ""
            if pending is not None and epoch and pending.epoch and epoch != pending.epoch:
                self.forget(channel)
                raise _error(C.UNRECOVERABLE_POSITION)
            if pending is None:
                pending = await self._begin(channel, name, params)
            return await self._live(channel, name, params, pending, delta, (_offset(params), epoch), [], recovery=True)
        self.forget(channel)
        raise _error(C.BAD_REQUEST)

    async def _begin(self, channel: str, name: Any, params: dict[str, Any]) -> Pending:
        """The first request of a map subscription: Centrifugo's subscribe permission, once."""
        if channel in self.pending:
            raise _error(C.ALREADY_SUBSCRIBED)
        client = self.client
        session = client.session
        assert session is not None
        if client.channel_limit and len(session.channels) + len(self.pending) >= client.channel_limit:
            raise _error(C.LIMIT_EXCEEDED)  # subscriptions still paginating count too
        info, expires, _override, _grant, token, tf = await client._authorize(channel, name, params)
        pending = self.pending[channel] = Pending(info, expires, bool(token), tf)
        return pending

    def _filtered(self, pending: Pending, pubs: list[Any]) -> list[Any]:
        if pending.tf is None:
            return pubs
        return [p for p in pubs if tagsfilter.match(pending.tf, p.tags)]

    def _bodies(self, pubs: list[Any], delta: bool) -> list[dict[str, Any]]:
        """Entries as the subscriber gets them: with deltas negotiated, JSON payloads travel as strings (the exact
        text later deltas apply to), as Centrifugo escapes them."""
        wire = self.client.wire
        if delta:
            return [wire.delta_body(p, None) for p in pubs]
        return [C.publication_body(p, wire.binary) for p in pubs]

    async def _state(self, channel: str, name: Any, params: dict[str, Any], delta: bool) -> dict[str, Any]:
        client = self.client
        session = client.session
        assert session is not None
        cursor = params.get("cursor") or ""
        if not isinstance(cursor, str):
            raise _error(C.BAD_REQUEST)
        pending = self.pending.get(channel)
        if cursor and pending is None:
            raise _error(C.PERMISSION_DENIED)
        if not cursor:
            pending = await self._begin(channel, name, params)
        assert pending is not None
        options = name.options
        delta = delta and options.delta_fossil
        limit = page_size(params)
        # This page's entries (at least); a streamless map goes LIVE below without suspending after this.
        snap = await client.hub.map_snapshot(session.project, channel, cursor, limit)
        if not cursor:
            pending.offset, pending.epoch = snap.offset, snap.epoch
        max_offset = None
        epoch = params.get("epoch") or ""
        if _offset(params) or epoch:
            if epoch != snap.epoch:
                self.forget(channel)
                raise _error(C.UNRECOVERABLE_POSITION)
            max_offset = _offset(params)
        entries, nxt = snap.page(cursor, limit, max_offset)
        entries = self._filtered(pending, entries)
        if not nxt:
            if not options.keeps_history:
                return await self._live(channel, name, params, pending, delta, None, entries, recovery=False)
            since = pending.offset if cursor else snap.offset
            if since + limit >= snap.offset:
                return await self._live(channel, name, params, pending, delta, (since, snap.epoch), entries,
                                        recovery=False)
        result: dict[str, Any] = {"type": TYPE_MAP, "phase": STATE, "epoch": snap.epoch}
        if nxt:
            result["cursor"] = nxt
        offset = pending.offset if cursor else snap.offset
        if offset:
            result["offset"] = offset
        if entries:
            result["state"] = self._bodies(entries, delta)
        return result

    async def _stream(self, channel: str, name: Any, params: dict[str, Any], delta: bool) -> dict[str, Any]:
        client = self.client
        session = client.session
        assert session is not None
        options = name.options
        if not options.keeps_history:  # an ephemeral map has no stream
            self.forget(channel)
            raise _error(C.BAD_REQUEST)
        pending = self.pending.get(channel)
        epoch = params.get("epoch") or ""
        if pending is None:
            if not params.get("recover"):
                raise _error(C.PERMISSION_DENIED)
            pending = await self._begin(channel, name, params)
            pending.epoch = epoch
        if epoch and pending.epoch and epoch != pending.epoch:
            self.forget(channel)
            raise _error(C.UNRECOVERABLE_POSITION)
        if pending.stream_start is None:
            pending.stream_start, _ = await client.hub.stream_position(session.project, channel)
        limit = page_size(params)
        offset = _offset(params)
        delta = delta and options.delta_fossil
        if offset + limit >= pending.stream_start:
            return await self._live(channel, name, params, pending, delta, (offset, epoch), [], recovery=True)
        hist = await client.hub.history(session.project, channel, limit=limit, since=offset)
        if epoch and hist.epoch != epoch:
            self.forget(channel)
            raise _error(C.UNRECOVERABLE_POSITION)
        pubs = hist.publications
        if pubs and pubs[0].offset != offset + 1:  # the stream no longer holds what the client missed
            self.forget(channel)
            raise _error(C.UNRECOVERABLE_POSITION)
        result: dict[str, Any] = {"type": TYPE_MAP, "phase": STREAM, "epoch": hist.epoch,
                                  "offset": pubs[-1].offset if pubs else offset}
        pubs = self._filtered(pending, pubs)
        if pubs:
            result["publications"] = self._bodies(pubs, delta)
        return result

    async def _live(self, channel: str, name: Any, params: dict[str, Any], pending: Pending, delta: bool,
                    since: tuple[int, str] | None, entries: list[Any], *, recovery: bool) -> dict[str, Any]:
        """Attach the connection; the phase-0 reply with the entries of the last state page and the catch-up."""
        client = self.client
        session = client.session
        assert session is not None
        options = name.options
        delta = delta and options.delta_fossil
        hub = client.hub
        self.forget(channel)
        result: dict[str, Any] = {"type": TYPE_MAP}
        pubs: list[Any] = []
        if options.keeps_history:
            try:
                pos = await hub.subscribe_at(session, channel, pending.info, private_ok=pending.private_ok,
                                             recover=since, strict=True, authorized=True)
            except Unrecoverable:
                raise _error(C.UNRECOVERABLE_POSITION) from None
            pubs = self._filtered(pending, pos.publications)
            result.update(epoch=pos.epoch, recoverable=True)
            if pos.offset:
                result["offset"] = pos.offset
        else:
            await hub.subscribe(session, channel, pending.info, private_ok=pending.private_ok, authorized=True)
        if pending.tf is not None:
            hub.set_filter(session, channel, lambda pub, tf=pending.tf: tagsfilter.match(tf, pub.tags))
        if delta:
            hub.set_delta(session, channel, True)
            result["delta"] = True
        if entries:
            result["state"] = self._bodies(entries, delta)
        if pubs:
            result["publications"] = self._bodies(pubs, delta)
        if recovery and params.get("recover"):
            result.update(was_recovering=True, recovered=True)
        if options.publish_debounce > 0:
            result["publish_debounce"] = int(options.publish_debounce * 1000)
        if pending.expires is not None:
            client._set_sub_expiry(channel, pending.expires)
            result.update(client._ttl(pending.expires))
        return result
