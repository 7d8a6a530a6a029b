"""Honest time on the page: once a model has run here, the plan line says how long a run will take (the engine's
estimate, whose accuracy tests/engine/test_cpu_speed.py and benchmarks/bench_cpu.py check), and a visitor who clicks while
others run is told their place and wait. Through the page's handlers (``demo.handlers``), without a browser."""

from __future__ import annotations

import re

import pytest
from appserver import ROOT

FIREPLACE = str(ROOT / "examples" / "fireplace.png")


@pytest.fixture(scope="module")
def handlers(tiny_checkpoint, tiny_taesd):
    from sd_img2img.engine import Engine
    from sd_img2img.settings import AppSettings
    from sd_img2img.ui import app

    engine = Engine(str(tiny_checkpoint), device="cpu", dtype="float32", taesd=str(tiny_taesd))
    engine.load()
    return app.build_demo(engine, AppSettings()).handlers


def run(h, **kw):
    args = dict(
        image=FIREPLACE,
        prompt="fire",
        negative_prompt="",
        strength=1.0,
        steps=24,
        real_steps=False,
        seed=4,
        sampler="k_euler",
        guidance_scale=7.5,
        width=256,
        height=256,
    )
    args.update(kw)
    *_, last = h.runs.img2img(**args)
    return last[2]  # the run info


def test_the_plan_line_shows_the_servers_estimate_once_a_run_was_measured(handlers):
    from sd_img2img.plan.timing import format_duration

    runs = handlers.runs
    plan_args = dict(image=FIREPLACE, source="image", strength=1.0, steps=24, real_steps=False, model=None)
    plan_args.update(width=256, height=256, guidance_scale=7.5, sampler="k_euler", preview="approx")
    assert "here" not in runs.plan(**plan_args)  # nothing measured yet: no guess
    run(handlers, seed=1)  # what the server learns from
    form = dict(init_image=FIREPLACE, prompt="", strength=1.0, steps=24, seed=4, sampler="k_euler", guidance_scale=7.5)
    estimate = runs.estimate(runs.prepare(runs.request(dict(form, width=256, height=256)), None), None)
    assert estimate is not None and estimate > 0
    line = runs.plan(**plan_args)
    assert "24 steps will run (0 skipped) · strength 1 → the image enters at σ = " in line, line  # the noise level
    assert line.endswith(f" · {format_duration(estimate)} here</div>"), line
    bigger = runs.estimate(runs.prepare(runs.request(dict(form, width=512, height=512)), None), None)
    assert bigger > estimate  # four times the pixels take longer


def test_a_visitor_who_clicks_behind_others_sees_their_place_and_wait(handlers):
    from types import SimpleNamespace

    runs, queue = handlers.runs, handlers.page.queue
    first, second = SimpleNamespace(session_hash="a"), SimpleNamespace(session_hash="b")
    form = dict(source="image", sketch=None, image=FIREPLACE, prompt="fire", negative_prompt="", strength=1.0, steps=24)
    form.update(real_steps=False, seed=4, sampler="", guidance_scale=7.5, width=256, height=256, resize_mode="resize")
    form.update(preview="approx", view="latents", model=None, loras="")
    _, status, prepared, *_ = runs.queue_run(**form, request=first)
    assert "Starting" in status and prepared.plan.steps_to_run == 24  # prepared once, handed to the run
    queue.start("a")
    _, status, *_ = runs.queue_run(**form, request=second)
    assert "Queued" in status and "1 run ahead" in status and re.search(r"about \d+ s before yours starts", status)
    queue.leave("a")
    queue.leave("b")
    assert "Starting" in runs.queue_run(**form, request=second)[1]
    queue.leave("b")


def test_a_cpu_page_starts_slow_models_small_and_says_why(handlers):
    from sd_img2img import config
    from sd_img2img.models.families import FAMILIES
    from sd_img2img.ui.form import page_defaults

    page = handlers.page
    assert page.on_cpu and page.max_side == config.CPU_PAGE_MAX_SIDE
    assert page_defaults(FAMILIES["sd"], page.on_cpu)[0] == config.CPU_PAGE_STEPS
    assert page_defaults(FAMILIES["sd-turbo"], page.on_cpu)[:2] == (2, 0.5)  # few-step models keep their own
    assert page_defaults(FAMILIES["lcm"], page.on_cpu)[0] == 4


def test_a_click_prepares_its_request_once_and_the_plan_line_shares_its_image(handlers, tmp_path):
    """The plan line, the click and the run open and fit the init image once between them, and the run takes the
    request the click prepared instead of preparing it again."""
    import shutil
    from types import SimpleNamespace

    runs, backend = handlers.runs, handlers.page.backend
    image = tmp_path / "fresh.png"  # a file the image cache has not seen
    shutil.copy(FIREPLACE, image)
    prepared_calls = []
    prepare = backend.prepare
    backend.prepare = lambda request, name: prepared_calls.append(request) or prepare(request, name)
    try:
        opened = backend.images.opened
        form = dict(image=str(image), strength=0.5, steps=4, real_steps=False, width=128, height=128)
        form.update(guidance_scale=7.5, sampler="k_euler", preview="approx")
        runs.plan(source="image", model=None, **form)
        session = SimpleNamespace(session_hash="once")
        click = dict(form, prompt="fire", negative_prompt="", seed=3, resize_mode="resize", view="latents", loras="")
        _, _, prepared, *_ = runs.queue_run(source="image", sketch=None, model=None, **click, request=session)
        assert len(prepared_calls) == 2  # the plan line's and the click's
        *_, last = runs.img2img(**click, model=None, prepared=prepared, request=session)
        assert len(prepared_calls) == 2  # the run took the click's prepared request
        assert last[2]["steps_taken"] == 2 and last[2]["seed"] == 3
        assert backend.images.opened == opened + 1  # one file opened and decoded for all three
    finally:
        backend.prepare = prepare
