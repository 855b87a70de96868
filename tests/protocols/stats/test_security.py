"""The stats API cannot be used to take the hub over through its defaults: a posted config (req 10 `data`) is
refused unless `allow_config_upload = true`, default credentials stay on loopback, a reload names the security
keys it changed (never their values), and wrong Basic credentials are throttled by the hub's login limiter."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from hub.config import ConfigError, parse_settings
from protocols.realtime.tokens import make_token
from protocols.stats import api
from tests.conftest import SECRET, hub_config
from tests.login_helpers import Clock, metric

from .test_stats import posted_config

EVIL_SECRET = "attacker-chosen-secret-0123456789abcdef"
ADMIN = ("admin", "public")


def takeover_config(tmp_path) -> str:
    """The hub's own config, but anonymous SDK connects allowed and a project secret the attacker knows."""
    return posted_config(tmp_path, **{'secret = "secret"': f'secret = "{EVIL_SECRET}"',
                                      "[realtime]__port = 0": "[realtime]\nport = 0\nallow_anonymous = true"})


async def sdk_connect(running, params: dict) -> dict:
    """One `connect` of today's SDK protocol over a real websocket: the reply frame, or {"closed": code}."""
    url = running.url("realtime").replace("http://", "ws://") + "/connection/websocket"
    async with open_websocket_url(url) as ws:
        await ws.send_message(json.dumps({"id": 1, "connect": params}))
        try:
            with trio.fail_after(5):
                return json.loads((await ws.get_message()).split("\n")[0])
        except ConnectionClosed as exc:
            return {"closed": exc.reason.code}


async def test_req10_takeover_is_refused_with_the_defaults(start_hub, tmp_path, caplog):
    running = await start_hub()
    url = running.url("stats") + "/api/v1"
    async with httpx.AsyncClient() as http:
        with caplog.at_level(logging.WARNING):
            r = await http.post(url, auth=ADMIN, json={"req": 10, "seq": 7, "data": takeover_config(tmp_path)})
        assert r.status_code == 403 and r.json() == {"code": api.BAD_PARAMETER, "seq": 7, "rep": 10}
        assert "allow_config_upload" in r.headers["x-error"]
        assert any("allow_config_upload is false" in rec.getMessage() for rec in caplog.records)
        # nothing was applied: no anonymous connect, no token signed with the attacker's secret
        assert "connect" not in await sdk_connect(running, {})
        assert "connect" not in await sdk_connect(running, {"token": make_token(EVIL_SECRET, {"sub": "mallory"})})
        assert "connect" in await sdk_connect(running, {"token": make_token(SECRET, {"sub": "alice"})})
        # reloading the file stays allowed
        path = tmp_path / "hub.toml"
        path.write_text(posted_config(tmp_path))
        running.config_path = str(path)
        r = await http.post(url, auth=ADMIN, json={"req": 10, "seq": 8})
        assert r.status_code == 200 and r.json()["code"] == 0


async def test_posted_config_with_allow_config_upload_and_the_reload_names_changed_keys_only(start_hub, tmp_path, caplog):
    running = await start_hub("[stats]\nallow_config_upload = true\n")
    url = running.url("stats") + "/api/v1"
    async with httpx.AsyncClient() as http:
        with caplog.at_level(logging.INFO):
            r = await http.post(url, auth=ADMIN, json={"req": 10, "seq": 1, "data": takeover_config(tmp_path)})
        assert r.status_code == 200, r.headers.get("x-error")
        assert "connect" in await sdk_connect(running, {})
        assert "connect" in await sdk_connect(running, {"token": make_token(EVIL_SECRET, {"sub": "mallory"})})
    lines = [rec.getMessage() for rec in caplog.records]
    changed = [line for line in lines if "changed security settings" in line]
    assert len(changed) == 1 and "projects.development.secret" in changed[0] and "realtime.allow_anonymous" in changed[0]
    assert not any(EVIL_SECRET in line for line in lines)


async def test_reload_from_the_file_logs_changed_credentials_without_values(start_hub, tmp_path, caplog):
    running = await start_hub()
    path = tmp_path / "hub.toml"
    path.write_text(posted_config(tmp_path, **{"[stats]__port = 0": '[stats]\nport = 0\napp_id = "ops"\n'
                                               'app_secret = "a-much-longer-stats-secret-for-tests-0001"'}))
    running.config_path = str(path)
    with caplog.at_level(logging.INFO):
        running.reload_from_file()  # what SIGHUP does
    changed = [rec.getMessage() for rec in caplog.records if "changed security settings" in rec.getMessage()]
    assert changed and "stats.app_id" in changed[0] and "stats.app_secret" in changed[0]
    assert not any("a-much-longer-stats-secret" in rec.getMessage() for rec in caplog.records)


def test_default_credentials_only_on_loopback():
    parse_settings(hub_config('[stats]\nhost = "127.0.0.1"\n'), "<t>")
    parse_settings(hub_config('[stats]\nhost = "0.0.0.0"\napp_id = "ops"\napp_secret = "s3cret-s3cret"\n'), "<t>")
    with pytest.raises(ConfigError) as exc:
        parse_settings(hub_config('[stats]\nhost = "0.0.0.0"\n'), "<t>")
    assert str(exc.value).startswith("<t>: stats.app_secret: app_id/app_secret are the defaults admin/public")




async def test_eleven_wrong_secrets_then_the_right_one_is_refused_until_the_block_ends(start_hub, caplog):
    caplog.set_level(logging.WARNING)
    running = await start_hub("[login_limit]\nmax_failures_per_ip = 1000\n")
    clock = Clock()
    running.login_limiter.clock = clock
    url = running.url("stats") + "/api/v1"
    async with httpx.AsyncClient() as http:
        for i in range(11):
            r = await http.post(url, auth=("admin", f"guess-{i}"), json={"req": 2, "seq": 1})
            assert (r.status_code, r.json()) == ((401 if i < 10 else 429), {"code": api.WRONG_CREDENTIALS, "seq": 0})
        r = await http.post(url, auth=ADMIN, json={"req": 2, "seq": 1})
        assert r.status_code == 429 and r.json() == {"code": api.WRONG_CREDENTIALS, "seq": 0}
        assert r.headers["retry-after"] == "300" and "error-login-blocked-for-user" in r.headers["x-error"]
        # another AppID is not blocked (only this address's guesses at "admin")
        assert (await http.post(url, auth=("ops", "x"), json={"req": 2})).status_code == 401
        clock.now = 299
        assert (await http.post(url, auth=ADMIN, json={"req": 2, "seq": 1})).status_code == 429
        clock.now = 300
        r = await http.post(url, auth=ADMIN, json={"req": 2, "seq": 1})
        assert r.status_code == 200 and r.json()["code"] == 0
        text = (await http.get(running.url("stats") + "/metrics")).text
    assert metric(text, "hub_login_failures_total", adapter="stats") == 11
    assert metric(text, "hub_login_refused_total", adapter="stats", reason="user") == 3
    assert metric(text, "hub_login_blocks_total", reason="user") == 1
    blocked = [r.getMessage() for r in caplog.records if r.getMessage().startswith("logins blocked")]
    assert blocked == ["logins blocked for stats user 'admin' for 300 s after 10 failures in 300 s"]  # once, not per refusal


async def test_blocked_address_with_the_reference_curl(start_hub):
    running = await start_hub()
    running.login_limiter.clock = clock = Clock()
    url = running.url("stats") + "/api/v1"
    for i in range(10):
        proc = await trio.run_process(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--basic", "-u", f"u{i}:x",
                                       "-X", "POST", url, "-d", '{"req": 2}'], capture_stdout=True)
        assert proc.stdout == b"401"
    proc = await trio.run_process(["curl", "-s", "-i", "--basic", "-u", "admin:public", "-X", "POST", url, "-d", '{"req": 2}'],
                                  capture_stdout=True)
    head = proc.stdout.decode().lower()
    assert head.startswith("http/1.1 429") and "error-login-blocked-for-ip" in head and "retry-after: 300" in head
    clock.now = 300
    async with httpx.AsyncClient() as http:
        assert (await http.post(url, auth=ADMIN, json={"req": 2})).status_code == 200
