"""Users (argon2 password hashes), revoked token ids and the generated token signing key, in one JSON file.

Small and rarely written, so one file replaced atomically (write, fsync, rename) is enough; it survives
restarts and crashes. Every change is a read-modify-write under an exclusive lock (`<file>.lock`), so
`hub user add` and a running hub can change it at the same time; readers notice a new version by its
inode, mtime and size and re-read it.
"""

from __future__ import annotations

import fcntl
import functools
import json
import logging
import os
import secrets
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

log = logging.getLogger("hub.jsonrpc")
_hasher = PasswordHasher()  # argon2id, 64 MiB, 3 passes: memory-hard
MAX_NAME = 64
MAX_TOKENS_PER_USER = 1000  # live token records a user keeps; beyond, the oldest is revoked (the users file stays small)


@functools.cache
def _dummy_hash() -> str:
    return _hasher.hash(secrets.token_hex(8))


class StoreError(Exception):
    """The users file cannot be read or written."""


def _empty() -> dict[str, Any]:
    return {"users": {}, "revoked": {}, "secret": "", "tokens": {}, "next_token_id": 1}


class UserStore:
    """The users file. `readonly` stores never create or change it (the library client uses one)."""

    def __init__(self, path: str | os.PathLike[str], *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self.data: dict[str, Any] = _empty()
        self._stamp: tuple[int, int, int] | None = None
        self._read(strict=True)

    # -- file -----------------------------------------------------------------------------
    def _read(self, strict: bool) -> None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            if self._stamp is not None:  # deleted under us: start again empty
                self.data, self._stamp = _empty(), None
            return
        except OSError as exc:
            raise StoreError(f"cannot read {self.path}: {exc.strerror}") from None
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or not isinstance(data.get("users", {}), dict):
                raise ValueError("not a users file")
        except (OSError, ValueError) as exc:
            if strict:
                raise StoreError(f"cannot read {self.path}: {exc}") from None
            log.error("cannot re-read %s (%s); keeping the version read before", self.path, exc)
            return
        self.data = {**_empty(), **data}
        self._stamp = stamp

    def refresh(self) -> None:
        """Re-read the file if another process (`hub user add`) changed it."""
        self._read(strict=False)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        if self.readonly:
            raise StoreError(f"{self.path} is opened read-only")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StoreError(f"cannot write {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _update(self, change: Callable[[dict[str, Any]], Any]) -> Any:
        """Read the newest version, apply `change`, write it back atomically, all under the lock."""
        with self._locked():
            self._read(strict=True)
            result = change(self.data)
            self._write()
            return result

    def _write(self) -> None:
        st = _write_json(self.path, self.data)
        self._stamp = (st.st_ino, st.st_mtime_ns, st.st_size)

    # -- operations -----------------------------------------------------------------------
    def readable_by_others(self) -> bool:
        """Whether the users file exists with permissions for its group or others (it holds password hashes)."""
        try:
            return bool(self.path.stat().st_mode & 0o077)
        except OSError:
            return False

    def backup(self, dest: str | os.PathLike[str]) -> int:
        """Copy the current users file to `dest` (0600), consistent with any concurrent change; returns its users."""
        with self._locked():
            self._read(strict=True)
            _write_json(Path(dest), self.data)
            return len(self.data["users"])

    def restore(self, src: str | os.PathLike[str]) -> int:
        """Replace the users file by the backup `src` (checked first); refused while a hub runs on this file."""
        try:
            data = json.loads(Path(src).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise StoreError(f"cannot read {src}: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("users"), dict):
            raise StoreError(f"{src} is not a users file")
        with hold_running_lock(self.path, exclusive=True) as held:
            if not held:
                raise StoreError(f"a hub is running on {self.path}: stop it before restoring")
            with self._locked():
                self.data = {**_empty(), **data}
                self._write()
        return len(self.data["users"])

    # -- users ----------------------------------------------------------------------------
    @property
    def users(self) -> dict[str, Any]:
        self.refresh()
        return self.data["users"]

    def add_user(self, name: str, password: str, *, only_if_none: bool = False) -> None:
        """Add a user; ValueError if the name is taken or bad, or (`only_if_none`) if any user exists."""
        check_name(name)
        if not password:
            raise ValueError("the password must not be empty")
        hashed = _hasher.hash(password)

        def add(data: dict[str, Any]) -> None:
            if only_if_none and data["users"]:
                raise ValueError("registration is closed: a user exists")
            if name in data["users"]:
                raise ValueError(f"user {name!r} already exists")
            ids = [u.get("id", 0) for u in data["users"].values()]
            data["users"][name] = {"hash": hashed, "created": int(time.time()), "id": max(ids, default=0) + 1}

        self._update(add)

    def set_password(self, name: str, password: str) -> None:
        if not password:
            raise ValueError("the password must not be empty")
        hashed = _hasher.hash(password)

        def change(data: dict[str, Any]) -> None:
            if name not in data["users"]:
                raise ValueError(f"unknown user {name!r}")
            data["users"][name]["hash"] = hashed
            data["users"][name]["since"] = int(time.time())  # tokens issued before this are refused

        self._update(change)

    def remove_user(self, name: str) -> None:
        """Remove a user: their tokens stop working at once."""

        def remove(data: dict[str, Any]) -> None:
            if data["users"].pop(name, None) is None:
                raise ValueError(f"unknown user {name!r}")

        self._update(remove)

    def check_password(self, name: str, password: str) -> bool:
        """Whether `password` is `name`'s; unknown users cost the same time as known ones."""
        user = self.users.get(name)
        try:
            if user is None:
                _hasher.verify(_dummy_hash(), password)
                return False
            return _hasher.verify(user["hash"], password)
        except (VerificationError, InvalidHashError):
            return False

    def user_id(self, name: str) -> int:
        """The user's number (Platypush's `user_id`): 1 for the first user, and so on."""
        users = self.users
        if "id" in users.get(name, {}):
            return int(users[name]["id"])
        return list(users).index(name) + 1 if name in users else 0

    def valid_since(self, name: str) -> int:
        """Tokens of `name` issued before this time (a password change) are refused."""
        return int(self.users.get(name, {}).get("since", 0))

    # -- tokens ---------------------------------------------------------------------------
    def signing_key(self) -> str:
        """The key tokens are signed with when hub.toml gives none: made once, then kept in the file."""
        self.refresh()
        if self.data.get("secret"):
            return str(self.data["secret"])
        if self.readonly:
            raise StoreError(f"{self.path} holds no signing key yet (start the hub once, or set token_secret)")

        def make(data: dict[str, Any]) -> str:
            if not data.get("secret"):
                data["secret"] = secrets.token_urlsafe(48)
            return str(data["secret"])

        return str(self._update(make))

    def revoke(self, token_id: str, expires: float) -> None:
        """Refuse the token `token_id` (its `jti`) from now on; entries go once the token would have expired anyway."""

        def change(data: dict[str, Any]) -> None:
            _prune(data)
            data["revoked"][token_id] = expires
            data["tokens"].pop(token_id, None)

        self._update(change)

    def record_token(self, user: str, jti: str, created: int, expires: int, name: str | None = None) -> dict[str, Any]:
        """Keep a listable record of an issued token (not the token itself); ValueError if `user` already has a
        live token called `name`. The default name is Platypush's `<user>__<8 random characters>`."""

        def add(data: dict[str, Any]) -> dict[str, Any]:
            _prune(data)
            if name is not None and any(t["user"] == user and t["name"] == name for t in data["tokens"].values()):
                raise ValueError("a token with this name already exists")
            record = {"id": int(data.get("next_token_id", 1)), "user": user,
                      "name": name or f"{user}__" + "".join(secrets.choice(_TOKEN_NAME_CHARS) for _ in range(8)),
                      "created": created, "expires": expires}
            data["next_token_id"] = record["id"] + 1
            data["tokens"][jti] = record
            mine = sorted((t["created"], t["id"], k) for k, t in data["tokens"].items() if t["user"] == user)
            for _, _, old in mine[:max(0, len(mine) - MAX_TOKENS_PER_USER)]:  # the oldest go, revoked
                log.warning("user %r has over %d live tokens: revoking the oldest (%s)", user, MAX_TOKENS_PER_USER,
                            data["tokens"][old]["name"])
                data["revoked"][old] = data["tokens"].pop(old)["expires"]
            return record

        return dict(self._update(add))

    def tokens(self, user: str | None = None) -> list[dict[str, Any]]:
        """Live recorded tokens (of `user`, or everyone's), newest first, each with its `jti`."""
        self.refresh()
        now = time.time()
        found = [{"jti": jti, **t} for jti, t in self.data.get("tokens", {}).items()
                 if t["expires"] > now and (user is None or t["user"] == user)]
        return sorted(found, key=lambda t: (t["created"], t["id"]), reverse=True)

    def revoke_id(self, token_id: int, user: str | None = None) -> dict[str, Any] | None:
        """Revoke the recorded token number `token_id` (only if it is `user`'s, when given); its record, or None."""

        def change(data: dict[str, Any]) -> dict[str, Any] | None:
            _prune(data)
            for jti, record in data["tokens"].items():
                if record["id"] == token_id and (user is None or record["user"] == user):
                    data["revoked"][jti] = record["expires"]
                    del data["tokens"][jti]
                    return {"jti": jti, **record}
            return None

        return self._update(change)

    def is_revoked(self, token_id: str) -> bool:
        self.refresh()
        return token_id in self.data["revoked"]


_TOKEN_NAME_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def _prune(data: dict[str, Any]) -> None:
    """Drop revocations and token records of tokens that have expired anyway."""
    now = time.time()
    data["revoked"] = {k: v for k, v in data.get("revoked", {}).items() if v > now}
    data["tokens"] = {k: v for k, v in data.get("tokens", {}).items() if v["expires"] > now}


def check_name(name: str) -> None:
    """User names: 1-64 printable characters without spaces or colons."""
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME or not name.isprintable() or any(
            c.isspace() or c == ":" for c in name):
        raise ValueError(f"user names are 1-{MAX_NAME} printable characters without spaces or ':'")


def _write_json(path: Path, data: dict[str, Any]) -> os.stat_result:
    """Replace `path` atomically by `data` as JSON (write, fsync, 0600, rename)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".users-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=1)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path.stat()
    except OSError as exc:
        raise StoreError(f"cannot write {path}: {exc.strerror}") from None


@contextmanager
def hold_running_lock(path: str | os.PathLike[str], *, exclusive: bool) -> Iterator[bool]:
    """`<users file>.running`: a running hub holds it shared; `restore` needs it exclusively. Yields whether it got it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path.with_name(path.name + ".running"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)
