from .legacy_client import legacy_client


async def test_publish_reaches_legacy_client(start_hub):
    running = await start_hub()
    async with legacy_client(running.url("realtime")) as c:
        reply = await c.connect("alice")
        assert reply["error"] is None
        await c.subscribe("news")
        await running.publish("news", {"hello": 1})
        push = await c.next_push("message")
        assert push["body"]["data"] == {"hello": 1}
