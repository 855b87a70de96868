"""The chat's SQLite storage: schema and synchronous operations on one connection.

Every function takes the connection first and runs inside a transaction its caller opened (the
DB worker thread, or the CLI). Refusals are `ChatError`s, which roll back the operation.
"""

from __future__ import annotations

import hmac
import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from .model import (
    ADMIN_ROLE,
    DEFAULT_ROLES,
    GENERAL_ID,
    GENERAL_NAME,
    PERMISSIONS,
    USER_ROLE,
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
SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 10_000

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


# -- opening ----------------------------------------------------------------------------------
def connect(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """Open (creating parent directories and the schema) the database at `path`.

    WAL journal, synchronous=FULL (a commit is on disk before it returns, so an acknowledged
    write survives a crash or power loss), foreign keys on, autocommit mode: callers BEGIN.
    """
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal" and str(path) != ":memory:":
            raise sqlite3.OperationalError(f"cannot switch {path} to WAL (journal_mode is {mode})")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
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
            _seed(conn)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _seed(conn: sqlite3.Connection) -> None:
    """What a new database starts with: roles admin and user, and the room GENERAL."""
    now = int(time.time() * 1000)
    for role, (description, permissions) in DEFAULT_ROLES.items():
        conn.execute("INSERT OR IGNORE INTO roles (name, description, protected) VALUES (?, ?, 1)", (role, description))
        for permission in permissions:
            conn.execute("INSERT OR IGNORE INTO role_permissions (role, permission) VALUES (?, ?)", (role, permission))
    conn.execute("INSERT OR IGNORE INTO rooms (id, name, type, created_at, is_default) VALUES (?, ?, 'c', ?, 1)",
                 (GENERAL_ID, GENERAL_NAME, now))


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


# -- users ------------------------------------------------------------------------------------
def _user(conn: sqlite3.Connection, row: sqlite3.Row | None) -> User | None:
    if row is None:
        return None
    roles = [r[0] for r in conn.execute("SELECT role FROM user_roles WHERE user_id = ? ORDER BY role", (row["id"],))]
    return User(row["id"], row["username"], row["name"], row["email"], bool(row["active"]), row["created_at"],
                roles, row["password_hash"])


def get_user(conn: sqlite3.Connection, *, user_id: str | None = None, username: str | None = None) -> User | None:
    if user_id is not None:
        row = conn.execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone()
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
        row = conn.execute("SELECT * FROM users WHERE email = ?", (login,)).fetchone()
        if row is not None:
            return _user(conn, row)
    return get_user(conn, username=login)


def create_user(conn: sqlite3.Connection, username: str, password_hash: str, now: int, *, name: str = "",
                email: str | None = None, roles: Iterable[str] = (USER_ROLE,), active: bool = True) -> User:
    """Add a user with `roles` (each must exist); ChatError 400 if the username or email is taken."""
    check_name(username, "username")
    if get_user(conn, username=username) is not None:
        raise bad_request(f"Username is already in use: {username}", "error-field-unavailable")
    if email and conn.execute("SELECT 1 FROM users WHERE email = ?", (email,)).fetchone():
        raise bad_request(f"Email already exists: {email}", "error-field-unavailable")
    uid = new_id()
    conn.execute("INSERT INTO users (id, username, name, email, password_hash, active, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                 (uid, username, name or "", email or None, password_hash, int(active), now))
    for role in dict.fromkeys(roles):
        add_user_role(conn, uid, role)
    user = get_user(conn, user_id=uid)
    assert user is not None
    return user


def delete_user(conn: sqlite3.Connection, who: str) -> User:
    """Remove a user with their tokens, roles, memberships and read markers (their messages stay)."""
    user = find_user(conn, who)
    conn.execute("DELETE FROM users WHERE id = ?", (user.id,))
    return user


def set_password(conn: sqlite3.Connection, user_id: str, password_hash: str) -> None:
    conn.execute("UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user_id))


def list_users(conn: sqlite3.Connection, offset: int = 0, count: int = 0) -> tuple[list[User], int]:
    total = conn.execute("SELECT count(*) FROM users").fetchone()[0]
    limit = count if count > 0 else -1
    rows = conn.execute("SELECT * FROM users ORDER BY username LIMIT ? OFFSET ?", (limit, offset)).fetchall()
    return [u for u in (_user(conn, r) for r in rows) if u is not None], total


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


def list_roles(conn: sqlite3.Connection) -> list[dict[str, object]]:
    """Every role with its description, whether it is protected, and its permissions."""
    out = []
    for row in conn.execute("SELECT * FROM roles ORDER BY name"):
        perms = [r[0] for r in conn.execute("SELECT permission FROM role_permissions WHERE role = ? ORDER BY permission",
                                            (row["name"],))]
        out.append({"name": row["name"], "description": row["description"], "protected": bool(row["protected"]),
                    "permissions": perms})
    return out


def create_role(conn: sqlite3.Connection, role: str, description: str = "") -> bool:
    """Add a role; False if it exists."""
    check_role(role)
    cur = conn.execute("INSERT OR IGNORE INTO roles (name, description) VALUES (?, ?)", (role, description))
    return cur.rowcount > 0


def delete_role(conn: sqlite3.Connection, role: str) -> None:
    _require_role(conn, role)
    if conn.execute("SELECT protected FROM roles WHERE name = ?", (role,)).fetchone()[0]:
        raise bad_request(f"role {role} is protected", "error-action-not-allowed")
    conn.execute("DELETE FROM roles WHERE name = ?", (role,))


def grant(conn: sqlite3.Connection, role: str, permission: str) -> bool:
    """Give `role` a permission; False if it had it."""
    check_permission(permission)
    _require_role(conn, role)
    cur = conn.execute("INSERT OR IGNORE INTO role_permissions (role, permission) VALUES (?, ?)", (role, permission))
    return cur.rowcount > 0


def revoke(conn: sqlite3.Connection, role: str, permission: str) -> bool:
    check_permission(permission)
    _require_role(conn, role)
    cur = conn.execute("DELETE FROM role_permissions WHERE role = ? AND permission = ?", (role, permission))
    return cur.rowcount > 0


def permission_roles(conn: sqlite3.Connection) -> dict[str, list[str]]:
    """permission → the roles that hold it (admin always does)."""
    out: dict[str, list[str]] = {p: [ADMIN_ROLE] for p in PERMISSIONS}
    for row in conn.execute("SELECT role, permission FROM role_permissions ORDER BY role"):
        if row["permission"] in out and row["role"] != ADMIN_ROLE:
            out[row["permission"]].append(row["role"])
    return out


def set_permission_roles(conn: sqlite3.Connection, permission: str, roles: list[str]) -> list[str]:
    """Make exactly `roles` hold `permission` (admin holds it regardless)."""
    check_permission(permission)
    for role in roles:
        _require_role(conn, role)
    conn.execute("DELETE FROM role_permissions WHERE permission = ?", (permission,))
    for role in dict.fromkeys(roles):
        conn.execute("INSERT INTO role_permissions (role, permission) VALUES (?, ?)", (role, permission))
    return permission_roles(conn)[permission]


def has_permission(conn: sqlite3.Connection, user: User, permission: str) -> bool:
    if ADMIN_ROLE in user.roles:
        return True
    row = conn.execute("SELECT 1 FROM user_roles ur JOIN role_permissions rp ON rp.role = ur.role "
                       "WHERE ur.user_id = ? AND rp.permission = ? LIMIT 1", (user.id, permission)).fetchone()
    return row is not None


def require(conn: sqlite3.Connection, user: User, permission: str) -> None:
    """ChatError 403 unless one of the user's roles has `permission`."""
    if not has_permission(conn, user, permission):
        raise forbidden(f"You do not have permission to do this (needs '{permission}')")


# -- tokens -----------------------------------------------------------------------------------
def issue_token(conn: sqlite3.Connection, user_id: str, token_hash: str, now: int, ttl_ms: int) -> int:
    """Store a token's hash; returns when it expires (epoch ms)."""
    expires = now + ttl_ms
    conn.execute("INSERT INTO tokens (hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
                 (token_hash, user_id, now, expires))
    return expires


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
def _room(conn: sqlite3.Connection, row: sqlite3.Row | None, *, usernames: bool = True) -> Room | None:
    if row is None:
        return None
    room = Room(row["id"], row["name"], row["type"], row["creator_id"], row["creator_name"], row["created_at"],
                bool(row["is_default"]), bool(row["read_only"]), row["msgs"], row["last_message_at"])
    if usernames:
        room.usernames = [r[0] for r in conn.execute(
            "SELECT u.username FROM members m JOIN users u ON u.id = m.user_id WHERE m.room_id = ? ORDER BY m.joined_at, u.username",
            (row["id"],))]
    return room


def get_room(conn: sqlite3.Connection, *, room_id: str | None = None, name: str | None = None) -> Room | None:
    if room_id is not None:
        row = conn.execute("SELECT * FROM rooms WHERE id = ?", (room_id,)).fetchone()
    else:
        row = conn.execute("SELECT * FROM rooms WHERE name = ?", ((name or "").lstrip("#"),)).fetchone()
    return _room(conn, row)


def room(conn: sqlite3.Connection, room_id: str | None = None, name: str | None = None) -> Room:
    """A room by id (or by name); ChatError 404 if there is none."""
    found = get_room(conn, room_id=room_id) if room_id else None
    if found is None and name:
        found = get_room(conn, name=name)
    if found is None:
        raise room_not_found(room_id or name or "")
    return found


def list_rooms(conn: sqlite3.Connection, offset: int = 0, count: int = 0) -> tuple[list[Room], int]:
    total = conn.execute("SELECT count(*) FROM rooms WHERE type = 'c'").fetchone()[0]
    limit = count if count > 0 else -1
    rows = conn.execute("SELECT * FROM rooms WHERE type = 'c' ORDER BY is_default DESC, created_at, name LIMIT ? OFFSET ?",
                        (limit, offset)).fetchall()
    return [r for r in (_room(conn, row) for row in rows) if r is not None], total


def create_room(conn: sqlite3.Connection, name: str, creator: User | None, now: int, members: Iterable[str] = (),
                *, read_only: bool = False) -> Room:
    """A public room; the creator and `members` (usernames, each must exist) join it. ChatError 400 if the name is taken."""
    check_name(name, "room name")
    if get_room(conn, name=name) is not None:
        raise bad_request(f"A room with name '{name}' exists", "error-duplicate-channel-name")
    rid = new_id()
    conn.execute("INSERT INTO rooms (id, name, type, creator_id, creator_name, created_at, read_only) VALUES (?, ?, 'c', ?, ?, ?, ?)",
                 (rid, name, creator.id if creator else None, creator.username if creator else None, now, int(read_only)))
    users = [creator] if creator else []
    for username in members:
        if not isinstance(username, str):
            raise bad_request("members must be usernames")
        user = get_user(conn, username=username)
        if user is None:
            raise bad_request(f"user not found: {username}", "error-invalid-user")
        users.append(user)
    for user in users:
        join(conn, rid, user.id, now)
    result = get_room(conn, room_id=rid)
    assert result is not None
    return result


def join(conn: sqlite3.Connection, room_id: str, user_id: str, now: int) -> bool:
    """Make the user a member; False if they were one."""
    cur = conn.execute("INSERT OR IGNORE INTO members (room_id, user_id, joined_at) VALUES (?, ?, ?)", (room_id, user_id, now))
    return cur.rowcount > 0


def leave(conn: sqlite3.Connection, room_id: str, user_id: str) -> bool:
    """End a membership; False if there was none."""
    return conn.execute("DELETE FROM members WHERE room_id = ? AND user_id = ?", (room_id, user_id)).rowcount > 0


def is_member(conn: sqlite3.Connection, room_id: str, user_id: str) -> bool:
    return conn.execute("SELECT 1 FROM members WHERE room_id = ? AND user_id = ?", (room_id, user_id)).fetchone() is not None


# -- messages ---------------------------------------------------------------------------------
def _message(row: sqlite3.Row) -> Message:
    return Message(row["seq"], row["id"], row["room_id"], row["user_id"], row["username"], row["msg"], row["ts"])


def add_message(conn: sqlite3.Connection, room_id: str, user: User, text: str, now: int) -> Message:
    mid = new_id()
    cur = conn.execute("INSERT INTO messages (id, room_id, user_id, username, msg, ts) VALUES (?, ?, ?, ?, ?, ?)",
                       (mid, room_id, user.id, user.username, text, now))
    conn.execute("UPDATE rooms SET msgs = msgs + 1, last_message_at = ? WHERE id = ?", (now, room_id))
    return Message(int(cur.lastrowid or 0), mid, room_id, user.id, user.username, text, now)


def send(conn: sqlite3.Connection, user: User, room_id: str | None, text: str, now: int, *, room_name: str | None = None,
         require_member: bool = True) -> tuple[Room, Message]:
    """Post `text` to a room as `user`: 404 if no such room, 403 unless a member (or read-only room)."""
    target = room(conn, room_id, room_name)
    if require_member and not is_member(conn, target.id, user.id):
        raise forbidden("You must join the room before sending to it")
    if target.read_only and ADMIN_ROLE not in user.roles:
        raise forbidden("The room is read-only")
    return target, add_message(conn, target.id, user, text, now)


def unread(conn: sqlite3.Connection, room_id: str, user_id: str, limit: int) -> list[Message]:
    """The user's unread messages in the room (oldest first, at most `limit`); they become read."""
    row = conn.execute("SELECT last_seq FROM read_markers WHERE user_id = ? AND room_id = ?", (user_id, room_id)).fetchone()
    last = row[0] if row else 0
    rows = conn.execute("SELECT * FROM messages WHERE room_id = ? AND seq > ? ORDER BY seq LIMIT ?",
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
    where, args = ["room_id = ?"], [room_id]
    if latest is not None:
        where.append("ts <= ?" if inclusive else "ts < ?")
        args.append(latest)
    if oldest is not None:
        where.append("ts >= ?" if inclusive else "ts > ?")
        args.append(oldest)
    limit = count if count > 0 else -1
    rows = conn.execute(f"SELECT * FROM messages WHERE {' AND '.join(where)} ORDER BY seq DESC LIMIT ? OFFSET ?",
                        (*args, limit, offset)).fetchall()
    return [_message(r) for r in rows]


def recent(conn: sqlite3.Connection, room_id: str, limit: int) -> list[Message]:
    """The last `limit` messages of a room, oldest first."""
    return list(reversed(history(conn, room_id, count=limit)))

