"""The single-process runtime: one nursery with the core's housekeeping and every listener."""

from __future__ import annotations

import gc
import logging
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import trio

from .actions import ActionRegistry, register_core_actions
from .adapters import AdapterContext, adapter_registry
from .config import ConfigError, Settings, load_settings
from .core import Hub
from .core.history import HistoryResult, Publication
from .engine import make_engine
from .loginlimit import LoginLimiter
from .logs import set_format
from .metrics import RequestMetrics
from .net.accept import accept_loop
from .net.http import HTTPServer, Limits, WebSocketRoute
from .net.limits import Exempt
from .net.origin import origin_allowed
from .net.tls import ServerTLS, TLSFileError, tls_handler
from .security import quiet_jwt_warnings, security_changes, warn_short_secrets

log = logging.getLogger("hub")

# The start-up lines scripts wait for (tests, benchmarks): one per listener, then READY.
LISTENING = "listening on %s (%s)"
READY = "hub ready"
# What ending one connection's task costs at a hard stop (seconds), reserved out of `shutdown_grace`.
TEARDOWN_PER_CONNECTION = 50e-6
_LISTENING_RE = re.compile(r"listening on (https?://\S+) \((.*)\)")


def listener_urls(log_text: str) -> dict[str, str]:
    """Listener URLs by adapter title, read from the start-up lines of `hub run`'s log."""
    urls = {}
    for m in _LISTENING_RE.finditer(log_text):
        for title in m.group(2).split(", "):
            urls[title] = m.group(1)
    return urls


@dataclass
class Listener:
    """One bound port and the adapters it serves."""

    host: str
    port: int
    adapters: list[str]
    server: HTTPServer
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    tls: ServerTLS | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"


class RunningHub:
    """A started hub: the core, its listeners, and in-process access for embedding programs."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # The file `reload_from_file()` reads: the last real file loaded (not a posted or in-memory config).
        self.config_path = settings.source
        # What the listeners and tasks were started with: reloads report differences from it as needing a restart.
        self.started_settings = settings
        self.engine = make_engine(settings.engine)
        self.hub = Hub(settings.projects, max_queue_bytes=settings.hub.max_queue_bytes, engine=self.engine,
                       node_name=settings.engine.name or None)
        self.hub.on_reload = self._reload_requested
        self.metrics = RequestMetrics()
        # Failed-login blocking shared by the adapters that check passwords ([login_limit]).
        self.login_limiter = LoginLimiter(settings.login_limit)
        self.actions = ActionRegistry()
        register_core_actions(self.actions, self.hub, settings.projects[0].key)
        self.listeners: list[Listener] = []
        self.served: dict[str, str] = {}  # adapters that serve themselves (Adapter.serve): name -> URL
        self.contexts: dict[str, AdapterContext] = {}
        self.stopping = trio.Event()
        self.restart_requested = False
        self._stopped = trio.Event()

    # -- in-process API -------------------------------------------------------------------
    @property
    def default_project(self) -> str:
        return self.settings.projects[0].key

    async def publish(self, channel: str, data: Any, *, project: str | None = None, info: Any = None,
                client: str | None = None) -> Publication:
        return await self.hub.publish(project or self.default_project, channel, data, info, client)

    async def presence(self, channel: str, *, project: str | None = None) -> dict[str, dict[str, Any]]:
        return await self.hub.presence(project or self.default_project, channel)

    async def history(self, channel: str, *, project: str | None = None, **kwargs: Any) -> HistoryResult:
        return await self.hub.history(project or self.default_project, channel, **kwargs)

    def stats(self) -> dict[str, Any]:
        return self.hub.stats_snapshot()

    @property
    def open_connections(self) -> int:
        """TCP connections open on every listener."""
        return sum(listener.server.connections for listener in self.listeners)

    def url(self, adapter: str) -> str:
        """Base URL of the listener serving `adapter`."""
        for listener in self.listeners:
            if adapter in listener.adapters:
                return listener.url
        if adapter in self.served:
            return self.served[adapter]
        raise KeyError(f"adapter {adapter!r} is not running")

    @property
    def urls(self) -> dict[str, str]:
        return {**{name: lst.url for lst in self.listeners for name in lst.adapters}, **self.served}

    # -- lifecycle ------------------------------------------------------------------------
    async def stopped(self) -> None:
        """Wait until `serve` has finished (clients told and drained)."""
        await self._stopped.wait()

    def shutdown(self, restart: bool = False) -> None:
        """Stop accepting, tell clients, drain; `serve` returns once done. `restart`: `hub run` then starts
        again with the same arguments (an embedding program reads `restart_requested`)."""
        self.restart_requested = self.restart_requested or restart
        self.stopping.set()

    def reload(self, settings: Settings) -> dict[str, list[str]]:
        """Apply new settings in place. Returns what changed and what needs a restart."""
        changed, restart = [], []
        old = self.settings
        secured = security_changes(old, settings)
        if settings.login_limit != old.login_limit:
            self.login_limiter.configure(settings.login_limit)
            changed.append("login_limit")
        if settings.projects != old.projects:
            self.hub.set_projects(settings.projects)
            changed.append("projects")
        if settings.hub.max_queue_bytes != old.hub.max_queue_bytes:
            self.hub.max_queue_bytes = settings.hub.max_queue_bytes
            for listener in self.listeners:  # websocket connections opened from now on
                listener.server.outbox_bytes = settings.hub.max_queue_bytes
            changed.append("hub.max_queue_bytes")
        if settings.hub.write_timeout != old.hub.write_timeout:
            for listener in self.listeners:
                listener.server.write_timeout = settings.hub.write_timeout
            changed.append("hub.write_timeout")
        if settings.hub.log_level != old.hub.log_level:
            logging.getLogger("hub").setLevel(settings.hub.log_level.upper())
            changed.append("hub.log_level")
        if settings.hub.log_format != old.hub.log_format:
            set_format(settings.hub.log_format)
            changed.append("hub.log_format")
        for key in ("header_timeout", "body_timeout", "keepalive_timeout", "max_header_bytes", "max_headers"):
            if getattr(settings.hub, key) != getattr(old.hub, key):
                changed.append(f"hub.{key}")
        if settings.hub.shutdown_grace != old.hub.shutdown_grace:
            changed.append("hub.shutdown_grace")  # read at shutdown from self.settings
        started = self.started_settings
        if settings.hub.housekeeping_interval != started.hub.housekeeping_interval:
            restart.append("hub.housekeeping_interval")
        if settings.engine != started.engine:
            restart.append("engine")
        for name, first in started.adapters.items():
            if name not in self.contexts and settings.adapters[name].enabled != first.enabled:
                restart.append(f"{name}.enabled")  # an adapter that is not running starts only with the hub
        for name, ctx in self.contexts.items():
            new, cur, first = settings.adapters[name], old.adapters[name], started.adapters[name]
            for key in ("enabled", "host", "port"):  # compared with what is bound, not with the last reload
                if getattr(new, key) != getattr(first, key):
                    restart.append(f"{name}.{key}")
            if new != cur:
                adapter = adapter_registry()[name]
                if adapter.reload is not None:
                    changed.extend(adapter.reload(ctx, new))
                ctx.settings = new
                if not any(r.startswith(f"{name}.") for r in restart):
                    changed.append(name)
        for listener in self.listeners:
            listener.server.max_body_bytes = min(settings.adapters[a].max_body_bytes for a in listener.adapters)
            listener.server.limits = listener_limits(settings, listener.adapters)
            self._reload_tls(settings, listener, changed, restart)
        for name, ctx in self.contexts.items():
            ctx.config = settings
            served_tls = ctx.state.get("tls")  # an adapter serving itself with a ServerTLS (the dashboard)
            if isinstance(served_tls, ServerTLS):
                try:
                    served_tls.reload(settings.adapters[name].tls_cert or None, settings.adapters[name].tls_key or None)
                    changed.append(f"{name}.tls")
                except TLSFileError as exc:
                    log.error("TLS certificate of %s not reloaded, the old one stays: %s: %s", name, exc.key, exc)
        self.settings = settings
        if not settings.source.startswith("<"):
            self.config_path = settings.source
        log.info("configuration reloaded from %s: changed %s; needs restart: %s",
                 settings.source, ", ".join(changed) or "nothing", ", ".join(restart) or "nothing")
        if secured:  # names only: the values (secrets) are never logged
            log.warning("reload from %s changed security settings: %s", settings.source, ", ".join(secured))
        return {"changed": changed, "restart_required": restart}

    def _reload_tls(self, settings: Settings, listener: Listener, changed: list[str], restart: list[str]) -> None:
        """Certificates are read again on every reload (new handshakes use them); turning TLS on or off needs a restart."""
        try:
            files = listener_tls_files(settings, listener.adapters)
        except ConfigError as exc:
            log.error("TLS not reloaded: %s", exc)
            return
        name = listener.adapters[0]
        if (files is None) != (listener.tls is None):
            restart.append(f"{name}.tls_cert")
            return
        if files is None or listener.tls is None:
            return
        try:
            listener.tls.reload(*files)
        except TLSFileError as exc:
            log.error("TLS certificate of %s not reloaded, the old one stays: %s: %s", listener.url, exc.key, exc)
            return
        changed.append(f"{name}.tls")

    def _reload_requested(self) -> None:
        """Another node asked every node to reload (control "reload"): reload our own file."""
        try:
            self.reload_from_file()
        except ConfigError as exc:
            log.error("reload refused: %s", exc)

    def reload_from_file(self, path: str | None = None) -> dict[str, list[str]]:
        """Reload `path`, by default the file the hub was started from (or last reloaded from), with the
        same `--set` overrides."""
        settings = load_settings(path or self.config_path, overrides=self.started_settings.overrides)
        settings.reuse_port = self.started_settings.reuse_port
        return self.reload(settings)


def _lowest(values: list[float]) -> float:
    """The strictest of limits where 0 means none."""
    return min((v for v in values if v), default=0)


def listener_limits(settings: Settings, names: list[str]) -> Limits:
    """The HTTP limits of a listener serving adapters `names` (per-IP: the strictest; exempt: what all exempt)."""
    h = settings.hub
    adapters = [settings.adapters[n] for n in names]
    exempt = set(adapters[0].limit_exempt).intersection(*(a.limit_exempt for a in adapters[1:]))
    return Limits(header_timeout=h.header_timeout, body_timeout=h.body_timeout, keepalive_timeout=h.keepalive_timeout,
                  max_header_bytes=h.max_header_bytes, max_headers=h.max_headers,
                  max_connections=min(a.max_connections for a in adapters),
                  max_connections_per_ip=int(_lowest([a.max_connections_per_ip for a in adapters])),
                  rate_limit=_lowest([a.rate_limit for a in adapters]),
                  rate_limit_burst=_lowest([a.rate_limit_burst for a in adapters]),
                  exempt=Exempt(sorted(exempt)))


def listener_tls_files(settings: Settings, names: list[str]) -> tuple[str, str] | None:
    """The (certificate, key) of a listener: adapters sharing a port share it; two different ones are an error."""
    files = {(settings.adapters[n].tls_cert, settings.adapters[n].tls_key): n for n in names if settings.adapters[n].tls_cert}
    if len(files) > 1:
        raise ConfigError(settings.source, f"{list(files.values())[1]}.tls_cert",
                          f"differs from {list(files.values())[0]}.tls_cert on the same port")
    return next(iter(files), None)


def _origin_ok(ctx: AdapterContext, request: Any) -> bool:
    """The adapter's `allowed_origins` (read at each handshake, so a reload applies at once)."""
    return origin_allowed(request.header("origin"), request.header("host"), ctx.settings.allowed_origins, tls=request.tls)


def _group(settings: Settings) -> list[tuple[str, int, list[str]]]:
    """Enabled adapters grouped into listeners: same host and port share one (port 0: same group)."""
    groups: dict[tuple[str, int, str], list[str]] = {}
    for name, adapter in adapter_registry().items():
        s = settings.adapters[name]
        if not s.enabled or adapter.serve is not None:
            continue
        key = (s.host, s.port, "" if s.port else adapter.group)
        groups.setdefault(key, []).append(name)
    return [(host, port, names) for (host, port, _), names in groups.items()]


async def serve(settings: Settings | str | os.PathLike[str], *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """Run the hub in the caller's nursery: `running = await nursery.start(serve, settings)`.

    Returns after `running.shutdown()` (or cancellation) once clients have been told and drained.
    """
    if not isinstance(settings, Settings):
        settings = load_settings(settings)
    quiet_jwt_warnings()
    warn_short_secrets(settings)
    running = RunningHub(settings)
    hub = running.hub
    registry = adapter_registry()
    freed = trio.lowlevel.ParkingLot()  # unparked when any connection closes (the accept loops wait on it)
    gc_was_enabled = False
    async with trio.open_nursery() as root:
        await root.start(running.engine.run)
        root.start_soon(hub.housekeeping, settings.hub.housekeeping_interval)
        async with trio.open_nursery() as connections:
            bound: list[tuple[Listener, list[trio.SocketListener], str, Any]] = []
            for host, port, names in _group(settings):
                routes, errors = [], {}
                for name in names:
                    adapter = registry[name]
                    ctx = AdapterContext(name, hub, settings.adapters[name], settings, running.metrics, running)
                    running.contexts[name] = ctx
                    if adapter.run is not None:
                        await root.start(adapter.run, ctx)
                    for route in adapter.routes(ctx):
                        route.adapter = route.adapter or name
                        if isinstance(route, WebSocketRoute) and route.accept is None:
                            route.accept = partial(_origin_ok, ctx)
                        routes.append(route)
                    if adapter.error is not None:
                        errors[name] = adapter.error
                server = HTTPServer(
                    routes, errors=errors, fallback=names[0], metrics=running.metrics,
                    max_body_bytes=min(settings.adapters[n].max_body_bytes for n in names),
                    outbox_bytes=settings.hub.max_queue_bytes, write_timeout=settings.hub.write_timeout,
                    limits=listener_limits(settings, names),
                )
                server.closed_lot = freed
                try:
                    if settings.reuse_port:
                        sockets = await reuse_port_listeners(host, port)
                    else:
                        sockets = await trio.open_tcp_listeners(port, host=host)
                except OSError as exc:
                    raise ConfigError(settings.source, f"{names[0]}.port", f"cannot listen on {host}:{port}: {exc.strerror}") from None
                server.tasks = connections
                files = listener_tls_files(settings, names)
                try:
                    tls = ServerTLS(*files) if files else None
                except TLSFileError as exc:
                    raise ConfigError(settings.source, f"{names[0]}.{exc.key}", str(exc)) from None
                listener = Listener(host, sockets[0].socket.getsockname()[1], names, server, tls=tls)
                running.listeners.append(listener)
                handle = server.handle
                for name in names:  # an adapter that is not HTTP (MQTT) takes the connections first
                    if registry[name].stream is not None:
                        handle = registry[name].stream(running.contexts[name], server, handle)
                if tls is not None:  # TLS first: the handlers above get the decrypted stream
                    handle = tls_handler(tls, handle, handshake_timeout=settings.hub.header_timeout,
                                         on_failure=partial(running.metrics.refused, names[0], "tls handshake"))
                bound.append((listener, sockets, ", ".join(registry[n].title for n in names), handle))
            # Every listener is bound: start accepting, then say so (READY only once all of them serve).
            for listener, sockets, titles, handle in bound:
                root.start_soon(listener.server.flusher.run)
                for sock in sockets:
                    await root.start(_accept, listener, sock, connections, running, freed, handle)
                log.info(LISTENING, listener.url, titles)
            for name, adapter in registry.items():
                if adapter.serve is not None and settings.adapters[name].enabled:
                    ctx = running.contexts[name] = AdapterContext(name, hub, settings.adapters[name], settings, running.metrics, running)
                    running.served[name] = await root.start(adapter.serve, ctx)
                    log.info(LISTENING, running.served[name], adapter.title)
            log.info(READY + ": %d listener(s)", len(running.listeners) + len(running.served))
            task_status.started(running)
            await running.stopping.wait()
            log.info("shutting down")
            # The grace is the whole budget, counted from here: clients that have not closed by then are cut
            # off early enough that ending their tasks (~50 µs each) fits in it too.
            grace = running.settings.hub.shutdown_grace
            hard_stop = trio.current_time() + grace - min(grace / 4, TEARDOWN_PER_CONNECTION * running.open_connections)
            # With 10,000 connections a full collection takes seconds, and unwinding every connection's
            # task allocates enough to trigger several: no cyclic GC until the drain is over.
            gc_was_enabled = gc.isenabled()
            gc.disable()
            # Drain: /health says 503, each HTTP request in progress is answered with Connection: close,
            # idle keep-alive connections close now, websocket clients are told by the core.
            for listener in running.listeners:
                listener.server.drain()
            hub.shutdown("shutdown")
            with trio.move_on_at(hard_stop):
                for listener in running.listeners:
                    await listener.server.idle.wait()
            for listener in running.listeners:
                listener.scope.cancel()
            connections.cancel_scope.cancel()
            for _, sockets, _, _ in bound:
                for sock in sockets:
                    with trio.CancelScope(shield=True):
                        await sock.aclose()
        await running.engine.close()
        root.cancel_scope.cancel()
    if gc_was_enabled:
        gc.enable()
    running._stopped.set()


async def reuse_port_listeners(host: str, port: int, backlog: int = 4096) -> list[trio.SocketListener]:
    """Listening sockets with SO_REUSEPORT, so several worker processes (`hub run --workers N`) bind the
    same port and the kernel spreads connections between them."""
    import socket as _socket

    out = []
    for family, type_, proto, _, addr in _socket.getaddrinfo(host, port, type=_socket.SOCK_STREAM, flags=_socket.AI_PASSIVE):
        sock = trio.socket.socket(family, type_, proto)
        try:
            sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
            sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEPORT, 1)
            if family == _socket.AF_INET6:
                sock.setsockopt(_socket.IPPROTO_IPV6, _socket.IPV6_V6ONLY, 1)
            await sock.bind(addr)
            sock.listen(backlog)
        except OSError:
            sock.close()
            for listener in out:
                listener.socket.close()
            raise
        out.append(trio.SocketListener(sock))
    return out


async def _accept(listener: Listener, sock: trio.SocketListener, connections: trio.Nursery, running: RunningHub,
                  freed: trio.lowlevel.ParkingLot, handle: Any = None, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    with listener.scope:
        await accept_loop(sock, handle or listener.server.handle, connections, open_connections=lambda: running.open_connections,
                          freed=freed, task_status=task_status)


@asynccontextmanager
async def open_hub(settings: Settings | str | os.PathLike[str]) -> AsyncIterator[RunningHub]:
    """`async with open_hub("hub.toml") as running:` — a hub for the length of the block."""
    async with trio.open_nursery() as nursery:
        running = await nursery.start(serve, settings)
        try:
            yield running
        finally:
            running.shutdown()
