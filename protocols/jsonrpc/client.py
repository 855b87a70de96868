"""The hub as a library: run an action against the hub a hub.toml describes (its address and credentials).

Synchronous (urllib), for scripts; from async code call it in a thread. Tokens from a login are kept
in the process until shortly before they expire.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from hub.config import ConfigError, Settings, load_settings

CONFIG_ENV = "HUB_CONFIG"
TOKEN_ENV = "HUB_TOKEN"
USER_ENV = "HUB_USER"
LOCAL_TOKEN_TTL = 300
_tokens: dict[tuple[str, str], tuple[str, float]] = {}
_tokens_lock = threading.Lock()


class RunError(Exception):
    """The hub answered with errors (`status` is the HTTP status), or could not be reached (`status` 0)."""

    def __init__(self, errors: list[str], status: int = 0) -> None:
        super().__init__("; ".join(errors))
        self.errors, self.status = errors, status


def _post(url: str, body: dict[str, Any], token: str | None = None, timeout: float = 30) -> tuple[int, Any, str]:
    """(status, JSON body, WWW-Authenticate header)."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw, challenge = response.status, response.read(), response.headers.get("WWW-Authenticate", "")
    except urllib.error.HTTPError as exc:
        status, raw, challenge = exc.code, exc.read(), exc.headers.get("WWW-Authenticate", "")
    except (OSError, ValueError) as exc:
        raise RunError([f"cannot reach the hub at {url}: {getattr(exc, 'reason', exc)}"]) from None
    try:
        return status, json.loads(raw or b"null"), challenge
    except ValueError:
        raise RunError([f"{url} answered {status} with something that is not JSON"], status) from None


def _refusal(body: Any, challenge: str) -> str:
    """What a refusal says: Platypush's `message` (or the hub's `error`), and the hub's reason from WWW-Authenticate."""
    if not isinstance(body, dict):
        return str(body)
    text = str(body.get("message") or body.get("error") or body)
    m = re.search(r'error_description="([^"]*)"', challenge)
    return f"{text} ({m.group(1)})" if m else text


def base_url(settings: Settings) -> str:
    """`[jsonrpc] client_url`, else http://host:port of the listener (a wildcard host means this machine)."""
    s = settings.adapters["jsonrpc"]
    if s.client_url:
        return s.client_url.rstrip("/")
    host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(s.host, s.host)
    return f"http://[{host}]:{s.port}" if ":" in host else f"http://{host}:{s.port}"


def token_for(settings: Settings, fresh: bool = False, *, token: str | None = None, user: str | None = None,
              url: str | None = None) -> str:
    """The token `run` sends, first found wins: `token`; a token signed here for `user`; $HUB_TOKEN; $HUB_USER;
    `client_token`; a login as `client_user` with `client_password` (kept until near its expiry); a token signed
    here for `client_user`; else, when the users file holds exactly one user, a token signed here for that user.
    Tokens signed here last 5 minutes and need the users file (or token_secret): same machine only."""
    s = settings.adapters["jsonrpc"]
    token = token or None
    user = user or None
    if token:
        return token
    if user:
        return _local_token(s, user)
    if os.environ.get(TOKEN_ENV):
        return os.environ[TOKEN_ENV]
    if os.environ.get(USER_ENV):
        return _local_token(s, os.environ[USER_ENV])
    if s.client_token:
        return str(s.client_token)
    if s.client_user and s.client_password:
        url = url or base_url(settings)
        key = (url, s.client_user)
        with _tokens_lock:
            cached = _tokens.get(key)
        if cached and not fresh and cached[1] > time.time() + 30:
            return cached[0]
        status, body, challenge = _post(url + "/auth", {"username": s.client_user, "password": s.client_password})
        if status != 200 or not isinstance(body, dict) or "token" not in body:
            raise RunError([f"login as {s.client_user!r} failed: {_refusal(body, challenge)}"], status)
        with _tokens_lock:
            _tokens[key] = (body["token"], float(body.get("expires_at", 0)))
        return str(body["token"])
    if s.client_user:
        return _local_token(s, s.client_user)
    users = sorted(_store(s).users)
    if len(users) == 1:
        return _local_token(s, users[0])
    if not users:
        raise RunError([f"no credentials: {s.users_file} has no JSON-RPC user yet; add one with `hub user add NAME` "
                        f"(or set ${TOKEN_ENV}, or [jsonrpc] client_token)"])
    raise RunError([f"no credentials: {s.users_file} has several users ({', '.join(users)}); pick one with "
                    f"`hub exec --user NAME`, ${USER_ENV}, or [jsonrpc] client_user (or give a token: --token, ${TOKEN_ENV})"])


def _store(s: Any) -> Any:
    from .store import StoreError, UserStore

    if not os.path.exists(s.users_file):
        raise RunError([f"no users file at {os.path.abspath(s.users_file)} (relative paths are from the current "
                        "directory): run this where the hub runs, or give a token (--token, $HUB_TOKEN, client_token), "
                        "or client_user + client_password to log in over the network"])
    try:
        return UserStore(s.users_file, readonly=True)
    except StoreError as exc:
        raise RunError([str(exc)]) from None


def _local_token(s: Any, user: str) -> str:
    """A 5-minute token for `user`, signed with the key from token_secret or the users file."""
    from . import auth
    from .store import StoreError

    store = _store(s)
    if user not in store.users:
        raise RunError([f"unknown user {user!r} in {s.users_file}"])
    try:
        return auth.issue(s.token_secret or store.signing_key(), user, LOCAL_TOKEN_TTL)
    except StoreError as exc:
        raise RunError([str(exc)]) from None


def load(config: str | os.PathLike[str] | Settings | None) -> Settings:
    """The settings `run` uses: given, else the file named by $HUB_CONFIG, else ./hub.toml."""
    if isinstance(config, Settings):
        return config
    path = config or os.environ.get(CONFIG_ENV) or "hub.toml"
    try:
        return load_settings(path)
    except ConfigError as exc:
        raise RunError([f"config error: {exc}"]) from None


def run(action: str, /, config: str | os.PathLike[str] | Settings | None = None, **args: Any) -> Any:
    """`run("hub.publish", channel="news", data={...})`: the action's output; RunError with the hub's errors.
    Credentials: see `token_for` ($HUB_TOKEN and $HUB_USER included)."""
    return call(action, args, config)


def call(action: str, args: dict[str, Any], config: str | os.PathLike[str] | Settings | None = None, *,
         token: str | None = None, user: str | None = None, url: str | None = None) -> Any:
    """`run` with explicit credentials and address (what `hub exec --token/--user/--url` passes)."""
    settings = load(config)
    base = (url or base_url(settings)).rstrip("/")
    body = {"type": "request", "action": action, "args": args}
    status, reply, challenge = _post(base + "/execute", body, token_for(settings, token=token, user=user, url=base))
    if status == 401 and not token and not user and settings.adapters["jsonrpc"].client_password:
        # a kept login token was revoked: log in again
        status, reply, challenge = _post(base + "/execute", body, token_for(settings, fresh=True, url=base))
    if isinstance(reply, dict) and isinstance(reply.get("response"), dict):
        errors = reply["response"].get("errors") or []
        if status == 200 and not errors:
            return reply["response"].get("output")
        raise RunError([str(e) for e in errors] or [f"HTTP {status}"], status)
    raise RunError([_refusal(reply, challenge) if reply else f"unexpected answer {reply!r}"], status)
