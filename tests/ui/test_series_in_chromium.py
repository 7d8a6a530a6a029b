"""The steps' animation, loopback and the strength × steps grid in a real browser (headless Debian Chromium driven by
Playwright), desktop and phone, against the app served in-process with the tiny random checkpoint. Screenshots go to
screenshots/ (git-ignored)."""

from __future__ import annotations

import io
import re

import pytest
from appserver import ROOT, serve
from chromium import MISSING, SHOTS, available, browser_context, set_number
from PIL import Image

FIREPLACE = str(ROOT / "examples" / "fireplace.png")
VIEWPORTS = {"desktop": (1280, 800), "phone": (390, 844)}

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not available(), reason=MISSING),
]


@pytest.fixture(scope="module")
def url(engine):
    with serve(engine) as u:
        yield u


@pytest.fixture(scope="module")
def context():
    with browser_context() as ctx:
        yield ctx


def fill(page, elem_id: str, text: str) -> None:
    box = page.locator(f"#{elem_id} textarea, #{elem_id} input").first
    box.fill(text)
    box.blur()


def frames_shown(page, selector: str) -> int:
    """The frames of the animation an <img> on the page shows, fetched as the browser got it and read with Pillow."""
    src = page.locator(selector).first.get_attribute("src")
    with Image.open(io.BytesIO(page.request.get(src).body())) as anim:
        return anim.n_frames


WIDE = """[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().width > innerWidth + 2
    && [...e.children].every(c => c.getBoundingClientRect().width <= innerWidth + 2))
    .map(e => (e.id || String(e.className).slice(0, 40) || e.tagName) + ': ' + Math.round(e.getBoundingClientRect().width))"""


def no_overflow(page, width: int, where: str) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{where}: the page is {overflow}px wider than the {width}px screen: {page.evaluate(WIDE)}"


@pytest.mark.parametrize("view", list(VIEWPORTS))
def test_animation_loopback_and_grid_in_chromium(url, context, view):
    from playwright.sync_api import expect

    width, height = VIEWPORTS[view]
    page = context.new_page()
    page.set_viewport_size({"width": width, "height": height})
    page.goto(url)
    expect(page.locator(".model-status.ready")).to_be_visible(timeout=30_000)
    page.locator("#init-image input[type=file]").set_input_files(FIREPLACE)
    expect(page.locator("#init-image img").first).to_be_visible(timeout=15_000)
    page.locator("#prompt textarea").fill("a cozy fireplace, oil painting")
    set_number(page, "strength", 0.7)
    set_number(page, "steps", 10)
    page.get_by_text("More settings").click()  # small pictures: quick runs
    for side in ("Width", "Height"):
        box = page.get_by_label(side, exact=True)
        box.fill("128")
        box.blur()
    page.locator("#run").click()

    # the steps as an animation: beside the result, 8 frames, downloadable next to the PNG, its size stated
    expect(page.locator("#run-status")).to_contain_text("7 taken", timeout=60_000)
    expect(page.locator("#run-status")).to_contain_text("animation WebP · 8 frames")
    expect(page.locator("#animation img").first).to_be_visible(timeout=15_000)
    assert frames_shown(page, "#animation img") == 8
    expect(page.locator("#download-animation")).to_be_visible()
    no_overflow(page, width, "after a run")
    page.screenshot(path=str(SHOTS / f"{view}-animation.png"), full_page=True)
    if view == "desktop":  # the predicted-image view animates x0
        page.locator("#view label", has_text="Predicted image").click()
        expect(page.locator("#animation img").first).to_have_attribute("src", re.compile(r"steps-x0\.webp"))
        assert frames_shown(page, "#animation img") == 8

    # loopback: the curve as numbers before it runs, then the strip of loops and their animation
    page.locator("#loopback").get_by_text("Loopback").first.click()
    set_number(page, "strength", 0.5)
    set_number(page, "final-strength", 0.3)
    expect(page.locator("#loop-curve")).to_contain_text("3 loops, strength 0.5 → 0.4 → 0.3 (linear) · 5 + 4 + 3 = 12")
    page.locator("#loop-run").click()
    strip = page.locator("#loop-strip")
    expect(strip).to_contain_text("Done: 3 loops · 12 steps taken", timeout=60_000)
    expect(strip.locator("figure img")).to_have_count(4)  # the initial image, then each loop
    expect(strip.locator("figcaption b")).to_have_text(["5", "4", "3"])
    expect(page.locator("#loop-animation img").first).to_be_visible(timeout=15_000)
    assert frames_shown(page, "#loop-animation img") == 4
    no_overflow(page, width, "after loopback")
    strip.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / f"{view}-loopback.png"), full_page=True)

    # the grid: 2 strengths × 3 step counts, its cost before it runs, 6 cells with the steps each took
    set_number(page, "strength", 0.7)  # (the Generate tab's; the grid's rows set their own)
    page.get_by_role("tab", name=re.compile("Explain")).click()
    fill(page, "grid-column-values", "10, 20, 30")
    expect(page.locator("#grid-cost")).to_contain_text("this grid runs 66 steps in 6 cells · about ", timeout=10_000)
    page.locator("#grid-run").click()
    table = page.locator("#grid-table table.grid-table")
    expect(table.locator("td img")).to_have_count(6, timeout=60_000)
    expect(table.locator(".taken b")).to_have_text(["4", "8", "12", "7", "14", "21"])
    expect(table.locator("tbody th").first).to_contain_text("SD: int(N × 0.4) of N run")
    no_overflow(page, width, "after the grid")
    table.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / f"{view}-grid.png"), full_page=True)

    # what a visitor types is shown as text
    title = page.title()
    fill(page, "grid-row-values", "<img/src=x/onerror=document.title=7>")
    expect(page.locator("#grid-cost")).to_contain_text("is not a number", timeout=10_000)
    assert page.locator("#grid-cost img").count() == 0 and page.title() == title
    page.close()
