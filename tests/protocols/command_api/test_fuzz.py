"""Fuzzing the command API: signed form decoding, commands and API-key calls give the API's error or a result."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hub.core import Hub, NamespaceOptions, Project
from protocols.command_api import apikey, signed

from ..fuzzing import FUZZ, commands, json_values, raw_bytes, run, texts

form_bytes = st.one_of(raw_bytes, st.lists(st.tuples(st.sampled_from([b"data", b"sign", b"x", b"%64ata", b""]),
                                                     st.one_of(raw_bytes, st.text(max_size=10).map(str.encode))),
                                           max_size=4).map(lambda kv: b"&".join(k + b"=" + v for k, v in kv)))


def make_hub() -> Hub:
    return Hub([Project("proj", "secret", NamespaceOptions(history_size=3, history_lifetime=60), {})])


@FUZZ
@given(form_bytes, st.sampled_from(["", "application/x-www-form-urlencoded", "application/json", "text/plain"]),
       st.one_of(st.none(), st.text(max_size=10)))
def test_signed_form_decoding(body, content_type, sign):
    headers = {} if sign is None else {"x-api-sign": sign}
    try:
        request = signed.parse_request(body, content_type, "", headers)
    except signed.RequestError as exc:
        assert 400 <= exc.status < 500
        return
    assert isinstance(request.data, str) and isinstance(request.sign, str)
    signed.has_signed_fields(body)
    try:
        signed.parse_commands(request.data, 100)
    except signed.RequestError as exc:
        assert exc.status == 400


@FUZZ
@given(st.one_of(st.lists(commands(), max_size=5), st.lists(json_values, max_size=3)))
def test_signed_commands_always_get_replies(cmds):
    hub = make_hub()
    replies = run(signed.run_commands, hub, hub.project("proj"), cmds)
    assert len(replies) == len(cmds)
    signed.encode_replies(replies)


@FUZZ
@given(st.one_of(st.sampled_from(["publish", "broadcast", "presence", "history", "channels", "info", "disconnect",
                                  "unsubscribe", "subscribe", "history_remove", "presence_stats"]), json_values), json_values)
def test_apikey_calls_answer_result_or_error(method, params):
    reply = run(apikey.call, make_hub(), "proj", method, params)
    assert set(reply) <= {"result", "error"} and len(reply) == 1


@FUZZ
@given(texts)
def test_signed_parse_commands_on_any_text(data):
    try:
        signed.parse_commands(data, 100)
    except signed.RequestError as exc:
        assert exc.status == 400
