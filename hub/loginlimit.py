"""Failed-login throttling shared by the adapters that check passwords: chat (REST and DDP), JSON-RPC
/auth, the stats API's Basic auth, the dashboard and MQTT CONNECT (Rocket.Chat's Block_Multiple_Failed_Logins).
After `max_failures` failures for one user, or `max_failures_per_ip` from one address, within `window`
seconds, logins for that user (address) are refused for `block` seconds, right password or not.

No protocol knowledge and no I/O: adapters name a `scope` (their own user namespace and metrics label),
the user and the client address; the clock is injectable so tests drive the block's end.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .net.limits import address_of  # noqa: F401  (adapters take it from here with the limiter)

log = logging.getLogger("hub.login")

MAX_KEYS = 100_000  # users and addresses tracked at once; the least recently failed are forgotten beyond this
PENDING_TTL = 60.0  # seconds an attempt let through by `check` counts until `failed`/`succeeded` ends it


@dataclass
class LoginLimitSettings:
    """[login_limit]: failed-login blocking for chat (REST, DDP), JSON-RPC /auth, the stats API, the dashboard, MQTT."""

    enabled: bool = True
    max_failures: int = field(default=10, metadata={"min": 1})  # per user (per adapter's user namespace)
    max_failures_per_ip: int = field(default=10, metadata={"min": 1})  # per client address, all adapters together
    window: float = field(default=300.0, metadata={"min": 1})  # seconds the failures are counted over
    block: float = field(default=300.0, metadata={"min": 1})  # seconds logins stay refused once blocked
    ip_allowlist: list[str] = field(default_factory=list)  # addresses never blocked by address (users still are)


@dataclass(frozen=True)
class Blocked:
    """Why a login is refused: `kind` "ip" or "user", and whole seconds until it may be tried again."""

    kind: str
    retry_after: int


@dataclass
class _Entry:
    failures: deque[float] = field(default_factory=deque)
    pending: deque[float] = field(default_factory=deque)  # start times of attempts being checked now
    blocked_until: float = 0.0

    def trim(self, now: float, window: float) -> None:
        while self.failures and now - self.failures[0] >= window:
            self.failures.popleft()
        while self.pending and now - self.pending[0] >= PENDING_TTL:
            self.pending.popleft()


class LoginLimiter:
    """Counts failures per (scope, user) and per address; `check` before the password, `failed`/`succeeded` after.

    An attempt `check` lets through counts until it ends, so guesses sent in parallel (all checked before the
    first password hash is done) cannot go past the limit: with `limit` failures and attempts in flight
    together, the next one is refused as blocked (for a second) until one of them ends."""

    def __init__(self, settings: LoginLimitSettings | None = None, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = MAX_KEYS) -> None:
        self.settings = settings or LoginLimitSettings()
        self.clock = clock
        self.max_keys = max_keys
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()  # ("ip", addr) or ("user", scope\0name)
        # Counters for /metrics: failures by scope, refusals by (scope, kind), blocks started by kind.
        self.failures: dict[str, int] = {}
        self.refused: dict[tuple[str, str], int] = {}
        self.blocks: dict[str, int] = {}

    def configure(self, settings: LoginLimitSettings) -> None:
        """New limits apply to the next login; blocks already running keep their end."""
        self.settings = settings

    def _keys(self, scope: str, user: str | None, ip: str | None) -> Iterable[tuple[str, str, int]]:
        s = self.settings
        if ip and ip not in s.ip_allowlist:
            yield "ip", ip, s.max_failures_per_ip
        if user:
            yield "user", f"{scope}\0{user.lower()}", s.max_failures

    def check(self, scope: str, user: str | None, ip: str | None) -> Blocked | None:
        """None if a login may be tried now (the attempt then counts until `failed` or `succeeded`); else why
        not (the address is checked first, as Rocket.Chat does). A refusal is counted but is not a failure:
        it does not lengthen the block."""
        if not self.settings.enabled:
            return None
        now, keys = self.clock(), list(self._keys(scope, user, ip))
        for kind, key, limit in keys:
            entry = self._entries.get((kind, key))
            if entry is None:
                continue
            entry.trim(now, self.settings.window)
            wait = entry.blocked_until - now if entry.blocked_until > now else 0.0
            if not wait and len(entry.failures) + len(entry.pending) >= limit:
                wait = 1.0  # the attempts in flight may reach the limit: try again once they have ended
            if wait:
                k = (scope, kind)
                self.refused[k] = self.refused.get(k, 0) + 1
                return Blocked(kind, max(1, int(wait + 0.999)))
        for kind, key, _ in keys:
            self._entry(kind, key).pending.append(now)
        self._evict()
        return None

    def _entry(self, kind: str, key: str) -> _Entry:
        entry = self._entries.get((kind, key))
        if entry is None:
            entry = self._entries[(kind, key)] = _Entry()
        self._entries.move_to_end((kind, key))
        return entry

    def _evict(self) -> None:
        while len(self._entries) > self.max_keys:
            self._entries.popitem(last=False)

    def failed(self, scope: str, user: str | None, ip: str | None) -> Blocked | None:
        """Record a wrong password (or unknown user); returns the block it started, if any."""
        if not self.settings.enabled:
            return None
        s, now = self.settings, self.clock()
        self.failures[scope] = self.failures.get(scope, 0) + 1
        started = None
        for kind, key, limit in self._keys(scope, user, ip):
            entry = self._entry(kind, key)
            entry.trim(now, s.window)
            if entry.pending:
                entry.pending.popleft()
            entry.failures.append(now)
            if len(entry.failures) >= limit and entry.blocked_until <= now:
                entry.blocked_until = now + s.block
                entry.failures.clear()
                self.blocks[kind] = self.blocks.get(kind, 0) + 1
                started = started or Blocked(kind, int(s.block))
                # once per block (the refusals that follow are logged by the adapters at debug level only)
                who = f"address {ip}" if kind == "ip" else f"{scope} user {user!r}"
                log.warning("logins blocked for %s for %g s after %d failures in %g s", who, s.block, limit, s.window)
        self._evict()
        return started

    def succeeded(self, scope: str, user: str | None, ip: str | None) -> None:
        """A right password: the user's and the address's failures are forgotten (a login resets the count)."""
        now = self.clock()
        for kind, key, _ in self._keys(scope, user, ip):
            entry = self._entries.get((kind, key))
            if entry is None:
                continue
            if entry.pending:
                entry.pending.popleft()
            if entry.blocked_until <= now:
                entry.failures.clear()
                if not entry.pending:
                    del self._entries[(kind, key)]

    def release(self, scope: str, user: str | None, ip: str | None) -> None:
        """End an attempt `check` let through that was neither right nor wrong (e.g. no credentials at all)."""
        for kind, key, _ in self._keys(scope, user, ip):
            entry = self._entries.get((kind, key))
            if entry is not None and entry.pending:
                entry.pending.popleft()

    def blocked_now(self) -> dict[str, int]:
        """Users and addresses blocked at this moment, by kind (a gauge for /metrics)."""
        now, out = self.clock(), {"ip": 0, "user": 0}
        for (kind, _), entry in self._entries.items():
            if entry.blocked_until > now:
                out[kind] += 1
        return out
