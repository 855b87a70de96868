"""hub.logs: one line per cause per interval with a count of what was held back; JSON lines."""

from __future__ import annotations

import json
import logging

from hub.logs import JsonFormatter, RateLimiter


def test_rate_limiter_logs_once_per_interval_per_cause_with_a_count(caplog):
    now = [100.0]
    limit = RateLimiter(10.0, clock=lambda: now[0])
    log = logging.getLogger("hub.test")
    caplog.set_level(logging.INFO, logger="hub.test")
    assert limit(log, logging.ERROR, "emfile", "out of file descriptors, %d open", 5)
    for _ in range(243):
        assert not limit(log, logging.ERROR, "emfile", "out of file descriptors, %d open", 5)
    assert limit(log, logging.ERROR, "other", "another cause")
    now[0] += 10.0
    assert limit(log, logging.ERROR, "emfile", "out of file descriptors, %d open", 6)
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["out of file descriptors, 5 open", "another cause",
                        "out of file descriptors, 6 open (243 more in the last 10 s)"]
    assert not any(r.exc_info for r in caplog.records)


def test_json_formatter_one_object_per_line_with_fields():
    record = logging.LogRecord("hub.net", logging.WARNING, __file__, 1, "hello %s", ("world",), None)
    record.cause = "emfile"
    line = JsonFormatter().format(record)
    obj = json.loads(line)
    assert "\n" not in line
    assert obj["level"] == "warning" and obj["logger"] == "hub.net" and obj["message"] == "hello world"
    assert obj["cause"] == "emfile" and obj["time"].endswith("Z")
