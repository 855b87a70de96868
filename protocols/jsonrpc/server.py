"""HTTP and websocket glue of the JSON-RPC adapter: auth, /execute, discovery, events, requests, hooks."""

from __future__ import annotations

import hmac
import json
import logging
import time
from typing import Any

import trio

from hub.adapters import AdapterContext
from hub.core import HubEvent
from hub.core.errors import HubError
from hub.net.http import Request, Response
from hub.net.websocket import WebSocket
from hub.net.wsframe import text_frame

from . import auth
from .execute import ExecutionError, Hook, Procedure, describe, encode, envelope, execute, request_id_of, run_action
from .store import StoreError, UserStore

log = logging.getLogger("hub.jsonrpc")
PROTOCOL = "jsonrpc"
POLICY_VIOLATION = 1008  # websocket close code: no or bad token
SLOW_CLIENT = 4008  # websocket close code: the client does not read fast enough
MAX_IN_FLIGHT = 32  # requests one /ws/requests socket may have running at once; more wait for a slot
REQUEST_GRACE = 5.0  # seconds in-flight requests of a closed /ws/requests socket may take to finish
PASSWORD_CHECKS = 2  # argon2 checks at once (64 MiB each), so a burst of logins cannot exhaust memory
SECRET_HEADERS = {"authorization", "cookie", "x-token", "proxy-authorization"}


def json_response(obj: Any, status: int = 200, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, encode(obj).encode("utf-8"), "application/json", headers or [])


def error(status: int, message: str) -> Response:
    """The adapter's error shape: `{"error": message}`."""
    headers = [("WWW-Authenticate", 'Bearer realm="hub"')] if status == 401 else None
    return json_response({"error": message}, status, headers)


class JsonRpc:
    """The adapter's state: users, signing key, procedures, hooks and the event listeners."""

    def __init__(self, ctx: AdapterContext, store: UserStore, procedures: dict[str, Procedure], hooks: dict[str, Hook]) -> None:
        self.ctx = ctx
        self.store = store
        self.procedures = procedures
        self.hooks = hooks
        self.listeners: set[WebSocket] = set()
        self.password_checks = trio.CapacityLimiter(PASSWORD_CHECKS)
        self._generated_key = "" if ctx.settings.token_secret else store.signing_key()

    @property
    def settings(self) -> Any:
        return self.ctx.settings

    @property
    def key(self) -> str:
        """hub.toml's `token_secret`, else the key generated once and kept in the users file."""
        if self.settings.token_secret:
            return str(self.settings.token_secret)
        if not self._generated_key:
            self._generated_key = self.store.signing_key()
        return self._generated_key

    @property
    def project(self) -> str:
        return self.settings.project or self.ctx.runtime.default_project

    # -- auth -----------------------------------------------------------------------------
    def authenticate(self, request: Request) -> str | Response:
        """The caller's user name, or the 401 response to send."""
        try:
            return str(auth.verify(self.store, self.key, auth.token_from(request.headers, request.query) or "")["sub"])
        except auth.AuthError as exc:
            return error(401, f"unauthorized: {exc}")

    def _credentials(self, request: Request) -> tuple[str, str] | Response:
        try:
            body = request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("username"), str) or not isinstance(body.get("password"), str):
            return error(400, 'expected a JSON body {"username": ..., "password": ...}')
        return body["username"], body["password"]

    def _token(self, user: str) -> dict[str, Any]:
        ttl = self.settings.token_ttl
        now = int(time.time())
        return {"token": auth.issue(self.key, user, ttl, now), "expires_at": now + ttl}

    async def index(self, request: Request) -> Response:
        return json_response({"service": "hub JSON-RPC", "registration_open": self._registration_open(),
                              "endpoints": ["POST /register", "POST /auth", "POST /logout", "POST /execute", "GET /actions",
                                            "WS /ws/events", "WS /ws/requests", "/hook/<name>"]})

    def _registration_open(self) -> bool:
        return bool(self.settings.registration) and not self.store.users

    async def login(self, request: Request) -> Response:
        creds = self._credentials(request)
        if isinstance(creds, Response):
            return creds
        ok = await trio.to_thread.run_sync(self.store.check_password, *creds, limiter=self.password_checks)
        if not ok:
            return error(401, "invalid username or password")
        return json_response(self._token(creds[0]))

    async def register(self, request: Request) -> Response:
        if not self._registration_open():
            return error(403, "registration is closed: add users with `hub user add NAME`")
        creds = self._credentials(request)
        if isinstance(creds, Response):
            return creds
        try:
            await trio.to_thread.run_sync(lambda: self.store.add_user(*creds, only_if_none=True), limiter=self.password_checks)
        except ValueError as exc:
            return error(403 if "closed" in str(exc) else 400, str(exc))
        except StoreError as exc:
            return error(500, str(exc))
        log.info("registered the first JSON-RPC user %r", creds[0])
        return json_response(self._token(creds[0]))

    async def logout(self, request: Request) -> Response:
        try:
            claims = auth.verify(self.store, self.key, auth.token_from(request.headers, request.query) or "")
        except auth.AuthError as exc:
            return error(401, f"unauthorized: {exc}")
        try:
            await trio.to_thread.run_sync(self.store.revoke, claims["jti"], claims["exp"])
        except StoreError as exc:
            return error(500, str(exc))
        return json_response({"revoked": True})

    # -- requests -------------------------------------------------------------------------
    async def execute(self, request: Request) -> Response:
        user = self.authenticate(request)
        if isinstance(user, Response):
            return user
        try:
            body = request.json()
        except ValueError:
            return json_response(envelope(request_id_of(None), None, ["the request body is not valid JSON"]), 400)
        status, reply = await execute(self.ctx.runtime.actions, self.procedures, body)
        return json_response(reply, status)

    async def discovery(self, request: Request) -> Response:
        user = self.authenticate(request)
        if isinstance(user, Response):
            return user
        return json_response(describe(self.ctx.runtime.actions, self.procedures))

    # -- hooks ----------------------------------------------------------------------------
    async def hook(self, request: Request) -> Response:
        name = request.params["name"]
        hook = self.hooks.get(name)
        if hook is None:
            return error(404, f"unknown hook '{name}'")
        if hook.token_header:
            given = request.header(hook.token_header.lower()) or ""
            if not hmac.compare_digest(given.encode(), hook.token.encode()):
                return error(401, f"unauthorized: this hook needs the right {hook.token_header} header")
        event = hook_event(request, hook)
        output = None
        try:
            if hook.channel:
                await self.ctx.hub.publish(hook.project or self.project, hook.channel, {"hook": name, **event})
            if hook.procedure:
                procedure = self.procedures[hook.procedure]
                output = await run_action(self.ctx.runtime.actions, self.procedures, f"procedure.{procedure.name}",
                                          procedure_args(event, procedure))
        except ExecutionError as exc:
            return error(exc.status, exc.message)
        except HubError as exc:
            return error(500, f"hook {name}: cannot publish to {hook.channel!r}: {exc.message}")
        if hook.response is not None:
            return json_response(hook.response, hook.status)
        return json_response({"status": "ok"} if output is None else output, hook.status)

    # -- websockets -----------------------------------------------------------------------
    def _accept(self, request: Request, ws: WebSocket) -> Any:
        user = self.authenticate(request)
        if isinstance(user, Response):
            ws.close(POLICY_VIOLATION, "unauthorized")
            return None
        return self.ctx.hub.connect(self.project, user, PROTOCOL, None, outbox=ws.outbox)

    async def events_socket(self, request: Request, ws: WebSocket) -> None:
        session = self._accept(request, ws)
        if session is None:
            return
        if not self.listeners:
            self.ctx.hub.events.add(self.on_hub_event)
        self.listeners.add(ws)
        try:
            while (message := await ws.receive()) is not None:
                event = parse_custom_event(message)
                if event is None:
                    if not ws.send(encode({"type": "error", "args": {"message": 'expected {"type": "event", "args": {...}}'}})):
                        ws.close(SLOW_CLIENT, "too slow")
                    continue
                self._broadcast(text_frame(encode(event)), exclude=ws)
        finally:
            self.listeners.discard(ws)
            if not self.listeners:
                self.ctx.hub.events.remove(self.on_hub_event)
            self.ctx.hub.release(session)

    async def requests_socket(self, request: Request, ws: WebSocket) -> None:
        session = self._accept(request, ws)
        if session is None:
            return
        slots = trio.Semaphore(MAX_IN_FLIGHT)
        try:
            async with trio.open_nursery() as nursery:
                while (message := await ws.receive()) is not None:
                    await slots.acquire()
                    nursery.start_soon(self._answer, ws, message, slots)
                nursery.cancel_scope.deadline = trio.current_time() + REQUEST_GRACE
        finally:
            self.ctx.hub.release(session)

    async def _answer(self, ws: WebSocket, message: str | bytes, slots: trio.Semaphore) -> None:
        try:
            try:
                body = json.loads(message)
            except (ValueError, RecursionError):
                reply = envelope(request_id_of(None), None, ["the request is not valid JSON"], "ws")
            else:
                _, reply = await execute(self.ctx.runtime.actions, self.procedures, body, "ws", ("request", "requests"))
            if not ws.closing and not ws.send(encode(reply)):
                ws.close(SLOW_CLIENT, "too slow")
        finally:
            slots.release()

    def _broadcast(self, frame: bytes, exclude: WebSocket | None = None) -> None:
        for ws in tuple(self.listeners):
            if ws is exclude or ws.closing:
                continue
            if not ws.send_frame(frame):
                log.info("closing a /ws/events listener that does not keep up")
                ws.close(SLOW_CLIENT, "too slow")

    def on_hub_event(self, event: HubEvent) -> None:
        """Every core event goes to every events listener, encoded once (synchronous, never blocks)."""
        if self.listeners:
            self._broadcast(text_frame(encode({"type": "event", "args": event_args(event)})))

    # -- reload ---------------------------------------------------------------------------
    def reload(self, new: Any, procedures: dict[str, Procedure], hooks: dict[str, Hook]) -> list[str]:
        """Apply new procedures, hooks and token settings (the runtime swaps ctx.settings afterwards)."""
        old = self.settings
        changed = [f"jsonrpc.{key}" for key in ("procedures", "hooks", "token_secret", "token_ttl", "registration", "project")
                   if getattr(new, key) != getattr(old, key)]
        if new.users_file != old.users_file:
            log.warning("jsonrpc.users_file changed: the hub keeps using %s until it is restarted", old.users_file)
            new.users_file = old.users_file
        if not new.token_secret and not self._generated_key:
            self._generated_key = self.store.signing_key()
        self.procedures, self.hooks = procedures, hooks
        return changed


def parse_custom_event(message: str | bytes) -> dict[str, Any] | None:
    """A listener's `{"type": "event", "args": {...}}`, or None if it is not one."""
    try:
        event = json.loads(message)
    except (ValueError, RecursionError):
        return None
    if not isinstance(event, dict) or event.get("type") != "event" or not isinstance(event.get("args"), dict):
        return None
    return event


def hook_event(request: Request, hook: Hook) -> dict[str, Any]:
    """What a webhook publishes: method, headers (without credentials or the hook's token), body (JSON when it
    parses, else text) and query (last value of each parameter)."""
    hidden = SECRET_HEADERS | ({hook.token_header.lower()} if hook.token_header else set())
    text = request.body.decode("utf-8", errors="replace")
    try:
        body: Any = json.loads(text) if text else None
    except (ValueError, RecursionError):
        body = text
    return {"method": request.method, "headers": {k: v for k, v in request.headers.items() if k not in hidden},
            "body": body, "query": {k: v[-1] for k, v in request.query.items() if k != "token"}}


def procedure_args(event: dict[str, Any], procedure: Procedure) -> dict[str, Any]:
    """A hook's procedure gets those of its arguments found in the query, the JSON body's fields, or named
    method, headers, body, query (later ones win)."""
    candidates = {**event["query"], **(event["body"] if isinstance(event["body"], dict) else {}),
                  **{k: event[k] for k in ("method", "headers", "body", "query")}}
    return {k: v for k, v in candidates.items() if k in procedure.args}


def event_args(event: HubEvent) -> dict[str, Any]:
    """A core event as the `args` of an events-socket message."""
    args: dict[str, Any] = {"type": f"hub.{event.type}", "project": event.project}
    if event.type == "publication":
        pub = event.data["publication"]
        args.update({"channel": pub.channel, "data": pub.data, "uid": pub.uid, "offset": pub.offset,
                     "info": pub.info, "client": pub.client, "timestamp": pub.timestamp})
    else:
        args.update(event.data)
    return args
