"""The strength × steps grid: one image, prompt and seed run once per cell, strengths down and step counts across (or
either axis the served models), AUTOMATIC1111's X/Y plot with a denoise axis, as a ``Series`` of cells.

What it costs is said before it runs, in steps that actually run (each cell's plan, by its family's rule: 10 steps at
0.4 run 4) and, once the server has measured runs, in time; a grid over ``config`` limits (cells, steps in all) is
refused with the numbers. Every cell is a normal ``GenerationRequest``, prepared and run as any other, so a cell's
output is exactly that single run's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image

from sd_img2img.config import GRID_MAX_STEPS, GRID_MAX_VALUES
from sd_img2img.errors import UserInputError
from sd_img2img.formats.animation import labelled
from sd_img2img.models.families import Family, default_family
from sd_img2img.plan.prepare import PreparedRequest
from sd_img2img.plan.request import GenerationRequest, with_defaults
from sd_img2img.plan.step_plan import plan_steps
from sd_img2img.series.axes import Axis, axis_requests, check_axes, families_of, parse_axis
from sd_img2img.series.series import Series, SeriesRun, check_total_steps


def grid_axis(by: str, text, models: tuple[str, ...] = ()) -> Axis:
    """One of the grid's axes from its values as written (``series.axes.parse_axis``)."""
    return parse_axis(by, text, models, GRID_MAX_VALUES, "a grid axis")


@dataclass
class Grid:
    """The grid's axes and its cells, a ``Series`` row by row."""

    rows: Axis
    columns: Axis
    series: Series

    @property
    def cells(self) -> list[SeriesRun]:
        return self.series.runs

    def cell(self, row: int, column: int) -> SeriesRun:
        return self.cells[row * len(self.columns.values) + column]


def cell_records(rows: Axis, columns: Axis, at: tuple[int, int]) -> dict:
    """What a cell's PNG records beside its own settings: which cell it is, counted from 1."""
    r, c = at
    return {
        "grid": {
            "row": r + 1,
            "column": c + 1,
            "rows": rows.by,
            "columns": columns.by,
            "row_value": rows.values[r],
            "column_value": columns.values[c],
            "cells": [len(rows.values), len(columns.values)],
        }
    }


def planned_steps(base: GenerationRequest, rows: Axis, columns: Axis, model: str, family_of) -> int:
    """The steps the grid's cells will run by their models' families' rules, before any image is there to prepare
    them (``UserInputError`` for a cell whose steps and strength run none)."""
    total = 0
    for _, name, request in axis_requests(base, (rows, columns), model):
        family = family_of(name) or default_family()
        r = with_defaults(request, family)
        total += plan_steps(r.steps, r.strength, r.real_steps, family=family).steps_to_run
    return total


def plan_grid(
    base: GenerationRequest,
    axes: tuple[Axis, Axis],
    model: str,
    prepare: Callable[[GenerationRequest, str], PreparedRequest],
    family_of: Callable[[str], Family | None],
) -> Grid:
    """The grid, every cell prepared (checked, image fitted, steps planned) before any runs.

    Args:
        base: the request every cell starts from (its image, prompt, seed and settings).
        axes: the rows and the columns.
        model: the model every cell runs on, unless an axis is the models.
        prepare: prepares a cell's request for a model (a backend's ``prepare``).
        family_of: a model's family, where it can be told (a backend's ``describe(name).family``).
    Raises ``UserInputError`` without an initial image, for axes that cannot go together or over a model that takes no
    strength, and for a grid over ``config.GRID_MAX_CELLS`` cells or ``config.GRID_MAX_STEPS`` steps.
    """
    if base.init_image is None:
        raise UserInputError(
            "the grid needs an initial image: upload or draw one on the Generate tab, or pick an example"
        )
    rows, columns = axes
    planned = axis_requests(base, axes, model)
    check_axes(axes, families_of((name for _, name, _ in planned), family_of))
    runs = [
        SeriesRun(
            f"{rows.label(rows.values[at[0]])} · {columns.label(columns.values[at[1]])}",
            name,
            prepare(request, name),
            at,
            cell_records(rows, columns, at),
        )
        for at, name, request in planned
    ]
    check_axes(axes, families_of((run.model for run in runs), family_of))  # families only known once loaded, too
    series = Series("grid", "cell", runs)
    check_total_steps(series, GRID_MAX_STEPS, "use fewer or smaller step counts or strengths")
    return Grid(rows, columns, series)


def grid_sheet(grid: Grid, side: int = 256, gap: int = 4) -> Image.Image:
    """The finished cells' outputs as one picture, row by row, each at most ``side`` a side and labelled with its row's
    and column's values and the steps it took (cells not run are left blank)."""
    first = next(c.output for c in grid.cells if c.done)
    scale = side / max(first.size)  # small outputs are enlarged too, so the labels can be read
    width, height = max(1, round(first.width * scale)), max(1, round(first.height * scale))
    n_rows, n_columns = len(grid.rows.values), len(grid.columns.values)
    sheet = Image.new("RGB", (n_columns * (width + gap) - gap, n_rows * (height + gap) - gap), (255, 255, 255))
    for cell in grid.series.finished:
        row, column = cell.at
        text = f"{cell.label} · {cell.result.steps_taken} taken"
        sheet.paste(labelled(cell.output, text, (width, height)), (column * (width + gap), row * (height + gap)))
    return sheet
