"""The summary builder: hub-vs-peer ratios, loss and backlog spelled out, charts written (no servers)."""

import json

import pytest

from bench import report
from bench.__main__ import SCENARIOS, command_line, params_for


def rec(scenario, label, target, **result):
    return {"scenario": scenario, "label": label, "target": target, "params": {}, "result": result or None,
            "error": None if result else "timed out after 90 s"}


RECORDS = [
    rec("burst", "burst K=100", "hub", deliveries_per_s=1_000_000, latency_ms={"p50": 5, "p99": 10, "max": 12},
        expected=100, lost=0, kept_up=True, server_cpu_s=1.0, saturated="server"),
    rec("burst", "burst K=100", "websockets", deliveries_per_s=250_000, latency_ms={"p50": 20, "p99": 40, "max": 50},
        expected=100, lost=0, kept_up=True),
    rec("rate", "rate K=1000", "hub", deliveries_per_s=1000, latency_ms={"p50": 1, "p99": 2, "max": 3},
        expected=5000, lost=0, kept_up=True),
    rec("rate", "rate K=1000", "socketio", deliveries_per_s=500, latency_ms={"p50": 100, "p99": 400, "max": 900},
        expected=5000, lost=2500, kept_up=False, drain_cut=True, drain_limit_s=10.0, drain_s=10.0),
    rec("rate", "rate K=1000", "mosquitto", deliveries_per_s=900, latency_ms={"p50": 1, "p99": 4, "max": 5},
        expected=5000, lost=100, kept_up=False, drain_s=0.1),
    rec("connections", "connections N=1000", "hub", connects_per_s=2000, rss_per_conn_kib=10.0),
    rec("connections", "connections N=1000", "mosquitto", connects_per_s=4000, rss_per_conn_kib=1.0),
    rec("burst", "burst K=100", "socketio"),
]


def test_ratio_and_cells():
    assert report.ratio(10, 4) == 2.5 and report.ratio(1, 0) is None and report.ratio(None, 1) is None
    groups = report.by_label(RECORDS)
    assert report.comparison_cells(groups["burst K=100"]["hub"], groups["burst K=100"]["websockets"]) == \
        "deliveries/s ×4.00, p99 ×0.25"
    assert "(peer fell behind)" in report.comparison_cells(groups["rate K=1000"]["hub"], groups["rate K=1000"]["socketio"])
    assert report.comparison_cells(groups["connections N=1000"]["hub"], groups["connections N=1000"]["mosquitto"]) == \
        "connects/s ×0.50, RSS/conn ×10.0"
    assert report.comparison_cells(groups["burst K=100"]["hub"], groups["burst K=100"]["socketio"]) == "—"


def test_summary_reports_loss_and_backlog_honestly():
    md = report.summary_markdown(RECORDS)
    assert "| burst K=100 | not run | deliveries/s ×4.00, p99 ×0.25 | — |" in md
    assert "2,500 (50.0%) not delivered within the 10.0 s drain limit after the last publish (a backlog still queued, or dropped)" in md
    assert "100 (2.0%) lost" in md
    assert "not run: timed out after 90 s" in md
    # One detail row per (scenario, target) record.
    assert md.count("\n| burst K=100 |") == 3 + 1


def test_charts_and_command_lines(tmp_path):
    pytest.importorskip("matplotlib")  # the `bench` extra
    paths = report.write_charts(RECORDS, tmp_path)
    assert {p.name for p in paths} == {"throughput.png", "latency.png", "connections.png"}
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)
    params = params_for(SCENARIOS["burst"], {"subscribers": 7})
    assert command_line(SCENARIOS["burst"], params, "hub").startswith("python -m bench burst --subscribers 7 --messages 2000")
    f = tmp_path / "r.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in RECORDS) + "\nnot json\n")
    assert len(report.load(f)) == len(RECORDS)
