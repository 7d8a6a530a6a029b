"""The web demo in a real browser: headless Debian Chromium driven by Playwright, against the app served
in-process with the tiny random checkpoint. Screenshots go to screenshots/ (git-ignored)."""

from __future__ import annotations

import re
from pathlib import Path

import chromium
import pytest
from appserver import ROOT, serve
from chromium import MISSING, SHOTS, available, set_number
from PIL import Image as PILImage

FIREPLACE = str(ROOT / "examples" / "fireplace.png")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not available(), reason=MISSING),
]


@pytest.fixture(scope="module")
def url(engine):
    with serve(engine) as u:
        yield u


@pytest.fixture(scope="module")
def browser_context():
    with chromium.browser_context(viewport={"width": 1280, "height": 800}) as context:
        yield context


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
    expect(page.locator("#plan-line")).to_contain_text(
        "10 steps × strength 0.7 → 7 steps will run (3 skipped)", timeout=10_000
    )

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


@pytest.mark.parametrize("width", [320, 390])
def test_both_tabs_show_on_a_phone(url, browser_context, width):
    """gradio hides tabs that do not fit behind a "⋯" menu; on a phone the Explain tab must stay in sight."""
    from playwright.sync_api import expect

    page = browser_context.new_page()
    page.set_viewport_size({"width": width, "height": 844})
    page.goto(url)
    tabs = page.locator(".main-tabs [role=tab]")
    expect(tabs.filter(has_text="Explain: strength & steps")).to_be_visible(timeout=30_000)
    expect(tabs.filter(has_text="Generate")).to_be_visible()
    assert page.locator(".main-tabs .overflow-menu button:visible").count() == 0
    for box in (tabs.nth(i).bounding_box() for i in range(tabs.count())):
        assert box and box["width"] > 0 and box["x"] + box["width"] <= width  # inside the screen, not cut off
    tabs.filter(has_text="Explain").click()
    expect(page.locator("#compare-run")).to_be_visible()
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


PAYLOAD = "<img src=x onerror=document.title=7>"


def test_a_hostile_prompt_or_png_runs_no_script(url, browser_context, tmp_path):
    """A prompt that the run summary quotes (the long-prompt warning), filled in from someone else's PNG, and a PNG
    whose sampler is markup: the page shows the text as text and runs nothing."""
    from playwright.sync_api import expect

    from sd_img2img.formats.metadata import save_png

    png = tmp_path / "crafted.png"
    save_png(
        PILImage.new("RGB", (64, 64)),
        png,
        {
            "prompt": "fire " * 75 + PAYLOAD,
            "negative_prompt": PAYLOAD,
            "steps": 4,
            "strength": 0.5,
            "seed": 3,
            "sampler": "k_lms",
            "width": 128,
            "height": 128,
        },
    )
    page = browser_context.new_page()
    page.goto(url)
    expect(page.locator(".model-status.ready")).to_be_visible(timeout=30_000)
    title = page.title()
    page.locator("#init-image input[type=file]").set_input_files(FIREPLACE)
    expect(page.locator("#init-image img").first).to_be_visible(timeout=15_000)
    page.get_by_text("Settings from an image").click()
    page.locator("#png-settings input[type=file]").set_input_files(str(png))
    expect(page.locator(".png-note")).to_contain_text("prompt", timeout=15_000)
    expect(page.locator("#prompt textarea")).to_have_value("fire " * 75 + PAYLOAD)

    page.locator("#run").click()
    expect(page.locator("#run-status")).to_contain_text("2 taken", timeout=60_000)
    warning = page.locator("#run-status .warn").first
    expect(warning).to_contain_text("was ignored")
    expect(warning).to_contain_text("onerror=document.title=7")  # shown as text …
    assert page.locator("#run-status img").count() == 0  # … not made into an element
    assert page.title() == title

    # a PNG whose sampler is markup: not put into the form, and the note quotes it as text
    bad = tmp_path / "bad-sampler.png"
    save_png(PILImage.new("RGB", (64, 64)), bad, {"prompt": "fire", "sampler": PAYLOAD, "steps": 4})
    page.close()
    page = browser_context.new_page()
    page.goto(url)
    expect(page.locator(".model-status.ready")).to_be_visible(timeout=30_000)
    page.get_by_text("Settings from an image").click()
    page.locator("#png-settings input[type=file]").set_input_files(str(bad))
    note = page.locator(".png-note")
    expect(note).to_contain_text("Not used: sampler", timeout=15_000)
    expect(note).to_contain_text("onerror=document.title=7")
    assert note.locator("img").count() == 0

    # an error message that quotes a visitor's value shows it as text
    page.get_by_role("tab", name=re.compile("Explain")).click()
    page.locator("#compare-values textarea, #compare-values input").first.fill("<img/src=x/onerror=document.title=7>")
    page.locator("#compare-run").click()
    toast = page.locator("[data-testid=toast-text]").first
    expect(toast).to_contain_text("is not a number", timeout=30_000)
    expect(toast).to_contain_text("onerror=document.title=7")
    assert toast.locator("img").count() == 0
    page.wait_for_timeout(500)
    assert page.title() == title
    page.close()


def test_a_jpeg_and_a_64_bit_seed_on_the_page(url, browser_context, tmp_path):
    """ "Settings from an image" takes AUTOMATIC1111's JPEG (its EXIF UserComment) and fills the seed box with all its
    digits; a 19-digit seed typed there runs as it is: the status line, the run info and the PNG show the same digits
    (a number box would round it: a browser's numbers are exact only to 2⁵³ − 1)."""
    from playwright.sync_api import expect
    from tool_images import USER_COMMENT, exif_block, jpeg_with_exif

    from sd_img2img.formats.metadata import read_settings

    comment = "fire\nSteps: 4, Sampler: Euler, CFG scale: 7, Seed: 18446744073709551557, Size: 64x64"
    jpeg = jpeg_with_exif(
        tmp_path / "a1111.jpg", exif_block({USER_COMMENT: b"UNICODE\0" + comment.encode("utf-16-be")})
    )
    page = browser_context.new_page()
    page.goto(url)
    expect(page.locator(".model-status.ready")).to_be_visible(timeout=30_000)
    page.locator("#init-image input[type=file]").set_input_files(FIREPLACE)
    expect(page.locator("#init-image img").first).to_be_visible(timeout=15_000)
    page.get_by_text("Settings from an image").click()
    page.locator("#png-settings input[type=file]").set_input_files(str(jpeg))
    expect(page.locator(".png-note")).to_contain_text("AUTOMATIC1111 settings in the JPEG EXIF UserComment")
    seed_box = page.locator("#seed input, #seed textarea").first
    expect(seed_box).to_have_value("18446744073709551557")

    seed_box.fill("9876543210987654321")  # typed, as a visitor does
    set_number(page, "strength", 0.5)
    page.locator("#run").click()
    expect(page.locator("#run-status")).to_contain_text("seed 9876543210987654321", timeout=60_000)
    page.get_by_text("Run info").click()
    expect(page.locator("#run-info")).to_contain_text("9876543210987654321")
    with page.expect_download() as download:
        page.locator("#download").click()
    assert read_settings(download.value.path())["seed"] == 9876543210987654321
    page.screenshot(path=str(SHOTS / "desktop-64-bit-seed.png"), full_page=True)
    page.close()
