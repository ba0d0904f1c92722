"""Headless Chromium for the console's tests and benchmark, through Playwright.

Debian's ``chromium`` is used (Playwright's own browser download is not needed); tests
skip with the reason when either is missing.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def missing() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright; it is in the dev extra)"
    if chromium_path() is None:
        return "no Chromium on PATH (Debian: apt-get install chromium)"
    return None


@contextmanager
def browser_context(**options: Any) -> Iterator[Any]:
    """A fresh persistent context (its own user-data-dir), closed and removed after."""
    from playwright.sync_api import sync_playwright

    with (
        tempfile.TemporaryDirectory(prefix="console-chromium-") as profile,
        sync_playwright() as pw,
    ):
        context = pw.chromium.launch_persistent_context(
            profile,
            executable_path=chromium_path(),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1400, "height": 900},
            accept_downloads=True,
            **options,
        )
        try:
            yield context
        finally:
            context.close()
