"""The web demo in a real browser: headless Debian Chromium driven by Playwright, against the app served
in-process with the tiny random checkpoint. Screenshots go to screenshots/ (git-ignored)."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pytest
from appserver import ROOT, serve

CHROMIUM = "/usr/bin/chromium"
SHOTS = ROOT / "screenshots"
FIREPLACE = str(ROOT / "examples" / "fireplace.png")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def url(engine):
    with serve(engine) as u:
        yield u


@pytest.fixture(scope="module")
def browser_context():
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile, sync_playwright() as p:
        context = p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, args=ARGS, headless=True,
                                                       viewport={"width": 1280, "height": 800})
        try:
            yield context
        finally:
            context.close()


def set_number(page, elem_id: str, value) -> None:
    box = page.locator(f"#{elem_id} input[type=number]").first
    box.fill(str(value))
    box.press("Enter")
    box.blur()


def test_generate_and_explain_in_chromium(url, browser_context):
    from playwright.sync_api import expect

    page = browser_context.new_page()
    page.goto(url)
    expect(page.locator(".model-status.ready")).to_be_visible(timeout=30_000)

    page.locator("#init-image input[type=file]").set_input_files(FIREPLACE)
    expect(page.locator("#init-image img").first).to_be_visible(timeout=15_000)
    page.locator("#prompt textarea").fill("a cozy fireplace with a roaring fire, oil painting")
    set_number(page, "strength", 0.7)
    set_number(page, "steps", 10)
    expect(page.locator("#plan-line")).to_contain_text("10 steps × strength 0.7 → 7 steps will run (3 skipped)",
                                                       timeout=10_000)

    page.locator("#run").click()
    expect(page.locator("#run-status")).to_contain_text("7 taken", timeout=60_000)
    thumbs = page.locator("#steps-gallery .thumbnail-item img, #steps-gallery .grid-wrap img")
    expect(thumbs).to_have_count(8, timeout=10_000)
    expect(page.locator("#output img").first).to_be_visible()
    page.screenshot(path=str(SHOTS / "desktop-generate.png"), full_page=True)

    page.locator("#view label", has_text="Predicted image").click()  # the other view, after the run
    expect(thumbs).to_have_count(8, timeout=20_000)

    page.get_by_role("tab", name=re.compile("Explain")).click()
    page.locator("#compare-run").click()
    table = page.locator("#explain-table table.explain-table")
    expect(table.locator("tr.row-out td img")).to_have_count(2, timeout=60_000)
    expect(table.locator("tr.row-taken")).to_contain_text("4")
    expect(table.locator("tr.row-taken")).to_contain_text("7")
    expect(table.locator("thead")).to_contain_text("strength 0.4")
    page.screenshot(path=str(SHOTS / "desktop-explain.png"), full_page=True)
    page.close()


def test_phone_layout(url, browser_context):
    from playwright.sync_api import expect

    page = browser_context.new_page()
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(url)
    expect(page.locator("#run")).to_be_visible(timeout=30_000)
    page.locator("#init-image input[type=file]").set_input_files(FIREPLACE)
    page.locator("#prompt textarea").fill("fire")
    set_number(page, "steps", 10)
    set_number(page, "strength", 0.7)
    expect(page.locator("#plan-line")).to_contain_text("7 steps will run", timeout=10_000)
    page.locator("#run").click()
    expect(page.locator("#run-status")).to_contain_text("7 taken", timeout=60_000)
    # nothing spills sideways on a phone
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    page.screenshot(path=str(SHOTS / "phone-generate.png"), full_page=True)
    wide = page.evaluate("""[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().width > 392
        && [...e.children].every(c => c.getBoundingClientRect().width <= 392))
        .map(e => (e.id || String(e.className).slice(0, 40) || e.tagName) + ' in ' + (e.parentElement.id ||
        String(e.parentElement.className).slice(0, 40)) + ': ' + Math.round(e.getBoundingClientRect().width))""")
    assert overflow <= 0, f"the page is {overflow}px wider than a 390px phone: {wide}"
    page.get_by_role("tab", name=re.compile("Explain")).click()
    page.screenshot(path=str(SHOTS / "phone-explain.png"), full_page=True)
    page.close()
    assert Path(SHOTS / "phone-generate.png").stat().st_size > 10_000
