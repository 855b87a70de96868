"""JWT (HS256) connection and subscription tokens of the Centrifugo client protocol, checked with PyJWT.

A connection token names its project with the `project` claim, else with `aud` (a project key,
or a one-element list of one), else it belongs to the default project (the first in hub.toml).
It is verified with that project's secret only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt

ALGORITHMS = ["HS256"]


class TokenInvalid(Exception):
    """A token that is malformed, badly signed, or for something else."""


class TokenExpired(Exception):
    """A well-signed token whose `exp` has passed: the client should get a new one."""


@dataclass(frozen=True, slots=True)
class ConnectClaims:
    """What a valid connection token grants."""

    project: str
    user: str
    info: Any = None
    channels: list[str] = field(default_factory=list)
    expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class SubscribeClaims:
    """What a valid subscription token grants for one channel."""

    channel: str
    info: Any = None
    expires_at: float | None = None


def _unverified(token: object) -> dict[str, Any]:
    if not isinstance(token, str) or not token:
        raise TokenInvalid("token required")
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise TokenInvalid("malformed token") from None
    if not isinstance(claims, dict):
        raise TokenInvalid("malformed token")
    return claims


def token_project(claims: Mapping[str, Any], projects: Mapping[str, Any], default: str) -> str:
    """The project a token names: `project` claim, else `aud`, else `default`."""
    named = claims.get("project")
    if named is None:
        aud = claims.get("aud")
        if isinstance(aud, list) and len(aud) == 1:
            aud = aud[0]
        if isinstance(aud, str) and aud in projects:
            named = aud
    if named is None:
        return default
    if not isinstance(named, str) or named not in projects:
        raise TokenInvalid("unknown project")
    return named


def _verify(token: str, secret: str, now: float) -> dict[str, Any]:
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=ALGORITHMS,
            options={"verify_exp": False, "verify_aud": False, "verify_iat": False, "verify_nbf": False},
        )
    except jwt.PyJWTError:
        raise TokenInvalid("invalid token") from None
    nbf = claims.get("nbf")
    if nbf is not None and (not isinstance(nbf, (int, float)) or isinstance(nbf, bool) or nbf > now + 1):
        raise TokenInvalid("token not yet valid")
    expires = _expiry(claims)
    if expires is not None and expires <= now:
        raise TokenExpired("token expired")
    return claims


def _expiry(claims: Mapping[str, Any]) -> float | None:
    """`expire_at` (Centrifugo: the connection's own expiry, 0 = never) wins over `exp`."""
    for key in ("expire_at", "exp"):
        if key in claims:
            value = claims[key]
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TokenInvalid(f"invalid {key}")
            return float(value) if value > 0 else None
    return None


def check_connect_token(
    token: object,
    projects: Mapping[str, Any],
    default_project: str,
    secret_of: Callable[[str], str],
    now: float | None = None,
) -> ConnectClaims:
    """Verify a connection token; raise TokenInvalid or TokenExpired."""
    now = time.time() if now is None else now
    project = token_project(_unverified(token), projects, default_project)
    claims = _verify(token, secret_of(project), now)  # type: ignore[arg-type]
    user = claims.get("sub", "")
    if not isinstance(user, str):
        raise TokenInvalid("invalid sub")
    channels = claims.get("channels") or []
    if not isinstance(channels, list) or not all(isinstance(c, str) and c for c in channels):
        raise TokenInvalid("invalid channels")
    return ConnectClaims(project, user, claims.get("info"), list(dict.fromkeys(channels)), _expiry(claims))


def check_subscribe_token(token: object, secret: str, channel: str, user: str, client: str,
                          now: float | None = None) -> SubscribeClaims:
    """Verify a subscription token for `channel`, `user` (its `sub`) and, if it names one, `client`."""
    now = time.time() if now is None else now
    _unverified(token)
    claims = _verify(token, secret, now)  # type: ignore[arg-type]
    if claims.get("channel") != channel:
        raise TokenInvalid("token is for another channel")
    if claims.get("sub", "") != user:
        raise TokenInvalid("token is for another user")
    if "client" in claims and claims["client"] != client:
        raise TokenInvalid("token is for another client")
    return SubscribeClaims(channel, claims.get("info"), _expiry(claims))


def make_token(secret: str, claims: Mapping[str, Any]) -> str:
    """Sign `claims` with HS256 (for tests, tools and the benchmark)."""
    return jwt.encode(dict(claims), secret, algorithm="HS256")
