"""The MQTT broker logic without sockets: client ids → sessions, and one `Connection` per network link
that turns decoded packets into core calls (publish, subscribe, retained) and reply packets.

The transport (server.py) feeds bytes in and gives each connection a `Link` to write to.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

import trio

from hub.config import ConfigError
from hub.core import Hub, HubError
from hub.core.patterns import FilterError, has_wildcards, is_topic, validate_filter
from hub.loginlimit import LoginLimiter

from . import codec
from .auth import Authenticator, Rules, file_stamps
from .payload import to_data
from .session import Limits, Link, MqttSession, Sub, parse_subscription
from .wire import FORWARDED, MqttMessage, MqttWire, message_of

log = logging.getLogger("hub.mqtt")

NEVER_EXPIRES = 0xFFFFFFFF
SLICE_SECONDS = 0.0005  # a connection's packets are handled in slices this long, then other connections run


class Broker:
    """Client ids and their sessions for one project; spawns will-delay timers in `nursery`."""

    def __init__(self, hub: Hub, project: str, limits: Limits, auth: Authenticator,
                 nursery: trio.Nursery | None = None, login_limiter: LoginLimiter | None = None,
                 reread_auth: Callable[[], Authenticator] | None = None) -> None:
        self.hub = hub
        self.login_limiter = login_limiter  # failed CONNECT passwords, as the other adapters' logins
        self.project = project
        self.limits = limits
        self.auth = auth
        self.reread_auth = reread_auth  # builds the authenticator again from the current settings' files
        self.nursery = nursery
        self.sessions: dict[str, MqttSession] = {}
        self._wires: dict[int, MqttWire] = {}
        self.password_checks = trio.CapacityLimiter(2)
        self.refused_publishes = 0

    def refresh_auth(self) -> None:
        """Read the password and ACL files again if they changed (`mosquitto_passwd`, `hub mqtt passwd`, an
        edit), so that the next CONNECT uses them without a reload; a file that no longer reads keeps the old users."""
        if self.reread_auth is None or not self.auth.stale():
            return
        try:
            self.auth = self.reread_auth()
        except ConfigError as exc:  # names the file's key and line
            self.auth.stamps = file_stamps(self.auth.files)  # said once, not at every CONNECT
            log.error("mqtt: %s: the users and ACLs read before stay in force", exc)
            return
        log.info("mqtt: read %s again", " and ".join(self.auth.files))

    async def publish_message(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False,
                              props: dict[str, Any] | None = None) -> None:
        """An MQTT message published from outside a connection (the stats API's /api/v4/mqtt/publish): into the
        core on this broker's project, as a client's PUBLISH is (payload bytes, QoS, retain, forwarded properties,
        message expiry, the retained store). ValueError, with the reason, for a topic or payload a client could
        not publish either."""
        props = props or {}
        if not topic or topic.startswith("$"):
            raise ValueError("topics starting with $ are reserved" if topic else "empty topic name")
        if not is_topic(topic):
            raise ValueError("a topic name holds no wildcards")
        if qos not in (0, 1, 2):
            raise ValueError("qos must be 0, 1 or 2")
        if props.get("payload_format_indicator") == 1 and not _utf8(payload):
            raise ValueError("payload is not UTF-8")
        hub = self.hub
        try:
            hub.channel(self.project, topic)
        except HubError as exc:
            raise ValueError(exc.message) from None
        expiry = props.get("message_expiry_interval")
        msg = MqttMessage(topic, payload, qos, retain, {k: props[k] for k in FORWARDED if k in props},
                          hub.clock() + expiry if expiry is not None else None)
        pub = await hub.publish(self.project, topic, to_data(payload), meta=msg)
        if retain:
            if payload:
                hub.retained.keep(pub)
            else:
                hub.retained.clear(self.project, topic)

    def wire(self, version: int) -> MqttWire:
        w = self._wires.get(version)
        if w is None:
            w = self._wires[version] = MqttWire(version, self.hub.clock)
        return w

    def forget(self, session: MqttSession, reason: str) -> None:
        if self.sessions.get(session.client_id) is session:
            del self.sessions[session.client_id]
        conn = session.connection
        if conn is not None and reason != "shutdown":
            conn.server_closed = True

    def connection(self, link: Link, ip: str = "") -> Connection:
        return Connection(self, link, ip)


class Connection:
    """One network connection's protocol state: CONNECT, then packets until DISCONNECT or the link ends."""

    def __init__(self, broker: Broker, link: Link, ip: str = "") -> None:
        self.broker = broker
        self.hub = broker.hub
        self.link = link
        self.ip = ip  # the client's address, for the login limiter
        self.version = 0
        self.keepalive = 0
        self.session: MqttSession | None = None
        self.rules: Rules | None = None
        self.will: codec.Will | None = None
        self.graceful = False
        self.slow = False
        self.server_closed = False
        self.aliases: dict[int, str] = {}
        self.closed = False
        self._checked: dict[str, tuple[int, str] | None] = {}
        self._projects: Any = None

    # -- entry points for the transport -----------------------------------------------------
    async def received(self, first: int, body: bytes) -> None:
        """One packet from the client; PacketError for a malformed or forbidden one (the transport closes)."""
        packet = codec.decode(first, body, self.version)
        if isinstance(packet, codec.Publish):
            await self.on_publish(packet)
        elif isinstance(packet, codec.Ack):
            self.on_ack(packet)
        elif isinstance(packet, codec.PingReq):
            self.link.force(codec.PINGRESP_PACKET)
        elif isinstance(packet, codec.Subscribe):
            await self.on_subscribe(packet)
        elif isinstance(packet, codec.Unsubscribe):
            self.on_unsubscribe(packet)
        elif isinstance(packet, codec.Connect):
            await self.on_connect(packet)
        elif isinstance(packet, codec.Disconnect):
            self.on_disconnect(packet)
        else:
            raise codec.PacketError("AUTH without enhanced authentication", codec.PROTOCOL_ERROR)

    async def received_all(self, packets: list[tuple[int, bytes]]) -> None:
        """Packets from one read. Consecutive plain QoS 0/1 PUBLISHes to one topic go to the core as one batch
        (one push per subscriber instead of one per message); anything else ends the batch, so order is kept."""
        batch: list[codec.Publish] = []
        started = time.perf_counter()
        for first, body in packets:
            if self.link.closing:
                return
            if time.perf_counter() - started > SLICE_SECONDS:  # fairness: one read's packets in bounded slices
                if batch:
                    await self.publish_batch(batch)
                    batch = []
                await trio.lowlevel.checkpoint()
                started = time.perf_counter()
                if self.link.closing:
                    return
            if first >> 4 == codec.PUBLISH and self.session is not None:
                p = codec.decode(first, body, self.version)
                assert isinstance(p, codec.Publish)
                if p.qos < 2 and not p.retain and not p.props and p.topic:
                    if batch and batch[0].topic != p.topic:
                        await self.publish_batch(batch)
                        batch = []
                    batch.append(p)
                    continue
                if batch:
                    await self.publish_batch(batch)
                    batch = []
                await self.on_publish(p)
                continue
            if batch:
                await self.publish_batch(batch)
                batch = []
            await self.received(first, body)
        if batch and not self.link.closing:
            await self.publish_batch(batch)

    async def publish_batch(self, batch: list[codec.Publish]) -> None:
        if len(batch) == 1 or self.rules is None or self.check_topic(batch[0].topic, self.rules) is not None:
            for p in batch:
                await self.on_publish(p)
            return
        session = self.session
        assert session is not None
        topic, core = batch[0].topic, session.core
        info = core.client_info(topic)
        items = [(to_data(p.payload), info, core.id) for p in batch]
        metas = [MqttMessage(topic, p.payload, p.qos) for p in batch]
        try:
            await self.hub.publish_many(self.broker.project, topic, items, meta=metas)
        except HubError:
            for p in batch:
                await self.on_publish(p)
            return
        for p in batch:
            if p.qos:
                self.link.force(codec.ack(codec.PUBACK, p.packet_id, self.version))

    def refuse(self, error: codec.PacketError) -> None:
        """Tell an MQTT 5 client why (DISCONNECT with the reason code), then close."""
        if isinstance(error, codec.UnsupportedVersion) and self.version == 0:
            self.link.force(codec.connack(codec.MQTT311, False, codec.UNSUPPORTED_VERSION))  # as Mosquitto does
        elif self.version == codec.MQTT5 and self.session is not None:
            self.link.force(codec.disconnect(error.code, {"reason_string": str(error)}))
        log.info("mqtt client %s: %s", self.session.client_id if self.session else "-", error)
        self.link.close()

    async def lost(self) -> None:
        """The link is gone (DISCONNECT, error, keepalive timeout, takeover, server close): will, session expiry."""
        if self.closed:
            return
        self.closed = True
        session = self.session
        if session is None or not session.detach(self.link):
            return
        will, self.will = self.will, None
        if will is not None and not self.graceful and session.core.close_reason != "shutdown":
            delay = min(will.props.get("will_delay_interval", 0), session.expiry)
            if delay and self.broker.nursery is not None and not session.ended:
                self.broker.nursery.start_soon(self._delayed_will, session, will, delay)
            else:
                await self.publish_will(session, will)
        if session.ended or session.core.closed:
            return
        if session.expiry == 0:
            self.broker.forget(session, "disconnected")
            session.end("disconnected")
        else:
            session.core.expires_at = self.hub.clock() + session.expiry

    async def _delayed_will(self, session: MqttSession, will: codec.Will, delay: float) -> None:
        await trio.sleep(delay)
        if session.link is None:  # not resumed meanwhile
            await self.publish_will(session, will)

    async def publish_will(self, session: MqttSession, will: codec.Will) -> None:
        try:
            await self.publish(session, will.topic, will.payload, will.qos, will.retain, will.props)
        except HubError as exc:
            log.info("will of %s not published: %s", session.client_id, exc.message)

    # -- CONNECT ------------------------------------------------------------------------------
    async def on_connect(self, c: codec.Connect) -> None:
        broker, limits = self.broker, self.broker.limits
        self.version = c.version
        v5 = c.version == codec.MQTT5

        def refuse(code: int, why: str) -> None:
            self.link.force(codec.connack(c.version, False, code, {"reason_string": why} if v5 else None))
            log.info("mqtt CONNECT from %r refused: %s", c.client_id, why)
            self.link.close()

        if "authentication_method" in c.props:
            return refuse(codec.BAD_AUTH_METHOD, "enhanced authentication is not supported")
        client_id, assigned = c.client_id, None
        if not client_id:
            if not c.clean and not v5 or c.version == codec.MQTT31:
                return refuse(codec.CLIENT_ID_INVALID, "an empty client id needs a clean session")
            client_id = assigned = "auto-" + secrets.token_hex(8)
        broker.refresh_auth()
        if c.username is None and c.password is None:
            ok = broker.auth.check(None, None)
        else:
            logins = broker.login_limiter
            blocked = logins.check("mqtt", c.username, self.ip) if logins is not None else None
            if blocked is not None:  # MQTT 5: Banned; 3.x: not authorized
                return refuse(codec.BANNED, f"login has been temporarily blocked for {blocked.kind}: "
                                            f"try again in {blocked.retry_after} s")
            ok = await trio.to_thread.run_sync(broker.auth.check, c.username, c.password,
                                               limiter=broker.password_checks)
            if logins is not None:
                if ok:
                    logins.succeeded("mqtt", c.username, self.ip)
                else:
                    logins.failed("mqtt", c.username, self.ip)
        if not ok:
            if c.username is None or not broker.auth.passwords:  # no users configured: every client is anonymous
                return refuse(codec.NOT_AUTHORIZED, "anonymous clients are not allowed")
            return refuse(codec.BAD_CREDENTIALS, "bad user name or password")
        rules = broker.auth.rules(c.username, client_id)
        if c.will is not None:
            problem = self.check_topic(c.will.topic, rules)
            if problem:
                return refuse(problem[0], f"will topic: {problem[1]}")
            if v5 and c.will.props.get("payload_format_indicator") == 1 and not _utf8(c.will.payload):
                return refuse(codec.PAYLOAD_FORMAT_INVALID, "will payload is not UTF-8")
        keepalive = c.keepalive
        server_keepalive = None
        if v5 and limits.max_keepalive and (keepalive == 0 or keepalive > limits.max_keepalive):
            keepalive = server_keepalive = limits.max_keepalive
        if v5:
            expiry = c.props.get("session_expiry_interval", 0)
        else:
            expiry = 0 if c.clean else NEVER_EXPIRES
        granted_expiry = min(expiry, limits.session_expiry_max)
        # Take over a live connection with this client id; resume its session unless clean start.
        old = broker.sessions.get(client_id)
        present = False
        if old is not None:
            if old.link is not None:
                old_conn = old.connection
                if old.version == codec.MQTT5:
                    old.link.force(codec.disconnect(codec.SESSION_TAKEN_OVER, {"reason_string": "session taken over"}))
                old.link.close()
                if old_conn is not None:
                    await old_conn.lost()
            if c.clean or old.username != c.username or old.ended or old.core.closed:
                broker.forget(old, "taken over")
                old.end("session taken over")
                old = None
            else:
                present = True
        session = old or MqttSession(broker, client_id, c.username, c.version, limits)
        broker.sessions[client_id] = session
        session.expiry = granted_expiry
        self.session, self.rules, self.will, self.keepalive = session, rules, c.will, keepalive
        session.attach(self.link, self, c.version, keepalive, c.props.get("receive_maximum", 65535),
                       c.props.get("maximum_packet_size", 0), rules)
        # what the stats API's v4 /clients shows of this connection (NanoMQ reads them from the CONNECT)
        session.core.meta["clean_start"] = c.clean
        session.core.meta["will"] = None if c.will is None else (c.will.topic, c.will.payload.decode("utf-8", "replace"))
        props: dict[str, Any] | None = None
        if v5:
            props = {"receive_maximum": limits.receive_maximum, "maximum_packet_size": limits.max_packet_size,
                     "topic_alias_maximum": limits.topic_alias_maximum, "retain_available": 1,
                     "wildcard_subscription_available": 1, "subscription_identifier_available": 1,
                     "shared_subscription_available": 1}
            if granted_expiry != expiry:
                props["session_expiry_interval"] = granted_expiry
            if assigned:
                props["assigned_client_identifier"] = assigned
            if server_keepalive is not None:
                props["server_keep_alive"] = server_keepalive
        self.link.force(codec.connack(c.version, present, codec.SUCCESS, props))
        session.resume()

    def check_topic(self, topic: str, rules: Rules) -> tuple[int, str] | None:
        """Why a client may not publish to `topic` ((reason code, text)), or None if it may (cached per connection)."""
        cache = self._checked
        if topic in cache and self.hub.projects is self._projects:
            return cache[topic]
        if len(cache) > 1024 or self.hub.projects is not self._projects:
            cache.clear()
            self._projects = self.hub.projects
        problem = cache[topic] = self._check_topic(topic, rules)
        return problem

    def _check_topic(self, topic: str, rules: Rules) -> tuple[int, str] | None:
        if not topic or topic.startswith("$"):
            return codec.TOPIC_NAME_INVALID, "topics starting with $ are reserved"
        try:
            self.hub.channel(self.broker.project, topic)
        except HubError as exc:
            return codec.TOPIC_NAME_INVALID, exc.message
        if not rules.may_write(topic):
            return codec.NOT_AUTHORIZED, "not authorized"
        return None

    # -- PUBLISH ------------------------------------------------------------------------------
    async def on_publish(self, p: codec.Publish) -> None:
        session, v5 = self.session, self.version == codec.MQTT5
        assert session is not None and self.rules is not None
        topic = p.topic
        alias = p.props.get("topic_alias")
        if alias is not None:
            if not 0 < alias <= self.broker.limits.topic_alias_maximum:
                raise codec.PacketError("topic alias out of range", codec.TOPIC_ALIAS_INVALID)
            if topic:
                self.aliases[alias] = topic
            else:
                topic = self.aliases.get(alias, "")
                if not topic:
                    raise codec.PacketError("unknown topic alias", codec.PROTOCOL_ERROR)
        elif not topic:
            raise codec.PacketError("empty topic name", codec.TOPIC_NAME_INVALID if v5 else codec.MALFORMED)
        if p.qos == 2 and p.packet_id in session.incoming_qos2:
            self.link.force(codec.ack(codec.PUBREC, p.packet_id, self.version))  # a resent QoS 2: no second copy
            return
        if p.qos == 2 and len(session.incoming_qos2) >= self.broker.limits.receive_maximum:
            raise codec.PacketError("too many QoS 2 publications awaiting PUBREL", codec.RECEIVE_MAXIMUM_EXCEEDED)
        problem = self.check_topic(topic, self.rules)
        if problem is None and v5 and p.props.get("payload_format_indicator") == 1 and not _utf8(p.payload):
            problem = codec.PAYLOAD_FORMAT_INVALID, "payload is not UTF-8"
        reason = codec.SUCCESS
        if problem is None:
            try:
                await self.publish(session, topic, p.payload, p.qos, p.retain, p.props)
            except HubError as exc:
                problem = codec.TOPIC_NAME_INVALID, exc.message
        if problem is not None:
            self.broker.refused_publishes += 1
            log.info("mqtt client %s: publish to %r refused: %s", session.client_id, topic, problem[1])
            reason = problem[0] if v5 else codec.SUCCESS  # 3.1.1 has no negative ack: acknowledge and drop
        if p.qos == 1:
            self.link.force(codec.ack(codec.PUBACK, p.packet_id, self.version, reason))
        elif p.qos == 2:
            if reason < 0x80:
                session.incoming_qos2.add(p.packet_id)
            self.link.force(codec.ack(codec.PUBREC, p.packet_id, self.version, reason))

    async def publish(self, session: MqttSession, topic: str, payload: bytes, qos: int, retain: bool,
                      props: dict[str, Any]) -> None:
        """One MQTT publication into the core (and the retained store)."""
        hub = self.hub
        expiry = props.get("message_expiry_interval")
        now = hub.clock()
        msg = MqttMessage(topic, payload, qos, retain, {k: props[k] for k in FORWARDED if k in props},
                          now + expiry if expiry is not None else None)
        core = session.core
        pub = await hub.publish(self.broker.project, topic, to_data(payload), core.client_info(topic), core.id, meta=msg)
        if retain:
            if payload:
                hub.retained.keep(pub)
            else:
                hub.retained.clear(self.broker.project, topic)

    def on_ack(self, a: codec.Ack) -> None:
        session = self.session
        assert session is not None
        if a.kind == codec.PUBREL:
            known = a.packet_id in session.incoming_qos2
            session.incoming_qos2.discard(a.packet_id)
            reason = codec.SUCCESS if known or self.version != codec.MQTT5 else codec.PACKET_ID_NOT_FOUND
            self.link.force(codec.ack(codec.PUBCOMP, a.packet_id, self.version, reason))
            return
        session.acked(a.kind, a.packet_id, a.reason)

    # -- SUBSCRIBE / UNSUBSCRIBE ------------------------------------------------------------
    async def on_subscribe(self, s: codec.Subscribe) -> None:
        session, rules, v5 = self.session, self.rules, self.version == codec.MQTT5
        assert session is not None and rules is not None
        sub_id = s.props.get("subscription_identifier", 0)
        codes: list[int] = []
        retained: list[tuple[Sub, bool, int]] = []
        for text, options in s.topics:
            qos = options & 3
            try:
                group, topic_filter = parse_subscription(text)
                validate_filter(topic_filter)
            except (ValueError, FilterError):
                codes.append(codec.TOPIC_FILTER_INVALID)
                continue
            wildcard = has_wildcards(topic_filter)
            if group and v5 and options & 0x04:
                raise codec.PacketError("no local on a shared subscription", codec.PROTOCOL_ERROR)
            if topic_filter.startswith("$"):
                codes.append(codec.NOT_AUTHORIZED)
                continue
            if not rules.may_read(topic_filter):
                codes.append(codec.NOT_AUTHORIZED)
                continue
            existed = text in session.subs
            try:
                if group or wildcard:
                    # the channel rules (namespace, length) apply to the literal part of the filter
                    self.hub.channel(self.broker.project, topic_filter.replace("+", "x").replace("#", "x"))
                    self.hub.filters.add(session.core, topic_filter, group)
                else:
                    await self.hub.subscribe(session.core, topic_filter, authorized=True)
            except HubError as exc:
                codes.append(codec.NOT_AUTHORIZED if exc.message == "permission denied" else codec.TOPIC_FILTER_INVALID)
                continue
            sub = Sub(text, topic_filter, group, wildcard, qos, bool(options & 0x04) if v5 else False,
                      bool(options & 0x08) if v5 else False, sub_id)
            session.subs[text] = sub
            codes.append(qos)
            handling = (options >> 4) & 3 if v5 else 0
            if not group and (handling == 0 or handling == 1 and not existed):
                retained.append((sub, existed, qos))
        session._changed()
        self.link.force(codec.suback(self.version, s.packet_id, codes))
        now = self.hub.clock()
        for sub, _, qos in retained:
            for pub in self.hub.retained.matching(self.broker.project, sub.topic_filter):
                msg = message_of(pub)
                if msg.expires_at is not None and msg.expires_at <= now:
                    self.hub.retained.clear(pub.project, pub.channel)
                    continue
                self._count_copy(session)
                session.deliver(pub, msg, retained=True, max_qos=qos, sub_ids=(sub.sub_id,) if sub.sub_id else ())

    def _count_copy(self, session: MqttSession) -> None:
        session.core.received += 1
        self.hub.stats.messages_delivered += 1

    def on_unsubscribe(self, u: codec.Unsubscribe) -> None:
        session = self.session
        assert session is not None
        codes = []
        for text in u.topics:
            sub = session.subs.pop(text, None)
            if sub is None:
                codes.append(codec.NO_SUBSCRIPTION_EXISTED)
                continue
            if sub.group or sub.wildcard:
                self.hub.filters.remove(session.core, sub.topic_filter, sub.group)
            else:
                self.hub.unsubscribe_session(session.core, sub.topic_filter)
            codes.append(codec.SUCCESS)
        session._changed()
        self.link.force(codec.unsuback(self.version, u.packet_id, codes))

    # -- DISCONNECT ---------------------------------------------------------------------------
    def on_disconnect(self, d: codec.Disconnect) -> None:
        session = self.session
        assert session is not None
        if "session_expiry_interval" in d.props:
            if session.expiry == 0 and d.props["session_expiry_interval"]:
                raise codec.PacketError("session expiry set on DISCONNECT after 0 on CONNECT", codec.PROTOCOL_ERROR)
            session.expiry = min(d.props["session_expiry_interval"], self.broker.limits.session_expiry_max)
        self.graceful = d.reason != codec.DISCONNECT_WITH_WILL
        self.link.close()


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
