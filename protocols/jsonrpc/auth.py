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
    """`Authorization: Bearer <t>`, `X-Token: <t>` or `?token=<t>`, in that order (Platypush reads the same three)."""
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if headers.get("x-token"):
        return headers["x-token"].strip()
    values = query.get("token")
    return values[-1] if values else None
