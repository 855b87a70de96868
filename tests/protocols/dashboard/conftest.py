"""A hub with the dashboard on an ephemeral port, and an HTTP client that logs in like the login form does."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

PASSWORD = "correct horse battery staple"

DASHBOARD = f"""
[dashboard]
enabled = true
port = 0
password = "{PASSWORD}"
update_interval = 0.2
"""


def form_csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


async def login(http: httpx.AsyncClient, password: str = PASSWORD) -> httpx.Response:
    """GET the form (its CSRF cookie and field), POST the password; returns the POST's response."""
    page = await http.get("/login")
    assert page.status_code == 200
    return await http.post("/login", data={"csrf": form_csrf(page.text), "password": password})


async def page_csrf(http: httpx.AsyncClient, path: str = "/") -> str:
    response = await http.get(path)
    assert response.status_code == 200, response.text
    return form_csrf(response.text)


@pytest.fixture
async def dashboard(start_hub: Any) -> Any:
    """`running, url = await dashboard(extra_toml)`."""

    async def start(extra: str = "") -> tuple[Any, str]:
        running = await start_hub(DASHBOARD + extra)
        return running, running.url("dashboard")

    return start
