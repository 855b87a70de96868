"""`make test-all` runs the Autobahn fuzzingclient (cases 1-10) against the hub's websocket layer: 0 FAILED."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_autobahn_cases_1_to_10_have_no_failure():
    result = subprocess.run([sys.executable, "-m", "tests.autobahn.run"], cwd=ROOT, capture_output=True, text=True, timeout=1800)
    print(result.stdout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "FAILED" not in result.stdout.split("total:")[-1]
