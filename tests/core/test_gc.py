"""The publish path makes no cyclic garbage: reference counting frees every publication, frame and
closure, so the collector (hub/gctune.py: high thresholds, start-up heap frozen) finds nothing to do."""

import gc

from hub.core import Hub, NamespaceOptions, Project
from hub.core.outbox import Outbox
from protocols.realtime.legacy import WIRE


def _hub() -> Hub:
    options = NamespaceOptions(presence=False, join_leave=False, history_size=10, history_lifetime=60)
    return Hub([Project("p", "secret", options, {})])


async def test_publishing_and_fan_out_leave_no_cyclic_garbage():
    hub = _hub()
    sessions = [hub.connect("p", f"u{i}", "test", WIRE, outbox=Outbox(1 << 20)) for i in range(50)]
    for i, s in enumerate(sessions):
        await hub.subscribe(s, "news")
        await hub.subscribe(s, f"own{i}")
    await hub.publish("p", "news", {"warm": True})  # first-use caches
    for s in sessions:
        s.outbox.take()
    gc.collect()
    gc.disable()
    try:
        for n in range(200):
            await hub.publish("p", "news", {"n": n, "text": "x" * 50})
            await hub.publish_many("p", f"own{n % 50}", [({"n": n}, None, None), ({"m": n}, {"i": 1}, "c")])
            await hub.publish_batch("p", [(f"own{(n + i) % 50}", {"b": i}) for i in range(3)])
            for s in sessions:
                s.outbox.take()
        found = gc.collect()
    finally:
        gc.enable()
    assert found == 0
    assert all(s.received == 201 + 2 * 4 + 3 * 4 for s in sessions)


def test_publication_uids_are_32_hex_and_unique():
    import trio

    hub = _hub()

    async def main() -> list[str]:
        pubs = await hub.publish_many("p", "news", [(i, None, None) for i in range(100)])
        return [p.uid for p in pubs] + [(await hub.publish("p", "news", 1)).uid]

    uids = trio.run(main)
    assert len(set(uids)) == 101
    assert all(len(u) == 32 and int(u, 16) >= 0 for u in uids)
    assert _hub().node_id != hub.node_id  # another node (or a restart) starts from another prefix
