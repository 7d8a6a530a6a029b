"""The Explain tab's strength × steps grid on the page: its cost line before it runs, the cells streaming in as each
finishes (Stop keeps the finished ones), each cell's PNG, and ``/grid``. The grid itself (axes, limits, cells) is
``series.grid``'s; the page's side of running a series is ``ui.series``'."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from sd_img2img.config import GRID_STEP_COUNTS, GRID_STRENGTHS, GRID_THUMB_SIDE
from sd_img2img.errors import UserInputError
from sd_img2img.models.families import Family
from sd_img2img.plan.fields import declared, setting
from sd_img2img.plan.rules import rule_of
from sd_img2img.series.axes import AXES
from sd_img2img.series.grid import Grid, grid_axis, plan_grid, planned_steps
from sd_img2img.series.series import estimate_series
from sd_img2img.ui.endpoints import endpoint, form_names, with_options
from sd_img2img.ui.html import esc, image_tag, refused_plan
from sd_img2img.ui.page import Page, shown_to_user
from sd_img2img.ui.runs import Runs
from sd_img2img.ui.series import SeriesEvents, progress_html
from sd_img2img.ui.sources import SOURCE_CHOICES

ROW_AXES = [("Strengths", "strength"), ("Models", "model")]  # strengths down (or the models) …
COLUMN_AXES = [("Step counts", "steps"), ("Models", "model")]  # … step counts across (or the models)


def default_axis_values(by: str, models: tuple[str, ...] = ()) -> str:
    """The values an axis starts with: two strengths, two step counts, or the served models."""
    if by == "model":
        return ", ".join(models)
    return ", ".join(f"{v:g}" for v in (GRID_STRENGTHS if by == "strength" else GRID_STEP_COUNTS))


@dataclass
class GridOptions:
    """The grid's own settings: what changes down and across, and the values."""

    rows: str = setting("strength", label="Rows", help="what changes down: strength or model", choices=AXES)
    row_values: str = setting(
        default_axis_values("strength"),
        label="Row values",
        help='the rows\' values: strengths such as "0.4, 0.7", or model names',
    )
    columns: str = setting("steps", label="Columns", help="what changes across: steps or model", choices=AXES)
    column_values: str = setting(
        default_axis_values("steps"),
        label="Column values",
        help='the columns\' values: step counts such as "10, 20", or model names',
    )


OPTIONS = declared(GridOptions)
GRID = with_options(form_names(without=("view",)), OPTIONS, after="negative_prompt")
COST = (
    "init_image",
    "source",
    "prompt",
    "strength",
    "steps",
    "real_steps",
    "seed",
    "sampler",
    "guidance_scale",
    "width",
    "height",
    "resize_mode",
    "model",
    "loras",
    *OPTIONS,
)  # what the cost line follows


def rule_line(family: Family | None, strength: float | None = None) -> str:
    """How many of N steps run, by the family's rule, ``strength`` filled in when given: ``SD: int(N × 0.4) of N
    run``, ``FLUX.1-dev: N − int(N − N × s) run (rounds up)``, ``LCM: all N run, strength sets where they start``."""
    return f"{family.label}: {rule_of(family).general(strength)}" if family is not None else ""


class GridPage:
    """The grid's events: the cost line and ``/grid``."""

    def __init__(self, page: Page, runs: Runs):
        self.page = page
        self.runs = runs
        self.series = SeriesEvents(page)

    def axes(self, values: dict) -> tuple:
        names = self.page.backend.names
        return grid_axis(values["rows"], values["row_values"], names), grid_axis(
            values["columns"], values["column_values"], names
        )

    def family_of(self, name: str) -> Family | None:
        return self.page.family(name)

    def plan(self, values: dict) -> Grid:
        """The grid the values ask for, every cell prepared (``series.grid.plan_grid``)."""
        base = self.runs.request(dict(values, view="latents"))
        name = self.page.model_name(values.get("model"))
        return plan_grid(base, self.axes(values), name, self.page.backend.prepare, self.family_of)

    @endpoint(COST, OPTIONS)
    def cost(self, values: dict, request=None):
        """The line before the grid runs: ``this grid runs 58 steps in 6 cells · about 1 min here`` (time once this
        server has measured the models' runs), or what is wrong with it."""
        try:
            rows, columns = self.axes(values)
            base = self.runs.request(values)
            name = self.page.model_name(values.get("model"))
            models = {name} | {m for axis in (rows, columns) if axis.by == "model" for m in axis.values}
            ready = all(self.page.status(m).state == "ready" for m in models)
            if not (values.get("init_image") and ready):  # the steps by the families' rules (nothing loaded for this)
                n = planned_steps(base, rows, columns, name, self.family_of)
                cells = len(rows.values) * len(columns.values)
                sketch = values["source"] == "sketch"
                where = (
                    ""
                    if values.get("init_image")
                    else "the drawing is used at the click"
                    if sketch
                    else "pick an initial image first"
                )
                return (
                    f'<div class="plan grid-cost">this grid runs {n} step{"s" * (n != 1)} in {cells} cells'
                    + (f" · {where}" if where else "")
                    + "</div>"
                )
            grid = self.plan(values)
        except (gr.Error, UserInputError) as e:
            return refused_plan(e)
        seconds = estimate_series(self.page.backend, grid.series)
        return f'<div class="plan grid-cost">{esc(grid.series.cost(seconds))}</div>'

    @endpoint((*SOURCE_CHOICES, *GRID), OPTIONS)
    def queue(self, values: dict, request: gr.Request = None):
        """At the click, before the grid queues: its place in the wait line (``ui.series.SeriesEvents.queue``).
        Returns the initial image and the mask."""
        return self.series.queue(lambda values: self.plan(values).series, {**values, "kind": "grid"}, request)

    @endpoint(GRID, OPTIONS)
    def grid(self, values: dict, request: gr.Request = None):
        """The strength × steps grid: the same image, prompt and seed once per cell, ``rows`` (``strength`` or
        ``model``) down and ``columns`` (``steps`` or ``model``) across, their values as ``"0.4, 0.7"``, ``"10, 20"``
        or served model names; the setting no axis changes comes from ``strength`` / ``steps``.

        Returns the grid (HTML), its info (each cell's strength, steps, steps taken and PNG) and the cells' PNGs
        (settings embedded, each saying which cell it is)."""
        with shown_to_user():
            grid = self.plan(values)
        thumbs: dict[int, str] = {}

        def draw(series, files, folder):
            for cell in series.finished:
                if id(cell) not in thumbs:
                    thumbs[id(cell)] = image_tag(
                        cell.output, f"output, {cell.result.steps_taken} steps taken", "out", GRID_THUMB_SIDE
                    )
            return grid_html(grid, thumbs, self.family_of, done=folder is not None), grid_info(grid, files), list(files)

        yield from self.series.stream(grid.series, request, draw)


def grid_info(grid: Grid, files: list[str]) -> dict:
    """The grid as JSON: its axes, the steps it plans, and each finished cell (as ``sd-img2img grid`` prints them)."""
    return {"rows": grid.rows.by, "columns": grid.columns.by, **grid.series.info(files)}


def header(axis, value, family_of, scope: str, grid: Grid) -> str:
    """A row's or column's header: its value and, for strengths and models, the step rule it runs by."""
    rule = ""
    if axis.by == "model":
        rule = rule_line(family_of(value))
    elif axis.by == "strength" and "model" not in (grid.rows.by, grid.columns.by):
        rule = rule_line(family_of(grid.cells[0].model), float(value))
    small = f"<small>{esc(rule)}</small>" if rule else ""
    return f'<th scope="{scope}">{esc(axis.label(value))}{small}</th>'


def cell_html(cell, thumbs: dict, done: bool) -> str:
    if cell.failed:  # the others went on
        return f'<td class="failed"><b>Failed</b><small>{esc(cell.error)}</small></td>'
    if not cell.done:
        text = "not run (stopped)" if done else '<span class="spinner"></span>waiting…'
        return f'<td class="pending">{text}</td>'
    res = cell.result
    note = res.plan.taken_note(res.steps_taken, res.stopped) if res.plan is not None else ""
    return (
        f'<td>{thumbs.get(id(cell), "")}<div class="taken"><b>{res.steps_taken}</b> taken</div>'
        f"<small>{esc(note)}</small></td>"
    )


def grid_html(grid: Grid, thumbs: dict, family_of, done: bool = False) -> str:
    """The grid as a table: strengths (or models) down, step counts (or models) across, each cell its output with
    the steps taken under it and how they came about; cells not run yet wait (or, after a stop, say so)."""
    head = "".join(header(grid.columns, v, family_of, "col", grid) for v in grid.columns.values)
    body = []
    for r, value in enumerate(grid.rows.values):
        cells = "".join(cell_html(grid.cell(r, c), thumbs, done) for c in range(len(grid.columns.values)))
        body.append(f"<tr>{header(grid.rows, value, family_of, 'row', grid)}{cells}</tr>")
    what = f"{esc(grid.rows.by)} down, {esc(grid.columns.by)} across"
    caption = f"Same image, prompt and seed ({grid.series.seed}): {what} · {esc(grid.series.cost(None))}"
    return (
        f'{progress_html(grid.series, running=not done)}<div class="grid-caption">{caption}</div>'
        f'<div class="grid-wrap"><table class="grid-table"><thead><tr><th></th>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def empty_grid_html() -> str:
    return (
        '<div class="explain-empty">Pick the strengths and step counts and press <b>Build the grid</b>: every cell '
        "runs the Generate tab's image, prompt and seed.</div>"
    )
