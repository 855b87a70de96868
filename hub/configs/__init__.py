"""Config files of the systems the hub replaces, translated into a hub.toml document.

`load_settings` hands a JSON file here; `translate` picks the format by its shape and returns
the equivalent hub.toml data (a dict `parse_settings` validates) plus one warning per key it
does not support. Each format lives in its own module with a `matches(data)` and a
`translate(data, source)`; a wrong type raises ConfigError naming the key.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from ..config import ConfigError


class Format(Protocol):
    NAME: str

    def matches(self, data: dict[str, Any]) -> bool: ...

    def translate(self, data: dict[str, Any], source: str) -> tuple[dict[str, Any], list[str]]: ...


def json_kind(value: Any) -> str:
    """A JSON value's kind as a config error names it ("expected a boolean, got string")."""
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object",
            type(None): "null"}.get(type(value), type(value).__name__)


class Reader:
    """What every foreign-config translator keeps: the file's name for errors, and the warnings it gathers."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.warnings: list[str] = []

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(self.source, key, problem)

    def warn(self, key: str, why: str) -> None:
        self.warnings.append(f"{self.source}: {key}: {why}")


def formats() -> list[Format]:
    """The known foreign formats, most specific first (modules added by the compatibility work)."""
    found: list[Format] = []
    for name in ("centrifuge08", "centrifugo"):
        try:
            module = __import__(f"{__name__}.{name}", fromlist=["translate"])
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{name}":
                continue
            raise
        found.append(module)  # type: ignore[arg-type]
    return found


def translate(text: str, source: str) -> tuple[dict[str, Any], list[str]]:
    """A JSON config file → (hub.toml data, warnings)."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(source, "", f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(source, "", "expected a JSON object at the top level")
    for fmt in formats():
        if fmt.matches(data):
            return fmt.translate(data, source)
    raise ConfigError(source, "", "JSON config of an unknown kind (expected a Centrifuge 0.8 or Centrifugo config.json)")
