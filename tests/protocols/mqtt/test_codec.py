"""The MQTT codec, payload mapping and auth without sockets (paho's own encoder as the oracle where it has one)."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess

import pytest

from protocols.mqtt import codec
from protocols.mqtt.auth import AclFile, Authenticator, UserEntry, hash_password, verify_password, within
from protocols.mqtt.payload import to_data, to_payload


def split(data: bytes) -> list[tuple[int, bytes]]:
    reader = codec.PacketReader()
    reader.feed(data)
    return reader.packets()


def test_varint_round_trip_and_reader_boundaries() -> None:
    for n in (0, 127, 128, 16383, 16384, 2_097_151, 2_097_152, codec.MAX_REMAINING):
        enc = codec.encode_varint(n)
        body = codec._Body(enc)
        assert body.varint() == n
    packet = codec.publish(4, "a/b", b"x" * 300)
    reader = codec.PacketReader()
    for i in range(len(packet)):  # byte by byte: nothing until the last byte
        reader.feed(packet[i:i + 1])
        got = reader.packets()
        assert bool(got) == (i == len(packet) - 1)
    with pytest.raises(codec.PacketError):
        split(b"\x30\xff\xff\xff\xff\x01")  # a 5-byte remaining length
    small = codec.PacketReader(max_size=100)
    small.feed(codec.publish(4, "t", b"x" * 200))
    with pytest.raises(codec.PacketError) as exc:
        small.packets()
    assert exc.value.code == codec.PACKET_TOO_LARGE


def test_decode_connect_with_will_and_credentials() -> None:
    flags = 0x80 | 0x40 | 0x20 | 0x08 | 0x04 | 0x02  # user, password, will retain, will QoS 1, will, clean
    body = (codec.encode_string("MQTT") + bytes((4, flags)) + b"\x00\x1e" + codec.encode_string("c1")
            + codec.encode_string("w/t") + codec.encode_string(b"gone") + codec.encode_string("u") + codec.encode_string(b"p"))
    c = codec.decode(*split(codec.fixed(codec.CONNECT, 0, body))[0], 0)
    assert isinstance(c, codec.Connect)
    assert (c.version, c.client_id, c.username, c.password, c.keepalive, c.clean) == (4, "c1", "u", b"p", 30, True)
    assert c.will is not None and (c.will.topic, c.will.payload, c.will.qos, c.will.retain) == ("w/t", b"gone", 1, True)
    props = codec.encode_properties({"session_expiry_interval": 60, "receive_maximum": 5, "user_property": [("k", "v")]})
    body5 = codec.encode_string("MQTT") + bytes((5, 2)) + b"\x00\x00" + props + codec.encode_string("")
    c = codec.decode(*split(codec.fixed(codec.CONNECT, 0, body5))[0], 0)
    assert isinstance(c, codec.Connect) and c.version == 5 and c.client_id == ""
    assert c.props == {"session_expiry_interval": 60, "receive_maximum": 5, "user_property": [("k", "v")]}


def test_properties_round_trip_and_rules() -> None:
    props = {"payload_format_indicator": 1, "message_expiry_interval": 60, "content_type": "text/plain",
             "response_topic": "r/t", "correlation_data": b"\x00\x01", "user_property": [("a", "1"), ("a", "2")]}
    packet = codec.publish(5, "t", b"hi", qos=1, packet_id=7, props=props)
    first, body = split(packet)[0]
    p = codec.decode(first, body, 5)
    assert isinstance(p, codec.Publish)
    assert (p.topic, p.payload, p.qos, p.packet_id) == ("t", b"hi", 1, 7)
    assert p.props == props
    # a property given twice, or one not allowed in PUBLISH, is a protocol error
    twice = codec.fixed(codec.PUBLISH, 0, codec.encode_string("t") + b"\x04\x01\x00\x01\x00")
    with pytest.raises(codec.PacketError) as exc:
        codec.decode(*split(twice)[0], 5)
    assert exc.value.code == codec.PROTOCOL_ERROR
    wrong = codec.fixed(codec.PUBLISH, 0, codec.encode_string("t") + b"\x03\x11\x00\x00")
    with pytest.raises(codec.PacketError):
        codec.decode(*split(wrong)[0], 5)


@pytest.mark.parametrize(("packet", "code"), [
    (b"\x82\x05\x00\x01\x00\x01a", codec.MALFORMED),          # SUBSCRIBE without its options byte
    (b"\x80\x06\x00\x01\x00\x01a\x00", codec.MALFORMED),      # SUBSCRIBE with reserved flags 0000
    (b"\x30\x05\x00\x05abc", codec.MALFORMED),                # topic length past the end
    (b"\x30\x05\x00\x03\xff\xfe\xfd", codec.TOPIC_NAME_INVALID),  # topic not UTF-8
    (b"\x30\x05\x00\x03a+b", codec.TOPIC_NAME_INVALID),       # wildcard in a topic name
    (b"\x36\x05\x00\x01a\x00\x01", codec.MALFORMED),          # QoS 3
    (b"\x38\x03\x00\x01a", codec.MALFORMED),                  # DUP on QoS 0
    (b"\x62\x02\x00\x01", None),                              # PUBREL is fine...
    (b"\x60\x02\x00\x01", codec.MALFORMED),                   # ...but not with flags 0000
    (b"\xc0\x01\x00", codec.MALFORMED),                       # PINGREQ with a body
    (b"\x10\x00", codec.PROTOCOL_ERROR),                      # a second CONNECT
    (b"\x20\x02\x00\x00", codec.PROTOCOL_ERROR),              # a client may not send CONNACK
])
def test_malformed_packets(packet: bytes, code: int | None) -> None:
    first, body = split(packet)[0]
    if code is None:
        codec.decode(first, body, 4)
        return
    with pytest.raises(codec.PacketError) as exc:
        codec.decode(first, body, 4)
    assert exc.value.code == code


def test_connect_rules() -> None:
    def connect(name: bytes, level: int, flags: int, rest: bytes = codec.encode_string("c")) -> bytes:
        return codec.fixed(codec.CONNECT, 0, codec.encode_string(name) + bytes((level, flags)) + b"\x00\x1e" + rest)

    with pytest.raises(codec.UnsupportedVersion):
        codec.decode(*split(connect(b"MQTT", 6, 2))[0], 0)
    with pytest.raises(codec.PacketError):
        codec.decode(*split(connect(b"MQTT", 4, 3))[0], 0)  # reserved flag
    with pytest.raises(codec.PacketError):
        codec.decode(*split(connect(b"MQTT", 4, 0x40 | 2, codec.encode_string("c") + codec.encode_string("pw")))[0], 0)
    with pytest.raises(codec.PacketError):
        codec.decode(*split(connect(b"MQTT", 4, 0x20 | 2))[0], 0)  # will retain without a will
    c = codec.decode(*split(connect(b"MQIsdp", 3, 2))[0], 0)
    assert isinstance(c, codec.Connect) and c.version == 3
    with pytest.raises(codec.PacketError) as exc:
        codec.decode(*split(b"\x30\x00")[0], 0)
    assert exc.value.code == codec.PROTOCOL_ERROR


def test_template_stamps_packet_ids() -> None:
    t = codec.PublishTemplate(5, "a/b", b"payload", codec.encode_properties({"content_type": "x"}))
    one = t.encode(1, 0x1234)
    two = t.encode(1, 0x0001, retain=True, dup=True)
    assert one[0] == 0x32 and two[0] == 0x3B
    p = codec.decode(*split(one)[0], 5)
    assert isinstance(p, codec.Publish) and p.packet_id == 0x1234 and p.props == {"content_type": "x"}
    assert t.size(1) == len(one) and t.size(0) == len(t.qos0())
    assert codec.decode(*split(t.qos0())[0], 5).payload == b"payload"  # type: ignore[union-attr]


@pytest.mark.parametrize(("payload", "data"), [
    (b"21.5", 21.5), (b'{"a":1}', {"a": 1}), (b'{"a": 1}', {"a": 1}), (b"[1,2]", [1, 2]), (b"true", True),
    (b"null", None), (b"hello", "hello"), (b"", ""), (b'"quoted"', '"quoted"'), (b"007", "007"), (b"NaN", "NaN"),
    (b"\xff\x00", {"$base64": base64.b64encode(b"\xff\x00").decode()}),
    (b'{"$base64":"aGk="}', '{"$base64":"aGk="}'),
])
def test_payload_to_data(payload: bytes, data: object) -> None:
    assert to_data(payload) == data


@pytest.mark.parametrize(("data", "payload"), [
    ("hello", b"hello"), ({"a": 1}, b'{"a":1}'), (21.5, b"21.5"), ([1, "é"], '[1,"é"]'.encode()), (None, b"null"),
    ({"$base64": "aGk="}, b"hi"), (True, b"true"),
    ({"t": "\ud800"}, b'{"t":"\\ud800"}'), ("a\udfffb", b"a\\udfffb"),  # lone surrogates: JSON's escape, not a failure
])
def test_data_to_payload(data: object, payload: bytes) -> None:
    assert to_payload(data) == payload


def test_payload_round_trips_for_canonical_payloads() -> None:
    for payload in (b"21.5", b'{"a":1}', b"on", b"", b"\x00\x01\x02", b'"x"', b"[]"):
        assert to_payload(to_data(payload)) == payload


def test_acl_within() -> None:
    assert within("sensors/+/temp", "sensors/#")
    assert within("sensors/a/temp", "sensors/+/temp")
    assert not within("sensors/#", "sensors/+/temp")
    assert not within("sensors/+/temp", "sensors/a/temp")
    assert within("a", "a/#") and within("#", "#") and not within("#", "a/#")
    acl = AclFile.parse("topic read public/#\nuser alice\ntopic readwrite alice/#\ntopic deny alice/secret\n"
                        "pattern write devices/%c/#\n")
    auth = Authenticator(allow_anonymous=True, users={"alice": UserEntry(hash_password("pw"))},
                         anonymous_read=[], anonymous_write=[], acl=acl)
    anon = auth.rules(None, "c1")
    assert anon.may_read("public/x") and not anon.may_write("public/x") and anon.may_write("devices/c1/state")
    alice = auth.rules("alice", "c2")
    assert alice.may_write("alice/x") and alice.may_read("alice/+") and not alice.may_read("public/x")
    assert not alice.may_write("alice/secret") and not alice.may_read("alice/secret")
    assert alice.may_write("devices/c2/x") and not alice.may_write("devices/c1/x")


def test_passwords() -> None:
    stored = hash_password("s3cret")
    assert verify_password(stored, b"s3cret") and not verify_password(stored, b"nope")
    assert not verify_password(None, b"s3cret")
    salt = os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", b"pw", salt, 101, 64)
    seven = f"$7$101${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"
    assert verify_password(seven, b"pw") and not verify_password(seven, b"px")
    six = f"$6${base64.b64encode(salt).decode()}${base64.b64encode(hashlib.sha512(b'pw' + salt).digest()).decode()}"
    assert verify_password(six, b"pw") and not verify_password(six, b"px")


@pytest.mark.skipif(shutil.which("mosquitto_passwd") is None, reason="mosquitto_passwd is not installed")
def test_mosquitto_passwd_file(tmp_path) -> None:  # noqa: ANN001
    from protocols.mqtt.auth import read_password_file

    path = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(path), "bob", "hunter2"], check=True, capture_output=True)
    users = read_password_file(str(path))
    assert verify_password(users["bob"], b"hunter2") and not verify_password(users["bob"], b"hunter3")
