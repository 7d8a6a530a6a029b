"""The strength × steps grid (series/grid.py): cells equal single runs, the cost in steps that actually run, the limits,
edit models refused on the strength axis; through the page's backend interface."""

from __future__ import annotations

import pytest
from helpers import max_diff

from sd_img2img.config import GRID_MAX_CELLS, GRID_MAX_STEPS, GRID_MAX_VALUES
from sd_img2img.engine import GenerationRequest
from sd_img2img.engine.backend import LocalBackend
from sd_img2img.errors import UserInputError
from sd_img2img.series.axes import Axis, check_axes
from sd_img2img.series.grid import grid_axis, plan_grid
from sd_img2img.series.series import run_series


@pytest.fixture(scope="module")
def backend(engine):
    return LocalBackend(engine, name="tiny")


def base(fireplace, **kw):
    return GenerationRequest(**{**dict(prompt="fire", init_image=fireplace, seed=77, width=64, height=64), **kw})


def grid_of(backend, request, rows, columns):
    family = backend.describe("tiny").family
    axes = grid_axis("strength", rows), grid_axis("steps", columns)
    return plan_grid(request, axes, "tiny", backend.prepare, lambda name: family)


def test_a_2x3_grid_equals_the_same_single_runs(backend, engine, fireplace):
    """Done-when: 6 cells, each the same single run pixel for pixel; the cost line's steps are the steps that ran."""
    grid = grid_of(backend, base(fireplace), "0.4, 0.7", "5 10 15")
    assert grid.series.cost(None) == "this grid runs 32 steps in 6 cells"  # 2 + 4 + 6 + 3 + 7 + 10, by int(N × s)
    done = list(run_series(grid.series, backend))
    assert len(done) == 6 and [c.at for c in done] == [(r, c) for r in range(2) for c in range(3)]
    assert sum(c.result.steps_taken for c in done) == grid.series.total_steps == 32  # counted from the runs
    for cell in done:
        strength, steps = grid.rows.values[cell.at[0]], grid.columns.values[cell.at[1]]
        single = engine.generate(base(fireplace, strength=strength, steps=steps))
        assert (cell.result.strength, cell.result.steps, cell.result.seed) == (strength, steps, 77)
        assert max_diff(single.output, cell.result.output) == 0
    assert grid.cell(1, 2).records == {"grid": {"row": 2, "column": 3, "rows": "strength", "columns": "steps",
                                                "row_value": 0.7, "column_value": 15, "cells": [2, 3]}}  # fmt: skip
    assert "about" in grid.series.cost(sum(backend.estimate(c.prepared, "tiny") for c in grid.cells))


def test_a_stopped_grid_keeps_the_finished_cells(backend, fireplace):
    grid = grid_of(backend, base(fireplace), "0.4 0.7", "5 10")
    finished = []
    for cell in run_series(grid.series, backend, lambda: len(finished) == 2):
        finished.append(cell)
    assert len(finished) == 2 and [c.done for c in grid.cells] == [True, True, False, False]
    assert grid.series.stopped and grid.series.progress(running=False) == "Stopped after 2 of 4 cells · 6 steps taken"


def test_limits_say_the_numbers(backend, fireplace):
    with pytest.raises(UserInputError, match="a grid of 6 × 7 = 42 cells is above the limit of 36"):
        check_axes((Axis("strength", (0.5,) * 6), Axis("steps", (10,) * 7)), {})
    with pytest.raises(UserInputError, match=f"more than a grid axis takes \\({GRID_MAX_VALUES}\\)"):
        grid_axis("steps", " ".join(["10"] * (GRID_MAX_VALUES + 1)))
    with pytest.raises(UserInputError, match=f"this grid runs 400 steps, above the limit of {GRID_MAX_STEPS}"):
        grid_of(backend, base(fireplace), "1.0", "100 150 150")
    with pytest.raises(UserInputError, match="both change steps"):
        check_axes((Axis("steps", (1,)), Axis("steps", (2,))), {})
    with pytest.raises(UserInputError, match="'x' is not a number"):
        grid_axis("strength", "0.4, x")
    with pytest.raises(UserInputError, match="strength 1.5 is out of range"):
        grid_axis("strength", "1.5")
    with pytest.raises(UserInputError, match="needs an initial image"):
        grid_of(backend, base(None), "0.4", "10")
    assert GRID_MAX_CELLS == GRID_MAX_VALUES**2


def test_edit_models_refuse_the_strength_axis_and_run_by_steps(tmp_path, fireplace):
    """An edit model (FLUX.1 Kontext: ``Family.takes_strength`` False, its image a reference) is refused on the strength
    axis by name; by step counts, with the model as the one row, every step runs from pure noise; loopback edits each
    output in turn and says strength does not apply."""
    from sd_img2img.engine import Engine
    from sd_img2img.models.families import FAMILIES
    from sd_img2img.series.loopback import LoopbackOptions, plan_loopback
    from sd_img2img.testing.tiny import build_checkpoint

    kontext = FAMILIES["flux-kontext"]
    with pytest.raises(UserInputError, match="kontext is a FLUX.1 Kontext.* model, which edits the image and takes no"):
        check_axes((Axis("strength", (0.4,)), Axis("model", ("kontext",))), {"kontext": kontext})
    check_axes((Axis("strength", (0.4,)), Axis("steps", (10,))), {"sd": FAMILIES["sd"]})  # others take it

    engine = Engine(str(build_checkpoint(tmp_path / "kontext", "tiny-kontext")), device="cpu", dtype="float32")
    edit = LocalBackend(engine, name="kontext")
    family = edit.describe("kontext").family
    request = GenerationRequest(prompt="fire", init_image=fireplace, seed=3, width=64, height=64)
    with pytest.raises(UserInputError, match="takes no strength"):
        plan_grid(request, (grid_axis("strength", "0.4"), grid_axis("steps", "2")), "kontext", edit.prepare,
                  lambda name: family)  # fmt: skip
    grid = plan_grid(request, (Axis("model", ("kontext",)), grid_axis("steps", "2 3")), "kontext", edit.prepare,
                     lambda name: family)  # fmt: skip
    done = list(run_series(grid.series, edit))
    assert [c.result.steps_taken for c in done] == [2, 3] == [c.result.steps for c in done]
    first = edit.prepare(GenerationRequest(**{**vars(request), "steps": 2}), "kontext")
    loopback = plan_loopback(first, "kontext", LoopbackOptions(loops=2, final_strength=0.3), family)
    assert "2 loops, each an edit of the last output (FLUX.1 Kontext" in loopback.plan.describe()
    loops = list(run_series(loopback.series, edit))
    assert [(x.result.strength, x.result.seed, x.result.steps_taken) for x in loops] == [(None, 3, 2), (None, 4, 2)]
    from sd_img2img.formats.animation import step_animation

    with_reference = step_animation(done[0].result, tmp_path / "kontext.webp", reference=first.image)
    assert (
        with_reference.frames == 1 + 3
    )  # the reference image, as the gallery shows it, then step 0 (noise) and 2 steps


def test_another_family_grid_loopback_and_animation_by_its_own_rule(tmp_path, fireplace):
    """FLUX (flow matching, packed latents): the grid's cells count by its rule (N − int(N − N × s) rounds up), each
    equal to its single run; loopback and the animation work the same."""
    from sd_img2img.engine import Engine
    from sd_img2img.formats.animation import step_animation
    from sd_img2img.series.loopback import LoopbackOptions, plan_loopback
    from sd_img2img.testing.tiny import build_checkpoint
    from sd_img2img.ui.grid import rule_line

    engine = Engine(str(build_checkpoint(tmp_path / "flux", "tiny-flux")), device="cpu", dtype="float32")
    flux = LocalBackend(engine, name="flux")
    family = flux.describe("flux").family
    request = GenerationRequest(prompt="fire", init_image=fireplace, seed=3, width=64, height=64)
    grid = plan_grid(request, (grid_axis("strength", "0.3"), grid_axis("steps", "4 5")), "flux", flux.prepare,
                     lambda name: family)  # fmt: skip
    assert grid.series.total_steps == 2 + 2
    assert rule_line(family, 0.3) == "FLUX.1-dev: N − int(N − N × 0.3) run (rounds up)"
    for cell in run_series(grid.series, flux):
        single = engine.generate(GenerationRequest(**{**vars(request), "strength": 0.3, "steps": cell.result.steps}))
        assert cell.result.steps_taken == 2 and max_diff(single.output, cell.result.output) == 0
    first = flux.prepare(GenerationRequest(**{**vars(request), "strength": 0.5, "steps": 4}), "flux")
    loopback = plan_loopback(first, "flux", LoopbackOptions(loops=2, final_strength=0.3), family)
    loops = list(run_series(loopback.series, flux))
    assert [x.result.steps_taken for x in loops] == [2, 2] and [x.result.seed for x in loops] == [3, 4]
    assert step_animation(loops[0].result, tmp_path / "flux.webp").frames == 3
