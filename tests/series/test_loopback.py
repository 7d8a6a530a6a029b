"""Loopback (series/loopback.py): the strength curves, seed + 1 per loop, each loop a single run from the previous output,
colour matching, the limits; through the page's backend interface."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import max_diff, pixels
from PIL import Image

from sd_img2img.config import MAX_LOOPBACK_STEPS, MAX_LOOPS
from sd_img2img.engine import GenerationRequest
from sd_img2img.engine.backend import LocalBackend
from sd_img2img.errors import UserInputError
from sd_img2img.series.loopback import LoopbackOptions, curve_strengths, match_colours, plan_loopback
from sd_img2img.series.series import run_series

SEED = 4242


@pytest.fixture(scope="module")
def backend(engine):
    return LocalBackend(engine, name="tiny")


def request(fireplace, **kw):
    args = dict(prompt="fire", init_image=fireplace, strength=0.5, steps=10, seed=SEED, width=64, height=64)
    return GenerationRequest(**{**args, **kw})


def loopback(backend, first, options):
    planned = plan_loopback(first, "tiny", options, backend.describe("tiny").family)
    return planned.plan, list(run_series(planned.series, backend))


def plan_of(first, options):
    return plan_loopback(first, "tiny", options)


def test_three_linear_loops_from_05_to_03(backend, engine, fireplace):
    """Done-when: strengths 0.5, 0.4, 0.3, seeds s, s+1, s+2, and each loop's output equals a single run from the
    previous loop's output."""
    first = backend.prepare(request(fireplace), "tiny")
    plan, loops = loopback(backend, first, LoopbackOptions(loops=3, final_strength=0.3, curve="linear"))
    assert [x.result.strength for x in loops] == [0.5, 0.4, 0.3] == list(plan.strengths)
    assert [x.result.seed for x in loops] == [SEED, SEED + 1, SEED + 2] == list(plan.seeds)
    assert [x.result.steps_taken for x in loops] == [5, 4, 3]
    assert plan.describe() == "3 loops, strength 0.5 → 0.4 → 0.3 (linear) · 5 + 4 + 3 = 12 steps run"
    previous = first.image
    for x in loops:
        single = engine.generate(request(previous, strength=x.result.strength, seed=x.result.seed))
        assert max_diff(single.output, x.output) == 0
        previous = x.output


def test_curves_as_automatic1111_defines_them():
    """Aggressive (sin) makes most of the change early, lazy (1 − cos) late; both end where linear does."""
    linear, aggressive, lazy = (curve_strengths(0.8, 0.2, 5, c) for c in ("linear", "aggressive", "lazy"))
    assert linear == [0.8, 0.65, 0.5, 0.35, 0.2]
    assert aggressive[0] == lazy[0] == 0.8 and aggressive[-1] == lazy[-1] == 0.2
    assert all(a < b < c for a, b, c in zip(aggressive[1:-1], linear[1:-1], lazy[1:-1]))
    assert aggressive[2] == round(0.8 - 0.6 * np.sin(np.pi / 4), 4) and lazy[2] == round(
        0.8 - 0.6 * (1 - np.cos(np.pi / 4)), 4
    )
    assert curve_strengths(0.6, 0.1, 1) == [0.6]  # one loop: the start


def test_colour_match_moves_each_channels_histogram_to_the_first_images():
    rng = np.random.default_rng(0)
    reference = Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8))
    cast = Image.fromarray((pixels(reference) * [0.5, 0.9, 0.3] + [100, 0, 20]).clip(0, 255).astype(np.uint8))
    matched = pixels(match_colours(cast, reference))
    for c in range(3):
        assert abs(matched[..., c].mean() - pixels(reference)[..., c].mean()) < 2
        assert abs(np.percentile(matched[..., c], 90) - np.percentile(pixels(reference)[..., c], 90)) < 4


def test_colour_matched_loops_feed_the_matched_picture_on(backend, engine, fireplace):
    first = backend.prepare(request(fireplace, seed=11), "tiny")
    _, loops = loopback(backend, first, LoopbackOptions(loops=2, final_strength=0.5, colour_match=True))
    assert max_diff(loops[0].output, match_colours(loops[0].result.output, first.image)) == 0
    single = engine.generate(request(loops[0].output, seed=12))  # loop 2 starts from loop 1's matched output
    assert max_diff(single.output, loops[1].result.output) == 0


def test_limits_and_loops_that_cannot_run(backend, fireplace):
    first = backend.prepare(request(fireplace), "tiny")
    with pytest.raises(UserInputError, match=f"loops={MAX_LOOPS + 1} is out of range \\[1, {MAX_LOOPS}\\]"):
        plan_of(first, LoopbackOptions(loops=MAX_LOOPS + 1))
    with pytest.raises(UserInputError, match="loop 3 of 3 \\(strength 0.05\\).*runs no step"):
        plan_of(first, LoopbackOptions(loops=3, final_strength=0.05))
    long = backend.prepare(request(fireplace, steps=150, strength=1.0), "tiny")
    with pytest.raises(UserInputError, match=f"runs 450 steps .* above the limit of {MAX_LOOPBACK_STEPS}"):
        plan_of(long, LoopbackOptions(loops=3, final_strength=1.0))
    with pytest.raises(UserInputError, match="unknown strength curve 'wavy'"):
        plan_of(first, LoopbackOptions(curve="wavy"))
