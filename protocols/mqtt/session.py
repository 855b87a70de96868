"""An MQTT session: subscriptions, QoS 1/2 state and the queue of a client id, outliving its connections.

The core sees it as an ordinary `Session` whose outbox is an `MqttOutbox`: fan-out pushes the QoS 0
PUBLISH encoded once per protocol version (a `PubFrame`), and the session decides per subscriber:
the QoS granted (the highest of its matching subscriptions, at most the publication's), a packet
id stamped on the cached layout, the in-flight window, the bounded queue while the window is full
or the client is offline. Nothing is dropped silently: an offline session's overflow and its QoS 0
messages are counted as dropped; a connected client whose queue or socket buffer overflows is
disconnected as `slow` (counted), and its persistent session keeps what was in flight.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from hub.core import Outbox, Publication, Session
from hub.core.patterns import matches

from . import codec
from .wire import MqttMessage, MqttWire, Notice, PubFrame

if TYPE_CHECKING:
    from .auth import Rules

log = logging.getLogger("hub.mqtt")


class Link(Protocol):
    """A client connection's byte sink (TCP stream or websocket)."""

    on_slow: Any                                  # run when a push overflows (before the link closes)

    def push(self, data: bytes) -> bool: ...      # send or disconnect (Outbox.send): False when nothing was queued
    def force(self, data: bytes) -> None: ...     # control packets, even past the limit
    def close(self) -> None: ...                  # send what is queued, then close
    @property
    def closing(self) -> bool: ...


@dataclass(slots=True)
class Sub:
    """One subscription: `channel` (exact) or topic filter `pattern`, shared `group`, and MQTT 5 options."""

    text: str            # as the client wrote it ($share/<group>/<filter> included)
    topic_filter: str
    group: str
    wildcard: bool
    qos: int
    no_local: bool = False
    retain_as_published: bool = False
    sub_id: int = 0


@dataclass(slots=True)
class Outgoing:
    """A QoS 1/2 message to this client: queued, or in flight under `packet_id`."""

    msg: MqttMessage
    qos: int
    retain: bool
    sub_ids: tuple[int, ...] = ()
    packet_id: int = 0
    released: bool = False  # QoS 2: PUBREC received, PUBREL sent


@dataclass
class Limits:
    max_packet_size: int = 1 << 20
    max_inflight: int = 20
    max_queued: int = 1000
    receive_maximum: int = 100
    topic_alias_maximum: int = 10
    max_keepalive: int = 0
    session_expiry_max: int = 86400


class MqttOutbox(Outbox):
    """The core session's outbox: hands fan-out frames and core notices to the MQTT session."""

    __slots__ = ("owner",)

    def __init__(self, owner: MqttSession) -> None:
        super().__init__(0)
        self.owner = owner

    def push(self, frame: bytes, messages: int = 0) -> bool:
        if self.closed:
            return False
        if messages:
            owner = self.owner
            link = owner.link
            if type(frame) is PubFrame and owner.simple and link is not None:
                msg = frame.msg
                if msg.qos == 0 and msg.expires_at is None:  # the fast path of on_frames, inlined
                    if not link.push(frame):
                        owner._uncount(1, dropped=True)
                        owner.slow()
                    return True
            owner.on_frames(frame, messages)
        return True

    def force(self, frame: bytes) -> None:
        if isinstance(frame, Notice):
            self.owner.on_notice(frame)
        elif frame and not self.closed:
            self.owner.send_control(frame)

    def discard(self) -> int:
        return 0

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.owner.on_core_close()


class MqttSession:
    """The state MQTT keeps per client id (see the module docstring)."""

    def __init__(self, broker: Any, client_id: str, username: str | None, version: int, limits: Limits) -> None:
        self.broker = broker
        self.hub = broker.hub
        self.client_id = client_id
        self.username = username
        self.version = version
        self.limits = limits
        self.subs: dict[str, Sub] = {}
        self.inflight: OrderedDict[int, Outgoing] = OrderedDict()
        self.queue: deque[Outgoing] = deque()
        self.incoming_qos2: set[int] = set()
        self.link: Link | None = None
        self.connection: Any = None
        self.window = limits.max_inflight
        self.client_max_packet = 0
        self.expiry = 0
        self.rules: Rules | None = None
        self.ended = False
        self.simple = True
        self._next_id = 0
        self._grant_cache: dict[str, tuple[int, bool, bool, tuple[int, ...]] | None] = {}
        self.outbox = MqttOutbox(self)
        self.core: Session = self.hub.connect(
            broker.project, username or "", "mqtt", broker.wire(version), outbox=self.outbox,
            meta={"client_id": client_id, "username": username or "", "protocol_version": version,
                  "subscriptions": {}, "connected": False})

    # -- connection ---------------------------------------------------------------------------
    def attach(self, link: Link, connection: Any, version: int, keepalive: int, receive_maximum: int,
               max_packet: int, rules: Rules) -> None:
        """A connection takes this session (new, or resumed with what it had in flight)."""
        self.link, self.connection, self.rules = link, connection, rules
        # An overflowing push (Outbox.send) disconnects the client through `slow` (counted; DISCONNECT 0x97 on MQTT 5).
        link.on_slow = lambda: self.slow() if self.link is link else None
        if version != self.version:
            self.version = version
            self.core.wire = self.broker.wire(version)
            self.core.meta["protocol_version"] = version
        self.window = max(1, min(self.limits.max_inflight, receive_maximum))
        self.client_max_packet = max_packet
        self._update_simple()
        self.core.keepalive = keepalive
        self.core.expires_at = None
        self.core.meta["connected"] = True
        self._grant_cache.clear()

    def resume(self) -> None:
        """After CONNACK: resend what was in flight (DUP), then what waited in the queue."""
        link = self.link
        if link is None:
            return
        now = self.hub.clock()
        for pid, out in list(self.inflight.items()):
            if out.released:
                link.force(codec.ack(codec.PUBREL, pid, self.version))
            else:
                data = out.msg.template(self.version, now, out.sub_ids).encode(out.qos, pid, out.retain, dup=True)
                link.force(data)
        self.pump()

    def detach(self, link: Link) -> bool:
        """The connection `link` ended; True if it was this session's current one."""
        if self.link is not link:
            return False
        self.link = self.connection = None
        self.core.meta["connected"] = False
        return True

    # -- from the core --------------------------------------------------------------------------
    def on_frames(self, frame: bytes, count: int) -> None:
        if type(frame) is PubFrame:
            msg = frame.msg
            link = self.link
            if self.simple and msg.qos == 0 and link is not None and msg.expires_at is None:
                # QoS 0 out whatever was granted, and no option of this session changes the shared bytes
                if not link.push(frame):
                    self._uncount(1, dropped=True)
                    self.slow()
                return
            self.deliver(frame.pub, msg, frame)
            return
        wire = self.core.wire
        frames = wire.batch(frame, count) if isinstance(wire, MqttWire) else None
        if frames is None:  # no longer known: the joined QoS 0 packets still are this wire's own bytes
            if self.link is None or not self.link.push(frame):
                self._uncount(count, dropped=True)
                if self.link is not None:
                    self.slow()
            return
        link, first = self.link, frames[0]
        if link is not None and self._plain_qos0(first.pub.channel, frames):
            if not link.push(frame):  # the joined QoS 0 packets as they are: one push for the batch
                self._uncount(count, dropped=True)
                self.slow()
            return
        for f in frames:
            self.deliver(f.pub, f.msg, f)

    def _plain_qos0(self, channel: str, frames: list[PubFrame]) -> bool:
        """Whether every frame of a batch goes out as the shared QoS 0 bytes (no per-session change)."""
        granted = self.grant(channel)
        if granted is None:
            granted = (0, False, False, ())
        qos, no_local, rap, ids = granted
        if ids or no_local:
            return False
        limit = self.client_max_packet
        for f in frames:
            msg = f.msg
            if (qos and msg.qos) or (rap and msg.retain) or msg.expires_at is not None or (limit and len(f) > limit):
                return False
        return True

    def on_notice(self, notice: Notice) -> None:
        if notice.kind == "unsubscribe":
            sub = self.subs.pop(notice.channel, None)
            if sub is not None:
                self._changed()
        elif notice.kind == "subscribe" and notice.channel not in self.subs:
            self.subs[notice.channel] = Sub(notice.channel, notice.channel, "", False, 0)
            self._changed()

    def send_control(self, data: bytes) -> None:
        if self.link is not None:
            self.link.force(data)

    def on_core_close(self) -> None:
        """The core closed the session (API disconnect, shutdown, expiry) or we released it."""
        reason = self.core.close_reason or "closed"
        if not self.ended:
            self.ended = True
            if self.queue:
                self._uncount(len(self.queue), dropped=True)
                self.queue.clear()
        self.broker.forget(self, reason)
        if self.link is not None:
            self.link.close()

    # -- delivery ---------------------------------------------------------------------------------
    def _changed(self) -> None:
        self._grant_cache.clear()
        self.core.meta["subscriptions"] = {s.text: s.qos for s in self.subs.values()}
        self._update_simple()

    def _update_simple(self) -> None:
        """Whether QoS 0 publications go out as the shared bytes: no option that changes them per session."""
        self.simple = not self.client_max_packet and not any(
            s.no_local or s.sub_id or s.retain_as_published for s in self.subs.values())

    def grant(self, channel: str) -> tuple[int, bool, bool, tuple[int, ...]] | None:
        """(QoS, no local, retain as published, subscription ids) of the subscriptions matching `channel`."""
        cache = self._grant_cache
        if channel in cache:
            return cache[channel]
        qos, no_local, rap, ids, found = 0, True, False, [], False
        for sub in self.subs.values():
            if sub.topic_filter == channel if not sub.wildcard else matches(sub.topic_filter, channel):
                found = True
                qos = max(qos, sub.qos)
                no_local = no_local and sub.no_local
                rap = rap or sub.retain_as_published
                if sub.sub_id:
                    ids.append(sub.sub_id)
        result = (qos, no_local, rap, tuple(ids)) if found else None
        if len(cache) > 4096:
            cache.clear()
        cache[channel] = result
        return result

    def deliver(self, pub: Publication, msg: MqttMessage, frame: bytes | None = None, *, retained: bool = False,
                max_qos: int = 2, sub_ids: tuple[int, ...] | None = None) -> None:
        """Send or queue one publication the core counted as delivered to this session."""
        if retained:
            qos, rap, ids = max_qos, True, sub_ids or ()
        else:
            granted = self.grant(pub.channel)
            if granted is None:
                granted = (0, False, False, ())
            qos, no_local, rap, ids = granted
            if no_local and pub.client == self.core.id:
                self._uncount(1, dropped=False)
                return
        qos = min(qos, msg.qos)
        retain = msg.retain and rap
        now = self.hub.clock()
        if msg.expires_at is not None and msg.expires_at <= now:
            self._uncount(1, dropped=True)
            return
        if qos == 0:
            link = self.link
            if link is None:
                self._uncount(1, dropped=True)  # offline: QoS 0 is not queued
                return
            if frame is not None and not retain and not ids and self.version == self.core.wire.version:  # type: ignore[union-attr]
                data = frame
            else:
                data = msg.template(self.version, now, ids).encode(0, 0, retain)
            if self.client_max_packet and len(data) > self.client_max_packet:
                self._uncount(1, dropped=True)
                return
            if not link.push(data):
                self._uncount(1, dropped=True)
                self.slow()
            return
        out = Outgoing(msg, qos, retain, ids)
        if self.link is not None and len(self.inflight) < self.window and not self.queue:
            self._send(out)
        elif len(self.queue) < self.limits.max_queued:
            self.queue.append(out)
        else:
            self._uncount(1, dropped=True)
            if self.link is not None:
                self.slow()

    def _send(self, out: Outgoing) -> None:
        link = self.link
        assert link is not None
        template = out.msg.template(self.version, self.hub.clock(), out.sub_ids)
        if self.client_max_packet and template.size(out.qos) > self.client_max_packet:
            self._uncount(1, dropped=True)
            return
        pid = self._packet_id()
        out.packet_id = pid
        self.inflight[pid] = out
        if not link.push(template.encode(out.qos, pid, out.retain)):
            self.slow()  # it stays in flight: resent (DUP) if the session resumes

    def _packet_id(self) -> int:
        while True:
            self._next_id = self._next_id % 65535 + 1
            if self._next_id not in self.inflight:
                return self._next_id

    def pump(self) -> None:
        """Move queued messages into the in-flight window while there is room (expired ones are dropped)."""
        now = self.hub.clock()
        while self.queue and self.link is not None and len(self.inflight) < self.window and not self.link.closing:
            out = self.queue.popleft()
            if out.msg.expires_at is not None and out.msg.expires_at <= now:
                self._uncount(1, dropped=True)
                continue
            self._send(out)

    def acked(self, kind: int, packet_id: int, reason: int) -> bool:
        """PUBACK / PUBREC / PUBCOMP from the client; False if `packet_id` is not in flight (as that kind)."""
        out = self.inflight.get(packet_id)
        if out is None:
            return False
        if kind == codec.PUBACK and out.qos == 1 or kind == codec.PUBCOMP and out.qos == 2 and out.released:
            del self.inflight[packet_id]
        elif kind == codec.PUBREC and out.qos == 2 and not out.released:
            if reason >= 0x80:
                del self.inflight[packet_id]
            else:
                out.released = True
                if self.link is not None:
                    self.link.force(codec.ack(codec.PUBREL, packet_id, self.version))
                return True
        else:
            return False
        self.pump()
        return True

    def _uncount(self, n: int, *, dropped: bool) -> None:
        """Undo the core's delivered count for `n` copies this session did not send (and count drops)."""
        stats = self.hub.stats
        self.core.received -= n
        stats.messages_delivered -= n
        if dropped:
            self.core.dropped += n
            stats.messages_dropped += n
            stats.dropped_by_protocol["mqtt"] = stats.dropped_by_protocol.get("mqtt", 0) + n

    def slow(self) -> None:
        """The connected client cannot keep up: disconnect it as slow (counted); the session stays if persistent."""
        link = self.link
        if link is None or link.closing:
            return
        stats = self.hub.stats
        stats.slow_disconnects += 1
        stats.slow_by_protocol["mqtt"] = stats.slow_by_protocol.get("mqtt", 0) + 1
        log.info("mqtt client %s too slow, disconnected", self.client_id)
        if self.version == codec.MQTT5:
            link.force(codec.disconnect(codec.QUOTA_EXCEEDED, {"reason_string": "slow"}))
        if self.connection is not None:
            self.connection.slow = True
        link.close()

    def end(self, reason: str) -> None:
        """The session is over (clean session disconnected, expired, taken over clean): release it in the core."""
        if self.ended:
            return
        self.ended = True
        lost = len(self.queue)
        if lost:
            self._uncount(lost, dropped=True)
        self.queue.clear()
        self.inflight.clear()
        self.hub.release(self.core, reason)


def parse_subscription(text: str) -> tuple[str, str]:
    """(group, filter) of `$share/<group>/<filter>`, or ("", text); ValueError if a share is malformed."""
    if not text.startswith("$share/"):
        return "", text
    _, _, rest = text.partition("/")
    group, sep, topic_filter = rest.partition("/")
    if not group or not sep or not topic_filter or "+" in group or "#" in group:
        raise ValueError("malformed shared subscription")
    return group, topic_filter




