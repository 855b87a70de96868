"""The hub as a library: run an action against the hub a hub.toml describes (its address and credentials).

Synchronous (urllib), for scripts; from async code call it in a thread. Tokens from a login are kept
in the process until shortly before they expire.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from hub.config import ConfigError, Settings, load_settings

CONFIG_ENV = "HUB_CONFIG"
LOCAL_TOKEN_TTL = 300
_tokens: dict[tuple[str, str], tuple[str, float]] = {}
_tokens_lock = threading.Lock()


class RunError(Exception):
    """The hub answered with errors (`status` is the HTTP status), or could not be reached (`status` 0)."""

    def __init__(self, errors: list[str], status: int = 0) -> None:
        super().__init__("; ".join(errors))
        self.errors, self.status = errors, status


def _post(url: str, body: dict[str, Any], token: str | None = None, timeout: float = 30) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except (OSError, ValueError) as exc:
        raise RunError([f"cannot reach the hub at {url}: {getattr(exc, 'reason', exc)}"]) from None
    try:
        return status, json.loads(raw or b"null")
    except ValueError:
        raise RunError([f"{url} answered {status} with something that is not JSON"], status) from None


def base_url(settings: Settings) -> str:
    """`[jsonrpc] client_url`, else http://host:port of the listener (a wildcard host means this machine)."""
    s = settings.adapters["jsonrpc"]
    if s.client_url:
        return s.client_url.rstrip("/")
    host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(s.host, s.host)
    return f"http://[{host}]:{s.port}" if ":" in host else f"http://{host}:{s.port}"


def token_for(settings: Settings, fresh: bool = False) -> str:
    """`client_token`; else a login as `client_user` with `client_password` (kept until near its expiry);
    else a short-lived token signed here for `client_user`, from the users file (same machine only)."""
    s = settings.adapters["jsonrpc"]
    if s.client_token:
        return str(s.client_token)
    if not s.client_user:
        raise RunError(["no credentials: set [jsonrpc] client_token, or client_user (and client_password)"])
    url = base_url(settings)
    if s.client_password:
        key = (url, s.client_user)
        with _tokens_lock:
            cached = _tokens.get(key)
        if cached and not fresh and cached[1] > time.time() + 30:
            return cached[0]
        status, body = _post(url + "/auth", {"username": s.client_user, "password": s.client_password})
        if status != 200 or not isinstance(body, dict) or "token" not in body:
            message = body.get("error") if isinstance(body, dict) else body
            raise RunError([f"login as {s.client_user!r} failed: {message}"], status)
        with _tokens_lock:
            _tokens[key] = (body["token"], float(body.get("expires_at", 0)))
        return str(body["token"])
    from . import auth
    from .store import StoreError, UserStore

    if not os.path.exists(s.users_file):
        raise RunError([f"no users file at {os.path.abspath(s.users_file)} (relative paths are from the current "
                        "directory); set client_password or client_token to log in over the network"])
    try:
        store = UserStore(s.users_file, readonly=True)
        if s.client_user not in store.users:
            raise RunError([f"unknown user {s.client_user!r} in {s.users_file}"])
        return auth.issue(s.token_secret or store.signing_key(), s.client_user, LOCAL_TOKEN_TTL)
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
    """`run("hub.publish", channel="news", data={...})`: the action's output; RunError with the hub's errors."""
    settings = load(config)
    url = base_url(settings) + "/execute"
    body = {"type": "request", "action": action, "args": args}
    status, reply = _post(url, body, token_for(settings))
    if status == 401 and settings.adapters["jsonrpc"].client_password:  # a kept token was revoked: log in again
        status, reply = _post(url, body, token_for(settings, fresh=True))
    if isinstance(reply, dict) and isinstance(reply.get("response"), dict):
        errors = reply["response"].get("errors") or []
        if status == 200 and not errors:
            return reply["response"].get("output")
        raise RunError([str(e) for e in errors] or [f"HTTP {status}"], status)
    message = reply.get("error") if isinstance(reply, dict) else None
    raise RunError([str(message or f"unexpected answer {reply!r}")], status)
