"""The demo serving several model families at once: visitors choose among the listed models only, each runs by its
family's rules, and the Explain tab's Compare models table states each family's step rule (through gradio_client and
in Chromium)."""

from __future__ import annotations

import re

import pytest
from appserver import ROOT, serve
from chromium import MISSING, available

FIREPLACE = str(ROOT / "examples" / "fireplace.png")
NAMES = ("random", "random-sdxl", "random-flux")


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    from sd_img2img.engine.model_set import ModelSet

    models = ModelSet(
        list(NAMES), device="cpu", dtype="float32", cache=tmp_path_factory.mktemp("random-models"), max_loaded=3
    )
    with serve(models) as u:
        yield u


@pytest.fixture()
def client(url):
    from gradio_client import Client

    return Client(url, verbose=False)


def test_each_listed_model_runs_by_its_family_and_others_are_refused(client):
    from gradio_client import handle_file

    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert "model" in [p["parameter_name"] for p in api["/img2img"]["parameters"]]
    common = dict(image=handle_file(FIREPLACE), prompt="fire", negative_prompt="", seed=3, width=128, height=128)
    sd = client.predict(**common, strength=0.3, steps=4, api_name="/img2img")
    flux = client.predict(**common, strength=0.3, steps=4, model="random-flux", api_name="/img2img")
    assert sd[2]["steps_taken"] == 1 and len(sd[1]) == 2  # SD rounds down: int(4 × 0.3) = 1
    assert flux[2]["steps_taken"] == 2 and len(flux[1]) == 3  # flow matching rounds up: 4 − int(4 − 1.2) = 2
    assert flux[2]["sampler"] == "flow_euler"  # the family's own default sampler
    sdxl = client.predict(**common, strength=0.7, steps=10, model="random-sdxl", sampler="k_euler", api_name="/img2img")
    assert sdxl[2]["steps_taken"] == 7 and "<b>7 taken</b>" in sdxl[4]
    small = "SDXL was trained at 1024×1024; 128×128 is below 512 px, expect poor pictures"  # SDXL at 128 px
    assert small in sdxl[2]["warnings"] and small in sdxl[4]  # in the run info and on the page
    # gradio's Dropdown checks the model against its choices before any handler runs (the page's own check:
    # test_reliability.py::test_the_pages_handlers_refuse_unlisted_models_themselves)
    with pytest.raises(
        Exception,
        match=re.escape("Value: /etc is not in the list of choices: ['random', 'random-sdxl', 'random-flux']"),
    ):
        client.predict(**common, model="/etc", api_name="/img2img")
    with pytest.raises(
        Exception, match="sampler 'k_lms' does not fit FLUX.1-dev checkpoints; choose one of: flow_euler"
    ):
        client.predict(**common, sampler="k_lms", model="random-flux", api_name="/img2img")


def test_compare_models_states_each_family_s_rule(client):
    from gradio_client import handle_file

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
    assert [i["steps_taken"] for i in infos] == [1, 1, 2]
    assert [i["seed"] for i in infos] == [5, 5, 5] and [i["strength"] for i in infos] == [0.3, 0.3, 0.3]
    assert "SD: int(4 × 0.3) = 1" in table and "SDXL: int(4 × 0.3) = 1" in table
    assert "FLUX.1-dev: 4 − int(4 − 4 × 0.3) = 2, rounds up" in table


@pytest.mark.browser
@pytest.mark.skipif(not available(), reason=MISSING)
def test_model_picker_and_compare_models_in_chromium(url):
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

        page.locator("#model input").click()  # the model picker: the family's defaults and rule follow the choice
        page.get_by_role("option", name=re.compile("random-flux")).click()
        expect(page.locator("#plan-line")).to_contain_text(
            "FLUX.1-dev: 10 steps × strength 0.6", timeout=10_000
        )  # CPU page
        set_number(page, "steps", 4)
        set_number(page, "strength", 0.3)
        expect(page.locator("#plan-line")).to_contain_text("4 steps × strength 0.3 → 2 steps will run", timeout=10_000)
        expect(page.locator("#plan-line")).to_contain_text("flow matching rounds up")
        page.screenshot(path=str(SHOTS / "desktop-model-picker.png"), full_page=True)

        page.get_by_role("tab", name=re.compile("Explain")).click()
        page.locator("#compare-by label", has_text="Compare models").click()
        expect(page.locator("#compare-values textarea, #compare-values input").first).to_have_value(", ".join(NAMES))
        set_number(page, "compare-steps", 4)
        set_number(page, "compare-strength", 0.3)
        page.locator("#compare-run").click()
        table = page.locator("#explain-table table.explain-table")
        expect(table.locator("tr.row-out td img")).to_have_count(3, timeout=120_000)
        taken = table.locator("tr.row-taken")
        expect(taken).to_contain_text("SD: int(4 × 0.3) = 1")
        expect(taken).to_contain_text("SDXL: int(4 × 0.3) = 1")
        expect(taken).to_contain_text("rounds up")
        assert [n.strip() for n in taken.locator(".num").all_inner_texts()] == ["1", "1", "2"]
        page.screenshot(path=str(SHOTS / "desktop-compare-models.png"), full_page=True)
        page.set_viewport_size({"width": 390, "height": 844})
        page.screenshot(path=str(SHOTS / "phone-compare-models.png"), full_page=True)
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        wide = page.evaluate("""[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > 392
            && [...e.children].every(c => c.getBoundingClientRect().right <= 392))
            .map(e => (e.id || String(e.className).slice(0, 40) || e.tagName) + ' in ' + (e.parentElement.id ||
            String(e.parentElement.className).slice(0, 40)) + ': ' + Math.round(e.getBoundingClientRect().right))""")
        assert overflow <= 0, f"the page is {overflow}px wider than a 390px phone: {wide[:12]}"
        browser.close()


@pytest.mark.browser
@pytest.mark.skipif(not available(), reason=MISSING)
def test_the_badge_follows_a_run_that_loaded_its_model(tmp_path):
    """One model loaded at a time: the page opens on the one that is not loaded ("not loaded yet · loads with the
    first run"); once a run has loaded it, the badge says it is ready (not the stale line it opened with)."""
    from chromium import browser_context, set_number
    from playwright.sync_api import expect

    from sd_img2img.engine.model_set import ModelSet

    models = ModelSet(["random", "random-sdxl"], device="cpu", dtype="float32", cache=tmp_path, max_loaded=1)
    with serve(models) as url, browser_context(viewport={"width": 1280, "height": 800}) as context:
        page = context.new_page()
        page.goto(url)
        expect(page.locator(".model-status.ready")).to_be_visible(timeout=60_000)  # the first model, at start
        page.locator("#model input").click()
        page.get_by_role("option", name=re.compile("random-sdxl")).click()
        badge = page.locator(".model-status")
        expect(badge).to_contain_text("Model not loaded yet · random-sdxl", timeout=10_000)
        page.locator("#init-image input[type=file]").set_input_files(FIREPLACE)
        expect(page.locator("#init-image img").first).to_be_visible(timeout=15_000)
        set_number(page, "steps", 2)
        page.get_by_text("More settings").click()
        set_number(page, "width", 128)
        set_number(page, "height", 128)
        page.locator("#run").click()
        expect(page.locator("#run-status")).to_contain_text("taken", timeout=120_000)
        expect(page.locator(".model-status.ready")).to_contain_text("random-sdxl", timeout=10_000)
        expect(page.locator("#plan-line")).to_contain_text("s here", timeout=10_000)  # the run measured: its estimate
