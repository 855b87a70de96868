"""The command APIs without sockets: parsing, signing, commands and their replies."""

import json
import urllib.parse

import pytest

from hub.core import Hub, NamespaceOptions, Project
from protocols.centrifuge import hmac_hex
from protocols.command_api import apikey, signed

OPTIONS = NamespaceOptions(presence=True, history_size=5, history_lifetime=60)
HUB_PROJECTS = [Project("proj", "s3cret", OPTIONS, {"quiet": NamespaceOptions(presence=False)}, api_keys=("k1",)),
                Project("other", "x", api_keys=("k2",))]


def form(data: str, sign: str | None = None, secret: str = "s3cret", project: str = "proj") -> bytes:
    sign = sign if sign is not None else hmac_hex(secret, project, data.encode())
    return urllib.parse.urlencode({"data": data, "sign": sign}).encode()


def test_form_and_header_bodies():
    data = json.dumps({"method": "publish", "params": {"channel": "news", "data": "é"}}, ensure_ascii=False)
    parsed = signed.parse_body(form(data), "application/x-www-form-urlencoded", None)
    assert parsed.data == data.encode("utf-8")
    signed.verify("s3cret", "proj", parsed)
    parsed = signed.parse_body(data.encode(), "application/json", hmac_hex("s3cret", "proj", data.encode()))
    signed.verify("s3cret", "proj", parsed)


@pytest.mark.parametrize("body, content_type, status, message", [
    (b"", "application/x-www-form-urlencoded", 400, "empty request body"),
    (b"data=%7B%7D", "", 400, "sign required"),
    (b"sign=abc", "", 400, "data required"),
    (b"data=1&sign=2", "text/plain", 400, "expected a form"),
    (b"data=%ZZ&&&", "", 400, "malformed form body"),
])
def test_bad_bodies(body, content_type, status, message):
    with pytest.raises(signed.RequestError) as info:
        signed.parse_body(body, content_type, None)
    assert info.value.status == status and message in info.value.message


def test_wrong_sign_is_401():
    parsed = signed.parse_body(form("{}", sign="0" * 64), "", None)
    with pytest.raises(signed.RequestError) as info:
        signed.verify("s3cret", "proj", parsed)
    assert info.value.status == 401


@pytest.mark.parametrize("data, message", [(b"{nope", "not valid JSON"), (b"7", "must be a command object"),
                                           (json.dumps([{}] * 3).encode(), "too many commands")])
def test_bad_commands(data, message):
    with pytest.raises(signed.RequestError) as info:
        signed.parse_commands(data, 2)
    assert info.value.status == 400 and message in info.value.message


async def test_signed_commands_replies():
    hub = Hub(HUB_PROJECTS)
    replies = await signed.run_commands(hub, "proj", [
        {"method": "publish", "params": {"channel": "news", "data": {"a": 1}, "client": "c1"}},
        {"method": "publish", "params": {"channel": "nope:x", "data": 1}},
        {"method": "publish", "params": {"channel": "news"}},
        {"method": "publish", "params": {"channel": 5, "data": 1}},
        {"method": "history", "params": {"channel": "news"}},
        {"method": "presence", "params": {"channel": "quiet:x"}},
        {"method": "unsubscribe", "params": {}},
        {"method": "fly", "params": {}},
        "junk",
    ])
    assert replies[0] == {"method": "publish", "error": None, "body": True}
    assert [r["error"] for r in replies[1:4]] == ["namespace not found", "data required", "invalid channel: expected string"]
    (message,) = replies[4]["body"]
    assert message["data"] == {"a": 1} and message["client"] == "c1" and message["channel"] == "news"
    assert replies[5]["error"] == "not available"
    assert replies[6]["error"] == "user required"
    assert replies[7]["error"] == "method not found"
    assert replies[8]["error"] == "invalid command: expected an object"


def test_api_key_lookup_and_header_forms():
    assert apikey.project_for_key({p.key: p for p in HUB_PROJECTS}, "k2") == "other"
    assert apikey.project_for_key({p.key: p for p in HUB_PROJECTS}, "nope") is None
    assert apikey.api_key_of({"x-api-key": "a"}) == "a"
    assert apikey.api_key_of({"authorization": "apikey b"}) == "b"
    assert apikey.api_key_of({"authorization": "Bearer c"}) is None


async def test_apikey_methods():
    hub = Hub(HUB_PROJECTS)
    first = (await apikey.call(hub, "proj", "publish", {"channel": "news", "data": 1}))["result"]
    assert first["offset"] == 1 and first["epoch"]
    assert await apikey.call(hub, "proj", "publish", {"channel": "quiet:x", "data": 1}) == {"result": {}}
    hist = (await apikey.call(hub, "proj", "history", {"channel": "news", "limit": 10}))["result"]
    assert [p["data"] for p in hist["publications"]] == [1] and hist["epoch"] == first["epoch"]
    assert (await apikey.call(hub, "proj", "history", {"channel": "news"}))["result"]["publications"] == []
    bad_epoch = await apikey.call(hub, "proj", "history", {"channel": "news", "limit": 1, "since": {"offset": 0, "epoch": "x"}})
    assert bad_epoch["error"]["code"] == 112
    unknown = await apikey.call(hub, "proj", "publish", {"channel": "nope:x", "data": 1})
    assert unknown["error"] == {"code": 102, "message": "unknown channel"}
    assert (await apikey.call(hub, "proj", "publish", {"data": 1}))["error"]["code"] == 107
    assert (await apikey.call(hub, "proj", "warp", {}))["error"]["code"] == 104
    assert (await apikey.call(hub, "proj", "presence", {"channel": "quiet:x"}))["error"]["code"] == 108
    b = (await apikey.call(hub, "proj", "broadcast", {"channels": ["news", "nope:x"], "data": 2}))["result"]["responses"]
    assert "result" in b[0] and b[1]["error"]["code"] == 102
    batch = await apikey.call(hub, "proj", "batch", {"commands": [{"publish": {"channel": "news", "data": 3}}, {"info": {}}, {"x": {}}]})
    assert set(batch) == {"replies"}
    assert batch["replies"][0]["publish"]["offset"] == 3
    assert batch["replies"][1]["info"]["nodes"][0]["num_channels"] == 0
    assert batch["replies"][2]["error"]["code"] == 104
    assert (await apikey.call(hub, "proj", "channels", {}))["result"] == {"channels": {}}


@pytest.mark.parametrize("raw", [b'{"a": [1, 2.5, "x y"], "b": "%+&=?"}', "Grüße 世界 🌍 %25 %41".encode(), bytes(range(256))])
def test_unquote_form_matches_the_standard_decoder(raw):
    encoded = urllib.parse.quote_plus(raw).encode()
    assert signed.unquote_form(encoded) == raw
    lower = urllib.parse.quote(raw).lower().encode()
    assert signed.unquote_form(lower) == urllib.parse.unquote_to_bytes(lower)


def test_form_fields():
    assert signed.form_fields(b"data=%7B%7D&sign=ab&x=") == {"data": b"{}", "sign": b"ab", "x": b""}
    for bad in (b"data=%G1", b"novalue", b"data=%4"):
        with pytest.raises(signed.RequestError):
            signed.form_fields(bad)


@pytest.mark.parametrize("bad", [b"%%2241", b"%4%2241", b"%2", b"x%G0", b"%%22"])
def test_unquote_form_rejects_bad_escapes_even_next_to_common_ones(bad):
    with pytest.raises(ValueError):
        signed.unquote_form(bad)


@pytest.mark.parametrize("raw, decoded", [
    (b"a=b%41", b"a=bA"),            # a raw `=` takes the standard decoder
    (b"%0D%0A\r\n%7b", b"\r\n\r\n{"),  # so do raw CR / LF
    (b"%3D%3d", b"=="),
    (b"caf%C3%A9+au+lait", "café au lait".encode()),
    (b"no escapes", b"no escapes"),
])
def test_unquote_form_fallbacks_and_edges(raw, decoded):
    assert signed.unquote_form(raw) == decoded


@pytest.mark.parametrize("bad", [b"a=%G1", b"=%", b"\r%4", b"%"])
def test_unquote_form_fallback_rejects_bad_escapes(bad):
    with pytest.raises(ValueError):
        signed.unquote_form(bad)


def test_unquote_form_agrees_with_the_standard_decoder_on_random_input():
    """Every short string over an alphabet of escape parts: same bytes as unquote_to_bytes, or ValueError exactly when
    some `%` does not start a two-digit hex escape."""
    import random
    import re

    rng = random.Random(5)
    valid = re.compile(rb"(?:[^%]|%[0-9A-Fa-f]{2})*\Z", re.S)
    for _ in range(20000):
        raw = bytes(rng.choice(b"%0aF+=\r\nxg\xff ") for _ in range(rng.randint(0, 9)))
        if valid.match(raw):
            assert signed.unquote_form(raw) == urllib.parse.unquote_to_bytes(raw.replace(b"+", b" ")), raw
        else:
            with pytest.raises(ValueError):
                signed.unquote_form(raw)


def test_encode_replies_is_compact_json():
    replies = [{"method": "publish", "error": None, "body": True}, {"method": "presence", "error": "not available", "body": None},
               {"method": "history", "error": None, "body": [{"data": "é"}]}, {"method": "publish", "error": None, "body": True}]
    assert signed.encode_replies(replies) == json.dumps(replies, separators=(",", ":"), ensure_ascii=False).encode()
    assert signed.encode_replies([]) == b"[]"


@pytest.mark.parametrize("name, has_key, looks_signed, is_project, api", [
    ("", False, False, False, "apikey"),             # POST /api
    ("publish", True, False, True, "apikey"),        # a key wins, even over a project named publish
    ("publish", False, True, True, "signed"),        # a signed form or X-API-Sign
    ("publish", False, True, False, "signed"),       # ... to an unknown project: 404
    ("development", False, False, True, "signed"),   # a project without sign: 400 sign required
    ("publish", False, False, False, "apikey"),      # a method without key: 401
    ("batch", False, False, False, "apikey"),
    ("nowhere", False, False, False, "signed"),      # 404 project not found
])
def test_which_api(name, has_key, looks_signed, is_project, api):
    from protocols.command_api.server import which_api

    assert which_api(name, has_key, looks_signed, is_project) == api


def test_has_signed_fields():
    assert signed.has_signed_fields(b"data=%7B%7D&sign=ab")
    assert signed.has_signed_fields(b"x=1&sign=")
    assert not signed.has_signed_fields(b"{}")
    assert not signed.has_signed_fields(b'{"data": 1, "sign": 2}')
    assert not signed.has_signed_fields(b"datum=1&signs=2")
