"""LoRAs on the page and through the API: the starter lists them; visitors switch them and set their scale (the
``loras`` parameter, ``name:scale, …``), nothing else; a PNG's LoRAs fill the sliders."""

from __future__ import annotations

import numpy as np
import pytest
from appserver import ROOT, serve
from chromium import MISSING, available
from PIL import Image

FIREPLACE = str(ROOT / "examples" / "fireplace.png")


@pytest.fixture(scope="module")
def url(tiny_checkpoint, tiny_taesd, tmp_path_factory):
    from builders import build_lora

    from sd_img2img.engine import Engine

    lora = build_lora(tiny_checkpoint, tmp_path_factory.mktemp("loras") / "detail.safetensors", "kohya")
    engine = Engine(str(tiny_checkpoint), device="cpu", dtype="float32", taesd=str(tiny_taesd), loras=[f"{lora}:0.7"])
    with serve(engine) as u:
        yield u


def run(client, **kw):
    from gradio_client import handle_file

    args = dict(
        image=handle_file(FIREPLACE),
        prompt="fire",
        negative_prompt="",
        strength=0.6,
        steps=5,
        seed=11,
        width=64,
        height=64,
    )
    args.update(kw)
    output, _, info, *_ = client.predict(**args, api_name="/img2img")
    return np.asarray(Image.open(output)), info


def test_visitors_switch_listed_loras_and_set_their_scale(url):
    from gradio_client import Client

    client = Client(url, verbose=False)
    default, info = run(client)  # the page's starting text: the LoRA at its start-up scale
    assert info["loras"] == {"detail": 0.7}
    off, info = run(client, loras="detail:0")
    assert "loras" not in info or not info["loras"]
    stronger, info = run(client, loras="detail:1.5")
    assert info["loras"] == {"detail": 1.5}
    assert not np.array_equal(default, off) and not np.array_equal(default, stronger)
    again, _ = run(client, loras="detail:0.7")
    assert np.array_equal(again, default)
    with pytest.raises(Exception, match="unknown LoRA 'other'; the listed LoRAs are: detail"):
        run(client, loras="other:1")
    with pytest.raises(Exception, match="LoRA scale 'lots' of 'detail' is not a number"):
        run(client, loras="detail:lots")


@pytest.mark.browser
@pytest.mark.skipif(not available(), reason=MISSING)
def test_lora_slider_and_a_pngs_loras_in_chromium(url, tmp_path):
    from chromium import ARGS, CHROMIUM, SHOTS, set_number
    from playwright.sync_api import expect, sync_playwright

    from sd_img2img.formats.metadata import save_png

    png = tmp_path / "with-lora.png"
    save_png(Image.new("RGB", (64, 64)), png, {"prompt": "fire", "steps": 5, "loras": {"detail": 1.25, "gone": 1}})
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url)
        expect(page.locator(".model-status.ready")).to_be_visible(timeout=60_000)
        page.get_by_text("LoRAs", exact=True).click()
        expect(page.locator("#lora-0")).to_contain_text("detail")
        page.get_by_text("Settings from an image").click()
        page.locator("#png-settings input[type=file]").set_input_files(str(png))
        expect(page.locator(".png-note")).to_contain_text("Not used: LoRA 'gone'", timeout=15_000)
        expect(page.locator("#lora-0 input[type=number]")).to_have_value("1.25", timeout=10_000)
        page.locator("#init-image input[type=file]").set_input_files(FIREPLACE)
        expect(page.locator("#init-image img").first).to_be_visible(timeout=15_000)
        set_number(page, "lora-0", 0)  # the visitor switches it off
        set_number(page, "strength", 0.6)
        page.locator("#run").click()
        expect(page.locator("#run-status")).to_contain_text("taken", timeout=60_000)
        page.get_by_text("Run info").click()
        expect(page.locator("#run-info")).not_to_contain_text('"detail"')
        page.screenshot(path=str(SHOTS / "desktop-loras.png"), full_page=True)
        browser.close()
