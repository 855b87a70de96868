"""hub/loginlimit.py: failures counted per user and per address within the window, blocks that end."""

from __future__ import annotations

from hub.loginlimit import Blocked, LoginLimiter, LoginLimitSettings, address_of
from tests.login_helpers import Clock


def test_user_block_starts_at_n_failures_and_ends_after_block():
    clock = Clock(1000.0)
    limiter = LoginLimiter(LoginLimitSettings(max_failures=3, max_failures_per_ip=100, window=60, block=120), clock)
    for _ in range(2):
        assert limiter.check("chat", "alice", "10.0.0.1") is None
        assert limiter.failed("chat", "alice", "10.0.0.1") is None
    assert limiter.failed("chat", "alice", "10.0.0.2") == Blocked("user", 120)  # from another address: same user
    assert limiter.check("chat", "Alice", "10.0.0.9") == Blocked("user", 120)  # user names compare without case
    assert limiter.check("jsonrpc", "alice", "10.0.0.1") is None  # another adapter's alice is another user
    assert limiter.check("chat", "bob", "10.0.0.1") is None
    clock.now += 119.5
    assert limiter.check("chat", "alice", "10.0.0.1") == Blocked("user", 1)
    clock.now += 0.5
    assert limiter.check("chat", "alice", "10.0.0.1") is None
    assert limiter.failures == {"chat": 3} and limiter.blocks == {"user": 1}
    assert limiter.refused == {("chat", "user"): 2}


def test_failures_outside_the_window_do_not_count_and_success_resets():
    clock = Clock(1000.0)
    limiter = LoginLimiter(LoginLimitSettings(max_failures=3, max_failures_per_ip=100, window=60, block=60), clock)
    limiter.failed("chat", "alice", None)
    limiter.failed("chat", "alice", None)
    clock.now += 61
    limiter.failed("chat", "alice", None)
    limiter.failed("chat", "alice", None)
    assert limiter.check("chat", "alice", None) is None  # only two inside the last minute
    limiter.succeeded("chat", "alice", None)
    limiter.failed("chat", "alice", None)
    limiter.failed("chat", "alice", None)
    assert limiter.check("chat", "alice", None) is None  # the login forgot the earlier ones


def test_address_block_spans_users_and_adapters_and_allowlist():
    clock = Clock(1000.0)
    settings = LoginLimitSettings(max_failures=100, max_failures_per_ip=4, window=300, block=300, ip_allowlist=["10.9.9.9"])
    limiter = LoginLimiter(settings, clock)
    for i in range(4):
        limiter.failed("chat" if i % 2 else "stats", f"user{i}", "10.0.0.1")
        limiter.failed("chat", f"user{i}", "10.9.9.9")
    assert limiter.check("jsonrpc", "someone", "10.0.0.1") == Blocked("ip", 300)
    assert limiter.check("jsonrpc", "someone", "10.0.0.2") is None
    assert limiter.check("chat", "user9", "10.9.9.9") is None  # allow-listed address
    assert limiter.blocked_now() == {"ip": 1, "user": 0}


def test_disabled_and_reconfigured():
    clock = Clock(1000.0)
    limiter = LoginLimiter(LoginLimitSettings(enabled=False, max_failures=1), clock)
    limiter.failed("chat", "alice", "1.2.3.4")
    assert limiter.check("chat", "alice", "1.2.3.4") is None
    limiter.configure(LoginLimitSettings(max_failures=1, block=10))
    assert limiter.failed("chat", "alice", "1.2.3.4") == Blocked("user", 10)


def test_tracked_keys_are_bounded():
    limiter = LoginLimiter(LoginLimitSettings(), Clock(1000.0), max_keys=50)
    for i in range(1000):
        limiter.failed("chat", f"u{i}", f"10.0.{i // 250}.{i % 250}")
    assert len(limiter._entries) <= 50


def test_address_of():
    assert address_of("127.0.0.1:5000") == "127.0.0.1"
    assert address_of("::1:5000") == "::1"
    assert address_of("[::1]:80") == "::1"
    assert address_of("") == ""


def test_attempts_in_flight_count_so_parallel_guesses_cannot_pass_the_limit():
    clock = Clock(1000.0)
    limiter = LoginLimiter(LoginLimitSettings(max_failures=3, max_failures_per_ip=100), clock)
    let_through = [limiter.check("chat", "alice", "10.0.0.1") for _ in range(5)]  # all checked before any answer
    assert let_through[:3] == [None, None, None] and let_through[3] == Blocked("user", 1) == let_through[4]
    limiter.failed("chat", "alice", "10.0.0.1")
    limiter.failed("chat", "alice", "10.0.0.1")
    assert limiter.check("chat", "alice", "10.0.0.1") == Blocked("user", 1)  # one still in flight
    assert limiter.failed("chat", "alice", "10.0.0.1") == Blocked("user", 300)
    assert limiter.check("chat", "alice", "10.0.0.1") == Blocked("user", 300)


def test_attempts_that_never_end_stop_counting_and_release():
    clock = Clock(1000.0)
    limiter = LoginLimiter(LoginLimitSettings(max_failures=2, max_failures_per_ip=100), clock)
    assert limiter.check("stats", "admin", "10.0.0.1") is None
    limiter.release("stats", "admin", "10.0.0.1")  # e.g. no credentials at all: not a guess
    assert limiter.check("stats", "admin", "10.0.0.1") is None
    assert limiter.check("stats", "admin", "10.0.0.1") is None
    assert limiter.check("stats", "admin", "10.0.0.1") == Blocked("user", 1)  # two in flight, never ended
    clock.now += 61
    assert limiter.check("stats", "admin", "10.0.0.1") is None  # forgotten after PENDING_TTL
    limiter.succeeded("stats", "admin", "10.0.0.1")
