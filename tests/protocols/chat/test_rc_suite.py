"""rocketchat_API's own test suite (from its sdist, unchanged) against a fresh hub: the files issue 28 names pass whole.

The same run as `make chat-suite`, restricted to those files (and the others that pass: teams, moderation,
custom emoji and sounds, assets) so that CI (`make test`) runs them.
"""

from __future__ import annotations

import trio

from .rc_suite import ALSO_PASSING, REQUIRED, run


async def test_rocketchat_api_suite_passes():
    files = [*REQUIRED, *ALSO_PASSING]
    counts = await trio.to_thread.run_sync(lambda: run(files, quiet=True))
    assert set(counts) == set(files), counts
    failing = {name: c for name, c in counts.items() if c["failed"] or c["errors"]}
    assert not failing, failing
    assert sum(c["passed"] for c in counts.values()) >= 220
