"""Debian's chromium driven by playwright's Python API (never a browser playwright downloads itself).

Playwright's sync API runs in a worker thread (`trio.to_thread.run_sync`); the thread reaches the test's
Trio side (real clients, the hub) with `trio.from_thread.run`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

CHROMIUM = os.environ.get("HUB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]
VIEWPORT = {"width": 1280, "height": 860}


def require_chromium() -> None:
    """Skip where the machine has no chromium or playwright (CI installs both: `make test`); fail in CI."""
    missing = []
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)) and not shutil.which(CHROMIUM):
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("playwright (pip install -e '.[test]')")
    if missing:
        message = "browser tests need " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@dataclass
class Browser:
    """One page of a fresh browser context, with every console error and page error it reports."""

    page: Any
    errors: list[str] = field(default_factory=list)

    def console_errors(self) -> list[str]:
        return list(self.errors)


@contextmanager
def open_browser(base_url: str) -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(base_url=base_url, viewport=VIEWPORT)
            page = context.new_page()
            page.set_default_timeout(10_000)
            result = Browser(page)
            page.on("console", lambda m: result.errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: result.errors.append(f"page error: {e}"))
            yield result
            context.close()
        finally:
            browser.close()
