"""req 10 with NanoMQ's `action` ("stop", "restart") against a real `hub run`, and req 5's `keepalive` and
`protocol` as NanoMQ reports them (the real paho-mqtt client where the MQTT listener is installed)."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest
import trio

from tests.legacy_client import legacy_client
from tests.test_runtime import read_until_ready, start

from .test_stats import BASIC, curl, sdk_client

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")


async def test_req10_stop_shuts_down_cleanly(tmp_path: Path):
    proc, urls = start(tmp_path)
    try:
        async with legacy_client(urls["websocket clients"]) as client:
            assert (await client.connect("alice"))["error"] is None
            status, body = await curl(urls["stats API"] + "/api/v1", '{"req": 10, "seq": 42, "action": "stop"}', *BASIC)
            assert (status, body) == (200, {"code": 0, "seq": 42, "rep": 10})
            # The original protocol's clients see the close itself (no status code, no `disconnect` push,
            # so that they reconnect), as Centrifuge 0.8 closed them.
            assert (await client.closed()).code == 1005 and not client.pushes
        assert await trio.to_thread.run_sync(proc.wait, 10) == 0
        assert "stop requested over the stats API" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()


async def test_req10_restart_execs_the_same_command_again(tmp_path: Path):
    """restart = a clean shutdown, then the same process (same pid) runs `hub run` again with the same arguments,
    so it reads hub.toml afresh: here, new stats credentials written to the file before the restart."""
    proc, urls = start(tmp_path)
    try:
        async with legacy_client(urls["websocket clients"]) as client:
            assert (await client.connect("alice"))["error"] is None
            cfg = tmp_path / "hub.toml"
            cfg.write_text(cfg.read_text().replace("[stats]\n", '[stats]\napp_id = "ops"\napp_secret = "after-restart"\n'))
            status, body = await curl(urls["stats API"] + "/api/v1", '{"req": 10, "seq": "r1", "action": "Restart"}', *BASIC)
            assert (status, body) == (200, {"code": 0, "seq": "r1", "rep": 10})
            assert (await client.closed()).code == 1005 and not client.pushes
        lines, again = await trio.to_thread.run_sync(read_until_ready, proc)
        text = "".join(lines)
        assert "restart requested over the stats API" in text and "restarting: " in text
        assert f"-m hub run --config {tmp_path / 'hub.toml'}" in text
        assert proc.poll() is None  # the same process, exec'd in place
        async with httpx.AsyncClient() as http:
            response = await http.post(again["stats API"] + "/api/v1", auth=("ops", "after-restart"), json={"req": 2, "seq": 1})
            assert response.json() == {"code": 0, "seq": 1, "rep": 2,
                                       "data": {"client_size": 0, "message_in": 0, "message_out": 0, "message_drop": 0}}
            old = await http.post(again["stats API"] + "/api/v1", auth=("admin", "public"), json={"req": 2, "seq": 1})
            assert old.status_code == 401
        async with legacy_client(again["websocket clients"]) as client:
            assert (await client.connect("alice"))["error"] is None
        proc.terminate()
        assert await trio.to_thread.run_sync(proc.wait, 10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()


async def test_req10_without_action_still_reloads_and_embedded_restart_is_flagged(start_hub):
    running = await start_hub("[stats]\nallow_config_upload = true\n")
    url = running.url("stats") + "/api/v1"
    status, body = await curl(url, '{"req": 10, "seq": 3, "data": ""}', *BASIC)
    assert status == 400 and body == {"code": 108, "seq": 3, "rep": 10}  # an empty config has no project
    async with httpx.AsyncClient() as http:
        response = await http.post(url, auth=("admin", "public"), json={"req": 10, "seq": 4, "action": "restart"})
        assert response.json() == {"code": 0, "seq": 4, "rep": 10}
    with trio.fail_after(5):
        await running.stopped()
    assert running.restart_requested  # an embedding program decides what a restart means


async def test_keepalive_is_the_real_ping_interval(start_hub, tmp_path):
    """SDK clients: the interval the running pinger uses (a reload does not restart it, so a reloaded
    ping_interval is neither announced nor reported); original-protocol clients: the time between their pings."""
    from hub.config import parse_settings
    from tests.conftest import hub_config, with_tmp_files

    running = await start_hub("[realtime]\nping_interval = 20\npong_timeout = 5\n")
    data = with_tmp_files(hub_config("[realtime]\nping_interval = 40\npong_timeout = 5\n"), tmp_path)
    running.reload(parse_settings(data, "<test>"))
    assert running.settings.adapters["realtime"].ping_interval == 40
    async with sdk_client(running, "carol") as carol, legacy_client(running.url("realtime")) as dave:
        await dave.connect("dave")
        await dave.call("ping", {})
        await trio.sleep(1.0)
        await dave.call("ping", {})
        async with httpx.AsyncClient() as http:
            response = await http.post(running.url("stats") + "/api/v1", auth=("admin", "public"), json={"req": 5, "seq": 1})
        keepalive = {c["username"]: c["keepalive"] for c in response.json()["data"]}
        assert keepalive == {"carol": 20, "dave": 1}
        assert carol.client_id in running.hub.sessions


def _paho_connect(port: int, client_id: str, version: int, keepalive: int):
    mqtt = pytest.importorskip("paho.mqtt.client")
    protocol = {4: mqtt.MQTTv311, 5: mqtt.MQTTv5}[version]
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
    connected, codes = threading.Event(), []
    client.on_connect = lambda c, userdata, flags, reason_code, props: (codes.append(reason_code), connected.set())
    client.connect("127.0.0.1", port, keepalive=keepalive)
    client.loop_start()
    assert connected.wait(10) and not codes[0].is_failure, codes
    client.subscribe("sensors/#", qos=1)
    return client


async def test_mqtt_clients_report_their_protocol_level_and_keepalive(start_hub):
    """NanoMQ's req 5 for real paho-mqtt clients: protocol 4 (3.1.1) or 5, the keepalive each client asked for."""
    from hub.adapters import adapter_registry

    pytest.importorskip("paho.mqtt.client")
    if "mqtt" not in adapter_registry():
        pytest.skip("the MQTT listener is not installed")
    running = await start_hub("[mqtt]\nport = 0\nallow_anonymous = true\n")
    port = int(running.url("mqtt").rsplit(":", 1)[1])
    clients = [await trio.to_thread.run_sync(_paho_connect, port, "meter-311", 4, 17),
               await trio.to_thread.run_sync(_paho_connect, port, "meter-5", 5, 33)]
    try:
        async with httpx.AsyncClient() as http:
            with trio.fail_after(5):
                while True:
                    response = await http.post(running.url("stats") + "/api/v1", auth=("admin", "public"), json={"req": 5, "seq": 1})
                    found = {c["client_id"]: c for c in response.json()["data"]}
                    if {"meter-311", "meter-5"} <= set(found):
                        break
                    await trio.sleep(0.05)
        assert (found["meter-311"]["protocol"], found["meter-311"]["keepalive"]) == (4, 17)
        assert (found["meter-5"]["protocol"], found["meter-5"]["keepalive"]) == (5, 33)
        assert found["meter-311"]["username"] == "" and found["meter-311"]["connect_status"] == 1
        assert found["meter-5"]["protocol_name"] == "mqtt"
    finally:
        for client in clients:
            client.disconnect()
            client.loop_stop()
