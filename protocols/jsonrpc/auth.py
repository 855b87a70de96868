"""JWT access tokens (HS256, PyJWT): issued on login, checked on every request, revocable."""

from __future__ import annotations

import secrets
import time
from typing import Any

import jwt

from hub.security import quiet_jwt_warnings

from .store import UserStore

# PyJWT's InsecureKeyLengthWarning is filtered once for the process (not with catch_warnings around each call,
# which is not thread-safe and made Python show the warning again for every token); a short key is the hub's to
# warn about, once, at start.
quiet_jwt_warnings()

ISSUER = "hub-jsonrpc"


class AuthError(Exception):
    """A token that is missing, malformed, badly signed, expired, revoked or whose user is gone."""


def issue(key: str, user: str, ttl: int, now: float | None = None, jti: str | None = None) -> str:
    """A signed token for `user`, valid for `ttl` seconds, with an id (`jti`, random by default) for revocation."""
    issued = int(time.time() if now is None else now)
    claims = {"sub": user, "iat": issued, "exp": issued + ttl, "jti": jti or secrets.token_hex(16), "iss": ISSUER}
    return jwt.encode(claims, key, algorithm="HS256")


def verify(store: UserStore, key: str, token: str) -> dict[str, Any]:
    """The token's claims; AuthError if it is malformed, badly signed, expired, revoked or its user is gone."""
    if not token:
        raise AuthError("a token is required (Authorization: Bearer, X-Token or ?token=)")
    try:
        claims = jwt.decode(token, key, algorithms=["HS256"], issuer=ISSUER, options={"require": ["exp", "iat", "sub", "jti"]})
    except jwt.ExpiredSignatureError:
        raise AuthError("token expired") from None
    except jwt.InvalidTokenError:
        raise AuthError("invalid token") from None
    if not isinstance(claims["sub"], str) or not isinstance(claims["jti"], str):
        raise AuthError("invalid token")
    if store.is_revoked(claims["jti"]):
        raise AuthError("token revoked")
    if claims["sub"] not in store.users:
        raise AuthError("unknown user")
    if claims["iat"] < store.valid_since(claims["sub"]):
        raise AuthError("token issued before the user's password changed")
    return claims


def token_from(headers: dict[str, str], query: dict[str, list[str]]) -> str | None:
    """The one API token Platypush reads: `X-Token: <t>` if that header is there, else `Authorization: Bearer <t>`,
    else the first `?token=<t>` (platypush/backend/http/app/utils/auth/__init__.py, authenticate_token)."""
    if "x-token" in headers:
        return headers["x-token"].strip() or None
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    values = query.get("token")
    return values[0] if values else None


def session_token_from(headers: dict[str, str], query: dict[str, list[str]], cookies: bool) -> str | None:
    """The session token Platypush reads next: `X-Session-Token`, else the first `?session_token=`, else (if
    `cookies`) the `session_token` cookie (authenticate_session). The hub's session token is its API token."""
    if headers.get("x-session-token", "").strip():
        return headers["x-session-token"].strip()
    values = query.get("session_token")
    if values and values[0]:
        return values[0]
    return cookie(headers.get("cookie", ""), "session_token") if cookies else None


def cookie(header: str, name: str) -> str | None:
    """The first cookie called `name` in a Cookie header (`a=1; b="2"`), unquoted; None if absent or empty."""
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key.strip() == name:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            return value or None
    return None


def tokens_from(headers: dict[str, str], query: dict[str, list[str]], cookies: bool = False) -> list[str]:
    """The credentials to try, in Platypush's order (get_current_user_or_auth_status): the API token, then the
    session token; a bad first one does not stop the second from being tried."""
    return [t for t in (token_from(headers, query), session_token_from(headers, query, cookies)) if t]
