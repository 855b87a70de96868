"""Werkzeug's HTML error pages, byte for byte: what Platypush's Flask app answers for `abort(status, message)`,
an unknown path or a wrong method (it registers no error handler of its own)."""

from __future__ import annotations

import html
import urllib.parse

from hub.net.http import Response

# werkzeug.exceptions: (name, default description) of the statuses the hub's server and adapter answer with.
PAGES = {
    400: ("Bad Request", "The browser (or proxy) sent a request that this server could not understand."),
    401: ("Unauthorized", "The server could not verify that you are authorized to access the URL requested. You either"
          " supplied the wrong credentials (e.g. a bad password), or your browser doesn't understand how to supply the"
          " credentials required."),
    403: ("Forbidden", "You don't have the permission to access the requested resource. It is either read-protected or"
          " not readable by the server."),
    404: ("Not Found", "The requested URL was not found on the server. If you entered the URL manually please check"
          " your spelling and try again."),
    405: ("Method Not Allowed", "The method is not allowed for the requested URL."),
    408: ("Request Timeout", "The server closed the network connection because the browser didn't finish the request"
          " within the specified time."),
    413: ("Request Entity Too Large", "The data value transmitted exceeds the capacity limit."),
    429: ("Too Many Requests", "This user has exceeded an allotted request count. Try again later."),
    431: ("Request Header Fields Too Large", "One or more header fields exceeds the maximum size."),
    500: ("Internal Server Error", "The server encountered an internal error and was unable to complete your request."
          " Either the server is overloaded or there is an error in the application."),
    501: ("Not Implemented", "The server does not support the action requested by the browser."),
    503: ("Service Unavailable", "The server is temporarily unable to service your request due to maintenance downtime"
          " or capacity problems. Please try again later."),
}


def page(status: int, description: str | None = None) -> Response:
    """`abort(status, description)` as Flask answers it: text/html, the description escaped (markupsafe's
    escape: `'` is `&#39;`, `"` is `&#34;`), its line breaks as `<br>`; without one, werkzeug's own."""
    name, default = PAGES.get(status, ("Error", ""))
    text = _escape(default if description is None else description).replace("\n", "<br>")
    body = f"<!doctype html>\n<html lang=en>\n<title>{status} {name}</title>\n<h1>{name}</h1>\n<p>{text}</p>\n"
    return Response(status, body.encode("utf-8"), "text/html; charset=utf-8")


def redirect(location: str, status: int = 302) -> Response:
    """Flask's `redirect(location, 302)`: werkzeug's page linking the target, `Location` as werkzeug sends it
    (`iri_to_uri`: the path, query and fragment percent-quoted, so no header can be injected)."""
    text = _escape(location)
    body = ("<!doctype html>\n<html lang=en>\n<title>Redirecting...</title>\n<h1>Redirecting...</h1>\n"
            f"<p>You should be redirected automatically to the target URL: <a href=\"{text}\">{text}</a>. If not, click"
            " the link.\n")
    return Response(status, body.encode("utf-8"), "text/html; charset=utf-8", [("Location", iri_to_uri(location))])


def iri_to_uri(iri: str) -> str:
    """werkzeug.urls.iri_to_uri."""
    parts = urllib.parse.urlsplit(iri)
    path = urllib.parse.quote(parts.path, safe="%!$&'()*+,/:;=@")
    query = urllib.parse.quote(parts.query, safe="%!$&'()*+,/:;=?@")
    fragment = urllib.parse.quote(parts.fragment, safe="%!#$&'()*+,/:;=?@")
    netloc = parts.hostname.encode("idna").decode("ascii") if parts.hostname else ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    if parts.username is not None:
        auth = urllib.parse.quote(parts.username, safe="%!$&'()*+,;=")
        if parts.password is not None:
            auth += ":" + urllib.parse.quote(parts.password, safe="%!$&'()*+,;=")
        netloc = f"{auth}@{netloc}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, path, query, fragment))


def local_target(location: str, host: str) -> bool:
    """Whether a redirect target stays on this server: a path, or an http(s) URL for the request's own Host
    (Platypush follows any target, an open redirect; the hub sends others to its default)."""
    if location.startswith(("//", "\\", "/\\")) or any(c in location for c in "\r\n\t"):
        return False
    try:
        parts = urllib.parse.urlsplit(location)
        iri_to_uri(location)
    except (ValueError, UnicodeError):
        return False
    if not parts.scheme and not parts.netloc:
        return location.startswith("/")
    return parts.scheme in ("http", "https") and parts.netloc == host


def server_error(status: int, message: str) -> Response:
    """The adapter's page for what the HTTP server refuses itself (unknown path 404, wrong method 405, limits):
    werkzeug's page for the status, with its default description, as Flask's routing answers."""
    return page(status)


def _escape(text: str) -> str:
    return html.escape(text, quote=False).replace('"', "&#34;").replace("'", "&#39;")
