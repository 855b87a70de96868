"""Issue 27 through the MQTT listener (raw TCP clients): a QoS 1 publish flood read at once or late gets a PUBACK
for every PUBLISH; a subscriber of a busy topic that stops reading gets an unbroken run, then (MQTT 5) a
DISCONNECT 0x97 and the close, counted as slow (stats, per protocol, /metrics)."""

from __future__ import annotations

import json
import socket

import trio
import trio.testing

from protocols.mqtt import codec

from ..pressure import wait_for
from .clients import RawClient, mqtt_port

MQTT = "[mqtt]\nport = 0\nallow_anonymous = true\n[hub]\nmax_queue_bytes = 65536\n"


def publish_qos1(topic: str, packet_id: int, payload: bytes) -> bytes:
    return codec.fixed(codec.PUBLISH, 0x02, codec.encode_string(topic) + packet_id.to_bytes(2, "big") + payload)


async def qos1_flood(client: RawClient, n: int, late: bool) -> int:
    """Send `n` QoS 1 PUBLISHes as fast as the socket takes them; the PUBACKs read (at once, or once stuck)."""
    chunk = 500

    async def send() -> None:
        for first in range(0, n, chunk):
            await client.send(b"".join(publish_qos1("flood", (i % 65535) + 1, b"0123456789")
                                       for i in range(first, min(n, first + chunk))))

    acks = 0
    reader = client.reader  # whole packets straight from the reader (RawClient.packet re-queues the rest each call)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(send)
        if late:
            with trio.fail_after(60):
                await trio.testing.wait_all_tasks_blocked(cushion=0.01)
        with trio.fail_after(60):
            while acks < n:
                data = await client.stream.receive_some(65536)
                if not data:
                    break
                reader.feed(data)
                for first, body in reader.packets():
                    if first >> 4 == codec.PUBACK:
                        assert int.from_bytes(body[:2], "big") == (acks % 65535) + 1  # in order, none skipped
                        acks += 1
        nursery.cancel_scope.cancel()
    return acks


async def test_qos1_publish_flood_gets_every_puback_read_at_once_or_late(start_hub):
    running = await start_hub(MQTT)
    for late in (False, True):
        client = await RawClient.open(mqtt_port(running))
        assert (await client.connect(f"flooder-{late}"))[0] >> 4 == codec.CONNACK
        n = 20_000
        assert await qos1_flood(client, n, late) == n, late
        await client.aclose()
    assert running.stats()["slow_disconnects"] == 0


async def test_subscriber_of_a_busy_topic_that_stops_reading_is_disconnected_as_slow(start_hub):
    running = await start_hub(MQTT)
    client = await RawClient.open(mqtt_port(running))
    assert (await client.connect("sleepy", version=5))[0] >> 4 == codec.CONNACK
    await client.send(codec.fixed(codec.SUBSCRIBE, 0x02, (1).to_bytes(2, "big") + b"\x00" + codec.encode_string("busy") + b"\x00"))
    assert (await client.packet())[0] >> 4 == codec.SUBACK
    client.stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    before = running.stats()
    pad = "x" * 1000
    n = 20_000
    for i in range(n):  # a busy topic: bursts of 10, the flusher writes between them
        await running.publish("busy", {"i": i, "pad": pad})
        if i % 10 == 9:
            await trio.sleep(0)
        if running.stats()["slow_disconnects"] > before["slow_disconnects"]:
            break
    await wait_for(lambda: running.stats()["slow_disconnects"] == before["slow_disconnects"] + 1)
    seen, last = [], b""
    with trio.fail_after(30):
        while packet := await client.packet(timeout=30):
            last = packet
            if packet[0] >> 4 == codec.PUBLISH:
                p = codec.decode(packet[0], packet[1:], 5)
                seen.append(json.loads(p.payload)["i"])
    assert last[0] >> 4 == codec.DISCONNECT and last[1] == codec.QUOTA_EXCEEDED
    assert seen == list(range(len(seen))) and len(seen) < n
    stats = running.stats()
    assert stats["messages_dropped"] > before["messages_dropped"]
    assert running.hub.stats.slow_by_protocol.get("mqtt") == 1
    await wait_for(lambda: running.metrics.disconnects.get(("mqtt", "slow")) == 1)



async def test_websocket_subscriber_that_stops_reading_gets_disconnect_0x97_and_is_counted(start_hub):
    """Over a websocket the overflow goes through the MQTT session first (counted, DISCONNECT 0x97), then the socket."""
    from ...net.test_wsframe import client_frame as ws_frame
    from ...rawws import RawWebSocket

    running = await start_hub(MQTT)
    ws = await RawWebSocket.connect(running.url("mqtt").replace("http", "ws") + "/mqtt", subprotocol="mqtt")
    reader = codec.PacketReader()

    async def packet() -> tuple[int, bytes] | None:
        while not (got := reader.packets()):
            opcode, payload = await ws.recv()
            if opcode == 8:
                return None
            reader.feed(payload)
        first, body = got[0]
        reader.buf[:0] = b"".join(bytes((f,)) + codec.encode_varint(len(b)) + b for f, b in got[1:])
        return first, body

    body = codec.encode_string("MQTT") + bytes((5, 0x02)) + (60).to_bytes(2, "big") + b"\x00" + codec.encode_string("sleepy-ws")
    await ws.stream.send_all(ws_frame(2, codec.fixed(codec.CONNECT, 0, body)))
    assert (await packet())[0] >> 4 == codec.CONNACK
    sub = codec.fixed(codec.SUBSCRIBE, 0x02, (1).to_bytes(2, "big") + b"\x00" + codec.encode_string("busy") + b"\x00")
    await ws.stream.send_all(ws_frame(2, sub))
    assert (await packet())[0] >> 4 == codec.SUBACK
    ws.stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    before = running.stats()
    pad = "x" * 1000
    for i in range(20_000):
        await running.publish("busy", {"i": i, "pad": pad})
        if i % 10 == 9:
            await trio.sleep(0)
        if running.stats()["slow_disconnects"] > before["slow_disconnects"]:
            break
    assert running.stats()["slow_disconnects"] == before["slow_disconnects"] + 1
    seen, last = [], None
    with trio.fail_after(30):
        while (got := await packet()) is not None:
            last = got
            if got[0] >> 4 == codec.PUBLISH:
                seen.append(json.loads(codec.decode(got[0], got[1], 5).payload)["i"])
    assert last is not None and last[0] >> 4 == codec.DISCONNECT and last[1][0] == codec.QUOTA_EXCEEDED
    assert seen == list(range(len(seen)))
    assert running.hub.stats.slow_by_protocol.get("mqtt") == 1
    await wait_for(lambda: any(reason == "slow" for (_, reason) in running.metrics.disconnects))
