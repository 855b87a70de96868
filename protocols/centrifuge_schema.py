"""The original's request schemas and its error texts for them, without jsonschema.

Centrifuge 0.8 validates every command with jsonschema 2.4 (draft 4) and answers with `str()` of
the first ValidationError: the message, the failing (sub)schema and the instance, pretty-printed.
Clients and scripts show those texts, so they are reproduced here character for character for the
few keywords the schemas use (`type`, `properties`, `required`, `minimum`), checked in the order
the schema dicts list them, as jsonschema does.
"""

from __future__ import annotations

import pprint
from collections.abc import Callable, Iterator
from typing import Any

_TYPES: dict[str, Any] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}

_STRING = {"type": "string"}

REQUEST = {"type": "object", "properties": {"method": _STRING, "params": {"type": "object"}}, "required": ["method", "params"]}

_CHANNEL = {"type": "object", "properties": {"channel": _STRING}, "required": ["channel"]}

API = {
    "publish": _CHANNEL,
    "presence": _CHANNEL,
    "history": _CHANNEL,
    "unsubscribe": {"type": "object", "properties": {"user": _STRING, "channel": _STRING}, "required": ["user"]},
    "disconnect": {"type": "object", "properties": {"user": _STRING, "reason": _STRING}, "required": ["user"]},
}

_CONNECT = {
    "type": "object",
    "properties": {"token": _STRING, "user": _STRING, "project": _STRING, "timestamp": _STRING, "info": _STRING},
    "required": ["token", "user", "project", "timestamp"],
}

CLIENT = {
    "publish": _CHANNEL,
    "presence": _CHANNEL,
    "history": _CHANNEL,
    "ping": {"type": "object"},
    "subscribe": {"type": "object", "properties": {"channel": _STRING, "client": _STRING, "info": _STRING, "sign": _STRING},
                  "required": ["channel"]},
    "unsubscribe": _CHANNEL,
    "connect": _CONNECT,
    "refresh": _CONNECT,
}


def _index(parts: list[Any]) -> str:
    return "[" + "][".join(repr(p) for p in parts) + "]" if parts else ""


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def _pformat(value: Any) -> str:
    try:
        return pprint.pformat(value, width=72)
    except RecursionError:  # an instance nested deeper than pprint goes (found by fuzzing): no crash
        return "<nested too deeply>"


def _format(message: str, validator: str, schema: Any, schema_path: list[Any], instance: Any, path: list[Any]) -> str:
    return (f"{message}\n\nFailed validating {validator!r} in schema{_index(schema_path[:-1])}:\n"
            f"{_indent(_pformat(schema))}\n\nOn instance{_index(path)}:\n"
            f"{_indent(_pformat(instance))}")


def _errors(instance: Any, schema: dict[str, Any], path: list[Any], schema_path: list[Any]) -> Iterator[str]:
    for keyword, value in schema.items():
        if keyword == "type":
            if not _TYPES[value](instance):
                yield _format(f"{instance!r} is not of type {value!r}", keyword, schema, [*schema_path, keyword], instance, path)
        elif keyword == "properties":
            if isinstance(instance, dict):
                for name, sub in value.items():
                    if name in instance:
                        yield from _errors(instance[name], sub, [*path, name], [*schema_path, keyword, name])
        elif keyword == "required":
            if isinstance(instance, dict):
                for name in value:
                    if name not in instance:
                        yield _format(f"{name!r} is a required property", keyword, schema, [*schema_path, keyword], instance, path)
        elif keyword == "minimum":
            if _TYPES["number"](instance) and instance < value:
                yield _format(f"{instance!r} is less than the minimum of {value!r}", keyword, schema, [*schema_path, keyword],
                              instance, path)


def _valid(instance: Any, schema: dict[str, Any]) -> bool:
    """`_errors` yields nothing, found without building paths or texts (every command is checked)."""
    check = _CHECKS.get(id(schema))
    if check is None or check[0] is not schema:
        check = _CHECKS[id(schema)] = (schema, _compile(schema))
    return check[1](instance)


_CHECKS: dict[int, tuple[dict[str, Any], Callable[[Any], bool]]] = {}  # id(schema) -> (schema, its predicate)
_PLAIN_TYPES = {"object": dict, "array": list, "string": str}  # `type` checks that are one isinstance


def _compile(schema: dict[str, Any]) -> Callable[[Any], bool]:
    """`_valid(instance, schema)` as one closure built once per schema: a command's check was a dozen calls
    (`_valid` per property, a lambda per type); a property whose schema is a plain type is one isinstance."""
    kind = schema.get("type")
    plain = _PLAIN_TYPES.get(kind) if "type" in schema else object
    typed = None if plain is not None else _TYPES[kind]  # integer, number, boolean, null: their own rules
    properties = schema.get("properties") or {}
    simple = tuple((name, _PLAIN_TYPES[sub["type"]]) for name, sub in properties.items()
                   if sub.keys() == {"type"} and sub["type"] in _PLAIN_TYPES)
    nested = tuple((name, sub) for name, sub in properties.items() if not (sub.keys() == {"type"} and sub["type"] in _PLAIN_TYPES))
    required = tuple(schema.get("required") or ()) if "required" in schema else ()
    minimum = schema.get("minimum") if "minimum" in schema else None
    number = _TYPES["number"]

    def check(instance: Any) -> bool:
        if typed is not None:
            if not typed(instance):
                return False
        elif not isinstance(instance, plain):  # type: ignore[arg-type]
            return False
        if isinstance(instance, dict):
            for name, expected in simple:
                if name in instance and not isinstance(instance[name], expected):
                    return False
            for name, sub in nested:
                if name in instance and not _valid(instance[name], sub):
                    return False
            for name in required:
                if name not in instance:
                    return False
        return minimum is None or not number(instance) or not instance < minimum

    return check


def validate(instance: Any, schema: dict[str, Any]) -> str | None:
    """The original's error text for the first violation, or None if `instance` is valid."""
    if _valid(instance, schema):
        return None
    for error in _errors(instance, schema, [], []):
        return error
    return None
