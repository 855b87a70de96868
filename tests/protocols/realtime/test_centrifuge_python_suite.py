"""centrifuge-python's own test suite (its sdist's whole tests/, JSON and Protobuf) against the hub, as
`make sdk-suites` runs it: the hub on suites/centrifuge-python.json (the sdist's docker-compose.yml environment as a
Centrifugo config.json), a per-test timeout, every test and subtest counted."""

from __future__ import annotations

import pytest

from tests.protocols.realtime.suites.__main__ import run_python


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_centrifuge_python_own_suite_against_the_hub() -> None:
    result = run_python(timeout=60.0)
    assert result["failed"] == 0, f"centrifuge-python's suite failed against the hub: {result['failed_ids']}"
    assert result["passed"] >= 200, result  # 213 tests and subtests in centrifuge-python 0.7.0
    assert result["hub_exit"] == 0, "the hub did not stop cleanly"
