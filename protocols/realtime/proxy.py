"""Centrifugo's backend proxy: the hub asks the application backend over HTTP (Centrifugo's JSON proxy
protocol) whether a client may connect, refresh, subscribe, publish, refresh a subscription or call an RPC,
and uses its answer (`result` / `error {code, message, temporary}` / `disconnect {code, reason}`).

Configuration is `[realtime.proxy]` (what `config.json`'s `client.proxy`, `channel.proxy`, `rpc`, `proxies`
and the namespaces' `*_proxy_enabled` / `*_proxy_name` translate to). Requests and answers are built and read
here without I/O (`*_request`, `parse_answer`, `apply_*`); `HttpCaller` moves them (httpx on Trio, one pool per
adapter), bounded by each proxy's timeout. Failures behave as in Centrifugo: a backend that is down, slow or
answers garbage is internal error 100 (temporary) for connect, subscribe, publish and rpc; a refresh that fails
is retried a minute later; a refresh without a result expires the connection (3005) or subscription (2501).
"""

from __future__ import annotations

import base64
import json
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import trio

from hub.core.session import new_client_id
from hub.utf8 import compact_json
from protocols import centrifugo as C

from . import sdk_protobuf
from .sdk import INTERNAL, Disconnect, ReplyError

log = logging.getLogger("hub.realtime.proxy")

KINDS = ("connect", "refresh", "subscribe", "publish", "sub_refresh", "rpc")
CHANNEL_KINDS = ("subscribe", "publish", "sub_refresh")
# Centrifugo gives a connection or subscription one more minute when its refresh proxy fails.
RETRY_AFTER_FAILURE = 60.0
MAX_ANSWER_BYTES = 16 << 20


class ProxyConfigError(ValueError):
    """A bad [realtime.proxy] value: `key` (below realtime.proxy) and the problem."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key, self.problem = key, problem


class ProxyFailure(Exception):
    """The backend could not be asked, or its answer makes no sense (down, slow, not 200, not JSON, wrong shape)."""


# -- configuration ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Endpoint:
    """One HTTP proxy: where, how long to wait, which headers go with each request."""

    name: str
    url: str
    timeout: float = 1.0
    http_headers: frozenset[str] = frozenset()  # lowercased names of the client's request headers to forward
    static_headers: tuple[tuple[str, str], ...] = ()
    include_connection_meta: bool = False
    binary_encoding: bool = False
    # HTTP status → {"to_error": {code, message, temporary}} or {"to_disconnect": {code, reason}}
    transforms: tuple[tuple[int, dict[str, Any]], ...] = ()


@dataclass(frozen=True)
class ProxyConfig:
    connect: Endpoint | None = None
    refresh: Endpoint | None = None
    channels: dict[str, dict[str, Endpoint]] = field(default_factory=dict)  # namespace ("" = none) → kind → proxy
    rpc: dict[str, Endpoint] = field(default_factory=dict)  # rpc namespace ("" = none) → proxy
    rpc_boundary: str = ":"

    @property
    def empty(self) -> bool:
        return self.connect is None and self.refresh is None and not self.channels and not self.rpc

    @property
    def timed(self) -> bool:
        """Whether connections need the refresh task (server-side connection or subscription refresh)."""
        return self.refresh is not None or any("sub_refresh" in kinds for kinds in self.channels.values())

    def channel(self, kind: str, namespace: str) -> Endpoint | None:
        return self.channels.get(namespace, {}).get(kind)

    def rpc_for(self, method: str) -> Endpoint | None:
        """The proxy of an RPC method: its namespace's (`ns:method`) or the one without namespace."""
        if not self.rpc:
            return None
        namespace, sep, _ = method.partition(self.rpc_boundary)
        return self.rpc.get(namespace) if sep else self.rpc.get("")


def _endpoint(name: str, table: Any, key: str) -> Endpoint:
    if not isinstance(table, dict):
        raise ProxyConfigError(key, "expected a table")
    url = table.get("endpoint")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ProxyConfigError(f"{key}.endpoint", "an http:// or https:// URL is required")
    timeout = table.get("timeout", 1.0)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 3600:
        raise ProxyConfigError(f"{key}.timeout", "seconds, more than 0 and at most 3600")
    headers = table.get("http_headers", [])
    if not isinstance(headers, list) or not all(isinstance(h, str) for h in headers):
        raise ProxyConfigError(f"{key}.http_headers", "expected an array of header names")
    static = table.get("static_headers", {})
    if not isinstance(static, dict) or not all(isinstance(v, str) for v in static.values()):
        raise ProxyConfigError(f"{key}.static_headers", "expected a table of header name to string value")
    flags = {}
    for flag in ("include_connection_meta", "binary_encoding"):
        value = table.get(flag, False)
        if not isinstance(value, bool):
            raise ProxyConfigError(f"{key}.{flag}", "expected a boolean")
        flags[flag] = value
    transforms = []
    for i, item in enumerate(table.get("status_to_code_transforms", [])):
        tkey = f"{key}.status_to_code_transforms[{i}]"
        status = item.get("status_code") if isinstance(item, dict) else None
        if isinstance(status, bool) or not isinstance(status, int):
            raise ProxyConfigError(tkey, "needs an integer status_code")
        for part, fields in (("to_error", {"code": int, "message": str, "temporary": bool}),
                             ("to_disconnect", {"code": int, "reason": str})):
            value = item.get(part, {})
            if not isinstance(value, dict) or any(k not in fields or not isinstance(v, fields[k]) or
                                                  (isinstance(v, bool) and fields[k] is not bool) for k, v in value.items()):
                raise ProxyConfigError(f"{tkey}.{part}", f"expected an object with {', '.join(fields)}")
        transforms.append((status, item))
    return Endpoint(name, url, float(timeout), frozenset(h.lower() for h in headers),
                    tuple((str(k), v) for k, v in static.items()), transforms=tuple(transforms), **flags)


def parse_config(table: Any) -> ProxyConfig:
    """[realtime.proxy] → ProxyConfig; raises ProxyConfigError naming the key below realtime.proxy."""
    if not table:
        return ProxyConfig()
    if not isinstance(table, dict):
        raise ProxyConfigError("proxy", "expected a table")
    for key in table:
        if key not in (*KINDS, "named", "channels", "rpc_namespaces", "rpc_namespace_boundary"):
            raise ProxyConfigError(key, "unknown key")
    defaults = {kind: _endpoint("default", table[kind], kind) for kind in KINDS if kind in table}
    named_table = table.get("named", {})
    if not isinstance(named_table, dict):
        raise ProxyConfigError("named", "expected a table of proxies by name")
    named = {name: _endpoint(name, value, f"named.{name}") for name, value in named_table.items()}

    def pick(kind: str, name: Any, key: str) -> Endpoint:
        if name == "default" and kind in defaults:
            return defaults[kind]
        if isinstance(name, str) and name in named:
            return named[name]
        raise ProxyConfigError(key, f"no {kind} proxy named {name!r}")

    channels: dict[str, dict[str, Endpoint]] = {}
    channel_table = table.get("channels", {})
    if not isinstance(channel_table, dict):
        raise ProxyConfigError("channels", "expected a table of namespace to {subscribe, publish, sub_refresh}")
    for namespace, kinds in channel_table.items():
        if not isinstance(kinds, dict):
            raise ProxyConfigError(f"channels.{namespace}", "expected a table")
        for kind, name in kinds.items():
            if kind not in CHANNEL_KINDS:
                raise ProxyConfigError(f"channels.{namespace}.{kind}", "expected subscribe, publish or sub_refresh")
            channels.setdefault(namespace, {})[kind] = pick(kind, name, f"channels.{namespace}.{kind}")
    rpc_table = table.get("rpc_namespaces", {})
    if not isinstance(rpc_table, dict):
        raise ProxyConfigError("rpc_namespaces", "expected a table of rpc namespace to proxy name")
    rpc = {namespace: pick("rpc", name, f"rpc_namespaces.{namespace}") for namespace, name in rpc_table.items()}
    boundary = table.get("rpc_namespace_boundary", ":")
    if not isinstance(boundary, str) or not boundary:
        raise ProxyConfigError("rpc_namespace_boundary", "expected a non-empty string")
    return ProxyConfig(defaults.get("connect"), defaults.get("refresh"), channels, rpc, boundary)


# -- requests and answers (no I/O) ----------------------------------------------------------------
def _payload(endpoint: Endpoint, data: Any, raw: bytes | None) -> dict[str, Any]:
    """A client's data as the request's `data` (JSON) or, with binary_encoding, `b64data`."""
    if endpoint.binary_encoding:
        if raw is None:
            raw = b"" if data is None else compact_json(data)
        return {"b64data": base64.b64encode(raw).decode("ascii")} if raw else {}
    return {} if data is None else {"data": data}


def base_request(endpoint: Endpoint, client: str, transport: str, protocol: str) -> dict[str, Any]:
    return {"client": client, "transport": transport, "protocol": protocol,
            "encoding": "binary" if endpoint.binary_encoding else "json"}


def parse_answer(body: bytes) -> dict[str, Any]:
    """The backend's answer: an object with at most `result` (object), `error`, `disconnect`; else ProxyFailure."""
    try:
        answer = json.loads(body)
    except (ValueError, RecursionError):
        raise ProxyFailure("answer is not JSON") from None
    if not isinstance(answer, dict):
        raise ProxyFailure("answer is not a JSON object")
    for key in ("result", "error", "disconnect"):
        if answer.get(key) is not None and not isinstance(answer[key], dict):
            raise ProxyFailure(f"answer's {key} is not an object")
    disconnect = answer.get("disconnect")
    if disconnect:
        code, reason = disconnect.get("code", 0), disconnect.get("reason", "")
        if isinstance(code, bool) or not isinstance(code, int) or not isinstance(reason, str):
            raise ProxyFailure("bad disconnect")
    error = answer.get("error")
    if error:
        code, message = error.get("code", 0), error.get("message", "")
        if isinstance(code, bool) or not isinstance(code, int) or not isinstance(message, str):
            raise ProxyFailure("bad error")
    return answer


def raise_refusal(answer: dict[str, Any]) -> None:
    """A `disconnect` closes the connection, an `error` is the command's error reply (as the backend wrote them)."""
    disconnect = answer.get("disconnect")
    if disconnect:
        raise Disconnect(disconnect.get("code", 0), disconnect.get("reason", ""))
    error = answer.get("error")
    if error:
        exc = ReplyError(error.get("code", 0), "", bool(error.get("temporary")))
        exc.message = error.get("message", "")  # the backend's code and message, unchanged, as Centrifugo sends them
        raise exc


def _result(answer: dict[str, Any]) -> dict[str, Any] | None:
    result = answer.get("result")
    return result if isinstance(result, dict) else None


def _field(result: dict[str, Any], key: str, kind: type, default: Any = None) -> Any:
    value = result.get(key)
    if value is None:
        return default
    if isinstance(value, bool) != (kind is bool) or not isinstance(value, kind):
        raise ProxyFailure(f"result.{key} has the wrong type")
    return value


def _b64(value: Any, key: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (ValueError, TypeError):
        raise ProxyFailure(f"result.{key} is not base64") from None


def info_of(result: dict[str, Any]) -> Any:
    """`b64info` (base64 bytes: the JSON they hold, else `{"$base64": ...}`) or `info` (JSON)."""
    if result.get("b64info"):
        return C.value_of(_b64(result["b64info"], "b64info"))
    return result.get("info")


def data_of(result: dict[str, Any]) -> tuple[Any, bytes | None]:
    """`b64data` or `data`: (the JSON value, the exact bytes when they came as base64)."""
    if result.get("b64data"):
        raw = _b64(result["b64data"], "b64data")
        return C.value_of(raw), raw
    return result.get("data"), None


def _expire_at(result: dict[str, Any]) -> float | None:
    value = _field(result, "expire_at", int, 0)
    return float(value) if value > 0 else None


@dataclass
class Credentials:
    """What a connect proxy's result grants."""

    user: str
    info: Any = None
    expires_at: float | None = None
    data: Any = None
    channels: list[str] = field(default_factory=list)
    subs: dict[str, dict[str, Any]] = field(default_factory=dict)
    meta: Any = None


def connect_result(answer: dict[str, Any]) -> Credentials | None:
    raise_refusal(answer)
    result = _result(answer)
    if result is None:
        return None
    channels = _field(result, "channels", list, [])
    if not all(isinstance(c, str) for c in channels):
        raise ProxyFailure("result.channels must be strings")
    subs = _field(result, "subs", dict, {})
    out_subs: dict[str, dict[str, Any]] = {}
    for channel, options in subs.items():
        if not isinstance(options, dict):
            raise ProxyFailure("result.subs values must be objects")
        sub: dict[str, Any] = {"info": info_of(options), "override": options.get("override") or {}}
        data, _ = data_of(options)
        if data is not None:
            sub["data"] = data
        out_subs[channel] = sub
    data, _ = data_of(result)
    return Credentials(_field(result, "user", str, ""), info_of(result), _expire_at(result), data, channels, out_subs,
                       result.get("meta"))


@dataclass
class Grant:
    """What a subscribe proxy's result grants (or a refresh's: expires_at, info)."""

    info: Any = None
    expires_at: float | None = None
    data: Any = None
    override: dict[str, Any] = field(default_factory=dict)
    expired: bool = False
    meta: Any = None


def subscribe_result(answer: dict[str, Any]) -> Grant:
    raise_refusal(answer)
    result = _result(answer) or {}
    override = _field(result, "override", dict, {})
    data, _ = data_of(result)
    return Grant(info_of(result), _expire_at(result), data, override)


def refresh_result(answer: dict[str, Any]) -> Grant:
    """A refresh (connection or subscription): no result, or `expired`, means expired; errors are ignored, as in Centrifugo."""
    result = _result(answer)
    if result is None or _field(result, "expired", bool, False):
        return Grant(expired=True)
    return Grant(info_of(result), _expire_at(result), meta=result.get("meta"))


@dataclass
class Publish:
    data: Any
    raw: bytes | None = None
    tags: dict[str, str] | None = None
    skip_history: bool = False


def publish_result(answer: dict[str, Any], data: Any, raw: bytes | None) -> Publish:
    raise_refusal(answer)
    result = _result(answer)
    if result is None:
        return Publish(data, raw)
    if result.get("data") is not None or result.get("b64data"):
        data, raw = data_of(result)
    tags = _field(result, "tags", dict, None)
    if tags is not None and not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
        raise ProxyFailure("result.tags must map strings to strings")
    return Publish(data, raw, tags or None, _field(result, "skip_history", bool, False))


def rpc_result(answer: dict[str, Any]) -> tuple[Any, bytes | None]:
    raise_refusal(answer)
    result = _result(answer)
    return data_of(result) if result is not None else (None, None)


# -- HTTP ---------------------------------------------------------------------------------------
class HttpCaller:
    """POSTs proxy requests with httpx (which runs on Trio); one connection pool for all the adapter's connections."""

    def __init__(self) -> None:
        self._client: Any = None

    def _http(self) -> Any:
        if self._client is None:
            import httpx

            self._client = httpx.AsyncClient(follow_redirects=False, trust_env=False,
                                             limits=httpx.Limits(max_connections=None, max_keepalive_connections=255))
        return self._client

    async def post(self, endpoint: Endpoint, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        """The parsed answer, within the endpoint's timeout; ProxyFailure if there is none (a mapped HTTP status
        raises that error or disconnect)."""
        content = compact_json(body)
        response = None
        with trio.move_on_after(endpoint.timeout):
            try:
                response = await self._http().post(endpoint.url, content=content, headers=headers, timeout=endpoint.timeout)
            except Exception as exc:  # connection refused, reset, TLS, protocol errors, httpx's own timeouts
                raise ProxyFailure(f"{type(exc).__name__}: {exc}") from None
        if response is None:
            raise ProxyFailure(f"no answer within {endpoint.timeout:g}s")
        if response.status_code != 200:
            for status, transform in endpoint.transforms:  # http.status_to_code_transforms
                if status == response.status_code:
                    error, disconnect = transform.get("to_error") or {}, transform.get("to_disconnect") or {}
                    if error.get("code"):
                        raise_refusal({"error": error})
                    if disconnect.get("code"):
                        raise_refusal({"disconnect": disconnect})
            raise ProxyFailure(f"unexpected HTTP status {response.status_code}")
        if len(response.content) > MAX_ANSWER_BYTES:
            raise ProxyFailure("answer too large")
        return parse_answer(response.content)

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()


def headers_for(endpoint: Endpoint, request_headers: dict[str, str]) -> dict[str, str]:
    """Static headers first, then the client's request headers listed in http_headers; always JSON."""
    out = {name: value for name, value in endpoint.static_headers}
    lowered = {k.lower(): k for k in out}
    for name, value in request_headers.items():
        if name.lower() in endpoint.http_headers:
            out.pop(lowered.get(name.lower(), name), None)
            out[name] = value
    out["Content-Type"] = "application/json"
    return out


# -- one connection ---------------------------------------------------------------------------
class ConnectionProxy:
    """The proxy calls of one SDK connection: its transport, the request headers to forward, and its refresh timers.

    `SdkClient` calls `connect`, `subscribe`, `publish`, `rpc`; a connection whose refresh is server-side
    (a refresh or sub_refresh proxy) runs `run` as a task, which calls the backend when the connection or a
    subscription reaches its expiry.
    """

    def __init__(self, config: ProxyConfig, caller: HttpCaller, *, transport: str = "websocket", protocol: str = "json",
                 headers: dict[str, str] | None = None, clock: Any = None) -> None:
        self.config = config
        self.caller = caller
        self.transport = transport
        self.protocol = protocol
        self.headers = headers or {}
        self.clock = clock
        self.refresh_at: float | None = None  # server-side connection refresh (clock time)
        self.sub_refresh_at: dict[str, float] = {}  # server-side subscription refreshes
        self._changed = trio.Event()

    # what SdkClient asks
    @property
    def refresh_enabled(self) -> bool:
        return self.config.refresh is not None

    def handles(self, kind: str, namespace: str) -> bool:
        return self.config.channel(kind, namespace) is not None

    def handles_rpc(self, method: str) -> bool:
        return self.config.rpc_for(method) is not None

    async def _call(self, endpoint: Endpoint, body: dict[str, Any], client: Any) -> dict[str, Any]:
        if endpoint.include_connection_meta and client is not None and client.session is not None:
            meta = client.session.meta.get("meta")
            if meta is not None:
                body["meta"] = meta
        return await self.caller.post(endpoint, body, headers_for(endpoint, self.headers))

    def _base(self, endpoint: Endpoint, client_id: str) -> dict[str, Any]:
        return base_request(endpoint, client_id, self.transport, self.protocol)

    async def connect(self, client: Any, params: dict[str, Any]) -> tuple[str, Credentials | None]:
        """(the new client id, what the backend grants): raises ReplyError / Disconnect as the backend or a failure says."""
        endpoint = self.config.connect
        assert endpoint is not None
        client_id = new_client_id()
        body = self._base(endpoint, client_id)
        raw = params.get("data" + sdk_protobuf.RAW_SUFFIX)
        body.update(_payload(endpoint, params.get("data"), raw if isinstance(raw, bytes) else None))
        for key in ("name", "version"):
            if isinstance(params.get(key), str) and params[key]:
                body[key] = params[key]
        if isinstance(params.get("channels"), list) and params["channels"]:
            body["channels"] = [c for c in params["channels"] if isinstance(c, str)]
        try:
            return client_id, connect_result(await self.caller.post(endpoint, body, headers_for(endpoint, self.headers)))
        except ProxyFailure as exc:
            raise _internal("connect", endpoint, exc) from None

    async def subscribe(self, client: Any, channel: str, namespace: str, params: dict[str, Any]) -> Grant:
        endpoint = self.config.channel("subscribe", namespace)
        assert endpoint is not None
        session = client.session
        body = {**self._base(endpoint, session.id), "user": session.user, "channel": channel}
        if isinstance(params.get("token"), str) and params["token"]:
            body["token"] = params["token"]
        raw = params.get("data" + sdk_protobuf.RAW_SUFFIX)
        body.update(_payload(endpoint, params.get("data"), raw if isinstance(raw, bytes) else None))
        try:
            return subscribe_result(await self._call(endpoint, body, client))
        except ProxyFailure as exc:
            raise _internal("subscribe", endpoint, exc) from None

    async def publish(self, client: Any, channel: str, namespace: str, data: Any, raw: bytes | None) -> Publish:
        endpoint = self.config.channel("publish", namespace)
        assert endpoint is not None
        session = client.session
        body = {**self._base(endpoint, session.id), "user": session.user, "channel": channel, **_payload(endpoint, data, raw)}
        try:
            return publish_result(await self._call(endpoint, body, client), data, raw)
        except ProxyFailure as exc:
            raise _internal("publish", endpoint, exc) from None

    async def rpc(self, client: Any, method: str, data: Any, raw: bytes | None) -> Any:
        endpoint = self.config.rpc_for(method)
        assert endpoint is not None
        session = client.session
        body = {**self._base(endpoint, session.id), "user": session.user, "method": method, **_payload(endpoint, data, raw)}
        try:
            value, result_raw = rpc_result(await self._call(endpoint, body, client))
        except ProxyFailure as exc:
            raise _internal("rpc", endpoint, exc) from None
        return result_raw if result_raw is not None and client.wire.binary else value

    # server-side refresh
    def schedule_refresh(self, expires_at: float | None) -> None:
        self.refresh_at = expires_at
        self._changed.set()

    def schedule_sub_refresh(self, channel: str, expires_at: float | None) -> None:
        if expires_at is None:
            self.sub_refresh_at.pop(channel, None)
        else:
            self.sub_refresh_at[channel] = expires_at
        self._changed.set()

    def _next(self) -> float | None:
        return min([t for t in (self.refresh_at, *self.sub_refresh_at.values()) if t is not None], default=None)

    async def run(self, client: Any) -> None:
        """Refresh the connection and its subscriptions through the backend when they expire, until cancelled."""
        while True:
            deadline = self._next()
            wait = math.inf if deadline is None else max(deadline - client.clock(), 0.0)
            with trio.move_on_after(wait):
                await self._changed.wait()
                self._changed = trio.Event()
                continue
            session = client.session
            if session is None or session.closed:
                return
            try:
                if self.refresh_at is not None and self.refresh_at <= client.clock():
                    await self._refresh(client)
                for channel, when in list(self.sub_refresh_at.items()):
                    if when <= client.clock() and not session.closed:
                        await self._sub_refresh(client, channel)
            except Exception:  # never take the server down with one connection's refresh
                log.exception("proxy refresh failed for client %s", session.id)
                self.refresh_at = None
                self.sub_refresh_at.clear()

    async def _refresh(self, client: Any) -> None:
        endpoint = self.config.refresh
        session = client.session
        if endpoint is None:
            self.refresh_at = None
            return
        body = {**self._base(endpoint, session.id), "user": session.user}
        try:
            grant = refresh_result(await self._call(endpoint, body, client))
        except (ReplyError, Disconnect):  # a mapped HTTP status: Centrifugo reads no result from it, so expired
            grant = Grant(expired=True)
        except ProxyFailure as exc:
            log.warning("refresh proxy %s failed for client %s: %s; retried in a minute", endpoint.url, session.id, exc)
            self.refresh_at = client.clock() + RETRY_AFTER_FAILURE
            return
        if grant.expired or grant.expires_at is None or grant.expires_at <= client.clock():
            # Centrifugo keeps the old expiry when the result has no expire_at, so the connection expires then too
            self.refresh_at = None
            client.hub.close(session, "connection expired", reconnect=True)
            return
        if grant.info is not None:
            session.info = grant.info
        if grant.meta is not None:
            session.meta["meta"] = grant.meta
        self.refresh_at = grant.expires_at

    async def _sub_refresh(self, client: Any, channel: str) -> None:
        session = client.session
        endpoint = None
        if channel in session.channels:
            endpoint = self.config.channel("sub_refresh", client.hub.channel(session.project, channel).namespace)
        if endpoint is None:
            self.sub_refresh_at.pop(channel, None)
            return
        body = {**self._base(endpoint, session.id), "user": session.user, "channel": channel}
        try:
            grant = refresh_result(await self._call(endpoint, body, client))
        except (ReplyError, Disconnect):
            grant = Grant(expired=True)
        except ProxyFailure as exc:
            log.warning("sub_refresh proxy %s failed for client %s, channel %s: %s; retried in a minute", endpoint.url,
                        session.id, channel, exc)
            self.sub_refresh_at[channel] = client.clock() + RETRY_AFTER_FAILURE
            return
        if grant.expired or (grant.expires_at is not None and grant.expires_at <= client.clock()):
            self.sub_refresh_at.pop(channel, None)
            if channel in session.channels and not session.closed:
                session.outbox.force(client.wire.unsubscribe(channel, C.UNSUBSCRIBE_EXPIRED, "subscription expired"))
                client.hub.unsubscribe_session(session, channel)
            return
        self.schedule_sub_refresh(channel, grant.expires_at)

    def forget(self, channel: str) -> None:
        """The client left `channel`: no more refreshes for it."""
        self.sub_refresh_at.pop(channel, None)


def _internal(kind: str, endpoint: Endpoint, exc: Exception) -> ReplyError:
    log.error("error proxying %s to %s: %s", kind, endpoint.url, exc)
    return ReplyError(INTERNAL, temporary=True)


# -- adapter glue -------------------------------------------------------------------------------
class ProxySource:
    """The adapter's proxy configuration (parsed again when a reload changes it) and its shared HTTP caller."""

    def __init__(self) -> None:
        self.caller = HttpCaller()
        self._table: Any = None
        self._config = ProxyConfig()

    def config(self, table: Any) -> ProxyConfig:
        if table is not self._table:
            self._config = parse_config(table)
            self._table = table
        return self._config

    def bind(self, table: Any, *, transport: str, protocol: str, headers: dict[str, str] | None) -> ConnectionProxy | None:
        """One connection's proxy, or None when nothing is proxied."""
        config = self.config(table)
        if config.empty:
            return None
        return ConnectionProxy(config, self.caller, transport=transport, protocol=protocol, headers=headers)
