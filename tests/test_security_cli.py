"""Secure defaults through the real entry points: `hub run` refuses NanoMQ's default stats credentials on a
host other than loopback (one line, exit 2), warns once per short secret and never lets PyJWT warn per token,
and `hub check-config --production` lists every problem of a configuration."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from trio_websocket import open_websocket_url

from protocols.realtime.tokens import make_token

from .conftest import shipped_config
from .test_first_hour import checkout, hub_run, stop

GOOD = f"""
[projects.prod]
secret = "{'s' * 40}"
api_keys = ["{'k' * 40}"]
[stats]
app_id = "ops"
app_secret = "{'p' * 40}"
[chat]
allow_registration = false
database = "chat.db"
[jsonrpc]
registration = false
users_file = "users.json"
[mqtt]
enabled = false
[dashboard]
password = "a long dashboard password"
"""


def hub(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hub", *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_default_stats_credentials_on_a_public_host_refuse_to_start(tmp_path: Path):
    (tmp_path / "hub.toml").write_text('[projects.p]\nsecret = "x"\n[stats]\nhost = "0.0.0.0"\nport = 0\n')
    proc = hub("run", cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hub: config error: hub.toml: stats.app_secret: "), proc.stderr
    assert "0.0.0.0" in lines[0] and "loopback" in lines[0]
    # --set of the credentials (or a loopback host) makes the same file start-able: checked without starting
    assert hub("check-config", cwd=tmp_path).returncode == 2


def test_check_config_production_lists_each_problem(tmp_path: Path):
    (tmp_path / "hub.toml").write_text(shipped_config())
    proc = hub("check-config", "--production", cwd=tmp_path)
    assert proc.returncode == 1
    problems = [line.strip() for line in proc.stderr.splitlines()[1:]]
    for key in ("stats.app_id/app_secret: the default credentials admin/public",
                "dashboard.password: the default password 'admin'",
                "chat.allow_registration:", "jsonrpc.registration:",
                "projects.development.secret: shorter than 32 bytes",
                "projects.development.api_keys[0]: shorter than 32 bytes",
                "stats.app_secret: shorter than 32 bytes"):
        assert any(key in p for p in problems), (key, problems)
    assert not any('"secret"' in p or "'public'" in p for p in problems)  # keys named, values not printed
    # without --production the shipped file is fine
    assert hub("check-config", cwd=tmp_path).returncode == 0

    (tmp_path / "good.toml").write_text(GOOD)
    proc = hub("check-config", "--production", "good.toml", cwd=tmp_path)
    assert proc.returncode == 0 and "production checks passed" in proc.stdout, proc.stderr

    (tmp_path / "public.toml").write_text(GOOD + '\n[realtime]\nhost = "0.0.0.0"\n')
    proc = hub("check-config", "--production", "public.toml", cwd=tmp_path)
    assert proc.returncode == 1
    assert "public.toml: realtime.host: '0.0.0.0' is reachable from other machines but the listener has no TLS" in proc.stderr


# The test signs its tokens with the short development secret itself: PyJWT's warning here is the test's, not the hub's.
@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
async def test_short_secrets_warned_once_and_pyjwt_never_warns_per_token(tmp_path: Path):
    cwd, _ = checkout(tmp_path)
    proc, lines, urls = hub_run(cwd)
    try:
        ws = urls["websocket clients"].replace("http://", "ws://") + "/connection/websocket"
        for user in ("alice", "bob", "carol"):  # HS256 tokens signed with the 6-byte development secret
            async with open_websocket_url(ws) as conn:
                await conn.send_message(json.dumps({"id": 1, "connect": {"token": make_token("secret", {"sub": user})}}))
                assert "connect" in json.loads(await conn.get_message())
        async with httpx.AsyncClient(base_url=urls["JSON-RPC"]) as http:  # JSON-RPC tokens: PyJWT encode and decode
            token = (await http.post("/register", json={"username": "root", "password": "pw"})).json()["token"]
            for _ in range(3):
                assert (await http.get("/auth", headers={"Authorization": f"Bearer {token}"})).status_code == 200
    finally:
        rest = stop(proc)
    log = "\n".join(lines) + rest
    assert "InsecureKeyLengthWarning" not in log and "HMAC key" not in log
    for key in ("projects.development.secret", "projects.development.api_keys[0]", "stats.app_secret"):
        assert log.count(f"{key} is shorter than 32 bytes") == 1, log
    assert "development-api-key" not in log and '"secret"' not in log


def test_sighup_reload_names_the_security_keys_it_changed_never_the_values(tmp_path: Path):
    import signal

    cwd, _ = checkout(tmp_path)
    proc, lines, urls = hub_run(cwd)
    try:
        config = cwd / "hub.toml"
        new_secret = "a-new-project-secret-that-is-long-enough-0042"
        config.write_text(config.read_text().replace('secret = "secret"', f'secret = "{new_secret}"', 1)
                          .replace("allow_anonymous = false", "allow_anonymous = true", 1))
        proc.send_signal(signal.SIGHUP)
        seen = []
        while not any("changed security settings" in line or "reload refused" in line for line in seen):
            line = proc.stderr.readline()
            assert line, "".join(seen)
            seen.append(line)
    finally:
        rest = stop(proc)
    (line,) = [line for line in seen if "changed security settings" in line]
    assert "projects.development.secret" in line and "realtime.allow_anonymous" in line
    assert new_secret not in "".join(seen) + rest
