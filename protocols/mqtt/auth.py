"""MQTT users, password hashes and topic ACLs (no I/O but reading the configured files at start/reload).

Passwords are stored hashed only: argon2 (`hub mqtt passwd`), or Mosquitto's `mosquitto_passwd`
formats (`$7$` PBKDF2-SHA512, `$6$` salted SHA-512) so a Mosquitto password file works unchanged.
Hash comparisons are constant-time; an unknown user costs the same as a wrong password.

ACLs are topic filters per user, for `read` (subscribe) and `write` (publish), with `%u` (user
name) and `%c` (client id) substituted, or a Mosquitto `acl_file` (`user`, `topic [read|write|readwrite|deny]`,
`pattern ...`). A subscription's filter must lie within a read filter (`sensors/+/temp` within
`sensors/#`); a publish's topic must match a write filter.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from dataclasses import dataclass, field
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from hub.core.patterns import MULTI, SEPARATOR, SINGLE, matches

_hasher = PasswordHasher()
_DUMMY = _hasher.hash("not a password")


class AuthConfigError(ValueError):
    """A users table, password file or ACL file entry that cannot be used."""


def hash_password(password: str) -> str:
    """An argon2id hash for a users table or password file."""
    return _hasher.hash(password)


def check_hash(stored: str) -> None:
    """Raise AuthConfigError unless `stored` is a hash this module verifies (never a plain password)."""
    if stored.startswith("$argon2"):
        return
    if stored.startswith("$7$") and len(stored.split("$")) == 5:
        return
    if stored.startswith("$6$") and len(stored.split("$")) == 4:
        return
    raise AuthConfigError("not a password hash (make one with `hub mqtt passwd`, or mosquitto_passwd)")


def verify_password(stored: str | None, password: bytes) -> bool:
    """Whether `password` matches the hash `stored` (None: unknown user, checked against a dummy hash)."""
    if stored is None or stored.startswith("$argon2"):
        try:
            ok = _hasher.verify(stored or _DUMMY, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            ok = False
        return ok and stored is not None
    parts = stored.split("$")
    try:
        if stored.startswith("$7$"):
            iterations, salt, digest = int(parts[2]), base64.b64decode(parts[3]), base64.b64decode(parts[4])
            got = hashlib.pbkdf2_hmac("sha512", password, salt, iterations, len(digest))
        else:
            salt, digest = base64.b64decode(parts[2]), base64.b64decode(parts[3])
            got = hashlib.sha512(password + salt).digest()
    except (ValueError, binascii.Error, IndexError):
        return False
    return hmac.compare_digest(got, digest)


def within(topic_filter: str, acl: str) -> bool:
    """Whether every topic `topic_filter` matches is matched by the ACL filter `acl`."""
    f, a = topic_filter.split(SEPARATOR), acl.split(SEPARATOR)
    if topic_filter.startswith("$") != acl.startswith("$") and a[0] in (SINGLE, MULTI):
        return False
    for i, level in enumerate(a):
        if level == MULTI:
            return True
        if i >= len(f):
            return False
        if f[i] == MULTI:
            return False
        if level == SINGLE:
            continue
        if f[i] != level:
            return False
    return len(f) == len(a)


@dataclass
class Rules:
    """Allow and deny filters of one client for reading and writing (deny wins)."""

    read: list[str] = field(default_factory=list)
    write: list[str] = field(default_factory=list)
    deny: list[str] = field(default_factory=list)

    def may_read(self, topic_filter: str) -> bool:
        if any(within(topic_filter, d) for d in self.deny):
            return False
        return any(within(topic_filter, a) for a in self.read)

    def may_write(self, topic: str) -> bool:
        if any(matches(d, topic) for d in self.deny):
            return False
        return any(matches(a, topic) for a in self.write)


def _subst(pattern: str, user: str, client_id: str) -> str:
    return pattern.replace("%u", user).replace("%c", client_id)


@dataclass
class UserEntry:
    password: str
    read: list[str] | None = None
    write: list[str] | None = None


@dataclass
class AclFile:
    """A Mosquitto acl_file: topics before any `user` line are the anonymous clients'; `pattern` lines apply to all."""

    anonymous: list[tuple[str, str]] = field(default_factory=list)
    users: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    patterns: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str) -> AclFile:
        acl = cls()
        current: list[tuple[str, str]] = acl.anonymous
        for n, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            word, _, rest = line.partition(" ")
            rest = rest.strip()
            if word == "user":
                if not rest:
                    raise AuthConfigError(f"line {n}: user without a name")
                current = acl.users.setdefault(rest, [])
            elif word in ("topic", "pattern"):
                access, _, topic = rest.partition(" ")
                if access not in ("read", "write", "readwrite", "deny"):
                    access, topic = "readwrite", rest
                topic = topic.strip()
                if not topic:
                    raise AuthConfigError(f"line {n}: {word} without a topic")
                (acl.patterns if word == "pattern" else current).append((access, topic))
            else:
                raise AuthConfigError(f"line {n}: unknown keyword {word!r}")
        return acl


def _rules(entries: list[tuple[str, str]], user: str, client_id: str) -> Rules:
    rules = Rules()
    for access, topic in entries:
        topic = _subst(topic, user, client_id)
        if access in ("read", "readwrite"):
            rules.read.append(topic)
        if access in ("write", "readwrite"):
            rules.write.append(topic)
        if access == "deny":
            rules.deny.append(topic)
    return rules


Stamp = tuple[int, int, int] | None


def file_stamps(paths: tuple[str, ...]) -> tuple[Stamp, ...]:
    """(inode, mtime, size) of each file (None: unreadable), to tell when one was edited or replaced."""
    out: list[Stamp] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            out.append(None)
            continue
        out.append((st.st_ino, st.st_mtime_ns, st.st_size))
    return tuple(out)


class Authenticator:
    """Who may connect, and what each client may read and write. `files` are the password and ACL files it was
    read from, with their stamps taken before reading them, so that `stale()` tells when to read them again.
    `passwords`: whether users are configured at all (a users table or a password file); without them, as with
    Mosquitto without a password_file, a user name and password are not checked: the client is anonymous."""

    def __init__(self, *, allow_anonymous: bool, users: dict[str, UserEntry], anonymous_read: list[str],
                 anonymous_write: list[str], acl: AclFile | None = None, files: tuple[str, ...] = (),
                 stamps: tuple[Stamp, ...] = (), passwords: bool | None = None) -> None:
        self.allow_anonymous = allow_anonymous
        self.users = users
        self.passwords = bool(users) if passwords is None else passwords
        self.anonymous_read = anonymous_read
        self.anonymous_write = anonymous_write
        self.acl = acl
        self.files = files
        self.stamps = stamps

    def stale(self) -> bool:
        """Whether a password or ACL file changed since it was read (two stat calls; none without files)."""
        return bool(self.files) and file_stamps(self.files) != self.stamps

    def check(self, username: str | None, password: bytes | None) -> bool:
        """Whether these credentials may connect (anonymous: no user name). Slow for password checks."""
        if username is None:
            return self.allow_anonymous and password is None
        if not self.passwords:
            return self.allow_anonymous
        entry = self.users.get(username)
        ok = verify_password(entry.password if entry else None, password or b"")
        return ok and entry is not None

    def rules(self, username: str | None, client_id: str) -> Rules:
        """The ACL of a client that has connected."""
        if self.acl is not None:
            entries = list(self.acl.anonymous if username is None else self.acl.users.get(username, []))
            return _rules(entries + self.acl.patterns, username or "", client_id)
        if username is None or not self.passwords:
            return _rules([("read", t) for t in self.anonymous_read] + [("write", t) for t in self.anonymous_write],
                          "", client_id)
        entry = self.users.get(username)
        read = ["#"] if entry is None or entry.read is None else entry.read
        write = ["#"] if entry is None or entry.write is None else entry.write
        return _rules([("read", t) for t in read] + [("write", t) for t in write], username, client_id)


def read_password_file(path: str) -> dict[str, str]:
    """`user:hash` lines (blank lines and `#` comments skipped)."""
    out = {}
    for n, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, stored = line.partition(":")
        if not sep or not user:
            raise AuthConfigError(f"line {n}: expected user:hash")
        try:
            check_hash(stored)
        except AuthConfigError as exc:
            raise AuthConfigError(f"line {n} ({user}): {exc}") from None
        out[user] = stored
    return out


def write_password_file(path: str, user: str, stored: str | None) -> None:
    """Set (or with None remove) `user`'s line, keeping the others; the file is created with mode 0600."""
    p = Path(path)
    lines = p.read_text(encoding="utf-8").splitlines() if p.exists() else []
    out = [ln for ln in lines if ln.partition(":")[0].strip() != user]
    if stored is not None:
        out.append(f"{user}:{stored}")
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text("".join(f"{ln}\n" for ln in out), encoding="utf-8")
    tmp.chmod(0o600)
    tmp.replace(p)
