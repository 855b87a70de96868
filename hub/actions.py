"""A registry of named actions (`plugin.action`) that adapters expose and others may call.

Adapters register plain functions (sync or async) with type hints and docstrings; the JSON-RPC
adapter runs them by name and lists them (arguments, types, defaults, documentation) for
discovery. Arguments are checked against the signature before the function runs;
`ActionRegistry.run` turns every failure into an ActionError with a status (400, 404, 500).
"""

from __future__ import annotations

import inspect
import logging
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .core import Hub
from .core.errors import HubError

log = logging.getLogger("hub.actions")

_MISSING = inspect.Parameter.empty


class ActionError(Exception):
    """A call that cannot run: unknown action (`status` 404) or bad arguments (400)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.status = message, status


def _type_name(hint: Any) -> str:
    """A short readable name for a type hint: `str`, `int | null`, `list[str]`, `'a' | 'b'`."""
    if hint is _MISSING or hint is Any:
        return "any"
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        return " | ".join(_type_name(h) for h in typing.get_args(hint))
    if origin is typing.Literal:
        return " | ".join(repr(v) for v in typing.get_args(hint))
    if hint is type(None):
        return "null"
    if origin is not None:
        params = [_type_name(a) for a in typing.get_args(hint) if a is not Ellipsis]
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join(params)}]" if params else name
    return getattr(hint, "__name__", str(hint))


def _accepts(hint: Any, value: Any) -> bool:
    """Whether a JSON value fits a hint; containers are checked item by item."""
    if hint is _MISSING or hint is Any or isinstance(hint, typing.TypeVar):
        return True
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        return any(_accepts(h, value) for h in typing.get_args(hint))
    if origin is typing.Literal:
        return any(value == v and type(value) is type(v) for v in typing.get_args(hint))
    if hint is type(None):
        return value is None
    base = origin or hint
    if base is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if base is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if not isinstance(base, type):
        return True
    params = typing.get_args(hint)
    if base in (list, tuple, set, frozenset):  # JSON has arrays only
        if not isinstance(value, list):
            return False
        if base is tuple and params and not (len(params) == 2 and params[1] is Ellipsis):
            return len(params) == len(value) and all(_accepts(h, v) for h, v in zip(params, value, strict=True))
        return not params or all(_accepts(params[0], v) for v in value)
    if not isinstance(value, base):
        return False
    if base is dict and len(params) == 2:
        return all(_accepts(params[0], k) and _accepts(params[1], v) for k, v in value.items())
    return True


@dataclass
class Action:
    """A registered function: its signature and type hints are read once, at registration."""

    name: str
    func: Callable[..., Any]
    doc: str
    signature: inspect.Signature = field(init=False, repr=False)
    _hints: dict[str, Any] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.signature = inspect.signature(self.func)
        try:
            self._hints = typing.get_type_hints(self.func)
        except Exception:  # unresolvable annotations: accept any value
            self._hints = {}

    def hints(self) -> dict[str, Any]:
        return self._hints

    def describe(self) -> dict[str, Any]:
        """Name, documentation, each argument's type, whether it is required and its default, and the result's type."""
        args = {}
        for name, param in self.signature.parameters.items():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            arg: dict[str, Any] = {"type": _type_name(self._hints.get(name, _MISSING)), "required": param.default is _MISSING}
            if param.default is not _MISSING:
                arg["default"] = param.default
            args[name] = arg
        return {"name": self.name, "doc": self.doc, "args": args, "returns": _type_name(self._hints.get("return", _MISSING))}

    def bind(self, args: dict[str, Any]) -> dict[str, Any]:
        """Check `args` against the signature: unknown, missing or mistyped arguments are ActionErrors."""
        params = self.signature.parameters
        takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
        for name in args:
            param = params.get(name)
            if (param is None and not takes_any) or (param is not None and param.kind in (
                    param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY)):
                raise ActionError(f"{self.name}: unknown argument '{name}'")
        for name, param in params.items():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            if name not in args:
                if param.default is _MISSING:
                    raise ActionError(f"{self.name}: missing argument '{name}'")
                continue
            hint = self._hints.get(name, _MISSING)
            if not _accepts(hint, args[name]):
                raise ActionError(f"{self.name}: argument '{name}' must be {_type_name(hint)}, "
                                  f"got {_json_type(args[name])}")
        return args

    async def call(self, args: dict[str, Any]) -> Any:
        """Validate `args`, then run the function (awaited if it is async)."""
        result = self.func(**self.bind(args))
        if inspect.isawaitable(result):
            result = await result
        return result


def _json_type(value: Any) -> str:
    return {bool: "boolean", int: "int", float: "float", str: "str", list: "array", dict: "object",
            type(None): "null"}.get(type(value), type(value).__name__)


class ActionRegistry:
    """name → Action. Registering the same name twice replaces the first."""

    def __init__(self) -> None:
        self.actions: dict[str, Action] = {}

    def register(self, name: str, func: Callable[..., Any], doc: str | None = None) -> None:
        """Add `func` as action `name` ("plugin.action"); `doc` defaults to its docstring."""
        plugin, _, action = name.partition(".")
        if not plugin or not action or plugin == "procedure":
            raise ValueError(f"action names are plugin.action (plugin not 'procedure'), got {name!r}")
        self.actions[name] = Action(name, func, inspect.cleandoc(doc or func.__doc__ or ""))

    def unregister(self, name: str) -> None:
        self.actions.pop(name, None)

    def get(self, name: str) -> Action | None:
        return self.actions.get(name)

    def require(self, name: str) -> Action:
        action = self.actions.get(name)
        if action is None:
            raise ActionError(f"unknown action '{name}'", 404)
        return action

    async def run(self, name: str, args: dict[str, Any]) -> Any:
        """Run action `name`; every failure is an ActionError: 404 unknown, 400 bad arguments or refused by
        the core (a HubError; its own `status` if it has one), 500 anything else the action raised."""
        action = self.require(name)
        try:
            return await action.call(args)
        except ActionError:
            raise
        except HubError as exc:
            status = getattr(exc, "status", 400)
            status = status if isinstance(status, int) and 400 <= status <= 599 else 400
            raise ActionError(f"{name}: {exc.message}", status) from None
        except Exception as exc:
            log.info("action %s raised %r", name, exc)
            raise ActionError(f"{name} failed: {type(exc).__name__}: {exc}", 500) from None

    def describe(self) -> dict[str, Any]:
        """Every action, by name, as Action.describe gives it."""
        return {a.name: a.describe() for a in self}

    def __contains__(self, name: str) -> bool:
        return name in self.actions

    def __iter__(self) -> Iterator[Action]:
        return iter(sorted(self.actions.values(), key=lambda a: a.name))


def register_core_actions(registry: ActionRegistry, hub: Hub, default_project: str | Callable[[], str]) -> None:
    """The core's own actions (`hub.*`); `project` defaults to `default_project` (or what it returns, if callable)."""

    def _project(project: str | None) -> str:
        if project:
            return project
        return default_project() if callable(default_project) else default_project

    async def publish(channel: str, data: Any, project: str | None = None) -> dict[str, Any]:
        """Publish `data` to `channel`; every subscriber of every protocol gets it."""
        pub = await hub.publish(_project(project), channel, data)
        return {"uid": pub.uid, "channel": channel, "offset": pub.offset, "epoch": pub.epoch}

    async def broadcast(channels: list[str], data: Any, project: str | None = None) -> list[dict[str, Any]]:
        """Publish the same `data` to several channels."""
        return [await publish(channel, data, project) for channel in channels]

    async def presence(channel: str, project: str | None = None) -> dict[str, Any]:
        """Clients subscribed to `channel`, by client id (user, client, default_info, channel_info)."""
        return await hub.presence(_project(project), channel)

    async def history(channel: str, limit: int | None = None, since: int | None = None,
                project: str | None = None) -> list[dict[str, Any]]:
        """Publications kept for `channel`, newest first (at most `limit`; only those after offset `since`)."""
        result = await hub.history(_project(project), channel, limit=limit, since=since, newest_first=True)
        return [{"uid": p.uid, "data": p.data, "info": p.info, "offset": p.offset, "timestamp": p.timestamp}
                for p in result.publications]

    async def channels(pattern: str | None = None, project: str | None = None) -> dict[str, int]:
        """Active channels and their subscriber counts (optionally matching a glob `pattern`)."""
        return await hub.channels(_project(project), pattern)

    async def unsubscribe(user: str, channel: str | None = None, project: str | None = None) -> int:
        """Unsubscribe every connection of `user` from `channel` (or from every channel)."""
        return await hub.unsubscribe(_project(project), user, channel)

    async def disconnect(user: str, reason: str = "disconnect", project: str | None = None) -> int:
        """Disconnect every connection of `user` with `reason`."""
        return await hub.disconnect(_project(project), user, reason)

    def stats() -> dict[str, Any]:
        """The core's counters and gauges."""
        return hub.stats_snapshot()

    for func in (publish, broadcast, presence, history, channels, unsubscribe, disconnect, stats):
        registry.register(f"hub.{func.__name__}", func)
