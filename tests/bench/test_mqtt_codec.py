"""MQTT 3.1.1 packet encoding/decoding used by the Mosquitto peer clients (no sockets)."""

import pytest

from bench import mqtt


@pytest.mark.parametrize("n, encoded", [(0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"), (16_383, b"\xff\x7f"),
                                        (16_384, b"\x80\x80\x01"), (268_435_455, b"\xff\xff\xff\x7f")])
def test_remaining_length_round_trip(n, encoded):
    assert mqtt.encode_length(n) == encoded
    assert mqtt.decode_length(b"\x30" + encoded, 1) == (n, 1 + len(encoded))


def test_remaining_length_bounds():
    with pytest.raises(ValueError):
        mqtt.encode_length(268_435_456)
    assert mqtt.decode_length(b"\x30\x80", 1) is None  # continuation byte, rest not read yet
    with pytest.raises(ValueError):
        mqtt.decode_length(b"\x30\xff\xff\xff\xff\x01", 1)


def test_connect_and_subscribe_packets():
    assert mqtt.connect_packet("c1") == b"\x10\x0e\x00\x04MQTT\x04\x02\x00\x00\x00\x02c1"
    assert mqtt.subscribe_packet(1, "a/b") == b"\x82\x08\x00\x01\x00\x03a/b\x00"


def test_publish_parse_and_marker():
    payload = b'{"t":1.5,"s":0,"p":"' + b"x" * 200 + b'"}'
    pkt = mqtt.publish_packet("bench:fanout", payload)
    assert pkt[0] == 0x30 and len(pkt) > 128  # two-byte remaining length
    stream = pkt + mqtt.PINGREQ_PACKET + pkt[:5]  # a partial packet at the end stays in the buffer
    packets, used = mqtt.parse_packets(stream)
    assert used == len(pkt) + 2
    assert [p[0] for p in packets] == [mqtt.PUBLISH, mqtt.PINGREQ]
    topic, body = mqtt.parse_publish(packets[0][1], packets[0][2])
    assert (topic, body) == ("bench:fanout", payload)
    assert (pkt + pkt).count(mqtt.publication_marker("bench:fanout")) == 2


def test_parse_publish_skips_packet_id_at_qos1():
    body = b"\x00\x01t\x00\x07hello"
    assert mqtt.parse_publish(0x02, body) == ("t", b"hello")
