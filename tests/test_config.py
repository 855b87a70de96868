"""Config errors: each kind of bad file gives exit status 2 and a one-line message naming the key."""

import subprocess
import sys
from pathlib import Path

import pytest

from hub.config import ConfigError, load_settings

from .conftest import shipped_config

GOOD = """
[projects.p]
secret = "s"
"""

CASES = [
    ("unknown top-level section", '[nope]\nx = 1\n' + GOOD, "nope: unknown section"),
    ("unknown key", '[hub]\nfoo = 1\n' + GOOD, "hub.foo: unknown key"),
    ("wrong type", '[hub]\nmax_queue_bytes = "big"\n' + GOOD, "hub.max_queue_bytes: expected an integer, got string"),
    ("bad bool", GOOD + "publish = 1\n", "projects.p.publish: expected a boolean, got integer"),
    ("missing secret", "[projects.p]\nhistory_size = 1\n", "projects.p.secret: missing"),
    ("secret env unset", '[projects.p]\nsecret_env = "HUB_TEST_UNSET_VAR"\n',
     "projects.p.secret_env: environment variable HUB_TEST_UNSET_VAR is not set"),
    ("below minimum", GOOD + "history_size = -1\n", "projects.p.history_size: must be at least 0"),
    ("bad choice", '[hub]\nlog_level = "loud"\n' + GOOD, "hub.log_level: must be one of"),
    ("namespace unknown key", GOOD + "[projects.p.namespaces.n]\npublsh = true\n", "projects.p.namespaces.n.publsh: unknown key"),
    ("port out of range", GOOD + "[realtime]\nport = 70000\n", "realtime.port: must be at most 65535"),
    ("not toml", "[hub\n", "not valid TOML"),
    ("no project", "[hub]\n", "projects: missing"),
]


@pytest.mark.parametrize("label, text, message", CASES, ids=[c[0] for c in CASES])
def test_bad_config_one_line_exit_2(tmp_path: Path, label: str, text: str, message: str):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert message in str(info.value)
    for args in (["check-config", str(path)], ["run", "--config", str(path)]):
        proc = subprocess.run([sys.executable, "-m", "hub", *args], capture_output=True, text=True, timeout=30)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert str(path) in lines[0] and message in lines[0]
        assert "listening" not in proc.stderr


def test_missing_file_exit_2(tmp_path: Path):
    proc = subprocess.run([sys.executable, "-m", "hub", "check-config", str(tmp_path / "none.toml")],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "file not found" in proc.stderr


def test_secret_from_environment(tmp_path: Path):
    path = tmp_path / "env.toml"
    path.write_text('[projects.p]\nsecret_env = "HUB_SECRET"\nhistory_size = 5\nhistory_lifetime = 9\n'
                    '[projects.p.namespaces.chat]\npublish = true\n')
    settings = load_settings(path, env={"HUB_SECRET": "from-env"})
    (project,) = settings.projects
    assert project.secret == "from-env"
    assert project.options.history_size == 5 and project.options.keeps_history
    assert project.namespaces["chat"].publish


def test_shipped_hub_toml_is_valid(tmp_path: Path):
    path = tmp_path / "hub.toml"
    path.write_text(shipped_config())  # as committed: never the working copy, which a user may have edited
    settings = load_settings(path)
    assert settings.projects[0].key == "development"
    proc = subprocess.run([sys.executable, "-m", "hub", "check-config", str(path)],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
