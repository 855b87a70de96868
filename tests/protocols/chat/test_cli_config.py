"""`hub chat ...` against a running hub's database (changes apply at once), and the [chat] config checks."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio

from hub.adapters import adapter_registry
from hub.config import ConfigError, parse_settings
from tests.conftest import hub_config


async def hub_chat(tmp_path: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    """Run `python -m hub chat ARGS --config tmp_path/hub.toml`."""
    cfg = str(tmp_path / "cli.toml")
    return await trio.run_process([sys.executable, "-m", "hub", "chat", *args, "--config", cfg], stdin=stdin.encode(),
                                  capture_stdout=True, capture_stderr=True, check=False)


async def test_cli_manages_a_running_hub(chat_hub, tmp_path: Path):
    hub = await chat_hub()
    (tmp_path / "cli.toml").write_text(f'[projects.development]\nsecret = "s"\n[chat]\ndatabase = "{hub.db_path}"\n')

    r = await hub_chat(tmp_path, "user", "add", "sing", "--password-stdin", stdin="MySECRET\n")
    assert r.returncode == 0 and b"user sing added" in r.stdout, r.stderr
    r = await hub_chat(tmp_path, "user", "add", "sing", "--password", "x")
    assert r.returncode == 1 and b"already in use" in r.stderr
    url = hub.url
    async with httpx.AsyncClient(timeout=10) as client:
        login = await client.post(f"{url}/api/login", data={"user": "sing", "password": "MySECRET"})
        auth = {"X-Auth-Token": login.json()["data"]["authToken"], "X-User-Id": login.json()["data"]["userId"]}
        body = {"rooms": [{"name": "cli-room", "members": []}]}
        assert (await client.post(f"{url}/api/bulk/createRoom", headers=auth, json=body)).status_code == 403

        for args in (("role", "add", "builders", "--description", "may bulk-create"),
                     ("role", "grant", "builders", "bulk-create-c"), ("user", "grant", "sing", "builders")):
            r = await hub_chat(tmp_path, *args)
            assert r.returncode == 0, (args, r.stderr)
        # The running hub sees it at once: roles and permissions are read from the database per request.
        assert (await client.post(f"{url}/api/bulk/createRoom", headers=auth, json=body)).status_code == 200

        r = await hub_chat(tmp_path, "role", "list")
        assert b"builders\tbulk-create-c\tmay bulk-create" in r.stdout
        r = await hub_chat(tmp_path, "permissions")
        assert b"bulk-create-c\tadmin,builders\n" in r.stdout
        r = await hub_chat(tmp_path, "room", "list")
        assert b"\tcli-room\t0 message(s)\tsing" in r.stdout and b"GENERAL\tgeneral" in r.stdout
        r = await hub_chat(tmp_path, "user", "list")
        assert r.stdout.startswith(b"sing\t") and b"builders,user" in r.stdout

        r = await hub_chat(tmp_path, "role", "revoke", "builders", "bulk-create-c")
        assert r.returncode == 0
        body = {"rooms": [{"name": "cli-room-2"}]}
        assert (await client.post(f"{url}/api/bulk/createRoom", headers=auth, json=body)).status_code == 403

        r = await hub_chat(tmp_path, "user", "logout", "sing")
        assert r.returncode == 0 and b"1 token(s)" in r.stdout
        assert (await client.get(f"{url}/api/publicRooms", headers=auth)).status_code == 401
        r = await hub_chat(tmp_path, "user", "passwd", "sing", "--password-stdin", stdin="new-secret\n")
        assert r.returncode == 0
        assert (await client.post(f"{url}/api/login", data={"user": "sing", "password": "MySECRET"})).status_code == 401
        assert (await client.post(f"{url}/api/login", data={"user": "sing", "password": "new-secret"})).status_code == 200
        r = await hub_chat(tmp_path, "room", "add", "cli-room")
        assert r.returncode == 1 and b"exists" in r.stderr
        r = await hub_chat(tmp_path, "role", "remove", "admin")
        assert r.returncode == 1 and b"protected" in r.stderr
        r = await hub_chat(tmp_path, "user", "remove", "sing")
        assert r.returncode == 0
        assert (await client.post(f"{url}/api/login", data={"user": "sing", "password": "new-secret"})).status_code == 401


def test_config_checks():
    def settings(extra: str):
        return parse_settings(hub_config(extra), "<t>")

    s = settings("[chat]\nproject = \"development\"\nchannel_prefix = \"chat:\"\n[projects.development.namespaces.chat]\n")
    assert s.adapter("chat").channel_prefix == "chat:"
    for extra, key in (('[chat]\nproject = "nope"', "chat.project"),
                       ('[chat]\nchannel_prefix = "rooms:"', "chat.channel_prefix"),
                       ('[chat]\nchannel_prefix = "$chat."', "chat.channel_prefix"),
                       ('[chat]\ntoken_ttl = 0', "chat.token_ttl"),
                       ('[chat]\ntoken_ttl = "1h"', "chat.token_ttl"),
                       ('[chat]\ndatabse = "x.db"', "chat.databse")):
        with pytest.raises(ConfigError) as exc:
            settings(extra)
        assert exc.value.key == key, extra


def test_shipped_hub_toml_is_valid(tmp_path: Path):
    from hub.config import load_settings
    from tests.conftest import shipped_config

    (tmp_path / "hub.toml").write_text(shipped_config())  # as committed, not the working copy
    chat = load_settings(tmp_path / "hub.toml").adapter("chat")
    assert (chat.port, chat.database, chat.channel_prefix) == (3000, "data/chat.db", "chat:")


def test_unopenable_database_is_a_config_error(tmp_path: Path):
    (tmp_path / "blocker").write_text("a file where a directory should be")
    (tmp_path / "hub.toml").write_text('[projects.development]\nsecret = "s"\n'
                                       + "".join(f"[{n}]\nenabled = false\n" for n in adapter_registry() if n != "chat")
                                       + '[chat]\nport = 0\ndatabase = "blocker/chat.db"\n')
    r = subprocess.run([sys.executable, "-m", "hub", "run", "--config", "hub.toml"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2 and "chat.database: cannot open blocker/chat.db" in r.stderr, r.stderr


async def test_live_reload(chat_hub, tmp_path: Path):
    hub = await chat_hub("max_message_length = 100")
    await hub.add_user("alice")
    raw = copy.deepcopy(hub.running.settings.raw)
    raw["chat"].update(max_message_length=3, allow_registration=False, database=str(tmp_path / "other.db"))
    result = hub.running.reload(parse_settings(raw, "<reloaded>"))
    assert {"chat.max_message_length", "chat.allow_registration"} <= set(result["changed"])
    assert hub.running.settings.adapter("chat").database == str(hub.db_path)  # the database needs a restart
    async with httpx.AsyncClient() as client:
        auth = await hub.login(client, "alice")  # same database: alice still there
        await client.post(f"{hub.url}/api/rooms/GENERAL/join", headers=auth)
        r = await client.post(f"{hub.url}/api/rooms/GENERAL/send", headers=auth, json={"msg": "four"})
        assert r.status_code == 400 and "at most 3" in r.json()["message"]
        r = await client.post(f"{hub.url}/api/v1/users.register", json={"username": "x", "pass": "y"})
        assert r.status_code == 403
    assert not (tmp_path / "other.db").exists()
