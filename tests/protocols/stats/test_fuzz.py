"""Fuzzing the NanoMQ request decoding: any body is an ApiError (the API's shape) or a valid answer."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hub.core import Hub, NamespaceOptions, Project
from protocols.stats import api

from ..fuzzing import FUZZ, commands, raw_bytes


@FUZZ
@given(st.one_of(raw_bytes, commands(method_key="req", params_key="seq").map(lambda c: __import__("json").dumps(c).encode())),
       st.one_of(st.none(), st.text(max_size=30)))
def test_stats_requests(body, auth):
    hub = Hub([Project("proj", "secret", NamespaceOptions(), {})])
    try:
        api.check_auth(auth, "admin", "public")
    except api.ApiError as exc:
        assert exc.status == 401 and {"code", "seq"} <= set(exc.body())
    try:
        request = api.parse_request(body)
        reply = api.answer(hub, request, lambda config: {"restarted": True})
    except api.ApiError as exc:
        assert 400 <= exc.status < 500 and {"code", "seq"} <= set(exc.body())
        return
    assert "code" in reply
