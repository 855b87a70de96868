"""Requests, procedures, hooks, argument checks, tokens and the users file, without sockets."""

import json
import os
import time
from typing import Any, Literal

import pytest

from hub.actions import ActionError, ActionRegistry
from hub.config import ConfigError
from hub.core.errors import HubError, NamespaceNotFound
from hub.net.http import Request
from protocols.jsonrpc import auth
from protocols.jsonrpc.execute import (
    ExecutionError,
    HookError,
    Rejected,
    build_request,
    check_procedures,
    check_request,
    encode,
    execute,
    message_type,
    parse_hook,
    parse_procedure,
    substitute,
)
from protocols.jsonrpc.server import SLOW_CLIENT, JsonRpc, hook_event, procedure_args
from protocols.jsonrpc.store import StoreError, UserStore
from tests.conftest import hub_config

# -- procedures ---------------------------------------------------------------------------


def test_substitute_keeps_types_and_formats_strings():
    args = {"room": "hall", "n": 3, "obj": {"a": 1}}
    assert substitute({"x": "${n}", "y": "in ${room}!", "z": ["${obj}"], "w": 5, "v": "n=${n} ${missing}."}, args) == {
        "x": 3, "y": "in hall!", "z": [{"a": 1}], "w": 5, "v": "n=3 ."}


@pytest.mark.parametrize("table, message", [
    ([], "expected a table"),
    ({"actions": []}, "non-empty"),
    ({"actions": [{"action": "nodot"}]}, "plugin.action"),
    ({"actions": [{"action": "a.b", "args": {"x": "${y}"}}]}, "${y}"),
    ({"actions": [{"action": "a.b", "args": [1]}]}, "args must be a table"),
    ({"actions": [{"action": "a.b", "when": 1}]}, "unknown key 'when'"),
    ({"args": "x", "actions": [{"action": "a.b"}]}, "args must be"),
    ({"args": [1], "actions": [{"action": "a.b"}]}, "args must be"),
    ({"doc": 3, "actions": [{"action": "a.b"}]}, "doc must be"),
    ({"actions": [{"action": "a.b"}], "extra": 1}, "unknown key"),
])
def test_bad_procedures(table, message):
    with pytest.raises(ValueError) as info:
        parse_procedure("p", table)
    assert message in str(info.value)


def test_procedure_args_defaults_and_discovery():
    p = parse_procedure("p", {"args": {"room": "hall", "level": 5}, "doc": "D.", "actions": [
        {"action": "x.y", "args": {"r": "${room}", "l": "${level}"}}]})
    assert p.required == [] and p.defaults == {"room": "hall", "level": 5}
    assert p.describe() == {"name": "procedure.p", "doc": "D.", "returns": "any", "actions": ["x.y"], "args": {
        "room": {"type": "str", "required": False, "default": "hall"}, "level": {"type": "int", "required": False, "default": 5}}}
    q = parse_procedure("q", {"args": ["a"], "actions": [{"action": "procedure.p"}]})
    assert q.describe()["args"] == {"a": {"type": "any", "required": True}} and q.calls() == {"p"}


@pytest.mark.parametrize("tables, message", [
    ({"a": ["procedure.b"]}, "no procedure named 'b'"),
    ({"a": ["procedure.a"]}, "cycle: a -> a"),
    ({"a": ["hub.stats", "procedure.b"], "b": ["procedure.c"], "c": ["procedure.a"]}, "cycle: a -> b -> c -> a"),
])
def test_procedure_calls_must_exist_and_not_loop(tables, message):
    procs = {n: parse_procedure(n, {"actions": [{"action": a} for a in steps]}) for n, steps in tables.items()}
    with pytest.raises(ValueError) as info:
        check_procedures(procs)
    assert message in str(info.value)
    check_procedures({"a": parse_procedure("a", {"actions": [{"action": "procedure.b"}]}),
                      "b": parse_procedure("b", {"actions": [{"action": "hub.stats"}]})})


async def test_procedures_run_in_order_and_check_their_args():
    registry = ActionRegistry()
    seen = []

    def note(text: str) -> int:
        seen.append(text)
        return len(seen)

    registry.register("t.note", note)
    procs = {"inner": parse_procedure("inner", {"args": ["x"], "actions": [{"action": "t.note", "args": {"text": "in ${x}"}}]}),
             "outer": parse_procedure("outer", {"args": {"x": "d"}, "actions": [
                 {"action": "t.note", "args": {"text": "${x}"}},
                 {"action": "procedure.inner", "args": {"x": "${x}"}}]})}
    reply = await execute(registry, procs, {"type": "request", "action": "procedure.outer"})
    assert (reply["response"]["output"], seen) == (2, ["d", "in d"])
    # As on Platypush: a request that ran answers 200, its failure in `errors` and `output` {"success": false}.
    reply = await execute(registry, procs, {"type": "request", "action": "procedure.inner"})
    assert reply["response"] == {"output": {"success": False}, "errors": ["procedure.inner: missing argument 'x'"]}
    reply = await execute(registry, procs, {"type": "request", "action": "procedure.inner", "args": {"x": 1, "y": 2}})
    assert reply["response"]["errors"] == ["procedure.inner: unknown argument 'y'"]
    procs["bad"] = parse_procedure("bad", {"actions": [{"action": "t.note", "args": {"text": 5}}]})
    reply = await execute(registry, procs, {"type": "request", "action": "procedure.bad"})
    assert reply["response"]["errors"] == ["procedure.bad: t.note: argument 'text' must be str, got int"]
    # output = false: the procedure answers as one that returns nothing
    procs["quiet"] = parse_procedure("quiet", {"output": False, "actions": [{"action": "t.note", "args": {"text": "q"}}]})
    reply = await execute(registry, procs, {"type": "request", "action": "procedure.quiet"})
    assert (reply["response"], seen[-1]) == ({"output": {"success": True}, "errors": []}, "q")
    assert procs["quiet"].describe()["returns"] == "null"
    with pytest.raises(ValueError, match="output must be"):
        parse_procedure("p", {"output": "no", "actions": [{"action": "a.b"}]})


# -- requests and actions -----------------------------------------------------------------


def test_requests_are_built_as_platypush_builds_them():
    rid, action, args = build_request({"type": "request", "action": "a.b", "id": "abc"})
    assert (rid, action, args) == ("abc", "a.b", {})
    rid, _, args = build_request({"type": "request", "action": "a.b", "args": None, "id": 0})
    assert len(rid) == 32 and int(rid, 16) >= 0 and args == {}
    # Platypush echoes any truthy id as it came (`id if id else _generate_id()`): numbers, long strings, objects.
    for rid in (5, 2.5, "x" * 1000, ["a"], {"k": 1}):
        assert build_request({"type": "request", "action": "a.b", "id": rid})[0] == rid
    for falsy in (None, "", 0, [], {}, False):
        assert len(build_request({"type": "request", "action": "a.b", "id": falsy})[0]) == 32
    # Request.build looks at no `type` (/ws/requests takes "requests" or none), takes `name` for a missing action,
    # and decodes a JSON text once more (Message.parse).
    assert build_request({"type": "requests", "action": "a.b"})[1] == "a.b" and build_request({"name": "c.d"})[1] == "c.d"
    assert build_request('{"action": "a.b", "args": {"x": 1}}')[1:] == ("a.b", {"x": 1})
    # What Platypush cannot build, with its exception's text.
    for body, text in [([1, 2], "Invalid message [type=<class 'list'>]: <[1, 2]>"), (None, "Invalid message [type=<class "
                       "'NoneType'>]: <None>"), ("nope", "Invalid message [type=<class 'str'>]: <nope>"),
                       ({"type": "request"}, "No action specified in the request"),
                       ({"type": "request", "action": ""}, "No action specified in the request")]:
        with pytest.raises(Rejected) as info:
            build_request(body)
        assert str(info.value) == text
    # Message.build's dispatch on `type` (/execute).
    assert message_type({"type": "request"}) == "request" and message_type({"type": "event"}) == "event"
    for body, text in [({"action": "a.b"}, "'type'"), ({"type": "nope"}, "No module named 'platypush.message.nope'"),
                       ({"type": 5}, 'can only concatenate str (not "int") to str'),
                       ([], "Invalid message [type=<class 'list'>]: <[]>")]:
        with pytest.raises(Rejected) as info:
            message_type(body)
        assert str(info.value) == text
    # Built, but failing before any action runs: answered 200 with the error, as Platypush's request thread does.
    assert check_request("a.b", {"x": 1}) == ("a.b", {"x": 1}) and check_request("procedure.p", {})[0] == "procedure.p"
    for action, args, text in [("ab", {}, "No plugin name provided"), (5, {}, "'int' object has no attribute 'startswith'"),
                               ("a.b", [1], '"args" must be an object')]:
        with pytest.raises(ExecutionError) as exc:
            check_request(action, args)
        assert exc.value.message == text


def test_typed_arguments():
    registry = ActionRegistry()

    def f(a: int, names: list[str], opts: dict[str, int] | None = None, mode: Literal["x", "y"] = "x",
          pair: tuple[int, str] = (1, "a"), anything: Any = None, ratio: float = 1.0) -> list[str]:
        """Doc line."""
        return names

    registry.register("t.f", f)
    action = registry.require("t.f")
    action.bind({"a": 1, "names": ["x"], "opts": {"k": 2}, "mode": "y", "pair": [2, "b"], "anything": object(), "ratio": 2})
    for bad, message in [
        ({"a": True, "names": []}, "argument 'a' must be int, got boolean"),
        ({"a": 1.5, "names": []}, "argument 'a' must be int, got float"),
        ({"a": 1, "names": "x"}, "argument 'names' must be list[str], got str"),
        ({"a": 1, "names": [1]}, "argument 'names' must be list[str], got array"),
        ({"a": 1, "names": [], "opts": {"k": "v"}}, "argument 'opts' must be dict[str, int] | null, got object"),
        ({"a": 1, "names": [], "mode": "z"}, "argument 'mode' must be 'x' | 'y', got str"),
        ({"a": 1, "names": [], "pair": [1, 2]}, "argument 'pair' must be tuple[int, str], got array"),
        ({"a": 1, "names": [], "ratio": "1"}, "argument 'ratio' must be float, got str"),
        ({"names": []}, "missing argument 'a'"),
        ({"a": 1, "names": [], "zzz": 1}, "unknown argument 'zzz'"),
    ]:
        with pytest.raises(ActionError) as info:
            action.bind(bad)
        assert info.value.message == f"t.f: {message}" and info.value.status == 400
    described = action.describe()
    assert described["doc"] == "Doc line." and described["returns"] == "list[str]"
    assert described["args"]["names"] == {"type": "list[str]", "required": True}
    assert described["args"]["mode"] == {"type": "'x' | 'y'", "required": False, "default": "x"}
    assert described["args"]["opts"] == {"type": "dict[str, int] | null", "required": False, "default": None}
    with pytest.raises(ValueError):
        registry.register("nodot", f)
    with pytest.raises(ValueError):
        registry.register("procedure.x", f)


async def test_registry_run_maps_failures_to_statuses():
    registry = ActionRegistry()

    class Refused(HubError):
        def __init__(self) -> None:
            super().__init__("room not found: x")
            self.status = 404

    def core_refuses() -> None:
        raise NamespaceNotFound()

    async def chat_refuses() -> None:
        raise Refused()

    def breaks() -> None:
        raise RuntimeError("boom")

    async def add(a: int, b: float = 1.5) -> float:
        return a + b

    for name, func in [("t.core", core_refuses), ("t.chat", chat_refuses), ("t.breaks", breaks), ("t.add", add)]:
        registry.register(name, func)
    assert await registry.run("t.add", {"a": 1}) == 2.5
    for name, status, message in [("t.core", 400, "t.core: namespace not found"), ("t.chat", 404, "t.chat: room not found: x"),
                                  ("t.breaks", 500, "t.breaks failed: RuntimeError: boom"), ("t.nope", 404, "unknown action 't.nope'")]:
        with pytest.raises(ActionError) as info:
            await registry.run(name, {})
        assert (info.value.status, info.value.message) == (status, message)
    reply = await execute(registry, {}, {"type": "request", "action": "t.add", "args": {"a": 2, "b": 2}, "id": "r1"})
    assert reply["id"] == "r1" and reply["response"] == {"output": 4, "errors": []}
    assert reply["type"] == "response" and reply["target"] == "http" and reply["origin"]
    for name, message in [("t.core", "t.core: namespace not found"), ("t.breaks", "t.breaks failed: RuntimeError: boom"),
                          # Platypush's texts: Plugin.run for a plugin it has, the import error for one it has not
                          ("t.nope", "nope is not a registered action on TPlugin"),
                          ("light.hue.on", "No module named 'platypush.plugins.light.hue'"),
                          ("procedure.foo.bar", "'bar'")]:
        reply = await execute(registry, {}, {"type": "request", "action": name})
        assert reply["response"] == {"output": {"success": False}, "errors": [message]}
    registry.register("t.nothing", lambda: None)
    reply = await execute(registry, {}, {"type": "request", "action": "t.nothing"})
    assert reply["response"] == {"output": {"success": True}, "errors": []}
    with pytest.raises(Rejected, match="Invalid message"):
        await execute(registry, {}, ["not", "an", "object"])


def test_encode_spells_json_as_platypush():
    assert encode({"a": [1, "é"], "b": None}) == json.dumps({"a": [1, "é"], "b": None}) == '{"a": [1, "\\u00e9"], "b": null}'


def test_encode_never_fails():
    assert json.loads(encode({"s": {1}, "b": b"x", "t": (1, 2), "o": object.__name__})) == {"s": [1], "b": "x", "t": [1, 2],
                                                                                           "o": "object"}
    assert json.loads(encode({"x": object()}))["x"].startswith("<object")


# -- hooks --------------------------------------------------------------------------------


@pytest.mark.parametrize("table, key, problem", [
    ({}, "", "needs a channel"),
    ({"channel": "c", "colour": 1}, "colour", "unknown key"),
    ({"channel": 5}, "channel", "expected a string"),
    ({"channel": "c", "status": 99}, "status", "200 to 599"),
    ({"channel": "c", "status": True}, "status", "200 to 599"),
    ({"procedure": "nope"}, "procedure", "no procedure named 'nope'"),
    ({"channel": "c", "token_header": "X-Token"}, "token", "needs a token"),
    ({"channel": "c", "token": "t"}, "token_header", "missing"),
    ({"channel": "c", "token_header": "X-Token", "token_env": "UNSET_VAR"}, "token_env", "UNSET_VAR is not set"),
])
def test_bad_hooks(table, key, problem):
    with pytest.raises(HookError) as info:
        parse_hook("h", table, {}, {})
    assert info.value.key == key and problem in info.value.problem


def test_hook_token_from_env_and_request_shape():
    hook = parse_hook("h", {"channel": "c", "token_header": "X-Hook-Key", "token_env": "HOOK_KEY"}, {}, {"HOOK_KEY": "k3y"})
    assert hook.token == "k3y" and "k3y" not in repr(hook)
    request = Request("POST", "/hook/h?room=hall&token=t", "/hook/h", {"room": ["x", "hall"], "token": ["t"]},
                      {"x-hook-key": "k3y", "authorization": "Bearer t", "content-type": "application/json"},
                      b'{"level": 3, "room": "attic"}')
    event = hook_event(request, hook)
    assert event == {"method": "POST", "headers": {"content-type": "application/json"}, "body": {"level": 3, "room": "attic"},
                     "query": {"room": "hall"}}
    proc = parse_procedure("p", {"args": {"room": "", "level": 0, "method": "", "extra": 1}, "actions": [{"action": "a.b"}]})
    assert procedure_args(event, proc) == {"room": "attic", "level": 3, "method": "POST"}
    text = hook_event(Request("GET", "/", "/", {}, {}, b"\xffplain"), hook)
    assert text["body"] == "\ufffdplain"


def _config(extra: str) -> Any:
    from hub.config import parse_settings

    return parse_settings(hub_config(extra), "<test>")


@pytest.mark.parametrize("extra, key, problem", [
    ('[jsonrpc.procedures.p]\nactions = [{action = "x"}]', "jsonrpc.procedures.p", "plugin.action"),
    ('[jsonrpc.procedures.p]\nactions = [{action = "procedure.p"}]', "jsonrpc.procedures", "cycle"),
    ('[jsonrpc.hooks.h]\nprocedure = "nope"', "jsonrpc.hooks.h.procedure", "no procedure named"),
    ('[jsonrpc.hooks.h]\nchannel = "c"\nstatus = "ok"', "jsonrpc.hooks.h.status", "200 to 599"),
    ('[jsonrpc]\nproject = "nope"', "jsonrpc.project", "no project"),
    ('[jsonrpc]\ntoken_secret = "short"', "jsonrpc.token_secret", "at least 32"),
    ('[jsonrpc]\nclient_password = "pw"', "jsonrpc.client_user", "missing"),
    ('[jsonrpc]\ntoken_ttl = 5', "jsonrpc.token_ttl", "at least 60"),
    ('[jsonrpc]\nprocedures = 5', "jsonrpc.procedures", "expected a table"),
])
def test_config_errors(extra, key, problem):
    with pytest.raises(ConfigError) as info:
        _config(extra)
    assert info.value.key == key and problem in info.value.problem


# -- tokens and the users file ------------------------------------------------------------


def test_tokens(tmp_path):
    store = UserStore(tmp_path / "users.json")
    store.add_user("alice", "pw")
    key = store.signing_key()
    assert len(key) >= 32 and UserStore(tmp_path / "users.json").signing_key() == key
    token = auth.issue(key, "alice", 60)
    claims = auth.verify(store, key, token)
    assert claims["sub"] == "alice" and claims["exp"] - claims["iat"] == 60
    for bad, message in [("", "a token is required"), ("x.y.z", "invalid token"),
                         (auth.issue("another key" * 4, "alice", 60), "invalid token"),
                         (auth.issue(key, "alice", 60, now=time.time() - 120), "token expired"),
                         (auth.issue(key, "bob", 60), "unknown user")]:
        with pytest.raises(auth.AuthError) as info:
            auth.verify(store, key, bad)
        assert message in str(info.value)
    store.revoke(claims["jti"], claims["exp"])
    with pytest.raises(auth.AuthError, match="revoked"):
        auth.verify(store, key, token)
    old = auth.issue(key, "alice", 600, now=time.time() - 5)
    store.set_password("alice", "new")
    with pytest.raises(auth.AuthError, match="password changed"):
        auth.verify(store, key, old)
    auth.verify(store, key, auth.issue(key, "alice", 60))


def test_tokens_are_looked_for_where_and_in_the_order_platypush_looks():
    # authenticate_token: X-Token if the header is there (even empty), else Bearer, else the first ?token=.
    assert auth.token_from({"authorization": "Bearer a", "x-token": "b"}, {"token": ["c"]}) == "b"
    assert auth.token_from({"authorization": "Bearer a", "x-token": ""}, {"token": ["c"]}) is None
    assert auth.token_from({"authorization": "Bearer a"}, {"token": ["c"]}) == "a"
    assert auth.token_from({"authorization": "Basic a"}, {"token": ["c"]}) == "c"
    assert auth.token_from({}, {"token": ["c", "d"]}) == "c" and auth.token_from({}, {}) is None
    # authenticate_session: X-Session-Token, else ?session_token=, else the session_token cookie (websockets only).
    headers = {"x-session-token": "s", "cookie": "a=1; session_token=k"}
    assert auth.session_token_from(headers, {"session_token": ["q"]}, cookies=True) == "s"
    assert auth.session_token_from({"cookie": "a=1; session_token=k"}, {"session_token": ["q", "r"]}, cookies=True) == "q"
    assert auth.session_token_from({"cookie": 'a=1; session_token="k"'}, {}, cookies=True) == "k"
    assert auth.session_token_from({"cookie": "a=1; session_token=k"}, {}, cookies=False) is None
    assert auth.session_token_from({"cookie": "session_token=; x"}, {}, cookies=True) is None
    assert auth.tokens_from({"x-token": "b", "x-session-token": "s"}, {}) == ["b", "s"]
    assert auth.tokens_from({"x-token": ""}, {"session_token": ["q"]}) == ["q"] and auth.tokens_from({}, {}) == []


def test_users_file(tmp_path):
    path = tmp_path / "sub" / "users.json"
    store = UserStore(path)
    store.add_user("alice", "s3cret")
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    raw = json.loads(path.read_text())
    assert raw["users"]["alice"]["hash"].startswith("$argon2id$") and "s3cret" not in path.read_text()
    assert store.check_password("alice", "s3cret") and not store.check_password("alice", "nope")
    assert not store.check_password("nobody", "s3cret")
    other = UserStore(path)  # another process: `hub user add` while the hub runs
    other.add_user("bob", "pw")
    store.revoke("jti-1", time.time() + 60)  # read-modify-write keeps bob
    assert set(UserStore(path).users) == {"alice", "bob"} and "bob" in store.users
    store.revoke("jti-2", time.time() - 1)
    store.revoke("jti-3", time.time() + 60)  # expired entries are dropped
    assert set(UserStore(path).data["revoked"]) == {"jti-1", "jti-3"}
    for bad in [("alice", "x"), ("", "x"), ("a b", "x"), ("a:b", "x"), ("carol", "")]:
        with pytest.raises(ValueError):
            store.add_user(*bad)
    with pytest.raises(ValueError, match="registration is closed"):
        store.add_user("carol", "pw", only_if_none=True)
    store.remove_user("bob")
    with pytest.raises(ValueError):
        store.remove_user("bob")
    readonly = UserStore(path, readonly=True)
    with pytest.raises(StoreError):
        readonly.add_user("dave", "pw")
    with pytest.raises(StoreError, match="no signing key"):
        readonly.signing_key()
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(StoreError, match="cannot read"):
        UserStore(tmp_path / "bad.json")
    path.write_text("[1]")  # corrupted later: the hub keeps what it read
    assert "alice" in store.users


# -- events fan-out -----------------------------------------------------------------------


class FakeSocket:
    def __init__(self, room: int) -> None:
        self.room, self.frames, self.closed_with, self.closing = room, [], None, False
        self.outbox = self  # `outbox.send(frame, messages)`: send or disconnect

    def send(self, frame: bytes, messages: int = 0) -> bool:
        if len(self.frames) >= self.room:
            return False
        self.frames.append(frame)
        return True

    def close(self, code: int, reason: str) -> None:
        self.closed_with, self.closing = code, True


def test_a_listener_that_does_not_keep_up_is_closed():
    from types import SimpleNamespace

    from hub.core.stats import Stats

    rpc = JsonRpc.__new__(JsonRpc)
    rpc.ctx = SimpleNamespace(hub=SimpleNamespace(stats=Stats()))
    fast, slow = FakeSocket(100), FakeSocket(1)
    rpc.listeners = {fast: SimpleNamespace(received=0, dropped=0), slow: SimpleNamespace(received=0, dropped=0)}
    for _ in range(3):
        rpc._broadcast(b"frame")
    assert len(fast.frames) == 3 and fast.closed_with is None and rpc.listeners[fast].received == 0
    assert len(slow.frames) == 1 and slow.closed_with == SLOW_CLIENT
    assert rpc.ctx.hub.stats.messages_delivered == 0  # events are not publication copies


# -- token records, Platypush's event envelope, form fields ------------------------------


def test_token_records_list_revoke_and_cap(tmp_path, monkeypatch):
    from protocols.jsonrpc import store as store_module

    store = UserStore(tmp_path / "users.json")
    store.add_user("alice", "pw")
    store.add_user("bob", "pw")
    assert (store.user_id("alice"), store.user_id("bob"), store.user_id("nobody")) == (1, 2, 0)
    now = int(time.time())
    a1 = store.record_token("alice", "j1", now - 10, now + 60)
    a2 = store.record_token("alice", "j2", now, now + 60, "named")
    store.record_token("bob", "j3", now, now + 60)
    store.record_token("alice", "j0", now - 100, now - 1)  # already expired: never listed
    assert a1["name"].startswith("alice__") and len(a1["name"]) == 15 and (a1["id"], a2["id"]) == (1, 2)
    with pytest.raises(ValueError, match="already exists"):
        store.record_token("alice", "j4", now, now + 60, "named")
    assert [t["jti"] for t in UserStore(tmp_path / "users.json").tokens("alice")] == ["j2", "j1"]
    assert len(store.tokens()) == 3
    assert store.revoke_id(a1["id"], user="bob") is None  # not bob's
    assert store.revoke_id(a1["id"], user="alice")["jti"] == "j1" and store.is_revoked("j1")
    store.revoke("j2", now + 60)  # by jti (a token given by value): the record goes too
    assert store.tokens("alice") == [] and store.is_revoked("j2")
    assert "j0" not in store.data["tokens"]  # expired records are pruned on the next write
    monkeypatch.setattr(store_module, "MAX_TOKENS_PER_USER", 3)
    for i in range(5):
        store.record_token("alice", f"c{i}", now + i, now + 600)
    assert [t["jti"] for t in store.tokens("alice")] == ["c4", "c3", "c2"]
    assert store.is_revoked("c0") and store.is_revoked("c1") and not store.is_revoked("c2")
    assert [t["jti"] for t in store.tokens("bob")] == ["j3"]


def test_custom_events_are_completed_as_platypush_builds_them():
    from protocols.jsonrpc.server import parse_custom_event

    event = parse_custom_event('{"type": "event", "args": {"subtype": "x", "type": "a.b.C"}, "extra": 1}')
    assert list(event) == ["type", "target", "origin", "id", "_timestamp", "args"]
    assert event["args"] == {"type": "a.b.C", "subtype": "x"} and len(event["id"]) == 32 and event["target"] == event["origin"]
    kept = parse_custom_event(json.dumps({"type": "event", "id": "i", "target": "t", "origin": "o", "_timestamp": 3,
                                          "args": {"type": "a.B"}}))
    assert (kept["id"], kept["target"], kept["origin"], kept["_timestamp"]) == ("i", "t", "o", 3)
    for bad in ("", "[]", '{"type": "event"}', '{"type": "event", "args": {"type": "NoModule"}}',
                '{"type": "event", "args": {"type": ".x"}}', '{"type": "request", "args": {"type": "a.B"}}', "[" * 100000):
        assert parse_custom_event(bad) is None, bad


def test_registration_fields_and_expiry_days():
    from protocols.jsonrpc.server import expiry_ttl, registration_fields

    def req(content_type: str, body: bytes) -> Request:
        return Request("POST", "/register", "/register", {}, {"content-type": content_type} if content_type else {}, body)

    assert registration_fields(req("application/json", b'{"username": "a"}')) == {"username": "a"}
    assert registration_fields(req("", b'{"username": "a"}')) == {"username": "a"}
    assert registration_fields(req("application/x-www-form-urlencoded", b"username=a&password=p%26w")) == {
        "username": "a", "password": "p&w"}
    multipart = (b'--XX\r\nContent-Disposition: form-data; name="username"\r\n\r\nroot\r\n'
                 b'--XX\r\nContent-Disposition: form-data; name="password"\r\n\r\np\xc3\xa9\r\n--XX--\r\n')
    assert registration_fields(req("multipart/form-data; boundary=XX", multipart)) == {"username": "root", "password": "pé"}
    assert registration_fields(req("application/json", b"[1]")) == {} and registration_fields(req("application/json", b"{")) == {}
    assert expiry_ttl(None) is None and expiry_ttl(0) is None and expiry_ttl(1) == 86400 and expiry_ttl(0.0001) == 60
    assert all(not isinstance(expiry_ttl(bad), int) for bad in (-1, "1", True, 10**6))


def test_access_log_masks_credentials_in_the_query():
    from hub.net.http import loggable

    assert loggable("/ws/events?token=abc&x=1") == "/ws/events?token=***&x=1"
    assert loggable("/a?Access_Token=1&sign=2&password=3&api_key=4&ok=5") == "/a?Access_Token=***&sign=***&password=***&api_key=***&ok=5"
    assert loggable("/plain") == "/plain" and loggable("/q?token") == "/q?token"
