"""The hub inside another Trio program: started in the caller's nursery, used in-process."""

import trio

import hub
from hub.adapters import adapter_registry
from hub.config import parse_settings

from .conftest import hub_config, with_tmp_files
from .legacy_client import legacy_client


async def test_embedded_hub_publishes_to_real_client(tmp_path):
    settings = parse_settings(with_tmp_files(hub_config(), tmp_path), "<embedded>")
    async with trio.open_nursery() as nursery:
        running = await nursery.start(hub.serve, settings)
        async with legacy_client(running.url("realtime")) as client:
            await client.connect("alice")
            await client.subscribe("news")
            pub = await running.publish("news", {"text": "in-process"})
            push = await client.next_push("message")
            assert push["body"]["data"] == {"text": "in-process"}
            assert push["body"]["uid"] == pub.uid
            assert set(await running.presence("news")) == {client.client_id}
            assert [p.uid for p in (await running.history("news")).publications] == [pub.uid]
            assert running.stats()["messages_delivered"] == 1
        running.shutdown()


async def test_open_hub_context_manager(tmp_path):
    path = tmp_path / "hub.toml"
    files = {"chat": f'database = "{tmp_path / "chat.db"}"\n', "jsonrpc": f'users_file = "{tmp_path / "users.json"}"\n'}
    listeners = "".join(f"[{name}]\nport = 0\n{files.get(name, '')}" for name in adapter_registry())
    path.write_text(f'[projects.demo]\nsecret = "s"\n{listeners}')
    async with hub.open_hub(path) as running:
        assert running.default_project == "demo"
        assert running.url("realtime").startswith("http://127.0.0.1:")
        await running.publish("news", 1)
        assert running.stats()["messages_in"] == 1
