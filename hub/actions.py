"""A registry of named actions (`plugin.action`) that adapters expose and others may call.

Adapters register plain functions (sync or async) with type hints and docstrings; the JSON-RPC
adapter runs them by name and lists them (arguments, types, defaults, documentation) for
discovery. Arguments are checked against the signature before the function runs.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .core import Hub

_MISSING = inspect.Parameter.empty


class ActionError(Exception):
    """A call that cannot run: unknown action (`status` 404) or bad arguments (400)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.status = message, status


def _type_name(hint: Any) -> str:
    if hint is _MISSING or hint is Any:
        return "any"
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        return " | ".join(_type_name(h) for h in typing.get_args(hint))
    if hint is type(None):
        return "null"
    origin = typing.get_origin(hint)
    if origin is not None:
        return getattr(origin, "__name__", str(origin))
    return getattr(hint, "__name__", str(hint))


def _accepts(hint: Any, value: Any) -> bool:
    if hint is _MISSING or hint is Any:
        return True
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        return any(_accepts(h, value) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    origin = typing.get_origin(hint) or hint
    if origin is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if origin is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(origin, type):
        return isinstance(value, origin)
    return True


@dataclass
class Action:
    name: str
    func: Callable[..., Any]
    doc: str

    @property
    def signature(self) -> inspect.Signature:
        return inspect.signature(self.func)

    def hints(self) -> dict[str, Any]:
        try:
            return typing.get_type_hints(self.func)
        except Exception:
            return {}

    def describe(self) -> dict[str, Any]:
        """Name, documentation and each argument's type, whether it is required, and its default."""
        hints = self.hints()
        args = {}
        for name, param in self.signature.parameters.items():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            arg: dict[str, Any] = {"type": _type_name(hints.get(name, _MISSING)), "required": param.default is _MISSING}
            if param.default is not _MISSING:
                arg["default"] = param.default
            args[name] = arg
        return {"name": self.name, "doc": self.doc, "args": args}

    def bind(self, args: dict[str, Any]) -> dict[str, Any]:
        """Check `args` against the signature: unknown, missing or mistyped arguments are ActionErrors."""
        hints = self.hints()
        params = self.signature.parameters
        takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
        for name in args:
            if name not in params and not takes_any:
                raise ActionError(f"{self.name}: unknown argument '{name}'")
        for name, param in params.items():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            if name not in args:
                if param.default is _MISSING:
                    raise ActionError(f"{self.name}: missing argument '{name}'")
                continue
            hint = hints.get(name, _MISSING)
            if not _accepts(hint, args[name]):
                raise ActionError(f"{self.name}: argument '{name}' must be {_type_name(hint)}, "
                                  f"got {type(args[name]).__name__}")
        return args

    async def call(self, args: dict[str, Any]) -> Any:
        result = self.func(**self.bind(args))
        if inspect.isawaitable(result):
            result = await result
        return result


class ActionRegistry:
    """name → Action. Registering the same name twice replaces the first."""

    def __init__(self) -> None:
        self.actions: dict[str, Action] = {}

    def register(self, name: str, func: Callable[..., Any], doc: str | None = None) -> None:
        if "." not in name:
            raise ValueError(f"action names are plugin.action, got {name!r}")
        self.actions[name] = Action(name, func, inspect.cleandoc(doc or func.__doc__ or ""))

    def get(self, name: str) -> Action | None:
        return self.actions.get(name)

    def require(self, name: str) -> Action:
        action = self.actions.get(name)
        if action is None:
            raise ActionError(f"unknown action '{name}'", 404)
        return action

    def __contains__(self, name: str) -> bool:
        return name in self.actions

    def __iter__(self) -> Iterator[Action]:
        return iter(sorted(self.actions.values(), key=lambda a: a.name))


def register_core_actions(registry: ActionRegistry, hub: Hub, default_project: str) -> None:
    """The core's own actions (`hub.*`), usable from JSON-RPC, SDK `rpc` and `hub exec`."""

    def _project(project: str | None) -> str:
        return project or default_project

    def publish(channel: str, data: Any, project: str | None = None) -> dict[str, Any]:
        """Publish `data` to `channel`; every subscriber of every protocol gets it."""
        pub = hub.publish(_project(project), channel, data)
        return {"uid": pub.uid, "channel": channel, "offset": pub.offset, "epoch": pub.epoch}

    def broadcast(channels: list, data: Any, project: str | None = None) -> list[dict[str, Any]]:
        """Publish the same `data` to several channels."""
        return [publish(channel, data, project) for channel in channels]

    def presence(channel: str, project: str | None = None) -> dict[str, Any]:
        """Clients subscribed to `channel`, by client id (user, client, default_info, channel_info)."""
        return hub.presence(_project(project), channel)

    def history(channel: str, limit: int | None = None, project: str | None = None) -> list[dict[str, Any]]:
        """Publications kept for `channel`, newest first (at most `limit`)."""
        result = hub.history(_project(project), channel, limit=limit, newest_first=True)
        return [{"uid": p.uid, "data": p.data, "info": p.info, "offset": p.offset, "timestamp": p.timestamp}
                for p in result.publications]

    def channels(pattern: str | None = None, project: str | None = None) -> dict[str, int]:
        """Active channels and their subscriber counts (optionally matching a glob `pattern`)."""
        return hub.channels(_project(project), pattern)

    def unsubscribe(user: str, channel: str | None = None, project: str | None = None) -> int:
        """Unsubscribe every connection of `user` from `channel` (or from every channel)."""
        return hub.unsubscribe(_project(project), user, channel)

    def disconnect(user: str, reason: str = "disconnect", project: str | None = None) -> int:
        """Disconnect every connection of `user` with `reason`."""
        return hub.disconnect(_project(project), user, reason)

    def stats() -> dict[str, Any]:
        """The core's counters and gauges."""
        return hub.stats_snapshot()

    for func in (publish, broadcast, presence, history, channels, unsubscribe, disconnect, stats):
        registry.register(f"hub.{func.__name__}", func)
