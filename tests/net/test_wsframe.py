"""hub.net.wsframe, with wsproto's frame parser as the oracle: same messages, same close codes."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wsproto.frame_protocol import FrameProtocol, Opcode, ParseFailed

from hub.net import wsframe
from hub.net.wsframe import FrameReader, ProtocolError, parse_close, text_frame

MASK = b"\x11\x22\x33\x44"


def client_frame(opcode: int, payload: bytes, fin: bool = True, rsv: int = 0, mask: bytes = MASK) -> bytes:
    n = len(payload)
    head = bytes(((0x80 if fin else 0) | rsv << 4 | opcode,))
    if n < 126:
        head += bytes((0x80 | n,))
    elif n < 65536:
        head += struct.pack("!BH", 0xFE, n)
    else:
        head += struct.pack("!BQ", 0xFF, n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def ours(data: bytes, chunks: list[int]) -> tuple[list[tuple[int, bytes]], int | None]:
    """Messages and the close code our reader answers with (None: no error), fed in `chunks` pieces."""
    reader = FrameReader(1 << 20)
    out: list[tuple[int, bytes]] = []
    pos = 0
    try:
        for size in [*chunks, len(data)]:
            reader.feed(data[pos:pos + size])
            pos += size
            for msg in reader.messages():
                if msg.opcode == wsframe.TEXT:
                    msg.payload.decode("utf-8")  # the websocket layer's check
                out.append((msg.opcode, msg.payload))
                if msg.opcode == wsframe.CLOSE:
                    return out, None
            if pos >= len(data):
                break
        reader.messages()  # an error after the last messages is raised on the next call
    except ProtocolError as exc:
        return out, exc.code
    except UnicodeDecodeError:
        return out, 1007
    return out, None


def oracle(data: bytes) -> tuple[list[tuple[int, bytes]], int | None]:
    """The same through wsproto's server-side frame parser, with messages reassembled."""
    proto = FrameProtocol(client=False, extensions=[])
    proto.receive_bytes(data)
    out: list[tuple[int, bytes]] = []
    parts: list[bytes] = []
    kind = None
    try:
        for frame in proto.received_frames():
            op = frame.opcode
            if op == Opcode.CLOSE:
                code, reason = frame.payload
                payload = b"" if code == 1005 else struct.pack("!H", code) + reason.encode()
                out.append((wsframe.CLOSE, payload))
                return out, None
            if op in (Opcode.PING, Opcode.PONG):
                out.append((int(op), bytes(frame.payload)))
                continue
            if op in (Opcode.TEXT, Opcode.BINARY):
                kind = int(op)
            parts.append(frame.payload.encode() if isinstance(frame.payload, str) else bytes(frame.payload))
            if frame.message_finished:
                out.append((kind, b"".join(parts)))
                parts, kind = [], None
    except ParseFailed as exc:
        return out, int(exc.code)
    return out, None


def test_reserved_control_opcode_fails_the_connection():
    reader = FrameReader()
    reader.feed(client_frame(0xB, b""))
    with pytest.raises(ProtocolError) as err:
        reader.messages()
    assert err.value.code == 1002


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1014, 1015, 1016, 2000, 2999, 5000, 65535])
def test_invalid_close_codes_are_protocol_errors(code):
    with pytest.raises(ProtocolError) as err:
        parse_close(struct.pack("!H", code))
    assert err.value.code == 1002


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 3000, 3999, 4000, 4999])
def test_valid_close_codes_parse(code):
    assert parse_close(struct.pack("!H", code) + "ok \u00e9".encode()) == (code, "ok \u00e9")


def test_one_byte_close_payload_and_non_utf8_reason():
    with pytest.raises(ProtocolError) as err:
        parse_close(b"\x03")
    assert err.value.code == 1002
    with pytest.raises(ProtocolError) as err:
        parse_close(struct.pack("!H", 1000) + b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80")
    assert err.value.code == 1007


def test_close_frame_ends_parsing():
    reader = FrameReader()
    reader.feed(client_frame(wsframe.CLOSE, struct.pack("!H", 1000)) + client_frame(0xB, b"junk"))
    assert [m.opcode for m in reader.messages()] == [wsframe.CLOSE]


# -- property tests: our reader against wsproto ----------------------------------------------
payloads = st.binary(max_size=300)
texts = st.text(max_size=100).map(lambda t: t.encode("utf-8"))
close_codes = st.one_of(st.sampled_from([1000, 1001, 1002, 1003, 1007, 1011, 3000, 4999]), st.integers(0, 65535))


@st.composite
def frames(draw) -> bytes:
    kind = draw(st.sampled_from(["text", "binary", "ping", "pong", "close", "fragmented", "bad-opcode", "rsv",
                                 "long-control", "stray-continuation", "bad-utf8"]))
    if kind == "text":
        return client_frame(wsframe.TEXT, draw(texts))
    if kind == "binary":
        return client_frame(wsframe.BINARY, draw(payloads))
    if kind in ("ping", "pong"):
        return client_frame(wsframe.PING if kind == "ping" else wsframe.PONG, draw(st.binary(max_size=125)))
    if kind == "close":
        body = draw(st.one_of(st.just(b""), st.binary(min_size=1, max_size=1),
                              st.tuples(close_codes, st.binary(max_size=20)).map(lambda t: struct.pack("!H", t[0]) + t[1])))
        return client_frame(wsframe.CLOSE, body)
    if kind == "fragmented":
        opcode = draw(st.sampled_from([wsframe.TEXT, wsframe.BINARY]))
        data = draw(texts) if opcode == wsframe.TEXT else draw(payloads)
        cut = draw(st.integers(0, len(data)))
        ping = client_frame(wsframe.PING, b"p") if draw(st.booleans()) else b""
        return client_frame(opcode, data[:cut], fin=False) + ping + client_frame(0, data[cut:])
    if kind == "bad-opcode":
        return client_frame(draw(st.sampled_from([3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])), draw(st.binary(max_size=10)))
    if kind == "rsv":
        return client_frame(wsframe.TEXT, b"x", rsv=draw(st.integers(1, 7)))
    if kind == "long-control":
        return client_frame(wsframe.PING, b"x" * draw(st.integers(126, 200)))
    if kind == "stray-continuation":
        return client_frame(0, draw(payloads))
    return client_frame(wsframe.TEXT, b"ok\xff" + draw(st.binary(max_size=5)))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(frames(), min_size=1, max_size=6), st.lists(st.integers(1, 50), max_size=20))
def test_reader_agrees_with_wsproto(stream, chunks):
    data = b"".join(stream)
    got, code = ours(data, chunks)
    want, want_code = oracle(data)
    if want_code is None:
        assert (got, code) == (want, None)
    else:
        # wsproto checks UTF-8 per frame (fail fast); we check a whole message: both fail the connection.
        assert code is not None
        assert code == want_code or {code, want_code} == {1002, 1007}
        assert got == want[:len(got)]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(frames(), min_size=1, max_size=3), st.booleans(), st.integers(0, 300))
def test_the_one_message_shortcut_takes_only_what_the_reader_reads_as_one_message(stream, prefix, limit):
    """`whole_message` (the websocket's shortcut for a read that is exactly one message) gives what wsproto reads
    there, or None for anything else: several frames, fragments, control frames, errors, over the size limit."""
    data = b"".join(stream)
    got = wsframe.whole_message(data, limit)
    want, code = oracle(data)
    plain = (code is None and len(want) == 1 and want[0][0] in (wsframe.TEXT, wsframe.BINARY) and len(stream) == 1
             and data[0] & 0x80)  # one final frame, not the first of a fragmented message
    if got is None:
        assert not plain or len(want[0][1]) > limit or (want[0][0] == wsframe.TEXT and _not_utf8(want[0][1]))
        return
    assert plain and len(want[0][1]) <= limit
    assert got == (want[0][1].decode("utf-8") if want[0][0] == wsframe.TEXT else want[0][1])
    reader = FrameReader(limit)
    reader.feed(b"\x81" if prefix else b"")  # anything buffered before: the reader's case, not the shortcut's
    assert (reader.whole(data) is None) == prefix


def _not_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.lists(st.integers(1, 64), max_size=10))
def test_reader_never_raises_anything_but_protocol_errors(data, chunks):
    ours(data, chunks)  # ProtocolError and UnicodeDecodeError are caught there; anything else fails


@given(st.sampled_from([wsframe.TEXT, wsframe.BINARY, wsframe.PING]), st.binary(max_size=70000), st.text(max_size=2000))
@settings(max_examples=50, deadline=None)
def test_server_frames_decode_in_wsproto(opcode, payload, text):
    if opcode == wsframe.PING:
        payload = payload[:125]
    if opcode == wsframe.TEXT:
        payload = text.encode("utf-8")
    client = FrameProtocol(client=True, extensions=[])
    client.receive_bytes(wsframe.encode_frame(opcode, payload))
    (frame,) = list(client.received_frames())
    body = frame.payload.encode() if isinstance(frame.payload, str) else bytes(frame.payload)
    assert (int(frame.opcode), body, frame.message_finished) == (opcode, payload, True)


def test_messages_come_out_in_bounded_batches():
    reader = FrameReader()
    reader.feed(b"".join(client_frame(wsframe.TEXT, b"%d" % i) for i in range(10)))
    batches = []
    while True:
        batch = reader.messages(4)
        batches.append([m.payload for m in batch])
        if not reader.more:
            break
    assert batches == [[b"0", b"1", b"2", b"3"], [b"4", b"5", b"6", b"7"], [b"8", b"9"]]


def test_text_frame_writes_a_lone_surrogate_as_its_json_escape():
    """Valid UTF-8 whatever the str holds: a lone surrogate (from a JSON `\\ud800`) as the escape it came as."""
    payload = b'{"t":"\\ud800"}'
    assert text_frame('{"t":"\ud800"}') == bytes((0x81, len(payload))) + payload
