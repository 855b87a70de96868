"""Chat test helpers: a hub with the chat on a temporary database, and users made without the CLI."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.runtime import RunningHub
from protocols.chat import store
from protocols.chat.model import hash_password
from protocols.chat.service import ChatService

PASSWORD = "correct horse battery staple"
_HASH = hash_password(PASSWORD)  # one argon2 hash for every test user keeps the tests fast


@dataclass
class ChatHub:
    running: RunningHub
    url: str
    service: ChatService
    db_path: Path

    async def add_user(self, username: str, *roles: str, password: str | None = None, promote: bool = False) -> str:
        """Create a user straight in the database (password PASSWORD unless given); returns its id.

        Unlike users.register and `hub chat user add`, the first user is not made an administrator
        unless `promote` (tests choose their users' roles).
        """
        password_hash = _HASH if password is None else hash_password(password)
        user = await self.service.db.call(lambda conn: store.create_user(conn, username, password_hash, int(time.time() * 1000),
                                                                         roles=roles or ("user",), promote_first=promote))
        return user.id

    async def login(self, client: httpx.AsyncClient, username: str, password: str = PASSWORD) -> dict[str, str]:
        """Log in over the reference API; returns the auth headers."""
        r = await client.post(f"{self.url}/api/login", data={"user": username, "password": password})
        assert r.status_code == 200, r.text
        data = r.json()["data"]
        return {"X-Auth-Token": data["authToken"], "X-User-Id": data["userId"]}


@pytest.fixture
async def chat_hub(start_hub: Any, tmp_path: Path):
    """`hub = await chat_hub(chat_keys, extra_toml)`: a running hub whose chat keeps its database in tmp_path.

    `chat_keys` are lines of the [chat] table; `extra` is more TOML (other tables).
    """

    async def start(chat_keys: str = "", extra: str = "") -> ChatHub:
        db = tmp_path / "chat" / "chat.db"
        running = await start_hub(f'[chat]\ndatabase = "{db}"\n{chat_keys}\n{extra}')
        return ChatHub(running, running.url("chat"), running.contexts["chat"].state["service"], db)

    return start
