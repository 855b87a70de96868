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


def test_issue20_targets_measured_in_rounds_get_their_median():
    records = []
    for n, (hub, mosq, cps) in enumerate([(70_000, 40_000, 4_000), (80_000, 50_000, 5_500), (90_000, 40_000, 5_200)], 1):
        label = "" if n == 1 else f" (round {n})"
        records += [rec("channels", f"channels N=10{label}", "hub", deliveries_per_s=hub, lost=0),
                    rec("channels", f"channels N=10{label}", "mosquitto", deliveries_per_s=mosq, lost=0),
                    rec("connections", f"connections N=10{label}", "hub", connects_per_s=cps, rss_per_conn_kib=6.0)]
    md = report.summary_markdown(records)
    assert "| channels N=10 (round 2) | ≥ 1.5× Mosquitto's deliveries/s, nothing lost | ×1.60 (80,000 vs 50,000), lost 0 | yes |" in md
    assert ("| channels N=10, median of 3 rounds | ≥ 1.5× Mosquitto's deliveries/s, nothing lost | ×1.75 "
            "(rounds: ×1.75, ×1.60, ×2.25) | yes |") in md
    assert "| connections N=10, median of 3 rounds | ≥ 5,000 connects/s | 5,200/s (rounds: 4,000, 5,500, 5,200) | yes |" in md
    assert "connections N=10, median of 3 rounds | ≤ 8 KiB" not in md  # one figure per round is enough for a bound
