"""Honest time on the page: once a model has run here, the plan line says how long a run will take (the engine's
estimate, whose accuracy tests/test_cpu_speed.py and benchmarks/bench_cpu.py check), and a visitor who clicks while
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
    from sd_img2img.ui.state import ModelStatus

    engine = Engine(str(tiny_checkpoint), device="cpu", dtype="float32", taesd=str(tiny_taesd))
    engine.load()
    return app.build_demo(engine, AppSettings(device="cpu"), ModelStatus(engine)).handlers


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
    *_, last = h.img2img(**args)
    return last[2]  # the run info


def test_the_plan_line_shows_the_servers_estimate_once_a_run_was_measured(handlers):
    from sd_img2img.run.timing import format_duration

    h = handlers
    plan_args = (FIREPLACE, "image", 1.0, 24, False, None, 256, 256, 7.5, "k_euler", "approx")
    assert "here" not in h.plan(*plan_args)  # nothing measured yet: no guess
    run(h, seed=1)  # what the server learns from
    request = h.request(FIREPLACE, "", "", 1.0, 24, False, 4, "k_euler", 7.5, 256, 256, "resize", "approx", "latents")
    estimate = h.estimate(request, None)
    assert estimate is not None and estimate > 0
    line = h.plan(*plan_args)
    assert f"24 steps will run (0 skipped) · {format_duration(estimate)} here" in line, line
    bigger = h.estimate(
        h.request(FIREPLACE, "fire", "", 1.0, 24, False, 4, "k_euler", 7.5, 512, 512, "resize", "approx", "latents"),
        None,
    )
    assert bigger > estimate  # four times the pixels take longer


def test_a_visitor_who_clicks_behind_others_sees_their_place_and_wait(handlers):
    from types import SimpleNamespace

    h = handlers
    first, second = SimpleNamespace(session_hash="a"), SimpleNamespace(session_hash="b")
    form = (FIREPLACE, "fire", "", 1.0, 24, False, 4, "", 7.5, 256, 256, "resize", "approx", "latents", None, "")
    _, status = h.queue_run("image", None, *form, request=first)
    assert "Starting" in status
    h.queue.start("a")
    _, status = h.queue_run("image", None, *form, request=second)
    assert "Queued" in status and "1 run ahead" in status and re.search(r"about \d+ s before yours starts", status)
    h.queue.leave("a")
    h.queue.leave("b")
    assert "Starting" in h.queue_run("image", None, *form, request=second)[1]
    h.queue.leave("b")


def test_a_cpu_page_starts_slow_models_small_and_says_why(handlers):
    from sd_img2img import config
    from sd_img2img.models.families import FAMILIES

    h = handlers
    assert h.on_cpu and h.max_side == config.CPU_PAGE_MAX_SIDE
    assert h.page_defaults(FAMILIES["sd"])[0] == config.CPU_PAGE_STEPS
    assert h.page_defaults(FAMILIES["sd-turbo"])[:2] == (2, 0.5)  # few-step models keep their own
    assert h.page_defaults(FAMILIES["lcm"])[0] == 4
