"""deploy/: the systemd unit verifies, the container config is valid with its secrets set, the image's health check targets /health."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
HUB = Path(sys.executable).with_name("hub")


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    unit = (DEPLOY / "hub.service").read_text()
    for key in ("User=hub", "Restart=on-failure", "StateDirectory=hub", "LimitNOFILE=", "RestartPreventExitStatus=2",
                "ExecReload=/bin/kill -HUP $MAINPID"):
        assert key in unit
    # verify needs an executable at ExecStart: point it at this checkout's `hub`.
    local = tmp_path / "hub.service"
    local.write_text(unit.replace("/opt/hub/bin/hub", str(HUB)))
    proc = subprocess.run([analyze, "verify", str(local)], capture_output=True, text=True, timeout=60)
    problems = [line for line in proc.stderr.splitlines() if "hub.service" in line]
    assert proc.returncode == 0 and not problems, proc.stderr


def test_container_config_needs_its_secrets_and_is_valid_with_them() -> None:
    config = DEPLOY / "hub.container.toml"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    missing = subprocess.run([str(HUB), "check-config", str(config)], capture_output=True, text=True, env=env, timeout=60)
    assert missing.returncode == 2 and "HUB_SECRET is not set" in missing.stderr
    env.update(HUB_SECRET="s" * 40, HUB_API_KEYS='["key-one"]', HUB_STATS_SECRET="t" * 40, HUB_DASHBOARD_PASSWORD="u" * 20)
    ok = subprocess.run([str(HUB), "check-config", str(config)], capture_output=True, text=True, env=env, timeout=60)
    assert ok.returncode == 0, ok.stderr
    text = config.read_text()
    assert re.search(r'^host = "0\.0\.0\.0"', text, re.M)
    assert not re.search(r'^\s*(secret|app_secret|token_secret) = "', text, re.M), "no secret in the image"


def test_dockerfile_runs_as_a_user_and_checks_health() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.\d+-slim", text, re.M)
    assert re.search(r"^USER hub$", text, re.M)
    assert "HEALTHCHECK" in text and "/health" in text
    assert "deploy/hub.container.toml" in text
