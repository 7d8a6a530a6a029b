"""Inpainting in a real browser (headless Debian Chromium via Playwright, the app served in-process on the tiny
checkpoint), on a desktop and on a phone: paint a mask on the Inpaint tab, run, and see every step's mask outline and
the masked region change in the gallery while the rest holds. Screenshots go to screenshots/ (git-ignored)."""

from __future__ import annotations

import io

import chromium
import numpy as np
import pytest
from appserver import ROOT, serve
from chromium import MISSING, SHOTS, available, set_number
from PIL import Image, ImageFilter

from sd_img2img.config import MASK_OUTLINE

FIREPLACE = str(ROOT / "examples" / "fireplace.png")

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not available(), reason=MISSING)]


@pytest.fixture(scope="module")
def url(engine):
    with serve(engine) as u:
        yield u


@pytest.fixture(scope="module")
def small_fireplace(tmp_path_factory):
    """The example fireplace at 256 px (a quick run)."""
    path = tmp_path_factory.mktemp("inpaint-browser") / "fireplace.png"
    Image.open(FIREPLACE).convert("RGB").resize((256, 256), Image.Resampling.LANCZOS).save(path)
    return str(path)


@pytest.fixture(scope="module")
def browser_context():
    with chromium.browser_context(viewport={"width": 1280, "height": 900}) as context:
        yield context


def paint(page, selector: str) -> None:
    """Two brush strokes across the middle of the editor's canvas, as a visitor drags the mouse (gradio's editor sends
    each input event with the strokes before it: the plan line follows from the second stroke on)."""
    box = page.locator(f"{selector} canvas").first.bounding_box()
    for row in (0.42, 0.5):
        x, y = box["x"] + box["width"] * 0.35, box["y"] + box["height"] * row
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.move(x + box["width"] * 0.15, y + box["height"] * 0.03, steps=2)  # few moves: each redraws it
        page.mouse.move(x + box["width"] * 0.3, y, steps=2)
        page.mouse.up()


def picture(page, src: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(page.request.get(src).body())).convert("RGB"), dtype=int)


@pytest.mark.parametrize("width", [1280, 390])
def test_paint_a_mask_run_and_see_it_in_every_step(url, browser_context, small_fireplace, width):
    """Done-when: in Chromium, on a desktop and on a phone, paint a mask, run, and see the outline and the region
    change in the gallery."""
    from playwright.sync_api import expect

    page = browser_context.new_page()
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(url)
    expect(page.locator(".model-status.ready")).to_be_visible(timeout=30_000)
    page.locator("#init-image input[type=file]").set_input_files(small_fireplace)
    expect(page.locator("#init-image img").first).to_be_visible(timeout=15_000)
    page.locator("#prompt textarea").fill("a cozy fireplace")
    set_number(page, "steps", 4)
    set_number(page, "strength", 0.5)
    page.get_by_role("tab", name="Inpaint").click()
    expect(page.locator("#inpaint-editor canvas").first).to_be_visible(timeout=15_000)
    for attempt in range(3):  # as a visitor does when a stroke went nowhere (the picture still going under the brush
        page.wait_for_timeout(800)  # on a busy machine), the same strokes again
        paint(page, "#inpaint-editor")
        try:
            expect(page.locator("#plan-line")).to_contain_text("the rest is kept", timeout=10_000)
            break
        except AssertionError:
            if attempt == 2:
                raise
    assert "the masked" in page.locator("#plan-line").inner_text()
    page.locator("#run").click()
    expect(page.locator("#run-status")).to_contain_text("2 taken", timeout=90_000)
    thumbs = page.locator("#steps-gallery .thumbnail-item img, #steps-gallery .grid-wrap img")
    expect(thumbs).to_have_count(3, timeout=15_000)
    expect(page.locator("#steps-gallery")).to_contain_text("step 0 · the masked region noised")
    page.screenshot(path=str(SHOTS / f"inpaint-{'phone' if width < 600 else 'desktop'}.png"), full_page=True)
    sources = thumbs.evaluate_all("images => images.map(image => image.src)")
    first, last = picture(page, sources[0]), picture(page, sources[-1])
    page.close()
    init = np.asarray(Image.open(small_fireplace).convert("RGB").resize(first.shape[1::-1], Image.Resampling.LANCZOS))
    light = np.array(MASK_OUTLINE[0])
    for step in (first, last):  # the outline's light ring, where the picture is another colour (WebP moves it a little)
        ring = (np.abs(step - light).max(axis=2) <= 12) & (np.abs(init - light).max(axis=2) > 20)
        assert ring.mean() > 0.005, ring.mean()
    changed = np.abs(first - last).max(axis=2) > 40
    assert 0.0005 < changed.mean() < 0.4  # the masked region changes from step 0 to the last (a busy page may
    # take fewer of the strokes' points) …
    assert np.abs(first - last)[~dilated(changed)].mean() < 6  # … and the rest holds


def dilated(mask: np.ndarray, by: int = 6) -> np.ndarray:
    """``mask`` grown by ``by`` pixels (the outline and the picture's soft edges around the changed region)."""
    image = Image.fromarray((mask * 255).astype(np.uint8))
    return np.asarray(image.filter(ImageFilter.MaxFilter(2 * by + 1))) > 0
