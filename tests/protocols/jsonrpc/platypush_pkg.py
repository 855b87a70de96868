"""The real `platypush` package from PyPI, as the oracle of the hub's Platypush wire format.

It is installed once into `.venv/clients/platypush` (with its dependencies, apart from the test
environment's) and run in a separate interpreter: the test hands it the messages the hub sent, and
Platypush's own `Message.build()` says what it makes of them.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import trio

from tests.protocols.command_api.clients import install

PLATYPUSH = ("platypush", ["platypush==1.3.39"])

# Builds every message with Platypush's own code; prints one JSON line describing what it built.
BUILD = r"""
import json, sys
from platypush.message import Message
from platypush.message.event import Event
from platypush.message.response import Response

out = []
for raw in json.load(sys.stdin):
    msg = Message.build(raw)
    item = {"class": f"{type(msg).__module__}.{type(msg).__name__}"}
    if isinstance(msg, Event):
        item.update(id=msg.id, target=msg.target, origin=msg.origin, timestamp=msg.timestamp, args=msg.args,
                    as_dict=json.loads(str(msg)))
    elif isinstance(msg, Response):
        item.update(id=msg.id, target=msg.target, origin=msg.origin, output=msg.output, errors=msg.errors,
                    is_error=msg.is_error(), text=json.loads(str(msg)), raw=str(msg))
    out.append(item)
print(json.dumps(out, default=str))
"""


async def platypush_build(messages: list[Any], home: Any) -> list[dict[str, Any]]:
    """What Platypush 1.3.39's `Message.build()` makes of each message (JSON text or objects)."""
    return await _run_with_platypush(BUILD, messages, home)


async def _run_with_platypush(script: str, payload: Any, home: Any) -> Any:
    """`script` run by a fresh interpreter that imports the installed Platypush, `payload` as JSON on its stdin;
    the JSON its last line prints."""
    target = await trio.to_thread.run_sync(install, *PLATYPUSH)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home)}
    code = f"import sys; sys.path.insert(0, {str(target)!r})\n{script}"
    proc = await trio.run_process([sys.executable, "-I", "-c", code], stdin=json.dumps(payload).encode(),
                                  capture_stdout=True, capture_stderr=True, check=False, env=env)
    if proc.returncode != 0:
        raise AssertionError(proc.stderr.decode())
    return json.loads(proc.stdout.decode().strip().splitlines()[-1])


# Renders answers with the Flask app pieces Platypush's HTTP backend uses: `abort(status, text)` (werkzeug's
# page; no error handler is registered), `UserAuthStatus.<NAME>.to_response()` and `jsonify(obj)`.
RENDER = r"""
import json, sys
from flask import Flask, abort, jsonify, make_response, redirect
from platypush.backend.http.app.utils.auth.status import UserAuthStatus

app = Flask("platypush")
items = json.load(sys.stdin)

@app.route("/<int:i>", methods=["GET", "POST"])
def render(i):
    kind, value = items[i]
    if kind == "abort":
        abort(*value)
    if kind == "auth_status":
        return UserAuthStatus[value].to_response()
    if kind == "logout":  # routes/logout.py's answer for redirect page `value`, over plain HTTP
        response = make_response(redirect(value, 302))
        cookie_kwargs = {"expires": 0, "path": "/", "secure": False, "samesite": "Lax"}
        response.set_cookie("session_token", "", **cookie_kwargs)
        response.set_cookie("csrf_token", "", **cookie_kwargs)
        return response
    return jsonify(value)

@app.route("/execute", methods=["POST"])
def execute():
    return "{}"

client = app.test_client()
out = [client.get(f"/{i}") for i in range(len(items))]
out += [client.get("/execute"), client.get("/nowhere")]
print(json.dumps([{"status": r.status_code, "content_type": r.headers["Content-Type"], "body": r.get_data(as_text=True),
                   "allow": r.headers.get("Allow"), "location": r.headers.get("Location"),
                   "cookies": r.headers.getlist("Set-Cookie")} for r in out]))
"""


async def platypush_render(items: list[tuple[str, Any]], home: Any) -> list[dict[str, Any]]:
    """What Platypush's Flask app sends for each ("abort", [status, text]), ("auth_status", NAME), ("jsonify", obj)
    or ("logout", redirect page), then for `GET /execute` (405) and `GET /nowhere` (404): status, content_type,
    body, allow, location, cookies (Set-Cookie values)."""
    return await _run_with_platypush(RENDER, items, home)
