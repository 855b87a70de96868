"""The stats API on a running hub: the reference's curl examples, every error row, reload, /metrics."""

import json
import signal

import httpx
import trio
from prometheus_client.parser import text_string_to_metric_families

from protocols.stats import api
from tests.legacy_client import legacy_client


async def curl(url: str, body: str, *extra: str) -> tuple[int, dict]:
    """The reference's curl command line, run for real."""
    args = ["curl", "-s", "-i", *extra, "-X", "POST", url, "-d", body]
    proc = await trio.run_process(args, capture_stdout=True)
    head, _, payload = proc.stdout.decode().partition("\r\n\r\n")
    status = int(head.split()[1])
    assert "application/json" in head
    return status, json.loads(payload)


BASIC = ("--basic", "-u", "admin:public")


async def test_reference_curl_examples_report_the_truth(start_hub):
    running = await start_hub()
    url = running.url("stats") + "/api/v1"
    async with legacy_client(running.url("realtime")) as alice, legacy_client(running.url("realtime")) as bob:
        await alice.connect("alice")
        await bob.connect("bob")
        await alice.subscribe("news")
        await alice.subscribe("sport")
        await bob.subscribe("news")
        for i in range(3):
            running.publish("news", i)
        running.publish("sport", "s")
        running.publish("empty", "nobody")
        for _ in range(4):
            await alice.next_push("message")
        for _ in range(3):
            await bob.next_push("message")

        status, body = await curl(url, '{"req": 2,"seq": 1111111}', *BASIC)
        assert status == 200
        assert body == {"code": 0, "seq": 1111111, "rep": 2,
                        "data": {"client_size": 2, "message_in": 5, "message_out": 7, "message_drop": 1}}

        status, body = await curl(url, '{"req": 4,"seq": 1111111}', *BASIC)
        assert status == 200 and body["rep"] == 4 and body["seq"] == 1111111
        topics = {c["client_id"]: sorted(s["topic"] for s in c["subscriptions"]) for c in body["data"]}
        assert topics == {alice.client_id: ["news", "sport"], bob.client_id: ["news"]}
        assert all(s["qos"] == 0 for c in body["data"] for s in c["subscriptions"])

        status, body = await curl(url, '{"req": 5,"seq": 1111111}', *BASIC)
        assert status == 200 and body["rep"] == 5
        clients = {c["client_id"]: c for c in body["data"]}
        assert clients[alice.client_id] == {"client_id": alice.client_id, "username": "alice", "keepalive": 0,
                                            "protocol": 1, "protocol_name": "centrifuge-legacy",
                                            "connect_status": 1, "message_receive": 4}
        assert clients[bob.client_id]["message_receive"] == 3
    with trio.fail_after(5):
        while running.hub.sessions:
            await trio.sleep(0.01)
    status, body = await curl(url, '{"req": 2,"seq": 7}', *BASIC)
    assert body["data"]["client_size"] == 0


async def test_every_error_row(start_hub):
    running = await start_hub()
    base = running.url("stats")
    async with httpx.AsyncClient(base_url=base) as http:
        auth = ("admin", "public")
        cases = [
            (dict(content=b'{"req": 2, "seq": 1}'), 401, api.EMPTY_CREDENTIALS),
            (dict(content=b'{"req": 2, "seq": 1}', auth=("admin", "wrong")), 401, api.WRONG_CREDENTIALS),
            (dict(content=b'{"req": 2, "seq": 1}', auth=("nobody", "public")), 401, api.WRONG_CREDENTIALS),
            (dict(content=b'{"req": 2, "seq": 1}', headers={"Authorization": "Basic Og=="}), 401, api.EMPTY_CREDENTIALS),
            (dict(content=b'{"req": 2, "seq": 1}', headers={"Authorization": "Basic !!"}), 401, api.WRONG_CREDENTIALS),
            (dict(content=b"{not json", auth=auth), 400, api.NOT_JSON),
            (dict(content=b"[1]", auth=auth), 400, api.NOT_JSON),
            (dict(content=b'{"seq": 1}', auth=auth), 400, api.MISSING_PARAMETER),
            (dict(content=b'{"req": 2}', auth=auth), 400, api.MISSING_PARAMETER),
            (dict(content=b'{"req": "2", "seq": 1}', auth=auth), 400, api.BAD_PARAMETER),
            (dict(content=b'{"req": 2, "seq": 1.5}', auth=auth), 400, api.BAD_PARAMETER),
            (dict(content=b'{"req": 99, "seq": 1}', auth=auth), 400, api.BAD_PARAMETER),
            (dict(content=b'{"req": 10, "seq": 1, "data": 5}', auth=auth), 400, api.BAD_PARAMETER),
        ]
        for kwargs, status, code in cases:
            response = await http.post("/api/v1", **kwargs)
            assert response.status_code == status, (kwargs, response.text)
            assert response.headers["content-type"] == "application/json"
            assert response.json()["code"] == code, (kwargs, response.text)
        for response in (await http.post("/api/v2", auth=auth, content=b"{}"), await http.get("/api/v1", auth=auth),
                         await http.get("/nope")):
            assert response.status_code == 404 and response.json()["code"] == api.UNKNOWN
            assert "<html" not in response.text.lower()


async def test_reload_changes_a_namespace_option_live_and_reports_ports(start_hub, tmp_path):
    running = await start_hub()
    stats_url = running.url("stats") + "/api/v1"
    settings = running.settings
    async with legacy_client(running.url("realtime")) as c, httpx.AsyncClient() as http:
        await c.connect("alice")
        await c.subscribe("news")
        assert (await c.call("publish", {"channel": "news", "data": 1}))["error"] == "permission denied"
        config = f"""
[projects.development]
secret = "secret"
api_keys = ["test-api-key"]
publish = true
history_size = 10
history_lifetime = 60
[projects.development.namespaces.public]
publish = true
anonymous = true
[projects.development.namespaces.nohist]
presence = false
[realtime]
port = 0
[command_api]
port = 0
[stats]
port = {settings.adapters['stats'].port + 1 if settings.adapters['stats'].port else 18081}
"""
        response = await http.post(stats_url, auth=("admin", "public"), json={"req": 10, "seq": 3, "data": config})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["rep"] == 10 and "projects" in body["data"]["changed"]
        assert "stats.port" in body["data"]["restart_required"]
        assert (await c.call("publish", {"channel": "news", "data": 2}))["error"] is None
        assert (await c.next_push("message"))["body"]["data"] == 2
        bad = await http.post(stats_url, auth=("admin", "public"), json={"req": 10, "seq": 4, "data": "[hub]\nnope = 1\n"})
        assert bad.status_code == 400 and bad.json()["code"] == api.BAD_PARAMETER and "hub.nope" in bad.json()["message"]
        path = tmp_path / "hub.toml"
        path.write_text(config.replace("publish = true\nhistory_size", "publish = false\nhistory_size"))
        running.settings.source = str(path)
        response = await http.post(stats_url, auth=("admin", "public"), json={"req": 10, "seq": 5})
        assert response.status_code == 200
        assert (await c.call("publish", {"channel": "news", "data": 3}))["error"] == "permission denied"
        assert c.client_id in running.hub.sessions


async def test_metrics_parse_with_prometheus_parser(start_hub):
    running = await start_hub()
    async with legacy_client(running.url("realtime")) as c, httpx.AsyncClient() as http:
        await c.connect("alice")
        await c.subscribe("news")
        running.publish("news", 1)
        await c.next_push("message")
        await http.post(running.url("stats") + "/api/v1", auth=("admin", "public"), json={"req": 2, "seq": 1})
        response = await http.get(running.url("stats") + "/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    assert families["hub_messages_in"].samples[0].value == 1
    assert families["hub_messages_delivered"].samples[0].value == 1
    sessions = {s.labels["protocol"]: s.value for s in families["hub_sessions"].samples}
    assert sessions == {"centrifuge-legacy": 1}
    requests = {(s.labels["adapter"], s.labels["status"]): s.value for s in families["hub_http_requests"].samples
                if s.name == "hub_http_requests_total"}
    assert requests[("stats", "2xx")] >= 1
    buckets = [s for s in families["hub_http_request_duration_seconds"].samples if s.name.endswith("_count")]
    assert any(s.labels["adapter"] == "stats" and s.value >= 1 for s in buckets)


def test_sighup_reloads_hub_toml(tmp_path):
    """`hub run` reloads its file on SIGHUP: a namespace option changes for a connected client."""
    from tests.test_runtime import start

    proc, urls = start(tmp_path)
    cfg = tmp_path / "hub.toml"
    try:
        async def scenario():
            async with legacy_client(urls["websocket clients"]) as c:
                await c.connect("alice")
                await c.subscribe("news")
                assert (await c.call("publish", {"channel": "news", "data": 1}))["error"] == "permission denied"
                cfg.write_text(cfg.read_text().replace('secret = "secret"\n', 'secret = "secret"\npublish = true\n'))
                proc.send_signal(signal.SIGHUP)
                with trio.fail_after(5):
                    while (await c.call("publish", {"channel": "news", "data": 2}))["error"] is not None:
                        await trio.sleep(0.05)
                assert (await c.next_push("message"))["body"]["data"] == 2

        trio.run(scenario)
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
        proc.stderr.close()
