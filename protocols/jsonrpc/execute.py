"""Requests and responses of /execute and /ws/requests, procedures and webhooks' settings, without I/O."""

from __future__ import annotations

import json
import re
import secrets
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from hub.actions import ActionError, ActionRegistry

HOSTNAME = socket.gethostname()
_VAR = re.compile(r"\$\{(\w+)\}")
MAX_DEPTH = 16  # procedures calling procedures (cycles are refused at config load; this is the backstop)


@dataclass
class Procedure:
    """A named list of actions; `${arg}` in their arguments takes the procedure's own arguments."""

    name: str
    required: list[str]
    defaults: dict[str, Any]
    steps: list[dict[str, Any]]
    doc: str = ""
    # False: the procedure answers without output (`{"success": true}`), like a Platypush procedure that returns nothing.
    output: bool = True

    @property
    def args(self) -> list[str]:
        return [*self.required, *self.defaults]

    def calls(self) -> set[str]:
        """Names of the procedures this one runs."""
        return {s["action"].split(".", 1)[1] for s in self.steps if s["action"].startswith("procedure.")}

    def describe(self) -> dict[str, Any]:
        """Discovery data, shaped like an action's."""
        args: dict[str, Any] = {a: {"type": "any", "required": True} for a in self.required}
        for name, default in self.defaults.items():
            args[name] = {"type": json_type(default), "required": False, "default": default}
        return {"name": f"procedure.{self.name}", "doc": self.doc, "args": args, "returns": "any" if self.output else "null",
                "actions": [s["action"] for s in self.steps]}


def json_type(value: Any) -> str:
    return {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "dict",
            type(None): "null"}.get(type(value), "any")


def parse_procedure(name: str, table: Any) -> Procedure:
    """Validate one `[jsonrpc.procedures.<name>]` table; ValueError names what is wrong."""
    if not isinstance(table, dict):
        raise ValueError("expected a table with `actions`")
    unknown = set(table) - {"args", "actions", "doc", "output"}
    if unknown:
        raise ValueError(f"unknown key {sorted(unknown)[0]!r}")
    args = table.get("args", [])
    if isinstance(args, list) and all(isinstance(a, str) and a for a in args):
        required, defaults = list(args), {}
    elif isinstance(args, dict):
        required, defaults = [], dict(args)
    else:
        raise ValueError("args must be an array of argument names (all required) or a table of name = default")
    if not isinstance(table.get("doc", ""), str):
        raise ValueError("doc must be a string")
    if not isinstance(table.get("output", True), bool):
        raise ValueError("output must be true (the last action's output) or false (no output)")
    steps = table.get("actions")
    if not isinstance(steps, list) or not steps:
        raise ValueError("actions must be a non-empty array of {action, args} tables")
    names = set(required) | set(defaults)
    for i, step in enumerate(steps):
        if not isinstance(step, dict) or not isinstance(step.get("action"), str) or not _is_action_name(step["action"]):
            raise ValueError(f"actions[{i}] needs action = \"plugin.action\" or \"procedure.<name>\"")
        extra = set(step) - {"action", "args"}
        if extra:
            raise ValueError(f"actions[{i}]: unknown key {sorted(extra)[0]!r}")
        if not isinstance(step.get("args", {}), dict):
            raise ValueError(f"actions[{i}].args must be a table")
        for var in _VAR.findall(json.dumps(step.get("args", {}))):
            if var not in names:
                raise ValueError(f"actions[{i}] uses ${{{var}}}, which is not in args")
    return Procedure(name, required, defaults, steps, table.get("doc", ""), table.get("output", True))


def _is_action_name(name: str) -> bool:
    plugin, _, action = name.partition(".")
    return bool(plugin and action)


def check_procedures(procedures: dict[str, Procedure]) -> None:
    """ValueError for a step naming a procedure that does not exist, or procedures calling each other in a cycle."""
    for proc in procedures.values():
        for callee in sorted(proc.calls()):
            if callee not in procedures:
                raise ValueError(f"{proc.name}: no procedure named {callee!r}")
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = path[path.index(name):] + [name]
            raise ValueError(f"{path[0]}: procedures call each other in a cycle: {' -> '.join(cycle)}")
        state[name] = 1
        for callee in sorted(procedures[name].calls()):
            visit(callee, [*path, name])
        state[name] = 2

    for name in procedures:
        visit(name, [])


def substitute(value: Any, args: dict[str, Any]) -> Any:
    """`"${x}"` becomes the argument itself (any type); `${x}` inside a longer string is formatted in."""
    if isinstance(value, str):
        whole = _VAR.fullmatch(value)
        if whole:
            return args.get(whole.group(1))
        return _VAR.sub(lambda m: _text(args.get(m.group(1))), value)
    if isinstance(value, dict):
        return {k: substitute(v, args) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, args) for v in value]
    return value


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


@dataclass
class Hook:
    """`[jsonrpc.hooks.<name>]`: where a webhook's request goes and what it answers."""

    name: str
    channel: str = ""
    project: str = ""
    procedure: str = ""
    token_header: str = ""
    token: str = field(default="", repr=False)
    status: int = 200
    response: Any = None


class HookError(ValueError):
    """A bad hook table: which key (`""` for the table itself) and what is wrong."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}" if key else problem)
        self.key, self.problem = key, problem


HOOK_KEYS = {"channel", "project", "procedure", "token_header", "token", "token_env", "status", "response"}


def parse_hook(name: str, table: Any, procedures: dict[str, Procedure], env: dict[str, str]) -> Hook:
    """Validate one hook table (`token_env` reads the token from the environment); HookError(key, problem)."""
    if not isinstance(table, dict):
        raise HookError("", "expected a table")
    unknown = set(table) - HOOK_KEYS
    if unknown:
        raise HookError(sorted(unknown)[0], "unknown key")
    for key in ("channel", "project", "procedure", "token_header", "token", "token_env"):
        if not isinstance(table.get(key, ""), str):
            raise HookError(key, "expected a string")
    status = table.get("status", 200)
    if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
        raise HookError("status", "expected an HTTP status from 200 to 599")
    hook = Hook(name, table.get("channel", ""), table.get("project", ""), table.get("procedure", ""),
                table.get("token_header", ""), table.get("token", ""), status, table.get("response"))
    if table.get("token_env"):
        if table["token_env"] not in env:
            raise HookError("token_env", f"environment variable {table['token_env']} is not set")
        hook.token = env[table["token_env"]]
    if not hook.channel and not hook.procedure:
        raise HookError("", "needs a channel to publish to and/or a procedure to run")
    if hook.procedure and hook.procedure not in procedures:
        raise HookError("procedure", f"no procedure named {hook.procedure!r}")
    if hook.token_header and not hook.token:
        raise HookError("token", "missing: a hook with token_header needs a token (or token_env)")
    if hook.token and not hook.token_header:
        raise HookError("token_header", "missing: name the header that carries the token")
    return hook


class ExecutionError(Exception):
    """A failure reported in `errors`, with the documented HTTP status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message, self.status = message, status


def request_id_of(body: Any) -> Any:
    """The request's own `id`, whatever JSON value it is, when truthy (Platypush's `Request.build` and
    `Request.__init__`: `id if id else _generate_id()`), else a new 32-hex id."""
    rid = body.get("id") if isinstance(body, dict) else None
    return rid if rid else secrets.token_hex(16)


class Rejected(Exception):
    """A body Platypush cannot build a message from; the text is its exception's (`Message.parse`, `Request.build`,
    `get_message_class_by_type`), which its /execute sends in werkzeug's page (`abort(500, str(e))`)."""


def _reparsed(body: Any) -> Any:
    """`Message.parse` decodes a string body once more (a JSON text inside JSON is a message too)."""
    if isinstance(body, str):
        try:
            return json.loads(body.strip())
        except (ValueError, RecursionError):
            return body
    return body


def message_type(body: Any) -> str:
    """What Platypush's `Message.build` makes of an /execute body: "request" or "event"; Rejected with its text
    otherwise (not an object, no `type`, a type that names no message class)."""
    body = _reparsed(body)
    if not isinstance(body, dict):
        raise Rejected(f"Invalid message [type={type(body)}]: <{body}>")
    if "type" not in body:
        raise Rejected("'type'")
    kind = body["type"]
    if not isinstance(kind, str):
        try:
            "platypush.message." + kind
        except TypeError as exc:
            raise Rejected(str(exc)) from None
    if kind in ("request", "event"):
        return kind
    raise Rejected(f"No module named 'platypush.message.{kind}'")


def build_request(body: Any) -> tuple[Any, Any, Any]:
    """(id, action, args) as Platypush's `Request.build` takes them (`type` is not looked at; `name` stands for a
    missing `action`; falsy args are `{}`); Rejected if the body is not an object or names no action."""
    body = _reparsed(body)
    if not isinstance(body, dict):
        raise Rejected(f"Invalid message [type={type(body)}]: <{body}>")
    action = body.get("action", body.get("name"))
    if not action:
        raise Rejected("No action specified in the request")
    return request_id_of(body), action, body.get("args") or {}


def check_request(action: Any, args: Any) -> tuple[str, dict[str, Any]]:
    """The built request's action and args, or ExecutionError for what fails before any action runs (answered 200
    with the error, as Platypush's request thread answers): an action that is not text, no plugin name, args that
    are not an object (Platypush would pass a list positionally; the hub's actions take names)."""
    if not isinstance(action, str):
        raise ExecutionError(f"'{type(action).__name__}' object has no attribute 'startswith'", 400)
    if not action.startswith("procedure.") and not _is_action_name(action):
        raise ExecutionError("No plugin name provided", 400)
    if not isinstance(args, dict):
        raise ExecutionError('"args" must be an object', 400)
    return action, args


async def run_action(registry: ActionRegistry, procedures: dict[str, Procedure], action: str, args: dict[str, Any],
                     depth: int = 0) -> Any:
    """Run an action or a procedure; ExecutionError (400 bad args, 404 unknown, 500 raised) on failure."""
    if action.startswith("procedure."):
        procedure = procedures.get(action.split(".", 1)[1])
        if procedure is None:  # Platypush: procedures[name] raises KeyError(the last part of the name)
            raise ExecutionError(repr(action.rsplit(".", 1)[1]), 404)
        if depth >= MAX_DEPTH:
            raise ExecutionError(f"{action}: procedures nested more than {MAX_DEPTH} deep", 500)
        unknown = sorted(set(args) - set(procedure.args))
        if unknown:
            raise ExecutionError(f"{action}: unknown argument '{unknown[0]}'", 400)
        missing = [a for a in procedure.required if a not in args]
        if missing:
            raise ExecutionError(f"{action}: missing argument '{missing[0]}'", 400)
        values = {**procedure.defaults, **args}
        output = None
        for step in procedure.steps:
            try:
                output = await run_action(registry, procedures, step["action"], substitute(step.get("args", {}), values),
                                          depth + 1)
            except ExecutionError as exc:
                raise ExecutionError(f"{action}: {exc.message}", exc.status) from None
        return output if procedure.output else None
    if action not in registry:
        raise ExecutionError(unknown_action(registry, action), 404)
    try:
        return await registry.run(action, args)
    except ActionError as exc:
        raise ExecutionError(exc.message, exc.status) from None


def unknown_action(registry: ActionRegistry, action: str) -> str:
    """Platypush's error for an action it cannot find: `<method> is not a registered action on <Plugin>Plugin`
    (Plugin.run) when the plugin has other actions, else the import error of the plugin's module (get_plugin)."""
    plugin, _, method = action.rpartition(".")
    if any(a.name.startswith(plugin + ".") for a in registry):
        return f"{method} is not a registered action on {''.join(t[0].upper() + t[1:] for t in plugin.split('.') if t)}Plugin"
    return f"No module named 'platypush.plugins.{plugin}'"


LOGGING_LEVEL = 20  # logging.INFO: what every response of Platypush's own actions carries as `_logging_level`


def envelope(request_id: Any, output: Any, errors: list[str], target: str = "http") -> dict[str, Any]:
    """Platypush's `Response.__str__` (platypush/message/response/__init__.py): id, type, target, origin,
    _timestamp, response {output, errors}, then `_logging_level` (20); no output reads `{"success": <no errors>}`."""
    return {"id": request_id, "type": "response", "target": target, "origin": HOSTNAME, "_timestamp": time.time(),
            "response": {"output": {"success": not errors} if output is None else output, "errors": errors},
            "_logging_level": LOGGING_LEVEL}


async def execute(registry: ActionRegistry, procedures: dict[str, Procedure], body: Any,
                  target: str = "http") -> dict[str, Any]:
    """The response envelope for a request body (Rejected if it is none: the caller answers as Platypush does).

    As on Platypush, a request that ran answers 200, its failure (unknown action or procedure, bad arguments,
    an error raised) in `errors` with `output` `{"success": false}`."""
    request_id, action, args = build_request(body)
    try:
        action, args = check_request(action, args)
        output = await run_action(registry, procedures, action, args)
    except ExecutionError as exc:
        return envelope(request_id, None, [exc.message], target)
    return envelope(request_id, output, [], target)


def describe(registry: ActionRegistry, procedures: dict[str, Procedure]) -> dict[str, Any]:
    """Discovery: every action and procedure with arguments, types, defaults and documentation."""
    return {
        "actions": registry.describe(),
        "procedures": {f"procedure.{name}": p.describe() for name, p in sorted(procedures.items())},
    }


def encode(obj: Any) -> str:
    """JSON for the wire, spelled as Platypush's `json.dumps` spells it; values JSON cannot hold (sets, bytes,
    objects) become lists or text."""
    return json.dumps(obj, default=_fallback)


def _fallback(value: Any) -> Any:
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)
