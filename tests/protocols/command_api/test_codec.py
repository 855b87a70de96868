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


FORM = "application/x-www-form-urlencoded"


def test_form_and_header_bodies_signed_as_utf8():
    data = json.dumps({"method": "publish", "params": {"channel": "news", "data": "é 世"}}, ensure_ascii=False)
    parsed = signed.parse_request(form(data), FORM, "", {})
    assert parsed.data == data
    signed.verify(HUB_PROJECTS[0], parsed)
    parsed = signed.parse_request(data.encode(), "application/json", "", {"x-api-sign": hmac_hex("s3cret", "proj", data)})
    signed.verify(HUB_PROJECTS[0], parsed)


def test_form_values_read_as_tornado_reads_them():
    """Query then body (last wins), control characters as spaces, surrounding whitespace stripped."""
    parsed = signed.parse_request(b"sign=%20ab%0A&data=+%7B%7D%01", FORM, "sign=zz&data=qq", {})
    assert (parsed.sign, parsed.data) == ("ab", "{}")
    assert signed.parse_request(b"x=1", FORM, "sign=s&data=d", {}).data == "d"
    with pytest.raises(signed.RequestError):  # the body is read as a form only with a form content type
        signed.parse_request(b"sign=s&data=d", "text/plain", "", {})


@pytest.mark.parametrize("body, content_type", [
    (b"", FORM), (b"data=%7B%7D", FORM), (b"sign=abc", FORM), (b"sign=&data=x", FORM), (b"sign=x&data=+", FORM),
    (b"data=%FF&sign=a", FORM),
])
def test_missing_fields_are_400(body, content_type):
    with pytest.raises(signed.RequestError) as info:
        signed.parse_request(body, content_type, "", {})
    assert info.value.status == 400


def test_wrong_sign_is_401_and_case_matters():
    with pytest.raises(signed.RequestError) as info:
        signed.verify(HUB_PROJECTS[0], signed.parse_request(form("{}", sign="0" * 64), FORM, "", {}))
    assert info.value.status == 401
    upper = hmac_hex("s3cret", "proj", "{}").upper()
    with pytest.raises(signed.RequestError):
        signed.verify(HUB_PROJECTS[0], signed.parse_request(form("{}", sign=upper), FORM, "", {}))


@pytest.mark.parametrize("data, message", [("{nope", "malformed data"), ("7", "data not an array or object"),
                                           (json.dumps([{}] * 3), "admin API message limit exceeded (received 3 messages)")])
def test_bad_commands(data, message):
    with pytest.raises(signed.RequestError) as info:
        signed.parse_commands(data, 2)
    assert info.value.status == 400 and info.value.message == message


async def test_signed_commands_replies():
    hub = Hub(HUB_PROJECTS)
    session = hub.connect("proj", "bob", "test", None)
    await hub.subscribe(session, "quiet:x")
    replies = await signed.run_commands(hub, HUB_PROJECTS[0], [
        {"method": "publish", "params": {"channel": "news", "data": {"a": 1}, "client": "c1"}},
        {"method": "publish", "params": {"channel": "nope:x", "data": 1}},
        {"method": "publish", "params": {"channel": "news"}},
        {"method": "publish", "params": {"channel": 5, "data": 1}},
        {"method": "publish", "params": {"channel": "", "data": 1}},
        {"method": "publish", "params": {"channel": "x" * 300, "data": 1}},
        {"method": "history", "params": {"channel": "news"}},
        {"method": "presence", "params": {"channel": "quiet:x"}},
        {"method": "presence", "params": {"channel": "nope:x"}},
        {"method": "history", "params": {"channel": "quiet:x"}},
        {"method": "unsubscribe", "params": {}},
        {"method": "fly", "params": {}},
        "junk",
        {"method": "channels", "params": {}},
    ])
    assert replies[0] == {"method": "publish", "error": None, "body": True}
    assert replies[1] == {"method": "publish", "error": "namespace not found", "body": False}
    assert replies[2] == {"method": "publish", "error": None, "body": True}  # data is optional (null)
    assert replies[3]["error"].startswith("5 is not of type 'string'\n\nFailed validating 'type' in schema['properties']['channel']")
    assert replies[4] == {"method": "publish", "error": None, "body": False}  # dropped quietly
    assert replies[5] == {"method": "publish", "error": None, "body": True}  # the API checks no length
    newest, oldest = replies[6]["body"]
    assert list(oldest) == ["uid", "timestamp", "info", "channel", "data"] and oldest["data"] == {"a": 1}
    assert newest["data"] is None and isinstance(newest["timestamp"], int)
    assert replies[7]["body"] == {session.id: {"user": "bob", "client": session.id, "default_info": None, "channel_info": None}}
    assert replies[8] == {"method": "presence", "error": None, "body": {}}
    assert replies[9] == {"method": "history", "error": None, "body": []}
    assert replies[10]["error"].startswith("'user' is a required property")
    assert replies[11] == {"method": "fly", "error": "method not found", "body": None}
    assert replies[12]["method"] is None and replies[12]["error"].startswith("'junk' is not of type 'object'")
    assert replies[13] == {"method": "channels", "error": "method not found", "body": None}


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


def test_form_arguments():
    assert signed.form_arguments(b"data=%7B%7D&sign=ab&x=&novalue") == {"data": b"{}", "sign": b"ab", "x": b"", "novalue": b""}
    assert signed.form_arguments(b"data=%G1&sign=%4") == {"data": b"%G1", "sign": b"%4"}  # left as they are


@pytest.mark.parametrize("bad", [b"%%2241", b"%4%2241", b"%2", b"x%G0", b"%%22"])
def test_unquote_form_leaves_bad_escapes_as_they_are(bad):
    assert signed.unquote_form(bad) == urllib.parse.unquote_to_bytes(bad)


@pytest.mark.parametrize("raw, decoded", [
    (b"a=b%41", b"a=bA"),            # a raw `=` takes the standard decoder
    (b"%0D%0A\r\n%7b", b"\r\n\r\n{"),  # so do raw CR / LF
    (b"%3D%3d", b"=="),
    (b"caf%C3%A9+au+lait", "café au lait".encode()),
    (b"no escapes", b"no escapes"),
])
def test_unquote_form_fallbacks_and_edges(raw, decoded):
    assert signed.unquote_form(raw) == decoded


def test_unquote_form_agrees_with_the_standard_decoder_on_random_input():
    """Every short string over an alphabet of escape parts: the same bytes as unquote_to_bytes (which
    Tornado uses), bad escapes included."""
    import random

    rng = random.Random(5)
    for _ in range(20000):
        raw = bytes(rng.choice(b"%0aF+=\r\nxg\xff ") for _ in range(rng.randint(0, 9)))
        assert signed.unquote_form(raw) == urllib.parse.unquote_to_bytes(raw.replace(b"+", b" ")), raw


def test_encode_replies_as_the_original():
    replies = [{"method": "publish", "error": None, "body": True}, {"method": "presence", "error": "not available", "body": None},
               {"method": "history", "error": None, "body": [{"data": "é </b>"}]}, {"method": "publish", "error": None, "body": True}]
    assert signed.encode_replies(replies) == json.dumps(replies).replace("</", "<\\/").encode()
    assert signed.encode_replies([]) == b"[]"


@pytest.mark.parametrize("name, has_key, looks_signed, is_project, api", [
    ("", False, False, False, "apikey"),             # POST /api
    ("", False, True, False, "signed"),              # POST /api/ with a signed form: 404, as the original
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


async def test_a_batch_of_publishes_to_many_channels():
    """Consecutive publishes go to the core as one batch: replies in order, each channel's publications in
    order (one push per channel), a namespace error only for its own command, and a command after them
    sees them all."""
    from tests.core.wire import LineWire

    hub = Hub(HUB_PROJECTS)
    wire = LineWire()
    subs = {ch: hub.connect("proj", f"u{ch}", "test", wire) for ch in ("a", "b", "quiet:c")}
    for ch, session in subs.items():
        await hub.subscribe(session, ch)
        session.outbox.take()  # the join push
    commands = [{"method": "publish", "params": {"channel": ch, "data": i}}
                for i, ch in enumerate(["a", "b", "a", "nope:x", "quiet:c", "b", "a", "x" * 300, "nope:" + "x" * 300])]
    commands += [{"method": "history", "params": {"channel": "a"}}, {"method": "publish", "params": {"channel": "b", "data": 8}}]
    replies = await signed.run_commands(hub, HUB_PROJECTS[0], commands)
    published = {"method": "publish", "error": None, "body": True}
    refused = {"method": "publish", "error": "namespace not found", "body": False}
    assert replies[:9] == [published] * 3 + [refused] + [published] * 4 + [refused]  # the namespace is looked at first
    assert [p["data"] for p in replies[9]["body"]] == [6, 2, 0]  # newest first
    assert replies[10] == published
    got = {ch: [m["data"] for m in map(json.loads, s.outbox.take().splitlines()) if m["type"] == "pub"]
           for ch, s in subs.items()}
    assert got == {"a": [0, 2, 6], "b": [1, 5, 8], "quiet:c": [4]}
    assert hub.stats.messages_in == 7 and hub.stats.messages_delivered == 7  # the over-long name: accepted, not published
    assert subs["a"].received == 3


def test_error_mode_is_checked_at_start() -> None:
    from hub.config import ConfigError, parse_settings
    from tests.conftest import hub_config

    assert parse_settings(hub_config('[command_api]\nerror_mode = "transport"\n'), "<t>").adapters["command_api"].error_mode
    with pytest.raises(ConfigError) as failed:
        parse_settings(hub_config('[command_api]\nerror_mode = "http"\n'), "<t>")
    assert "command_api.error_mode" in str(failed.value)
