"""Running the chat for months: file modes, backup and restore, a full disk, a bounded WAL."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import trio

from protocols.chat import store

from .conftest import _HASH
from .test_cli_config import hub_chat


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_files_are_private(chat_hub, caplog):
    hub = await chat_hub()
    await hub.add_user("alice")
    db = hub.db_path
    assert mode(db.parent) == 0o700
    for suffix in ("", "-wal", "-shm", ".lock"):
        assert mode(Path(f"{db}{suffix}")) == 0o600, suffix
    assert not any("can be read by other users" in r.message for r in caplog.records)


async def test_readable_database_warning_at_start(start_hub, tmp_path: Path, caplog):
    db = tmp_path / "shared" / "chat.db"
    db.parent.mkdir()
    store.connect(db).close()
    os.chmod(db, 0o644)
    with caplog.at_level(logging.WARNING, logger="hub.chat"):
        await start_hub(f'[chat]\ndatabase = "{db}"\n')
    warnings = [r.message for r in caplog.records if "can be read by other users" in r.message]
    assert len(warnings) == 1 and str(db) in warnings[0]


async def test_backup_while_running_and_restore_only_when_stopped(chat_hub, tmp_path: Path):
    hub = await chat_hub()
    await hub.add_user("alice")
    (tmp_path / "cli.toml").write_text(f'[projects.development]\nsecret = "s"\n[chat]\ndatabase = "{hub.db_path}"\n')
    async with httpx.AsyncClient() as client:
        auth = await hub.login(client, "alice")
        for i in range(20):
            await client.post(f"{hub.url}/api/v1/chat.postMessage", headers=auth, json={"roomId": "GENERAL", "text": f"m{i}"})
    copy = tmp_path / "backup.db"
    r = await hub_chat(tmp_path, "backup", str(copy))
    assert r.returncode == 0 and b"backed up" in r.stdout, r.stderr
    assert mode(copy) == 0o600
    conn = sqlite3.connect(copy)
    assert conn.execute("SELECT count(*) FROM messages WHERE msg LIKE 'm%'").fetchone()[0] == 20
    conn.close()

    r = await hub_chat(tmp_path, "restore", str(copy))
    assert r.returncode == 1 and b"the hub is running" in r.stderr

    # Where no hub runs, restore works.
    target = tmp_path / "restored" / "chat.db"
    (tmp_path / "cli.toml").write_text(f'[projects.development]\nsecret = "s"\n[chat]\ndatabase = "{target}"\n')
    r = await hub_chat(tmp_path, "restore", str(copy))
    assert r.returncode == 0 and b"restored" in r.stdout, r.stderr
    conn = store.connect(target)
    assert conn.execute("SELECT count(*) FROM messages WHERE msg LIKE 'm%'").fetchone()[0] == 20
    conn.close()
    bad = tmp_path / "junk.db"
    bad.write_bytes(b"junk" * 1000)
    r = await hub_chat(tmp_path, "restore", str(bad))
    assert r.returncode == 1 and b"restore failed" in r.stderr


async def test_full_disk_answers_the_chat_error_and_recovers(chat_hub):
    hub = await chat_hub()
    await hub.add_user("alice")
    db = hub.service.db
    async with httpx.AsyncClient() as client:
        auth = await hub.login(client, "alice")
        pages = await db.call(lambda c: c.execute("PRAGMA page_count").fetchone()[0])
        await db.call(lambda c: c.execute(f"PRAGMA max_page_count = {pages}"))  # as if the disk were full
        failures = 0
        for i in range(200):
            r = await client.post(f"{hub.url}/api/v1/chat.postMessage", headers=auth,
                                  json={"roomId": "GENERAL", "text": f"filler {i} " + "x" * 2000})
            if r.status_code != 200:
                failures += 1
                body = r.json()
                assert r.status_code == 503 and body["success"] is False and body["errorType"] == "error-database-unavailable"
        assert failures > 0
        # Everything else keeps serving: reads, the info call, the other listeners.
        assert (await client.get(f"{hub.url}/api/v1/channels.info", params={"roomId": "GENERAL"}, headers=auth)).status_code == 200
        assert (await client.get(f"{hub.url}/api/info")).status_code == 200
        await db.call(lambda c: c.execute("PRAGMA max_page_count = 1073741823"))  # space is back
        r = await client.post(f"{hub.url}/api/v1/chat.postMessage", headers=auth, json={"roomId": "GENERAL", "text": "back"})
        assert r.status_code == 200 and r.json()["message"]["msg"] == "back"


async def test_wal_stays_bounded_under_sustained_writes(tmp_path: Path):
    """journal_size_limit + checkpoints keep the WAL small however many messages are written."""
    from protocols.chat.worker import DatabaseWorker

    path = tmp_path / "w.db"
    limit = 256 << 10
    worker = DatabaseWorker(str(path), journal_size_limit=limit, autocheckpoint_pages=64)
    await worker.start()
    try:
        alice = await worker.call(lambda c: store.create_user(c, "alice", _HASH, 1))
        largest = 0
        reader = sqlite3.connect(path)  # a concurrent reader (CLI, backup) holding snapshots now and then
        for batch in range(60):
            async with trio.open_nursery() as nursery:
                for i in range(50):
                    text = f"message {batch}/{i} " + "y" * 200
                    nursery.start_soon(lambda t=text: worker.call(lambda c: store.send(c, alice, "GENERAL", t, 1)))
            if batch % 10 == 0:
                reader.execute("SELECT count(*) FROM messages").fetchone()
            largest = max(largest, store.wal_bytes(path))
        reader.close()
        count = await worker.call(lambda c: c.execute("SELECT count(*) FROM messages").fetchone()[0])
        assert count == 3000
        # the WAL may pass the limit between checkpoints by at most a few checkpoint intervals
        assert largest < limit + 4 * 64 * 4096 + (1 << 20), largest
        assert store.wal_bytes(path) <= limit + 64 * 4096 * 4
    finally:
        await worker.stop()


def test_cli_password_commands_take_stdin(tmp_path: Path):
    """Every `hub chat` command that sets a password takes --password-stdin (and prompts otherwise)."""
    for command in (["user", "add"], ["user", "passwd"]):
        out = subprocess.run([sys.executable, "-m", "hub", "chat", *command, "--help"], capture_output=True, text=True)
        assert "--password-stdin" in out.stdout
