"""NanoMQ's HTTP API v4 (`/api/v4/...`, NanoMQ 0.8.3 and later) without I/O: the request target read as its
`uri_parse` reads it, Basic auth as `basic_authorize`, and the answers of the GET endpoints the hub can fill
truthfully. Shaped after nanomq/rest_api.c; every body is `{"code": N[, "data": ...]}`, errors `{"code": N}`.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from hub.core import Hub
from hub.version import __version__

from .api import (
    BAD_PARAMETER,
    EMPTY_CREDENTIALS,
    NOT_JSON,
    OK,
    UNKNOWN,
    WRONG_CREDENTIALS,
    ClientView,
    client_views,
    item,
    load,
)
from .process import ProcessSampler

ROOT = "/api/v4"
MQTT_LEVELS = (3, 4, 5)  # MQTT_PROTOCOL_VERSION_v31, _v311, _v5: the proto_ver filters NanoMQ accepts

# NanoMQ's endpoint table (rest_api.c `api_ep`), in its order, with its strings: only the entries the hub serves.
ENDPOINTS = [
    {"path": "/brokers/", "name": "list_brokers", "method": "GET", "descr": "A list of brokers in the cluster"},
    {"path": "/nodes/", "name": "list_nodes", "method": "GET", "descr": "A list of nodes in the cluster"},
    {"path": "/clients/", "name": "list_clients", "method": "GET", "descr": "A list of clients on current node"},
    {"path": "/clients/:clientid", "name": "lookup_client", "method": "GET", "descr": "Lookup a client in the cluster"},
    {"path": "/clients/username/:username", "name": "lookup_client_via_username", "method": "GET",
     "descr": "Lookup a client via username in the cluster"},
    {"path": "/subscriptions/", "name": "list_subscriptions", "method": "GET",
     "descr": "A list of subscriptions in the cluster"},
    {"path": "/subscriptions/:clientid", "name": "lookup_client_subscriptions", "method": "GET",
     "descr": "A list of subscriptions of a client"},
    {"path": "/mqtt/publish", "name": "mqtt_publish", "method": "POST", "descr": "Publish a MQTT message"},
    {"path": "/mqtt/publish_batch", "name": "mqtt_publish_batch", "method": "POST", "descr": "Batch publish MQTT messages"},
    {"path": "/topic-tree/", "name": "list_topic-tree", "method": "GET", "descr": "A list of topic-tree in the cluster"},
    {"path": "/metrics", "name": "metrics", "method": "GET", "descr": "Returns all statistical metrics"},
    {"path": "/prometheus", "name": "prometheus", "method": "GET", "descr": "Returns all prometheus data"},
]


class V4Error(Exception):
    """An error answer: HTTP `status` and NanoMQ's result `code` (body `{"code": N}`); `message` goes to X-Error."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def body(self) -> dict[str, Any]:
        return {"code": self.code}


@dataclass(frozen=True, slots=True)
class Target:
    """A request target as NanoMQ's `uri_parse` splits it: the path segments after `/api/v4` (the first is
    always the empty one before the leading `/`; none at all for the root) and the `key=value` parameters."""

    segments: list[str]
    params: list[tuple[str, str]]


def _params(query: str) -> list[tuple[str, str]]:
    """`uri_param_parse`: `&`-separated `key=value` pairs; a pair without `=`, with an empty key or an empty
    value is dropped; a query shorter than 3 characters is not read. Values are percent-decoded (NanoMQ leaves
    them as sent, so `%40` never matched anything: the hub does what the filter means)."""
    if len(query) < 3:
        return []
    out = []
    for pair in query.split("&"):
        key, eq, value = pair.partition("=")
        if eq and key and value:
            out.append((key, urllib.parse.unquote_plus(value)))
    return out


def parse_target(target: str) -> Target:
    """The raw request target (path and query, as sent) read as NanoMQ's `uri_parse` reads it.

    `/api/v4` and `/api/v4/` exactly are the root; otherwise the path after `/api/v4` is split at `/` with a
    trailing `/` ignored (`/api/v4/brokers/` is `brokers`), so `/api/v4/?x=1` has one empty segment (404 as on
    NanoMQ). Segments are percent-decoded, so `/clients/a%2Fb` looks up the client `a/b`."""
    if target in (ROOT, ROOT + "/"):
        return Target([], [])
    path, _, query = target.partition("?")
    rest = path[len(ROOT):] if path.startswith(ROOT) else ""
    parts = rest.split("/") if rest else []
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    return Target([urllib.parse.unquote(p) for p in parts], _params(query))


def check_auth(header: str | None, app_id: str, app_secret: str) -> None:
    """`basic_authorize` of NanoMQ 0.8+: `Basic ` then the base64 of `app_id:app_secret`, compared whole.

    No header or no `Basic ` prefix: 104; fewer than 4 base64 characters or other credentials: 103;
    credentials that are not base64: 108. All are 401. Compared in constant time."""
    if not header or len(header) <= 6 or not header.startswith("Basic "):
        raise V4Error(401, EMPTY_CREDENTIALS, "empty username or password")
    token = header[6:]
    if len(token) < 4:
        raise V4Error(401, WRONG_CREDENTIALS, "wrong username or password")
    try:
        decoded = base64.b64decode(token, validate=True)
    except (binascii.Error, ValueError):
        raise V4Error(401, BAD_PARAMETER, "credentials are not base64") from None
    decoded = decoded.split(b"\0", 1)[0]  # compared as a C string
    if not hmac.compare_digest(decoded, f"{app_id}:{app_secret}".encode()):
        raise V4Error(401, WRONG_CREDENTIALS, "wrong username or password")


def uptime(seconds: float) -> str:
    """NanoMQ's `get_uptime`: `"%lu Hours, %lu minutes, %lu seconds"`."""
    s = max(0, int(seconds))
    return f"{s // 3600} Hours, {s // 60 % 60} minutes, {s % 60} seconds"


def brokers(hub: Hub, now: float | None = None) -> dict[str, Any]:
    """`GET /api/v4/brokers` (`get_brokers`): local time, `Running`, what the node is, uptime, version."""
    now = time.time() if now is None else now
    return {"code": OK, "data": [{"datetime": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)),
                                  "node_status": "Running", "sysdescr": "hub", "uptime": uptime(hub.clock() - hub.started_at),
                                  "version": __version__}]}


def nodes(hub: Hub) -> dict[str, Any]:
    """`GET /api/v4/nodes` (`get_nodes`): `connections` counts the connected sessions of every protocol (NanoMQ
    counts its MQTT pipes); an offline persistent MQTT session is not a connection."""
    connected = sum(1 for c in client_views(hub) if c.connected)
    return {"code": OK, "data": [{"connections": connected, "node_status": "Running",
                                  "uptime": uptime(hub.clock() - hub.started_at), "version": __version__}]}


def proto_name(c: ClientView) -> str:
    """The CONNECT's protocol name for MQTT clients (`MQIsdp` for 3.1, `MQTT` after); the hub protocol's name
    (`centrifugo`, `centrifuge-legacy`, `jsonrpc`, `chat`) for the others."""
    if c.protocol_version:
        return "MQIsdp" if c.protocol_version == 3 else "MQTT"
    return c.protocol_name


def client_entry(c: ClientView) -> dict[str, Any]:
    """One element of `/clients` (`get_client_cb`), its keys in NanoMQ's order; `will_topic`/`will_msg` only when
    the MQTT client set a will."""
    out: dict[str, Any] = {"client_id": c.client_id, "username": c.username, "keepalive": c.keepalive,
                           "conn_state": "connected" if c.connected else "disconnected", "clean_start": c.clean_start,
                           "proto_name": proto_name(c), "proto_ver": c.protocol_version}
    if c.will is not None:
        out["will_topic"], out["will_msg"] = c.will
    return out


def _flag(value: str, yes: str, no: str) -> bool:
    low = value.lower()  # nng_strcasecmp
    if low == yes:
        return True
    if low == no:
        return False
    raise V4Error(400, BAD_PARAMETER, f"request parameter error: {value!r} is neither {yes} nor {no}")


def clients(hub: Hub, params: list[tuple[str, str]], client_id: str | None = None,
            username: str | None = None) -> dict[str, Any]:
    """`GET /api/v4/clients[/:clientid | /username/:username]` (`get_clients`), with its filters: `clientid` (or
    `client_id`), `username`, `conn_state` (connected/disconnected), `clean_start` (true/false), `proto_name`,
    `proto_ver` (3, 4 or 5). A parameter the handler does not know, or a bad value, is 400 `{"code": 108}`;
    a query parameter overrides the path's client id or user name, as in NanoMQ."""
    conn_state: bool | None = None
    clean: bool | None = None
    name: str | None = None
    ver: int | None = None
    for key, value in params:
        if key in ("clientid", "client_id"):
            client_id = value
        elif key == "username":
            username = value
        elif key == "conn_state":
            conn_state = _flag(value, "connected", "disconnected")
        elif key == "clean_start":
            clean = _flag(value, "true", "false")
        elif key == "proto_name":
            name = value
        elif key == "proto_ver":
            if not (value.isascii() and value.isdigit()) or int(value) not in MQTT_LEVELS:
                raise V4Error(400, BAD_PARAMETER, "request parameter error: proto_ver must be 3, 4 or 5")
            ver = int(value)
        else:
            raise V4Error(400, BAD_PARAMETER, f"request parameter error: unknown parameter {key!r}")
    data = [client_entry(c) for c in client_views(hub)
            if (client_id is None or c.client_id == client_id)
            and (username is None or (c.username != "" and c.username == username))
            and (conn_state is None or c.connected == conn_state)
            and (clean is None or c.clean_start == clean)
            and (name is None or proto_name(c) == name)
            and (ver is None or c.protocol_version == ver)]
    return {"code": OK, "data": data}


def subscriptions(hub: Hub, client_id: str | None = None) -> dict[str, Any]:
    """`GET /api/v4/subscriptions[/:clientid]` (`get_subscriptions`): one `{clientid, topic, qos}` per
    subscription of every client (query parameters are ignored, as NanoMQ does)."""
    return {"code": OK, "data": [{"clientid": c.client_id, "topic": topic, "qos": qos} for c in client_views(hub)
                                 if client_id is None or c.client_id == client_id for topic, qos in c.subscriptions]}


@dataclass
class Maxima:
    """`update_max_stats`: the highest values seen at the scrapes of /prometheus (not in between, as NanoMQ says:
    "not strictly the maximum value")."""

    connections: int = 0
    sessions: int = 0
    topics: int = 0
    subscribers: int = 0
    memory: int = 0
    cpu: float = 0.0


def prometheus(hub: Hub, sampler: ProcessSampler, maxima: Maxima) -> str:
    """`GET /api/v4/prometheus` (`get_prometheus` / `compose_metrics`), its text byte for byte.

    connections: connected sessions of every protocol; sessions: all sessions (with offline persistent MQTT
    ones); topics: distinct subscribed channels and topic filters; subscribers: sessions with a subscription;
    messages: the core's message_in / message_out / message_drop; memory and CPU of the hub process."""
    views = client_views(hub)
    memory, cpu = sampler.sample()
    now = Maxima(sum(1 for c in views if c.connected), len(views),
                 len({topic for c in views for topic, _ in c.subscriptions}), sum(1 for c in views if c.subscriptions),
                 memory, cpu)
    for name in ("connections", "sessions", "topics", "subscribers", "memory", "cpu"):
        setattr(maxima, name, max(getattr(maxima, name), getattr(now, name)))
    stats = hub.stats
    lines = []
    for name, value, peak in (("connections", now.connections, maxima.connections),
                              ("sessions", now.sessions, maxima.sessions),
                              ("topics", now.topics, maxima.topics),
                              ("subscribers", now.subscribers, maxima.subscribers)):
        lines += [f"# TYPE nanomq_{name}_count gauge", f"# HELP nanomq_{name}_count", f"nanomq_{name}_count {value}",
                  f"# TYPE nanomq_{name}_max gauge", f"# HELP nanomq_{name}_max", f"nanomq_{name}_max {peak}"]
    for name, value in (("received", stats.messages_in), ("sent", stats.messages_delivered),
                        ("dropped", stats.messages_dropped)):
        lines += [f"# TYPE nanomq_messages_{name} counter", f"# HELP nanomq_messages_{name}", f"nanomq_messages_{name} {value}"]
    lines += ["# TYPE nanomq_memory_usage gauge", "# HELP nanomq_memory_usage (b)", f"nanomq_memory_usage {now.memory}",
              "# TYPE nanomq_memory_usage_max gauge", "# HELP nanomq_memory_usage_max (b)",
              f"nanomq_memory_usage_max {maxima.memory}",
              "# TYPE nanomq_cpu_usage gauge", "# HELP nanomq_cpu_usage (%)", f"nanomq_cpu_usage {now.cpu:.2f}",
              "# TYPE nanomq_cpu_usage_max gauge", "# HELP nanomq_cpu_usage_max (%)", f"nanomq_cpu_usage_max {maxima.cpu:.2f}"]
    return "\n".join(lines) + "\n"


def metrics(hub: Hub, sampler: ProcessSampler) -> dict[str, Any]:
    """`GET /api/v4/metrics` (`get_metrics`): `metrics` (NanoMQ's bridges' counters: the hub has no bridges, so
    `[]`), the process's CPU use `"N.NN%"` and memory (bytes, a string), and the connected sessions. No `code`
    key, as NanoMQ prints none."""
    memory, cpu = sampler.sample()
    return {"metrics": [], "cpuinfo": f"{cpu:.2f}%", "memory": str(memory),
            "connections": sum(1 for c in client_views(hub) if c.connected)}


class _Node:
    """A level of NanoMQ's subscription tree (nanolib mqtt_db.c `dbtree_node`)."""

    __slots__ = ("topic", "plain", "wild", "clients")

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.plain: dict[str, _Node] = {}
        self.wild: list[_Node] = []  # `+` / `#`: the one inserted last first, as dbtree_node_insert puts them
        self.clients: list[str] = []

    def child(self, level: str) -> _Node:
        if level in ("+", "#"):
            for node in self.wild:
                if node.topic == level:
                    return node
            node = _Node(level)
            self.wild.insert(0, node)
            return node
        node = self.plain.get(level)
        if node is None:
            node = self.plain[level] = _Node(level)
        return node

    def children(self) -> list[_Node]:
        """Wildcards first, then the other levels in strcmp order (the tree's binary search keeps them sorted)."""
        return self.wild + [self.plain[k] for k in sorted(self.plain, key=lambda k: k.encode("utf-8"))]


def topic_tree(hub: Hub) -> dict[str, Any]:
    """`GET /api/v4/topic-tree` (`get_tree` over `dbtree_get_tree`): the subscription tree level by level from the
    root (topic `""`), each node `{topic, cld_cnt, clientid}`: its level of the topic filter, its number of
    children and the clients whose filter ends there. The walk emits levels in pairs, so an odd number of levels
    ends with an empty one, as NanoMQ's does. Channels of websocket clients are topics like any other; an offline
    persistent MQTT session keeps its nodes but is not listed in `clientid` (its connection is gone). Wildcard
    siblings are ordered as if subscriptions had been made in the order the sessions are listed."""
    root = _Node("")
    for c in client_views(hub):
        for topic, _ in c.subscriptions:
            node = root
            for level in topic.split("/"):
                node = node.child(level)
            if c.connected and c.client_id not in node.clients:
                node.clients.append(c.client_id)
    lines: list[list[dict[str, Any]]] = []
    level = [root]
    while level:
        kids = [node.children() for node in level]
        lines.append([{"topic": node.topic, "cld_cnt": len(k), "clientid": node.clients} for node, k in zip(level, kids, strict=True)])
        level = [child for k in kids for child in k]
    if len(lines) % 2:
        lines.append([])
    return {"code": OK, "data": lines}


def _number(obj: Any, name: str) -> float | None:
    """getNumberValue: the value of `name` if it is a JSON number (not a bool), else None."""
    found, value = item(obj, name) if isinstance(obj, dict) else (False, None)
    if found and isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    return None


def _string(obj: Any, name: str) -> str | None:
    """getStringValue: the value of `name` if it is a JSON string, read as the C string it becomes (to a NUL)."""
    found, value = item(obj, name) if isinstance(obj, dict) else (False, None)
    return value.split("\0", 1)[0] if found and isinstance(value, str) else None


def _properties(obj: dict[str, Any]) -> dict[str, Any]:
    """`properties_parse`: the PUBLISH properties NanoMQ reads, under the hub MQTT listener's names; ValueError
    for `user_properties` that is not an object. Numbers go in as the C casts make them (u8, u32); user property
    values that are numbers are printed `%.17g`, booleans `true`/`false`, other values skipped.
    `subscription_identifier` is read by NanoMQ but never forwarded by a broker, so it is dropped here."""
    props: dict[str, Any] = {}
    value = _number(obj, "payload_format_indicator")
    if value is not None:
        props["payload_format_indicator"] = int(value) & 0xFF
    value = _number(obj, "message_expiry_interval")
    if value is not None:
        props["message_expiry_interval"] = int(value) & 0xFFFFFFFF
    for name, key in (("response_topic", "response_topic"), ("content_type", "content_type")):
        text = _string(obj, name)
        if text is not None:
            props[key] = text
    text = _string(obj, "correlation_data")
    if text is not None:
        props["correlation_data"] = text.encode("utf-8")
    found, users = item(obj, "user_properties")
    if found:
        if not isinstance(users, dict):
            raise ValueError("user_properties must be an object")
        pairs = []
        for key, val in getattr(users, "pairs", users.items()):
            if isinstance(val, bool):
                pairs.append((key, "true" if val else "false"))
            elif isinstance(val, (int, float)):
                pairs.append((key, format(float(val), ".17g")))
            elif isinstance(val, str):
                pairs.append((key, val))
        if pairs:
            props["user_property"] = pairs
    return props


@dataclass(frozen=True, slots=True)
class PublishRequest:
    """One message of /mqtt/publish as `handle_publish_msg` reads it."""

    topics: list[str]
    payload: bytes
    qos: int
    retain: bool
    props: dict[str, Any]


def read_publish(obj: Any) -> PublishRequest:
    """`handle_publish_msg`: `topic`, or `topics` split at `,` (empty pieces skipped, as strtok does); `payload`
    (a string, required); `encoding: "base64"` publishes the base64 text of the payload, `decoding: "base64"`
    publishes the bytes the payload's base64 stands for (both as NanoMQ's send_publish does); `qos` a number
    (0, 1 or 2); `retain` a boolean; `properties` an object. ValueError (answered `{"code": 108}`) otherwise.
    `clientid` is read by NanoMQ only to name the sender to its own socket; the hub has no sender to name."""
    topic = _string(obj, "topic")
    if topic is not None:
        topics = [topic]
    else:
        many = _string(obj, "topics")
        if many is None:
            raise ValueError("topic or topics is required")
        topics = [t for t in many.split(",") if t]
    payload_text = _string(obj, "payload")
    if payload_text is None:
        raise ValueError("payload is required")
    payload = payload_text.encode("utf-8")
    if _string(obj, "encoding") == "base64":
        payload = base64.b64encode(payload)
    elif _string(obj, "decoding") == "base64":
        try:
            payload = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("payload is not base64") from None
    qos_value = _number(obj, "qos")
    qos = 0 if qos_value is None else int(qos_value)
    if qos not in (0, 1, 2):
        raise ValueError("qos must be 0, 1 or 2")
    found, retain = item(obj, "retain")
    found, props_obj = item(obj, "properties")
    props = _properties(props_obj) if found and isinstance(props_obj, dict) else {}
    return PublishRequest(topics, payload, qos, isinstance(retain, bool) and retain, props)


async def publish(hub: Hub, obj: Any) -> int:
    """One message into the core through the MQTT listener's publisher; the result code (0 or 108)."""
    try:
        req = read_publish(obj)
        for topic in req.topics:  # in order; the first that cannot be published stops the rest, as send_publish
            await hub.publishers["mqtt"](topic, req.payload, req.qos, req.retain, req.props)
    except ValueError:
        return BAD_PARAMETER
    return OK


def _body(body: bytes) -> Any:
    try:
        return load(body)
    except ValueError:
        return None


async def post_publish(hub: Hub, body: bytes) -> dict[str, Any]:
    """`POST /api/v4/mqtt/publish` (`post_mqtt_msg`): a JSON object, else 400 `{"code": 109}`; then 200 with
    the message's result code (`{"code": 108}` for a message it cannot publish)."""
    obj = _body(body)
    if not isinstance(obj, dict):
        raise V4Error(400, NOT_JSON, "request parameters are not in legal JSON format")
    return {"code": await publish(hub, obj)}


async def post_publish_batch(hub: Hub, body: bytes) -> dict[str, Any]:
    """`POST /api/v4/mqtt/publish_batch` (`post_mqtt_msg_batch`): a JSON array, else 400 `{"code": 109}`; each
    element answered `{"topic", "code"}` in order, `topic` the element's `topics` (else `topic`) as given and
    left out when it has neither; the whole is `{"data": [...], "code": 0}` (data first, as NanoMQ prints it)."""
    array = _body(body)
    if not isinstance(array, list):
        raise V4Error(400, NOT_JSON, "request parameters are not in legal JSON format")
    data = []
    for element in array:
        entry: dict[str, Any] = {}
        shown = _string(element, "topics")
        if shown is None:
            shown = _string(element, "topic")
        if shown is not None:
            entry["topic"] = shown
        entry["code"] = await publish(hub, element) if isinstance(element, dict) else BAD_PARAMETER
        data.append(entry)
    return {"data": data, "code": OK}


def served(hub: Hub) -> list[dict[str, str]]:
    """The endpoint table entries this hub serves now: the publish endpoints while the MQTT listener runs."""
    return [dict(e) for e in ENDPOINTS if "/mqtt/" not in e["path"] or "mqtt" in hub.publishers]


@dataclass
class State:
    """What the v4 API keeps between requests: the CPU sampler and the /prometheus maxima (NanoMQ's statics)."""

    sampler: ProcessSampler = field(default_factory=ProcessSampler)
    maxima: Maxima = field(default_factory=Maxima)


async def route(hub: Hub, method: str, target: Target, body: bytes = b"", state: State | None = None) -> dict[str, Any] | str:
    """The answer body (a str for /prometheus's text), or V4Error: 404 `{"code": 102}` for what the hub does not
    serve, 405 for a method NanoMQ does not route at all."""
    seg = target.segments
    n = len(seg)
    state = state or State()
    if method == "GET":
        if n == 0:
            return {"code": OK, "data": served(hub)}
        if n == 2 and seg[1] == "topic-tree":
            return topic_tree(hub)
        if n == 2 and seg[1] == "prometheus":
            return prometheus(hub, state.sampler, state.maxima)
        if n == 2 and seg[1] == "metrics":
            return metrics(hub, state.sampler)
        if n == 2 and seg[1] == "brokers":
            return brokers(hub)
        if n == 2 and seg[1] == "nodes":
            return nodes(hub)
        if n == 2 and seg[1] == "clients":
            return clients(hub, target.params)
        if n == 3 and seg[1] == "clients":
            return clients(hub, target.params, client_id=seg[2])
        if n == 4 and seg[1] == "clients" and seg[2] == "username":
            return clients(hub, target.params, username=seg[3])
        if n == 2 and seg[1] == "subscriptions":
            return subscriptions(hub)
        if n == 3 and seg[1] == "subscriptions":
            return subscriptions(hub, seg[2])
    elif method == "POST" and n == 3 and seg[1] == "mqtt" and "mqtt" in hub.publishers:
        if seg[2] == "publish":
            return await post_publish(hub, body)
        if seg[2] == "publish_batch":
            return await post_publish_batch(hub, body)
    if method not in ("GET", "POST", "PUT", "DELETE"):
        raise V4Error(405, UNKNOWN, f"method {method} not allowed")
    raise V4Error(404, UNKNOWN, "the requested path cannot be found")
