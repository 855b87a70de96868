"""The Origin check of websocket handshakes (Centrifugo's `allowed_origins`), without I/O."""

from __future__ import annotations

import fnmatch
import urllib.parse

DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}


def _netloc(scheme: str, netloc: str) -> str:
    host, sep, port = netloc.lower().rpartition(":")
    if not sep or "]" in port:  # no port (an IPv6 literal's colons are inside brackets)
        return netloc.lower()
    return host if DEFAULT_PORTS.get(scheme) == port else f"{host}:{port}"


def same_host(origin: str, host: str | None, tls: bool = False) -> bool:
    """Whether `origin` names the host (and port) the request was sent to (its Host header)."""
    if not host:
        return False
    parts = urllib.parse.urlsplit(origin.strip().lower())
    if not parts.scheme or not parts.netloc:
        return False
    return _netloc(parts.scheme, parts.netloc) == _netloc("https" if tls else "http", host.strip())


def origin_allowed(origin: str | None, host: str | None, patterns: list[str], *, strict: bool = False,
                   tls: bool = False) -> bool:
    """A request without Origin (not a browser) passes; one with Origin must match a glob pattern
    (`http://localhost:*`, `https://*.example.com`, `*`), or, with no patterns, be of the same host
    (`strict`: with no patterns no Origin passes, as Centrifugo v6 with an empty allowed_origins)."""
    if origin is None:
        return True
    origin = origin.strip().lower()
    if patterns:
        return any(fnmatch.fnmatchcase(origin, p.lower()) for p in patterns)
    return not strict and same_host(origin, host, tls)
