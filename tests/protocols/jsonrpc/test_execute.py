"""Requests, procedures and argument checks without sockets."""

import pytest

from hub.actions import ActionError, ActionRegistry
from protocols.jsonrpc.execute import ExecutionError, execute, parse_procedure, parse_request, substitute


def test_substitute_keeps_types_and_formats_strings():
    args = {"room": "hall", "n": 3, "obj": {"a": 1}}
    assert substitute({"x": "${n}", "y": "in ${room}!", "z": ["${obj}"], "w": 5}, args) == {
        "x": 3, "y": "in hall!", "z": [{"a": 1}], "w": 5}


@pytest.mark.parametrize("table, message", [
    ({"actions": []}, "non-empty"),
    ({"actions": [{"action": "nodot"}]}, "plugin.action"),
    ({"actions": [{"action": "a.b", "args": {"x": "${y}"}}]}, "${y}"),
    ({"args": "x", "actions": [{"action": "a.b"}]}, "args must be"),
    ({"actions": [{"action": "a.b"}], "extra": 1}, "unknown key"),
])
def test_bad_procedures(table, message):
    with pytest.raises(ValueError) as info:
        parse_procedure("p", table)
    assert message in str(info.value)


def test_parse_request():
    rid, action, args = parse_request({"type": "request", "action": "a.b", "id": "abc"})
    assert (rid, action, args) == ("abc", "a.b", {})
    with pytest.raises(ExecutionError):
        parse_request([])


async def test_bind_and_execute_statuses():
    registry = ActionRegistry()

    def add(a: int, b: float = 1.5, label: str | None = None) -> float:
        """Add."""
        return a + b

    registry.register("math.add", add)
    assert await registry.require("math.add").call({"a": 1}) == 2.5
    with pytest.raises(ActionError):
        registry.require("math.add").bind({"a": True})
    with pytest.raises(ActionError):
        registry.require("math.add").bind({"a": 1, "label": 3})
    status, reply = await execute(registry, {}, {"type": "request", "action": "math.add", "args": {"a": 2, "b": 2}})
    assert status == 200 and reply["response"] == {"output": 4, "errors": []}
    status, reply = await execute(registry, {}, {"type": "request", "action": "math.sub"})
    assert status == 404
    assert registry.require("math.add").describe()["args"]["b"] == {"type": "float", "required": False, "default": 1.5}
