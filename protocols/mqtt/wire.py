"""The MQTT wire formats the core fans out through: one per protocol version, shared by all its sessions.

`publication()` returns the QoS 0 PUBLISH packet (the same bytes for every QoS 0 subscriber) as a
`PubFrame`: bytes that also carry the publication and its `MqttMessage`, so each session's outbox
can stamp a packet id on the cached QoS 1/2 layout instead of encoding again.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from hub.core import Publication

from . import codec
from .payload import to_payload

# MQTT 5 properties a server forwards unaltered from PUBLISH to subscribers.
FORWARDED = ("payload_format_indicator", "content_type", "response_topic", "correlation_data", "user_property")


@dataclass(slots=True)
class MqttMessage:
    """What an MQTT PUBLISH (or will) attaches to its publication (`Publication.meta`).

    `payload` is the exact bytes published; `expires_at` is the message expiry as a time of
    `clock` (None: never); templates are cached per protocol version while the expiry does not change them.
    """

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    props: dict[str, Any] = field(default_factory=dict)
    expires_at: float | None = None
    _templates: dict[tuple[int, int], codec.PublishTemplate] = field(default_factory=dict)

    def remaining(self, now: float) -> int | None:
        """Seconds of message expiry left (at least 1), None without expiry; -1 once expired."""
        if self.expires_at is None:
            return None
        left = self.expires_at - now
        return math.ceil(left) if left > 0 else -1

    def template(self, version: int, now: float, sub_ids: tuple[int, ...] = ()) -> codec.PublishTemplate:
        """The PUBLISH layout for `version` (MQTT 5: forwarded properties, remaining expiry, subscription ids)."""
        if version != codec.MQTT5:
            key = (version, 0)
            t = self._templates.get(key)
            if t is None:
                t = self._templates[key] = codec.PublishTemplate(version, self.topic, self.payload)
            return t
        left = self.remaining(now)
        key = (version, left or 0)
        if not sub_ids:
            t = self._templates.get(key)
            if t is not None:
                return t
        props = {k: self.props[k] for k in FORWARDED if k in self.props}
        if left is not None:
            props["message_expiry_interval"] = max(left, 0)
        if sub_ids:
            props["subscription_identifier"] = list(sub_ids)
        t = codec.PublishTemplate(version, self.topic, self.payload, codec.encode_properties(props))
        if not sub_ids:
            if len(self._templates) > 8:
                self._templates.clear()
            self._templates[key] = t
        return t


def message_of(pub: Publication) -> MqttMessage:
    """The MQTT view of any publication: its own MqttMessage, or QoS 0 with the payload mapped from `data`."""
    meta = pub.meta
    if isinstance(meta, MqttMessage):
        return meta
    return MqttMessage(pub.channel, to_payload(pub.data))


class PubFrame(bytes):
    """A QoS 0 PUBLISH that remembers its publication and message (for per-session QoS 1/2 stamping)."""

    pub: Publication
    msg: MqttMessage


class Notice(bytes):
    """A core notice to one MQTT session that is not a packet: server-side (un)subscribe of `channel`."""

    kind: str
    channel: str


def _notice(kind: str, channel: str) -> Notice:
    n = Notice(b"-")
    n.kind, n.channel = kind, channel
    return n


RECENT_BYTES = 4 << 20

_DISCONNECT_REASONS = {"shutdown": codec.SERVER_SHUTTING_DOWN, "slow": codec.QUOTA_EXCEEDED,
                       "connection expired": codec.ADMINISTRATIVE_ACTION}


class MqttWire:
    """Encodes core events for MQTT sessions of one protocol version."""

    def __init__(self, version: int, clock: Any) -> None:
        self.version = version
        self.name = f"mqtt-{version}"
        self.clock = clock
        # The frames of the last publications encoded (at most RECENT_BYTES), for a batch the core joined into one push.
        self.recent: deque[PubFrame] = deque()
        self._recent_bytes = 0

    def publication(self, pub: Publication) -> bytes:
        msg = message_of(pub)
        frame = PubFrame(msg.template(self.version, self.clock()).qos0())
        frame.pub, frame.msg = pub, msg
        recent = self.recent
        recent.append(frame)
        self._recent_bytes += len(frame)
        while self._recent_bytes > RECENT_BYTES and len(recent) > 1:
            self._recent_bytes -= len(recent.popleft())
        return frame

    def batch(self, joined: bytes, count: int) -> list[PubFrame] | None:
        """The `count` frames a joined batch push was made of, or None if they are not the last encoded."""
        if count > len(self.recent):
            return None
        frames = list(self.recent)[-count:]
        if sum(len(f) for f in frames) != len(joined):
            return None
        return frames

    def join(self, channel: str, client: dict[str, Any]) -> bytes:
        return b""

    def leave(self, channel: str, client: dict[str, Any]) -> bytes:
        return b""

    def unsubscribe(self, channel: str) -> bytes:
        return _notice("unsubscribe", channel)

    def subscribe(self, channel: str) -> bytes:
        return _notice("subscribe", channel)

    def disconnect(self, reason: str, reconnect: bool) -> bytes:
        if self.version != codec.MQTT5:
            return b""
        return codec.disconnect(_DISCONNECT_REASONS.get(reason, codec.ADMINISTRATIVE_ACTION), {"reason_string": reason})


def meta_to_engine(message: MqttMessage) -> list[Any]:
    """`Publication.meta` as plain values, so the exact MQTT message crosses a shared engine (Redis)."""
    return [message.topic, message.payload, message.qos, message.retain, message.props, message.expires_at]


def meta_from_engine(value: list[Any]) -> MqttMessage:
    topic, payload, qos, retain, props, expires_at = value
    if "user_property" in props:
        props["user_property"] = [tuple(p) for p in props["user_property"]]
    return MqttMessage(topic, payload, qos, retain, props, expires_at)
