"""Logging an operator can read: text or JSON lines, and repeated errors rate-limited per cause."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from typing import IO, Any

INTERVAL = 10.0  # a rate-limited cause logs at most one line per this many seconds

# LogRecord attributes that are not "fields" of a JSON line.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


class RateLimiter:
    """At most one line per `interval` seconds per cause; the next line that gets through says how many
    were held back since the last one ("... (12 more in the last 10 s)"). Never a traceback."""

    def __init__(self, interval: float = INTERVAL, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self._causes: dict[str, tuple[float, int]] = {}

    def __call__(self, logger: logging.Logger, level: int, cause: str, msg: str, *args: Any) -> bool:
        """Log `msg % args` unless `cause` logged less than `interval` ago; True if it was logged."""
        now = self.clock()
        last, held = self._causes.get(cause, (None, 0))
        if last is not None and now - last < self.interval:
            self._causes[cause] = (last, held + 1)
            return False
        if held:
            msg += " (%d more in the last %g s)"
            args = (*args, held, self.interval)
        self._causes[cause] = (now, 0)
        logger.log(level, msg, *args, extra={"cause": cause, "repeated": held})
        return True


rate_limited = RateLimiter()


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and any extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in out:
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def formatter(fmt: str) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT)


def configure(level: str = "info", fmt: str = "text", stream: IO[str] | None = None) -> None:
    """The `hub run` logging set-up: [hub] log_level and log_format (text or json) on stderr."""
    root = logging.getLogger()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(fmt))
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())


def set_format(fmt: str) -> None:
    """Switch the root handlers to `fmt` (a live reload of log_format)."""
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter(fmt))
