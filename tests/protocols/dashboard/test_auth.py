"""Login pieces without a server: the password check, sessions, the rate limit, the start-up refusal."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from hub.config import ConfigError, parse_settings
from protocols.dashboard import is_loopback
from protocols.dashboard.auth import LOGIN_WINDOW, LoginLimiter, SessionStore, check_password
from tests.conftest import hub_config


def test_password_check():
    assert check_password("s3cret", "s3cret")
    assert not check_password("s3cret", "s3cre")
    assert not check_password("s3cret", "")
    assert not check_password("", "")  # no password configured: nobody gets in
    hashed = PasswordHasher().hash("s3cret")
    assert check_password(hashed, "s3cret")
    assert not check_password(hashed, "other")


def test_sessions_expire_when_idle_and_are_bounded():
    now = [0.0]
    store = SessionStore(clock=lambda: now[0])
    session = store.create()
    assert session.id != session.csrf and len(session.csrf) >= 40
    now[0] = 50
    assert store.get(session.id, ttl=60) is session  # seen: the idle time restarts
    now[0] = 100
    assert store.get(session.id, ttl=60) is session
    now[0] = 161
    assert store.get(session.id, ttl=60) is None
    assert store.get("forged", ttl=60) is None and store.get(None, ttl=60) is None
    for _ in range(300):
        store.create()
    assert len(store) == 256


def test_login_limiter_counts_failures_per_address_over_a_minute():
    now = [0.0]
    limiter = LoginLimiter(clock=lambda: now[0])
    for _ in range(3):
        assert limiter.retry_after("a", 3) == 0
        limiter.failed("a")
    assert limiter.retry_after("a", 3) > 0
    assert limiter.retry_after("b", 3) == 0  # another address is not held back
    now[0] = LOGIN_WINDOW + 0.1
    assert limiter.retry_after("a", 3) == 0
    limiter.failed("a")
    limiter.succeeded("a")
    assert limiter.retry_after("a", 1) == 0
    for i in range(30):  # many addresses at once: the overall limit (10x) holds
        limiter.failed(f"x{i}")
    assert limiter.retry_after("fresh", 3) > 0


def test_loopback_hosts():
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.1.2.3", "::1", "localhost", "[::1]"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.2", "example.org", ""))


@pytest.mark.parametrize("password", ["", "admin"])
def test_refuses_a_weak_password_off_loopback(password):
    data = hub_config(f'[dashboard]\nenabled = true\nhost = "0.0.0.0"\npassword = "{password}"\n')
    with pytest.raises(ConfigError) as info:
        parse_settings(data, "hub.toml")
    assert str(info.value).startswith("hub.toml: dashboard.password: ")
    assert "not loopback" in str(info.value)
    # on loopback, or with a real password, or disabled, it starts
    parse_settings(hub_config(f'[dashboard]\nenabled = true\npassword = "{password}"\n'), "hub.toml")
    parse_settings(hub_config('[dashboard]\nenabled = true\nhost = "0.0.0.0"\npassword = "long and random"\n'), "hub.toml")
    parse_settings(hub_config(f'[dashboard]\nenabled = false\nhost = "0.0.0.0"\npassword = "{password}"\n'), "hub.toml")


def test_password_from_the_environment():
    data = hub_config('[dashboard]\nenabled = true\nhost = "0.0.0.0"\npassword_env = "DASH_PW"\n')
    settings = parse_settings(data, "hub.toml", env={"DASH_PW": "from the environment"})
    assert settings.adapters["dashboard"].password == "from the environment"
    with pytest.raises(ConfigError, match="dashboard.password_env: environment variable DASH_PW is not set"):
        parse_settings(data, "hub.toml", env={})
    with pytest.raises(ConfigError, match="dashboard.password: is empty"):  # set but empty: still refused off loopback
        parse_settings(data, "hub.toml", env={"DASH_PW": ""})
