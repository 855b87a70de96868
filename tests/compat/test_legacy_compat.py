"""The hub, started as a Centrifuge 0.8 user would start it (`hub run --config config.json`), answers the
127 original-protocol checks as the original Centrifuge 0.8.4 answered them.

The original's answers were recorded from a real run (`python -m tests.compat.side_by_side --ref URL
--record ...`, see side_by_side.py) into fixtures/centrifuge-0.8.4.json. Every check must give the
same answer except the differences kept on purpose (side_by_side.KEPT: where the original was
broken, the hub does what it intended). With CENTRIFUGE_REF_URL set to a running original
(reference/centrifuge-0.8/run.sh), the checks also run against it live, side by side.
"""

from __future__ import annotations

import json
import os

from .legacy_checks import CHECKS, compare, run_all, show
from .side_by_side import FIXTURE, KEPT, hub_process


def _explain(expected: dict, actual: dict, names: list[str]) -> str:
    return "\n".join(f"--- {n}\noriginal: {show(expected[n])}\nhub: {show(actual[n])}" for n in names)


def test_hub_answers_like_the_original():
    expected = json.loads(FIXTURE.read_text())["answers"]
    assert len(CHECKS) == len(expected) == 127
    with hub_process() as base:
        actual = run_all(base)
        live = os.environ.get("CENTRIFUGE_REF_URL")
        if live:
            expected = run_all(live)
    differ = compare(expected, actual)
    unexpected = [n for n in differ if n not in KEPT]
    assert not unexpected, f"{len(unexpected)} checks differ from the original:\n" + _explain(expected, actual, unexpected)
    assert sorted(differ) == sorted(KEPT), f"kept differences that are gone: {sorted(set(KEPT) - set(differ))}"
    assert len(CHECKS) - len(differ) >= 120
