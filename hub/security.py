"""Checks on a configuration's secrets and exposure: short secrets, security keys a reload changed,
and what `hub check-config --production` refuses. Values are never logged, only key names."""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import re
import warnings
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import Settings

log = logging.getLogger("hub")

MIN_SECRET_BYTES = 32  # HS256 wants a key at least as long as its output (RFC 7518 3.2); PyJWT warns below this
# Adapter keys whose change a reload reports as security-relevant (credentials, keys, who may log in or connect).
SECURITY_KEY = re.compile(r"secret|password|token|key|auth|anonymous|registration|app_id|allow_|origin|tls_|users|acl")
PROJECT_SECURITY_FIELDS = ("secret", "api_keys")
NAMESPACE_SECURITY_FIELDS = ("anonymous", "publish", "allow_subscribe_for_client", "allow_publish_for_client",
                             "allow_user_limited_channels")


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost; anything else (0.0.0.0, a LAN address, a name) is reachable from outside."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def quiet_jwt_warnings() -> None:
    """PyJWT warns (InsecureKeyLengthWarning) on every token checked with a short HMAC key: the hub says it once
    at start instead (`warn_short_secrets`), so the warning is filtered for the whole process."""
    try:
        from jwt.warnings import InsecureKeyLengthWarning
    except ImportError:  # an older PyJWT that does not warn
        return
    warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning)


def secrets_of(settings: Settings) -> list[tuple[str, str]]:
    """(key, value) of every configured signing secret and API key: project secrets and api_keys, and adapter
    keys named `*secret` (empty values mean "not set" and are skipped)."""
    out: list[tuple[str, str]] = []
    for project in settings.projects:
        out.append((f"projects.{project.key}.secret", project.secret))
        out.extend((f"projects.{project.key}.api_keys[{i}]", k) for i, k in enumerate(project.api_keys))
    for name, adapter in settings.adapters.items():
        if not getattr(adapter, "enabled", True):
            continue
        for f in dataclasses.fields(adapter):
            value = getattr(adapter, f.name)
            if f.name.endswith("secret") and isinstance(value, str):
                out.append((f"{name}.{f.name}", value))
    return [(key, value) for key, value in out if value]


def short_secrets(settings: Settings) -> list[str]:
    """Keys whose secret is shorter than MIN_SECRET_BYTES (UTF-8 bytes)."""
    return [key for key, value in secrets_of(settings) if len(value.encode()) < MIN_SECRET_BYTES]


def warn_short_secrets(settings: Settings) -> list[str]:
    """One warning per short secret, naming its key (never the value)."""
    keys = short_secrets(settings)
    for key in keys:
        log.warning("%s: %s is shorter than %d bytes: use a longer random secret (e.g. `openssl rand -hex 32`)",
                    settings.source, key, MIN_SECRET_BYTES)
    return keys


def _namespace_diff(prefix: str, old: Any, new: Any) -> list[str]:
    return [f"{prefix}.{f}" for f in NAMESPACE_SECURITY_FIELDS if getattr(old, f) != getattr(new, f)]


def security_changes(old: Settings, new: Settings) -> list[str]:
    """The security-relevant keys whose value differs between two configurations (names only)."""
    changed: list[str] = []
    olds, news = {p.key: p for p in old.projects}, {p.key: p for p in new.projects}
    for key in sorted(olds.keys() | news.keys()):
        a, b = olds.get(key), news.get(key)
        if a is None or b is None:
            changed.append(f"projects.{key} ({'added' if a is None else 'removed'})")
            continue
        changed.extend(f"projects.{key}.{f}" for f in PROJECT_SECURITY_FIELDS if getattr(a, f) != getattr(b, f))
        changed.extend(_namespace_diff(f"projects.{key}", a.options, b.options))
        for ns in sorted(a.namespaces.keys() | b.namespaces.keys()):
            na, nb = a.namespaces.get(ns), b.namespaces.get(ns)
            if na is None or nb is None:
                changed.append(f"projects.{key}.namespaces.{ns} ({'added' if na is None else 'removed'})")
            else:
                changed.extend(_namespace_diff(f"projects.{key}.namespaces.{ns}", na, nb))
    for name in sorted(old.adapters.keys() & new.adapters.keys()):
        a, b = old.adapters[name], new.adapters[name]
        for f in dataclasses.fields(b):
            if SECURITY_KEY.search(f.name) and getattr(a, f.name, None) != getattr(b, f.name):
                changed.append(f"{name}.{f.name}")
    if old.login_limit != new.login_limit:
        changed.extend(f"login_limit.{f.name}" for f in dataclasses.fields(new.login_limit)
                       if getattr(old.login_limit, f.name) != getattr(new.login_limit, f.name))
    return changed


def production_problems(settings: Settings) -> list[str]:
    """What `hub check-config --production` refuses, one line each: default credentials and open registration
    (each adapter's `audit`), short secrets, and listeners reachable from outside without TLS."""
    from .adapters import adapter_registry

    problems: list[str] = []
    registry = adapter_registry()
    for name, adapter in registry.items():
        s = settings.adapters.get(name)
        if s is None or not s.enabled or adapter.audit is None:
            continue
        problems.extend(adapter.audit(s, settings))
    problems.extend(f"{key}: shorter than {MIN_SECRET_BYTES} bytes" for key in short_secrets(settings))
    for name in registry:
        s = settings.adapters.get(name)
        if s is None or not s.enabled or is_loopback(s.host):
            continue
        if not (getattr(s, "tls_cert", "") and getattr(s, "tls_key", "")):
            problems.append(f"{name}.host: {s.host!r} is reachable from other machines but the listener has no TLS "
                            f"(set {name}.tls_cert and {name}.tls_key)")
    return problems
