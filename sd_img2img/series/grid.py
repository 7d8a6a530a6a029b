"""The strength × steps grid: one image, prompt and seed run once per cell, strengths down and step counts across (or
either axis the served models), AUTOMATIC1111's X/Y plot with a denoise axis.

What it costs is said before it runs, in steps that actually run (each cell's plan, by its family's rule: 10 steps at
0.4 run 4) and, once the server has measured runs, in time; a grid over ``config`` limits (cells, steps in all) is
refused with the numbers. Every cell is a normal ``GenerationRequest``, prepared and run as any other (``prepare`` and
``run`` are the caller's: a backend's), so a cell's output is exactly that single run's.

Edit models (a family whose ``takes_strength`` is False: its image is a reference) take no strength: a strength axis
over one is refused.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from PIL import Image

from sd_img2img.config import GRID_MAX_CELLS, GRID_MAX_STEPS, GRID_MAX_VALUES, MAX_SEED
from sd_img2img.engine.result import GenerationResult
from sd_img2img.errors import UserInputError, check_choice
from sd_img2img.formats.animation import labelled
from sd_img2img.models.families import Family, default_family
from sd_img2img.plan.prepare import PreparedRequest
from sd_img2img.plan.request import RANGES, GenerationRequest, with_defaults
from sd_img2img.plan.step_plan import plan_steps
from sd_img2img.plan.timing import format_duration

GRID_AXES = ("strength", "steps", "model")


def takes_strength(family: Family | None) -> bool:
    """Whether ``family`` takes an img2img strength (``Family.takes_strength``: edit models such as FLUX.1 Kontext, whose
    image is a reference, take none); a family not known yet is taken to."""
    return family is None or bool(getattr(family, "takes_strength", True))


@dataclass(frozen=True)
class GridAxis:
    """One axis of the grid: what changes along it (``strength``, ``steps`` or ``model``) and its values."""

    by: str
    values: tuple

    def label(self, value) -> str:
        """``strength 0.4``, ``10 steps``, or the model's name."""
        if self.by == "strength":
            return f"strength {value:g}"
        return f"{value} steps" if self.by == "steps" else str(value)


def parse_axis(by: str, text, models: tuple[str, ...] = ()) -> GridAxis:
    """An axis from its values as written: ``"0.4, 0.7"`` (strengths), ``"10 20"`` (step counts), or served model
    names (``models``; empty text: all of them), at most ``config.GRID_MAX_VALUES``."""
    check_choice("grid axis", by, GRID_AXES)
    if isinstance(text, (list, tuple)):
        parts = [str(p) for p in text]
    elif by == "model":  # names may hold spaces
        parts = str(text or "").split(",")
    else:
        parts = str(text or "").replace(",", " ").replace(";", " ").split()
    parts = [p.strip() for p in parts if p.strip()] or (list(models) if by == "model" else [])
    if not parts:
        raise UserInputError(
            f"give at least one {by} value for the grid, e.g. {'0.4, 0.7' if by == 'strength' else '10, 20'}"
        )
    if len(parts) > GRID_MAX_VALUES:
        raise UserInputError(f"{len(parts)} {by} values is more than a grid axis takes ({GRID_MAX_VALUES}); drop some")
    if by == "model":
        return GridAxis(by, tuple(check_choice("model", p, models) for p in parts))
    return GridAxis(by, tuple(_number(by, p) for p in parts))


def _number(by: str, text: str) -> float | int:
    try:
        value = float(text)
    except ValueError:
        raise UserInputError(f"{text!r} is not a number; write the grid's {by} values like 0.4, 0.7") from None
    if value not in RANGES[by]:
        limits = RANGES[by]
        raise UserInputError(f"{by} {text} is out of range ({limits.low:g} to {limits.high:g}" +
                             (", above 0)" if by == "strength" else ")"))  # fmt: skip
    if by == "steps":
        if not value.is_integer():
            raise UserInputError(f"step counts are whole numbers, got {text}")
        return int(value)
    return value


@dataclass
class GridCell:
    """One cell: where it is, what it runs on, its request; prepared before the grid runs, its result once run."""

    row: int  # from 0
    column: int
    model: str
    request: GenerationRequest
    prepared: PreparedRequest | None = None
    result: GenerationResult | None = None

    @property
    def steps_to_run(self) -> int:
        return self.prepared.plan.steps_to_run if self.prepared is not None else 0


@dataclass
class Grid:
    """The grid's axes and its cells, row by row."""

    rows: GridAxis
    columns: GridAxis
    cells: list[GridCell]

    @property
    def total_steps(self) -> int:
        """The steps its cells run, by their families' rules."""
        return sum(c.steps_to_run for c in self.cells)

    def cell(self, row: int, column: int) -> GridCell:
        return self.cells[row * len(self.columns.values) + column]

    def cost(self, seconds: float | None) -> str:
        """``this grid runs 58 steps · about 1 min here`` (no time until this server has measured runs)."""
        n = self.total_steps
        line = f"this grid runs {n} step{'s' * (n != 1)} in {len(self.cells)} cell{'s' * (len(self.cells) != 1)}"
        return line + (f" · {format_duration(seconds)} here" if seconds is not None else "")

    def settings(self, cell: GridCell) -> dict:
        """What a cell's PNG records beside its own settings: which cell it is, counted from 1."""
        return {"row": cell.row + 1, "column": cell.column + 1, "rows": self.rows.by, "columns": self.columns.by,
                "row_value": self.rows.values[cell.row], "column_value": self.columns.values[cell.column],
                "cells": [len(self.rows.values), len(self.columns.values)]}  # fmt: skip


def check_axes(rows: GridAxis, columns: GridAxis, families: dict[str, Family | None]) -> None:
    """Two different axes, a cell count within ``config.GRID_MAX_CELLS``, and no strength axis over a model that takes
    no strength (``families``: each model the grid runs on → its family, None where not known yet)."""
    if rows.by == columns.by:
        raise UserInputError(f"the grid's rows and columns both change {rows.by}; pick two different things")
    cells = len(rows.values) * len(columns.values)
    if cells > GRID_MAX_CELLS:
        raise UserInputError(
            f"a grid of {len(rows.values)} × {len(columns.values)} = {cells} cells is above the limit of "
            f"{GRID_MAX_CELLS}; drop some values"
        )
    if "strength" in (rows.by, columns.by):
        for name, family in families.items():
            if not takes_strength(family):
                raise UserInputError(
                    f"{name} is a {family.label} model, which edits the image and takes no strength: the grid's "
                    "strength axis does not apply to it; compare step counts (and models) instead"
                )


def grid_cells(base: GenerationRequest, rows: GridAxis, columns: GridAxis, model: str) -> list[GridCell]:
    """Every cell's request, row by row: ``base`` (its seed, or one picked for all) with the row's and the column's
    value; on ``model`` unless an axis is the models."""
    seed = base.seed if base.seed is not None else secrets.randbelow(MAX_SEED)
    cells = []
    for r, row_value in enumerate(rows.values):
        for c, column_value in enumerate(columns.values):
            changes, name = {"seed": seed}, model
            for axis, value in ((rows, row_value), (columns, column_value)):
                if axis.by == "model":
                    name = value
                else:
                    changes[axis.by] = float(value) if axis.by == "strength" else int(value)
            cells.append(GridCell(r, c, name, dataclasses.replace(base, **changes)))
    return cells


def planned_steps(cells: list[GridCell], family_of: Callable[[str], Family | None]) -> int:
    """The steps ``cells`` will run, by their models' families' rules, before any image is there to prepare them
    (``UserInputError`` for a cell whose steps and strength run none)."""
    total = 0
    for cell in cells:
        family = family_of(cell.model) or default_family()
        r = with_defaults(cell.request, family)
        total += plan_steps(r.steps, r.strength, r.real_steps, family=family).steps_to_run
    return total


def plan_grid(
    base: GenerationRequest,
    rows: GridAxis,
    columns: GridAxis,
    model: str,
    prepare: Callable[[GenerationRequest, str], PreparedRequest],
    family_of: Callable[[str], Family | None],
) -> Grid:
    """The grid, every cell prepared (checked, image fitted, steps planned) before any runs.

    Args:
        base: the request every cell starts from (its image, prompt, seed and settings).
        rows, columns: the axes.
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
    cells = grid_cells(base, rows, columns, model)
    models = list(dict.fromkeys(c.model for c in cells))
    check_axes(rows, columns, {name: family_of(name) for name in models})
    for cell in cells:
        cell.prepared = prepare(cell.request, cell.model)
    check_axes(rows, columns, {name: family_of(name) for name in models})  # families only known once loaded, too
    grid = Grid(rows, columns, cells)
    if grid.total_steps > GRID_MAX_STEPS:
        raise UserInputError(
            f"this grid runs {grid.total_steps} steps, above the limit of {GRID_MAX_STEPS}; use fewer or smaller "
            "step counts or strengths"
        )
    return grid


def run_grid(
    grid: Grid,
    run: Callable[[PreparedRequest, str], GenerationResult],
    should_stop: Callable[[], bool] | None = None,
) -> Iterator[GridCell]:
    """Run each cell in turn, row by row, yielding each as it finishes (a stop keeps the finished cells).

    Args:
        grid: ``plan_grid``'s.
        run: runs a cell's prepared request on its model to the result.
        should_stop: polled before each cell (the run polls it between steps too).
    """
    for cell in grid.cells:
        if should_stop is not None and should_stop():
            break
        cell.result = run(cell.prepared, cell.model)
        yield cell
        if cell.result.stopped:
            break


def grid_sheet(grid: Grid, side: int = 256, gap: int = 4) -> Image.Image:
    """The finished cells' outputs as one picture, row by row, each at most ``side`` a side and labelled with its row's
    and column's values and the steps it took (cells not run are left blank)."""
    first = next(c.result.output for c in grid.cells if c.result is not None)
    scale = side / max(first.size)  # small outputs are enlarged too, so the labels can be read
    width, height = max(1, round(first.width * scale)), max(1, round(first.height * scale))
    n_rows, n_columns = len(grid.rows.values), len(grid.columns.values)
    sheet = Image.new("RGB", (n_columns * (width + gap) - gap, n_rows * (height + gap) - gap), (255, 255, 255))
    for cell in grid.cells:
        if cell.result is None:
            continue
        text = (f"{grid.rows.label(grid.rows.values[cell.row])} · {grid.columns.label(grid.columns.values[cell.column])}"
                f" · {cell.result.steps_taken} taken")  # fmt: skip
        sheet.paste(
            labelled(cell.result.output, text, (width, height)),
            (cell.column * (width + gap), cell.row * (height + gap)),
        )
    return sheet
