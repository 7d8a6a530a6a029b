"""The demo serving an SD, a FLUX and an edit model (FLUX.1 Kontext): what strength means on each (the plan line, the
strength chart, the explain table's noise row), no strength slider for the edit model, its gallery's reference image
beside step 0 (pure noise), and Compare models putting the three side by side; through gradio_client and in
Chromium (screenshots desktop and phone in screenshots/)."""

from __future__ import annotations

import re

import pytest
from appserver import ROOT, serve
from chromium import MISSING, available

FIREPLACE = str(ROOT / "examples" / "fireplace.png")
NAMES = ("random", "random-flux", "random-kontext")


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    from sd_img2img.engine.model_set import ModelSet

    models = ModelSet(
        list(NAMES), device="cpu", dtype="float32", cache=tmp_path_factory.mktemp("random-models"), max_loaded=3
    )
    with serve(models) as u:
        yield u


def test_strength_chart_rows_come_from_each_models_schedule():
    from sd_img2img.engine.backend import LocalBackend
    from sd_img2img.engine.model_set import ModelSet
    from sd_img2img.settings import AppSettings
    from sd_img2img.ui.page import Page
    from sd_img2img.ui.strength_chart import chart_rows

    page = Page(LocalBackend(ModelSet(list(NAMES), device="cpu")), AppSettings())  # nothing built or loaded
    rows, settings = chart_rows(page)
    curves = {m: {r["strength"]: r["kept"] for r in rows if r["model"] == m} for m in ("SD", "FLUX.1-dev")}
    kontext = [r["kept"] for r in rows if r["model"] == "FLUX.1 Kontext"]
    assert len(kontext) == 20 and set(kontext) == {0.0}  # a reference: none of the image, whatever the strength
    assert 0.05 not in curves["SD"] and curves["SD"][0.1] > 99  # int(10 × 0.05) = 0 steps; at 0.1 one last step
    assert curves["FLUX.1-dev"][0.5] < curves["SD"][0.5] - 30  # the same strength noises FLUX far more
    assert all(a >= b for a, b in zip(list(curves["SD"].values()), list(curves["SD"].values())[1:]))
    assert settings[1] == "FLUX.1-dev: flow_euler, 10 steps, 1024×1024"  # the CPU page's steps


def test_compare_models_puts_an_edit_model_beside_strength_models(url):
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False)
    table, infos = client.predict(
        image=handle_file(FIREPLACE),
        prompt="fire",
        negative_prompt="",
        compare_by="model",
        values=", ".join(NAMES),
        steps=4,
        strength=0.3,
        seed=5,
        width=128,
        height=128,
        api_name="/compare",
    )
    assert [i["steps_taken"] for i in infos] == [1, 2, 4]
    assert [i["strength"] for i in infos] == [0.3, 0.3, None]
    assert [i["noise_level"]["kind"] for i in infos] == ["k", "flow", "reference"]
    assert "FLUX.1 Kontext: all 4 from pure noise (the image is a reference)" in table
    assert "σ = 1 · a reference: 0 % mixed in" in table and "where the image enters" in table
    flux = infos[1]["noise_level"]
    assert f"σ = {flux['sigma']:.2f} · {flux['image_kept'] * 100:.0f} % kept" in table
    assert any("FLUX.1 Kontext takes no strength" in w and "0.3 was ignored" in w for w in infos[2]["warnings"])


@pytest.mark.browser
@pytest.mark.skipif(not available(), reason=MISSING)
def test_strength_chart_edit_model_and_compare_models_in_chromium(url):
    from chromium import ARGS, CHROMIUM, SHOTS, set_number
    from playwright.sync_api import expect, sync_playwright

    SHOTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(url)
        expect(page.locator(".model-status.ready")).to_be_visible(timeout=60_000)
        page.locator("#init-image input[type=file]").set_input_files(FIREPLACE)
        expect(page.locator("#init-image img").first).to_be_visible(timeout=15_000)
        page.locator("#prompt textarea").fill("fire")

        pick(page, "random-flux")  # a strength model: the plan line says where the image enters
        expect(page.locator("#plan-line")).to_contain_text(re.compile(r"the image enters at σ = 0\.\d\d \(\d+ % of it"))
        expect(page.locator("#strength")).to_be_visible()
        pick(page, "random-kontext")  # an edit model: no strength slider, its image is a reference
        expect(page.locator("#plan-line")).to_contain_text(
            "FLUX.1 Kontext: your image is a reference, not a starting point — all 10 steps run from pure noise"
        )
        expect(page.locator("#strength")).to_be_hidden()
        set_number(page, "steps", 3)
        page.locator("#run").click()
        gallery = page.locator("#steps-gallery")
        expect(gallery.locator("img")).to_have_count(5, timeout=60_000)  # the reference, step 0, 3 steps
        expect(gallery).to_contain_text("your image · the reference")
        expect(gallery).to_contain_text("step 0 · pure noise")
        expect(page.locator("#output img")).to_be_visible(timeout=60_000)
        expect(page.locator("#run-status")).to_contain_text("3 taken · your image as a reference")
        page.screenshot(path=str(SHOTS / "desktop-edit-model.png"), full_page=True)

        page.get_by_role("tab", name=re.compile("Explain")).click()
        chart = page.locator("#strength-chart")
        expect(chart.locator("svg")).to_be_visible(timeout=15_000)
        for label in ("SD", "FLUX.1-dev", "FLUX.1 Kontext"):  # the legend: one line per model
            expect(chart.locator("svg text", has_text=re.compile(f"^{re.escape(label)}$"))).to_have_count(1)
        page.locator("#compare-by label", has_text="Compare models").click()
        set_number(page, "compare-steps", 4)
        set_number(page, "compare-strength", 0.3)
        page.locator("#compare-run").click()
        table = page.locator("#explain-table table.explain-table")
        expect(table.locator("tr.row-out td img")).to_have_count(3, timeout=120_000)
        assert [n.strip() for n in table.locator("tr.row-taken .num").all_inner_texts()] == ["1", "2", "4"]
        expect(table.locator("tr.row-noise")).to_contain_text("a reference: 0 % mixed in")
        page.screenshot(path=str(SHOTS / "desktop-strength-chart-compare.png"), full_page=True)
        page.set_viewport_size({"width": 390, "height": 844})
        expect(chart.locator("svg")).to_have_attribute("width", re.compile(r"^[1-3]\d\d$"), timeout=10_000)  # redrawn
        page.screenshot(path=str(SHOTS / "phone-strength-chart-compare.png"), full_page=True)
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"the page is {overflow}px wider than a 390px phone"
        browser.close()


def pick(page, name: str) -> None:
    page.locator("#model input").click()
    page.get_by_role("option", name=re.compile(re.escape(name))).click()
