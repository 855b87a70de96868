"""bench/channel_state.py end to end at toy size: both versions run, the table and the JSON carry every figure."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_channel_state_bench_small(tmp_path):
    if subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True).returncode != 0:
        pytest.skip("not a git checkout: no 'before' code to export")
    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, "-m", "bench.channel_state", "--channels", "3000", "--churn-rounds", "2",
                           "--churn-channels", "3000", "--before", "HEAD", "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "| figure | before (HEAD) | after (this tree) |" in proc.stdout
    assert "3,000 channels: RSS per channel (B)" in proc.stdout
    results = json.loads(out.read_text())["results"]
    for version in ("before", "after"):
        res = results[version]["channels"]["3000"]
        assert res["bytes_per_channel"] > 0 and res["mass"]["housekeeping_step_ms"] > 0
        assert res["parts"]["total"] > res["parts"]["publication object"]
        assert len(results[version]["churn"]["rss_mb"]) == 2
    # the "before" run imported the exported copy of `hub`, the "after" run this tree's
    assert results["before"]["channels"]["3000"]["hub"] != str(ROOT / "hub")
    assert results["after"]["channels"]["3000"]["hub"] == str(ROOT / "hub")
    assert results["after"]["channels"]["3000"]["parts"]["total"] < 600
