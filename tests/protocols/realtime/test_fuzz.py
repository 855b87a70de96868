"""Fuzzing the client protocols' codecs: any frame gets a reply, a protocol close, or a result; never a crash."""

from __future__ import annotations

import json

import msgpack
from hypothesis import given
from hypothesis import strategies as st

from hub.core import Hub, NamespaceOptions, Project
from hub.core.outbox import Outbox
from protocols.realtime.legacy import Batch as LegacyBatch
from protocols.realtime.sdk import JSON_WIRE, MSGPACK_WIRE, Batch, SdkClient, speaks_sdk

from ..fuzzing import FUZZ, commands, json_values, raw_bytes, run, texts
from .test_legacy_codec import client_for, params
from .test_legacy_codec import make_hub as make_legacy_hub

SECRET = "secret"


def make_hub() -> Hub:
    options = NamespaceOptions(presence=True, join_leave=True, history_size=5, history_lifetime=60)
    return Hub([Project("proj", SECRET, options, {"public": NamespaceOptions(publish=True, anonymous=True, history_size=3,
                                                                             history_lifetime=60)})])


async def legacy_session(frames: list[str | bytes]) -> None:
    client = client_for(make_legacy_hub())
    await client.handle(json.dumps({"method": "connect", "params": params("u")}))
    await client.handle(json.dumps({"method": "subscribe", "params": {"channel": "pub:a"}}))
    for frame in frames:
        batch = await client.handle(frame)
        assert isinstance(batch, LegacyBatch)
        assert batch.reply is None or isinstance(batch.reply, bytes)
        if batch.close is not None:
            break
    client.release()


@FUZZ
@given(st.lists(st.one_of(texts, raw_bytes), min_size=1, max_size=4))
def test_legacy_codec_never_crashes(frames):
    run(legacy_session, frames)


async def sdk_session(wire, messages: list) -> None:
    client = SdkClient(make_hub(), Outbox(1 << 20), wire, default_project="proj", allow_anonymous=True,
                       rpc=lambda method: None)
    connect = {"id": 1, "connect": {}}
    first = wire.codec.dumps(connect) if wire is MSGPACK_WIRE else json.dumps(connect)
    assert (await client.handle(first)).close is None
    for message in messages:
        batch = await client.handle(message)
        assert isinstance(batch, Batch)
        if batch.close is not None:
            assert batch.close[0] in (3501, 3500, 3502, 3503, 3011) or batch.close[0] >= 3000
            break
    client.release()


sdk_commands = commands(method_key="connect").map(lambda c: {"id": c.pop("id", 2), **c}) | json_values


@FUZZ
@given(st.lists(st.one_of(texts, st.lists(sdk_commands, max_size=4).map(lambda cs: "\n".join(json.dumps(c) for c in cs))),
                min_size=1, max_size=4))
def test_sdk_json_codec_never_crashes(messages):
    run(sdk_session, JSON_WIRE, messages)
    for message in messages:
        speaks_sdk(message)


def _pack(value: object) -> bytes:
    try:
        return msgpack.packb(value, use_bin_type=True)
    except OverflowError:  # integers past 64 bits: msgpack has none, send the text instead
        return msgpack.packb(json.dumps(value), use_bin_type=True)


def _msgpack(values: list) -> bytes:
    return b"".join(_pack(v) for v in values)


@FUZZ
@given(st.lists(st.one_of(st.binary(max_size=100), st.lists(sdk_commands | json_values, max_size=4).map(_msgpack), texts),
                min_size=1, max_size=4))
def test_sdk_msgpack_codec_never_crashes(messages):
    run(sdk_session, MSGPACK_WIRE, messages)
