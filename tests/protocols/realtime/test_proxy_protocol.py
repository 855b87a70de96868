"""The backend proxy's protocol logic without I/O: configuration, requests, answers, headers."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from hub.config import ConfigError, load_settings
from protocols.realtime import proxy as P
from protocols.realtime.sdk import Disconnect, ReplyError

BASE = "http://backend.example"


def table() -> dict:
    return {
        "connect": {"endpoint": f"{BASE}/connect", "timeout": 2.5, "http_headers": ["Cookie"]},
        "subscribe": {"endpoint": f"{BASE}/subscribe"},
        "rpc": {"endpoint": f"{BASE}/rpc", "binary_encoding": True},
        "named": {"other": {"endpoint": f"{BASE}/other", "static_headers": {"X-Key": "k"}}},
        "channels": {"": {"subscribe": "default"}, "chat": {"subscribe": "other", "publish": "other"}},
        "rpc_namespaces": {"": "default", "ext": "other"},
    }


def test_parse_config_resolves_names() -> None:
    config = P.parse_config(table())
    assert config.connect is not None and config.connect.timeout == 2.5 and config.connect.http_headers == {"cookie"}
    assert config.refresh is None and not config.timed
    assert config.channel("subscribe", "").url == f"{BASE}/subscribe"
    assert config.channel("publish", "chat").name == "other" and config.channel("publish", "") is None
    assert config.rpc_for("plain").url == f"{BASE}/rpc" and config.rpc_for("ext:call").name == "other"
    assert config.rpc_for("unknown:call") is None
    assert P.parse_config({}).empty


@pytest.mark.parametrize("change, key", [
    (lambda t: t["connect"].update(endpoint="grpc://x"), "connect.endpoint"),
    (lambda t: t["connect"].update(timeout=0), "connect.timeout"),
    (lambda t: t["connect"].update(http_headers="Cookie"), "connect.http_headers"),
    (lambda t: t["channels"]["chat"].update(publish="missing"), "channels.chat.publish"),
    (lambda t: t["channels"][""].update(subscribe_stream="default"), "channels..subscribe_stream"),
    (lambda t: t["rpc_namespaces"].update(x="nope"), "rpc_namespaces.x"),
    (lambda t: t.update(extra=1), "extra"),
])
def test_parse_config_errors_name_the_key(change, key) -> None:
    data = table()
    change(data)
    with pytest.raises(P.ProxyConfigError) as exc:
        P.parse_config(data)
    assert exc.value.key == key


def test_hub_toml_errors_name_realtime_proxy(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    path.write_text('[projects.p]\nsecret = "s"\n[realtime.proxy.connect]\nendpoint = "ftp://x"\n')
    with pytest.raises(ConfigError) as exc:
        load_settings(path)
    assert exc.value.key == "realtime.proxy.connect.endpoint"


@pytest.mark.parametrize("body", [b"", b"<html>", b"[]", b'"x"', b'{"result": []}', b'{"error": "bad"}',
                                  b'{"disconnect": {"code": "4000"}}', b'{"error": {"code": true}}', b"{" * 100000])
def test_garbage_answers_are_failures(body: bytes) -> None:
    with pytest.raises(P.ProxyFailure):
        P.parse_answer(body)


def test_refusals_keep_the_backends_code_and_text() -> None:
    with pytest.raises(Disconnect) as dis:
        P.connect_result({"disconnect": {"code": 4501, "reason": "bye"}})
    assert (dis.value.code, dis.value.reason) == (4501, "bye")
    with pytest.raises(ReplyError) as err:
        P.subscribe_result({"error": {"code": 4001, "message": "", "temporary": True}})
    assert err.value.as_dict() == {"code": 4001, "message": "", "temporary": True}


def test_connect_result() -> None:
    info = base64.b64encode(b'{"b": 64}').decode()
    creds = P.connect_result({"result": {"user": "u", "b64info": info, "expire_at": 2000000000, "channels": ["a"],
                                         "subs": {"b": {"info": {"i": 1}, "b64data": base64.b64encode(b"\x00\xff").decode()}},
                                         "meta": {"m": 1}, "data": {"d": 1}}})
    assert (creds.user, creds.info, creds.expires_at, creds.channels, creds.meta, creds.data) == (
        "u", {"b": 64}, 2000000000.0, ["a"], {"m": 1}, {"d": 1})
    assert creds.subs["b"]["info"] == {"i": 1} and creds.subs["b"]["data"] == {"$base64": "AP8="}
    assert P.connect_result({}) is None
    with pytest.raises(P.ProxyFailure):
        P.connect_result({"result": {"user": 5}})
    with pytest.raises(P.ProxyFailure):
        P.connect_result({"result": {"user": "u", "expire_at": True}})
    with pytest.raises(P.ProxyFailure):
        P.connect_result({"result": {"user": "u", "b64info": "%%%"}})


def test_refresh_publish_rpc_results() -> None:
    assert P.refresh_result({}).expired and P.refresh_result({"result": {"expired": True}}).expired
    assert P.refresh_result({"error": {"code": 100}}).expired  # errors are not read for refresh, as in Centrifugo
    grant = P.refresh_result({"result": {"expire_at": 10, "info": {"x": 1}}})
    assert (grant.expired, grant.expires_at, grant.info) == (False, 10.0, {"x": 1})
    same = P.publish_result({"result": {}}, {"a": 1}, None)
    assert (same.data, same.tags, same.skip_history) == ({"a": 1}, None, False)
    changed = P.publish_result({"result": {"b64data": base64.b64encode(b'{"z":2}').decode(), "tags": {"t": "v"},
                                           "skip_history": True}}, {"a": 1}, None)
    assert (changed.data, changed.raw, changed.tags, changed.skip_history) == ({"z": 2}, b'{"z":2}', {"t": "v"}, True)
    assert P.rpc_result({"result": {"data": [1, 2]}}) == ([1, 2], None)
    assert P.rpc_result({}) == (None, None)


def test_requests_and_headers() -> None:
    config = P.parse_config(table())
    rpc = config.rpc_for("x")
    assert P.base_request(rpc, "c1", "websocket", "json") == {
        "client": "c1", "transport": "websocket", "protocol": "json", "encoding": "binary"}
    assert P._payload(rpc, {"a": 1}, None) == {"b64data": base64.b64encode(b'{"a":1}').decode()}
    assert P._payload(config.connect, {"a": 1}, None) == {"data": {"a": 1}}
    other = config.rpc_for("ext:x")
    headers = P.headers_for(other, {"Cookie": "c", "X-Key": "client"})
    assert headers == {"X-Key": "k", "Content-Type": "application/json"}  # only listed client headers go
    headers = P.headers_for(config.connect, {"Cookie": "c", "Authorization": "a"})
    assert headers == {"Cookie": "c", "Content-Type": "application/json"}
