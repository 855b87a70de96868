"""A Centrifuge 0.8 config.json works as it is: `hub check-config` / `hub run --config config.json`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hub.config import ConfigError, load_settings
from hub.configs import centrifuge08

REFERENCE = Path(__file__).parents[1] / "compat" / "fixtures" / "config.json"


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    return path


def test_reference_config_translates_with_0_8_defaults():
    settings = load_settings(REFERENCE)
    assert settings.warnings == []
    dev, expiring = settings.projects
    assert (dev.key, dev.secret, dev.connection_lifetime, dev.max_channel_length) == ("development", "secret", 0, 255)
    assert dev.options.publish and dev.options.history_size == 10 and dev.options.history_lifetime == 60
    closed = dev.namespaces["closed"]
    assert not (closed.publish or closed.anonymous or closed.presence or closed.join_leave or closed.keeps_history)
    assert set(dev.namespaces) == {"public", "closed", "bench"}
    # keys left out take 0.8's defaults (off), not the hub's
    assert expiring.connection_lifetime == 30 and not expiring.options.join_leave and not expiring.options.anonymous
    assert settings.adapters["realtime"].port == 8000 and settings.adapters["command_api"].port == 8000
    assert settings.adapters["realtime"].enabled and settings.adapters["command_api"].enabled
    others = [name for name, a in settings.adapters.items() if name not in ("realtime", "command_api", "dashboard")]
    assert others and not any(settings.adapters[name].enabled for name in others)  # only what 0.8 served


def test_matches_only_0_8_configs():
    assert centrifuge08.matches({"projects": []})
    assert not centrifuge08.matches({"token_hmac_secret_key": "x"})
    assert not centrifuge08.matches({"client": {}, "http_api": {}})


def test_unknown_and_unsupported_keys_warn_once_each(tmp_path: Path):
    path = write(tmp_path, {
        "password": "p", "cookie_secret": "c", "insecure": True, "metrics": {"log": True}, "colour": "blue",
        "sockjs_settings": {"heartbeat_delay": 10, "disabled_transports": ["xhr"]}, "client_api_message_limit": 50,
        "expired_connection_close_delay": 3, "admin_api_message_limit": 20, "max_channel_length": 100,
        "user_channel_boundary": "#", "namespace_channel_boundary": "/",
        "projects": [{"name": "app", "secret": "s", "watch": True, "flavour": 1,
                      "namespaces": [{"name": "ns", "watch": False, "extra": None}]}]})
    settings = load_settings(path)
    warned = [w.split(": ", 2)[1] for w in settings.warnings]
    assert sorted(warned) == sorted(["insecure", "metrics", "colour", "sockjs_settings.disabled_transports",
                                     "namespace_channel_boundary", "projects[0].flavour", "projects[0].namespaces[0].extra"])
    assert all(w.startswith(f"{path}: ") and "\n" not in w for w in settings.warnings)
    realtime = settings.adapters["realtime"]
    assert (realtime.sockjs_heartbeat, realtime.legacy_max_commands, realtime.legacy_expired_close_delay) == (10.0, 50, 3.0)
    assert settings.adapters["command_api"].max_commands == 20
    assert settings.projects[0].max_channel_length == 100


@pytest.mark.parametrize("data, key", [
    ({"projects": [{"name": "app", "secret": "s", "publish": "yes"}]}, "projects[0].publish"),
    ({"projects": [{"name": "app", "secret": "s", "history_size": 1.5}]}, "projects[0].history_size"),
    ({"projects": [{"name": "app", "secret": "s", "connection_lifetime": -1}]}, "projects[0].connection_lifetime"),
    ({"projects": [{"name": "app", "secret": 5}]}, "projects[0].secret"),
    ({"projects": [{"name": "a", "secret": "s"}]}, "projects[0].name"),
    ({"projects": [{"secret": "s"}]}, "projects[0].name"),
    ({"projects": [{"name": "app", "secret": "s"}, {"name": "app", "secret": "t"}]}, "projects[1].name"),
    ({"projects": [{"name": "app", "secret": "s", "namespaces": {"x": {}}}]}, "projects[0].namespaces"),
    ({"projects": [{"name": "app", "secret": "s", "namespaces": [{"name": "x", "anonymous": 1}]}]},
     "projects[0].namespaces[0].anonymous"),
    ({"projects": [{"name": "app", "secret": "s"}], "password": 123}, "password"),
    ({"projects": [{"name": "app", "secret": "s"}], "cookie_secret": []}, "cookie_secret"),
    ({"projects": [{"name": "app", "secret": "s", "watch": "no"}]}, "projects[0].watch"),
    ({"projects": []}, "projects"),
    ({"projects": ["app"]}, "projects[0]"),
])
def test_wrong_types_are_config_errors(tmp_path: Path, data: dict, key: str):
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, data))
    assert info.value.key == key


def test_cli_check_config_and_exit_2(tmp_path: Path):
    ok = subprocess.run([sys.executable, "-m", "hub", "check-config", str(REFERENCE)], capture_output=True, text=True)
    assert ok.returncode == 0 and "ok (2 project(s))" in ok.stdout
    warn = write(tmp_path, {"projects": [{"name": "app", "secret": "s"}], "tornado_settings": {"x": 1}})
    warned = subprocess.run([sys.executable, "-m", "hub", "check-config", str(warn)], capture_output=True, text=True)
    assert warned.returncode == 0 and warned.stderr.count("\n") == 1 and "tornado_settings" in warned.stderr
    bad = write(tmp_path, {"projects": [{"name": "app", "secret": "s", "history_size": "10"}]})
    for cmd in (["check-config", str(bad)], ["run", "--config", str(bad)]):
        failed = subprocess.run([sys.executable, "-m", "hub", *cmd], capture_output=True, text=True, timeout=30)
        assert failed.returncode == 2
        assert failed.stderr.strip() == f"hub: config error: {bad}: projects[0].history_size: expected an integer, got string"


def test_password_from_the_environment(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("CENTRIFUGE_PASSWORD", "from-env")
    data, warnings = centrifuge08.translate({"projects": [{"name": "app", "secret": "s"}], "password": "p"}, "c.json")
    assert warnings == []
    if "dashboard" in data:
        assert data["dashboard"] == {"password": "from-env"}
