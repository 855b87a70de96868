"""Requests and responses of /execute and /ws/requests, and procedures, without I/O."""

from __future__ import annotations

import logging
import re
import secrets
import socket
import time
from dataclasses import dataclass
from typing import Any

from hub.actions import ActionError, ActionRegistry

log = logging.getLogger("hub.jsonrpc")
HOSTNAME = socket.gethostname()
_VAR = re.compile(r"\$\{(\w+)\}")


@dataclass
class Procedure:
    """A named list of actions; `${arg}` in their arguments takes the procedure's own arguments."""

    name: str
    args: list[str]
    steps: list[dict[str, Any]]
    doc: str = ""


def parse_procedure(name: str, table: Any) -> Procedure:
    """Validate one `[jsonrpc.procedures.<name>]` table; ValueError names what is wrong."""
    if not isinstance(table, dict):
        raise ValueError("expected a table with `actions`")
    unknown = set(table) - {"args", "actions", "doc"}
    if unknown:
        raise ValueError(f"unknown key {sorted(unknown)[0]!r}")
    args = table.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise ValueError("args must be an array of argument names")
    steps = table.get("actions")
    if not isinstance(steps, list) or not steps:
        raise ValueError("actions must be a non-empty array of {action, args} tables")
    for i, step in enumerate(steps):
        if not isinstance(step, dict) or not isinstance(step.get("action"), str) or "." not in step["action"]:
            raise ValueError(f"actions[{i}] needs action = \"plugin.action\"")
        if not isinstance(step.get("args", {}), dict):
            raise ValueError(f"actions[{i}].args must be a table")
        for var in _VAR.findall(str(step.get("args", {}))):
            if var not in args:
                raise ValueError(f"actions[{i}] uses ${{{var}}}, which is not in args")
    return Procedure(name, args, steps, str(table.get("doc", "")))


def substitute(value: Any, args: dict[str, Any]) -> Any:
    """`"${x}"` becomes the argument itself (any type); `${x}` inside a longer string is formatted in."""
    if isinstance(value, str):
        whole = _VAR.fullmatch(value)
        if whole:
            return args.get(whole.group(1))
        return _VAR.sub(lambda m: str(args.get(m.group(1), "")), value)
    if isinstance(value, dict):
        return {k: substitute(v, args) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, args) for v in value]
    return value


class ExecutionError(Exception):
    """A failure reported in `errors`, with the documented HTTP status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message, self.status = message, status


def parse_request(body: Any) -> tuple[str, str, dict[str, Any]]:
    """(id, action, args) of a request object; ExecutionError(400) if malformed."""
    if not isinstance(body, dict):
        raise ExecutionError("the request must be a JSON object", 400)
    request_id = body.get("id")
    if not isinstance(request_id, str) or not request_id:
        request_id = secrets.token_hex(16)
    if body.get("type") != "request":
        raise ExecutionError('"type" must be "request"', 400)
    action = body.get("action")
    if not isinstance(action, str) or "." not in action:
        raise ExecutionError('"action" must be "<plugin>.<action>" or "procedure.<name>"', 400)
    args = body.get("args", {})
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise ExecutionError('"args" must be an object', 400)
    return request_id, action, args


async def run_action(registry: ActionRegistry, procedures: dict[str, Procedure], action: str, args: dict[str, Any]) -> Any:
    """Run an action or a procedure; ExecutionError (400 bad args, 404 unknown, 500 raised) on failure."""
    if action.startswith("procedure."):
        procedure = procedures.get(action.split(".", 1)[1])
        if procedure is None:
            raise ExecutionError(f"unknown procedure '{action}'", 404)
        unknown = set(args) - set(procedure.args)
        if unknown:
            raise ExecutionError(f"{action}: unknown argument '{sorted(unknown)[0]}'", 400)
        output = None
        for step in procedure.steps:
            output = await run_action(registry, procedures, step["action"], substitute(step.get("args", {}), args))
        return output
    try:
        return await registry.require(action).call(args)
    except ActionError as exc:
        raise ExecutionError(exc.message, exc.status) from None
    except Exception as exc:
        log.info("action %s raised %r", action, exc)
        raise ExecutionError(f"{action} failed: {type(exc).__name__}: {exc}", 500) from None


def envelope(request_id: str, output: Any, errors: list[str], target: str = "http") -> dict[str, Any]:
    """The reference's response object."""
    return {"id": request_id, "type": "response", "target": target, "origin": HOSTNAME, "_timestamp": time.time(),
            "response": {"output": output, "errors": errors}}


async def execute(registry: ActionRegistry, procedures: dict[str, Procedure], body: Any,
                  target: str = "http") -> tuple[int, dict[str, Any]]:
    """(HTTP status, response envelope) for one request body."""
    request_id = body.get("id") if isinstance(body, dict) and isinstance(body.get("id"), str) else secrets.token_hex(16)
    try:
        request_id, action, args = parse_request(body)
        output = await run_action(registry, procedures, action, args)
    except ExecutionError as exc:
        return exc.status, envelope(request_id, None, [exc.message], target)
    return 200, envelope(request_id, output, [], target)


def describe(registry: ActionRegistry, procedures: dict[str, Procedure]) -> dict[str, Any]:
    """Discovery: every action and procedure with arguments, types, defaults and documentation."""
    return {
        "actions": {a.name: a.describe() for a in registry},
        "procedures": {f"procedure.{p.name}": {
            "name": f"procedure.{p.name}", "doc": p.doc,
            "args": {a: {"type": "any", "required": False} for a in p.args},
            "actions": [s["action"] for s in p.steps]} for p in procedures.values()},
    }
