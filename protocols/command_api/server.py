"""HTTP glue for the command APIs under /api: tell the signed API and the API-key API apart, then answer."""

from __future__ import annotations

import json
from typing import Any

from hub.adapters import AdapterContext
from hub.net.http import Request, Response

from . import apikey, signed


def error_response(status: int, message: str) -> Response:
    """Whole-request errors: a short JSON body with the status."""
    return Response.json({"error": message}, status)


def _api_error(status: int, code: int, message: str) -> Response:
    return Response.json({"error": {"code": code, "message": message}}, status)


async def handle(ctx: AdapterContext, request: Request) -> Response:
    """`POST /api`, `/api/<name>`: an API key means today's API (`name` is a method), else the signed API (`name` is a project)."""
    name = request.params.get("name", "").strip("/")
    key = apikey.api_key_of(request.headers)
    if key is None and "api_key" in request.query:  # Centrifugo also takes ?api_key=<key>
        key = request.query["api_key"][0]
    if request.method != "POST":
        if name and which_api(name, key is not None, False, name in ctx.hub.projects) == "signed":
            return _tornado_error(405)
        response = error_response(405, "method not allowed: use POST")
        response.headers.append(("allow", "POST"))
        return response
    looks_signed = key is None and ("x-api-sign" in request.headers or (
        request.content_type in ("", "application/x-www-form-urlencoded") and signed.has_signed_fields(request.body)))
    if which_api(name, key is not None, looks_signed, name in ctx.hub.projects) == "apikey":
        return await _apikey(ctx, request, key, name)
    return await _signed(ctx, request, name)


def which_api(name: str, has_key: bool, looks_signed: bool, is_project: bool) -> str:
    """Which API a request is for ("apikey" or "signed"): an API key, else `X-API-Sign` or a form with
    `data`/`sign`, else the name.

    A request with neither goes to the signed API when `name` is a project (400: sign required),
    to today's API when it is one of its methods (401: key required), else to the signed API (404).
    """
    if has_key:
        return "apikey"
    if not name:
        return "signed" if looks_signed else "apikey"
    if looks_signed or is_project:
        return "signed"
    return "apikey" if name in apikey.KNOWN else "signed"


def _tornado_error(status: int) -> Response:
    """The original's whole-request errors: Tornado's HTML error page."""
    return Response(status, signed.error_page(status), signed.HTML)


async def _signed(ctx: AdapterContext, request: Request, project_key: str) -> Response:
    if not project_key:
        return _tornado_error(404)  # the original routes only /api/<key>
    try:
        parsed = signed.parse_request(request.body, request.header("content-type") or "",
                                      request.target.partition("?")[2], request.headers)
        project = ctx.hub.projects.get(project_key)
        if project is None:
            return _tornado_error(404)
        signed.verify(project, parsed)
        commands = signed.parse_commands(parsed.data, ctx.settings.max_commands)
    except signed.RequestError as exc:
        return _tornado_error(exc.status)
    return Response(200, signed.encode_replies(await signed.run_commands(ctx.hub, project, commands)), signed.JSON)


async def _apikey(ctx: AdapterContext, request: Request, key: str | None, method: str) -> Response:
    if not key:
        return _api_error(401, apikey.UNAUTHORIZED, "unauthorized: an API key is required (X-API-Key or Authorization: apikey <key>)")
    project = apikey.project_for_key(ctx.hub.projects, key)
    if project is None:
        return _api_error(401, apikey.UNAUTHORIZED, "unauthorized")
    state = ctx.state.setdefault("api", apikey.ApiState())
    if not method:
        # The old API: one or more `{"id"?, "method", "params"}` commands; one reply line each (Centrifugo's legacy handler).
        commands = apikey.legacy_commands(request.body) if request.body.strip() else None
        if not commands:
            return Response(400, b"Bad Request\n", content_type="text/plain; charset=utf-8")
        return Response(200, await apikey.run_legacy(ctx.hub, project, commands, state), content_type="application/json")
    try:
        body: Any = json.loads(request.body) if request.body else {}
    except (ValueError, UnicodeDecodeError, RecursionError):
        return _api_error(400, apikey.BAD_REQUEST, "bad request: body is not JSON")
    if not isinstance(body, dict):
        return _api_error(400, apikey.BAD_REQUEST, "bad request: body must be a JSON object")
    reply = await apikey.call(ctx.hub, project, method, body, state)
    if "error" in reply and method != "batch" and (
            ctx.settings.error_mode == "transport" or request.header("x-centrifugo-error-mode") == "transport"):
        error = reply["error"]
        return Response.json(error, TRANSPORT_STATUS.get(error["code"], 500))
    return Response.json(reply)


# Centrifugo's transport error mode: a method's error as an HTTP status (apiproto.MapErrorToHTTPCode).
TRANSPORT_STATUS = {apikey.INTERNAL: 500, apikey.UNKNOWN_CHANNEL: 404, apikey.METHOD_NOT_FOUND: 404,
                    apikey.BAD_REQUEST: 400, apikey.NOT_AVAILABLE: 400, apikey.UNRECOVERABLE_POSITION: 416, 113: 409}
