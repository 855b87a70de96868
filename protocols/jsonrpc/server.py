"""HTTP and websocket glue of the JSON-RPC adapter: auth, /execute, discovery, events, requests, hooks."""

from __future__ import annotations

import email.parser
import email.policy
import email.utils
import hmac
import json
import logging
import secrets
import time
import uuid
from typing import Any

import trio

from hub.adapters import AdapterContext
from hub.core import HubEvent, Session
from hub.core.errors import HubError
from hub.loginlimit import address_of
from hub.net.http import Request, Response
from hub.net.websocket import WebSocket
from hub.net.wsframe import text_frame
from hub.utf8 import JSON_SURROGATES

from . import auth, errors
from .execute import (
    HOSTNAME,
    ExecutionError,
    Hook,
    Procedure,
    Rejected,
    describe,
    encode,
    execute,
    message_type,
    run_action,
)
from .store import StoreError, UserStore

log = logging.getLogger("hub.jsonrpc")
PROTOCOL = "jsonrpc"
POLICY_VIOLATION = 1008  # websocket close code: no or bad token
SLOW_CLIENT = 4008  # websocket close code: the client does not read fast enough
MAX_IN_FLIGHT = 32  # requests one /ws/requests socket may have running at once; more wait for a slot
REQUEST_GRACE = 5.0  # seconds in-flight requests of a closed /ws/requests socket may take to finish
PASSWORD_CHECKS = 2  # argon2 checks at once (64 MiB each), so a burst of logins cannot exhaust memory
SECRET_HEADERS = {"authorization", "cookie", "x-token", "x-session-token", "proxy-authorization"}
CREDENTIAL_HEADERS = {"authorization", "cookie", "x-session-token", "proxy-authorization"}  # the caller's credentials for the hub itself
CUSTOM_EVENT = "platypush.message.event.custom.CustomEvent"
WEBHOOK_EVENT = "platypush.message.event.http.hook.WebhookEvent"
MAX_EXPIRY_DAYS = 36500
REMEMBER_TTL = 365 * 86400  # a `remember` login's session, as Platypush's

# Platypush's UserAuthStatus: name -> (HTTP status, `error`, `message`).
AUTH_STATUSES = {
    "INVALID_AUTH_TYPE": (400, "INVALID_AUTH_TYPE", "Invalid authentication type"),
    "INVALID_CREDENTIALS": (401, "INVALID_CREDENTIALS", "Invalid credentials"),
    "INVALID_CSRF": (403, "INVALID_CSRF", "Invalid CSRF token"),
    "INVALID_SESSION": (401, "INVALID_CREDENTIALS", "Invalid session"),
    "INVALID_TOKEN": (400, "INVALID_JWT_TOKEN", "Invalid token"),
    "MISSING_USERNAME": (400, "MISSING_USERNAME", "Missing username"),
    "MISSING_PASSWORD": (400, "MISSING_PASSWORD", "Missing password"),
    "PASSWORD_MISMATCH": (400, "PASSWORD_MISMATCH", "Password mismatch"),
    "REGISTRATION_DISABLED": (401, "REGISTRATION_DISABLED", "Registrations are disabled"),
    "REGISTRATION_REQUIRED": (412, "REGISTRATION_REQUIRED", "Please create a user first"),
    "TOKEN_NAME_EXISTS": (400, "TOKEN_NAME_EXISTS", "A token with this name already exists"),
}


def json_response(obj: Any, status: int = 200, headers: list[tuple[str, str]] | None = None) -> Response:
    """JSON as Platypush's `json.dumps` writes it (its /execute answers, hooks)."""
    return Response(status, encode(obj).encode("utf-8", JSON_SURROGATES), "application/json", headers or [])


def jsonify(obj: Any, status: int = 200, headers: list[tuple[str, str]] | None = None) -> Response:
    """JSON as Flask's `jsonify` writes it, for the answers Platypush makes with it (/auth, /tokens, its auth
    statuses): compact, keys sorted, a final newline."""
    body = json.dumps(obj, separators=(",", ":"), sort_keys=True, default=str) + "\n"
    return Response(status, body.encode("utf-8"), "application/json", headers or [])


def error(status: int, message: str) -> Response:
    """The adapter's error shape: `{"error": message}`."""
    headers = [("WWW-Authenticate", 'Bearer realm="hub"')] if status == 401 else None
    return json_response({"error": message}, status, headers)


def auth_error(name: str, why: str = "") -> Response:
    """Platypush's body for an authentication outcome: `{"code": 401, "error": "INVALID_CREDENTIALS", "message":
    "Invalid credentials"}`; `why` (the hub's reason) goes in WWW-Authenticate's error_description (RFC 6750)."""
    status, code, message = AUTH_STATUSES[name]
    headers = []
    if status == 401:
        challenge = 'Bearer realm="hub"'
        if why:
            challenge += ', error="invalid_token", error_description="' + why.replace('"', "'").replace("\\", "/") + '"'
        headers.append(("WWW-Authenticate", challenge))
    return jsonify({"code": status, "error": code, "message": message}, status, headers)


LOGIN_BLOCKED = {  # Rocket.Chat's names for the refusal (Block_Multiple_Failed_Logins); Platypush itself has none
    "ip": ("error-login-blocked-for-ip", "Login has been temporarily blocked For IP"),
    "user": ("error-login-blocked-for-user", "Login has been temporarily blocked For User"),
}


def login_blocked(kind: str, retry_after: int) -> Response:
    """429 in Platypush's auth-status shape `{"code", "error", "message"}`, with Retry-After, while the client's
    address or the user is blocked after too many failed logins."""
    code, message = LOGIN_BLOCKED[kind]
    return jsonify({"code": 429, "error": code, "message": message}, 429, [("Retry-After", str(retry_after))])


def bad_request(message: str) -> Response:
    """Platypush's shape for a bad parameter (its token endpoints' `bad_request`)."""
    return jsonify({"status": "error", "error": "bad_request", "message": message}, 400)


def first(request: Request, name: str) -> str | None:
    """The first value of a query parameter, as Flask's `request.args.get` reads it."""
    values = request.query.get(name)
    return values[0] if values else None


def http_date(ts: float | None) -> str | None:
    """A time as Flask's JSON writes datetimes (RFC 1123), as Platypush's token list has them."""
    return None if ts is None else email.utils.formatdate(ts, usegmt=True)


class JsonRpc:
    """The adapter's state: users, signing key, procedures, hooks and the event listeners."""

    def __init__(self, ctx: AdapterContext, store: UserStore, procedures: dict[str, Procedure], hooks: dict[str, Hook]) -> None:
        self.ctx = ctx
        self.store = store
        self.procedures = procedures
        self.hooks = hooks
        self.listeners: dict[WebSocket, Session] = {}
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
    def claims(self, request: Request, cookies: bool = False) -> dict[str, Any] | Response:
        """The caller's token claims, or Platypush's answer: 412 while no user exists, else 401. The API token is
        tried first, then the session token (the `session_token` cookie too when `cookies`: on websockets, whose
        Origin is checked; not on plain HTTP, where a cookie would let other sites' pages post /execute)."""
        error = auth.AuthError("a token is required (X-Token, Authorization: Bearer or ?token=)")
        for token in auth.tokens_from(request.headers, request.query, cookies):
            try:
                return auth.verify(self.store, self.key, token)
            except auth.AuthError as exc:
                error = exc
        log.debug("%s %s from %s: no valid token: %s", request.method, request.path, request.client, error)
        if not self.store.users:
            return auth_error("REGISTRATION_REQUIRED", str(error))
        return auth_error("INVALID_CREDENTIALS", str(error))

    def authenticate(self, request: Request, cookies: bool = False) -> str | Response:
        """The caller's user name, or the 401/412 response to send."""
        claims = self.claims(request, cookies)
        return claims if isinstance(claims, Response) else str(claims["sub"])

    def _token(self, user: str, ttl: int | None = None, name: str | None = None) -> dict[str, Any]:
        """A new token for `user`, recorded so that it can be listed and revoked (ValueError: the name is taken)."""
        ttl = ttl or self.settings.token_ttl
        now = int(time.time())
        jti = secrets.token_hex(16)
        self.store.record_token(user, jti, now, now + ttl, name)
        return {"token": auth.issue(self.key, user, ttl, now, jti), "expires_at": now + ttl}

    async def auth(self, request: Request) -> Response:
        """/auth as Platypush: POST (`?type=token` (default) or `jwt`: a token from username and password, with
        `expiry_days` and `name`; `?type=register`: the first user), GET (who the token is), DELETE (revoke `token`)."""
        if request.method == "GET":
            session = self._session(request)
            if session is not None:  # Platypush answers a browser session with the session itself
                return self._session_answer(*session, request)
            claims = self.claims(request)
            if isinstance(claims, Response):
                return claims
            user = str(claims["sub"])
            return jsonify({"status": "ok", "user_id": self.store.user_id(user), "username": user})
        if request.method == "DELETE":
            return await self._delete_token(request, None)
        kind = first(request, "type") or "token"
        if kind == "register":
            return await self.register(request)
        if kind == "login":
            return await self.session_login(request)
        if kind not in ("token", "jwt"):
            return auth_error("INVALID_AUTH_TYPE")
        return await self.login(request, jwt=kind == "jwt")

    async def login(self, request: Request, jwt: bool = False) -> Response:
        """A token for username and password (`?type=token`: also for the session cookie, and named). `?type=jwt`
        is Platypush's legacy flavour (_jwt_auth): both keys required (else werkzeug's bare 400), no name."""
        try:
            body = request.json()
        except (ValueError, RecursionError):
            body = None
        if jwt and not (isinstance(body, dict) and "username" in body and "password" in body):
            return errors.page(400)
        body = body if isinstance(body, dict) else {}
        if jwt:
            body.pop("name", None)
        username, password = body.get("username"), body.get("password")
        session = None
        if not username and not password and not jwt:  # Platypush's session mode: the session cookie and its CSRF token
            session = self._session(request)
            if session is None:
                return auth_error("INVALID_SESSION", 'expected a JSON body {"username": ..., "password": ...}')
            if not hmac.compare_digest((request.header("x-csrf-token") or "").encode(), self.csrf_token(session[1]).encode()):
                return auth_error("INVALID_CSRF")
            username = str(session[1]["sub"])
        elif not isinstance(username, str) or not isinstance(password, str) or not username or not password:
            return auth_error("INVALID_CREDENTIALS", "username and password must be non-empty strings")
        ttl = expiry_ttl(body.get("expiry_days"))
        if isinstance(ttl, Response):
            return ttl
        name = body.get("name")
        if name is not None and (not isinstance(name, str) or not name.strip() or len(name) > 128):
            return bad_request("name must be a non-empty string of at most 128 characters")
        if session is None:
            refused = await self._check_password(request, username, password)
            if refused is not None:
                return refused
        try:
            return jsonify(await trio.to_thread.run_sync(self._token, username, ttl, name))
        except ValueError:
            return auth_error("TOKEN_NAME_EXISTS")
        except StoreError as exc:
            return error(500, str(exc))

    async def _check_password(self, request: Request, username: str, password: str) -> Response | None:
        """None if the password is right; else the refusal (401, or 429 while the login limiter blocks)."""
        limiter, ip = self.ctx.runtime.login_limiter, address_of(request.client)
        blocked = limiter.check("jsonrpc", username, ip)
        if blocked is not None:
            log.debug("JSON-RPC login refused for %s: blocked for %s", request.client, blocked.kind)
            return login_blocked(blocked.kind, blocked.retry_after)
        ok = await trio.to_thread.run_sync(self.store.check_password, username, password, limiter=self.password_checks)
        if not ok:
            limiter.failed("jsonrpc", username, ip)
            return auth_error("INVALID_CREDENTIALS", "invalid username or password")
        limiter.succeeded("jsonrpc", username, ip)
        return None

    # -- browser sessions (Platypush's web UI): the session token is a hub token ----------------
    def _session(self, request: Request) -> tuple[str, dict[str, Any]] | None:
        """The `session_token` cookie and its claims, if it holds a valid token."""
        token = auth.cookie(request.headers.get("cookie", ""), "session_token")
        if not token:
            return None
        try:
            return token, auth.verify(self.store, self.key, token)
        except auth.AuthError:
            return None

    def csrf_token(self, claims: dict[str, Any]) -> str:
        """The session's CSRF token: derived from the token's id with the signing key, so nothing is stored."""
        return hmac.new(self.key.encode(), b"csrf:" + str(claims["jti"]).encode(), "sha256").hexdigest()[:32]

    def _session_answer(self, session_token: str, claims: dict[str, Any], request: Request, **extra: Any) -> Response:
        """Platypush's `_dump_session`: status, user_id, session_token, csrf_token, expires_at (a Flask date),
        redirect (`?redirect=`, else "/"), in jsonify's spelling."""
        return jsonify({"status": "ok", "user_id": self.store.user_id(str(claims["sub"])), "session_token": session_token,
                        "csrf_token": self.csrf_token(claims), "expires_at": http_date(claims["exp"]),
                        "redirect": first(request, "redirect") or "/", **extra})

    async def session_login(self, request: Request) -> Response:
        """POST /auth?type=login, as Platypush's web UI logs in: a valid session cookie answers its session;
        else the form's `username`, `password` (and `remember`: a 365-day session, else `token_ttl`)."""
        session = self._session(request)
        if session is not None:
            return self._session_answer(*session, request)
        fields = {} if request.content_type.endswith("json") else registration_fields(request)
        username, password = fields.get("username"), fields.get("password")
        if not fields or not isinstance(username, str) or not isinstance(password, str) or not username or not password:
            return auth_error("INVALID_CREDENTIALS", "expected a form with username and password")
        refused = await self._check_password(request, username, password)
        if refused is not None:
            return refused
        try:
            token = await trio.to_thread.run_sync(self._token, username, REMEMBER_TTL if fields.get("remember") else None)
        except StoreError as exc:
            return error(500, str(exc))
        return self._session_answer(token["token"], auth.verify(self.store, self.key, token["token"]), request)

    async def index(self, request: Request) -> Response:
        return json_response({"service": "hub JSON-RPC", "registration_open": self._registration_open(),
                              "endpoints": ["POST /register", "POST /auth", "GET /auth", "DELETE /auth", "GET /tokens",
                                            "DELETE /tokens", "POST /logout", "POST /execute", "GET /actions",
                                            "WS /ws/events", "WS /ws/requests", "/hook/<name>"]})

    def _registration_open(self) -> bool:
        return bool(self.settings.registration) and not self.store.users

    async def register(self, request: Request) -> Response:
        """The first user: a JSON body `{"username", "password"}`, or Platypush's registration form (`username`,
        `password`, `confirm_password`, `remember`, urlencoded or multipart). Answers with a token."""
        if not self._registration_open():
            return auth_error("REGISTRATION_DISABLED")
        fields = registration_fields(request)
        username, password = fields.get("username"), fields.get("password")
        if not isinstance(username, str) or not username:
            return auth_error("MISSING_USERNAME")
        if not isinstance(password, str) or not password:
            return auth_error("MISSING_PASSWORD")
        form = not request.content_type.endswith("json")
        if (form or "confirm_password" in fields) and fields.get("confirm_password") != password:
            return auth_error("PASSWORD_MISMATCH")
        try:
            await trio.to_thread.run_sync(lambda: self.store.add_user(username, password, only_if_none=True),
                                          limiter=self.password_checks)
            token = await trio.to_thread.run_sync(self._token, username, REMEMBER_TTL if fields.get("remember") else None)
        except ValueError as exc:
            if "closed" in str(exc):
                return auth_error("REGISTRATION_DISABLED")
            return bad_request(str(exc))
        except StoreError as exc:
            return error(500, str(exc))
        log.info("registered the first JSON-RPC user %r", username)
        # Platypush's session answer (its UI keeps session_token and csrf_token), with the hub's token under both
        # names and the user's name.
        return self._session_answer(token["token"], auth.verify(self.store, self.key, token["token"]), request,
                                    username=username, token=token["token"])

    async def logout(self, request: Request) -> Response:
        """With a token in a header or the query (the hub's own use): revoke it → `{"revoked": true}`. Else
        Platypush's /logout (routes/logout.py): end the `session_token` cookie's session if there is one, clear
        the session_token and csrf_token cookies and redirect (302) to `?redirect=`, else the Referer, else /login."""
        if auth.tokens_from(request.headers, request.query):
            claims = self.claims(request)
            if isinstance(claims, Response):
                return claims
            try:
                await trio.to_thread.run_sync(self.store.revoke, claims["jti"], claims["exp"])
            except StoreError as exc:
                return error(500, str(exc))
            return json_response({"revoked": True})
        session = self._session(request)
        if session is not None:
            try:
                await trio.to_thread.run_sync(self.store.revoke, session[1]["jti"], session[1]["exp"])
            except StoreError as exc:
                return error(500, str(exc))
        target = first(request, "redirect") or request.header("referer") or "/login"
        host = request.header("host") or ""
        redirect = errors.redirect(target if errors.local_target(target, host) else "/login")
        clear = "=; Expires=Thu, 01 Jan 1970 00:00:00 GMT;" + (" Secure;" if request.tls else "") + " Path=/; SameSite=Lax"
        redirect.headers += [("Set-Cookie", "session_token" + clear), ("Set-Cookie", "csrf_token" + clear)]
        return redirect

    # -- tokens ---------------------------------------------------------------------------
    async def tokens(self, request: Request) -> Response:
        """GET /tokens: the caller's live tokens, newest first; DELETE /tokens: revoke `token` or `token_id`."""
        claims = self.claims(request)
        if isinstance(claims, Response):
            return claims
        user = str(claims["sub"])
        if request.method == "DELETE":
            return await self._delete_token(request, user)
        return jsonify({"tokens": [{"id": t["id"], "name": t["name"], "created_at": http_date(t["created"]),
                                    "expires_at": http_date(t["expires"])} for t in self.store.tokens(user)]})

    async def _delete_token(self, request: Request, user: str | None) -> Response:
        """Revoke the token given in the body: by value (any valid token), or (`user` known) by `token_id`."""
        try:
            body = request.json()
        except ValueError:
            body = None
        body = body if isinstance(body, dict) else {}
        try:
            if isinstance(body.get("token"), str) and body["token"]:
                try:
                    claims = auth.verify(self.store, self.key, body["token"])
                except auth.AuthError:
                    return auth_error("INVALID_TOKEN")
                await trio.to_thread.run_sync(self.store.revoke, claims["jti"], claims["exp"])
            elif user is not None and body.get("token_id") is not None:
                token_id = body["token_id"]
                if isinstance(token_id, bool) or not isinstance(token_id, int):
                    return bad_request("token_id must be an integer")
                await trio.to_thread.run_sync(self.store.revoke_id, token_id, user)
            elif user is None:  # DELETE /auth without a token logs out a browser session: the hub has none
                return auth_error("INVALID_SESSION")
            else:
                return auth_error("INVALID_TOKEN")
        except StoreError as exc:
            return error(500, str(exc))
        return jsonify({"status": "ok"})

    # -- requests -------------------------------------------------------------------------
    async def execute(self, request: Request) -> Response:
        user = self.authenticate(request)
        if isinstance(user, Response):
            return user
        try:  # as Platypush reads it (routes/execute.py): abort(400, str(e)), werkzeug's HTML page
            body = json.loads(request.body.decode("utf-8"))
        except (ValueError, RecursionError) as exc:
            return errors.page(400, str(exc))
        # What Platypush cannot build a message of it answers with abort(500, str(e)): the same page and text, but
        # 400, the status it gives a body it cannot parse (a client's mistake, not the server's).
        try:
            if message_type(body) == "event":
                return self._post_event(body)
            reply = await execute(self.ctx.runtime.actions, self.procedures, body)
        except Rejected as exc:
            return errors.page(400, str(exc))
        return json_response(reply)

    def _post_event(self, body: dict[str, Any]) -> Response:
        """An event posted to /execute goes on the bus as one a listener sends (to every /ws/events listener);
        Platypush then answers `{}` (no response to wait for)."""
        event = custom_event(body)
        if isinstance(event, str):
            return errors.page(400, event)
        if self.listeners:
            self._broadcast(text_frame(encode(event)))
        return Response(200, b"{}", "application/json")

    async def discovery(self, request: Request) -> Response:
        user = self.authenticate(request)
        if isinstance(user, Response):
            return user
        return json_response(describe(self.ctx.runtime.actions, self.procedures))

    # -- hooks ----------------------------------------------------------------------------
    async def hook(self, request: Request) -> Response:
        """/hook/<name>: every call is a WebhookEvent on /ws/events, as on Platypush. A hook configured in
        [jsonrpc.hooks] checks its token, publishes and/or runs its procedure; any other name answers as
        Platypush does without a handler (`{"status": "ok", ...the event}`), unless `strict_hooks`."""
        name = request.params["name"]
        hook = self.hooks.get(name)
        if hook is None and self.settings.strict_hooks:
            return error(404, f"unknown hook '{name}'")
        if hook is not None and hook.token_header:
            given = request.header(hook.token_header.lower()) or ""
            if not hmac.compare_digest(given.encode(), hook.token.encode()):
                return error(401, f"unauthorized: this hook needs the right {hook.token_header} header")
        webhook = webhook_args(request, name, hook)
        if self.listeners:
            self._broadcast(text_frame(encode(event_message(webhook_event_args(webhook)))))
        if hook is None:
            return Response(200, json.dumps({"status": "ok", **webhook}).encode(), "application/json")
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
        user = self.authenticate(request, cookies=True)
        if isinstance(user, Response):  # closed as Platypush closes it: 1008 with the status message as reason
            ws.close(POLICY_VIOLATION, json.loads(user.body).get("message", "unauthorized"))
            return None
        return self.ctx.hub.connect(self.project, user, PROTOCOL, None, outbox=ws.outbox)

    async def events_socket(self, request: Request, ws: WebSocket) -> None:
        session = self._accept(request, ws)
        if session is None:
            return
        if not self.listeners:
            self.ctx.hub.events.add(self.on_hub_event)
        self.listeners[ws] = session
        try:
            while (message := await ws.receive()) is not None:
                event = parse_custom_event(message)
                if event is None:  # Platypush logs a message it cannot build as an event and drops it
                    log.debug("/ws/events: dropped a message that is not an event: %.200r", message)
                    continue
                self._broadcast(text_frame(encode(event)))  # every listener, the sender too, as on Platypush
        finally:
            self.listeners.pop(ws, None)
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
            try:  # Platypush's Request.build: `type` is not looked at; what is not a request is dropped (logged)
                text = message.decode("utf-8") if isinstance(message, bytes) else message
                reply = await execute(self.ctx.runtime.actions, self.procedures, text, "http")
            except (Rejected, UnicodeDecodeError) as exc:
                log.debug("/ws/requests: dropped a message that is not a request (%s): %.200r", exc, message)
                return
            if not ws.closing and not ws.send(encode(reply)):
                ws.close(SLOW_CLIENT, "too slow")
        finally:
            slots.release()

    def _broadcast(self, frame: bytes) -> None:
        """One event to every listener: send or disconnect (`Outbox.send`). A listener whose outbox overflows is
        dropped by the core as slow (the event and those still queued counted in `messages_dropped`) and closed
        with 4008. Events are not publication copies: `messages_delivered` and the session's `received` do not
        count them, `messages_dropped` does."""
        for ws, session in tuple(self.listeners.items()):
            if ws.closing:
                continue
            dropped = session.dropped
            if not ws.outbox.send(frame, 1):
                log.info("closed a /ws/events listener that does not keep up")
                ws.close(SLOW_CLIENT, "too slow")
                # the core took the queued events it discarded off the delivered counts, which never had them
                lost_queued = max(0, session.dropped - dropped - 1)
                session.received += lost_queued
                self.ctx.hub.stats.messages_delivered += lost_queued

    def on_hub_event(self, event: HubEvent) -> None:
        """Every core event goes to every events listener, encoded once (synchronous, never blocks)."""
        if self.listeners:
            args = event_args(event)
            self._broadcast(text_frame(encode(event_message(args, timestamp=args.get("timestamp")))))

    # -- reload ---------------------------------------------------------------------------
    def reload(self, new: Any, procedures: dict[str, Procedure], hooks: dict[str, Hook]) -> list[str]:
        """Apply new procedures, hooks and token settings (the runtime swaps ctx.settings afterwards)."""
        old = self.settings
        changed = [f"jsonrpc.{key}" for key in ("procedures", "hooks", "token_secret", "token_ttl", "registration", "project",
                                                "strict_hooks")
                   if getattr(new, key) != getattr(old, key)]
        if new.users_file != old.users_file:
            log.warning("jsonrpc.users_file changed: the hub keeps using %s until it is restarted", old.users_file)
            new.users_file = old.users_file
        if not new.token_secret and not self._generated_key:
            self._generated_key = self.store.signing_key()
        self.procedures, self.hooks = procedures, hooks
        return changed


def event_message(args: dict[str, Any], *, id: str | None = None, timestamp: float | None = None,
                  target: str | None = None, origin: str | None = None) -> dict[str, Any]:
    """An event as Platypush's `Event.as_dict()` writes it: type, target, origin, id, _timestamp, args."""
    return {"type": "event", "target": target or HOSTNAME, "origin": origin or HOSTNAME, "id": id or secrets.token_hex(16),
            "_timestamp": time.time() if timestamp is None else timestamp, "args": args}


def parse_custom_event(message: str | bytes) -> dict[str, Any] | None:
    """A listener's `{"type": "event", "args": {"type": "<module>.<Class>", ...}}` completed as Platypush's
    `Event.build()` completes it (id, target, origin, _timestamp kept if given), or None if it is not one."""
    try:
        event = json.loads(message)
    except (ValueError, RecursionError):
        return None
    if not isinstance(event, dict) or event.get("type") != "event":
        return None
    built = custom_event(event)
    return None if isinstance(built, str) else built


def custom_event(event: dict[str, Any]) -> dict[str, Any] | str:
    """An event object completed as `Event.build()` completes it, or the text of the error Platypush's build
    raises for it (`'args'`, `'type'`: the key it misses)."""
    if not isinstance(event.get("args"), dict):
        return "'args'"
    args = event["args"]
    kind = args.get("type")
    if not isinstance(kind, str) or "." not in kind.strip("."):
        return "'type'" if kind is None else f"not an event class: {kind!r}"

    def given(key: str, kind: type | tuple[type, ...] = str) -> Any:
        value = event.get(key)
        return value if isinstance(value, kind) and not isinstance(value, bool) and value != "" else None

    return event_message({"type": kind, **{k: v for k, v in args.items() if k != "type"}}, id=given("id"),
                         timestamp=given("_timestamp", (int, float)), target=given("target"), origin=given("origin"))


def registration_fields(request: Request) -> dict[str, Any]:
    """The registration's fields: a JSON object, an urlencoded form, or a multipart form."""
    content_type = request.content_type
    try:
        if content_type.endswith("json") or (not content_type and request.body.lstrip()[:1] == b"{"):
            body = request.json()
            return body if isinstance(body, dict) else {}
        if content_type == "multipart/form-data":
            raw = b"Content-Type: " + (request.header("content-type") or "").encode("latin-1") + b"\r\n\r\n" + request.body
            message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
            return {part.get_param("name", header="content-disposition"): (part.get_payload(decode=True) or b"").decode()
                    for part in message.iter_parts() if part.get_param("name", header="content-disposition")}
        return request.form()
    except (ValueError, UnicodeDecodeError, RecursionError, LookupError, TypeError):
        return {}


def expiry_ttl(days: Any) -> int | None | Response:
    """Seconds for `expiry_days` (absent, null or 0: the hub's token_ttl), or the 400 to send."""
    if days is None or days == 0:
        return None
    if isinstance(days, bool) or not isinstance(days, (int, float)) or not 0 < days <= MAX_EXPIRY_DAYS:
        return bad_request(f"expiry_days must be a number of days from 0 to {MAX_EXPIRY_DAYS}")
    return max(60, int(days * 86400))


def header_name(name: str) -> str:
    """`x-token` → `X-Token`: header names as Platypush's event has them."""
    return "-".join(part.capitalize() for part in name.split("-"))


def webhook_args(request: Request, name: str, hook: Hook | None) -> dict[str, Any]:
    """The WebhookEvent's arguments as Platypush fills them: hook, method, args (first value of each query
    parameter), data (JSON when the request says so, else text) and headers, without the caller's credentials
    for the hub and the hook's own token header."""
    if request.content_type.endswith("json"):
        try:
            data: Any = json.loads(request.body)
        except (ValueError, RecursionError):
            data = None
    else:
        data = request.body.decode("utf-8", errors="replace")
    hidden = CREDENTIAL_HEADERS | ({hook.token_header.lower()} if hook is not None and hook.token_header else set())
    return {"hook": name, "method": request.method, "args": {k: v[0] for k, v in request.query.items()}, "data": data,
            "headers": {header_name(k): v for k, v in request.headers.items() if k not in hidden}}


def webhook_event_args(webhook: dict[str, Any]) -> dict[str, Any]:
    """A WebhookEvent's args in the order its constructor gives them (platypush/message/event/http/hook.py): hook,
    method, data, args, headers, response, and the `response_queue` (a Redis list name) it adds."""
    return {"type": WEBHOOK_EVENT, "hook": webhook["hook"], "method": webhook["method"], "data": webhook["data"],
            "args": webhook["args"], "headers": webhook["headers"], "response": None,
            "response_queue": f"platypush/webhook/{uuid.uuid1()}"}


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
    """A core event as the `args` of an events-socket message: a Platypush CustomEvent whose `subtype` is
    `hub.<event type>`, so Platypush's `Event.build()` makes it a CustomEvent with these attributes."""
    args: dict[str, Any] = {"type": CUSTOM_EVENT, "subtype": f"hub.{event.type}", "project": event.project}
    if event.type == "publication":
        pub = event.data["publication"]
        args.update({"channel": pub.channel, "data": pub.data, "uid": pub.uid, "offset": pub.offset,
                     "info": pub.info, "client": pub.client, "timestamp": pub.timestamp})
    else:
        args.update(event.data)
    return args
