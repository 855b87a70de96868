"""Hypothesis strategies shared by the codec fuzz tests: protocol-shaped JSON, noise and deep nesting."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import trio
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

FUZZ = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

KEYS = ["method", "params", "channel", "data", "uid", "id", "user", "users", "project", "token", "timestamp", "info",
        "client", "sign", "connect", "subscribe", "unsubscribe", "publish", "presence", "presence_stats", "history",
        "rpc", "refresh", "sub_refresh", "send", "limit", "since", "offset", "epoch", "reverse", "recover", "flag",
        "subs", "req", "seq", "type", "action", "args", "channels", "msg", "rid", "roomId", "text", "username",
        "password", "email", "name", "key", "reason", "reconnect", "b64data"]
METHODS = ["connect", "subscribe", "unsubscribe", "publish", "presence", "history", "ping", "refresh", "broadcast",
           "disconnect", "channels", "info", "presence_stats", "history_remove", "stats", "hub.publish",
           "hub.presence", "hub.history", "hub.channels", "hub.stats", "procedure.x", "nope"]
CHANNELS = ["news", "public:chat", "$private", "a" * 300, "", "ns:", "user#1,2", "nohist:x", "x\u00e9\x00"]

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False, allow_infinity=False),
                    st.sampled_from(METHODS + CHANNELS), st.text(max_size=20))
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), inner, max_size=6)),
    max_leaves=25)


@st.composite
def commands(draw: Any, method_key: str = "method", params_key: str = "params") -> Any:
    """Something shaped like a command of most of our protocols, with plausible and absurd values."""
    cmd = {method_key: draw(st.one_of(st.sampled_from(METHODS), scalars))}
    if draw(st.booleans()):
        cmd[params_key] = draw(st.one_of(st.fixed_dictionaries({}, optional={k: json_values for k in KEYS[:16]}), json_values))
    cmd.update(draw(st.dictionaries(st.sampled_from(KEYS), json_values, max_size=3)))
    return cmd


def deep(depth: int) -> str:
    return "[" * depth + "]" * depth


texts = st.one_of(
    st.lists(commands(), max_size=4).map(json.dumps),
    commands().map(json.dumps),
    json_values.map(json.dumps),
    st.integers(500, 20000).map(deep),
    st.integers(500, 3000).map(lambda n: '{"method":' * n + "1" + "}" * n),
    st.text(max_size=50),
)
raw_bytes = st.one_of(texts.map(lambda t: t.encode("utf-8", "surrogatepass")), st.binary(max_size=200))


def run(fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    """Run an async codec call to completion (the memory engine never really suspends)."""
    return trio.run(partial(fn, *args))
