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


# the page's own boxes: every text in them is measured against what is drawn under it
OWN_BOXES = (".hero", ".model-status", ".model-note", ".plan", ".cpu-note", ".run-status", ".png-note")
OWN_BOXES += (".explain-empty", ".explain-table-wrap", ".series-status", ".grid-caption", ".grid-wrap", ".loop-strip")
OWN_BOXES += (".strength-chart-note", "#strength-chart", ".footer-note")


def rendered(page, selector: str, markup: str) -> None:
    """Put ``markup`` (what the page's own code makes for a state a test cannot reach in time) where ``selector`` is."""
    page.evaluate("([sel, html]) => { document.querySelector(sel).outerHTML = html; }", [selector, markup])


class Contrast:
    """Measures the page in the light and the dark theme (gradio's ``dark`` class on the body, as ``?__theme=dark``
    sets it), keeping what is below 4.5:1 and how many texts each state had."""

    def __init__(self, page):
        self.page, self.failures, self.measured = page, [], {}

    def measure(self, state: str) -> None:
        for theme in ("light", "dark"):
            self.page.evaluate(f"document.body.classList.toggle('dark', {str(theme == 'dark').lower()})")
            # the chart draws its colours for the theme the page loaded in: measured dark on a page loaded dark
            boxes = OWN_BOXES if theme == "light" else tuple(b for b in OWN_BOXES if b != "#strength-chart")
            found = chromium.contrast_failures(self.page, boxes)
            self.measured[f"{state}, {theme}"] = found["measured"]
            self.failures += [{"state": state, "theme": theme, **f} for f in found["failures"]]
        self.page.evaluate("document.body.classList.remove('dark')")


def test_every_text_of_the_pages_own_boxes_reads_in_both_themes(url, browser_context, tmp_path):
    """WCAG AA (4.5:1) for every text node of the page's own boxes, light and dark, in every state: the plan line
    (prompt2img, fine, refused), the run status (running, done, stopped, failed, queued) after a run, a stop and an
    error, the model badge's states, the explain and grid tables, the loopback strip and the strength chart's legend.
    The run is started with Ctrl+Enter in the prompt, as AUTOMATIC1111 and ComfyUI users expect."""
    from playwright.sync_api import expect

    from sd_img2img.engine.backend import ModelStatus
    from sd_img2img.models.families import default_family
    from sd_img2img.ui.html import model_badge, status_html

    page = browser_context.new_page()
    page.goto(url)
    expect(page.locator(".model-status.ready")).to_be_visible(timeout=30_000)
    contrast = Contrast(page)
    contrast.measure("idle, prompt2img plan line")
    page.locator("#init-image input[type=file]").set_input_files(FIREPLACE)
    expect(page.locator("#init-image img").first).to_be_visible(timeout=15_000)
    page.get_by_text("More settings").click()
    set_number(page, "width", 128)
    set_number(page, "height", 128)
    set_number(page, "strength", 0.05)
    expect(page.locator("#plan-line .plan.bad")).to_contain_text("use strength ≥ 0.1", timeout=10_000)
    page.locator("#run").click()  # an error: refused, said in a message
    page.wait_for_timeout(1000)  # the click's refusal (gradio shows it on the event's outputs)
    contrast.measure("refused plan line, after an error")

    set_number(page, "strength", 0.7)
    expect(page.locator("#plan-line")).to_contain_text("7 steps will run", timeout=10_000)
    page.locator("#prompt textarea").fill("a cozy fireplace")
    page.locator("#prompt textarea").press("Control+Enter")  # runs Generate
    expect(page.locator("#run-status")).to_contain_text("7 taken", timeout=60_000)
    assert page.locator("#prompt textarea").input_value() == "a cozy fireplace"  # no new line typed into it
    contrast.measure("done")

    set_number(page, "strength", 1)
    set_number(page, "steps", 150)
    set_number(page, "width", 256)  # long enough to be still running once the measuring is done, on a busy machine
    set_number(page, "height", 256)
    page.locator("#run").click()
    expect(page.locator("#run-status .run-status.running")).to_contain_text(
        re.compile(r"step \d+ of 150"), timeout=60_000
    )
    contrast.measure("running")
    page.locator("#stop").click()
    expect(page.locator("#run-status")).to_contain_text("Stopped", timeout=60_000)
    contrast.measure("stopped")

    # states no run reaches in a test's time: the page's own markup for them, drawn in the page
    family = default_family()
    for state, markup in [
        ("queued", status_html("queued", "Queued · 2 runs ahead of yours, about 40 s", 0.0)),
        ("failed", status_html("failed", "<b>Failed</b> · out of memory on cuda; try a smaller size")),
    ]:
        rendered(page, "#run-status .run-status", markup)
        contrast.measure(f"run status {state}")
    for state in ("idle", "loading", "failed"):
        status = ModelStatus("tiny-sd15", family, state, loading_seconds=12, error="the folder has no model_index.json")
        rendered(page, ".model-status", model_badge(status))
        contrast.measure(f"model badge {state}")
    downloading = ModelStatus("stabilityai/sd-turbo", family, "loading", download="1.2 GB of 5.2 GB (23 %) · 38 MB/s")
    rendered(page, ".model-status", model_badge(downloading))
    contrast.measure("model badge downloading")

    page.locator("#loopback").get_by_text("Loopback").first.click()
    set_number(page, "steps", 4)
    set_number(page, "loops", 2)
    page.locator("#loop-run").click()
    expect(page.locator("#loop-strip figure.loop img")).to_have_count(3, timeout=60_000)  # the start and two loops
    contrast.measure("loopback strip")

    page.get_by_role("tab", name=re.compile("Explain")).click()
    expect(page.locator("#strength-chart svg, #strength-chart canvas").first).to_be_visible(timeout=15_000)
    contrast.measure("explain tab, empty table")
    page.locator("#compare-run").click()
    expect(page.locator("#explain-table tr.row-out td img")).to_have_count(2, timeout=60_000)
    page.locator("#grid-row-values textarea, #grid-row-values input").first.fill("0.5")
    page.locator("#grid-column-values textarea, #grid-column-values input").first.fill("4, 6")
    page.locator("#grid-run").click()
    expect(page.locator("#grid-table .grid-table td img")).to_have_count(2, timeout=60_000)
    contrast.measure("explain table and grid")
    page.close()

    dark = browser_context.new_page()  # the chart draws its legend for the theme the page loads in
    dark.goto(url + "?__theme=dark")
    dark.get_by_role("tab", name=re.compile("Explain")).click()
    expect(dark.locator("#strength-chart svg, #strength-chart canvas").first).to_be_visible(timeout=30_000)
    dark.wait_for_timeout(500)
    found = chromium.contrast_failures(dark, ("#strength-chart", ".strength-chart-note"))
    contrast.measured["strength chart, loaded dark"] = found["measured"]
    contrast.failures += [{"state": "chart loaded dark", **f} for f in found["failures"]]
    dark.close()

    assert not contrast.failures, contrast.failures
    assert all(contrast.measured.values()), contrast.measured  # every state had text to measure
    assert contrast.measured["strength chart, loaded dark"] >= 3  # the legend's and the axes' texts were read
