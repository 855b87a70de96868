"""The Redis API of the original server, done right: backends `RPUSH` commands to a list every node consumes.

`RPUSH centrifuge.api '{"project": "<key>", "data": <command or array>}'` runs the commands of the
signed HTTP API (`signed.run_commands`, the same code path), unsigned, with no reply; the bare
`{"method", "params"}` (or an array of them) of later Centrifugo versions goes to the default project.
A message that is not valid is logged, counted and copied as it is to `<key>.dead` (capped), and the
consumer goes on (the 0.8.4 consumer died on its first message). A message whose commands could not
run because the engine was unreachable goes back to the head of its list (at least once). Optional
shards `<key>.0` … `<key>.<n-1>` are each consumed by one node at a time (a lease), so a backend
that sends one channel's commands to one shard keeps their order.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import trio

from hub.adapters import AdapterContext
from hub.engine.resp import Address, Connection, ConnectionLost, RedisError, backoff, parse_url

from . import signed

log = logging.getLogger("hub.command_api.redis_api")

BLPOP_TIMEOUT = 1  # seconds; well below the socket timeout, so a dead connection is noticed
BURST = 100


@dataclass
class RedisApiStats:
    messages: int = 0
    commands: int = 0
    invalid: int = 0
    requeued: int = 0
    shards_held: list[int] = field(default_factory=list)


class Invalid(Exception):
    """A message that is not a valid Redis API message (goes to the dead-letter list)."""


def parse_message(raw: bytes, default_project: str, projects: Any, max_commands: int) -> tuple[str, list[Any]]:
    """(project, commands) of one list entry; Invalid with the reason otherwise."""
    try:
        msg = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise Invalid("not valid JSON") from None
    if isinstance(msg, dict) and "project" in msg:
        project = msg["project"]
        if not isinstance(project, str) or project not in projects:
            raise Invalid(f"project not found: {project!r}")
        if "data" not in msg:
            raise Invalid("data required")
        data = msg["data"]
    elif isinstance(msg, dict) and "method" in msg or isinstance(msg, list):
        project, data = default_project, msg
    else:
        raise Invalid("expected {project, data}, a {method, params} command or an array of commands")
    commands = data if isinstance(data, list) else [data]
    if not commands:
        raise Invalid("no commands")
    if len(commands) > max_commands:
        raise Invalid(f"too many commands: at most {max_commands}")
    if not all(isinstance(c, dict) for c in commands):
        raise Invalid("a command must be an object")
    return project, commands


class Consumer:
    """Consumes the API list(s) for one node until cancelled."""

    def __init__(self, ctx: AdapterContext, addr: Address) -> None:
        self.ctx = ctx
        self.addr = addr
        s = ctx.settings
        self.key: str = s.redis_api_key
        self.dead_key = f"{self.key}.dead"
        self.stats = RedisApiStats()
        ctx.state["redis_api"] = self.stats
        self.timeout = ctx.config.engine.timeout if ctx.config.engine.type == "redis" else 1.0

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._consume, [self.key], None)
            for n in range(self.ctx.settings.redis_api_shards):
                nursery.start_soon(self._consume, [f"{self.key}.{n}"], n)
            log.info("Redis API: consuming %s in %s%s", self.key, self.addr,
                     f" and {self.ctx.settings.redis_api_shards} shard(s)" if self.ctx.settings.redis_api_shards else "")
            task_status.started()

    async def _consume(self, keys: list[str], shard: int | None) -> None:
        attempt = 0
        lease_key = f"{self.key}.{shard}.lease" if shard is not None else None
        node = self.ctx.hub.node_id
        lease_ms = 3000
        while True:
            try:
                conn = await Connection.open(self.addr, self.timeout * 2)
            except (OSError, trio.TooSlowError, ConnectionLost, RedisError) as exc:
                if attempt % 50 == 0:
                    log.warning("Redis API: cannot connect to %s: %s", self.addr, exc or type(exc).__name__)
                await trio.sleep(backoff(attempt))
                attempt += 1
                continue
            attempt = 0
            try:
                while True:
                    if lease_key is not None and not await self._lease(conn, lease_key, node, lease_ms, shard):
                        await trio.sleep(lease_ms / 3000)
                        continue
                    with trio.fail_after(BLPOP_TIMEOUT + self.timeout * 2):
                        reply = await conn.call("BLPOP", *keys, BLPOP_TIMEOUT)
                    if reply is None:
                        continue
                    list_key, raw = reply
                    batch = [raw]
                    while batch:  # then drain a burst without a round trip per message
                        for i, raw in enumerate(batch):
                            if not await self._handle(conn, list_key, raw):
                                await self._requeue(conn, list_key, batch[i:])
                                batch = []
                                break
                        else:
                            with trio.fail_after(self.timeout * 2):
                                batch = await conn.call("LPOP", list_key, BURST) or []
            except (ConnectionLost, trio.TooSlowError, RedisError, OSError) as exc:
                log.warning("Redis API: connection to %s lost: %s", self.addr, exc or type(exc).__name__)
            finally:
                await conn.aclose()
            await trio.sleep(backoff(0))

    async def _lease(self, conn: Connection, key: str, node: str, ms: int, shard: int | None) -> bool:
        """Hold the shard's lease (one node consumes a shard at a time, so its order is kept)."""
        with trio.fail_after(self.timeout * 2):
            if await conn.call("SET", key, node, "NX", "PX", ms):
                held = True
            else:
                owner = await conn.call("GET", key)
                held = owner == node.encode()
                if held:
                    await conn.call("PEXPIRE", key, ms)
        if held and shard not in self.stats.shards_held:
            self.stats.shards_held.append(shard)
        elif not held and shard in self.stats.shards_held:
            self.stats.shards_held.remove(shard)
        return held

    async def _handle(self, conn: Connection, list_key: bytes, raw: bytes) -> bool:
        """Run one message; False if it must go back to the head of its list (the engine is unreachable)."""
        hub = self.ctx.hub
        self.stats.messages += 1
        try:
            project, commands = parse_message(raw, self.default_project(), hub.projects, self.ctx.settings.max_commands)
        except Invalid as exc:
            await self._dead(conn, raw, str(exc))
            return True
        try:
            replies = await signed.run_commands(hub, hub.project(project), commands)
        except Exception as exc:  # a bug must not stop the consumer: keep the message for a person to look at
            log.exception("Redis API: message failed")
            await self._dead(conn, raw, f"internal error: {type(exc).__name__}")
            return True
        self.stats.commands += len(commands)
        failed = [r for r in replies if r.get("error")]
        if any(r["error"] == "internal server error" for r in failed):
            return False
        if failed:
            await self._dead(conn, raw, "; ".join(f"{r.get('method')}: {r['error']}" for r in failed))
        return True

    async def _requeue(self, conn: Connection, list_key: bytes, raws: list[bytes]) -> None:
        """The engine is unreachable: put the messages back at the head of their list, in order, and wait a little."""
        self.stats.requeued += len(raws)
        log.warning("Redis API: engine unavailable; %d message(s) put back on %s", len(raws), list_key.decode())
        with trio.fail_after(self.timeout * 2):
            await conn.call("LPUSH", list_key, *reversed(raws))
        await trio.sleep(backoff(2))

    def default_project(self) -> str:
        return self.ctx.settings.redis_api_project or self.ctx.config.projects[0].key

    async def _dead(self, conn: Connection, raw: bytes, reason: str) -> None:
        self.stats.invalid += 1
        text = raw[:200].decode("utf-8", "replace")
        log.warning("Redis API: invalid message (%s), copied to %s: %s", reason, self.dead_key, text)
        with trio.fail_after(self.timeout * 2):
            await conn.call("RPUSH", self.dead_key, raw)
            await conn.call("LTRIM", self.dead_key, -self.ctx.settings.redis_api_dead_max, -1)


def redis_api_address(settings: Any, config: Any) -> Address:
    return parse_url(settings.redis_api_url or config.engine.url)


async def run(ctx: AdapterContext, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """The command_api adapter's background task: the Redis API consumer, when enabled."""
    if not ctx.settings.redis_api:
        task_status.started()
        return
    await Consumer(ctx, redis_api_address(ctx.settings, ctx.config)).run(task_status=task_status)
