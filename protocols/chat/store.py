"""The chat's SQLite storage: schema and synchronous operations on one connection.

Every function takes the connection first and runs inside a transaction its caller opened (the
DB worker thread, or the CLI). Refusals are `ChatError`s, which roll back the operation. Lists
are queried a page at a time; what a page needs from other tables comes in one more query for the
whole page, never one per row.
"""

from __future__ import annotations

import hmac
import json
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from . import rcdata
from .model import (
    ADMIN_ROLE,
    GENERAL_ID,
    GENERAL_NAME,
    USER_ROLE,
    ChatError,
    Message,
    Room,
    User,
    bad_request,
    check_name,
    check_permission,
    check_role,
    forbidden,
    new_id,
    room_not_found,
    unauthorized,
)

T = TypeVar("T")
SCHEMA_VERSION = 2
BUSY_TIMEOUT_MS = 10_000
FILE_MODE = 0o600
DIR_MODE = 0o700

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE COLLATE NOCASE,
    name TEXT NOT NULL DEFAULT '',
    email TEXT UNIQUE COLLATE NOCASE,
    password_hash TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS roles (
    name TEXT PRIMARY KEY,
    description TEXT NOT NULL DEFAULT '',
    protected INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS user_roles (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role TEXT NOT NULL REFERENCES roles(name) ON DELETE CASCADE,
    PRIMARY KEY (user_id, role)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS user_roles_role ON user_roles (role);
CREATE TABLE IF NOT EXISTS role_permissions (
    role TEXT NOT NULL REFERENCES roles(name) ON DELETE CASCADE,
    permission TEXT NOT NULL,
    PRIMARY KEY (role, permission)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tokens (
    hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tokens_user ON tokens (user_id);
CREATE INDEX IF NOT EXISTS tokens_expiry ON tokens (expires_at);
CREATE TABLE IF NOT EXISTS rooms (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    type TEXT NOT NULL DEFAULT 'c',
    creator_id TEXT,
    creator_name TEXT,
    created_at INTEGER NOT NULL,
    is_default INTEGER NOT NULL DEFAULT 0,
    read_only INTEGER NOT NULL DEFAULT 0,
    msgs INTEGER NOT NULL DEFAULT 0,
    last_message_at INTEGER
);
CREATE TABLE IF NOT EXISTS members (
    room_id TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    joined_at INTEGER NOT NULL,
    PRIMARY KEY (room_id, user_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS members_user ON members (user_id);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    room_id TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL,
    username TEXT NOT NULL,
    msg TEXT NOT NULL,
    ts INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_room ON messages (room_id, seq);
CREATE TABLE IF NOT EXISTS read_markers (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    room_id TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    last_seq INTEGER NOT NULL,
    PRIMARY KEY (user_id, room_id)
) WITHOUT ROWID;
"""

# Schema 2: Rocket.Chat's wider model (room kinds, subscriptions, threads, reactions, files, settings...).
SCHEMA_2 = [
    "ALTER TABLE users ADD COLUMN status TEXT NOT NULL DEFAULT 'offline'",
    "ALTER TABLE users ADD COLUMN status_text TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE users ADD COLUMN status_default TEXT NOT NULL DEFAULT 'online'",
    "ALTER TABLE users ADD COLUMN avatar_url TEXT",
    "ALTER TABLE users ADD COLUMN preferences TEXT NOT NULL DEFAULT '{}'",
    "ALTER TABLE users ADD COLUMN last_login INTEGER",
    "ALTER TABLE users ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE users ADD COLUMN type TEXT NOT NULL DEFAULT 'user'",
    "ALTER TABLE roles ADD COLUMN scope TEXT NOT NULL DEFAULT 'Users'",
    "ALTER TABLE roles ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE rooms ADD COLUMN fname TEXT",
    "ALTER TABLE rooms ADD COLUMN topic TEXT",
    "ALTER TABLE rooms ADD COLUMN description TEXT",
    "ALTER TABLE rooms ADD COLUMN announcement TEXT",
    "ALTER TABLE rooms ADD COLUMN join_code TEXT",
    "ALTER TABLE rooms ADD COLUMN archived INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE rooms ADD COLUMN encrypted INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE rooms ADD COLUMN custom_fields TEXT NOT NULL DEFAULT '{}'",
    "ALTER TABLE rooms ADD COLUMN prid TEXT",
    "ALTER TABLE rooms ADD COLUMN team_id TEXT",
    "ALTER TABLE rooms ADD COLUMN team_main INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE rooms ADD COLUMN team_default INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE rooms ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE members ADD COLUMN roles TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE members ADD COLUMN open INTEGER NOT NULL DEFAULT 1",
    "ALTER TABLE members ADD COLUMN favorite INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE members ADD COLUMN unread INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE members ADD COLUMN mentions INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE members ADD COLUMN ls INTEGER",
    "ALTER TABLE members ADD COLUMN ignored TEXT NOT NULL DEFAULT '[]'",
    "ALTER TABLE members ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE messages ADD COLUMN name TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE messages ADD COLUMN t TEXT",
    "ALTER TABLE messages ADD COLUMN tmid TEXT",
    "ALTER TABLE messages ADD COLUMN extra TEXT NOT NULL DEFAULT '{}'",
    "ALTER TABLE messages ADD COLUMN reactions TEXT NOT NULL DEFAULT '{}'",
    "ALTER TABLE messages ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE messages ADD COLUMN edited_at INTEGER",
    "ALTER TABLE messages ADD COLUMN edited_by TEXT",
    "ALTER TABLE messages ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE messages ADD COLUMN tcount INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE messages ADD COLUMN tlm INTEGER",
    "ALTER TABLE messages ADD COLUMN drid TEXT",
    "ALTER TABLE messages ADD COLUMN deleted_at INTEGER",
    "CREATE INDEX IF NOT EXISTS messages_tmid ON messages (tmid, seq) WHERE tmid IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS messages_room_updated ON messages (room_id, updated_at)",
    "CREATE INDEX IF NOT EXISTS messages_room_ts ON messages (room_id, ts, seq)",
    "CREATE INDEX IF NOT EXISTS rooms_type ON rooms (type, created_at)",
    """CREATE TABLE IF NOT EXISTS permissions (
        id TEXT PRIMARY KEY, roles TEXT NOT NULL DEFAULT '[]', updated_at INTEGER NOT NULL DEFAULT 0)""",
    """CREATE TABLE IF NOT EXISTS stars (
        message_id TEXT NOT NULL, user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        room_id TEXT NOT NULL, PRIMARY KEY (message_id, user_id)) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS stars_user ON stars (user_id, room_id)",
    """CREATE TABLE IF NOT EXISTS mentions (
        user_id TEXT NOT NULL, room_id TEXT NOT NULL, seq INTEGER NOT NULL,
        PRIMARY KEY (user_id, room_id, seq)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS uploads (
        id TEXT PRIMARY KEY, room_id TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE, user_id TEXT NOT NULL,
        name TEXT NOT NULL, type TEXT NOT NULL, size INTEGER NOT NULL, description TEXT NOT NULL DEFAULT '',
        data BLOB NOT NULL, created_at INTEGER NOT NULL, confirmed INTEGER NOT NULL DEFAULT 0)""",
    "CREATE INDEX IF NOT EXISTS uploads_room ON uploads (room_id, created_at)",
    """CREATE TABLE IF NOT EXISTS docs (
        coll TEXT NOT NULL, id TEXT NOT NULL, doc TEXT NOT NULL, created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL, PRIMARY KEY (coll, id)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS settings (
        id TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at INTEGER NOT NULL DEFAULT 0)""",
]


# -- opening ----------------------------------------------------------------------------------
def _secure_path(path: Path) -> None:
    """Create the database's directory 0700 (parents too) and the file itself 0600 if it is new."""
    parent = path.parent
    if not parent.exists():
        parent.mkdir(parents=True, mode=DIR_MODE, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, FILE_MODE)
        os.close(fd)


def readable_by_others(path: str | os.PathLike[str]) -> list[str]:
    """The database files (main, -wal, -shm) that group or others may read."""
    found = []
    for suffix in ("", "-wal", "-shm"):
        p = Path(f"{path}{suffix}")
        try:
            if p.stat().st_mode & 0o077:
                found.append(str(p))
        except OSError:
            pass
    return found


def lock_path(path: str | os.PathLike[str]) -> Path:
    return Path(f"{path}.lock")


def hold_lock(path: str | os.PathLike[str], *, exclusive: bool) -> int | None:
    """Lock the database's lock file (shared: a running hub; exclusive: a restore). The fd, or None if taken."""
    import fcntl

    if str(path) == ":memory:":
        return None
    Path(path).parent.mkdir(parents=True, mode=DIR_MODE, exist_ok=True)
    fd = os.open(lock_path(path), os.O_CREAT | os.O_RDWR, FILE_MODE)
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def backup(path: str | os.PathLike[str], target: str | os.PathLike[str]) -> int:
    """Copy the database consistently (SQLite's online backup API; safe while the hub runs). Returns its pages."""
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
    target = Path(target)
    tmp = target.with_name(target.name + ".partial")
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, FILE_MODE)
    os.close(fd)
    try:
        dest = sqlite3.connect(tmp)
        try:
            source.backup(dest)
            dest.execute("PRAGMA journal_mode = DELETE")
            pages = dest.execute("PRAGMA page_count").fetchone()[0]
        finally:
            dest.close()
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        source.close()
    return pages


def restore(backup_file: str | os.PathLike[str], path: str | os.PathLike[str]) -> int:
    """Put a backup in place of the database. The caller holds the exclusive lock (the hub is stopped)."""
    check = sqlite3.connect(f"file:{backup_file}?mode=ro", uri=True)
    try:
        if check.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            raise sqlite3.DatabaseError(f"{backup_file} is damaged (integrity_check failed)")
        version = check.execute("PRAGMA user_version").fetchone()[0]
        if not 1 <= version <= SCHEMA_VERSION or not check.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'messages'").fetchone():
            raise sqlite3.DatabaseError(f"{backup_file} is not a chat database this hub can read")
        dest = connect(path)
        try:
            check.backup(dest)
            pages = dest.execute("PRAGMA page_count").fetchone()[0]
            dest.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            dest.close()
    finally:
        check.close()
    return pages


def wal_bytes(path: str | os.PathLike[str]) -> int:
    try:
        return Path(f"{path}-wal").stat().st_size
    except OSError:
        return 0


def connect(path: str | os.PathLike[str], *, journal_size_limit: int = 64 << 20,
            autocheckpoint_pages: int = 1000) -> sqlite3.Connection:
    """Open (creating parent directories and the schema) the database at `path`.

    WAL journal, synchronous=FULL (a commit is on disk before it returns, so an acknowledged
    write survives a crash or power loss), foreign keys on, autocommit mode: callers BEGIN.
    New files are created 0600 in a 0700 directory (the WAL and SHM files inherit the mode).
    """
    memory = str(path) == ":memory:"
    if not memory:
        _secure_path(Path(path))
    old_umask = os.umask(0o077)
    try:
        conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
    finally:
        os.umask(old_umask)
    try:
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal" and not memory:
            raise sqlite3.OperationalError(f"cannot switch {path} to WAL (journal_mode is {mode})")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute(f"PRAGMA journal_size_limit = {int(journal_size_limit)}")
        conn.execute(f"PRAGMA wal_autocheckpoint = {int(autocheckpoint_pages)}")
        _migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _migrate(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(f"database schema {version} is newer than this hub's ({SCHEMA_VERSION})")
        if version < 1:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
        if version < 2:
            for statement in SCHEMA_2:
                conn.execute(statement)
            _seed(conn, upgrade=version == 1)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _seed(conn: sqlite3.Connection, *, upgrade: bool) -> None:
    """What a new database starts with, as Rocket.Chat starts: its roles, its permissions, its settings, GENERAL.

    An upgraded database keeps the grants it had (added to the shipped defaults) and its members
    become members of GENERAL.
    """
    now = int(time.time() * 1000)
    for role, (scope, description) in rcdata.ROLES.items():
        conn.execute("INSERT INTO roles (name, description, protected, scope, updated_at) VALUES (?, ?, 1, ?, ?) "
                     "ON CONFLICT (name) DO UPDATE SET protected = 1, scope = excluded.scope",
                     (role, description, scope, now))
    granted: dict[str, list[str]] = {}
    for row in conn.execute("SELECT role, permission FROM role_permissions ORDER BY role"):
        granted.setdefault(row[1], []).append(row[0])
    for permission, roles in rcdata.PERMISSIONS.items():
        merged = list(dict.fromkeys([*roles, *granted.pop(permission, [])]))
        conn.execute("INSERT INTO permissions (id, roles, updated_at) VALUES (?, ?, ?)", (permission, json.dumps(merged), now))
    conn.execute("DELETE FROM role_permissions")
    conn.execute("INSERT OR IGNORE INTO rooms (id, name, type, created_at, is_default) VALUES (?, ?, 'c', ?, 1)",
                 (GENERAL_ID, GENERAL_NAME, now))
    conn.execute("UPDATE rooms SET fname = name, updated_at = created_at WHERE fname IS NULL")
    conn.execute("UPDATE messages SET updated_at = ts WHERE updated_at = 0")
    if upgrade:
        conn.execute("INSERT OR IGNORE INTO members (room_id, user_id, joined_at) SELECT ?, id, ? FROM users", (GENERAL_ID, now))


def transaction(conn: sqlite3.Connection, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run `fn(conn, ...)` in its own IMMEDIATE transaction (the CLI's way); commit, or roll back on error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn, *args, **kwargs)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


def _placeholders(n: int) -> str:
    return ",".join("?" * n)


def _json(text: str | None, default: Any) -> Any:
    if not text:
        return default
    if text == "{}":
        return {}
    if text == "[]":
        return []
    try:
        return json.loads(text)
    except ValueError:
        return default


# -- users ------------------------------------------------------------------------------------
def _user_from(row: sqlite3.Row, roles: list[str]) -> User:
    keys = row.keys()
    user = User(row["id"], row["username"], row["name"], row["email"], bool(row["active"]), row["created_at"],
                roles, row["password_hash"])
    if "status" in keys:
        user.status = row["status"]
        user.status_text = row["status_text"]
        user.status_default = row["status_default"]
        user.avatar_url = row["avatar_url"]
        user.preferences = _json(row["preferences"], {})
        user.last_login = row["last_login"]
        user.updated_at = row["updated_at"] or row["created_at"]
        user.type = row["type"]
    return user


def _users(conn: sqlite3.Connection, rows: Sequence[sqlite3.Row]) -> list[User]:
    """Users for rows of `users`, with their roles fetched in one query for all of them."""
    if not rows:
        return []
    ids = [r["id"] for r in rows]
    roles: dict[str, list[str]] = {i: [] for i in ids}
    for r in conn.execute(f"SELECT user_id, role FROM user_roles WHERE user_id IN ({_placeholders(len(ids))}) ORDER BY role", ids):
        roles[r[0]].append(r[1])
    return [_user_from(r, roles[r["id"]]) for r in rows]


def _user(conn: sqlite3.Connection, row: sqlite3.Row | None) -> User | None:
    return _users(conn, [row])[0] if row is not None else None


def get_user(conn: sqlite3.Connection, *, user_id: str | None = None, username: str | None = None,
             email: str | None = None) -> User | None:
    if user_id is not None:
        row = conn.execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone()
    elif email is not None:
        row = conn.execute("SELECT * FROM users WHERE email = ?", (email,)).fetchone()
    else:
        row = conn.execute("SELECT * FROM users WHERE username = ?", (username,)).fetchone()
    return _user(conn, row)


def find_user(conn: sqlite3.Connection, who: str) -> User:
    """A user by id or username; ChatError 400 if there is none."""
    user = get_user(conn, user_id=who) or get_user(conn, username=who)
    if user is None:
        raise bad_request(f"user not found: {who}", "error-invalid-user")
    return user


def login_user(conn: sqlite3.Connection, login: str) -> User | None:
    """The user a login names: username, or email if it has an @."""
    if "@" in login:
        user = get_user(conn, email=login)
        if user is not None:
            return user
    return get_user(conn, username=login)


def has_admin(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM user_roles ur JOIN users u ON u.id = ur.user_id "
                        "WHERE ur.role = ? AND u.type = 'user' LIMIT 1", (ADMIN_ROLE,)).fetchone() is not None


def create_user(conn: sqlite3.Connection, username: str, password_hash: str, now: int, *, name: str = "",
                email: str | None = None, roles: Iterable[str] = (USER_ROLE,), active: bool = True,
                user_type: str = "user", join_default: bool = True, uid: str | None = None,
                promote_first: bool = True) -> User:
    """Add a user with `roles` (each must exist); ChatError 400 if the username or email is taken.

    As on Rocket.Chat: a person created while no administrator exists becomes one (the first user
    of a new server), and new users join the default rooms (GENERAL).
    """
    check_name(username, "username")
    if get_user(conn, username=username) is not None:
        raise bad_request(f"Username is already in use: {username}", "error-field-unavailable")
    if email and conn.execute("SELECT 1 FROM users WHERE email = ?", (email,)).fetchone():
        raise bad_request(f"Email already exists: {email}", "error-field-unavailable")
    roles = list(dict.fromkeys(roles))
    if promote_first and user_type == "user" and ADMIN_ROLE not in roles and not has_admin(conn):
        roles.append(ADMIN_ROLE)
    uid = uid or new_id()
    conn.execute("INSERT INTO users (id, username, name, email, password_hash, active, created_at, updated_at, type) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 (uid, username, name or "", email or None, password_hash, int(active), now, now, user_type))
    for role in roles:
        add_user_role(conn, uid, role)
    if join_default:
        conn.execute("INSERT OR IGNORE INTO members (room_id, user_id, joined_at, ls, updated_at) "
                     "SELECT id, ?, ?, ?, ? FROM rooms WHERE is_default = 1 AND type IN ('c', 'p') AND archived = 0",
                     (uid, now, now, now))
    user = get_user(conn, user_id=uid)
    assert user is not None
    return user


def update_user(conn: sqlite3.Connection, user_id: str, now: int, **fields: Any) -> User:
    """Change username, name, email, password_hash, active, status..., avatar_url, preferences (JSON-encoded here)."""
    columns = {"username", "name", "email", "password_hash", "active", "status", "status_text", "status_default",
               "avatar_url", "preferences", "last_login"}
    sets, args = [], []
    for key, value in fields.items():
        if key not in columns:
            raise ValueError(key)
        if key == "username":
            check_name(value, "username")
            other = get_user(conn, username=value)
            if other is not None and other.id != user_id:
                raise bad_request(f"{value} is already in use :(", "error-field-unavailable")
            conn.execute("UPDATE messages SET username = ? WHERE user_id = ?", (value, user_id))
        if key == "email" and value:
            row = conn.execute("SELECT id FROM users WHERE email = ?", (value,)).fetchone()
            if row is not None and row[0] != user_id:
                raise bad_request(f"{value} is already in use :(", "error-field-unavailable")
        if key == "preferences":
            value = json.dumps(value)
        if key == "active":
            value = int(bool(value))
        sets.append(f"{key} = ?")
        args.append(value)
    if sets:
        conn.execute(f"UPDATE users SET {', '.join(sets)}, updated_at = ? WHERE id = ?", (*args, now, user_id))
    user = get_user(conn, user_id=user_id)
    if user is None:
        raise bad_request("User not found.", "error-invalid-user")
    return user


def owned_rooms_blocking_delete(conn: sqlite3.Connection, user_id: str) -> tuple[list[str], list[str]]:
    """(rooms where the user is the only owner and others remain, rooms where the user is the only member)."""
    rows = conn.execute(
        "SELECT m.room_id, "
        " (SELECT count(*) FROM members o WHERE o.room_id = m.room_id AND o.user_id != m.user_id "
        "   AND (' ' || o.roles || ' ') LIKE '% owner %') AS owners, "
        " (SELECT count(*) FROM members o WHERE o.room_id = m.room_id AND o.user_id != m.user_id) AS others "
        "FROM members m WHERE m.user_id = ? AND (' ' || m.roles || ' ') LIKE '% owner %'", (user_id,)).fetchall()
    blocking = [r[0] for r in rows if r["owners"] == 0 and r["others"] > 0]
    alone = [r[0] for r in rows if r["others"] == 0]
    return blocking, alone


def delete_user(conn: sqlite3.Connection, who: str, *, confirm_relinquish: bool = True) -> User:
    """Remove a user with their tokens, roles, memberships and read markers (their messages stay).

    As Rocket.Chat: refused ("user-last-owner") while the user is the only owner of a room that others
    are still in, unless `confirm_relinquish` (then the longest-standing member becomes owner); rooms the
    user is alone in go with them.
    """
    user = find_user(conn, who)
    blocking, alone = owned_rooms_blocking_delete(conn, user.id)
    if blocking and not confirm_relinquish:
        raise bad_request("The user is the last owner of a room: set a new owner or confirm relinquishing",
                          "user-last-owner")
    for rid in blocking:
        heir = conn.execute("SELECT user_id FROM members WHERE room_id = ? AND user_id != ? ORDER BY joined_at LIMIT 1",
                            (rid, user.id)).fetchone()
        if heir is not None:
            add_member_role(conn, rid, heir[0], "owner")
    for rid in alone:
        if rid != GENERAL_ID:
            conn.execute("DELETE FROM rooms WHERE id = ?", (rid,))
    conn.execute("DELETE FROM users WHERE id = ?", (user.id,))
    conn.execute("DELETE FROM stars WHERE user_id = ?", (user.id,))
    return user


def set_password(conn: sqlite3.Connection, user_id: str, password_hash: str) -> None:
    conn.execute("UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user_id))


def list_users(conn: sqlite3.Connection, offset: int = 0, count: int = 0, *, text: str | None = None,
               role: str | None = None, active_only: bool = False) -> tuple[list[User], int]:
    where, args = ["1 = 1"], []
    if text:
        where.append("(username LIKE ? ESCAPE '\\' OR name LIKE ? ESCAPE '\\')")
        like = f"%{_like(text)}%"
        args += [like, like]
    if role:
        where.append("id IN (SELECT user_id FROM user_roles WHERE role = ?)")
        args.append(role)
    if active_only:
        where.append("active = 1")
    clause = " AND ".join(where)
    total = conn.execute(f"SELECT count(*) FROM users WHERE {clause}", args).fetchone()[0]
    limit = count if count > 0 else -1
    rows = conn.execute(f"SELECT * FROM users WHERE {clause} ORDER BY username LIMIT ? OFFSET ?", (*args, limit, offset)).fetchall()
    return _users(conn, rows), total


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# -- roles and permissions --------------------------------------------------------------------
def _require_role(conn: sqlite3.Connection, role: str) -> None:
    if conn.execute("SELECT 1 FROM roles WHERE name = ?", (role,)).fetchone() is None:
        raise bad_request(f"role not found: {role}", "error-role-not-found")


def add_user_role(conn: sqlite3.Connection, user_id: str, role: str) -> bool:
    """Give a user a role (which must exist). False if they had it."""
    _require_role(conn, role)
    cur = conn.execute("INSERT OR IGNORE INTO user_roles (user_id, role) VALUES (?, ?)", (user_id, role))
    return cur.rowcount > 0


def remove_user_role(conn: sqlite3.Connection, user_id: str, role: str) -> bool:
    _require_role(conn, role)
    if role == ADMIN_ROLE:
        admins = conn.execute("SELECT user_id FROM user_roles WHERE role = ?", (ADMIN_ROLE,)).fetchall()
        if [r[0] for r in admins] == [user_id]:
            raise bad_request("cannot remove the last administrator", "error-action-not-allowed")
    cur = conn.execute("DELETE FROM user_roles WHERE user_id = ? AND role = ?", (user_id, role))
    return cur.rowcount > 0


def permission_roles(conn: sqlite3.Connection) -> dict[str, list[str]]:
    """permission → the roles that hold it, as stored (Rocket.Chat's shipped ones and every update)."""
    return {row[0]: _json(row[1], []) for row in conn.execute("SELECT id, roles FROM permissions ORDER BY id")}


def permissions_since(conn: sqlite3.Connection, since: int | None) -> list[tuple[str, list[str], int]]:
    sql, args = "SELECT id, roles, updated_at FROM permissions", ()
    if since is not None:
        sql, args = sql + " WHERE updated_at > ?", (since,)
    return [(r[0], _json(r[1], []), r[2]) for r in conn.execute(sql + " ORDER BY id", args)]


def list_roles(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every role with its description, scope, whether it is protected, and its permissions (one pass over the table)."""
    held: dict[str, list[str]] = {}
    for permission, roles in permission_roles(conn).items():
        for role in roles:
            held.setdefault(role, []).append(permission)
    return [{"name": row["name"], "description": row["description"], "protected": bool(row["protected"]),
             "scope": row["scope"], "updated_at": row["updated_at"], "permissions": held.get(row["name"], [])}
            for row in conn.execute("SELECT * FROM roles ORDER BY name")]


def get_role(conn: sqlite3.Connection, name: str) -> dict[str, Any]:
    for role in list_roles(conn):
        if role["name"] == name:
            return role
    raise bad_request(f"role not found: {name}", "error-role-not-found")


def create_role(conn: sqlite3.Connection, role: str, description: str = "", scope: str = "Users", now: int = 0) -> bool:
    """Add a role; False if it exists."""
    check_role(role)
    if scope not in ("Users", "Subscriptions"):
        raise bad_request("scope must be Users or Subscriptions", "error-invalid-scope")
    cur = conn.execute("INSERT OR IGNORE INTO roles (name, description, scope, updated_at) VALUES (?, ?, ?, ?)",
                       (role, description, scope, now))
    return cur.rowcount > 0


def delete_role(conn: sqlite3.Connection, role: str) -> None:
    _require_role(conn, role)
    if conn.execute("SELECT protected FROM roles WHERE name = ?", (role,)).fetchone()[0]:
        raise bad_request(f"role {role} is protected", "error-action-not-allowed")
    if conn.execute("SELECT 1 FROM user_roles WHERE role = ? LIMIT 1", (role,)).fetchone():
        raise bad_request("Cannot delete role because it's in use", "error-role-in-use")
    conn.execute("DELETE FROM roles WHERE name = ?", (role,))
    for permission, roles in permission_roles(conn).items():
        if role in roles:
            conn.execute("UPDATE permissions SET roles = ? WHERE id = ?", (json.dumps([r for r in roles if r != role]), permission))


def grant(conn: sqlite3.Connection, role: str, permission: str) -> bool:
    """Give `role` a permission; False if it had it."""
    roles = permission_roles(conn).get(check_permission(permission), [])
    _require_role(conn, role)
    if role in roles:
        return False
    set_permission_roles(conn, permission, [*roles, role])
    return True


def revoke(conn: sqlite3.Connection, role: str, permission: str) -> bool:
    roles = permission_roles(conn).get(check_permission(permission), [])
    _require_role(conn, role)
    if role not in roles:
        return False
    set_permission_roles(conn, permission, [r for r in roles if r != role])
    return True


def set_permission_roles(conn: sqlite3.Connection, permission: str, roles: list[str], now: int | None = None) -> list[str]:
    """Make exactly `roles` (in that order) hold `permission`."""
    check_permission(permission)
    for role in roles:
        _require_role(conn, role)
    roles = list(dict.fromkeys(roles))
    conn.execute("INSERT INTO permissions (id, roles, updated_at) VALUES (?, ?, ?) "
                 "ON CONFLICT (id) DO UPDATE SET roles = excluded.roles, updated_at = excluded.updated_at",
                 (permission, json.dumps(roles), now if now is not None else int(time.time() * 1000)))
    return roles


def has_permission(conn: sqlite3.Connection, user: User, permission: str, room_id: str | None = None) -> bool:
    """Whether the user's roles (global ones, and in `room_id` their room roles) hold `permission`.

    Role `admin` holds every permission (so an administrator cannot lock the server).
    """
    if ADMIN_ROLE in user.roles:
        return True
    row = conn.execute("SELECT roles FROM permissions WHERE id = ?", (permission,)).fetchone()
    if row is None:
        return False
    holders = set(_json(row[0], []))
    if holders & set(user.roles):
        return True
    if room_id is not None:
        return bool(holders & set(member_roles(conn, room_id, user.id)))
    return False


def require(conn: sqlite3.Connection, user: User, permission: str, room_id: str | None = None) -> None:
    """ChatError 403 unless one of the user's roles has `permission`."""
    if not has_permission(conn, user, permission, room_id):
        raise forbidden(f"User does not have the permissions required for this action [error-unauthorized] (needs '{permission}')")


# -- tokens -----------------------------------------------------------------------------------
def issue_token(conn: sqlite3.Connection, user_id: str, token_hash: str, now: int, ttl_ms: int) -> int:
    """Store a token's hash; returns when it expires (epoch ms)."""
    expires = now + ttl_ms
    conn.execute("INSERT INTO tokens (hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
                 (token_hash, user_id, now, expires))
    return expires


def token_user(conn: sqlite3.Connection, token_hash: str, now: int) -> User | None:
    """The active user a token (by its hash) logs in, if it is valid."""
    row = conn.execute("SELECT user_id, expires_at FROM tokens WHERE hash = ?", (token_hash,)).fetchone()
    if row is None or row["expires_at"] <= now:
        return None
    user = get_user(conn, user_id=row["user_id"])
    return user if user is not None and user.active else None


def authenticate(conn: sqlite3.Connection, token_hash: str | None, user_id: str | None, now: int) -> User:
    """The user an (X-Auth-Token, X-User-Id) pair logs in; ChatError 401 if missing, wrong, revoked or expired."""
    if not token_hash or not user_id:
        raise unauthorized()
    row = conn.execute("SELECT user_id, expires_at FROM tokens WHERE hash = ?", (token_hash,)).fetchone()
    if row is None or not hmac.compare_digest(row["user_id"].encode(), user_id.encode()) or row["expires_at"] <= now:
        raise unauthorized()
    user = get_user(conn, user_id=row["user_id"])
    if user is None or not user.active:
        raise unauthorized()
    return user


def revoke_token(conn: sqlite3.Connection, token_hash: str) -> bool:
    return conn.execute("DELETE FROM tokens WHERE hash = ?", (token_hash,)).rowcount > 0


def revoke_user_tokens(conn: sqlite3.Connection, user_id: str) -> int:
    return conn.execute("DELETE FROM tokens WHERE user_id = ?", (user_id,)).rowcount


def purge_tokens(conn: sqlite3.Connection, now: int) -> int:
    """Forget expired tokens; returns how many."""
    return conn.execute("DELETE FROM tokens WHERE expires_at <= ?", (now,)).rowcount


# -- rooms ------------------------------------------------------------------------------------
ROOM_COLUMNS = "r.*, (SELECT count(*) FROM members c WHERE c.room_id = r.id) AS users_count"


def _room_from(row: sqlite3.Row) -> Room:
    keys = row.keys()
    room = Room(row["id"], row["name"], row["type"], row["creator_id"], row["creator_name"], row["created_at"],
                bool(row["is_default"]), bool(row["read_only"]), row["msgs"], row["last_message_at"])
    if "fname" in keys:
        room.fname = row["fname"] or row["name"]
        room.topic = row["topic"]
        room.description = row["description"]
        room.announcement = row["announcement"]
        room.join_code = row["join_code"]
        room.archived = bool(row["archived"])
        room.encrypted = bool(row["encrypted"])
        room.custom_fields = _json(row["custom_fields"], {})
        room.prid = row["prid"]
        room.team_id = row["team_id"]
        room.team_main = bool(row["team_main"])
        room.team_default = bool(row["team_default"])
        room.updated_at = row["updated_at"] or row["created_at"]
    if "users_count" in keys:
        room.users_count = row["users_count"]
    return room


def _with_usernames(conn: sqlite3.Connection, rooms: list[Room]) -> list[Room]:
    """Fill in each room's member usernames with one query for all of them."""
    if not rooms:
        return rooms
    by_id = {r.id: r for r in rooms}
    for r in by_id.values():
        r.usernames, r.uids = [], []
    rows = conn.execute(f"SELECT m.room_id, u.id, u.username FROM members m JOIN users u ON u.id = m.user_id "
                        f"WHERE m.room_id IN ({_placeholders(len(by_id))}) ORDER BY m.joined_at, u.username", list(by_id))
    for row in rows:
        by_id[row[0]].usernames.append(row[2])
        by_id[row[0]].uids.append(row[1])
    return rooms


def get_room(conn: sqlite3.Connection, *, room_id: str | None = None, name: str | None = None,
             usernames: bool = True) -> Room | None:
    if room_id is not None:
        row = conn.execute(f"SELECT {ROOM_COLUMNS} FROM rooms r WHERE r.id = ?", (room_id,)).fetchone()
    else:
        row = conn.execute(f"SELECT {ROOM_COLUMNS} FROM rooms r WHERE r.name = ?", ((name or "").lstrip("#"),)).fetchone()
    if row is None:
        return None
    room = _room_from(row)
    return _with_usernames(conn, [room])[0] if usernames else room


def room(conn: sqlite3.Connection, room_id: str | None = None, name: str | None = None, *, usernames: bool = True) -> Room:
    """A room by id (or by name); ChatError 404 if there is none."""
    found = get_room(conn, room_id=room_id, usernames=usernames) if room_id else None
    if found is None and name:
        found = get_room(conn, name=name, usernames=usernames)
    if found is None:
        raise room_not_found(room_id or name or "")
    return found


def query_rooms(conn: sqlite3.Connection, *, types: Sequence[str] = ("c",), member: str | None = None,
                text: str | None = None, offset: int = 0, count: int = 0, ids: Sequence[str] | None = None,
                usernames: bool = False, order: str = "r.is_default DESC, r.created_at, r.name",
                updated_since: int | None = None, team_id: str | None = None) -> tuple[list[Room], int]:
    """A page of rooms of `types` (only those `member` is in, if given; names containing `text`), and the total."""
    where, args = [f"r.type IN ({_placeholders(len(types))})"], list(types)
    if member is not None:
        where.append("r.id IN (SELECT room_id FROM members WHERE user_id = ?)")
        args.append(member)
    if text:
        where.append("(r.name LIKE ? ESCAPE '\\' OR r.fname LIKE ? ESCAPE '\\')")
        like = f"%{_like(text)}%"
        args += [like, like]
    if ids is not None:
        where.append(f"r.id IN ({_placeholders(len(ids))})")
        args += list(ids)
    if updated_since is not None:
        where.append("r.updated_at > ?")
        args.append(updated_since)
    if team_id is not None:
        where.append("r.team_id = ? AND r.team_main = 0")
        args.append(team_id)
    clause = " AND ".join(where)
    total = conn.execute(f"SELECT count(*) FROM rooms r WHERE {clause}", args).fetchone()[0]
    limit = count if count > 0 else -1
    rows = conn.execute(f"SELECT {ROOM_COLUMNS} FROM rooms r WHERE {clause} ORDER BY {order} LIMIT ? OFFSET ?",
                        (*args, limit, offset)).fetchall()
    rooms = [_room_from(r) for r in rows]
    if usernames:
        _with_usernames(conn, rooms)
    return rooms, total


def list_rooms(conn: sqlite3.Connection, offset: int = 0, count: int = 0) -> tuple[list[Room], int]:
    """Public rooms, a page at a time, with their members' usernames (the reference API shows them)."""
    return query_rooms(conn, offset=offset, count=count, usernames=True)


def create_room(conn: sqlite3.Connection, name: str, creator: User | None, now: int, members: Iterable[str] = (),
                *, read_only: bool = False, room_type: str = "c", fname: str | None = None, prid: str | None = None,
                rid: str | None = None, check: bool = True, custom_fields: dict[str, Any] | None = None) -> Room:
    """A room; the creator (as owner) and `members` (usernames, each must exist) join it. ChatError 400 if the name is taken."""
    if check:
        check_name(name, "room name")
    if get_room(conn, name=name, usernames=False) is not None:
        raise bad_request(f"A channel with name '{name}' exists", "error-duplicate-channel-name")
    rid = rid or new_id()
    conn.execute("INSERT INTO rooms (id, name, type, creator_id, creator_name, created_at, read_only, fname, prid, "
                 "updated_at, custom_fields) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 (rid, name, room_type, creator.id if creator else None, creator.username if creator else None, now,
                  int(read_only), fname or name, prid, now, json.dumps(custom_fields or {})))
    users = []
    for username in members:
        if not isinstance(username, str):
            raise bad_request("members must be usernames")
        user = get_user(conn, username=username)
        if user is None:
            raise bad_request(f"user not found: {username}", "error-invalid-user")
        users.append(user)
    if creator is not None:
        join(conn, rid, creator.id, now, roles="owner" if room_type != "d" else "")
    for user in users:
        join(conn, rid, user.id, now)
    result = get_room(conn, room_id=rid)
    assert result is not None
    return result


def _assignments(fields: dict[str, Any], allowed: set[str], json_columns: tuple[str, ...] = ()) -> tuple[list[str], list[Any]]:
    """`col = ?` clauses and their values for an UPDATE of `fields` (each must be in `allowed`)."""
    sets, args = [], []
    for key, value in fields.items():
        if key not in allowed:
            raise ValueError(key)
        if key in json_columns:
            value = json.dumps(value)
        if isinstance(value, bool):
            value = int(value)
        sets.append(f"{key} = ?")
        args.append(value)
    return sets, args


def update_room(conn: sqlite3.Connection, room_id: str, now: int, **fields: Any) -> Room:
    sets, args = _assignments(fields, {"name", "fname", "type", "topic", "description", "announcement", "join_code", "archived",
                                       "encrypted", "custom_fields", "read_only", "is_default", "team_id", "team_main",
                                       "team_default"}, ("custom_fields",))
    conn.execute(f"UPDATE rooms SET {', '.join([*sets, 'updated_at = ?'])} WHERE id = ?", (*args, now, room_id))
    return room(conn, room_id)


def delete_room(conn: sqlite3.Connection, room_id: str) -> None:
    conn.execute("DELETE FROM mentions WHERE room_id = ?", (room_id,))
    conn.execute("DELETE FROM stars WHERE room_id = ?", (room_id,))
    conn.execute("DELETE FROM rooms WHERE id = ?", (room_id,))


def join(conn: sqlite3.Connection, room_id: str, user_id: str, now: int, *, roles: str = "") -> bool:
    """Make the user a member; False if they were one."""
    cur = conn.execute("INSERT OR IGNORE INTO members (room_id, user_id, joined_at, roles, ls, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                       (room_id, user_id, now, roles, now, now))
    if cur.rowcount:
        conn.execute("UPDATE rooms SET updated_at = ? WHERE id = ?", (now, room_id))
    return cur.rowcount > 0


def leave(conn: sqlite3.Connection, room_id: str, user_id: str) -> bool:
    """End a membership; False if there was none."""
    return conn.execute("DELETE FROM members WHERE room_id = ? AND user_id = ?", (room_id, user_id)).rowcount > 0


def is_member(conn: sqlite3.Connection, room_id: str, user_id: str) -> bool:
    return conn.execute("SELECT 1 FROM members WHERE room_id = ? AND user_id = ?", (room_id, user_id)).fetchone() is not None


def member_roles(conn: sqlite3.Connection, room_id: str, user_id: str) -> list[str]:
    row = conn.execute("SELECT roles FROM members WHERE room_id = ? AND user_id = ?", (room_id, user_id)).fetchone()
    return row[0].split() if row else []


def add_member_role(conn: sqlite3.Connection, room_id: str, user_id: str, role: str) -> bool:
    roles = member_roles(conn, room_id, user_id)
    if role in roles:
        return False
    conn.execute("UPDATE members SET roles = ?, updated_at = ? WHERE room_id = ? AND user_id = ?",
                 (" ".join([*roles, role]), int(time.time() * 1000), room_id, user_id))
    return True


def remove_member_role(conn: sqlite3.Connection, room_id: str, user_id: str, role: str) -> bool:
    roles = member_roles(conn, room_id, user_id)
    if role not in roles:
        return False
    conn.execute("UPDATE members SET roles = ?, updated_at = ? WHERE room_id = ? AND user_id = ?",
                 (" ".join(r for r in roles if r != role), int(time.time() * 1000), room_id, user_id))
    return True


def count_role_in_room(conn: sqlite3.Connection, room_id: str, role: str) -> int:
    return conn.execute("SELECT count(*) FROM members WHERE room_id = ? AND (' ' || roles || ' ') LIKE ?",
                        (room_id, f"% {role} %")).fetchone()[0]


def room_members(conn: sqlite3.Connection, room_id: str, *, offset: int = 0, count: int = 0, role: str | None = None,
                 status: Sequence[str] | None = None, exclude_status: str | None = None) -> tuple[list[tuple[User, list[str]]], int]:
    """A page of a room's members (user, room roles), and how many there are."""
    where, args = ["m.room_id = ?"], [room_id]
    if role:
        where.append("(' ' || m.roles || ' ') LIKE ?")
        args.append(f"% {role} %")
    if status:
        where.append(f"u.status IN ({_placeholders(len(status))})")
        args += list(status)
    if exclude_status:
        where.append("u.status != ?")
        args.append(exclude_status)
    clause = " AND ".join(where)
    total = conn.execute(f"SELECT count(*) FROM members m JOIN users u ON u.id = m.user_id WHERE {clause}", args).fetchone()[0]
    limit = count if count > 0 else -1
    rows = conn.execute(f"SELECT u.*, m.roles AS room_roles FROM members m JOIN users u ON u.id = m.user_id "
                        f"WHERE {clause} ORDER BY u.username LIMIT ? OFFSET ?", (*args, limit, offset)).fetchall()
    users = _users(conn, rows)
    return [(u, (r["room_roles"] or "").split()) for u, r in zip(users, rows, strict=True)], total


def subscriptions(conn: sqlite3.Connection, user_id: str, *, room_id: str | None = None,
                  updated_since: int | None = None) -> list[sqlite3.Row]:
    """The user's memberships joined with their rooms (Rocket.Chat's subscriptions)."""
    where, args = ["m.user_id = ?"], [user_id]
    if room_id is not None:
        where.append("m.room_id = ?")
        args.append(room_id)
    if updated_since is not None:
        where.append("m.updated_at > ?")
        args.append(updated_since)
    return conn.execute(
        "SELECT m.*, r.name AS room_name, r.fname AS room_fname, r.type AS room_type, r.archived AS room_archived, "
        "r.prid AS room_prid, r.team_id AS room_team_id, r.team_main AS room_team_main "
        f"FROM members m JOIN rooms r ON r.id = m.room_id WHERE {' AND '.join(where)} ORDER BY m.joined_at", args).fetchall()


def update_subscription(conn: sqlite3.Connection, room_id: str, user_id: str, now: int, **fields: Any) -> bool:
    sets, args = _assignments(fields, {"open", "favorite", "unread", "mentions", "ls", "ignored"}, ("ignored",))
    cur = conn.execute(f"UPDATE members SET {', '.join([*sets, 'updated_at = ?'])} WHERE room_id = ? AND user_id = ?",
                       (*args, now, room_id, user_id))
    return cur.rowcount > 0


def direct_room_id(uids: Sequence[str]) -> str:
    """Rocket.Chat's id of a one-to-one direct room: the two user ids, sorted, concatenated."""
    return "".join(sorted(uids))


# -- messages ---------------------------------------------------------------------------------
MENTION_RE = re.compile(r"(?:^|[\s(>])@([0-9A-Za-z._-]+)")


def _message(row: sqlite3.Row) -> Message:
    keys = row.keys()
    m = Message(row["seq"], row["id"], row["room_id"], row["user_id"], row["username"], row["msg"], row["ts"])
    if "t" in keys:
        m.name = row["name"]
        m.t = row["t"]
        m.tmid = row["tmid"]
        m.extra = _json(row["extra"], {})
        m.reactions = _json(row["reactions"], {})
        m.pinned = bool(row["pinned"])
        m.edited_at = row["edited_at"]
        m.edited_by = _json(row["edited_by"], None)
        m.updated_at = row["updated_at"] or row["ts"]
        m.tcount = row["tcount"]
        m.tlm = row["tlm"]
        m.drid = row["drid"]
        m.deleted_at = row["deleted_at"]
    return m


def _messages(conn: sqlite3.Connection, rows: Sequence[sqlite3.Row], viewer: str | None = None) -> list[Message]:
    """Messages for rows, with the viewer's stars fetched in one query for the page."""
    messages = [_message(r) for r in rows]
    if viewer and messages:
        ids = [m.id for m in messages]
        starred = {r[0] for r in conn.execute(
            f"SELECT message_id FROM stars WHERE user_id = ? AND message_id IN ({_placeholders(len(ids))})", [viewer, *ids])}
        for m in messages:
            m.starred = m.id in starred
    return messages


def get_message(conn: sqlite3.Connection, message_id: str, *, viewer: str | None = None, deleted: bool = False) -> Message | None:
    row = conn.execute("SELECT * FROM messages WHERE id = ?", (message_id,)).fetchone()
    if row is None or (row["deleted_at"] is not None and not deleted):
        return None
    return _messages(conn, [row], viewer)[0]


def add_message(conn: sqlite3.Connection, room_id: str, user: User, text: str, now: int, *, mid: str | None = None,
                t: str | None = None, tmid: str | None = None, extra: dict[str, Any] | None = None,
                drid: str | None = None, count: bool = True) -> Message:
    """Store a message; count it in the room, its members' unread counters, its mentions and its thread."""
    mid = mid or new_id()
    if conn.execute("SELECT 1 FROM messages WHERE id = ?", (mid,)).fetchone():
        raise bad_request("A message with this id exists", "error-duplicate-message-id")
    extra = dict(extra or {})
    mentioned: list[tuple[str, str]] = []
    if text and t is None:
        names = list(dict.fromkeys(MENTION_RE.findall(text)))
        if names:
            rows = conn.execute(f"SELECT id, username FROM users WHERE username IN ({_placeholders(len(names))})", names)
            mentioned = [(r[0], r[1]) for r in rows]
            extra["mentions"] = [{"_id": i, "username": n, "type": "user"} for i, n in mentioned]
    cur = conn.execute("INSERT INTO messages (id, room_id, user_id, username, name, msg, ts, t, tmid, extra, updated_at, drid) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (mid, room_id, user.id, user.username, user.name or user.username, text, now, t, tmid,
                        json.dumps(extra), now, drid))
    seq = int(cur.lastrowid or 0)
    if count:
        conn.execute("UPDATE rooms SET msgs = msgs + 1, last_message_at = ?, updated_at = ? WHERE id = ?", (now, now, room_id))
        conn.execute("UPDATE members SET unread = unread + 1, updated_at = ? WHERE room_id = ? AND user_id != ?",
                     (now, room_id, user.id))
    for uid, _ in mentioned:
        conn.execute("INSERT OR IGNORE INTO mentions (user_id, room_id, seq) VALUES (?, ?, ?)", (uid, room_id, seq))
        if uid != user.id:
            conn.execute("UPDATE members SET mentions = mentions + 1 WHERE room_id = ? AND user_id = ?", (room_id, uid))
    if tmid:
        parent = conn.execute("SELECT extra FROM messages WHERE id = ?", (tmid,)).fetchone()
        replies = _json(parent[0], {}).get("replies", []) if parent else []
        if user.id not in replies:
            replies.append(user.id)
        conn.execute("UPDATE messages SET tcount = tcount + 1, tlm = ?, updated_at = ?, "
                     "extra = json_set(extra, '$.replies', json(?)) WHERE id = ?", (now, now, json.dumps(replies), tmid))
    message = get_message(conn, mid)
    assert message is not None
    return message


def send(conn: sqlite3.Connection, user: User, room_id: str | None, text: str, now: int, *, room_name: str | None = None,
         require_member: bool = True, **kwargs: Any) -> tuple[Room, Message]:
    """Post `text` to a room as `user`: 404 if no such room, 403 unless a member (or read-only or archived room)."""
    target = room(conn, room_id, room_name, usernames=False)
    if require_member and not is_member(conn, target.id, user.id):
        raise forbidden("You must join the room before sending to it")
    if target.archived:
        raise bad_request("Room is archived", "error-room-archived")
    if target.read_only and not has_permission(conn, user, "post-readonly", target.id):
        raise forbidden("The room is read-only")
    tmid = kwargs.get("tmid")
    if tmid:
        parent = get_message(conn, tmid)
        if parent is None or parent.room_id != target.id:
            raise bad_request("Invalid thread message id", "error-invalid-message")
        if parent.tmid:
            kwargs["tmid"] = parent.tmid
    return target, add_message(conn, target.id, user, text, now, **kwargs)


def edit_message(conn: sqlite3.Connection, message: Message, editor: User, text: str, now: int) -> Message:
    conn.execute("UPDATE messages SET msg = ?, edited_at = ?, edited_by = ?, updated_at = ? WHERE id = ?",
                 (text, now, json.dumps({"_id": editor.id, "username": editor.username}), now, message.id))
    updated = get_message(conn, message.id, viewer=editor.id)
    assert updated is not None
    return updated


def set_message_fields(conn: sqlite3.Connection, message_id: str, now: int, *, pinned: bool | None = None,
                       reactions: dict[str, Any] | None = None, extra: dict[str, Any] | None = None) -> None:
    sets, args = [], []
    if pinned is not None:
        sets.append("pinned = ?")
        args.append(int(pinned))
    if reactions is not None:
        sets.append("reactions = ?")
        args.append(json.dumps(reactions))
    if extra is not None:
        sets.append("extra = ?")
        args.append(json.dumps(extra))
    conn.execute(f"UPDATE messages SET {', '.join(sets)}, updated_at = ? WHERE id = ?", (*args, now, message_id))


def delete_message(conn: sqlite3.Connection, message: Message, now: int) -> None:
    """Hide a message (kept as a tombstone for chat.getDeletedMessages and syncMessages)."""
    conn.execute("UPDATE messages SET deleted_at = ?, updated_at = ?, msg = '', extra = '{}', reactions = '{}' WHERE id = ?",
                 (now, now, message.id))
    conn.execute("UPDATE rooms SET msgs = max(msgs - 1, 0) WHERE id = ?", (message.room_id,))
    conn.execute("DELETE FROM stars WHERE message_id = ?", (message.id,))
    if message.tmid:
        conn.execute("UPDATE messages SET tcount = max(tcount - 1, 0), updated_at = ? WHERE id = ?", (now, message.tmid))


def clean_history(conn: sqlite3.Connection, room_id: str, oldest: int, latest: int, inclusive: bool, now: int) -> int:
    lo, hi = (">=", "<=") if inclusive else (">", "<")
    cur = conn.execute(f"UPDATE messages SET deleted_at = ?, updated_at = ?, msg = '' WHERE room_id = ? AND deleted_at IS NULL "
                       f"AND ts {lo} ? AND ts {hi} ?", (now, now, room_id, oldest, latest))
    if cur.rowcount:
        conn.execute("UPDATE rooms SET msgs = max(msgs - ?, 0) WHERE id = ?", (cur.rowcount, room_id))
    return cur.rowcount


def query_messages(conn: sqlite3.Connection, room_id: str | None, *, viewer: str | None = None, offset: int = 0,
                   count: int = 20, latest: int | None = None, oldest: int | None = None, inclusive: bool = False,
                   text: str | None = None, tmid: str | None = None, pinned: bool = False, starred_by: str | None = None,
                   mentioned: str | None = None, threads: bool = False, discussions: bool = False,
                   deleted: bool = False, updated_since: int | None = None, newest_first: bool = True,
                   with_total: bool = False) -> tuple[list[Message], int]:
    """Messages matching every filter given, newest first unless `newest_first` is False, a page at a time."""
    where: list[str] = []
    args: list[Any] = []
    if room_id is not None:
        where.append("room_id = ?")
        args.append(room_id)
    where.append("deleted_at IS NOT NULL" if deleted else "deleted_at IS NULL")
    if latest is not None:
        where.append("ts <= ?" if inclusive else "ts < ?")
        args.append(latest)
    if oldest is not None:
        where.append("ts >= ?" if inclusive else "ts > ?")
        args.append(oldest)
    if text:
        where.append("msg LIKE ? ESCAPE '\\'")
        args.append(f"%{_like(text)}%")
    if tmid is not None:
        where.append("tmid = ?")
        args.append(tmid)
    if pinned:
        where.append("pinned = 1")
    if starred_by is not None:
        where.append("id IN (SELECT message_id FROM stars WHERE user_id = ?)")
        args.append(starred_by)
    if mentioned is not None:
        where.append("seq IN (SELECT seq FROM mentions WHERE user_id = ? AND room_id = messages.room_id)")
        args.append(mentioned)
    if threads:
        where.append("tcount > 0")
    if discussions:
        where.append("drid IS NOT NULL")
    if updated_since is not None:
        where.append("updated_at > ?")
        args.append(updated_since)
    clause = " AND ".join(where)
    total = conn.execute(f"SELECT count(*) FROM messages WHERE {clause}", args).fetchone()[0] if with_total else 0
    limit = count if count > 0 else -1
    order = "DESC" if newest_first else "ASC"
    rows = conn.execute(f"SELECT * FROM messages WHERE {clause} ORDER BY ts {order}, seq {order} LIMIT ? OFFSET ?",
                        (*args, limit, offset)).fetchall()
    return _messages(conn, rows, viewer), total


def unread(conn: sqlite3.Connection, room_id: str, user_id: str, limit: int) -> list[Message]:
    """The user's unread messages in the room (oldest first, at most `limit`); they become read."""
    row = conn.execute("SELECT last_seq FROM read_markers WHERE user_id = ? AND room_id = ?", (user_id, room_id)).fetchone()
    last = row[0] if row else 0
    rows = conn.execute("SELECT * FROM messages WHERE room_id = ? AND seq > ? AND deleted_at IS NULL ORDER BY seq LIMIT ?",
                        (room_id, last, limit)).fetchall()
    messages = [_message(r) for r in rows]
    if messages:
        conn.execute("INSERT INTO read_markers (user_id, room_id, last_seq) VALUES (?, ?, ?) "
                     "ON CONFLICT (user_id, room_id) DO UPDATE SET last_seq = excluded.last_seq",
                     (user_id, room_id, messages[-1].seq))
    return messages


def history(conn: sqlite3.Connection, room_id: str, *, offset: int = 0, count: int = 20, latest: int | None = None,
            oldest: int | None = None, inclusive: bool = False) -> list[Message]:
    """Messages of a room, newest first, between `oldest` and `latest` (epoch ms)."""
    return query_messages(conn, room_id, offset=offset, count=count, latest=latest, oldest=oldest, inclusive=inclusive)[0]


def recent(conn: sqlite3.Connection, room_id: str, limit: int) -> list[Message]:
    """The last `limit` messages of a room, oldest first."""
    return list(reversed(history(conn, room_id, count=limit)))


def star(conn: sqlite3.Connection, message: Message, user_id: str, on: bool) -> None:
    if on:
        conn.execute("INSERT OR IGNORE INTO stars (message_id, user_id, room_id) VALUES (?, ?, ?)", (message.id, user_id, message.room_id))
    else:
        conn.execute("DELETE FROM stars WHERE message_id = ? AND user_id = ?", (message.id, user_id))


# -- uploads ----------------------------------------------------------------------------------
def add_upload(conn: sqlite3.Connection, room_id: str, user_id: str, name: str, content_type: str, data: bytes,
               description: str, now: int) -> dict[str, Any]:
    fid = new_id()
    conn.execute("INSERT INTO uploads (id, room_id, user_id, name, type, size, description, data, created_at) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", (fid, room_id, user_id, name, content_type, len(data), description, data, now))
    return upload(conn, fid)


def upload(conn: sqlite3.Connection, file_id: str, *, data: bool = False) -> dict[str, Any]:
    cols = "id, room_id, user_id, name, type, size, description, created_at, confirmed" + (", data" if data else "")
    row = conn.execute(f"SELECT {cols} FROM uploads WHERE id = ?", (file_id,)).fetchone()
    if row is None:
        raise bad_request("File not found", "error-file-not-found")
    return dict(row)


def room_uploads(conn: sqlite3.Connection, room_id: str, offset: int, count: int) -> tuple[list[dict[str, Any]], int]:
    total = conn.execute("SELECT count(*) FROM uploads WHERE room_id = ?", (room_id,)).fetchone()[0]
    rows = conn.execute("SELECT id, room_id, user_id, name, type, size, description, created_at, confirmed FROM uploads "
                        "WHERE room_id = ? ORDER BY created_at DESC, id LIMIT ? OFFSET ?", (room_id, count if count > 0 else -1, offset))
    return [dict(r) for r in rows], total


# -- documents: settings, integrations, invites, custom statuses, teams, reports ----------------
def doc_put(conn: sqlite3.Connection, coll: str, doc_id: str, doc: dict[str, Any], now: int) -> dict[str, Any]:
    conn.execute("INSERT INTO docs (coll, id, doc, created_at, updated_at) VALUES (?, ?, ?, ?, ?) "
                 "ON CONFLICT (coll, id) DO UPDATE SET doc = excluded.doc, updated_at = excluded.updated_at",
                 (coll, doc_id, json.dumps(doc), now, now))
    return doc


def doc_get(conn: sqlite3.Connection, coll: str, doc_id: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT doc FROM docs WHERE coll = ? AND id = ?", (coll, doc_id)).fetchone()
    return _json(row[0], None) if row else None


def doc_delete(conn: sqlite3.Connection, coll: str, doc_id: str) -> bool:
    return conn.execute("DELETE FROM docs WHERE coll = ? AND id = ?", (coll, doc_id)).rowcount > 0


def doc_list(conn: sqlite3.Connection, coll: str, *, offset: int = 0, count: int = 0,
             where: str = "", args: Sequence[Any] = ()) -> tuple[list[dict[str, Any]], int]:
    """A page of a collection's documents (oldest first); `where` filters with json_extract(doc, ...)."""
    clause = "coll = ?" + (f" AND ({where})" if where else "")
    total = conn.execute(f"SELECT count(*) FROM docs WHERE {clause}", (coll, *args)).fetchone()[0]
    rows = conn.execute(f"SELECT doc FROM docs WHERE {clause} ORDER BY created_at, id LIMIT ? OFFSET ?",
                        (coll, *args, count if count > 0 else -1, offset))
    return [_json(r[0], {}) for r in rows], total


def setting(conn: sqlite3.Connection, key: str) -> Any:
    row = conn.execute("SELECT value FROM settings WHERE id = ?", (key,)).fetchone()
    if row is not None:
        return _json(row[0], None)
    default = rcdata.SETTINGS.get(key)
    return default[0] if default else None


def settings_changed(conn: sqlite3.Connection) -> dict[str, tuple[Any, int]]:
    return {r[0]: (_json(r[1], None), r[2]) for r in conn.execute("SELECT id, value, updated_at FROM settings")}


def set_setting(conn: sqlite3.Connection, key: str, value: Any, now: int) -> None:
    conn.execute("INSERT INTO settings (id, value, updated_at) VALUES (?, ?, ?) "
                 "ON CONFLICT (id) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                 (key, json.dumps(value), now))


def counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Totals for the statistics call, in one query."""
    row = conn.execute(
        "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM users WHERE active = 1), "
        "(SELECT count(*) FROM users WHERE status != 'offline'), (SELECT count(*) FROM rooms), "
        "(SELECT count(*) FROM rooms WHERE type = 'c'), (SELECT count(*) FROM rooms WHERE type = 'p'), "
        "(SELECT count(*) FROM rooms WHERE type = 'd'), (SELECT count(*) FROM messages WHERE deleted_at IS NULL), "
        "(SELECT coalesce(sum(msgs), 0) FROM rooms WHERE type = 'c'), (SELECT coalesce(sum(msgs), 0) FROM rooms WHERE type = 'p'), "
        "(SELECT coalesce(sum(msgs), 0) FROM rooms WHERE type = 'd'), (SELECT count(*) FROM uploads), "
        "(SELECT coalesce(sum(size), 0) FROM uploads)").fetchone()
    keys = ("totalUsers", "activeUsers", "onlineUsers", "totalRooms", "totalChannels", "totalPrivateGroups",
            "totalDirect", "totalMessages", "totalChannelMessages", "totalPrivateGroupMessages", "totalDirectMessages",
            "uploadsTotal", "uploadsTotalSize")
    return dict(zip(keys, row, strict=True))


__all__ = ["ChatError"]
