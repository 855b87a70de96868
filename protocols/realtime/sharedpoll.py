"""Centrifugo 6.8's shared poll (experimental): the server polls a backend for the keys its clients track.

A client subscribes with `type: 4` to a channel of a shared poll namespace, then tracks keys with `sub_refresh`
`type: 1` (batches of `{key, version}` items, each batch signed by the application: `iat:expiry:hmac`, the
HMAC-SHA256 with `shared_poll.hmac_secret_key` of `iat NUL expiry NUL user NUL channel NUL sha256(keys joined by
NUL)`), untracks with `type: 2`. Every `refresh_interval` the node asks the namespace's proxy endpoint once for
all keys its connections track (`{"channel", "items": [{key, version}]}` in batches; the answer's
`result.items` hold `{key, data, version, removed}`), and pushes each newer item to the connections tracking
that key with an older version. In versionless mode the node numbers versions itself (a change of data is a
new version) under an epoch that it tells subscribers.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from hub.core.history import new_epoch

from .proxy import Endpoint, HttpCaller, _endpoint

if TYPE_CHECKING:
    from .sdk import SdkClient

log = logging.getLogger("hub.realtime.sharedpoll")



@dataclass(frozen=True, slots=True)
class PollOptions:
    endpoint: Endpoint
    versioned: bool
    interval: float
    batch: int
    max_keys: int


class PollConfigError(Exception):
    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key, self.problem = key, problem


def parse_config(table: Any, proxy: Any) -> dict[str, PollOptions]:
    """[realtime.shared_poll] (namespace → {proxy, versioned, interval, batch, max_keys}), its proxies named in
    [realtime.proxy.named]; raises PollConfigError naming the key below realtime."""
    out: dict[str, PollOptions] = {}
    named = (proxy or {}).get("named") or {}
    for ns, item in (table or {}).items():
        key = f"shared_poll.{ns}"
        if not isinstance(item, dict):
            raise PollConfigError(key, "expected a table")
        name = item.get("proxy")
        if not isinstance(name, str) or name not in named:
            raise PollConfigError(f"{key}.proxy", f"no proxy named {name!r} in realtime.proxy.named")
        try:
            endpoint = _endpoint(name, named[name], f"proxy.named.{name}")
        except Exception as exc:  # ProxyConfigError: reported by the proxy's own validation
            raise PollConfigError(f"{key}.proxy", str(exc)) from None
        interval, batch, max_keys = item.get("interval", 1.0), item.get("batch", 100), item.get("max_keys", 1000)
        if isinstance(interval, bool) or not isinstance(interval, int | float) or not 0.01 <= interval <= 3600:
            raise PollConfigError(f"{key}.interval", "seconds, at least 0.01")
        for k, v in (("batch", batch), ("max_keys", max_keys)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise PollConfigError(f"{key}.{k}", "a positive integer")
        out[ns] = PollOptions(endpoint, bool(item.get("versioned", False)), float(interval), batch, max_keys)
    return out


def signature_expiry(secret: str, signature: Any, user: str, channel: str, keys: list[str]) -> int | None:
    """The expiry (Unix seconds) of a valid batch signature, None if it is not one."""
    if not isinstance(signature, str) or signature.count(":") != 2:
        return None
    iat, expiry, mac = signature.split(":")
    if not (iat.isdigit() and expiry.isdigit()):
        return None
    keys_hash = hashlib.sha256("\x00".join(keys).encode()).hexdigest()
    payload = f"{iat}\x00{expiry}\x00{user}\x00{channel}\x00{keys_hash}".encode()
    good = hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()
    return int(expiry) if hmac.compare_digest(good, mac) else None


class _Channel:
    """One polled channel on this node: the latest item of each tracked key, and who tracks it at what version."""

    __slots__ = ("name", "options", "epoch", "cache", "trackers", "due", "subscribers")

    def __init__(self, name: str, options: PollOptions, now: float) -> None:
        self.name = name
        self.options = options
        self.epoch = "" if options.versioned else new_epoch()
        self.cache: dict[str, tuple[int, Any]] = {}
        self.trackers: dict[str, dict[SdkClient, int]] = {}
        self.due = now
        self.subscribers = 0  # this node's connections subscribed (the channel and its epoch go with the last)


class SharedPoll:
    """Every shared poll channel this node's connections track, and the loop that polls their backends."""

    def __init__(self, options: dict[str, PollOptions], secret: str, caller: HttpCaller,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.options = options
        self.secret = secret
        self.caller = caller
        self.clock = clock
        self.channels: dict[tuple[str, str], _Channel] = {}
        self._wake = trio.Event()

    def options_for(self, namespace: str) -> PollOptions | None:
        return self.options.get(namespace)

    def _channel(self, project: str, channel: str, options: PollOptions) -> _Channel:
        ch = self.channels.get((project, channel))
        if ch is None:
            ch = self.channels[(project, channel)] = _Channel(channel, options, self.clock())
        return ch

    def subscribe(self, project: str, channel: str, options: PollOptions) -> str:
        """A connection subscribed: the channel's epoch (empty in versioned mode)."""
        ch = self._channel(project, channel, options)
        ch.subscribers += 1
        return ch.epoch

    def track(self, client: SdkClient, project: str, channel: str, options: PollOptions, batches: list[dict[str, Any]],
              untrack: list[str], now: float) -> tuple[list[dict[str, Any]], int]:
        """Track the signed batches' keys (after untracking `untrack`): the cached items newer than the client's
        versions, and the seconds until the first signature expires. Raises ValueError("invalid"/"expired"/"limit")."""
        assert client.session is not None
        user = client.session.user
        items: dict[str, int] = {}
        ttl: int | None = None
        for batch in batches:
            pairs = batch.get("items") if isinstance(batch, dict) else None
            if not isinstance(pairs, list) or not pairs:
                raise ValueError("invalid")
            keys = []
            for item in pairs:
                key = item.get("key") if isinstance(item, dict) else None
                version = item.get("version", 0) or 0
                if not isinstance(key, str) or not key or not isinstance(version, int) or version < 0:
                    raise ValueError("invalid")
                keys.append(key)
                items[key] = version
            expiry = signature_expiry(self.secret, batch.get("signature"), user, channel, keys)
            if expiry is None:
                raise ValueError("invalid")
            if expiry <= now:
                raise ValueError("expired")
            ttl = int(expiry - now) if ttl is None else min(ttl, int(expiry - now))
        ch = self._channel(project, channel, options)
        mine = {k for k, who in ch.trackers.items() if client in who} - set(untrack)
        if len(mine | set(items)) > options.max_keys:
            raise ValueError("limit")
        self.untrack(client, project, channel, untrack)
        new_keys = any(key not in ch.trackers for key in items)
        fresh = []
        for key, version in items.items():
            cached = ch.cache.get(key)
            if cached is not None and cached[0] > version:
                fresh.append({"key": key, "data": cached[1], "version": cached[0]})
                version = cached[0]
            ch.trackers.setdefault(key, {})[client] = version
        if new_keys:  # keys nobody tracked: ask the backend now, not at the next interval
            ch.due = min(ch.due, self.clock())
            self._wake.set()
        return fresh, ttl or 0

    def untrack(self, client: SdkClient, project: str, channel: str, keys: list[str]) -> None:
        ch = self.channels.get((project, channel))
        if ch is None:
            return
        for key in keys:
            who = ch.trackers.get(key)
            if who is not None:
                who.pop(client, None)
                if not who:
                    del ch.trackers[key]
                    ch.cache.pop(key, None)

    def drop(self, client: SdkClient, project: str, channel: str) -> None:
        """A connection unsubscribed or went: its keys are untracked."""
        ch = self.channels.get((project, channel))
        if ch is not None:
            self.untrack(client, project, channel, [k for k, who in ch.trackers.items() if client in who])
            ch.subscribers -= 1
            if ch.subscribers <= 0 and not ch.trackers:
                del self.channels[(project, channel)]

    async def run(self) -> None:
        """Poll each channel with tracked keys every interval (one request per batch of keys)."""
        while True:
            now = self.clock()
            due = [ch for ch in self.channels.values() if ch.trackers and ch.due <= now]
            for ch in due:
                ch.due = now + ch.options.interval
                await self._poll(ch)
            waits = [ch.due for ch in self.channels.values() if ch.trackers]
            self._wake = trio.Event()
            with trio.move_on_after(max(0.0, min(waits) - self.clock()) if waits else 3600):
                await self._wake.wait()

    async def _poll(self, ch: _Channel) -> None:
        keys = list(ch.trackers)
        step = ch.options.batch
        for i in range(0, len(keys), step):
            items = []
            for key in keys[i:i + step]:
                cached = ch.cache.get(key)
                items.append({"key": key, "version": cached[0]} if cached and ch.options.versioned else {"key": key})
            try:
                answer = await self.caller.post(ch.options.endpoint, {"channel": ch.name, "items": items},
                                                {"Content-Type": "application/json"})
            except Exception as exc:  # the backend is down, refuses or answers nonsense (ProxyFailure...): next interval
                log.warning("shared poll backend for %s failed: %s", ch.name, exc)
                return
            result = answer.get("result") if isinstance(answer, dict) else None
            for item in (result or {}).get("items") or []:
                if isinstance(item, dict):
                    self._apply(ch, item)

    def _apply(self, ch: _Channel, item: dict[str, Any]) -> None:
        key = item.get("key")
        who = ch.trackers.get(key) if isinstance(key, str) else None
        if not who:
            return
        assert isinstance(key, str)
        if item.get("removed"):
            ch.cache.pop(key, None)
            del ch.trackers[key]
            body = {"key": key, "removed": True}
            for client in list(who):
                client.push_keyed(ch.name, body)
            return
        data = item.get("data")
        cached = ch.cache.get(key)
        if ch.options.versioned:
            version = item.get("version")
            if not isinstance(version, int) or isinstance(version, bool) or version <= (cached[0] if cached else 0):
                return
        else:
            if cached is not None and cached[1] == data:
                return
            version = (cached[0] if cached else 0) + 1
        ch.cache[key] = (version, data)
        body = {"key": key, "data": data, "version": version}
        for client, seen in list(who.items()):
            if seen < version:
                who[client] = version
                client.push_keyed(ch.name, body)
