"""Flood limits without I/O: token buckets, a per-connection command limiter, per-IP request rates and
connection counts, and which client addresses are exempt (loopback by default: behind a reverse proxy on
the same machine every client has the proxy's address)."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Iterable

Clock = Callable[[], float]


def address_of(client: str) -> str:
    """The address part of a peer given as "host:port" ("::1:5000" too), as the HTTP layer reports it."""
    host, sep, port = client.rpartition(":")
    return host.strip("[]") if sep and port.isdigit() else client


class TokenBucket:
    """`rate` tokens a second up to `burst`; `take()` spends one if there is one."""

    __slots__ = ("rate", "burst", "tokens", "stamp", "clock")

    def __init__(self, rate: float, burst: float, clock: Clock = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, max(burst, 1.0), clock
        self.tokens = self.burst
        self.stamp = clock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def take(self, n: float = 1.0) -> bool:
        self._refill()
        if self.tokens >= n:
            self.tokens -= n
            return True
        return False

    def retry_after(self) -> float:
        """Seconds until one token is there again."""
        self._refill()
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    @property
    def full(self) -> bool:
        self._refill()
        return self.tokens >= self.burst


OK, REFUSE, DISCONNECT = "ok", "refuse", "disconnect"


class CommandLimiter:
    """One connection's command rate: over `rate` a second (after a `burst`) a command is refused; a
    client that keeps sending regardless (more than `abuse` refusals faster than `rate` a second
    gives them back) is to be disconnected."""

    __slots__ = ("commands", "patience")

    def __init__(self, rate: float, burst: float, abuse: float, clock: Clock = time.monotonic) -> None:
        self.commands = TokenBucket(rate, burst, clock)
        self.patience = TokenBucket(rate, abuse, clock)

    def check(self) -> str:
        if self.commands.take():
            return OK
        return REFUSE if self.patience.take() else DISCONNECT


def command_limiter(rate: float, burst: float, abuse: float) -> CommandLimiter | None:
    """A limiter, or None when `rate` is 0 (off)."""
    return CommandLimiter(rate, burst or rate, abuse or burst or rate) if rate > 0 else None


class Exempt:
    """Client addresses the per-IP limits do not apply to (CIDR networks or single addresses)."""

    def __init__(self, networks: Iterable[str]) -> None:
        self.networks = [ipaddress.ip_network(n, strict=False) for n in networks]
        self._cache: dict[str, bool] = {}

    def __contains__(self, host: str) -> bool:
        hit = self._cache.get(host)
        if hit is None:
            try:
                address = ipaddress.ip_address(host.split("%", 1)[0])
                if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
                    address = address.ipv4_mapped
                hit = any(address in net for net in self.networks)
            except ValueError:
                hit = False
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[host] = hit
        return hit


def check_networks(networks: Iterable[str]) -> str | None:
    """The first entry that is not an address or CIDR network, or None."""
    for n in networks:
        try:
            ipaddress.ip_network(n, strict=False)
        except ValueError:
            return n
    return None


class IPRates:
    """A token bucket per client address (requests a second); full buckets are forgotten now and then."""

    def __init__(self, rate: float, burst: float, clock: Clock = time.monotonic, max_tracked: int = 100_000) -> None:
        self.rate, self.burst, self.clock, self.max_tracked = rate, burst or rate, clock, max_tracked
        self.buckets: dict[str, TokenBucket] = {}

    def configure(self, rate: float, burst: float) -> None:
        if (rate, burst or rate) != (self.rate, self.burst):
            self.rate, self.burst = rate, burst or rate
            self.buckets.clear()

    def retry_after(self, host: str) -> float | None:
        """None if `host` may make a request now (one is counted), else the seconds to wait."""
        bucket = self.buckets.get(host)
        if bucket is None:
            if len(self.buckets) >= self.max_tracked:
                self.buckets = {h: b for h, b in self.buckets.items() if not b.full}
            bucket = self.buckets[host] = TokenBucket(self.rate, self.burst, self.clock)
        if bucket.take():
            return None
        return bucket.retry_after()


class IPCounts:
    """Connections open per client address."""

    def __init__(self) -> None:
        self.open: dict[str, int] = {}

    def add(self, host: str) -> int:
        n = self.open[host] = self.open.get(host, 0) + 1
        return n

    def remove(self, host: str) -> None:
        n = self.open.get(host, 0) - 1
        if n > 0:
            self.open[host] = n
        else:
            self.open.pop(host, None)
