"""The MQTT listener with Debian's mosquitto_pub / mosquitto_sub (package mosquitto-clients; `make test` installs it)."""

from __future__ import annotations

import shutil
import signal
import subprocess

import pytest
import trio

from .clients import Paho, mqtt_port

pytestmark = pytest.mark.skipif(shutil.which("mosquitto_sub") is None or shutil.which("mosquitto_pub") is None,
                                reason="mosquitto-clients is not installed (make test installs it)")

MQTT = """
[mqtt]
port = 0
allow_anonymous = true
"""


async def run(*args: str) -> None:
    await trio.run_process(list(args), capture_stdout=True, capture_stderr=True)


async def lines_of(proc_args: list[str], count: int, timeout: float = 10.0) -> list[str]:
    """Run mosquitto_sub until it has printed `count` lines (`-C count` ends it by itself)."""
    with trio.fail_after(timeout):
        result = await trio.run_process([*proc_args, "-C", str(count)], capture_stdout=True, capture_stderr=True)
    return result.stdout.decode().splitlines()


async def wait_subscribed(running, client_id: str) -> None:
    broker = running.contexts["mqtt"].state["broker"]
    with trio.fail_after(5):
        while client_id not in broker.sessions or not broker.sessions[client_id].subs:
            await trio.sleep(0.02)


@pytest.mark.parametrize("version", ["mqttv311", "mqttv5"])
async def test_pub_sub_qos_wildcards_retained(start_hub, nursery, version):
    running = await start_hub(MQTT)
    port = str(mqtt_port(running))
    await run("mosquitto_pub", "-p", port, "-V", version, "-t", "sensors/attic/temp", "-m", "retained 1", "-r", "-q", "1")
    got: list[str] = []

    async def sub() -> None:
        got.extend(await lines_of(["mosquitto_sub", "-p", port, "-V", version, "-i", "msub", "-q", "2", "-v",
                                   "-t", "sensors/+/temp", "-t", "alerts/#"], 4))

    async with trio.open_nursery() as n:
        n.start_soon(sub)
        await wait_subscribed(running, "msub")
        await run("mosquitto_pub", "-p", port, "-V", version, "-t", "sensors/garage/temp", "-m", "21.5", "-q", "1")
        await run("mosquitto_pub", "-p", port, "-V", version, "-t", "sensors/garage/hum", "-m", "no", "-q", "2")
        await run("mosquitto_pub", "-p", port, "-V", version, "-t", "alerts/fire", "-m", "qos2", "-q", "2")
        await run("mosquitto_pub", "-p", port, "-V", version, "-t", "alerts/deep/x", "-m", "qos0")
    # the retained message comes first; a QoS 2 message reaches the application only after PUBREL, so a QoS 0
    # one published after it may be printed before it
    assert got[0] == "sensors/attic/temp retained 1"
    assert sorted(got[1:]) == sorted(["sensors/garage/temp 21.5", "alerts/fire qos2", "alerts/deep/x qos0"])
    # clearing the retained message
    await run("mosquitto_pub", "-p", port, "-V", version, "-t", "sensors/attic/temp", "-n", "-r")
    assert running.hub.retained.get("development", "sensors/attic/temp") is None


async def test_will_of_a_killed_mosquitto_sub(start_hub):
    running = await start_hub(MQTT)
    port = mqtt_port(running)
    watcher = Paho(port, "watcher")
    try:
        await watcher.connect()
        await watcher.subscribe("status/#", 1)
        proc = await trio.lowlevel.open_process(
            ["mosquitto_sub", "-p", str(port), "-i", "doomed", "-t", "whatever", "--will-topic", "status/doomed",
             "--will-payload", "offline", "--will-qos", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        await wait_subscribed(running, "doomed")
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        msg = await watcher.message()
        assert (msg.topic, msg.payload, msg.qos) == ("status/doomed", b"offline", 1)
    finally:
        watcher.stop()


async def test_persistent_session_with_mosquitto_sub(start_hub):
    running = await start_hub(MQTT)
    port = str(mqtt_port(running))
    # -c: clean session off; subscribe once, leave, messages queue, come back
    proc = await trio.lowlevel.open_process(["mosquitto_sub", "-p", port, "-i", "keeper", "-c", "-q", "1", "-t", "inbox/#"],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    await wait_subscribed(running, "keeper")
    proc.send_signal(signal.SIGTERM)
    await proc.wait()
    broker = running.contexts["mqtt"].state["broker"]
    with trio.fail_after(5):
        while broker.sessions["keeper"].link is not None:
            await trio.sleep(0.02)
    for i in range(3):
        await run("mosquitto_pub", "-p", port, "-t", f"inbox/{i}", "-m", f"m{i}", "-q", "1")
    lines = await lines_of(["mosquitto_sub", "-p", port, "-i", "keeper", "-c", "-q", "1", "-t", "inbox/#", "-v"], 3)
    assert lines == ["inbox/0 m0", "inbox/1 m1", "inbox/2 m2"]


async def test_mosquitto_pub_reaches_a_websocket_api_history(start_hub):
    """One channel space: what mosquitto_pub sends is in the core's history of that channel."""
    running = await start_hub(MQTT)
    port = str(mqtt_port(running))
    await run("mosquitto_pub", "-p", port, "-t", "public:feed", "-m", '{"n": 1}', "-q", "1")
    result = await running.hub.history("development", "public:feed")
    assert [p.data for p in result.publications] == [{"n": 1}]
