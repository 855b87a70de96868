"""A hub with the dashboard on an ephemeral port, and an HTTP client that logs in like the login form does."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from trio_websocket import open_websocket_url

from protocols.dashboard.auth import COOKIE

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


def config_file(tmp_path: Path, password: str = PASSWORD) -> Path:
    """The test hub's configuration (tests/conftest.py's, with the dashboard on) as a file, for reloads."""
    from tests.conftest import BASE_CONFIG

    path = tmp_path / "hub.toml"
    path.write_text(BASE_CONFIG.replace("[dashboard]\nenabled = false\nport = 0\n", DASHBOARD.replace(PASSWORD, password))
                    .replace("[chat]\n", f'[chat]\ndatabase = "{tmp_path / "chat.db"}"\n')
                    .replace("[jsonrpc]\n", f'[jsonrpc]\nusers_file = "{tmp_path / "jsonrpc-users.json"}"\n'))
    return path


async def session_cookie(url: str, password: str = PASSWORD) -> str:
    """Log in at `url`; the session cookie's value."""
    async with httpx.AsyncClient(base_url=url) as http:
        await login(http, password)
        return http.cookies[COOKIE]


def live_page(url: str, cookie: str | None, query: str, origin: str | None = None) -> Any:
    """`async with live_page(url, cookie, "page=overview") as ws:` the page's live socket, as the browser opens it."""
    headers = [("Origin", origin or url)] + ([("Cookie", f"{COOKIE}={cookie}")] if cookie else [])
    return open_websocket_url(url.replace("http://", "ws://") + "/ws?" + query, extra_headers=headers)


@pytest.fixture
async def dashboard(start_hub: Any) -> Any:
    """`running, url = await dashboard(extra_toml)`."""

    async def start(extra: str = "") -> tuple[Any, str]:
        running = await start_hub(DASHBOARD + extra)
        return running, running.url("dashboard")

    return start
