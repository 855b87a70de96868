"""Runs a unittest suite (`discover -s tests` from the current directory) with a per-test timeout and prints one
line per test and subtest, then a JSON summary line. Executed in the suite's own directory by `suites.py`."""

from __future__ import annotations

import json
import signal
import sys
import unittest


class TestTimeout(Exception):
    pass


class Result(unittest.TextTestResult):
    def __init__(self, *args: object, timeout: float, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.timeout = timeout
        self.counts = {"passed": 0, "failed": 0, "skipped": 0}
        self.failed_ids: list[str] = []
        self._sub_failed = False
        self._subs = 0

    def startTest(self, test: unittest.TestCase) -> None:
        self._sub_failed = False
        self._subs = 0
        signal.setitimer(signal.ITIMER_REAL, self.timeout)
        super().startTest(test)

    def stopTest(self, test: unittest.TestCase) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        super().stopTest(test)

    def addSubTest(self, test, subtest, err) -> None:  # noqa: ANN001
        super().addSubTest(test, subtest, err)
        self._subs += 1
        if err is None:
            self.counts["passed"] += 1
        else:
            self.counts["failed"] += 1
            self.failed_ids.append(subtest.id())
            self._sub_failed = True

    def addSuccess(self, test: unittest.TestCase) -> None:
        super().addSuccess(test)
        if not self._subs:
            self.counts["passed"] += 1

    def addFailure(self, test, err) -> None:  # noqa: ANN001
        super().addFailure(test, err)
        self.counts["failed"] += 1
        self.failed_ids.append(test.id())

    def addError(self, test, err) -> None:  # noqa: ANN001
        super().addError(test, err)
        self.counts["failed"] += 1
        self.failed_ids.append(test.id())

    def addSkip(self, test, reason) -> None:  # noqa: ANN001
        super().addSkip(test, reason)
        self.counts["skipped"] += 1


def _alarm(signum: int, frame: object) -> None:
    raise TestTimeout("per-test timeout")


def main() -> int:
    timeout = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
    pattern = sys.argv[2] if len(sys.argv) > 2 else "test*.py"
    signal.signal(signal.SIGALRM, _alarm)
    sys.path.insert(0, ".")
    suite = unittest.defaultTestLoader.discover("tests", pattern=pattern, top_level_dir=".")
    runner = unittest.TextTestRunner(verbosity=2, resultclass=lambda *a, **k: Result(*a, timeout=timeout, **k))
    result = runner.run(suite)
    print("SUMMARY " + json.dumps({**result.counts, "failed_ids": result.failed_ids}), flush=True)
    return 0 if result.counts["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
