"""The Explain tab's "Where do they part?" in a real browser (headless Debian Chromium driven by Playwright), desktop
and phone, against the app served in-process with the tiny random checkpoint: the guide's comparison by default, both
runs' steps aligned with σ under each, the difference maps, the chart with the parting step, the sentence, the preset.
Screenshots go to screenshots/ (git-ignored)."""

from __future__ import annotations

import re

import pytest
from appserver import serve
from chromium import MISSING, SHOTS, available, browser_context, set_number

VIEWPORTS = {"desktop": (1280, 800), "phone": (390, 844)}

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not available(), reason=MISSING)]


@pytest.fixture(scope="module")
def url(engine):
    with serve(engine) as u:
        yield u


@pytest.fixture(scope="module")
def context():
    with browser_context() as ctx:
        yield ctx


def overflow(page) -> int:
    return page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")


@pytest.mark.parametrize("view", list(VIEWPORTS))
def test_where_do_they_part_in_chromium(url, context, view):
    from playwright.sync_api import expect

    width, height = VIEWPORTS[view]
    page = context.new_page()
    page.set_viewport_size({"width": width, "height": height})
    page.goto(url + ("?__theme=dark" if view == "phone" else ""))
    expect(page.locator(".model-status.ready")).to_be_visible(timeout=30_000)
    page.get_by_role("tab", name=re.compile("Explain")).click()
    cost = page.locator("#diverge-cost")
    expect(cost).to_contain_text("two runs, 21 + 20 = 41 steps")  # the guide's: int(30 × 0.7) + int(29 × 0.7)
    expect(page.locator("#diverge-seed input")).to_have_value("1592514025")
    for side in ("width", "height"):  # small pictures: quick runs
        set_number(page, f"diverge-{side}", 128)
    page.locator("#diverge-run").click()

    view_ = page.locator("#diverge-view")
    expect(view_.locator(".diverge-sentence")).to_contain_text(
        re.compile(r"30 and 29 steps (part at step \d+ \(σ [\d.]+\)|never part)"), timeout=60_000
    )
    table = view_.locator("table.diverge-table")
    expect(table.locator("thead th")).to_have_count(1 + 21)  # one column per step of the 29-step run, and step 0
    expect(table.locator("tbody tr")).to_have_count(3)
    expect(table.locator("td img")).to_have_count(3 * 21)
    captions = table.locator("tbody tr").nth(1).locator("td small")
    expect(captions.first).to_have_text("step 0 · σ 2.71")
    sigmas = [float(t.rsplit("σ ", 1)[1]) for t in captions.all_inner_texts()]
    assert sigmas == sorted(sigmas, reverse=True) and sigmas[-1] == 0.0  # σ falls along the columns
    chart = page.locator("#diverge-chart")
    expect(chart.locator(".mark-line path").first).to_be_attached(timeout=15_000)  # vega drew the lines
    expect(chart.locator(".mark-line path")).to_have_count(
        3 if "part at" in view_.locator(".diverge-sentence").inner_text() else 2
    )
    assert overflow(page) <= 0, f"the page is wider than the {width}px screen"
    view_.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / f"{view}-diverge.png"), full_page=True)

    if view == "desktop":
        page.locator("#diverge-strengths").click()  # the guide's other comparison
        expect(page.locator("#diverge-a input, #diverge-a textarea").first).to_have_value("0.4")
        expect(page.locator("#diverge-b input, #diverge-b textarea").first).to_have_value("0.7")
        expect(cost).to_contain_text("two runs, 20 + 20 = 40 steps", timeout=10_000)
        title = page.title()
        box = page.locator("#diverge-a textarea, #diverge-a input").first
        box.fill("<img/src=x/onerror=document.title=7>")
        box.blur()
        expect(cost).to_contain_text("is not a number", timeout=10_000)
        assert cost.locator("img").count() == 0 and page.title() == title
    page.close()
