"""The JSON-RPC users file as operators handle it: --password-stdin, 0600/0700 modes, backup, restore, a warning."""

import logging
import os
import stat

import httpx

from .test_jsonrpc import hub_cli_async, write_config

PASSWORD = "a long enough password"


async def test_password_stdin_modes_backup_and_restore(start_hub, tmp_path, caplog):
    running = await start_hub()
    config = write_config(tmp_path, running)
    users_file = running.settings.adapters["jsonrpc"].users_file
    added = await hub_cli_async("user", "add", "alice", "--password-stdin", "--config", config, stdin=PASSWORD.encode() + b"\n")
    assert added.returncode == 0, added.stderr
    assert stat.S_IMODE(os.stat(users_file).st_mode) == 0o600

    backup = tmp_path / "users.backup.json"
    done = await hub_cli_async("user", "backup", str(backup), "--config", config)
    assert done.returncode == 0 and b"1 user(s)" in done.stdout, done.stderr
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600

    refused = await hub_cli_async("user", "restore", str(backup), "--config", config)
    assert refused.returncode == 1 and b"a hub is running" in refused.stderr

    async with httpx.AsyncClient(base_url=running.url("jsonrpc")) as http:
        ok = await http.post("/auth", json={"username": "alice", "password": PASSWORD})
        assert ok.status_code == 200 and ok.json()["token"]

    removed = await hub_cli_async("user", "remove", "alice", "--config", config)
    assert removed.returncode == 0
    running.shutdown()
    await running.stopped()
    restored = await hub_cli_async("user", "restore", str(backup), "--config", config)
    assert restored.returncode == 0, restored.stderr
    listed = await hub_cli_async("user", "list", "--config", config)
    assert listed.stdout.split() == [b"alice"]
    bad = tmp_path / "not-users.json"
    bad.write_text("[1, 2]")
    rejected = await hub_cli_async("user", "restore", str(bad), "--config", config)
    assert rejected.returncode == 1 and b"not a users file" in rejected.stderr


async def test_new_data_directory_is_private_and_a_readable_file_is_warned(start_hub, tmp_path, caplog):
    users_file = tmp_path / "fresh" / "users.json"
    running = await start_hub(f'[jsonrpc]\nusers_file = "{users_file}"\n')
    config = write_config(tmp_path, running)
    assert (await hub_cli_async("user", "add", "bob", "--config", config, stdin=b"pw pw pw pw\n")).returncode == 0
    assert stat.S_IMODE(users_file.parent.stat().st_mode) == 0o700
    running.shutdown()
    await running.stopped()
    users_file.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="hub.jsonrpc"):
        await start_hub(f'[jsonrpc]\nusers_file = "{users_file}"\n')
    assert any("others may read it" in r.getMessage() for r in caplog.records)
