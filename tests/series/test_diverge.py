"""Where two runs part ways (series/diverge.py, series/step_alignment.py): two runs differing in one setting, through the
page's backend interface; their steps paired by noise level, each pair's predicted pictures compared."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import max_diff, pixels
from PIL import Image

from sd_img2img.config import DIVERGE_THRESHOLD
from sd_img2img.engine import GenerationRequest
from sd_img2img.engine.backend import LocalBackend
from sd_img2img.errors import UserInputError
from sd_img2img.models.families import FAMILIES
from sd_img2img.series.diverge import check_one_latent_space, parse_value, parse_vs, plan_diverge
from sd_img2img.series.series import run_series
from sd_img2img.series.step_alignment import HEAT, heat_map, pair_steps, picture_difference


@pytest.fixture(scope="module")
def backend(engine):
    return LocalBackend(engine, name="tiny")


def base(fireplace, **kw):
    settings = dict(prompt="fire", init_image=fireplace, strength=0.7, steps=30, sampler="k_lms", seed=1592514025)
    return GenerationRequest(**{**settings, "width": 64, "height": 64, "view": "x0", **kw})


def compared(backend, request, vary, values, **kw):
    family = backend.describe("tiny").family
    diverge = plan_diverge(request, vary, values, "tiny", backend.prepare, lambda _: family, **kw)
    list(run_series(diverge.series, backend))
    return diverge, diverge.compare()


def test_the_same_settings_on_both_sides_never_part(backend, fireplace):
    """Done-when: every difference is 0 and nothing parts."""
    diverge, comparison = compared(backend, base(fireplace), "steps", (30, 30))
    assert len(comparison.entries) == 22 and comparison.parts_at is None
    assert all(e.difference == 0 and e.latent_difference == 0 and e.a_step == e.b_step for e in comparison.entries)
    assert all(np.asarray(e.map).max() == HEAT[0].max() for e in comparison.entries)  # the map is the "same" colour
    assert comparison.sentence() == "30 and 30 steps never part: every step's pictures are identical"
    assert comparison.info([("a", "b", "m")] * 22)["parts_at"] is None


def test_30_vs_29_steps_at_07(backend, engine, fireplace):
    """Done-when: each side equals its single run pixel for pixel; one pair per step of the shorter run plus step 0;
    σ falls along the pairs; each difference is the mean absolute difference of the two pictures it compares."""
    diverge, comparison = compared(backend, base(fireplace), "steps", (30, 29))
    assert diverge.series.cost(None) == "two runs, 21 + 20 = 41 steps"  # int(30 × 0.7), int(29 × 0.7)
    for side, steps in zip(diverge.sides, (30, 29)):
        single = engine.generate(base(fireplace, steps=steps))
        assert max_diff(single.output, side.result.output) == 0
        assert [max_diff(x, y) for x, y in zip(single.step_images("x0"), side.result.step_images("x0"))] == [0] * len(
            single.frames
        )
    a, b = (side.result.frames for side in diverge.sides)
    entries = comparison.entries
    assert len(entries) == 20 + 1 == len(b) and comparison.shorter == "b"
    assert [e.b_step for e in entries] == list(range(21)) and (entries[0].a_step, entries[0].b_step) == (0, 0)
    assert all(x.a_step <= y.a_step for x, y in zip(entries, entries[1:]))  # in order
    for e in entries[1:]:  # each with run A's step at the nearest σ
        assert abs(e.sigma_a - e.sigma_b) == min(abs(f.sigma - e.sigma_b) for f in a[1:])
    assert all(x.sigma_b > y.sigma_b and x.sigma_a > y.sigma_a for x, y in zip(entries, entries[1:-1]))
    assert entries[-1].sigma_a == entries[-1].sigma_b == 0.0
    for e in entries:
        assert e.difference == float(np.abs(pixels(e.a_image) - pixels(e.b_image)).mean())
        assert e.a_image is a[e.a_step].image("x0") and e.b_image is b[e.b_step].image("x0")
    i = comparison.parts_at
    assert i is not None and entries[i].difference > DIVERGE_THRESHOLD >= max(e.difference for e in entries[:i])
    assert comparison.sentence() == f"30 and 29 steps part at step {i} (σ {entries[i].sigma_b:.2f})"


def test_a_stopped_comparison_keeps_what_ran(backend, fireplace):
    diverge = plan_diverge(base(fireplace), "seed", (1, 2), "tiny", backend.prepare, lambda _: None)
    ran = [run for run in run_series(diverge.series, backend, lambda: len(diverge.series.finished) == 1)]
    assert len(ran) == 1 and diverge.sides[0].done and not diverge.sides[1].done and diverge.series.stopped
    comparison = diverge.compare()
    assert comparison.entries == [] and comparison.parts_at is None
    assert comparison.sentence() == "seeds 1 and 2: nothing to compare yet (stopped before both ran)"
    assert diverge.series.progress(running=False).startswith("Stopped after 1 of 2 sides")


def test_samplers_without_sigma_are_paired_by_timestep(backend, fireplace):
    """DDIM has no σ: a k_lms run and a DDIM run are paired by the timestep each step ran at, in order."""
    diverge, comparison = compared(backend, base(fireplace, steps=10), "sampler", ("k_lms", "ddim"))
    a, b = (side.result.frames for side in diverge.sides)
    assert all(f.sigma is None for f in b[1:]) and len(comparison.entries) == 8 == len(a) == len(b)
    for e in comparison.entries[1:]:
        assert abs(e.timestep_a - e.timestep_b) == min(abs(f.timestep - e.timestep_a) for f in b[1:])
    assert comparison.level_text(comparison.entries[1]).startswith("σ ")  # run A (the shorter, as long) has σ
    assert pair_steps(b, a) == [(j, i) for i, j in pair_steps(a, b)]


def test_pictures_and_maps():
    black, grey = Image.new("RGB", (4, 2), (0, 0, 0)), Image.new("RGB", (4, 2), (10, 20, 30))
    assert picture_difference(black, grey) == 20.0 and picture_difference(grey, grey) == 0.0
    assert np.asarray(heat_map(black, Image.new("RGB", (4, 2), (255, 255, 255)))).tolist()[0][0] == HEAT[-1].tolist()
    assert np.asarray(heat_map(black, black)).tolist()[0][0] == HEAT[0].tolist()
    with pytest.raises(ValueError, match="different sizes"):
        picture_difference(black, Image.new("RGB", (2, 2)))


def test_what_a_person_writes(backend, fireplace):
    assert parse_vs("steps=29") == ("steps", "29") and parse_vs("guidance = 5")[0] == "guidance_scale"
    assert parse_value("steps", "29") == 29 and parse_value("strength", " 0.4") == 0.4
    assert parse_value("loras", "0.8", loras=("detail",)) == {"detail": 0.8}
    assert parse_value("loras", "detail:0", loras=("detail", "lcm")) == {"detail": 0.0}
    for vary, text, message in [
        ("steps", "29.5", "steps are whole numbers"),
        ("steps", "200", "steps must be from 1 to 150, got 200"),
        ("strength", "x", "'x' is not a number; write the strengths like 0.4 and 0.7"),
        ("sampler", "euler", "unknown sampler 'euler'"),
        ("model", "other", "unknown model 'other'; choose one of: tiny"),
        ("loras", "0.5", "say which LoRA the scale 0.5 is for, as name:0.5"),
        ("prompt", "x", "unknown setting to vary 'prompt'"),
    ]:
        with pytest.raises(UserInputError, match=message):
            parse_value(vary, text, ("tiny",))
    with pytest.raises(UserInputError, match="--vs takes KEY=VALUE"):
        parse_vs("29")
    with pytest.raises(UserInputError, match="sd works in SD 1.x/2.x latents and xl in SDXL latents"):
        check_one_latent_space(("sd", "xl"), {"sd": FAMILIES["sd-turbo"], "xl": FAMILIES["sdxl"]}.get)
    check_one_latent_space(("a", "b"), {"a": FAMILIES["flux"], "b": FAMILIES["chroma"]}.get)  # one VAE: fine
    with pytest.raises(UserInputError, match="needs an initial image"):
        plan_diverge(base(None), "steps", (30, 29), "tiny", backend.prepare, lambda _: None)
    with pytest.raises(UserInputError, match="the threshold is a difference of 0 to 255 levels, got -1"):
        plan_diverge(base(fireplace), "seed", (1, 2), "tiny", backend.prepare, lambda _: None, threshold=-1)
