"""JWT connection and subscription tokens of the Centrifugo client protocol, checked with PyJWT.

Algorithms as Centrifugo v6 accepts them: HS256/384/512 with the project's secret (Centrifugo's
`client.token.hmac_secret_key`), RS256/384/512 with an RSA public key, ES256/384 with an ECDSA public
key (both PEM), or any of the asymmetric ones with a key from a JWKS (`jwks_public_endpoint`: a URL
or a file, fetched by the server glue and cached). A key that is not configured refuses its algorithms.

A connection token names its project with the `project` claim, else with `aud` (a project key, or a
one-element list of one), else it belongs to the default project (the first in hub.toml). HMAC
tokens are verified with that project's secret only.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt

HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
RSA_ALGORITHMS = ("RS256", "RS384", "RS512")
ECDSA_ALGORITHMS = ("ES256", "ES384")
ALGORITHMS = HMAC_ALGORITHMS + RSA_ALGORITHMS + ECDSA_ALGORITHMS


class TokenInvalid(Exception):
    """A token that is malformed, badly signed, or for something else."""


class TokenExpired(Exception):
    """A well-signed token whose `exp` has passed: the client should get a new one."""


class UnknownKey(TokenInvalid):
    """No configured or JWKS key for the token's `alg` / `kid` (a JWKS may have rotated: fetch it again)."""


class TokenMismatch(TokenInvalid):
    """A valid subscription token for another channel, user or client (Centrifugo: 3500 invalid token)."""


@dataclass
class PublicKeys:
    """How tokens are verified beyond the HMAC secret: the asymmetric keys (PEM texts, and a JWKS
    `{"keys": [...]}` once fetched), and Centrifugo's `audience` / `issuer` / `user_id_claim` rules."""

    rsa_pem: str = ""
    ecdsa_pem: str = ""
    jwks: dict[str, Any] | None = None
    audience: str = ""  # when set, `aud` must name it
    issuer: str = ""  # when set, `iss` must be it
    user_id_claim: str = ""  # the claim holding the user id instead of `sub`
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def key(self, alg: str, kid: str | None) -> Any:
        """The key object for a token's `alg` (and `kid`, with a JWKS); TokenInvalid if none is configured."""
        if self.jwks is not None and alg not in HMAC_ALGORITHMS:
            for entry in self.jwks.get("keys") or ():
                if not isinstance(entry, dict) or (kid is not None and entry.get("kid") != kid):
                    continue
                if entry.get("alg") not in (None, alg):
                    continue
                try:
                    return jwt.PyJWK(entry, algorithm=alg).key
                except jwt.PyJWTError:
                    continue
            if kid is not None:
                raise UnknownKey(f"no JWKS key {kid!r} for {alg}")
        pem = self.rsa_pem if alg in RSA_ALGORITHMS else self.ecdsa_pem if alg in ECDSA_ALGORITHMS else ""
        if not pem:
            raise UnknownKey(f"no key for {alg} (kid {kid!r})")
        cached = self._cache.get(alg)
        if cached is None:
            algorithm = jwt.get_algorithm_by_name(alg)
            try:
                cached = self._cache[alg] = algorithm.prepare_key(pem)
            except Exception:
                raise TokenInvalid(f"bad {alg} key") from None
        return cached


NO_KEYS = PublicKeys()


@dataclass(frozen=True, slots=True)
class ConnectClaims:
    """What a valid connection token grants."""

    project: str
    user: str
    info: Any = None
    channels: list[str] = field(default_factory=list)
    expires_at: float | None = None
    # `subs`: server-side subscriptions with their options ({channel: {info, data, override, ...}}).
    subs: dict[str, dict[str, Any]] = field(default_factory=dict)
    meta: Any = None


@dataclass(frozen=True, slots=True)
class SubscribeClaims:
    """What a valid subscription token grants for one channel."""

    channel: str
    info: Any = None
    expires_at: float | None = None
    override: dict[str, Any] = field(default_factory=dict)


def decode_b64info(value: Any) -> Any:
    """`b64info`: base64 of the info bytes; JSON inside is that value, other bytes go as `{"$base64": ...}`."""
    if not isinstance(value, str):
        raise TokenInvalid("invalid b64info")
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        raise TokenInvalid("invalid b64info") from None
    try:
        return json.loads(raw.decode("utf-8"))
    except ValueError:
        return {"$base64": base64.b64encode(raw).decode("ascii")}


def _info(claims: Mapping[str, Any]) -> Any:
    if claims.get("b64info"):
        return decode_b64info(claims["b64info"])
    return claims.get("info")


_JWS = jwt.PyJWS()
_HMAC_KEYS: dict[tuple[str, str], tuple[Any, Any]] = {}  # (alg, secret) -> (algorithm, prepared key)


@dataclass(frozen=True, slots=True)
class _Token:
    """A token read once (PyJWT's parse: segments, base64url and JSON checks) and not yet verified."""

    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes
    text: str


def _unverified(token: object) -> _Token:
    if not isinstance(token, str) or not token:
        raise TokenInvalid("token required")
    try:
        parts = _JWS.decode_complete(token, options={"verify_signature": False})
        claims = json.loads(parts["payload"])  # as PyJWT decodes a payload
    except (jwt.PyJWTError, ValueError, RecursionError):
        raise TokenInvalid("malformed token") from None
    if not isinstance(claims, dict):
        raise TokenInvalid("malformed token")
    return _Token(parts["header"], claims, token.encode("utf-8").rsplit(b".", 1)[0], parts["signature"], token)


def _hmac_key(alg: str, secret: str) -> tuple[Any, Any]:
    """PyJWT's algorithm object and prepared key for an HMAC secret, made once per secret (preparing checks that
    the secret is no PEM or SSH key, a dozen regular expressions)."""
    found = _HMAC_KEYS.get((alg, secret))
    if found is None:
        algorithm = jwt.get_algorithm_by_name(alg)
        try:
            found = (algorithm, algorithm.prepare_key(secret))
        except jwt.PyJWTError:
            raise TokenInvalid("invalid token") from None
        if len(_HMAC_KEYS) >= 64:
            _HMAC_KEYS.clear()
        _HMAC_KEYS[(alg, secret)] = found
    return found


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


def _verify(token: _Token, secret: str, now: float, keys: PublicKeys) -> dict[str, Any]:
    alg = token.header.get("alg")
    if alg not in ALGORITHMS:
        raise TokenInvalid("unsupported algorithm")
    if alg in HMAC_ALGORITHMS:
        # What jwt.decode does for it, on the token as read once: the signature with PyJWT's algorithm, then its
        # claim checks that these options leave on (`sub` and `jti` are strings when present).
        algorithm, key = _hmac_key(alg, secret)
        if not algorithm.verify(token.signing_input, key, token.signature):
            raise TokenInvalid("invalid token")
        claims = token.claims
        if not isinstance(claims.get("sub", ""), str) or not isinstance(claims.get("jti", ""), str):
            raise TokenInvalid("invalid token")
    else:
        try:
            claims = jwt.decode(
                token.text,
                keys.key(alg, token.header.get("kid")),
                algorithms=[alg],
                options={"verify_exp": False, "verify_aud": False, "verify_iat": False, "verify_nbf": False},
            )
        except jwt.PyJWTError:
            raise TokenInvalid("invalid token") from None
    if keys.audience:
        aud = claims.get("aud")
        if not (aud == keys.audience or (isinstance(aud, list) and keys.audience in aud)):
            raise TokenInvalid("invalid audience")
    if keys.issuer and claims.get("iss") != keys.issuer:
        raise TokenInvalid("invalid issuer")
    nbf = claims.get("nbf")
    if nbf is not None and (not isinstance(nbf, (int, float)) or isinstance(nbf, bool) or nbf > now + 1):
        raise TokenInvalid("token not yet valid")
    exp = _number(claims, "exp")
    if exp is not None and 0 < exp <= now:
        raise TokenExpired("token expired")
    return claims


def _number(claims: Mapping[str, Any], key: str) -> float | None:
    value = claims.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TokenInvalid(f"invalid {key}")
    return float(value)


def _expiry(claims: Mapping[str, Any]) -> float | None:
    """When the connection (subscription) expires: `expire_at` if present (0 = never), else `exp`."""
    if claims.get("expire_at") is not None:
        value = _number(claims, "expire_at")
        return value if value else None
    value = _number(claims, "exp")
    return value if value else None


def check_connect_token(
    token: object,
    projects: Mapping[str, Any],
    default_project: str,
    secret_of: Callable[[str], str],
    now: float | None = None,
    keys: PublicKeys = NO_KEYS,
) -> ConnectClaims:
    """Verify a connection token; raise TokenInvalid or TokenExpired."""
    now = time.time() if now is None else now
    read = _unverified(token)
    project = token_project(read.claims, projects, default_project)
    claims = _verify(read, secret_of(project), now, keys)
    user = claims.get(keys.user_id_claim or "sub", "")
    if not isinstance(user, str):
        raise TokenInvalid("invalid sub")
    channels = claims.get("channels") or []
    if not isinstance(channels, list) or not all(isinstance(c, str) and c for c in channels):
        raise TokenInvalid("invalid channels")
    subs = claims.get("subs") or {}
    if not isinstance(subs, dict) or not all(isinstance(k, str) and k and isinstance(v, dict | None) for k, v in subs.items()):
        raise TokenInvalid("invalid subs")
    subs = {k: dict(v or {}) for k, v in subs.items()}
    for options in subs.values():
        if options.get("b64info"):
            options["info"] = decode_b64info(options["b64info"])
        if options.get("b64data"):
            options["data"] = decode_b64info(options["b64data"])
    return ConnectClaims(project, user, _info(claims), list(dict.fromkeys(channels)), _expiry(claims), subs,
                         claims.get("meta"))


def check_subscribe_token(token: object, secret: str, channel: str, user: str, client: str,
                          now: float | None = None, keys: PublicKeys = NO_KEYS) -> SubscribeClaims:
    """Verify a subscription token for `channel`, `user` (its `sub`) and, if it names one, `client`.

    A bad token is TokenInvalid; a valid one for another channel, user or client is TokenMismatch.
    """
    now = time.time() if now is None else now
    claims = _verify(_unverified(token), secret, now, keys)
    if claims.get("channel") != channel:
        raise TokenMismatch("token is for another channel")
    if claims.get("sub", "") != user:
        raise TokenMismatch("token is for another user")
    if claims.get("client") not in (None, "", client):
        raise TokenMismatch("token is for another client")
    override = claims.get("override")
    return SubscribeClaims(channel, _info(claims), _expiry(claims), override if isinstance(override, dict) else {})


def make_token(secret: str, claims: Mapping[str, Any], algorithm: str = "HS256", headers: dict[str, Any] | None = None) -> str:
    """Sign `claims` (for tests, tools and the benchmark): HS* with a secret, RS*/ES* with a PEM private key."""
    return jwt.encode(dict(claims), secret, algorithm=algorithm, headers=headers)
