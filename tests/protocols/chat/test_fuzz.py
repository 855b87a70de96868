"""Fuzzing chat request bodies: any body is parameters or the adapter's bad request, never a crash."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from protocols.chat.model import ChatError, parse_body, query_params

from ..fuzzing import FUZZ, raw_bytes


@FUZZ
@given(raw_bytes, st.sampled_from(["", "application/json", "application/x-www-form-urlencoded", "multipart/form-data", "text/plain"]))
def test_chat_bodies(body, content_type):
    try:
        params = parse_body(body, content_type)
    except ChatError:
        return
    assert isinstance(params, dict)


@FUZZ
@given(st.dictionaries(st.text(max_size=8), st.lists(st.text(max_size=8), max_size=3), max_size=5))
def test_chat_query(query):
    assert isinstance(query_params(query), dict)
