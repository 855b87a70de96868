"""The hub as a library: run an action against the hub a hub.toml describes (its address and credentials)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from hub.config import Settings, load_settings


class RunError(Exception):
    """The hub answered with errors (or could not be reached)."""

    def __init__(self, errors: list[str], status: int = 0) -> None:
        super().__init__("; ".join(errors))
        self.errors, self.status = errors, status


def _post(url: str, body: dict[str, Any], token: str | None = None, timeout: float = 30) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, json.dumps(body).encode(), headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")
    except OSError as exc:
        raise RunError([f"cannot reach the hub at {url}: {exc}"]) from None


def base_url(settings: Settings) -> str:
    s = settings.adapters["jsonrpc"]
    host = "127.0.0.1" if s.host in ("0.0.0.0", "") else s.host
    return f"http://{host}:{s.port}"


def token_for(settings: Settings) -> str:
    """`client_token`, else a login with `client_user`/`client_password`, else a token made locally for `client_user`."""
    s = settings.adapters["jsonrpc"]
    if s.client_token:
        return s.client_token
    if s.client_user and s.client_password:
        status, body = _post(base_url(settings) + "/auth", {"username": s.client_user, "password": s.client_password})
        if status != 200:
            raise RunError([f"login as {s.client_user!r} failed: {body}"], status)
        return body["token"]
    if s.client_user:
        from . import auth
        from .store import UserStore

        store = UserStore(s.users_file)
        if s.client_user not in store.users:
            raise RunError([f"unknown user {s.client_user!r} in {s.users_file}"])
        return auth.issue(store, s.token_secret or store.signing_key(), s.client_user, 300)
    raise RunError(["no credentials: set [jsonrpc] client_token, or client_user (and client_password)"])


def run(action: str, config: str | Settings = "hub.toml", **args: Any) -> Any:
    """`run("hub.publish", channel="news", data={...})`: the action's output, or RunError."""
    settings = config if isinstance(config, Settings) else load_settings(config)
    status, body = _post(base_url(settings) + "/execute", {"type": "request", "action": action, "args": args},
                         token_for(settings))
    if not isinstance(body, dict):
        raise RunError([f"unexpected answer {body!r}"], status)
    errors = body.get("response", {}).get("errors") if "response" in body else [body.get("error", "error")]
    if status != 200 or errors:
        raise RunError(list(errors or ["error"]), status)
    return body["response"]["output"]
