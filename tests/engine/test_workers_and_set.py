"""`hub run --set` and `hub run --workers N`."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trio

from bench.redis_server import REDIS_SERVER, RedisServer, free_port
from hub.config import ConfigError, apply_overrides, load_settings
from hub.runtime import READY

from .cluster import Node, SdkConn, write_config


def test_set_overrides_any_key(tmp_path: Path):
    cfg = write_config(tmp_path)
    settings = load_settings(cfg, overrides=["realtime.port=8100", "command_api.port=8100", "engine.prefix=x",
                                             "projects.development.history_size=7", 'hub.log_level="debug"'])
    assert settings.adapters["realtime"].port == 8100 and settings.adapters["command_api"].port == 8100
    assert settings.engine.prefix == "x" and settings.hub.log_level == "debug"
    assert settings.projects[0].options.history_size == 7
    assert apply_overrides({}, ["a.b.c=[1, 2]", "a.d=plain text"], "<t>") == {"a": {"b": {"c": [1, 2]}, "d": "plain text"}}
    with pytest.raises(ConfigError, match="expected TABLE.KEY=VALUE"):
        load_settings(cfg, overrides=["realtime.port"])
    with pytest.raises(ConfigError, match="realtime.port: expected an integer"):
        load_settings(cfg, overrides=["realtime.port=abc"])
    with pytest.raises(ConfigError, match="hub.log_level is not a table"):
        load_settings(cfg, overrides=["hub.log_level.x=1"])


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hub", "run", *args], capture_output=True, text=True, timeout=30)


def test_workers_refused_with_the_memory_engine(tmp_path: Path):
    cfg = write_config(tmp_path)
    done = run_cli("--config", str(cfg), "--set", 'engine.type="memory"', "--workers", "2")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--workers 2 needs the redis engine" in lines[0], done.stderr
    done = run_cli("--config", str(cfg), "--set", "realtime.port=x=1", "--workers", "2")
    assert done.returncode == 2 and "realtime.port" in done.stderr


@pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed (make test installs it)")
@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
async def test_workers_share_one_port_and_one_channel_space(tmp_path: Path):
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    port = free_port()
    log = tmp_path / "workers.log"
    cfg = write_config(tmp_path)
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "hub", "run", "--config", str(cfg), "--workers", "2",
                                 "--set", f'engine.url="{redis.url}"', "--set", f"realtime.port={port}",
                                 "--set", f"command_api.port={port}"], stderr=out, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 30
        while log.read_text().count(READY) < 2:
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
            await trio.sleep(0.05)
        node = Node(proc, log, {"websocket clients": f"http://127.0.0.1:{port}", "command API": f"http://127.0.0.1:{port}"})
        conns = [await SdkConn.open(node.ws, f"u{i}") for i in range(10)]
        for conn in conns:
            await conn.call("subscribe", {"channel": "public:w"})
        for i in range(20):
            assert "result" in await node.api("publish", {"channel": "public:w", "data": {"n": i}})
        for conn in conns:
            await conn.until(lambda conn=conn: len(conn.pubs("public:w")) == 20)
            assert [p["offset"] for p in conn.pubs("public:w")] == list(range(1, 21))
        # the connections landed on both workers: each worker's presence entries show in one global list
        presence = (await node.api("presence", {"channel": "public:w"}))["result"]["presence"]
        assert len(presence) == 10
        deadline = time.monotonic() + 5
        while True:  # `info` lists both workers (the other one as of its heartbeat), each with some clients
            nodes = (await node.api("info", {}))["result"]["nodes"]
            if len(nodes) == 2 and sum(n["num_clients"] for n in nodes) == 10 or time.monotonic() > deadline:
                break
            await trio.sleep(0.1)
        assert len(nodes) == 2 and all(n["num_clients"] > 0 for n in nodes), nodes
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        redis.kill()


def test_engine_and_redis_api_config_errors(tmp_path: Path):
    cfg = write_config(tmp_path)
    with pytest.raises(ConfigError, match="engine.url: expected redis://host:port/db"):
        load_settings(cfg, overrides=['engine.url="http://x"'])
    with pytest.raises(ConfigError, match="engine.type: must be one of memory, redis"):
        load_settings(cfg, overrides=['engine.type="cluster"'])
    with pytest.raises(ConfigError, match="command_api.redis_api_url: the Redis API needs a Redis"):
        load_settings(cfg, overrides=['engine.type="memory"', "command_api.redis_api=true"])
    with pytest.raises(ConfigError, match="command_api.redis_api_project: no such project"):
        load_settings(cfg, overrides=["command_api.redis_api=true", 'command_api.redis_api_project="nope"'])
    settings = load_settings(cfg, overrides=["command_api.redis_api=true", "engine.history_meta_ttl=0"])
    assert settings.engine.type == "redis" and settings.engine.history_meta_ttl == 0
