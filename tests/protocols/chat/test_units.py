"""Chat logic without sockets: parameters, shapes, passwords, the SQLite store and the DB worker."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
import trio
from argon2 import PasswordHasher

from protocols.chat import rcdata, store
from protocols.chat.model import (
    ChatError,
    Message,
    get_bool,
    get_int,
    get_str,
    iso,
    loads,
    message_obj,
    parse_body,
    parse_iso,
    password_digest,
    token_hash,
    v1_error,
    verify_password,
)
from protocols.chat.worker import DatabaseWorker

from .conftest import _HASH, PASSWORD


def test_parse_body_json_form_and_curl_quirks():
    assert parse_body(b'{"msg": "OK"}', "application/json") == {"msg": "OK"}
    # curl -d sends JSON with a form content type: it is still JSON.
    assert parse_body(b'{ "msg" : "OK" }', "application/x-www-form-urlencoded") == {"msg": "OK"}
    assert parse_body(b"{}", "application/x-www-form-urlencoded") == {}
    assert parse_body(b"password=My%20SECRET&user=sing", "application/x-www-form-urlencoded") == {"password": "My SECRET", "user": "sing"}
    assert parse_body(b"", "") == {}
    for body, ctype in ((b"{bad", "application/json"), (b"[1, 2]", "application/json"), (b"\xff\xfe", ""),
                        (b"x", "multipart/form-data")):
        with pytest.raises(ChatError) as exc:
            parse_body(body, ctype)
        assert exc.value.status == 400


def test_params_and_shapes():
    assert get_str({"user": "", "username": "bob"}, "user", "username") == "bob"
    assert get_str({}, "x", required=False) is None
    with pytest.raises(ChatError, match="'x' is required"):
        get_str({}, "x")
    with pytest.raises(ChatError):
        get_str({"x": 5}, "x")
    assert get_int({"count": "500"}, "count", 20, 1, 100) == 100
    assert get_int({}, "count", 20, 1, 100) == 20
    for bad in ("x", 1.5, True):
        with pytest.raises(ChatError):
            get_int({"count": bad}, "count", 20, 1, 100)
    assert get_bool({"b": "true"}, "b") is True and get_bool({}, "b", True) is True
    assert iso(1437834323542) == "2015-07-25T14:25:23.542Z"
    assert parse_iso("2015-07-25T14:25:23.542Z") == 1437834323542 and parse_iso("2015-07-25T14:25:23.542") == 1437834323542
    m = Message(1, "id1", "GENERAL", "u1", "sing", "OK", 1437834323542)
    assert message_obj(m) == {"_id": "id1", "rid": "GENERAL", "msg": "OK", "ts": "2015-07-25T14:25:23.542Z",
                              "u": {"_id": "u1", "username": "sing"}}
    assert v1_error(ChatError(400, "bad", "error-x")) == ({"success": False, "error": "bad", "errorType": "error-x"}, 400)
    assert v1_error(ChatError(401, "no"))[0] == {"status": "error", "message": "no"}


def test_passwords_and_tokens():
    assert _HASH.startswith("sha256:$argon2id$")  # argon2id of the SHA-256 digest Rocket.Chat's realtime login sends
    assert verify_password(_HASH, PASSWORD) == (True, None)
    assert verify_password(_HASH, "", digest=password_digest(PASSWORD)) == (True, None)
    assert verify_password(_HASH, "", digest=password_digest("wrong"))[0] is False
    assert verify_password(_HASH, "wrong")[0] is False
    assert verify_password(None, PASSWORD)[0] is False  # unknown user: still a full hash, never a match
    assert verify_password("not a hash", PASSWORD)[0] is False
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("pw")
    ok, upgraded = verify_password(weak, "pw")  # an older database's hash: upgraded to the digest scheme
    assert ok and upgraded and upgraded.startswith("sha256:$argon2id$") and "m=65536" in upgraded
    assert verify_password(weak, "", digest=password_digest("pw"))[0] is False  # cannot be checked with a digest
    assert len(token_hash("t")) == 64 and token_hash("t") != token_hash("u")


@pytest.fixture
def conn(tmp_path: Path):
    c = store.connect(tmp_path / "sub" / "t.db")
    yield c
    c.close()


def tx(conn, fn, *args, **kwargs):
    return store.transaction(conn, fn, *args, **kwargs)


def test_store_schema_pragmas_and_seed(conn, tmp_path: Path):
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    rooms, total = tx(conn, store.list_rooms)
    assert total == 1 and rooms[0].id == "GENERAL" and rooms[0].name == "general" and rooms[0].default
    assert [r["name"] for r in tx(conn, store.list_roles)] == sorted(rcdata.ROLES)
    assert set(tx(conn, store.permission_roles)) == set(rcdata.PERMISSIONS)  # every permission Rocket.Chat ships
    # Reopening does not seed again (a revoked default permission stays revoked).
    tx(conn, store.revoke, "user", "create-c")
    again = store.connect(tmp_path / "sub" / "t.db")
    assert tx(again, store.permission_roles)["create-c"] == ["admin", "bot", "app"]
    again.close()


def test_store_users_roles_permissions(conn):
    root = tx(conn, store.create_user, "root", _HASH, 1000)
    assert root.roles == ["admin", "user"]  # the first person on a server without an administrator becomes one
    alice = tx(conn, store.create_user, "alice", _HASH, 1000, email="a@example.com")
    assert alice.roles == ["user"]
    with pytest.raises(ChatError, match="already in use"):
        tx(conn, store.create_user, "ALICE", _HASH, 1000)
    with pytest.raises(ChatError, match="Email already exists"):
        tx(conn, store.create_user, "alice2", _HASH, 1000, email="A@example.com")
    with pytest.raises(ChatError, match="role not found"):
        tx(conn, store.create_user, "bob", _HASH, 1000, roles=["nope"])
    assert tx(conn, store.get_user, username="bob") is None  # rolled back whole
    assert tx(conn, store.login_user, "a@example.com").id == alice.id
    assert not tx(conn, store.has_permission, alice, "bulk-register-user")
    assert tx(conn, store.has_permission, alice, "create-c")
    tx(conn, store.create_role, "ops")
    tx(conn, store.grant, "ops", "bulk-register-user")
    tx(conn, store.add_user_role, alice.id, "ops")
    alice = tx(conn, store.get_user, user_id=alice.id)
    assert alice.roles == ["ops", "user"] and tx(conn, store.has_permission, alice, "bulk-register-user")
    with pytest.raises(ChatError, match="unknown permission"):
        tx(conn, store.grant, "ops", "fly")
    with pytest.raises(ChatError, match="protected"):
        tx(conn, store.delete_role, "user")
    with pytest.raises(ChatError, match="in use"):  # as Rocket.Chat: a role someone holds stays
        tx(conn, store.delete_role, "ops")
    tx(conn, store.remove_user_role, alice.id, "ops")
    tx(conn, store.delete_role, "ops")
    alice = tx(conn, store.get_user, user_id=alice.id)
    assert alice.roles == ["user"]
    assert tx(conn, store.has_permission, root, "access-permissions")
    with pytest.raises(ChatError, match="last administrator"):
        tx(conn, store.remove_user_role, root.id, "admin")


def test_store_tokens_and_cascade(conn):
    alice = tx(conn, store.create_user, "alice", _HASH, 1000, promote_first=False)
    tx(conn, store.issue_token, alice.id, "h1", 1000, 5000)
    assert tx(conn, store.authenticate, "h1", alice.id, 5999).id == alice.id
    for th, uid, now in (("h1", alice.id, 6000), ("h1", "other", 2000), ("h2", alice.id, 2000), (None, alice.id, 2000)):
        with pytest.raises(ChatError) as exc:
            tx(conn, store.authenticate, th, uid, now)
        assert exc.value.status == 401
    assert tx(conn, store.purge_tokens, 6000) == 1
    tx(conn, store.issue_token, alice.id, "h3", 1000, 5000)
    tx(conn, store.join, "GENERAL", alice.id, 1000)
    tx(conn, store.send, alice, "GENERAL", "hi", 1000)
    tx(conn, store.delete_user, "alice")
    assert conn.execute("SELECT count(*) FROM tokens").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM members").fetchone()[0] == 0
    assert [m.msg for m in tx(conn, store.history, "GENERAL")] == ["hi"]  # messages stay


def test_store_rooms_messages_history(conn):
    alice = tx(conn, store.create_user, "alice", _HASH, 1000, promote_first=False)
    bob = tx(conn, store.create_user, "bob", _HASH, 1000)
    assert tx(conn, store.is_member, "GENERAL", alice.id)  # new users join the default rooms
    tx(conn, store.leave, "GENERAL", alice.id)
    room = tx(conn, store.create_room, "dev", alice, 2000, ["bob"])
    assert room.usernames == ["alice", "bob"] and room.creator_name == "alice"
    with pytest.raises(ChatError) as exc:
        tx(conn, store.create_room, "DEV", alice, 2000)
    assert exc.value.error_type == "error-duplicate-channel-name"
    with pytest.raises(ChatError) as exc:
        tx(conn, store.send, alice, "nope", "x", 1)
    assert exc.value.status == 404
    with pytest.raises(ChatError) as exc:
        tx(conn, store.send, alice, "GENERAL", "x", 1)
    assert exc.value.status == 403
    for i in range(5):
        tx(conn, store.send, alice if i % 2 else bob, room.id, f"m{i}", 3000 + i)
    assert [m.msg for m in tx(conn, store.unread, room.id, alice.id, 2)] == ["m0", "m1"]
    assert [m.msg for m in tx(conn, store.unread, room.id, alice.id, 10)] == ["m2", "m3", "m4"]
    assert tx(conn, store.unread, room.id, alice.id, 10) == []
    assert [m.msg for m in tx(conn, store.history, room.id, count=2, offset=1)] == ["m3", "m2"]
    assert [m.msg for m in tx(conn, store.history, room.id, latest=3003, oldest=3001)] == ["m2"]
    assert [m.msg for m in tx(conn, store.history, room.id, latest=3003, oldest=3001, inclusive=True)] == ["m3", "m2", "m1"]
    assert [m.msg for m in tx(conn, store.recent, room.id, 2)] == ["m3", "m4"]
    assert tx(conn, store.room, None, "#dev").msgs == 5
    assert tx(conn, store.leave, room.id, bob.id) and not tx(conn, store.leave, room.id, bob.id)


async def test_worker_group_commit_isolates_failures_and_publishes_after_commit(tmp_path: Path):
    worker = DatabaseWorker(str(tmp_path / "w.db"))
    await worker.start()
    try:
        alice = await worker.call(lambda c: store.create_user(c, "alice", _HASH, 1))
        await worker.call(store.join, "GENERAL", alice.id, 1)
        committed: list[str] = []
        results: dict[int, object] = {}

        async def send(i: int) -> None:
            try:
                if i == 7:
                    await worker.call(lambda c: (store.add_message(c, "GENERAL", alice, "doomed", 1), store.room(c, "nope")))
                else:
                    _, m = await worker.call(lambda c: store.send(c, alice, "GENERAL", f"m{i}", 1),
                                             on_commit=lambda r: committed.append(r[1].msg))
                    results[i] = m.msg
            except ChatError as exc:
                results[i] = exc.status

        batches = worker.batches
        async with trio.open_nursery() as nursery:
            for i in range(40):
                nursery.start_soon(send, i)
        assert results[7] == 404 and len(results) == 40
        assert worker.batches - batches < 40  # several jobs shared a commit
        texts = [m.msg for m in await worker.call(store.recent, "GENERAL", 100)]
        assert "doomed" not in texts and sorted(texts) == sorted(f"m{i}" for i in range(40) if i != 7)
        assert committed == texts  # published in commit order, only what committed

        # A caller cancelled before the worker starts its job: the job is not executed (no commit without a reply).
        gate = threading.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(worker.call, lambda c: gate.wait(10))
            await trio.sleep(0.05)
            with trio.move_on_after(0.05):
                await worker.call(lambda c: store.send(c, alice, "GENERAL", "late", 1), on_commit=lambda r: committed.append("late"))
            gate.set()
        await worker.call(lambda c: None)
        assert committed[-1] != "late" and "late" not in [m.msg for m in await worker.call(store.recent, "GENERAL", 5)]
        # Once started, the cancelled caller waits for the commit (its on_commit runs).
        started = threading.Event()

        def slow(c: sqlite3.Connection) -> tuple[object, object]:
            started.set()
            gate.clear()
            gate.wait(0.2)
            return store.send(c, alice, "GENERAL", "kept", 1)

        with trio.move_on_after(0.05):
            await worker.call(slow, on_commit=lambda r: committed.append("kept"))
        assert committed[-1] == "kept"
    finally:
        await worker.stop()
    with pytest.raises(RuntimeError):
        await worker.call(lambda c: None)


async def test_worker_reports_open_errors(tmp_path: Path):
    (tmp_path / "file").write_text("x")
    worker = DatabaseWorker(str(tmp_path / "file" / "db.sqlite"))
    with pytest.raises(OSError):
        await worker.start()
    (tmp_path / "junk.db").write_bytes(b"not a database" * 100)
    worker = DatabaseWorker(str(tmp_path / "junk.db"))
    with pytest.raises(sqlite3.DatabaseError):
        await worker.start()


def test_lone_surrogates_in_json_read_as_replacement_characters():
    """An escaped lone surrogate is valid JSON; Rocket.Chat keeps it as U+FFFD (Node's UTF-8), SQLite would refuse it."""
    assert loads('{"msg": "a \\ud800 b", "k\\udfff": ["\\udc00"], "pair": "\\ud83d\\ude00", "n": 1}') == {
        "msg": "a \ufffd b", "k\ufffd": ["\ufffd"], "pair": "\U0001f600", "n": 1}
    assert loads('{"path": "C:\\\\ud800"}') == {"path": "C:\\ud800"}  # an escaped backslash, not a surrogate
    assert parse_body(b'{"text": "\\uDBFF!"}', "application/json") == {"text": "\ufffd!"}
    assert loads(b'{"msg": "\\ud800"}') == {"msg": "\ufffd"} and loads(b'{"msg": "x"}') == {"msg": "x"}  # a binary frame
    with pytest.raises(ValueError):
        loads("[" * 100_000)
