"""Users (argon2 password hashes), revoked token ids and the token signing key, kept in one JSON file.

Small and rarely written, so one file replaced atomically (write, fsync, rename) is enough; it
survives restarts and crashes.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()


class UserStore:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.data: dict[str, Any] = {"users": {}, "revoked": {}, "secret": ""}
        self._stamp: tuple[int, int] | None = None
        self.refresh()

    def refresh(self) -> None:
        """Re-read the file if another process (`hub user add`) changed it."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            self.data = {"users": {}, "revoked": {}, "secret": "", **json.loads(self.path.read_text(encoding="utf-8"))}
            self._stamp = stamp

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".users-")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(self.data, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)
        st = self.path.stat()
        self._stamp = (st.st_mtime_ns, st.st_size)

    @property
    def users(self) -> dict[str, Any]:
        self.refresh()
        return self.data["users"]

    def signing_key(self) -> str:
        """The key tokens are signed with when hub.toml gives none: made once, then kept in the file."""
        if not self.data.get("secret"):
            self.data["secret"] = secrets.token_urlsafe(48)
            self.save()
        return self.data["secret"]

    def add_user(self, name: str, password: str) -> None:
        if not name or not password:
            raise ValueError("user name and password must not be empty")
        if name in self.users:
            raise ValueError(f"user {name!r} already exists")
        self.users[name] = {"hash": _hasher.hash(password)}
        self.save()

    def check_password(self, name: str, password: str) -> bool:
        user = self.users.get(name)
        if user is None:
            _hasher.hash(password)  # spend the same time for unknown users
            return False
        try:
            return _hasher.verify(user["hash"], password)
        except (VerificationError, InvalidHashError):
            return False

    def revoke(self, token_id: str, expires: float) -> None:
        self.data["revoked"][token_id] = expires
        self.save()

    def is_revoked(self, token_id: str) -> bool:
        self.refresh()
        return token_id in self.data["revoked"]
