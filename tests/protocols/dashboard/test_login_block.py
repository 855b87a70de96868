"""The dashboard's login through the hub's shared login limiter (on top of its own per-minute limit): 11 wrong
passwords, then the right one is refused with 429 and Retry-After until the block ends (injected clock)."""

from __future__ import annotations

import httpx

from protocols.dashboard.auth import COOKIE
from tests.login_helpers import Clock, metric

from .conftest import PASSWORD, login


async def test_eleven_wrong_passwords_then_the_right_one_is_refused_until_the_block_ends(dashboard):
    running, url = await dashboard("login_attempts = 1000\n")  # the dashboard's own per-minute limit out of the way
    running.login_limiter.clock = clock = Clock()
    async with httpx.AsyncClient(base_url=url) as http:
        for i in range(11):
            response = await login(http, f"wrong {i}")
            assert response.status_code == (200 if i < 10 else 429)
            assert COOKIE not in http.cookies
        response = await login(http, PASSWORD)
        assert response.status_code == 429 and COOKIE not in http.cookies
        assert response.headers["retry-after"] == "300" and "temporarily blocked" in response.text
        clock.now = 299.5
        assert (await login(http, PASSWORD)).status_code == 429
        clock.now = 300
        response = await login(http, PASSWORD)
        assert response.status_code == 303 and http.cookies[COOKIE]
        text = (await http.get(running.url("stats") + "/metrics")).text
    assert metric(text, "hub_login_failures_total", adapter="dashboard") == 10
    assert metric(text, "hub_login_refused_total", adapter="dashboard", reason="ip") == 3
