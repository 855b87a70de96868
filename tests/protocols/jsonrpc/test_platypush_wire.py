"""The JSON-RPC adapter's bytes against Platypush's own code (the `platypush` package from PyPI): /execute
envelopes and refusals, the auth endpoints' Flask spelling, werkzeug's pages, where tokens are read, events
posted to /execute and /ws/requests messages Platypush would drop."""

from __future__ import annotations

import email.utils
import json
import time

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from .platypush_pkg import platypush_build, platypush_render
from .test_jsonrpc import CUSTOM, PASSWORD, next_event, rpc, token_for, ws_url  # noqa: F401, F811 (rpc: a fixture)

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")


def json_error(body: bytes) -> str:
    """The text Platypush's /execute puts in its 400 page: `str(e)` of `json.loads(request.data.decode('utf-8'))`."""
    try:
        json.loads(body.decode("utf-8"))
    except ValueError as exc:
        return str(exc)
    raise AssertionError("valid JSON")


async def test_execute_answers_and_refusals_are_platypushs_bytes(rpc, tmp_path):  # noqa: F811
    running, _ = rpc
    token = await token_for(running)
    headers = {"X-Token": token}
    bad_json = [b"{nope", b"", b"\xff", b'{"type": "request",}']
    not_messages = [(b"[1, 2]", "Invalid message [type=<class 'list'>]: <[1, 2]>"),
                    (b'"x<y & \'z\'"', "Invalid message [type=<class 'str'>]: <x<y & 'z'>"),
                    (b'{"action": "hub.stats"}', "'type'"),
                    (b'{"type": "nope", "action": "hub.stats"}', "No module named 'platypush.message.nope'"),
                    (b'{"type": "request"}', "No action specified in the request"),
                    (b'{"type": "event"}', "'args'")]
    async with httpx.AsyncClient(base_url=running.url("jsonrpc")) as http:
        # Requests that ran: the envelope as Platypush's Response writes it (with `_logging_level`), the id echoed
        # whatever it is.
        replies = []
        for body in ({"type": "request", "action": "hub.channels", "id": 7},
                     {"type": "request", "action": "hub.nope", "id": "x" * 300},
                     {"type": "request", "action": "nodot"},
                     {"type": "request", "action": "hub.stats", "args": [1]}):
            response = await http.post("/execute", json=body, headers=headers)
            assert response.status_code == 200 and response.headers["content-type"] == "application/json"
            replies.append(response.text)
        built = await platypush_build(replies, tmp_path)
        for text, item in zip(replies, built, strict=True):
            assert item["raw"] == text  # Response.build(reply) written back by Platypush: the same bytes
        assert [json.loads(r)["id"] for r in replies[:2]] == [7, "x" * 300]
        assert [json.loads(r)["response"]["errors"] for r in replies[2:]] == [["No plugin name provided"],
                                                                             ['"args" must be an object']]
        # Bodies Platypush cannot read or build a message of: werkzeug's page with its exception's text (400).
        answers = [await http.post("/execute", content=body, headers=headers) for body in bad_json]
        answers += [await http.post("/execute", content=body, headers=headers) for body, _ in not_messages]
        # Auth refusals and the server's own 404 / 405.
        no_token = await http.post("/execute", json={"type": "request", "action": "hub.stats"})
        wrong = await http.post("/auth", json={"username": "alice", "password": "wrong"})
        no_session = await http.request("DELETE", "/auth", json={})
        bad_type = await http.post("/auth?type=nope", json={"username": "alice", "password": PASSWORD})
        bare = await http.post("/auth?type=jwt", json={"username": "alice"})  # _jwt_auth: abort(400)
        method = await http.get("/execute", headers=headers)
        missing = await http.get("/nowhere")
        # Flask's jsonify spelling of the auth endpoints' answers.
        issued = await http.post("/auth", json={"username": "alice", "password": PASSWORD, "name": "wire"})
        who = await http.get("/auth", headers=headers)
        listed = await http.get("/tokens", headers=headers)
        revoked = await http.request("DELETE", "/auth", json={"token": issued.json()["token"]})
    items = [("abort", [400, json_error(b)]) for b in bad_json] + [("abort", [400, text]) for _, text in not_messages]
    items += [("auth_status", "INVALID_CREDENTIALS")] * 2 + [("auth_status", "INVALID_SESSION"),
                                                            ("auth_status", "INVALID_AUTH_TYPE"), ("abort", [400])]
    items += [("jsonify", r.json()) for r in (issued, who, listed, revoked)]
    expected = await platypush_render(items, tmp_path)
    got = answers + [no_token, wrong, no_session, bad_type, bare, issued, who, listed, revoked, method, missing]
    assert len(got) == len(expected)
    for response, want in zip(got, expected, strict=True):
        assert (response.status_code, response.headers["content-type"], response.text) == \
            (want["status"], want["content_type"], want["body"]), response.request.url
    assert method.headers["allow"] == "POST"  # Flask adds OPTIONS, which the hub does not answer
    assert json.loads(revoked.text) == {"status": "ok"} and list(json.loads(who.text)) == ["status", "user_id", "username"]


async def test_tokens_are_read_where_platypush_reads_them(rpc):  # noqa: F811
    running, _ = rpc
    token = await token_for(running)
    stats = {"type": "request", "action": "hub.stats"}
    async with httpx.AsyncClient(base_url=running.url("jsonrpc")) as http:
        for headers, params, status in [
            ({"X-Token": token, "Authorization": "Bearer wrong"}, {}, 200),  # X-Token first
            ({"X-Token": "", "Authorization": f"Bearer {token}"}, {}, 401),  # an X-Token header is the token, even empty
            ({"Authorization": "Bearer wrong"}, {"token": token}, 401),  # one API token is tried, not the query too
            ({}, {"token": [token, "wrong"]}, 200),  # the first ?token=
            ({"X-Token": "wrong", "X-Session-Token": token}, {}, 200),  # then the session token
            ({"Authorization": "Bearer wrong"}, {"session_token": token}, 200),
            ({"Cookie": f"session_token={token}"}, {}, 401),  # not from a cookie on plain HTTP (CSRF)
        ]:
            response = await http.post("/execute", json=stats, headers=headers, params=params)
            assert response.status_code == status, (headers, params, response.text)
    # The web UI's websocket carries the session cookie (the handshake's Origin is checked).
    async with open_websocket_url(ws_url(running, "/ws/events"), extra_headers=[("Cookie", f"a=1; session_token={token}")]) as ws, \
            httpx.AsyncClient(base_url=running.url("jsonrpc")) as http:
        await trio.sleep(0.1)
        response = await http.post("/execute", headers={"X-Token": token},
                                   json={"type": "event", "args": {"type": CUSTOM, "subtype": "cookie"}})
        assert response.status_code == 200
        assert (await next_event(ws, CUSTOM, "cookie"))["args"] == {"type": CUSTOM, "subtype": "cookie"}
    async with open_websocket_url(ws_url(running, "/ws/events"), extra_headers=[("Cookie", "session_token=bad")]) as ws:
        with pytest.raises(ConnectionClosed) as info, trio.fail_after(5):
            await ws.get_message()
        assert (info.value.reason.code, info.value.reason.reason) == (1008, "Invalid credentials")


async def test_an_event_posted_to_execute_goes_to_every_listener(rpc, tmp_path):  # noqa: F811
    running, _ = rpc
    token = await token_for(running)
    event = {"type": "event", "id": "e1", "args": {"type": CUSTOM, "subtype": "posted", "n": 1}}
    async with open_websocket_url(ws_url(running, f"/ws/events?token={token}")) as ws, \
            httpx.AsyncClient(base_url=running.url("jsonrpc")) as http:
        await trio.sleep(0.1)
        response = await http.post("/execute", json=event, headers={"Authorization": f"Bearer {token}"})
        # send_message() posts the event and has no response to wait for: str({}).
        assert (response.status_code, response.text, response.headers["content-type"]) == (200, "{}", "application/json")
        got = await next_event(ws, CUSTOM, "posted")
    assert got["id"] == "e1" and got["args"] == event["args"] and list(got) == ["type", "target", "origin", "id",
                                                                                 "_timestamp", "args"]
    (built,) = await platypush_build([got], tmp_path)
    assert built["class"] == CUSTOM and built["as_dict"] == got


async def test_the_web_uis_session_flow(rpc, tmp_path):  # noqa: F811
    """POST /auth?type=login with Platypush's login form, the session cookie on GET /auth and on /ws/events, and
    API tokens made from the session with its CSRF token (Platypush's _session_auth, _auth_get, _create_token)."""
    running, _ = rpc
    url = running.url("jsonrpc")
    async with httpx.AsyncClient(base_url=url) as http:
        wrong = await http.post("/auth?type=login", data={"username": "alice", "password": "wrong"})
        as_json = await http.post("/auth?type=login", json={"username": "alice", "password": PASSWORD})  # forms only
        login = await http.post("/auth?type=login&redirect=/panel", data={"username": "alice", "password": PASSWORD})
        assert login.status_code == 200
        session = login.json()
        assert list(session) == ["csrf_token", "expires_at", "redirect", "session_token", "status", "user_id"]
        assert (session["status"], session["user_id"], session["redirect"]) == ("ok", 1, "/panel")
        ttl = running.settings.adapters["jsonrpc"].token_ttl
        assert abs(email.utils.parsedate_to_datetime(session["expires_at"]).timestamp() - time.time() - ttl) < 60
        remembered = (await http.post("/auth?type=login", data={"username": "alice", "password": PASSWORD,
                                                                "remember": "on"})).json()
        assert abs(email.utils.parsedate_to_datetime(remembered["expires_at"]).timestamp() - time.time() - 365 * 86400) < 60
        cookie = {"Cookie": f"session_token={session['session_token']}"}
        again = await http.post("/auth?type=login", headers=cookie)  # a live session answers itself
        who = await http.get("/auth", headers=cookie)
        assert again.json() == who.json() == {**session, "redirect": "/"}
        # An API token from the session: the cookie and its CSRF token, as the UI's token page asks for one.
        no_csrf = await http.post("/auth", json={"name": "ui"}, headers=cookie)
        bad_csrf = await http.post("/auth", json={"name": "ui"}, headers={**cookie, "X-CSRF-Token": "x"})
        made = await http.post("/auth", json={"name": "ui", "expiry_days": 1},
                               headers={**cookie, "X-CSRF-Token": session["csrf_token"]})
        assert made.status_code == 200
        ran = await http.post("/execute", json={"type": "request", "action": "hub.stats"},
                              headers={"Authorization": f"Bearer {made.json()['token']}"})
        assert ran.status_code == 200
        assert "ui" in [t["name"] for t in (await http.get("/tokens", headers={"X-Token": made.json()["token"]})).json()["tokens"]]
    expected = await platypush_render([("auth_status", "INVALID_CREDENTIALS")] * 2 + [("auth_status", "INVALID_CSRF")] * 2
                                      + [("jsonify", session), ("jsonify", who.json())], tmp_path)
    for response, want in zip([wrong, as_json, no_csrf, bad_csrf, login, who], expected[:6], strict=True):
        assert (response.status_code, response.text) == (want["status"], want["body"])


async def test_logout_ends_the_browser_session_as_platypush(rpc, tmp_path):  # noqa: F811
    """GET or POST /logout without a token: the session cookie's session ends, both cookies are cleared and the
    browser is sent on (routes/logout.py); with a token in a header, the hub's own use: that token is revoked."""
    running, _ = rpc
    async with httpx.AsyncClient(base_url=running.url("jsonrpc")) as http:
        login = await http.post("/auth?type=login", data={"username": "alice", "password": PASSWORD})
        cookie = {"Cookie": f"session_token={login.json()['session_token']}"}
        assert (await http.get("/auth", headers=cookie)).json()["session_token"]
        out = await http.get("/logout?redirect=/bye&redirect=/no", headers=cookie)
        assert (await http.get("/auth", headers=cookie)).status_code == 401  # the session is over
        here = running.url("jsonrpc") + "/page?a=1&b=<2>"
        referer = await http.post("/logout", headers={"Referer": here})
        default = await http.post("/logout")
        # Not an open redirect (Platypush follows any target): elsewhere goes to /login.
        for target in ("http://evil.example/", "//evil.example", "javascript:alert(1)", "/\\evil.example"):
            away = await http.get("/logout", params={"redirect": target})
            assert away.headers["location"] == "/login", target
        assert (await http.get("/logout", headers={"Referer": "https://evil.example/x"})).headers["location"] == "/login"
        token = await token_for(running)
        revoked = await http.post("/logout", headers={"X-Token": token})
        assert revoked.json() == {"revoked": True}
        assert (await http.post("/execute", json={"type": "request", "action": "hub.stats"},
                                headers={"X-Token": token})).status_code == 401
    expected = await platypush_render([("logout", "/bye"), ("logout", here), ("logout", "/login")], tmp_path)
    for response, want in zip([out, referer, default], expected[:3], strict=True):
        assert (response.status_code, response.headers["content-type"], response.text, response.headers["location"],
                response.headers.get_list("set-cookie")) == (want["status"], want["content_type"], want["body"],
                                                             want["location"], want["cookies"])
