"""Fuzzing JSON-RPC envelopes: any body gets a response envelope, or Rejected (Platypush's own refusal), never
another exception."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hub.actions import ActionRegistry, register_core_actions
from hub.core import Hub, NamespaceOptions, Project
from protocols.jsonrpc.execute import Rejected, execute
from protocols.jsonrpc.server import parse_custom_event

from ..fuzzing import FUZZ, commands, json_values, run, texts


@FUZZ
@given(st.one_of(commands(method_key="action", params_key="args").map(lambda c: {"type": "request", **c}), json_values))
def test_execute_envelopes(body):
    hub = Hub([Project("proj", "secret", NamespaceOptions(history_size=3, history_lifetime=60), {})])
    registry = ActionRegistry()
    register_core_actions(registry, hub, "proj")
    try:
        reply = run(execute, registry, {}, body)
    except Rejected as exc:
        assert str(exc)
        return
    assert reply["type"] == "response" and isinstance(reply["response"]["errors"], list)


@FUZZ
@given(texts)
def test_custom_events(message):
    event = parse_custom_event(message)
    assert event is None or (event["type"] == "event" and isinstance(event["args"], dict))
