"""Real MQTT clients for the tests: paho-mqtt 2.x in its own thread, driven from Trio without blocking the hub."""

from __future__ import annotations

import queue
import socket
from functools import partial
from typing import Any

import paho.mqtt.client as mqtt
import trio
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from protocols.mqtt import codec

TIMEOUT = 5.0


def mqtt_port(running: Any) -> int:
    return int(running.url("mqtt").rsplit(":", 1)[1])


def props(packet: int = PacketTypes.PUBLISH, **values: Any) -> Properties:
    p = Properties(packet)
    for key, value in values.items():
        setattr(p, key, value)
    return p


class Paho:
    """A paho-mqtt client (3.1.1 or 5.0, TCP or websockets) whose callbacks feed queues the test awaits."""

    def __init__(self, port: int, client_id: str = "", *, version: int = 4, clean: bool = True,
                 transport: str = "tcp", username: str | None = None, password: str | None = None) -> None:
        self.port, self.version = port, version
        protocol = {3: mqtt.MQTTv31, 4: mqtt.MQTTv311, 5: mqtt.MQTTv5}[version]
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol,
                                  transport=transport, clean_session=clean if version != 5 else None)
        if transport == "websockets":
            self.client.ws_set_options(path="/mqtt")
        if username is not None:
            self.client.username_pw_set(username, password)
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.client.on_message = lambda c, u, msg: self.messages.put(msg)
        self.client.on_connect = lambda c, u, flags, rc, p: self.events.put(("connect", (flags, rc, p)))
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.events.put(("subscribe", rcs))
        self.client.on_unsubscribe = lambda c, u, mid, rcs, p: self.events.put(("unsubscribe", rcs))
        self.client.on_publish = lambda c, u, mid, rc, p: self.events.put(("publish", (mid, rc)))
        self.client.on_disconnect = lambda c, u, flags, rc, p: self.events.put(("disconnect", rc))

    async def _run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await trio.to_thread.run_sync(partial(fn, *args, **kwargs))

    async def event(self, kind: str, timeout: float = TIMEOUT) -> Any:
        """The next event of `kind` (others before it are dropped)."""
        def wait() -> Any:
            while True:
                got, value = self.events.get(timeout=timeout)
                if got == kind:
                    return value
        return await self._run(wait)

    async def connect(self, keepalive: int = 60, **kwargs: Any) -> tuple[Any, Any, Any]:
        if self.version == 5:
            kwargs.setdefault("clean_start", True)
        await self._run(self.client.connect, "127.0.0.1", self.port, keepalive, **kwargs)
        self.client.loop_start()
        return await self.event("connect")

    async def subscribe(self, topic: str, qos: int = 0, **kwargs: Any) -> list[Any]:
        self.client.subscribe(topic, qos, **kwargs)
        return await self.event("subscribe")

    async def unsubscribe(self, topic: str) -> Any:
        self.client.unsubscribe(topic)
        return await self.event("unsubscribe")

    async def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False,
                      properties: Properties | None = None) -> Any:
        """Publish and wait until the flow is complete (PUBACK / PUBCOMP); the reason code for MQTT 5."""
        info = self.client.publish(topic, payload, qos, retain, properties)
        while True:
            mid, rc = await self.event("publish")
            if mid == info.mid:
                return rc

    async def message(self, timeout: float = TIMEOUT) -> mqtt.MQTTMessage:
        return await self._run(self.messages.get, timeout=timeout)

    async def messages_for(self, n: int, timeout: float = TIMEOUT) -> list[mqtt.MQTTMessage]:
        return [await self.message(timeout) for _ in range(n)]

    async def nothing(self, wait: float = 0.3) -> None:
        """No message arrives within `wait` seconds."""
        def check() -> None:
            try:
                msg = self.messages.get(timeout=wait)
            except queue.Empty:
                return
            raise AssertionError(f"unexpected message on {msg.topic}: {msg.payload!r}")
        await self._run(check)

    async def disconnect(self, **kwargs: Any) -> None:
        self.client.disconnect(**kwargs)
        await self.event("disconnect")
        self.client.loop_stop()

    def drop(self) -> None:
        """Close the socket without DISCONNECT (an abrupt network loss)."""
        self.client.reconnect_delay_set(min_delay=3600, max_delay=3600)  # and paho must not reconnect by itself
        sock = self.client.socket()
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self.client.loop_stop()
        try:
            self.client.disconnect()
        except Exception:
            pass


class RawClient:
    """A raw TCP MQTT client for what paho will not send: malformed packets, silence past the keepalive."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.reader = codec.PacketReader()

    @classmethod
    async def open(cls, port: int) -> RawClient:
        return cls(await trio.open_tcp_stream("127.0.0.1", port))

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def connect(self, client_id: str = "raw", version: int = 4, keepalive: int = 60, will: tuple[str, bytes] | None = None,
                      clean: bool = True) -> bytes:
        flags = (0x02 if clean else 0) | (0x04 if will else 0)
        body = codec.encode_string("MQTT") + bytes((version, flags)) + keepalive.to_bytes(2, "big")
        if version == 5:
            body += b"\x00"
        body += codec.encode_string(client_id)
        if will:
            if version == 5:
                body += b"\x00"
            body += codec.encode_string(will[0]) + codec.encode_string(will[1])
        await self.send(codec.fixed(codec.CONNECT, 0, body))
        return await self.packet()

    async def packet(self, timeout: float = TIMEOUT) -> bytes:
        """The next whole packet (first byte + body); b"" once the server closed the connection."""
        with trio.fail_after(timeout):
            while True:
                got = self.reader.packets()
                if got:
                    first, body = got[0]
                    # keep any further packets for the next call
                    rest = b"".join(bytes((f,)) + codec.encode_varint(len(b)) + b for f, b in got[1:])
                    self.reader.buf[:0] = rest
                    return bytes((first,)) + body
                data = await self.stream.receive_some(65536)
                if not data:
                    return b""
                self.reader.feed(data)

    async def closed(self, timeout: float = TIMEOUT) -> bytes:
        """Read until the server closes; what it sent last (a DISCONNECT for MQTT 5) is returned."""
        last = b""
        while True:
            packet = await self.packet(timeout)
            if not packet:
                return last
            last = packet

    async def aclose(self) -> None:
        await self.stream.aclose()
