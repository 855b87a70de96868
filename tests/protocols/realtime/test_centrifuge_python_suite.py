"""centrifuge-python's own test suite (from its sdist) against the hub, as its docker-compose.yml runs it
against Centrifugo v6: the same channel options, written as a Centrifugo config.json and started with
`hub run --config config.json`. The suite's integration modules talk to a fixed address; it is pointed
at the hub's port. The sdist is fetched once with pip (the registry the project installs from) and kept
under .venv/sdists."""

from __future__ import annotations

import importlib.metadata
import json
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[3]
CACHE = ROOT / ".venv" / "sdists"
# Its integration modules (the others use in-process fake servers and do not need a server).
MODULES = ["tests.test_client", "tests.test_ready", "tests.test_background_tasks"]

# docker-compose.yml of centrifuge-python 0.7, as a config.json (delta compression is the one option the hub
# warns about: the SDK then receives whole publications, which its suite accepts).
CONFIG = {
    "client": {"token": {"hmac_secret_key": "secret"}, "subscribe_to_user_personal_channel": {"enabled": True}},
    "http_server": {"port": 0},
    "log": {"level": "warn"},
    "channel": {
        "without_namespace": {
            "allowed_delta_types": ["fossil"], "presence": True, "join_leave": True, "force_push_join_leave": True,
            "history_size": 100, "history_ttl": "300s", "force_recovery": True, "allow_publish_for_subscriber": True,
            "allow_presence_for_subscriber": True, "allow_history_for_subscriber": True,
        },
        "namespaces": [
            {"name": "smallhistory", "force_recovery": True, "history_size": 2, "history_ttl": "300s",
             "allow_publish_for_subscriber": True, "allow_history_for_subscriber": True},
            {"name": "example", "presence": True, "join_leave": True, "force_push_join_leave": True,
             "history_size": 300, "history_ttl": "300s", "allow_publish_for_subscriber": True,
             "allow_presence_for_subscriber": True, "allow_history_for_subscriber": True},
        ],
    },
}


def sdist_tests(tmp_path: Path) -> Path:
    """The sdist's tests/ copied into tmp_path (fetched into the cache the first time)."""
    version = importlib.metadata.version("centrifuge-python")
    CACHE.mkdir(parents=True, exist_ok=True)
    archive = CACHE / f"centrifuge_python-{version}.tar.gz"
    if not archive.exists():
        result = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                                 f"centrifuge-python=={version}", "-d", str(CACHE)], capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == 0 and archive.exists(), f"cannot fetch the sdist: {result.stderr[-2000:]}"
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if "/tests/" in m.name and m.isfile()]
        tar.extractall(tmp_path, members=members, filter="data")
    return tmp_path / f"centrifuge_python-{version}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_centrifuge_python_own_suite_against_the_hub(tmp_path: Path) -> None:
    root = sdist_tests(tmp_path)
    port = free_port()
    for path in (root / "tests").glob("*.py"):
        path.write_text(re.sub(r"localhost:8000", f"127.0.0.1:{port}", path.read_text()))
    config = dict(CONFIG, http_server={"port": port})
    (tmp_path / "config.json").write_text(json.dumps(config))
    hub = subprocess.Popen([str(ROOT / ".venv" / "bin" / "hub"), "run", "--config", str(tmp_path / "config.json")],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert hub.poll() is None and time.monotonic() < deadline, "the hub did not start"
            time.sleep(0.05)
        result = subprocess.run([sys.executable, "-m", "unittest", *MODULES], cwd=root, capture_output=True, text=True,
                                timeout=300)
        summary = "\n".join(line for line in result.stderr.splitlines()
                            if line.startswith(("FAIL", "ERROR", "Ran", "OK", "AssertionError")))
        assert result.returncode == 0, f"centrifuge-python's suite failed against the hub:\n{summary}"
        ran = re.search(r"Ran (\d+) tests", result.stderr)
        assert ran is not None and int(ran.group(1)) >= 60, summary  # 70 in centrifuge-python 0.7.0
    finally:
        hub.terminate()
        try:
            hub.wait(10)
        except subprocess.TimeoutExpired:
            hub.kill()
    assert hub.returncode == 0
    shutil.rmtree(root, ignore_errors=True)
