"""Debian's Chromium driven by Playwright, as every browser test and the screenshot script launch it: the path, the
flags this machine's closed network needs, a persistent context in a throw-away profile, and typing into a number."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = Path(__file__).resolve().parents[1] / "screenshots"  # git-ignored
MISSING = f"{CHROMIUM} is missing (apt-get install chromium)"


def available() -> bool:
    return os.path.exists(CHROMIUM)


@contextmanager
def browser_context(**options):
    """A Chromium context in a new empty profile (``options``: Playwright's, e.g. ``viewport``)."""
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile, sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=ARGS, headless=True, **options
        )
        try:
            yield context
        finally:
            context.close()


def set_number(page, elem_id: str, value) -> None:
    """Type ``value`` into the number box of the component ``elem_id``, as a visitor does."""
    box = page.locator(f"#{elem_id} input[type=number]").first
    box.fill(str(value))
    box.press("Enter")
    box.blur()
