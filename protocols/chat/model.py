"""Chat protocol logic without I/O: errors, permissions, validation, ids, tokens, passwords and JSON shapes."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import urllib.parse
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from hub.core.errors import HubError

from . import rcdata

API_VERSION = "0.1"

# Every permission Rocket.Chat ships (with its default roles), and the reference API's bulk-create-c.
PERMISSIONS: dict[str, tuple[str, ...]] = rcdata.PERMISSIONS
ADMIN_ROLE = "admin"
USER_ROLE = "user"
GENERAL_ID = "GENERAL"
GENERAL_NAME = "general"

NOT_LOGGED_IN = "You must be logged in to do this."
NAME_RE = re.compile(r"[0-9A-Za-z._-]{1,64}\Z")
ROLE_RE = re.compile(r"[0-9A-Za-z._-]{1,64}\Z")
EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+\Z")
ID_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz"


class ChatError(HubError):
    """A refused chat request: HTTP `status`, a human `message`, and for the v1 API an `error_type`."""

    def __init__(self, status: int, message: str, error_type: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type


LOGIN_BLOCKED = {  # Rocket.Chat's validateLoginAttempt errors (Block_Multiple_Failed_Logins)
    "ip": ("error-login-blocked-for-ip", "Login has been temporarily blocked For IP"),
    "user": ("error-login-blocked-for-user", "Login has been temporarily blocked For User"),
}
LOGIN_BLOCKED_DETAILS = {"function": "Accounts.validateLoginAttempt"}


def blocked_error(kind: str) -> ChatError:
    """The refusal of a login while the client's address ("ip") or the user ("user") is blocked."""
    error_type, reason = LOGIN_BLOCKED[kind]
    return ChatError(401, reason, error_type)


def is_blocked(exc: ChatError) -> bool:
    return exc.error_type in (LOGIN_BLOCKED["ip"][0], LOGIN_BLOCKED["user"][0])


def unauthorized() -> ChatError:
    return ChatError(401, NOT_LOGGED_IN, "unauthorized")


def forbidden(message: str = "You do not have permission to do this") -> ChatError:
    return ChatError(403, message, "error-not-allowed")


def room_not_found(room: str) -> ChatError:
    return ChatError(404, f"room not found: {room}", "error-room-not-found")


def bad_request(message: str, error_type: str = "error-invalid-params") -> ChatError:
    return ChatError(400, message, error_type)


# -- ids, times, tokens, passwords ---------------------------------------------------------------
def new_id() -> str:
    """A 17-character random id like Meteor's (rooms, users, messages)."""
    return "".join(secrets.choice(ID_ALPHABET) for _ in range(17))


def iso(ms: int) -> str:
    """Epoch milliseconds → ISO 8601 UTC with milliseconds, e.g. 2015-07-27T15:25:43.549Z."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> int:
    """ISO 8601 → epoch milliseconds (naive times are UTC); ChatError 400 if unreadable."""
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        raise bad_request(f"not an ISO 8601 date: {text!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def new_token() -> str:
    """A fresh auth token (256 random bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """Tokens are stored as their SHA-256: a stolen database does not log anyone in."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


_hasher = PasswordHasher()
_dummy_hash: str | None = None
# Stored hashes are argon2id of the password's SHA-256 hex digest (what Rocket.Chat's realtime login sends),
# marked with this prefix; hashes without it (older databases) are of the password itself.
DIGEST_PREFIX = "sha256:"


def password_digest(password: str) -> str:
    """The SHA-256 hex digest a Rocket.Chat client sends instead of the password (DDP login)."""
    return hashlib.sha256(password.encode("utf-8", "surrogatepass")).hexdigest()


def hash_password(password: str) -> str:
    """Argon2id (memory-hard) hash of the password's digest. CPU- and memory-heavy: call it off the event loop."""
    return DIGEST_PREFIX + _hasher.hash(password_digest(password))


def verify_password(stored: str | None, password: str, *, digest: str | None = None) -> tuple[bool, str | None]:
    """(matches, new hash if the stored one should be upgraded). Give `password`, or `digest` (its SHA-256 hex).

    `stored` None still costs a hash. A hash of an older database (of the password itself) is checked with
    the password and upgraded; it cannot be checked with a digest alone.
    """
    global _dummy_hash
    if stored is None:
        if _dummy_hash is None:
            _dummy_hash = hash_password(new_token())
        stored, password, digest = _dummy_hash, password + "\0never", None
    if stored.startswith(DIGEST_PREFIX):
        inner = stored[len(DIGEST_PREFIX):]
        secret = (digest or "").lower() if digest is not None else password_digest(password)
        try:
            _hasher.verify(inner, secret)
        except (VerificationError, InvalidHashError):
            return False, None
        return True, (hash_password(password) if digest is None and _hasher.check_needs_rehash(inner) else None)
    if digest is not None:
        return False, None
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False, None
    return True, hash_password(password)


# -- validation ----------------------------------------------------------------------------------
def check_name(value: Any, what: str) -> str:
    """A user or room name: 1-64 of letters, digits, `.`, `_`, `-`."""
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise bad_request(f"{what} must be 1-64 letters, digits, '.', '_' or '-'", "error-invalid-name")
    return value


def check_role(value: Any) -> str:
    if not isinstance(value, str) or not ROLE_RE.match(value):
        raise bad_request("role names are 1-64 letters, digits, '.', '_' or '-'", "error-invalid-role")
    return value


def check_permission(value: Any) -> str:
    if value not in PERMISSIONS:
        raise bad_request(f"unknown permission: {value!r}", "error-invalid-permission")
    return value


def check_email(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 254 or not EMAIL_RE.match(value):
        raise bad_request("email is not a valid address", "error-invalid-email")
    return value


def check_password(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise bad_request("a non-empty password is required", "error-invalid-password")
    if len(value) > 1024:
        raise bad_request("password is too long (at most 1024 characters)", "error-invalid-password")
    return value


def check_message(value: Any, max_length: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise bad_request("'msg' must be a non-empty string", "error-invalid-msg")
    if len(value) > max_length:
        raise bad_request(f"message is too long (at most {max_length} characters)", "error-message-size-exceeded")
    return value


# -- request parameters --------------------------------------------------------------------------
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE_ESCAPE_BYTES = re.compile(rb"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _mend(value: Any) -> Any:
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_mend(v) for v in value]
    if isinstance(value, dict):
        return {_mend(k): _mend(v) for k, v in value.items()}
    return value


def loads(text: str | bytes) -> Any:
    """`json.loads`, with each lone surrogate (an escaped `\\ud800`, valid JSON) read as U+FFFD: what Rocket.Chat
    keeps, since Node writes strings to MongoDB as UTF-8 that way; SQLite would refuse the str. ValueError as
    json.loads, also for nesting too deep."""
    try:
        value = json.loads(text)
        escaped = _SURROGATE_ESCAPE.search(text) if isinstance(text, str) else _SURROGATE_ESCAPE_BYTES.search(text)
        return _mend(value) if escaped else value
    except RecursionError:
        raise ValueError("too deeply nested") from None


def parse_body(body: bytes, content_type: str) -> dict[str, Any]:
    """The parameters of a POST body: a JSON object or a urlencoded form (curl's `-d` sends JSON as a form)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request("the body is not UTF-8") from None
    stripped = text.strip()
    if not stripped:
        return {}
    if content_type == "application/json" or stripped[0] in "{[":
        try:
            data = loads(stripped)
        except ValueError:
            raise bad_request("the body is not valid JSON") from None
        if not isinstance(data, dict):
            raise bad_request("the body must be a JSON object")
        return data
    if content_type.startswith("multipart/"):
        raise bad_request("multipart bodies are not supported: send JSON or a urlencoded form")
    return dict(urllib.parse.parse_qsl(text, keep_blank_values=True))


def query_params(query: dict[str, list[str]]) -> dict[str, str]:
    """A query string's parameters (the last value of each)."""
    return {k: v[-1] for k, v in query.items() if v}


def get_str(params: dict[str, Any], *names: str, required: bool = True) -> str | None:
    """The first of `names` present as a non-empty string; ChatError 400 if required and missing."""
    for name in names:
        value = params.get(name)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise bad_request(f"'{name}' must be a string")
        return value
    if required:
        raise bad_request(f"'{names[0]}' is required", "error-param-not-provided")
    return None


def get_int(params: dict[str, Any], name: str, default: int, lo: int, hi: int) -> int:
    """An integer parameter (JSON number or numeric string) clamped to [lo, hi]."""
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise bad_request(f"'{name}' must be an integer") from None
    if isinstance(value, bool) or isinstance(value, float) and value != number:
        raise bad_request(f"'{name}' must be an integer")
    return max(lo, min(hi, number))


def get_bool(params: dict[str, Any], name: str, default: bool = False) -> bool:
    value = params.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "1", "false", "0"):
        return value.lower() in ("true", "1")
    raise bad_request(f"'{name}' must be true or false")


def get_list(params: dict[str, Any], name: str) -> list[Any]:
    value = params.get(name)
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [v for v in value.split(",") if v]
    if not isinstance(value, list):
        raise bad_request(f"'{name}' must be an array")
    return value


# -- records and their JSON shapes ---------------------------------------------------------------
@dataclass
class User:
    id: str
    username: str
    name: str
    email: str | None
    active: bool
    created_at: int
    roles: list[str] = field(default_factory=list)
    password_hash: str | None = None
    status: str = "offline"
    status_text: str = ""
    status_default: str = "online"
    avatar_url: str | None = None
    preferences: dict[str, Any] = field(default_factory=dict)
    last_login: int | None = None
    updated_at: int = 0
    type: str = "user"


@dataclass
class Room:
    id: str
    name: str
    type: str
    creator_id: str | None
    creator_name: str | None
    created_at: int
    default: bool
    read_only: bool
    msgs: int = 0
    last_message_at: int | None = None
    usernames: list[str] | None = None  # None: not loaded
    uids: list[str] = field(default_factory=list)
    fname: str = ""
    topic: str | None = None
    description: str | None = None
    announcement: str | None = None
    join_code: str | None = None
    archived: bool = False
    encrypted: bool = False
    custom_fields: dict[str, Any] = field(default_factory=dict)
    prid: str | None = None
    team_id: str | None = None
    team_main: bool = False
    team_default: bool = False
    updated_at: int = 0
    users_count: int | None = None


@dataclass
class Message:
    seq: int
    id: str
    room_id: str
    user_id: str
    username: str
    msg: str
    ts: int
    name: str = ""
    t: str | None = None
    tmid: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    reactions: dict[str, Any] = field(default_factory=dict)
    pinned: bool = False
    edited_at: int | None = None
    edited_by: dict[str, Any] | None = None
    updated_at: int = 0
    tcount: int = 0
    tlm: int | None = None
    drid: str | None = None
    deleted_at: int | None = None
    starred: bool = False


def message_obj(m: Message) -> dict[str, Any]:
    """A message as the reference shows it: _id, rid, msg, ts (ISO 8601), u {_id, username}."""
    return {"_id": m.id, "rid": m.room_id, "msg": m.msg, "ts": iso(m.ts), "u": {"_id": m.user_id, "username": m.username}}


def rc_message(m: Message, date: Any = None) -> dict[str, Any]:
    """A message as Rocket.Chat's APIs show it; `date` formats times (ISO strings for REST, {"$date": ms} for DDP)."""
    fmt = date or iso
    obj: dict[str, Any] = {"_id": m.id, "rid": m.room_id, "msg": m.msg, "ts": fmt(m.ts),
                           "u": {"_id": m.user_id, "username": m.username, "name": m.name or m.username},
                           "_updatedAt": fmt(m.updated_at or m.ts), "urls": [], "mentions": [], "channels": []}
    extra = dict(m.extra)
    obj["mentions"] = extra.pop("mentions", [])
    for key, value in extra.items():
        obj[key] = value
    if m.t:
        obj["t"] = m.t
    if m.tmid:
        obj["tmid"] = m.tmid
    if m.reactions:
        obj["reactions"] = m.reactions
    if m.pinned:
        obj["pinned"] = True
    if m.edited_at:
        obj["editedAt"] = fmt(m.edited_at)
        obj["editedBy"] = m.edited_by
    if m.tcount:
        obj["tcount"] = m.tcount
        obj["tlm"] = fmt(m.tlm or m.ts)
    if m.drid:
        obj["drid"] = m.drid
    if m.starred:
        obj["starred"] = [{"_id": m.user_id}]
    return obj


def room_obj(r: Room, date: Any = None, *, usernames: bool = True) -> dict[str, Any]:
    """A room as Rocket.Chat's APIs show it (channel, group, direct room or discussion)."""
    fmt = date or iso
    count = r.users_count if r.users_count is not None else len(r.usernames or ())
    obj: dict[str, Any] = {
        "_id": r.id, "t": r.type, "msgs": r.msgs, "usersCount": count, "ts": fmt(r.created_at),
        "ro": r.read_only, "default": r.default, "sysMes": True, "_updatedAt": fmt(r.updated_at or r.last_message_at or r.created_at),
    }
    if r.type != "d":
        obj["name"], obj["fname"] = r.name, r.fname or r.name
        obj["customFields"] = r.custom_fields
    if usernames and r.usernames is not None:
        obj["usernames"] = r.usernames
        if r.type == "d":
            obj["uids"] = r.uids
    if r.creator_id:
        obj["u"] = {"_id": r.creator_id, "username": r.creator_name}
    if r.last_message_at:
        obj["lm"] = fmt(r.last_message_at)
    for key, value in (("topic", r.topic), ("description", r.description), ("announcement", r.announcement),
                       ("prid", r.prid), ("teamId", r.team_id)):
        if value is not None:
            obj[key] = value
    if r.join_code:
        obj["joinCodeRequired"] = True
    if r.archived:
        obj["archived"] = True
    if r.encrypted or r.type == "p":
        obj["encrypted"] = r.encrypted
    if r.team_main:
        obj["teamMain"] = True
    if r.team_id and not r.team_main:
        obj["teamDefault"] = r.team_default
    return obj


def user_obj(u: User, *, private: bool = False, date: Any = None) -> dict[str, Any]:
    """A user as the v1 API shows it; `private` adds what only the user themself (or an admin) sees."""
    fmt = date or iso
    obj: dict[str, Any] = {"_id": u.id, "username": u.username, "name": u.name or u.username, "type": u.type,
                           "status": u.status, "active": u.active, "roles": u.roles, "createdAt": fmt(u.created_at),
                           "_updatedAt": fmt(u.updated_at or u.created_at), "utcOffset": 0}
    if u.status_text:
        obj["statusText"] = u.status_text
    if u.avatar_url:
        obj["avatarUrl"] = u.avatar_url
    if u.last_login:
        obj["lastLogin"] = fmt(u.last_login)
    if private:
        if u.email:
            obj["emails"] = [{"address": u.email, "verified": False}]
            obj["email"] = u.email
        obj["statusDefault"] = u.status_default
        obj["settings"] = {"preferences": u.preferences}
        obj["requirePasswordChange"] = False
    return obj


def reference_error(exc: ChatError) -> tuple[dict[str, Any], int]:
    """The reference API's error body: {"status": "error", "message": ...} (and the type of a blocked login)."""
    if is_blocked(exc):
        return {"status": "error", "message": exc.message, "error": exc.error_type}, exc.status
    return {"status": "error", "message": exc.message}, exc.status


def v1_error(exc: ChatError) -> tuple[dict[str, Any], int]:
    """Rocket.Chat's REST API v1 error body: {"success": false, "error": ...}; 401 keeps the login shape.

    Rocket.Chat answers an unknown room with 400 (the reference API with 404).
    """
    if is_blocked(exc):  # the login route's body for a Meteor.Error (Rocket.Chat before 8.0, which kept the error type)
        return {"success": False, "error": exc.error_type, "status": "error", "details": dict(LOGIN_BLOCKED_DETAILS),
                "message": exc.message}, 401
    if exc.status == 401:
        return {"status": "error", "message": exc.message}, 401
    if exc.error_type == "error-room-not-found":
        return {"success": False, "error": exc.message, "errorType": exc.error_type}, 400
    body: dict[str, Any] = {"success": False, "error": exc.message}
    if exc.error_type:
        body["errorType"] = exc.error_type
    return body, exc.status
