"""The harness end to end at toy size: the hub and the `websockets` peer, results file, summary."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_burst_against_hub_and_websockets_peer(tmp_path):
    pytest.importorskip("websockets")
    proc = subprocess.run([sys.executable, "-m", "bench", "--out", str(tmp_path), "burst", "-k", "4", "-m", "20",
                           "--targets", "hub,websockets"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    (results,) = tmp_path.glob("*.jsonl")
    records = [json.loads(line) for line in results.read_text().splitlines()]
    assert [r["target"] for r in records] == ["hub", "websockets"]
    for r in records:
        assert r["error"] is None, r["error"]
        res = r["result"]
        assert res["deliveries"] == res["expected"] == 80 and res["lost"] == 0
        assert res["server_cpu_s"] >= 0 and res["client_cpu_s"] > 0 and res["latency_ms"]["p99"] > 0
        assert r["command"].startswith("python -m bench burst --subscribers 4 --messages 20 ")
        assert r["config"]["peers"]["websockets"]
    assert "| burst K=4 M=20 | not run | deliveries/s ×" in proc.stderr  # the hub-vs-peer table
    assert "[########################] 2/2" in proc.stderr  # the progress bar


def test_cluster_bench_counts_acknowledged_publications():
    """bench.cluster at toy size, both setups: every publish acknowledged and delivered (its reply parsing is checked)."""
    import shutil

    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    proc = subprocess.run([sys.executable, "-m", "bench.cluster", "--rate", "200", "--duration", "1", "-k", "2"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert [r["setup"] for r in records] == ["redis: publisher on A, subscribers on B", "memory: one node"]
    for r in records:
        assert r["publish_errors"] == 0 and r["published"] == 200, r
        assert r["lost"] == 0 and r["deliveries"] == r["expected"] == 400, r
