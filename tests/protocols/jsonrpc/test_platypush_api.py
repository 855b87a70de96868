"""The JSON-RPC adapter as Platypush's users meet it: the reference document's examples run as written against
the shipped hub.toml, /auth with expiry_days, token lists and revocation (HTTP and `hub token`), and
registration with Platypush's form fields."""

from __future__ import annotations

import email.utils
import json
import time

import httpx
import jwt
import pytest
import trio
from trio_websocket import open_websocket_url

from tests.conftest import local_config, shipped_config
from tests.legacy_client import legacy_client

from .platypush_pkg import platypush_build
from .test_jsonrpc import CUSTOM, EXTRA, INVALID_CREDENTIALS, PASSWORD, curl, hub_cli_async, next_event, write_config, ws_url

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")


async def test_the_reference_examples_run_as_written_on_the_shipped_config(start_hub, tmp_path):
    """The document's curl/wscat examples, byte for byte where it shows them, against the committed hub.toml."""
    running = await start_hub(data=local_config(shipped_config(), tmp_path))
    url = running.url("jsonrpc")
    status, body = await curl("-XPOST", "-H", "Content-Type: application/json", "-d",
                              '{"username": "me", "password": "my password"}', f"{url}/register")
    assert status == 200 and body["status"] == "ok" and body["token"]
    # "Alternatively, you can retrieve a token via HTTP request"
    status, body = await curl("-XPOST", "-H", "Content-Type: application/json", "-d",
                              '\n{\n  "username": "me",\n  "password": "my password"\n}', f"{url}/auth")
    assert status == 200 and body["token"]
    token = body["token"]
    async with legacy_client(running.url("realtime")) as home:
        await home.connect("resident")
        await home.subscribe("public:home")
        # procedure.at_home as written: {"success": true}
        status, reply = await curl("-XPOST", "-d", '{"type":"request", "action":"procedure.at_home"}',
                                   "-H", f"Authorization: Bearer {token}", "-H", "Content-Type: application/json", f"{url}/execute")
        assert status == 200 and list(reply) == ["id", "type", "target", "origin", "_timestamp", "response",
                                                   "_logging_level"]
        assert reply["type"] == "response" and reply["target"] == "http" and len(reply["id"]) == 32
        assert reply["response"] == {"output": {"success": True}, "errors": []}
        assert (await home.next_push("message"))["body"]["data"] == {"event": "arrived", "who": "someone"}
        # the web hook: with the token {"status": "ok"} (and the procedure ran), without it 401
        status, body = await curl("-H", "X-Token: abcdefabcdef", f"{url}/hook/at_home")
        assert (status, body) == (200, {"status": "ok"})
        assert (await home.next_push("message"))["body"]["data"] == {"event": "arrived", "who": "someone"}
        status, _ = await curl("-H", "X-Token: wrong", f"{url}/hook/at_home")
        assert status == 401
    # /ws/requests with the document's message, procedure.foo.bar
    async with open_websocket_url(ws_url(running, "/ws/requests"), extra_headers=[("Authorization", f"Bearer {token}")]) as ws:
        await ws.send_message('{"type": "requests", "action": "procedure.foo.bar"}')
        with trio.fail_after(5):
            reply = json.loads(await ws.get_message())
        assert reply["type"] == "response" and reply["response"] == {"output": {"success": True}, "errors": []}
    # /ws/events: the document's event reaches a receiver and the sender
    event = ('\n{\n  "type": "event",\n  "args": {\n    "type": "platypush.message.event.custom.CustomEvent",\n'
             '    "subtype": "foo",\n    "args": {\n      "bar": "baz"\n    }\n  }\n}')
    headers = [("Authorization", f"Bearer {token}")]
    async with open_websocket_url(ws_url(running, "/ws/events"), extra_headers=headers) as receiver, \
            open_websocket_url(ws_url(running, "/ws/events"), extra_headers=headers) as sender:
        await trio.sleep(0.1)
        await sender.send_message(event)
        got = [await next_event(ws, CUSTOM, "foo") for ws in (receiver, sender)]
    assert got[0] == got[1] and got[0]["args"] == json.loads(event)["args"]
    (built,) = await platypush_build(got[:1], tmp_path)
    assert built["class"] == CUSTOM and built["args"] == {"subtype": "foo", "args": {"bar": "baz"}}


@pytest.fixture
async def rpc(start_hub, tmp_path):
    running = await start_hub(EXTRA)
    config = write_config(tmp_path, running)
    added = await hub_cli_async("user", "add", "alice", "--config", config, stdin=(PASSWORD + "\n").encode())
    assert added.returncode == 0, added.stderr
    return running, config


def claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


async def test_auth_expiry_days_and_token_endpoints(rpc):
    running, _ = rpc
    body = {"type": "request", "action": "hub.stats"}
    async with httpx.AsyncClient(base_url=running.url("jsonrpc")) as http:
        default = (await http.post("/auth", json={"username": "alice", "password": PASSWORD})).json()["token"]
        assert claims(default)["exp"] - claims(default)["iat"] == running.settings.adapters["jsonrpc"].token_ttl
        for days in (1, 0.5, 400):
            response = await http.post("/auth", json={"username": "alice", "password": PASSWORD, "expiry_days": days})
            c = claims(response.json()["token"])
            assert c["exp"] - c["iat"] == int(days * 86400) and response.json()["expires_at"] == c["exp"]
        zero = (await http.post("/auth", json={"username": "alice", "password": PASSWORD, "expiry_days": 0})).json()["token"]
        assert claims(zero)["exp"] - claims(zero)["iat"] == running.settings.adapters["jsonrpc"].token_ttl
        for bad in (-1, "7", True, 10**9):
            response = await http.post("/auth", json={"username": "alice", "password": PASSWORD, "expiry_days": bad})
            assert response.status_code == 400 and response.json()["error"] == "bad_request", bad
        # ?type=jwt, Platypush's legacy flavour (_jwt_auth): username and password required, no name, no session
        legacy = await http.post("/auth?type=jwt", json={"username": "alice", "password": PASSWORD, "name": "legacy"})
        assert legacy.status_code == 200 and claims(legacy.json()["token"])["sub"] == "alice"
        for bad in ({"username": "alice"}, [1], None):
            refused = await http.post("/auth?type=jwt", json=bad)
            assert refused.status_code == 400 and "<title>400 Bad Request</title>" in refused.text, bad
        empty = await http.post("/auth?type=jwt", json={"username": "", "password": ""})
        assert (empty.status_code, empty.json()) == (401, INVALID_CREDENTIALS)
        named = await http.post("/auth?type=token", json={"username": "alice", "password": PASSWORD, "name": "tasker",
                                                            "expiry_days": 2})
        token = named.json()["token"]
        same = await http.post("/auth", json={"username": "alice", "password": PASSWORD, "name": "tasker"})
        assert same.status_code == 400 and same.json() == {"code": 400, "error": "TOKEN_NAME_EXISTS",
                                                           "message": "A token with this name already exists"}
        who = await http.get("/auth", headers={"Authorization": f"Bearer {token}"})
        assert who.json() == {"status": "ok", "user_id": 1, "username": "alice"}
        assert (await http.get("/auth")).json() == INVALID_CREDENTIALS

        listed = (await http.get("/tokens", headers={"X-Token": token})).json()["tokens"]
        assert len(listed) == 7 and set(listed[0]) == {"id", "name", "created_at", "expires_at"}
        assert "legacy" not in [t["name"] for t in listed]
        assert listed[0]["name"] == "tasker" and [t["id"] for t in listed] == sorted((t["id"] for t in listed), reverse=True)
        assert all(t["name"].startswith("alice__") and len(t["name"]) == 15 for t in listed[1:])  # Platypush's default names
        created = email.utils.parsedate_to_datetime(listed[0]["created_at"]).timestamp()
        expires = email.utils.parsedate_to_datetime(listed[0]["expires_at"]).timestamp()
        assert abs(created - time.time()) < 60 and expires - created == 2 * 86400
        assert listed[0]["created_at"].endswith(" GMT")  # as Flask writes a datetime

        # DELETE /tokens by id: that token stops working, the others do not
        by_id = {t["name"]: t["id"] for t in listed}
        assert (await http.request("DELETE", "/tokens", json={"token_id": by_id["tasker"]},
                                   headers={"X-Token": default})).json() == {"status": "ok"}
        assert (await http.post("/execute", json=body, headers={"X-Token": token})).status_code == 401
        assert (await http.post("/execute", json=body, headers={"X-Token": default})).status_code == 200
        assert "tasker" not in [t["name"] for t in (await http.get("/tokens", headers={"X-Token": default})).json()["tokens"]]
        # DELETE /tokens and DELETE /auth with the token itself
        assert (await http.request("DELETE", "/tokens", json={"token": zero}, headers={"X-Token": default})).json() == {"status": "ok"}
        assert (await http.post("/execute", json=body, headers={"X-Token": zero})).status_code == 401
        assert (await http.request("DELETE", "/auth", json={"token": default})).json() == {"status": "ok"}
        assert (await http.post("/execute", json=body, headers={"X-Token": default})).status_code == 401
        invalid = {"code": 400, "error": "INVALID_JWT_TOKEN", "message": "Invalid token"}
        assert (await http.request("DELETE", "/auth", json={"token": default})).json() == invalid  # already revoked
        # DELETE /auth without a token logs out a browser session (the session_token cookie): none here
        invalid_session = {"code": 401, "error": "INVALID_CREDENTIALS", "message": "Invalid session"}
        assert (await http.request("DELETE", "/auth", json={})).json() == invalid_session
        assert (await http.request("DELETE", "/auth", content=b"not json")).json() == invalid_session
        fresh = (await http.post("/auth", json={"username": "alice", "password": PASSWORD})).json()["token"]
        assert (await http.request("DELETE", "/tokens", json={}, headers={"X-Token": fresh})).json() == invalid
        assert (await http.get("/tokens")).status_code == 401


async def test_hub_token_new_list_and_revoke(rpc):
    running, config = rpc
    body = {"type": "request", "action": "hub.stats"}
    made = await hub_cli_async("token", "alice", "--name", "script", "--ttl", "600", "--config", config)
    assert made.returncode == 0, made.stderr
    token = made.stdout.decode().strip()
    other = (await hub_cli_async("token", "new", "alice", "--config", config)).stdout.decode().strip()
    listed = await hub_cli_async("token", "list", "--config", config)
    lines = listed.stdout.decode().splitlines()
    assert lines[0].split() == ["ID", "USER", "NAME", "CREATED", "EXPIRES"] and len(lines) == 3
    assert lines[2].split()[:3] == ["1", "alice", "script"] and lines[1].split()[1] == "alice"
    assert (await hub_cli_async("token", "list", "alice", "--config", config)).stdout == listed.stdout
    async with httpx.AsyncClient(base_url=running.url("jsonrpc")) as http:
        assert (await http.post("/execute", json=body, headers={"X-Token": token})).status_code == 200
        assert [t["name"] for t in (await http.get("/tokens", headers={"X-Token": token})).json()["tokens"]][1] == "script"
        revoked = await hub_cli_async("token", "revoke", "1", "--config", config)
        assert revoked.returncode == 0 and revoked.stdout.decode().strip() == "revoked token 1 (script) of alice"
        assert (await http.post("/execute", json=body, headers={"X-Token": token})).status_code == 401
        by_value = await hub_cli_async("token", "revoke", other, "--config", config)
        assert by_value.returncode == 0 and "revoked a token of alice" in by_value.stdout.decode()
        assert (await http.post("/execute", json=body, headers={"X-Token": other})).status_code == 401
    for args, code, text in [(("token", "revoke", "1"), 1, b"no live token with id 1"),
                             (("token", "revoke", "x.y.z"), 1, b"not a live token"),
                             (("token", "revoke"), 2, b"give token ids"),
                             (("token", "list", "nobody"), 1, b"unknown user 'nobody'"),
                             (("token", "a", "b"), 2, b"expected hub token NAME")]:
        proc = await hub_cli_async(*args, "--config", config)
        assert proc.returncode == code and text in proc.stderr, (args, proc.stderr)
    assert (await hub_cli_async("token", "list", "--config", config)).stdout.decode().splitlines()[1:] == []


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
async def test_register_with_platypush_form_fields(start_hub, encoding):
    """Platypush's registration form: username, password, confirm_password, remember (as its web page posts it)."""
    running = await start_hub()
    url = running.url("jsonrpc")

    async def post(path: str, **fields: str) -> tuple[int, dict]:
        flag = "--data-urlencode" if encoding == "urlencoded" else "-F"
        args = [arg for k, v in fields.items() for arg in (flag, f"{k}={v}")]
        return await curl("-XPOST", *args, f"{url}{path}")

    assert await post("/register", password="pw", confirm_password="pw") == (
        400, {"code": 400, "error": "MISSING_USERNAME", "message": "Missing username"})
    assert await post("/register", username="root", confirm_password="pw") == (
        400, {"code": 400, "error": "MISSING_PASSWORD", "message": "Missing password"})
    assert await post("/register", username="root", password="pw") == (
        400, {"code": 400, "error": "PASSWORD_MISMATCH", "message": "Password mismatch"})
    assert await post("/auth?type=register", username="root", password="pw", confirm_password="pw2") == (
        400, {"code": 400, "error": "PASSWORD_MISMATCH", "message": "Password mismatch"})
    status, body = await post("/register", username="root", password="p&w=1 é", confirm_password="p&w=1 é", remember="on")
    assert status == 200 and body["status"] == "ok" and body["user_id"] == 1 and body["username"] == "root"
    assert body["session_token"] == body["token"] and body["redirect"] == "/" and len(body["csrf_token"]) == 32
    # `remember`: a 365-day session, as Platypush's; expires_at a date as Flask writes it
    expires = email.utils.parsedate_to_datetime(body["expires_at"]).timestamp()
    assert abs(expires - time.time() - 365 * 86400) < 60
    async with httpx.AsyncClient(base_url=url) as http:
        assert (await http.post("/execute", json={"type": "request", "action": "hub.stats"},
                                headers={"X-Token": body["token"]})).status_code == 200
        login = await http.post("/auth", json={"username": "root", "password": "p&w=1 é"})
        assert login.status_code == 200
    assert await post("/register", username="eve", password="pw", confirm_password="pw") == (
        401, {"code": 401, "error": "REGISTRATION_DISABLED", "message": "Registrations are disabled"})
