"""Failed CONNECT passwords go through the hub's shared login limiter: after `max_failures` wrong passwords for a
user, its CONNECTs are refused (MQTT 5: 0x8A Banned; 3.1.1: return code 5, not authorized) until the block ends,
right password or not. The limiter runs on an injected clock; paho-mqtt is the client."""

from __future__ import annotations

import httpx

from protocols.mqtt import codec
from protocols.mqtt.auth import hash_password
from tests.login_helpers import Clock, metric

from .clients import Paho, mqtt_port


async def connect_rc(port: int, version: int, password: str) -> int:
    client = Paho(port, "dev", version=version, username="alice", password=password)
    client.client.reconnect_delay_set(min_delay=3600, max_delay=3600)  # one attempt each: paho must not retry
    try:
        _, rc, _ = await client.connect()
        return rc.value if hasattr(rc, "value") else int(rc)
    finally:
        client.stop()


async def test_eleven_wrong_passwords_then_the_right_one_is_refused_until_the_block_ends(start_hub):
    running = await start_hub(f"""
        [login_limit]
        max_failures_per_ip = 1000
        block = 600
        [mqtt]
        port = 0
        [mqtt.users.alice]
        password = "{hash_password('wonderland')}"
        """)
    clock = Clock()
    running.login_limiter.clock = clock
    port = mqtt_port(running)
    for i in range(10):
        assert await connect_rc(port, 5, f"wrong {i}") == codec.BAD_CREDENTIALS
        clock.now += 1
    assert await connect_rc(port, 5, "wrong again") == codec.BANNED
    assert await connect_rc(port, 5, "wonderland") == codec.BANNED  # the right password, while blocked
    assert await connect_rc(port, 4, "wonderland") == codec.NOT_AUTHORIZED  # 3.1.1's return code 5, as paho maps it
    clock.now = 608.9
    assert await connect_rc(port, 5, "wonderland") == codec.BANNED
    clock.now = 609  # blocked at t=9 for 600 s
    assert await connect_rc(port, 5, "wonderland") == codec.SUCCESS
    async with httpx.AsyncClient() as http:
        text = (await http.get(running.url("stats") + "/metrics")).text
    assert metric(text, "hub_login_failures_total", adapter="mqtt") == 10
    assert metric(text, "hub_login_refused_total", adapter="mqtt", reason="user") == 4
