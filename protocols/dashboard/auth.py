"""Login for the dashboard: the password check, server-side sessions with a CSRF token, and a rate limit.

No I/O here: the app passes the clock in (tests drive it), and argon2 runs in a thread when the
password is given as a hash.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

COOKIE = "hub_dashboard"
LOGIN_COOKIE = "hub_dashboard_login"  # the login form's CSRF token, before there is a session
MAX_SESSIONS = 256  # oldest sessions are dropped beyond this
LOGIN_WINDOW = 60.0  # seconds over which failed logins are counted

_hasher = PasswordHasher()


def is_hash(password: str) -> bool:
    """`password` may be given as an argon2 hash (`$argon2id$...`), not only in clear."""
    return password.startswith("$argon2")


def check_password(configured: str, given: str) -> bool:
    """Constant-time comparison (of digests, so lengths leak nothing); argon2 verification for a hash.

    An empty configured password accepts nobody.
    """
    if not configured:
        hmac.compare_digest(b"x" * 32, hashlib.sha256(given.encode()).digest())
        return False
    if is_hash(configured):
        try:
            return _hasher.verify(configured, given)
        except (VerificationError, InvalidHashError):
            return False
    return hmac.compare_digest(hashlib.sha256(configured.encode()).digest(), hashlib.sha256(given.encode()).digest())


def same_token(expected: str, given: str | None) -> bool:
    return bool(expected) and given is not None and hmac.compare_digest(expected.encode(), given.encode())


@dataclass
class BrowserSession:
    """One logged-in browser: its CSRF token and when it was last seen; `flash` is a message for the next page."""

    id: str
    csrf: str
    created: float
    seen: float
    flash: list[tuple[str, str]] = field(default_factory=list)


class SessionStore:
    """Sessions by cookie value, in memory (a restart logs everyone out); idle ones expire after `ttl`."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._sessions: OrderedDict[str, BrowserSession] = OrderedDict()

    def create(self) -> BrowserSession:
        now = self.clock()
        session = BrowserSession(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now, now)
        self._sessions[session.id] = session
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return session

    def get(self, cookie: str | None, ttl: float) -> BrowserSession | None:
        """The live session of `cookie`, refreshed; None if unknown or idle longer than `ttl`."""
        if not cookie:
            return None
        session = self._sessions.get(cookie)
        if session is None:
            return None
        now = self.clock()
        if now - session.seen > ttl:
            del self._sessions[cookie]
            return None
        session.seen = now
        self._sessions.move_to_end(cookie)
        return session

    def drop(self, cookie: str | None) -> None:
        if cookie:
            self._sessions.pop(cookie, None)

    def clear(self) -> None:
        self._sessions.clear()

    def __len__(self) -> int:
        return len(self._sessions)


class LoginLimiter:
    """At most `limit` failed logins per client address in any LOGIN_WINDOW seconds (and 10x that overall)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._all: deque[float] = deque()

    def _trim(self, times: deque[float], now: float) -> None:
        while times and now - times[0] >= LOGIN_WINDOW:
            times.popleft()

    def retry_after(self, client: str, limit: int) -> int:
        """Seconds until `client` may try again (0: now)."""
        now = self.clock()
        self._trim(self._all, now)
        times = self._failures.get(client)
        if times is not None:
            self._trim(times, now)
            if not times:
                del self._failures[client]
                times = None
        waits = []
        if times is not None and len(times) >= limit:
            waits.append(times[0] + LOGIN_WINDOW - now)
        if len(self._all) >= 10 * limit:
            waits.append(self._all[0] + LOGIN_WINDOW - now)
        return max(1, int(max(waits)) + 1) if waits else 0

    def failed(self, client: str) -> None:
        now = self.clock()
        self._failures.setdefault(client, deque()).append(now)
        self._all.append(now)
        if len(self._failures) > 10_000:  # many addresses: forget the quietest
            for key in [k for k, v in self._failures.items() if not v or now - v[-1] >= LOGIN_WINDOW]:
                del self._failures[key]

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)
