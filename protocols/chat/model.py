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

API_VERSION = "0.1"

# Every permission the chat knows, with what it allows. Role `admin` holds all of them implicitly.
PERMISSIONS: dict[str, str] = {
    "bulk-register-user": "register users in bulk (POST /api/bulk/register)",
    "bulk-create-c": "create public rooms in bulk (POST /api/bulk/createRoom)",
    "create-c": "create public rooms (channels.create)",
    "create-user": "create users (users.create)",
    "delete-user": "delete users (users.delete)",
    "view-user-administration": "list users (users.list)",
    "assign-roles": "give and take users' roles (roles.addUserToRole, roles.removeUserFromRole)",
    "access-permissions": "create and delete roles, set role permissions (roles.create, roles.delete, permissions.update)",
}
ADMIN_ROLE = "admin"
USER_ROLE = "user"
# Roles created with a new database; they cannot be deleted.
DEFAULT_ROLES: dict[str, tuple[str, tuple[str, ...]]] = {
    ADMIN_ROLE: ("administrators: every permission", ()),
    USER_ROLE: ("every registered user", ("create-c",)),
}
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


def hash_password(password: str) -> str:
    """Argon2id (memory-hard) hash of `password`. CPU- and memory-heavy: call it off the event loop."""
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> tuple[bool, str | None]:
    """(matches, new hash if the stored one should be upgraded). `stored` None still costs a hash."""
    global _dummy_hash
    if stored is None:
        if _dummy_hash is None:
            _dummy_hash = _hasher.hash(new_token())
        stored, password = _dummy_hash, password + "\0never"
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False, None
    return True, (_hasher.hash(password) if _hasher.check_needs_rehash(stored) else None)


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
            data = json.loads(stripped)
        except (ValueError, RecursionError):
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
    usernames: list[str] = field(default_factory=list)


@dataclass
class Message:
    seq: int
    id: str
    room_id: str
    user_id: str
    username: str
    msg: str
    ts: int


def message_obj(m: Message) -> dict[str, Any]:
    """A message as the reference shows it: _id, rid, msg, ts (ISO 8601), u {_id, username}."""
    return {"_id": m.id, "rid": m.room_id, "msg": m.msg, "ts": iso(m.ts), "u": {"_id": m.user_id, "username": m.username}}


def room_obj(r: Room) -> dict[str, Any]:
    """A public room (Rocket.Chat channel) with its members' usernames."""
    obj: dict[str, Any] = {
        "_id": r.id, "name": r.name, "fname": r.name, "t": r.type, "usernames": r.usernames,
        "usersCount": len(r.usernames), "msgs": r.msgs, "ts": iso(r.created_at), "ro": r.read_only,
        "default": r.default, "sysMes": True, "_updatedAt": iso(r.last_message_at or r.created_at),
    }
    if r.creator_id:
        obj["u"] = {"_id": r.creator_id, "username": r.creator_name}
    if r.last_message_at:
        obj["lm"] = iso(r.last_message_at)
    return obj


def user_obj(u: User, *, private: bool = False) -> dict[str, Any]:
    """A user as the v1 API shows it; `private` adds what only the user themself (or an admin) sees."""
    obj: dict[str, Any] = {"_id": u.id, "username": u.username, "name": u.name or u.username, "type": "user",
                           "status": "offline", "active": u.active, "roles": u.roles, "createdAt": iso(u.created_at)}
    if private and u.email:
        obj["emails"] = [{"address": u.email, "verified": False}]
    if private:
        obj["utcOffset"] = 0
    return obj


def reference_error(exc: ChatError) -> tuple[dict[str, Any], int]:
    """The reference API's error body: {"status": "error", "message": ...}."""
    return {"status": "error", "message": exc.message}, exc.status


def v1_error(exc: ChatError) -> tuple[dict[str, Any], int]:
    """Rocket.Chat's REST API v1 error body: {"success": false, "error": ...}; 401 keeps the login shape."""
    if exc.status == 401:
        return {"status": "error", "message": exc.message}, 401
    body: dict[str, Any] = {"success": False, "error": exc.message}
    if exc.error_type:
        body["errorType"] = exc.error_type
    return body, exc.status
