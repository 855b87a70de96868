"""A registry of named actions (`plugin.action`) that adapters expose and others may call.

Adapters register plain functions with type hints and docstrings; the JSON-RPC adapter runs
them by name and lists them (arguments, types, defaults, documentation) for discovery.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class Action:
    name: str
    func: Callable[..., Any]
    doc: str

    @property
    def signature(self) -> inspect.Signature:
        return inspect.signature(self.func)


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

    def __contains__(self, name: str) -> bool:
        return name in self.actions

    def __iter__(self):
        return iter(sorted(self.actions.values(), key=lambda a: a.name))
