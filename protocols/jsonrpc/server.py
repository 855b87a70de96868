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
from hub.net.http import Request, Response
from hub.net.websocket import WebSocket
from hub.net.wsframe import text_frame

from . import auth
from .execute import ExecutionError, describe, envelope, execute, run_action
from .store import UserStore

log = logging.getLogger("hub.jsonrpc")
PROTOCOL = "jsonrpc"
POLICY_VIOLATION = 1008
SLOW_LISTENER = 4008


def error(status: int, message: str) -> Response:
    return Response.json({"error": message}, status)


class JsonRpc:
    """The adapter's state: users, signing key, procedures, hooks and the event listeners."""

    def __init__(self, ctx: AdapterContext, store: UserStore, procedures: dict[str, Any]) -> None:
        self.ctx = ctx
        self.store = store
        self.key = ctx.settings.token_secret or store.signing_key()
        self.procedures = procedures
        self.listeners: set[WebSocket] = set()
        ctx.hub.events.add(self.on_hub_event)

    @property
    def settings(self) -> Any:
        return self.ctx.settings

    # -- auth -----------------------------------------------------------------------------
    def user_of(self, request: Request) -> str | None:
        token = auth.token_from(request.headers, request.query)
        if not token:
            return None
        try:
            return auth.verify(self.store, self.key, token)["sub"]
        except auth.AuthError:
            return None

    def _credentials(self, request: Request) -> tuple[str, str] | Response:
        try:
            body = request.json()
        except ValueError:
            return error(400, "expected a JSON body with username and password")
        if not isinstance(body, dict) or not isinstance(body.get("username"), str) or not isinstance(body.get("password"), str):
            return error(400, "expected a JSON body with username and password")
        return body["username"], body["password"]

    def _token(self, user: str) -> dict[str, Any]:
        ttl = self.settings.token_ttl
        return {"token": auth.issue(self.store, self.key, user, ttl), "expires_at": int(time.time()) + ttl}

    async def login(self, request: Request) -> Response:
        creds = self._credentials(request)
        if isinstance(creds, Response):
            return creds
        ok = await trio.to_thread.run_sync(self.store.check_password, *creds)
        if not ok:
            return error(401, "invalid username or password")
        return Response.json(self._token(creds[0]))

    async def register(self, request: Request) -> Response:
        if self.store.users or not self.settings.registration:
            return error(403, "registration is closed: users are added with `hub user add`")
        creds = self._credentials(request)
        if isinstance(creds, Response):
            return creds
        try:
            await trio.to_thread.run_sync(self.store.add_user, *creds)
        except ValueError as exc:
            return error(400, str(exc))
        return Response.json(self._token(creds[0]))

    async def logout(self, request: Request) -> Response:
        token = auth.token_from(request.headers, request.query)
        try:
            claims = auth.verify(self.store, self.key, token or "")
        except auth.AuthError as exc:
            return error(401, str(exc))
        await trio.to_thread.run_sync(self.store.revoke, claims["jti"], claims["exp"])
        return Response.json({"revoked": True})

    # -- requests -------------------------------------------------------------------------
    async def execute(self, request: Request) -> Response:
        if self.user_of(request) is None:
            return error(401, "unauthorized: a valid token is required (Authorization: Bearer, X-Token or ?token=)")
        try:
            body = request.json()
        except ValueError:
            return Response.json(envelope("", None, ["the request body is not valid JSON"]), 400)
        status, reply = await execute(self.ctx.runtime.actions, self.procedures, body)
        return Response.json(reply, status)

    async def discovery(self, request: Request) -> Response:
        if self.user_of(request) is None:
            return error(401, "unauthorized")
        return Response.json(describe(self.ctx.runtime.actions, self.procedures))

    # -- hooks ----------------------------------------------------------------------------
    async def hook(self, request: Request) -> Response:
        name = request.params["name"]
        hook = self.settings.hooks.get(name)
        if hook is None:
            return error(404, f"unknown hook '{name}'")
        header = hook.get("token_header")
        if header:
            given = request.header(header) or ""
            if not hmac.compare_digest(given.encode(), str(hook.get("token", "")).encode()):
                return error(401, "unauthorized")
        text = request.body.decode("utf-8", errors="replace")
        try:
            body: Any = json.loads(text) if text else None
        except ValueError:
            body = text
        event = {"method": request.method, "headers": dict(request.headers), "body": body,
                 "query": {k: v[-1] for k, v in request.query.items()}}
        output = None
        try:
            if hook.get("channel"):
                self.ctx.hub.publish(hook.get("project") or self.ctx.runtime.default_project, hook["channel"],
                                     {"hook": name, **event})
            if hook.get("procedure"):
                procedure = self.procedures[hook["procedure"]]
                output = await run_action(self.ctx.runtime.actions, self.procedures, f"procedure.{procedure.name}",
                                          {k: v for k, v in event.items() if k in procedure.args})
        except ExecutionError as exc:
            return error(exc.status, exc.message)
        except Exception as exc:
            return error(500, f"hook failed: {exc}")
        response = hook.get("response", {"status": "ok"} if output is None else output)
        return Response.json(response, int(hook.get("status", 200)))

    # -- websockets -----------------------------------------------------------------------
    async def _accept(self, request: Request, ws: WebSocket) -> Any:
        user = self.user_of(request)
        if user is None:
            ws.close(POLICY_VIOLATION, "unauthorized")
            return None
        project = self.settings.project or self.ctx.runtime.default_project
        return self.ctx.hub.connect(project, user, PROTOCOL, None, outbox=ws.outbox)

    async def events_socket(self, request: Request, ws: WebSocket) -> None:
        session = await self._accept(request, ws)
        if session is None:
            return
        self.listeners.add(ws)
        try:
            while (message := await ws.receive()) is not None:
                try:
                    event = json.loads(message)
                    if not isinstance(event, dict) or event.get("type") != "event" or not isinstance(event.get("args"), dict):
                        raise ValueError
                except ValueError:
                    ws.send(json.dumps({"type": "error", "args": {"message": 'expected {"type": "event", "args": {...}}'}}))
                    continue
                self._broadcast(text_frame(json.dumps(event)), exclude=ws)
        finally:
            self.listeners.discard(ws)
            self.ctx.hub.release(session)

    async def requests_socket(self, request: Request, ws: WebSocket) -> None:
        session = await self._accept(request, ws)
        if session is None:
            return
        scopes: list[trio.CancelScope] = []
        try:
            while (message := await ws.receive()) is not None:
                scope = trio.CancelScope()
                scopes.append(scope)
                ws.spawn(lambda m=message, s=scope: self._answer(ws, m, s))
        finally:
            for scope in scopes:
                scope.cancel()
            self.ctx.hub.release(session)

    async def _answer(self, ws: WebSocket, message: str | bytes, scope: trio.CancelScope) -> None:
        with scope:
            try:
                body = json.loads(message)
            except ValueError:
                reply = envelope("", None, ["the request is not valid JSON"], "ws")
            else:
                _, reply = await execute(self.ctx.runtime.actions, self.procedures, body, "ws")
            ws.send(json.dumps(reply, default=str))

    def _broadcast(self, frame: bytes, exclude: WebSocket | None = None) -> None:
        for ws in tuple(self.listeners):
            if ws is exclude or ws.closing:
                continue
            if not ws.send_frame(frame):
                ws.close(SLOW_LISTENER, "too slow")

    def on_hub_event(self, event: HubEvent) -> None:
        """Every core event goes to every events listener, encoded once."""
        if not self.listeners:
            return
        self._broadcast(text_frame(json.dumps({"type": "event", "args": event_args(event)}, default=str)))


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
