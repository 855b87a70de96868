"""TLS on the listeners with a certificate made in the test (trustme): wss:// and https:// with the real
clients (centrifuge-python, cent, httpx, rocketchat_API, paho-mqtt), TLS 1.2 at least, bad files refused
at start (exit 2, one line), and a new certificate taken on SIGHUP."""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trustme

from hub.config import ConfigError, parse_settings
from hub.runtime import READY, listener_urls
from protocols.realtime.tokens import make_token
from tests.conftest import SECRET, hub_config

pytestmark = [pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning"),
              pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")]


class Certs:
    """A CA trusted by the test's clients and a server certificate for 127.0.0.1 / localhost, as PEM files."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.ca = trustme.CA()
        self.ca_file = tmp / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.cert_file, self.key_file = tmp / "server.pem", tmp / "server.key"
        self.issue()

    def issue(self) -> Any:
        """A new server certificate in the same files (what an operator's renewal does)."""
        cert = self.ca.issue_cert("127.0.0.1", "localhost")
        self.cert_file.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
        cert.private_key_pem.write_to_path(str(self.key_file))
        return cert

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def keys(self) -> str:
        return f'tls_cert = "{self.cert_file}"\ntls_key = "{self.key_file}"\n'


@pytest.fixture
def certs(tmp_path: Path) -> Certs:
    return Certs(tmp_path)


async def peer_certificate(url: str, ctx: ssl.SSLContext) -> bytes:
    """The DER certificate a TLS listener shows now."""
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    stream = await trio.open_ssl_over_tcp_stream(host, int(port), ssl_context=ctx)
    await stream.do_handshake()
    der = stream.getpeercert(binary_form=True)
    await stream.aclose()
    return der


async def test_wss_and_https_with_centrifuge_python_cent_and_httpx(start_hub, certs):
    """One port (websocket clients + command API) over TLS: centrifuge-python subscribes over wss://, cent
    publishes over https://, and the publication arrives."""
    running = await start_hub(f"[realtime]\n{certs.keys()}\n")
    base = running.url("realtime")
    assert base.startswith("https://") and running.url("command_api") == base
    ctx = certs.context()
    async with httpx.AsyncClient(verify=ctx) as http:
        assert (await http.get(base + "/health")).status_code == 200
        r = await http.post(base + "/api/publish", json={"channel": "news", "data": {"n": 0}},
                            headers={"X-API-Key": "test-api-key"})
        assert r.status_code == 200 and "result" in r.json(), r.text
    # Plain HTTP to the TLS port gets no answer, and older TLS than 1.2 is refused.
    async with httpx.AsyncClient() as plain:
        with pytest.raises(httpx.HTTPError):
            await plain.get(base.replace("https://", "http://") + "/health", timeout=3)
    with trio.fail_after(5):
        while not running.metrics.refusals.get(("realtime", "tls handshake")):  # counted in /metrics
            await trio.sleep(0.01)
    old = certs.context()
    old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1  # the point of the check
    with pytest.raises((ssl.SSLError, trio.BrokenResourceError, OSError)):
        await peer_certificate(base, old)

    import cent
    import requests
    from centrifuge import Client, SubscriptionEventHandler

    session = requests.Session()
    session.verify, session.trust_env = str(certs.ca_file), False  # REQUESTS_CA_BUNDLE would win over verify
    api = cent.Client(base + "/api", "test-api-key", session=session)
    token = make_token(SECRET, {"sub": "alice"})
    wss = base.replace("https://", "wss://") + "/connection/websocket"

    async def scenario() -> Any:
        got: asyncio.Queue[Any] = asyncio.Queue()

        class Handler(SubscriptionEventHandler):
            async def on_publication(self, ctx: Any) -> None:
                await got.put(ctx.pub.data)

        client = Client(wss, token=token, ssl_context=ctx, proxy=None)
        sub = client.new_subscription("news", Handler())
        await client.connect()
        await sub.subscribe()
        await client.ready()
        await asyncio.to_thread(api.publish, cent.PublishRequest(channel="news", data={"over": "tls"}))
        data = await asyncio.wait_for(got.get(), 10)
        await client.disconnect()
        return data

    async def main() -> Any:
        return await asyncio.wait_for(scenario(), 20)

    assert await trio.to_thread.run_sync(asyncio.run, main()) == {"over": "tls"}


async def test_rocketchat_api_over_https(start_hub, certs, tmp_path):
    rocketchat = pytest.importorskip("rocketchat_API.rocketchat")
    from tests.protocols.chat.conftest import PASSWORD, ChatHub

    running = await start_hub(f'[chat]\ndatabase = "{tmp_path / "chat.db"}"\n{certs.keys()}\n')
    url = running.url("chat")
    assert url.startswith("https://")
    hub = ChatHub(running, url, running.contexts["chat"].state["service"], tmp_path / "chat.db")
    uid = await hub.add_user("alice")
    rc = await trio.to_thread.run_sync(lambda: rocketchat.RocketChat("alice", PASSWORD, server_url=url,
                                                                     ssl_verify=str(certs.ca_file), timeout=10))
    assert rc.headers["X-User-Id"] == uid
    me = await trio.to_thread.run_sync(rc.me)
    assert me["success"] is True and me["username"] == "alice"
    sent = await trio.to_thread.run_sync(lambda: rc.chat_post_message("over tls", channel="GENERAL"))
    assert sent["success"] is True


async def test_paho_mqtt_over_tls(start_hub, certs):
    from tests.protocols.mqtt.clients import Paho, mqtt_port

    running = await start_hub(f"[mqtt]\nport = 0\nallow_anonymous = true\n{certs.keys()}\n")
    assert running.url("mqtt").startswith("https://")
    port = mqtt_port(running)
    sub, pub = Paho(port, "sub"), Paho(port, "pub")
    for client in (sub, pub):
        client.client.tls_set(ca_certs=str(certs.ca_file))
    try:
        assert (await sub.connect())[1] == 0
        await sub.subscribe("a/b", qos=1)
        assert (await pub.connect())[1] == 0
        await pub.publish("a/b", b"secret", qos=1)
        msg = await trio.to_thread.run_sync(lambda: sub.messages.get(timeout=10))
        assert (msg.topic, msg.payload) == ("a/b", b"secret")
    finally:
        for client in (sub, pub):
            client.client.loop_stop()
            client.client.disconnect()


def test_bad_files_are_config_errors_naming_the_key(certs, tmp_path):
    data = hub_config(f"[stats]\n{certs.keys()}")
    data["stats"]["tls_cert"] = str(tmp_path / "missing.pem")
    with pytest.raises(ConfigError, match=r"stats\.tls_cert: file not found: .*missing\.pem"):
        parse_settings(data, "hub.toml")
    data["stats"]["tls_cert"] = str(certs.key_file)  # a key where the certificate should be
    with pytest.raises(ConfigError, match=r"stats\.tls_cert: not a PEM certificate"):
        parse_settings(data, "hub.toml")
    other = trustme.CA().issue_cert("127.0.0.1")
    wrong_key = tmp_path / "other.key"
    other.private_key_pem.write_to_path(str(wrong_key))
    data["stats"]["tls_cert"], data["stats"]["tls_key"] = str(certs.cert_file), str(wrong_key)
    with pytest.raises(ConfigError, match=r"stats\.tls_key: does not match the certificate"):
        parse_settings(data, "hub.toml")
    del data["stats"]["tls_key"]
    with pytest.raises(ConfigError, match=r"stats\.tls_key: missing"):
        parse_settings(data, "hub.toml")
    # The _env variants read the path from the environment.
    data["stats"] = {"port": 0, "tls_cert_env": "T_CERT", "tls_key_env": "T_KEY"}
    settings = parse_settings(data, "hub.toml", env={"T_CERT": str(certs.cert_file), "T_KEY": str(certs.key_file)})
    assert settings.adapters["stats"].tls_cert == str(certs.cert_file)


RUN_CONFIG = """
[hub]
shutdown_grace = 1.0
[projects.development]
secret = "secret"
[realtime]
port = 0
{tls}
[command_api]
port = 0
[jsonrpc]
enabled = false
[stats]
enabled = false
[chat]
enabled = false
[dashboard]
enabled = false
"""


def run_hub(tmp_path: Path, tls: str) -> subprocess.Popen:
    cfg = tmp_path / "hub.toml"
    cfg.write_text(RUN_CONFIG.format(tls=tls))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    return subprocess.Popen([sys.executable, "-m", "hub", "run", "--config", str(cfg)], cwd=tmp_path,
                            stderr=subprocess.PIPE, text=True, env=env)


def test_hub_run_with_a_missing_certificate_exits_2_with_one_line(tmp_path):
    proc = run_hub(tmp_path, f'tls_cert = "{tmp_path / "nope.pem"}"\ntls_key = "{tmp_path / "nope.key"}"')
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "realtime.tls_cert" in lines[0] and "file not found" in lines[0], err


def _read_lines_until(proc: subprocess.Popen, marker: str, timeout: float = 20) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if marker in line:
            return lines
    raise AssertionError(f"no {marker!r} line:\n" + "".join(lines))


async def test_sighup_reloads_the_certificate(tmp_path, certs):
    """A renewed certificate written over the files is served to new handshakes after SIGHUP."""
    proc = run_hub(tmp_path, certs.keys())
    try:
        lines = await trio.to_thread.run_sync(_read_lines_until, proc, READY)
        url = listener_urls("".join(lines))["websocket clients"]
        assert url.startswith("https://")
        first = await peer_certificate(url, certs.context())
        renewed = certs.issue()
        assert await peer_certificate(url, certs.context()) == first  # until the reload
        proc.send_signal(signal.SIGHUP)
        lines = await trio.to_thread.run_sync(_read_lines_until, proc, "configuration reloaded")
        assert "realtime.tls" in lines[-1]
        now = await peer_certificate(url, certs.context())
        assert now != first and now == ssl.PEM_cert_to_DER_cert(renewed.cert_chain_pems[0].bytes().decode())
        # A broken file at reload is refused (logged, naming the key); the old certificate stays.
        certs.key_file.write_text("not a key")
        proc.send_signal(signal.SIGHUP)
        lines = await trio.to_thread.run_sync(_read_lines_until, proc, "reload refused")
        assert "realtime.tls_key" in lines[-1]
        assert await peer_certificate(url, certs.context()) == now
    finally:
        proc.send_signal(signal.SIGTERM)
        await trio.to_thread.run_sync(lambda: proc.communicate(timeout=20))
    assert proc.returncode == 0


def test_centrifugo_config_tls_is_the_listeners_tls(certs, tmp_path):
    import json

    from hub.config import load_settings

    path = tmp_path / "config.json"
    path.write_text(json.dumps({"client": {"token": {"hmac_secret_key": "k" * 32}}, "http_server": {"port": 8000, "tls": {
        "enabled": True, "cert_pem_file": str(certs.cert_file), "key_pem_file": str(certs.key_file)}}}))
    settings = load_settings(path)
    for name in ("realtime", "command_api"):
        assert (settings.adapters[name].tls_cert, settings.adapters[name].tls_key) == (str(certs.cert_file), str(certs.key_file))


async def test_dashboard_over_https_and_its_certificate_reload(start_hub, certs):
    from tests.protocols.dashboard.conftest import DASHBOARD

    running = await start_hub(DASHBOARD + certs.keys())
    url = running.url("dashboard")
    assert url.startswith("https://")
    async with httpx.AsyncClient(verify=certs.context()) as http:
        assert (await http.get(url + "/login")).status_code == 200
    first = await peer_certificate(url, certs.context())
    renewed = certs.issue()
    result = running.reload(running.settings)  # what SIGHUP does after reading the (unchanged) file
    assert "dashboard.tls" in result["changed"]
    now = await peer_certificate(url, certs.context())
    assert now != first and now == ssl.PEM_cert_to_DER_cert(renewed.cert_chain_pems[0].bytes().decode())
