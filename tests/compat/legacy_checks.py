"""127 protocol checks of the original Centrifuge 0.8 wire formats, run the same way against any server.

Each check sends the same traffic and returns what came back: raw text frames, close frames,
HTTP status lines, content types and bodies. `normalize` then replaces what is random by run
(client ids and message uids by order of appearance, timestamps by their JSON type, the per-check
name suffix), so two servers' answers can be compared for equality. The server must run with the
reference `config.json` (projects `development`/`secret` with namespaces `public`, `closed`,
`bench`, and `expiring`/`secret2` with connection_lifetime 30).

Standard library only: `side_by_side.py` runs this against the original and the hub.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import re
import string
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote_plus, urlencode

from .wire import HTTP, WS, describe

SECRET, SECRET2 = "secret", "secret2"
PROJECT, EXPIRING = "development", "expiring"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}

CHECKS: list[tuple[str, Callable[[Target], Any]]] = []
SLOW = {"client_expiry_closes_40s_after_connect", "client_expiry_after_refresh"}


def check(fn: Callable[[Target], Any]) -> Callable[[Target], Any]:
    CHECKS.append((fn.__name__, fn))
    return fn


def combined(name: str, *parts: Callable[[Target], Any]) -> None:
    """One check made of several: each part runs with its own suffix, answers keyed by part."""

    def run(t: Target) -> Any:
        out = {}
        for i, part in enumerate(parts):
            sub = Target(t.base, t.sfx + "abcdefgh"[i])
            try:
                out[part.__name__] = part(sub)
            finally:
                sub.close()
        return out

    run.__name__ = name
    check(run)


def hmac_hex(secret: str, *parts: str | bytes) -> str:
    mac = hmac.new(secret.encode(), digestmod=hashlib.sha256)
    for part in parts:
        mac.update(part.encode("utf-8") if isinstance(part, str) else part)
    return mac.hexdigest()


class Target:
    """One server and one check's names (every channel and user gets the check's own suffix)."""

    def __init__(self, base: str, sfx: str) -> None:
        self.base, self.sfx = base.rstrip("/"), sfx
        self.http = HTTP(self.base)
        self.sockets: list[WS] = []

    def ch(self, name: str) -> str:
        return f"{name}-{self.sfx}"

    def user(self, name: str) -> str:
        return f"{name}-{self.sfx}"

    # -- websocket clients --------------------------------------------------------------------
    def ws(self, path: str = "/connection/websocket", headers: dict[str, str] | None = None) -> WS:
        ws = WS(self.base, path, headers)
        self.sockets.append(ws)
        return ws

    @staticmethod
    def connect_params(user: str, project: str = PROJECT, secret: str = SECRET, ts: str | None = None,
                       info: str | None = None) -> dict[str, str]:
        ts = ts or str(int(time.time()))
        params = {"project": project, "user": user, "timestamp": ts, "token": hmac_hex(secret, project, user, ts, info or "")}
        if info is not None:
            params["info"] = info
        return params

    def client(self, name: str, **kw: Any) -> tuple[WS, list[Any]]:
        """A connected client and the frames its connect got."""
        ws = self.ws()
        frames = self.cmd(ws, "connect", self.connect_params(self.user(name) if name else "", **kw))
        return ws, frames

    @staticmethod
    def cmd(ws: WS, method: str, params: Any = None, uid: str | None = None) -> list[Any]:
        command: dict[str, Any] = {"method": method, "params": {} if params is None else params}
        if uid is not None:
            command = {"uid": uid, **command}
        ws.send(json.dumps(command))
        return ws.until_reply()

    @staticmethod
    def send(ws: WS, obj: Any) -> list[Any]:
        ws.send(obj if isinstance(obj, str) else json.dumps(obj))
        return ws.until_reply()

    def subscribed(self, name: str, channel: str, **kw: Any) -> WS:
        ws, _ = self.client(name, **kw)
        self.cmd(ws, "subscribe", {"channel": channel})
        return ws

    # -- HTTP API -----------------------------------------------------------------------------
    def api(self, data: Any, project: str = PROJECT, secret: str = SECRET, sign: str | None = None,
            path: str | None = None, body: str | None = None) -> list[Any]:
        text = data if isinstance(data, str) else json.dumps(data)
        sign = hmac_hex(secret, project, text) if sign is None else sign
        if body is None:
            body = urlencode([("sign", sign), ("data", text)])
        status, ctype, answer, _ = self.http.request("POST", path or f"/api/{project}", body, FORM)
        return [status, ctype, answer]

    def close(self) -> None:
        for ws in self.sockets:
            ws.close()


# ------------------------------------------------------------------------------------------------
# HTTP API: whole-request errors and their order
# ------------------------------------------------------------------------------------------------
PUB = {"method": "publish", "params": {"channel": "news", "data": {"text": "hello"}}}


def api_empty_body(t: Target) -> Any:
    return t.http.request("POST", "/api/development", b"", FORM)[:3]


def api_no_sign(t: Target) -> Any:
    return t.api(PUB, body=urlencode([("data", json.dumps(PUB))]))


def api_no_data(t: Target) -> Any:
    return t.api(PUB, body=urlencode([("sign", "0" * 64)]))


def api_empty_sign_and_data(t: Target) -> Any:
    return [t.api(PUB, body="sign=&data=%7B%7D"), t.api(PUB, body="sign=abc&data=")]


def api_unknown_project(t: Target) -> Any:
    return t.api(PUB, project="nope", secret="x")


def api_unknown_project_checked_after_fields(t: Target) -> Any:
    return [t.api(PUB, project="nope", body=urlencode([("data", "{}")])), t.api("{not json", project="nope")]


def api_wrong_sign(t: Target) -> Any:
    return [t.api(PUB, sign="0" * 64), t.api(PUB, secret="other"), t.api(PUB, sign=hmac_hex(SECRET, PROJECT, json.dumps(PUB)).upper())]


def api_sign_checked_before_json(t: Target) -> Any:
    return t.api("{not json", sign="0" * 64)


def api_data_not_json(t: Target) -> Any:
    return t.api("{not json")


def api_data_scalar(t: Target) -> Any:
    return [t.api("42"), t.api('"publish"'), t.api("null")]


def api_101_commands(t: Target) -> Any:
    return t.api([{"method": "presence", "params": {"channel": t.ch("c")}}] * 101)


def api_100_commands(t: Target) -> Any:
    status, ctype, body = t.api([{"method": "presence", "params": {"channel": t.ch("c")}}] * 100)
    return [status, ctype, len(json.loads(body)), json.loads(body)[99]]


@check
def api_get_is_405(t: Target) -> Any:
    return t.http.request("GET", "/api/development")[:3]


@check
def api_no_project_key(t: Target) -> Any:
    return t.api(PUB, path="/api/")


def api_trailing_slash(t: Target) -> Any:
    return t.api(PUB, path="/api/development/")


def api_empty_array(t: Target) -> Any:
    return t.api([])


def api_single_object_gets_array(t: Target) -> Any:
    return t.api({"method": "publish", "params": {"channel": t.ch("news"), "data": 1}})


@check
def api_cent_request_bytes(t: Target) -> Any:
    """What cent 0.6.0 sends, byte for byte (a JSON array, `json.dumps` spacing)."""
    data = json.dumps([{"method": "publish", "params": {"channel": t.ch("news"), "data": {"text": "hello"}}}])
    body = "sign=" + hmac_hex(SECRET, PROJECT, data) + "&data=" + quote_plus(data)
    status, ctype, answer, _ = t.http.request("POST", "/api/development", body, {
        "Accept-Encoding": "identity", "Content-Type": "application/x-www-form-urlencoded",
        "User-Agent": "Python-urllib/3.11", "Connection": "close"})
    return [status, ctype, answer]


@check
def api_data_whitespace_stripped(t: Target) -> Any:
    raw = " " + json.dumps(PUB) + "\n"
    return [t.api(raw, sign=hmac_hex(SECRET, PROJECT, raw)), t.api(raw, sign=hmac_hex(SECRET, PROJECT, raw.strip()))]


@check
def api_escaped_non_ascii_signs(t: Target) -> Any:
    return t.api({"method": "publish", "params": {"channel": t.ch("news"), "data": "h\u00e9 \u4e16"}})


@check
def api_utf8_latin1_range(t: Target) -> Any:
    """Raw UTF-8 `é` signed over its UTF-8 bytes (the original hashes latin-1: 401)."""
    return t.api(json.dumps({"method": "publish", "params": {"channel": t.ch("news"), "data": "h\u00e9"}}, ensure_ascii=False))


@check
def api_utf8_outside_latin1(t: Target) -> Any:
    """Raw UTF-8 `世` signed over its UTF-8 bytes (the original: 500, UnicodeEncodeError)."""
    return t.api(json.dumps({"method": "publish", "params": {"channel": t.ch("news"), "data": "\u4e16"}}, ensure_ascii=False))


@check
def api_json_body_with_header_sign(t: Target) -> Any:
    """Content-Type: application/json, sign in X-API-Sign (the original fails with 500 on Python 3)."""
    data = json.dumps({"method": "publish", "params": {"channel": t.ch("news"), "data": 1}})
    status, ctype, body, _ = t.http.request("POST", "/api/development", data, {
        "Content-Type": "application/json", "X-API-Sign": hmac_hex(SECRET, PROJECT, data)})
    return [status, ctype, body]


# ------------------------------------------------------------------------------------------------
# HTTP API: per-command answers
# ------------------------------------------------------------------------------------------------
@check
def api_unknown_method(t: Target) -> Any:
    return t.api([{"method": "foo", "params": {}}, {"method": "channels", "params": {}}])


def api_missing_params(t: Target) -> Any:
    return t.api([{"method": "publish"}])


def api_params_not_object(t: Target) -> Any:
    return t.api([{"method": "publish", "params": []}, {"method": "publish", "params": "x"}])


def api_element_not_object(t: Target) -> Any:
    return t.api([42, "x", None])


def api_method_not_string(t: Target) -> Any:
    return t.api([{"method": 5, "params": {}}, {"params": {}}])


def api_publish_without_channel(t: Target) -> Any:
    return t.api([{"method": "publish", "params": {"data": 1}}])


def api_publish_channel_wrong_type(t: Target) -> Any:
    return t.api([{"method": "publish", "params": {"channel": 5, "data": 1}},
                  {"method": "publish", "params": {"channel": None}}])


def api_publish_unknown_namespace(t: Target) -> Any:
    return t.api([{"method": "publish", "params": {"channel": "nons:" + t.ch("c"), "data": 1}}])


def api_publish_empty_channel(t: Target) -> Any:
    return t.api([{"method": "publish", "params": {"channel": "", "data": 1}}])


@check
def api_mixed_batch(t: Target) -> Any:
    return t.api([{"method": "publish", "params": {"channel": t.ch("a"), "data": 1}}, {"method": "nope", "params": {}},
                  {"method": "publish", "params": {"channel": "nons:" + t.ch("a"), "data": 1}},
                  {"method": "presence", "params": {}}, {"method": "history", "params": {"channel": t.ch("a")}}])


@check
def api_publish_any_channel_name(t: Target) -> Any:
    """The API checks neither length, `$` nor `#`."""
    return t.api([{"method": "publish", "params": {"channel": "x" * 300, "data": 1}},
                  {"method": "publish", "params": {"channel": "dm#nobody", "data": 1}},
                  {"method": "publish", "params": {"channel": "$priv" + t.sfx, "data": 1}}])


@check
def api_publish_reaches_subscriber(t: Target) -> Any:
    ws = t.subscribed("sub", t.ch("news"))
    ws.texts(0.2)
    out = t.api({"method": "publish", "params": {"channel": t.ch("news"), "data": {"text": "hello", "n": 1}}})
    return [out, ws.texts()]


def api_publish_client_param_ignored(t: Target) -> Any:
    ws, frames = t.client("sub")
    t.cmd(ws, "subscribe", {"channel": t.ch("news")})
    ws.texts(0.2)
    client = json.loads(frames[-1])[0]["body"]["client"]
    out = t.api({"method": "publish", "params": {"channel": t.ch("news"), "data": 2, "client": client}})
    return [out, ws.texts()]


def api_publish_without_data(t: Target) -> Any:
    ws = t.subscribed("sub", t.ch("news"))
    ws.texts(0.2)
    out = t.api({"method": "publish", "params": {"channel": t.ch("news")}})
    return [out, ws.texts()]


def api_publish_extra_params_ignored(t: Target) -> Any:
    return t.api({"method": "publish", "params": {"channel": t.ch("news"), "data": 1, "extra": [1], "uid": "x"}})


@check
def api_json_encoding_of_data(t: Target) -> Any:
    ws = t.subscribed("sub", t.ch("enc"))
    ws.texts(0.2)
    data = {"html": "</script>", "u": "h\u00e9 \u4e16", "f": 1.5, "big": 12345678901234567890, "nested": [1, None, True], "e": 1e100}
    t.api({"method": "publish", "params": {"channel": t.ch("enc"), "data": data}})
    return [ws.texts(), t.api({"method": "history", "params": {"channel": t.ch("enc")}})]


@check
def api_integers_past_64_bits(t: Target) -> Any:
    """Integers a 64-bit decoder would turn into floats (orjson does) come back as the original's Python keeps them."""
    ws = t.subscribed("sub", t.ch("ints"))
    ws.texts(0.2)
    data = {"big": 2 ** 70, "neg": -(2 ** 80), "edge": [2 ** 64, 2 ** 63, -(2 ** 63) - 1], "digits": "1234567890123456789012"}
    t.api({"method": "publish", "params": {"channel": t.ch("ints"), "data": data}})
    return [ws.texts(), t.api({"method": "history", "params": {"channel": t.ch("ints")}})]


@check
def pub_integers_past_64_bits(t: Target) -> Any:
    """The same through the client protocol: a publish frame with integers past 64 bits."""
    ws = t.subscribed("alice", "public:" + t.ch("ints"))
    ws.texts(0.2)
    ws.send(json.dumps({"method": "publish", "params": {"channel": "public:" + t.ch("ints"), "data": {"n": 2 ** 90, "m": [-(2 ** 65)]}}}))
    return ws.texts()


@check
def api_publish_public_namespace(t: Target) -> Any:
    ws = t.subscribed("sub", "public:" + t.ch("room"))
    ws.texts(0.2)
    return [t.api({"method": "publish", "params": {"channel": "public:" + t.ch("room"), "data": "x"}}), ws.texts()]


@check
def api_publish_closed_namespace(t: Target) -> Any:
    """The API ignores the namespace's `publish: false`."""
    return t.api({"method": "publish", "params": {"channel": "closed:" + t.ch("c"), "data": "x"}})


def api_presence_empty(t: Target) -> Any:
    return t.api([{"method": "presence", "params": {"channel": t.ch("nobody")}}, {"method": "presence", "params": {"channel": ""}}])


@check
def api_presence_two_clients(t: Target) -> Any:
    t.subscribed("alice", t.ch("room"), info='{"name": "Alice"}')
    t.subscribed("bob", t.ch("room"))
    return t.api({"method": "presence", "params": {"channel": t.ch("room")}})


def api_presence_unknown_namespace(t: Target) -> Any:
    return t.api({"method": "presence", "params": {"channel": "nons:" + t.ch("x")}})


@check
def api_presence_where_presence_off(t: Target) -> Any:
    t.subscribed("bob", "closed:" + t.ch("c"))
    return t.api({"method": "presence", "params": {"channel": "closed:" + t.ch("c")}})


def api_presence_wrong_type(t: Target) -> Any:
    return t.api([{"method": "presence", "params": {"channel": 7}}, {"method": "presence", "params": {}}])


@check
def api_history_newest_first_trimmed(t: Target) -> Any:
    ch = "public:" + t.ch("h")
    t.api([{"method": "publish", "params": {"channel": ch, "data": {"n": n}}} for n in range(5)])
    return t.api({"method": "history", "params": {"channel": ch}})


@check
def api_history_project_channel(t: Target) -> Any:
    ch = t.ch("h")
    t.api([{"method": "publish", "params": {"channel": ch, "data": n}} for n in range(12)])
    status, ctype, body = t.api({"method": "history", "params": {"channel": ch}})
    return [status, ctype, [m["data"] for m in json.loads(body)[0]["body"]]]


@check
def api_history_empty(t: Target) -> Any:
    return t.api([{"method": "history", "params": {"channel": t.ch("none")}},
                  {"method": "history", "params": {"channel": "closed:" + t.ch("c")}},
                  {"method": "history", "params": {"channel": "nons:" + t.ch("c")}},
                  {"method": "history", "params": {}}])


@check
def api_unsubscribe_user_from_channel(t: Target) -> Any:
    a = t.subscribed("alice", t.ch("room"))
    b = t.subscribed("bob", t.ch("room"))
    a.texts(0.2)
    b.texts(0.2)
    out = t.api({"method": "unsubscribe", "params": {"user": t.user("alice"), "channel": t.ch("room")}})
    return [out, a.texts(), b.texts(), t.api({"method": "presence", "params": {"channel": t.ch("room")}})]


def api_unsubscribe_unknown_user(t: Target) -> Any:
    return t.api([{"method": "unsubscribe", "params": {"user": t.user("ghost"), "channel": t.ch("x")}},
                  {"method": "unsubscribe", "params": {"user": t.user("ghost")}}])


@check
def api_unsubscribe_all_channels(t: Target) -> Any:
    """Without `channel`: every channel (the original answers 500 and leaves only one)."""
    a = t.subscribed("alice", t.ch("one"))
    t.cmd(a, "subscribe", {"channel": t.ch("two")})
    out = t.api({"method": "unsubscribe", "params": {"user": t.user("alice")}})
    return [out, t.api([{"method": "presence", "params": {"channel": t.ch("one")}},
                        {"method": "presence", "params": {"channel": t.ch("two")}}])]


@check
def api_unsubscribe_all_when_subscribed_nowhere(t: Target) -> Any:
    t.client("alice")
    return t.api({"method": "unsubscribe", "params": {"user": t.user("alice")}})


def api_unsubscribe_schema(t: Target) -> Any:
    return t.api([{"method": "unsubscribe", "params": {}}, {"method": "unsubscribe", "params": {"user": 1}},
                  {"method": "unsubscribe", "params": {"user": "u", "channel": 1}}])


@check
def api_disconnect_user(t: Target) -> Any:
    a = t.subscribed("alice", t.ch("room"))
    b = t.subscribed("bob", t.ch("room"))
    a.texts(0.2)
    b.texts(0.2)
    out = t.api({"method": "disconnect", "params": {"user": t.user("alice")}})
    return [out, a.texts(), b.texts()]


@check
def api_disconnect_reason(t: Target) -> Any:
    a, _ = t.client("alice")
    out = t.api({"method": "disconnect", "params": {"user": t.user("alice"), "reason": "banned </b> \u00e9"}})
    return [out, a.texts()]


@check
def api_disconnect_every_connection(t: Target) -> Any:
    a1, _ = t.client("alice")
    a2, _ = t.client("alice")
    out = t.api({"method": "disconnect", "params": {"user": t.user("alice"), "reason": ""}})
    return [out, a1.texts(), a2.texts()]


def api_disconnect_unknown_user_and_schema(t: Target) -> Any:
    return t.api([{"method": "disconnect", "params": {"user": t.user("ghost")}}, {"method": "disconnect", "params": {}},
                  {"method": "disconnect", "params": {"user": "u", "reason": 5}}])


# ------------------------------------------------------------------------------------------------
# Websocket endpoint
# ------------------------------------------------------------------------------------------------
@check
def ws_upgrade_headers(t: Target) -> Any:
    ws = t.ws(headers={"Origin": "http://evil.example", "Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits"})
    return [ws.status, sorted(k for k in ws.headers if k not in ("server", "date"))]


@check
def ws_connect(t: Target) -> Any:
    ws = t.ws()
    return t.cmd(ws, "connect", t.connect_params(t.user("alice")), uid="c1")


@check
def ws_connect_info_shown_to_others(t: Target) -> Any:
    ws, frames = t.client("alice", info='{"name": "Alice", "n": [1, 2]}')
    return [frames, t.cmd(ws, "subscribe", {"channel": t.ch("room")})]


@check
def ws_connect_info_not_json(t: Target) -> Any:
    ws, frames = t.client("alice", info="{broken")
    return [frames, t.cmd(ws, "subscribe", {"channel": t.ch("room")})]


@check
def ws_connect_info_json_scalar(t: Target) -> Any:
    ws, frames = t.client("alice", info="null")
    return [frames, t.cmd(ws, "subscribe", {"channel": t.ch("room")})]


@check
def ws_connect_anonymous(t: Target) -> Any:
    ws, frames = t.client("")
    return [frames, t.cmd(ws, "subscribe", {"channel": t.ch("room")}), t.cmd(ws, "subscribe", {"channel": "closed:" + t.ch("c")})]


def ws_connect_wrong_token(t: Target) -> Any:
    ws = t.ws()
    params = t.connect_params(t.user("alice"))
    return [t.cmd(ws, "connect", {**params, "token": "0" * 64}), t.cmd(ws, "ping")]


def ws_connect_unknown_project(t: Target) -> Any:
    ws = t.ws()
    return t.cmd(ws, "connect", t.connect_params(t.user("alice"), project="nope"))


@check
def ws_connect_bad_timestamp(t: Target) -> Any:
    ws = t.ws()
    return [t.cmd(ws, "connect", t.connect_params(t.user("alice"), ts="abc")), t.cmd(ws, "ping")]


@check
def ws_connect_without_token(t: Target) -> Any:
    ws = t.ws()
    params = t.connect_params(t.user("alice"), ts="1700000000")
    del params["token"]
    return [t.cmd(ws, "connect", params), t.cmd(ws, "ping")]


@check
def ws_connect_wrong_types(t: Target) -> Any:
    ws = t.ws()
    params = t.connect_params(t.user("alice"), ts="1700000000")
    return [t.cmd(ws, "connect", {**params, "user": 7}), t.cmd(ws, "connect", {**params, "timestamp": 1700000000}),
            t.cmd(ws, "connect", {**params, "info": {"a": 1}})]


@check
def ws_connect_twice(t: Target) -> Any:
    ws, first = t.client("alice")
    return [first, t.cmd(ws, "connect", {"whatever": 1}), t.cmd(ws, "connect", t.connect_params(t.user("bob")))]


@check
def ws_connect_old_timestamp_without_lifetime(t: Target) -> Any:
    ws, frames = t.client("alice", ts=str(int(time.time()) - 400 * 86400))
    return [frames, t.cmd(ws, "ping")]


@check
def ws_connect_expiring_fresh(t: Target) -> Any:
    ws, frames = t.client("alice", project=EXPIRING, secret=SECRET2)
    return [frames, t.cmd(ws, "ping")]


@check
def ws_connect_expired_timestamp(t: Target) -> Any:
    ws, frames = t.client("alice", project=EXPIRING, secret=SECRET2, ts=str(int(time.time()) - 60))
    return [frames, t.cmd(ws, "ping"), t.cmd(ws, "subscribe", {"channel": t.ch("x")})]


@check
def ws_connect_after_expired_connect(t: Target) -> Any:
    ws, frames = t.client("alice", project=EXPIRING, secret=SECRET2, ts=str(int(time.time()) - 60))
    fresh = t.connect_params(t.user("alice"), project=EXPIRING, secret=SECRET2)
    return [frames, t.cmd(ws, "refresh", fresh), t.cmd(ws, "connect", fresh), t.cmd(ws, "ping")]


def ws_uid_not_echoed(t: Target) -> Any:
    ws, _ = t.client("alice")
    return [t.cmd(ws, "ping", uid="42"),
            t.send(ws, [{"uid": "a", "method": "ping", "params": {}}, {"uid": 7, "method": "ping", "params": {}}])]


def ws_ping_before_connect(t: Target) -> Any:
    ws = t.ws()
    return t.cmd(ws, "ping")


def ws_commands_before_connect(t: Target) -> Any:
    ws = t.ws()
    return [t.cmd(ws, "subscribe", {"channel": t.ch("x")}), t.cmd(ws, "foo"), t.cmd(ws, "refresh", t.connect_params(t.user("a"))),
            t.send(ws, {"method": "publish"})]


@check
def ws_unknown_method(t: Target) -> Any:
    ws, _ = t.client("alice")
    return [t.cmd(ws, "foo"), t.cmd(ws, "ping")]


def ws_command_without_params(t: Target) -> Any:
    ws, _ = t.client("alice")
    return [t.send(ws, {"method": "ping"}), t.cmd(ws, "ping")]


def ws_params_not_object(t: Target) -> Any:
    ws, _ = t.client("alice")
    return [t.send(ws, {"method": "ping", "params": []}), t.send(ws, {"method": "ping", "params": None})]


def ws_method_not_string(t: Target) -> Any:
    ws, _ = t.client("alice")
    return [t.send(ws, {"method": 5, "params": {}}), t.send(ws, {"params": {}})]


@check
def ws_batch_stops_at_failing_command(t: Target) -> Any:
    ws, _ = t.client("alice")
    return [t.send(ws, [{"method": "ping", "params": {}}, {"method": "bogus", "params": {}}, {"method": "ping", "params": {}}]),
            t.cmd(ws, "ping")]


@check
def ws_batch_stops_at_schema_error(t: Target) -> Any:
    ws, _ = t.client("alice")
    return t.send(ws, [{"method": "ping", "params": {}}, {"method": "subscribe", "params": {}}, {"method": "ping", "params": {}}])


@check
def ws_batch_stops_at_non_object(t: Target) -> Any:
    ws, _ = t.client("alice")
    return t.send(ws, [{"method": "ping", "params": {}}, 42, {"method": "ping", "params": {}}])


@check
def ws_batch_continues_after_handler_error(t: Target) -> Any:
    ws, _ = t.client("alice")
    return t.send(ws, [{"method": "subscribe", "params": {"channel": "nons:x"}}, {"method": "publish", "params": {"channel": t.ch("x")}},
                       {"method": "ping", "params": {}}])


@check
def ws_batch_before_connect(t: Target) -> Any:
    ws = t.ws()
    return t.send(ws, [{"method": "connect", "params": t.connect_params(t.user("alice"))}, {"method": "ping", "params": {}},
                       {"method": "subscribe", "params": {"channel": t.ch("room")}}])


@check
def ws_empty_batch(t: Target) -> Any:
    ws, _ = t.client("alice")
    return t.send(ws, [])


@check
def ws_100_commands(t: Target) -> Any:
    ws, _ = t.client("alice")
    frames = t.send(ws, [{"method": "ping", "params": {}}] * 100)
    return [len(json.loads(frames[-1])), json.loads(frames[-1])[-1]]


def ws_101_commands_close(t: Target) -> Any:
    ws, _ = t.client("alice")
    ws.send(json.dumps([{"method": "ping", "params": {}}] * 101))
    return ws.texts(quiet=3.0)


@check
def ws_not_json_closes_after_a_second(t: Target) -> Any:
    ws, _ = t.client("alice")
    started = time.monotonic()
    ws.send("{not json")
    frames = ws.texts(quiet=3.0)
    elapsed = time.monotonic() - started
    return [frames, "about 1 s later" if 0.9 <= elapsed < 2.5 else f"{elapsed:.1f} s later"]


def ws_scalar_frame_closes(t: Target) -> Any:
    ws, _ = t.client("alice")
    ws.send("42")
    return ws.texts(quiet=3.0)


@check
def ws_frame_before_connect_not_json(t: Target) -> Any:
    ws = t.ws()
    ws.send("hello")
    return ws.texts(quiet=3.0)


@check
def ws_empty_frame_ignored(t: Target) -> Any:
    ws, _ = t.client("alice")
    ws.send("")
    return [ws.texts(quiet=0.5), t.cmd(ws, "ping")]


# ------------------------------------------------------------------------------------------------
# subscribe / unsubscribe
# ------------------------------------------------------------------------------------------------
@check
def sub_join_then_reply(t: Target) -> Any:
    ws, _ = t.client("alice")
    return t.cmd(ws, "subscribe", {"channel": t.ch("news")})


@check
def sub_others_get_join(t: Target) -> Any:
    a = t.subscribed("alice", t.ch("news"))
    a.texts(0.2)
    t.subscribed("bob", t.ch("news"), info='{"b": 1}')
    return a.texts()


@check
def sub_no_join_without_join_leave(t: Target) -> Any:
    ws, _ = t.client("alice")
    return t.cmd(ws, "subscribe", {"channel": "bench:" + t.ch("b")})


@check
def sub_twice(t: Target) -> Any:
    ws, _ = t.client("alice")
    t.cmd(ws, "subscribe", {"channel": t.ch("news")})
    return t.cmd(ws, "subscribe", {"channel": t.ch("news")})


@check
def sub_unknown_namespace(t: Target) -> Any:
    ws, _ = t.client("alice")
    return t.cmd(ws, "subscribe", {"channel": "nons:" + t.ch("x")})


@check
def sub_user_limited_other(t: Target) -> Any:
    ws, _ = t.client("alice")
    return t.cmd(ws, "subscribe", {"channel": "dm#" + t.user("other") + "," + t.user("zed")})


@check
def sub_user_limited_self(t: Target) -> Any:
    ws, _ = t.client("alice")
    return t.cmd(ws, "subscribe", {"channel": "dm#" + t.user("alice") + "," + t.user("bob")})


@check
def sub_user_limited_checked_before_namespace(t: Target) -> Any:
    ws, _ = t.client("alice")
    return t.cmd(ws, "subscribe", {"channel": "nons:dm#" + t.user("bob")})


def sub_private_without_sign(t: Target) -> Any:
    ws, _ = t.client("alice")
    return [t.cmd(ws, "subscribe", {"channel": "$" + t.ch("secret")}),
            t.cmd(ws, "subscribe", {"channel": "$" + t.ch("secret"), "client": "x", "sign": "y"})]


def sub_private_bad_sign(t: Target) -> Any:
    ws, frames = t.client("alice")
    client = json.loads(frames[-1])[0]["body"]["client"]
    return t.cmd(ws, "subscribe", {"channel": "$" + t.ch("secret"), "client": client, "info": "", "sign": "0" * 64})


@check
def sub_private_with_info(t: Target) -> Any:
    ws, frames = t.client("henry")
    client = json.loads(frames[-1])[0]["body"]["client"]
    ch, info = "$" + t.ch("secret"), '{"room": "vip"}'
    return t.cmd(ws, "subscribe", {"channel": ch, "client": client, "info": info, "sign": hmac_hex(SECRET, client, ch, info)})


@check
def sub_private_without_info(t: Target) -> Any:
    ws, frames = t.client("henry")
    client = json.loads(frames[-1])[0]["body"]["client"]
    ch = "$" + t.ch("secret")
    return [t.cmd(ws, "subscribe", {"channel": ch, "client": client, "sign": hmac_hex(SECRET, client, ch, "")}),
            t.cmd(ws, "presence", {"channel": ch})]


@check
def sub_private_info_not_json(t: Target) -> Any:
    ws, frames = t.client("henry")
    client = json.loads(frames[-1])[0]["body"]["client"]
    ch, info = "$public:" + t.ch("secret"), "not json"
    return t.cmd(ws, "subscribe", {"channel": ch, "client": client, "info": info, "sign": hmac_hex(SECRET, client, ch, info)})


@check
def sub_channel_too_long(t: Target) -> Any:
    ws, _ = t.client("alice")
    return [t.cmd(ws, "subscribe", {"channel": "x" * 256}), t.cmd(ws, "subscribe", {"channel": "nons:" + "x" * 251})]


@check
def sub_channel_255(t: Target) -> Any:
    ws, _ = t.client("alice")
    return t.cmd(ws, "subscribe", {"channel": t.ch("x") + "x" * (255 - len(t.ch("x")))})


def sub_channel_empty(t: Target) -> Any:
    ws, _ = t.client("alice")
    return [t.cmd(ws, "subscribe", {"channel": ""}), t.cmd(ws, "ping")]


def sub_channel_missing_or_wrong_type(t: Target) -> Any:
    ws, _ = t.client("alice")
    return [t.cmd(ws, "subscribe", {}), t.cmd(ws, "subscribe", {"channel": 5}), t.cmd(ws, "subscribe", {"channel": t.ch("a"), "info": 1})]


@check
def sub_anonymous_not_allowed(t: Target) -> Any:
    ws, _ = t.client("")
    return t.cmd(ws, "subscribe", {"channel": "closed:" + t.ch("c")})


@check
def sub_closed_namespace_user(t: Target) -> Any:
    ws, _ = t.client("bob")
    return t.cmd(ws, "subscribe", {"channel": "closed:" + t.ch("c")})


@check
def unsub_reply_and_leave(t: Target) -> Any:
    a = t.subscribed("alice", t.ch("room"))
    b = t.subscribed("bob", t.ch("room"))
    a.texts(0.2)
    return [t.cmd(b, "unsubscribe", {"channel": t.ch("room")}), a.texts()]


@check
def unsub_errors(t: Target) -> Any:
    ws, _ = t.client("alice")
    return [t.cmd(ws, "unsubscribe", {"channel": ""}), t.cmd(ws, "unsubscribe", {"channel": "nons:" + t.ch("x")}),
            t.cmd(ws, "unsubscribe", {})]


@check
def unsub_not_subscribed(t: Target) -> Any:
    ws, _ = t.client("alice")
    return t.cmd(ws, "unsubscribe", {"channel": "bench:" + t.ch("x")})


@check
def leave_on_socket_close(t: Target) -> Any:
    a = t.subscribed("alice", t.ch("room"))
    b = t.subscribed("bob", t.ch("room"))
    a.texts(0.2)
    b.close()
    return a.texts(0.5)


# ------------------------------------------------------------------------------------------------
# publish / presence / history from clients
# ------------------------------------------------------------------------------------------------
@check
def pub_message_before_reply(t: Target) -> Any:
    ws = t.subscribed("alice", "public:" + t.ch("room"), info='{"name": "A"}')
    ws.texts(0.2)
    return t.cmd(ws, "publish", {"channel": "public:" + t.ch("room"), "data": {"text": "hi"}})


@check
def pub_others_get_publisher_info(t: Target) -> Any:
    a = t.subscribed("alice", "public:" + t.ch("room"))
    b = t.subscribed("bob", "public:" + t.ch("room"))
    a.texts(0.2)
    t.cmd(b, "publish", {"channel": "public:" + t.ch("room"), "data": [1, "two", None]})
    return a.texts()


@check
def pub_without_data(t: Target) -> Any:
    ws = t.subscribed("alice", "public:" + t.ch("room"))
    ws.texts(0.2)
    return t.cmd(ws, "publish", {"channel": "public:" + t.ch("room")})


@check
def pub_not_subscribed(t: Target) -> Any:
    ws, _ = t.client("alice")
    return t.cmd(ws, "publish", {"channel": "public:" + t.ch("room"), "data": 1})


@check
def pub_where_publish_off(t: Target) -> Any:
    ws = t.subscribed("bob", "closed:" + t.ch("c"))
    return t.cmd(ws, "publish", {"channel": "closed:" + t.ch("c"), "data": 1})


@check
def pub_project_channel(t: Target) -> Any:
    ws = t.subscribed("alice", t.ch("news"))
    ws.texts(0.2)
    return t.cmd(ws, "publish", {"channel": t.ch("news"), "data": "x"})


@check
def pub_schema_errors(t: Target) -> Any:
    ws, _ = t.client("alice")
    return [t.cmd(ws, "publish", {"data": 1}), t.cmd(ws, "publish", {"channel": 1, "data": 1})]


@check
def pub_utf8_frame(t: Target) -> Any:
    ws = t.subscribed("alice", "public:" + t.ch("enc"))
    ws.texts(0.2)
    ws.send(json.dumps({"method": "publish", "params": {"channel": "public:" + t.ch("enc"), "data": "h\u00e9 \u4e16 </b>"}},
                       ensure_ascii=False))
    return ws.texts()


@check
def presence_reply(t: Target) -> Any:
    a = t.subscribed("alice", t.ch("room"), info='{"x": 1}')
    t.subscribed("bob", t.ch("room"))
    a.texts(0.2)
    return t.cmd(a, "presence", {"channel": t.ch("room")})


@check
def presence_errors(t: Target) -> Any:
    ws = t.subscribed("bob", "closed:" + t.ch("c"))
    return [t.cmd(ws, "presence", {"channel": "closed:" + t.ch("c")}), t.cmd(ws, "presence", {"channel": t.ch("other")}),
            t.cmd(ws, "presence", {})]


@check
def history_reply(t: Target) -> Any:
    ws = t.subscribed("alice", "public:" + t.ch("h"))
    for n in range(4):
        t.cmd(ws, "publish", {"channel": "public:" + t.ch("h"), "data": {"n": n}})
    ws.texts(0.2)
    return t.cmd(ws, "history", {"channel": "public:" + t.ch("h")})


@check
def history_errors(t: Target) -> Any:
    ws = t.subscribed("bob", "closed:" + t.ch("c"))
    return [t.cmd(ws, "history", {"channel": "closed:" + t.ch("c")}), t.cmd(ws, "history", {"channel": t.ch("other")}),
            t.cmd(ws, "history", {"channel": 3})]


@check
def history_of_api_publishes(t: Target) -> Any:
    ws = t.subscribed("alice", t.ch("h"))
    t.api({"method": "publish", "params": {"channel": t.ch("h"), "data": {"via": "api"}}})
    ws.texts(0.2)
    return t.cmd(ws, "history", {"channel": t.ch("h")})


def ping_reply(t: Target) -> Any:
    ws, _ = t.client("alice")
    return [t.cmd(ws, "ping"), t.cmd(ws, "ping", {"extra": 1})]


# ------------------------------------------------------------------------------------------------
# refresh and expiry
# ------------------------------------------------------------------------------------------------
@check
def refresh_ok(t: Target) -> Any:
    ws, _ = t.client("alice", project=EXPIRING, secret=SECRET2)
    return t.cmd(ws, "refresh", t.connect_params(t.user("alice"), project=EXPIRING, secret=SECRET2))


@check
def refresh_expired(t: Target) -> Any:
    ws, _ = t.client("alice", project=EXPIRING, secret=SECRET2)
    old = t.connect_params(t.user("alice"), project=EXPIRING, secret=SECRET2, ts=str(int(time.time()) - 100))
    return [t.cmd(ws, "refresh", old), t.cmd(ws, "ping")]


@check
def refresh_without_lifetime(t: Target) -> Any:
    ws, _ = t.client("alice")
    return [t.cmd(ws, "refresh", t.connect_params(t.user("alice"))),
            t.cmd(ws, "refresh", t.connect_params(t.user("alice"), ts=str(int(time.time()) - 100)))]


@check
def refresh_errors(t: Target) -> Any:
    ws, _ = t.client("alice", project=EXPIRING, secret=SECRET2)
    fresh = t.connect_params(t.user("alice"), project=EXPIRING, secret=SECRET2)
    return [t.cmd(ws, "refresh", {**fresh, "token": "0" * 64}), t.cmd(ws, "refresh", {**fresh, "project": "nope"}),
            t.cmd(ws, "refresh", {k: v for k, v in fresh.items() if k != "user"})]


@check
def client_expiry_closes_40s_after_connect(t: Target) -> Any:
    """Lifetime 30 and a 25 s old timestamp: closed at connect + 30 + 10 s, with no message."""
    ws, _ = t.client("alice", project=EXPIRING, secret=SECRET2, ts=str(int(time.time()) - 25))
    started = time.monotonic()
    frames = ws.texts(quiet=60, limit=60)
    elapsed = time.monotonic() - started
    return [frames, "about 40 s after connect" if 39.5 <= elapsed < 41.5 else f"{elapsed:.1f} s after connect"]


@check
def client_expiry_after_refresh(t: Target) -> Any:
    """A refresh at +5 s with a timestamp 20 s old moves the close to timestamp + 30 + 10 s (wall clock)."""
    ws, _ = t.client("alice", project=EXPIRING, secret=SECRET2)
    time.sleep(5)
    ts = int(time.time()) - 20
    reply = t.cmd(ws, "refresh", t.connect_params(t.user("alice"), project=EXPIRING, secret=SECRET2, ts=str(ts)))
    frames = ws.texts(quiet=60, limit=60)
    late = time.time() - (ts + 40)
    return [reply, frames, "at timestamp + 40 s" if -0.5 <= late < 1.5 else f"at timestamp + 40 s {late:+.1f} s"]


# ------------------------------------------------------------------------------------------------
# SockJS
# ------------------------------------------------------------------------------------------------
def sockjs_path(t: Target, transport: str) -> str:
    return f"/connection/{random.randint(0, 999):03d}/{t.sfx}{random.randint(0, 10**6)}/{transport}"


def sockjs_info(t: Target) -> Any:
    status, ctype, body, headers = t.http.request("GET", "/connection/info", headers={"Origin": "http://example.com"})
    return [status, ctype, body, {k: headers.get(k) for k in ("access-control-allow-origin", "access-control-allow-credentials",
                                                               "cache-control")}]


def sockjs_info_options(t: Target) -> Any:
    status, ctype, body, headers = t.http.request("OPTIONS", "/connection/info", headers={"Origin": "http://example.com"})
    return [status, body, {k: headers.get(k) for k in ("access-control-allow-methods", "access-control-allow-origin", "allow")}]


@check
def sockjs_greeting(t: Target) -> Any:
    return [t.http.request("GET", "/connection")[:3], t.http.request("GET", "/connection/")[:3]]


@check
def sockjs_websocket_connect(t: Target) -> Any:
    ws = t.ws(sockjs_path(t, "websocket"))
    first = ws.recv()
    ws.send(json.dumps([json.dumps({"method": "connect", "params": t.connect_params(t.user("alice"))})]))
    return [first, ws.until_reply()]


@check
def sockjs_websocket_plain_string_frame(t: Target) -> Any:
    ws = t.ws(sockjs_path(t, "websocket"))
    ws.recv()
    ws.send(json.dumps(json.dumps({"method": "ping", "params": {}})))
    return ws.until_reply()


@check
def sockjs_websocket_subscribe_publish(t: Target) -> Any:
    ws = t.ws(sockjs_path(t, "websocket"))
    ws.recv()
    ws.send(json.dumps([json.dumps({"method": "connect", "params": t.connect_params(t.user("alice"))}),
                        json.dumps({"method": "subscribe", "params": {"channel": "public:" + t.ch("r")}})]))
    ws.texts(0.3)
    ws.send(json.dumps([json.dumps({"method": "publish", "params": {"channel": "public:" + t.ch("r"), "data": "h\u00e9"}})]))
    return ws.texts()


@check
def sockjs_websocket_broken_json(t: Target) -> Any:
    ws = t.ws(sockjs_path(t, "websocket"))
    ws.recv()
    ws.send("[not json")
    return ws.texts(quiet=1.5)


@check
def sockjs_websocket_centrifuge_not_json(t: Target) -> Any:
    ws = t.ws(sockjs_path(t, "websocket"))
    ws.recv()
    ws.send(json.dumps(["{not json"]))
    return ws.texts(quiet=3.0)


@check
def sockjs_websocket_api_disconnect(t: Target) -> Any:
    ws = t.ws(sockjs_path(t, "websocket"))
    ws.recv()
    ws.send(json.dumps([json.dumps({"method": "connect", "params": t.connect_params(t.user("alice"))})]))
    ws.until_reply()
    t.api({"method": "disconnect", "params": {"user": t.user("alice")}})
    return ws.texts()


@check
def sockjs_websocket_expiry_close(t: Target) -> Any:
    """An expired connect then a not-JSON message: what a SockJS client sees when the server closes."""
    ws = t.ws(sockjs_path(t, "websocket"))
    ws.recv()
    ws.send(json.dumps([json.dumps({"method": "connect", "params": t.connect_params(
        t.user("alice"), project=EXPIRING, secret=SECRET2, ts=str(int(time.time()) - 100))}), "42"]))
    return ws.texts(quiet=3.0)


def xhr(t: Target, path: str, transport: str, body: str = "", headers: dict[str, str] | None = None) -> Any:
    time.sleep(0.15)  # the original (sockjs-tornado on Tornado 4.2) answers 2010 to a poll that follows too closely
    status, ctype, text, hdrs = t.http.request("POST", path.rsplit("/", 1)[0] + "/" + transport, body, headers)
    return [status, ctype, text]


@check
def sockjs_xhr_open_and_poll(t: Target) -> Any:
    path = sockjs_path(t, "xhr")
    opened = xhr(t, path, "xhr")
    sent = xhr(t, path, "xhr_send", json.dumps([json.dumps({"method": "connect", "params": t.connect_params(t.user("alice"))})]))
    return [opened, sent, xhr(t, path, "xhr")]


@check
def sockjs_xhr_headers(t: Target) -> Any:
    path = sockjs_path(t, "xhr")
    status, ctype, text, hdrs = t.http.request("POST", path, "", {"Origin": "http://example.com", "Cookie": "JSESSIONID=abc"})
    return [status, {k: hdrs.get(k) for k in ("access-control-allow-origin", "access-control-allow-credentials",
                                              "cache-control", "set-cookie")}]


@check
def sockjs_xhr_send_errors(t: Target) -> Any:
    path = sockjs_path(t, "xhr")
    unknown = xhr(t, path, "xhr_send", '["x"]')
    xhr(t, path, "xhr")
    return [unknown, xhr(t, path, "xhr_send", ""), xhr(t, path, "xhr_send", "[broken")]


@check
def sockjs_xhr_batched_messages(t: Target) -> Any:
    path = sockjs_path(t, "xhr")
    xhr(t, path, "xhr")
    xhr(t, path, "xhr_send", json.dumps([json.dumps({"method": "connect", "params": t.connect_params(t.user("alice"))}),
                                         json.dumps({"method": "subscribe", "params": {"channel": t.ch("r")}})]))
    return xhr(t, path, "xhr")


@check
def sockjs_xhr_options(t: Target) -> Any:
    path = sockjs_path(t, "xhr")
    status, ctype, text, hdrs = t.http.request("OPTIONS", path, None, {"Origin": "http://example.com",
                                                                        "Access-Control-Request-Headers": "x-a"})
    return [status, text, {k: hdrs.get(k) for k in ("access-control-allow-methods", "access-control-allow-origin",
                                                     "access-control-allow-headers", "access-control-max-age")}]


@check
def sockjs_xhr_streaming(t: Target) -> Any:
    path = sockjs_path(t, "xhr_streaming")
    status, ctype, data = t.http.stream(path, until=2049 + 2, timeout=2)
    return [status, ctype, data[:2048] == b"h" * 2048, data[2048:].decode()]


@check
def sockjs_xhr_streaming_messages(t: Target) -> Any:
    path = sockjs_path(t, "xhr_streaming")
    import threading

    out: list[Any] = []
    reader = threading.Thread(target=lambda: out.append(t.http.stream(path, until=1 << 20, timeout=2.5)))
    reader.start()
    time.sleep(0.5)
    xhr(t, path, "xhr_send", json.dumps([json.dumps({"method": "connect", "params": t.connect_params(t.user("alice"))})]))
    reader.join()
    status, ctype, data = out[0]
    return [status, data[2049:].decode()]


@check
def sockjs_xhr_streaming_api_disconnect(t: Target) -> Any:
    """A streaming client disconnected by the API gets the disconnect push, then `c[3000,"Go away!"]`."""
    import threading

    path = sockjs_path(t, "xhr_streaming")
    out: list[Any] = []
    reader = threading.Thread(target=lambda: out.append(t.http.stream(path, until=1 << 20, timeout=3)))
    reader.start()
    time.sleep(0.5)
    xhr(t, path, "xhr_send", json.dumps([json.dumps({"method": "connect", "params": t.connect_params(t.user("alice"))})]))
    time.sleep(0.5)
    t.api({"method": "disconnect", "params": {"user": t.user("alice")}})
    reader.join()
    status, ctype, data = out[0]
    return [status, data[2049:].decode()]


# ------------------------------------------------------------------------------------------------
# checks made of several small ones (each part with its own names)
# ------------------------------------------------------------------------------------------------
combined('api_missing_fields', api_empty_body, api_no_sign, api_no_data, api_empty_sign_and_data)
combined('api_unknown_project_order', api_unknown_project, api_unknown_project_checked_after_fields)
combined('api_bad_sign', api_wrong_sign, api_sign_checked_before_json)
combined('api_data_not_command_json', api_data_not_json, api_data_scalar)
combined('api_command_limit', api_101_commands, api_100_commands)
combined('api_reply_is_array', api_trailing_slash, api_single_object_gets_array, api_empty_array)
combined('api_command_schema', api_missing_params, api_params_not_object, api_element_not_object, api_method_not_string)
combined('api_publish_schema', api_publish_without_channel, api_publish_channel_wrong_type)
combined('api_publish_dropped', api_publish_unknown_namespace, api_publish_empty_channel)
combined('api_publish_params', api_publish_client_param_ignored, api_publish_without_data, api_publish_extra_params_ignored)
combined('api_presence_edge_cases', api_presence_empty, api_presence_unknown_namespace, api_presence_wrong_type)
combined('api_user_commands_schema', api_disconnect_unknown_user_and_schema, api_unsubscribe_schema, api_unsubscribe_unknown_user)
combined('ws_connect_refused', ws_connect_unknown_project, ws_connect_wrong_token)
combined('ws_before_connect', ws_ping_before_connect, ws_commands_before_connect)
combined('ws_command_schema', ws_command_without_params, ws_params_not_object, ws_method_not_string)
combined('ws_bad_frames_close', ws_101_commands_close, ws_scalar_frame_closes)
combined('sub_private_refused', sub_private_without_sign, sub_private_bad_sign)
combined('sub_channel_required', sub_channel_empty, sub_channel_missing_or_wrong_type)
combined('sockjs_info_and_options', sockjs_info, sockjs_info_options)
combined('ping_and_uid', ping_reply, ws_uid_not_echoed)


# ------------------------------------------------------------------------------------------------
# running and comparing
# ------------------------------------------------------------------------------------------------
_SIG = re.compile(r"(?<![0-9a-fA-F])[0-9a-f]{64}(?![0-9a-fA-F])")
_ID = re.compile(r"(?<![0-9a-fA-F])[0-9a-f]{32}(?![0-9a-fA-F])")
_NOW = re.compile(r"(?<![0-9])1[7-9][0-9]{8}(?![0-9])")
_ENTROPY = re.compile(r'"entropy": ?[0-9]+')


def normalize(value: Any, sfx: str) -> Any:
    """Random parts replaced: ids by order of appearance, times by `<now>`, the check's suffix by `<sfx>`."""
    ids: dict[str, str] = {}

    def text(s: str) -> str:
        s = s.replace(sfx, "<sfx>")
        s = _SIG.sub("<sign>", s)
        s = _ID.sub(lambda m: ids.setdefault(m.group(0), f"<id{len(ids) + 1}>"), s)
        s = _ENTROPY.sub('"entropy":<int>', s)
        return _NOW.sub("<now>", s)

    def walk(v: Any) -> Any:
        if isinstance(v, str):
            return text(v)
        if isinstance(v, (list, tuple)):
            return [walk(x) for x in v]
        if isinstance(v, dict):
            return {text(k): walk(x) for k, x in v.items()}
        return v

    return walk(value)


def run_check(base: str, name: str, fn: Callable[[Target], Any], run_id: str) -> Any:
    sfx = f"{run_id}{CHECK_INDEX[name]:03d}"
    t = Target(base, sfx)
    try:
        return normalize(fn(t), sfx)
    except Exception as exc:  # a check that breaks is an answer too
        return normalize(f"<check failed: {type(exc).__name__}: {exc}>", sfx)
    finally:
        t.close()


CHECK_INDEX = {name: i for i, (name, _) in enumerate(CHECKS)}


def run_all(base: str, workers: int = 8, only: list[str] | None = None) -> dict[str, Any]:
    """Every check against `base` (a few at a time); answers by check name, in check order."""
    run_id = "".join(random.choice(string.ascii_lowercase) for _ in range(5))
    todo = [(n, f) for n, f in CHECKS if not only or n in only]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        slow = {n: pool.submit(run_check, base, n, f, run_id) for n, f in todo if n in SLOW}
        fast = {n: pool.submit(run_check, base, n, f, run_id) for n, f in todo if n not in SLOW}
        results = {n: fut.result() for n, fut in {**fast, **slow}.items()}
    return {n: results[n] for n, _ in todo}


def compare(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """Names of the checks whose answers differ."""
    return [n for n in expected if n in actual and expected[n] != actual[n]]


def show(value: Any) -> str:
    return json.dumps(value, indent=1, ensure_ascii=False)


__all__ = ["CHECKS", "run_all", "compare", "normalize", "describe", "show"]
