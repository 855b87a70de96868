"""JWT access tokens (HS256, PyJWT): issued on login, checked on every request, revocable."""

from __future__ import annotations

import secrets
import time
import warnings
from typing import Any

import jwt

from .store import UserStore

ISSUER = "hub-jsonrpc"


class AuthError(Exception):
    pass


def issue(store: UserStore, key: str, user: str, ttl: int) -> str:
    now = int(time.time())
    claims = {"sub": user, "iat": now, "exp": now + ttl, "jti": secrets.token_hex(16), "iss": ISSUER}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return jwt.encode(claims, key, algorithm="HS256")


def verify(store: UserStore, key: str, token: str) -> dict[str, Any]:
    """The token's claims; AuthError if it is malformed, badly signed, expired, revoked or its user is gone."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            claims = jwt.decode(token, key, algorithms=["HS256"], issuer=ISSUER, options={"require": ["exp", "sub", "jti"]})
    except jwt.ExpiredSignatureError:
        raise AuthError("token expired") from None
    except jwt.InvalidTokenError:
        raise AuthError("invalid token") from None
    if store.is_revoked(claims["jti"]):
        raise AuthError("token revoked")
    if claims["sub"] not in store.users:
        raise AuthError("unknown user")
    return claims


def token_from(headers: dict[str, str], query: dict[str, list[str]]) -> str | None:
    """`Authorization: Bearer <t>`, `X-Token: <t>` or `?token=<t>`."""
    auth = headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if headers.get("x-token"):
        return headers["x-token"]
    values = query.get("token")
    return values[-1] if values else None
