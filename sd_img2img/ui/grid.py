"""The Explain tab's strength × steps grid on the page: its cost line before it runs, the cells streaming in as each
finishes (Stop keeps the finished ones), each cell's PNG, and ``/grid``. The grid itself (axes, limits, cells) is
``run.grid``'s; every cell runs through the page's backend as a normal request (``engine.backend.run_to_end``)."""

from __future__ import annotations

import gradio as gr

from sd_img2img.config import DEFAULT_PREVIEW, DEFAULT_RESIZE_MODE, GRID_STEP_COUNTS, GRID_STRENGTHS, GRID_THUMB_SIDE
from sd_img2img.engine.backend import estimate_total, run_to_end
from sd_img2img.errors import UserInputError
from sd_img2img.formats.metadata import save_png
from sd_img2img.models.families import Family
from sd_img2img.plan.rules import rule_of
from sd_img2img.series.grid import Grid, GridAxis, grid_cells, parse_axis, plan_grid, planned_steps, run_grid
from sd_img2img.ui.form import form_values
from sd_img2img.ui.html import esc, image_tag
from sd_img2img.ui.page import Page, session_id, shown_to_user
from sd_img2img.ui.runs import Runs

ROW_AXES = [("Strengths", "strength"), ("Models", "model")]  # strengths down (or the models) …
COLUMN_AXES = [("Step counts", "steps"), ("Models", "model")]  # … step counts across (or the models)


def default_axis_values(by: str, models: tuple[str, ...] = ()) -> str:
    """The values an axis starts with: two strengths, two step counts, or the served models."""
    if by == "model":
        return ", ".join(models)
    return ", ".join(f"{v:g}" for v in (GRID_STRENGTHS if by == "strength" else GRID_STEP_COUNTS))


def rule_line(family: Family | None, strength: float | None = None) -> str:
    """How many of N steps run, by the family's rule, ``strength`` filled in when given: ``SD: int(N × 0.4) of N
    run``, ``FLUX.1-dev: N − int(N − N × s) run (rounds up)``, ``LCM: all N run, strength sets where they start``."""
    return f"{family.label}: {rule_of(family).general(strength)}" if family is not None else ""


class GridPage:
    """The grid's events: the cost line and ``/grid``."""

    def __init__(self, page: Page, runs: Runs):
        self.page = page
        self.runs = runs

    def axes(self, rows: str, row_values: str, columns: str, column_values: str) -> tuple[GridAxis, GridAxis]:
        names = self.page.backend.names
        return parse_axis(rows, row_values, names), parse_axis(columns, column_values, names)

    def family_of(self, name: str) -> Family | None:
        return self.page.family(name)

    def cost(self, image, source, prompt, strength, steps, real_steps, seed, sampler, guidance_scale, width, height,
             resize_mode, model, loras, rows, row_values, columns, column_values):  # fmt: skip
        """The line before the grid runs: ``this grid runs 58 steps in 6 cells · about 1 min here`` (time once this
        server has measured the models' runs), or what is wrong with it."""
        try:
            row_axis, column_axis = self.axes(rows, row_values, columns, column_values)
            base = self.runs.request(form_values(locals()))
            name = self.page.model_name(model)
            cells = grid_cells(base, row_axis, column_axis, name)
            ready = all(self.page.status(m).state == "ready" for m in dict.fromkeys(c.model for c in cells))
            if not (image and ready):  # the steps by the families' rules (a model not loaded is not loaded for this)
                n = planned_steps(cells, self.family_of)
                where = "the drawing is used at the click" if source == "sketch" else "pick an initial image first"
                where = f" · {where}" if not image else ""
                return (f'<div class="plan grid-cost">this grid runs {n} step{"s" * (n != 1)} in {len(cells)} cells'
                        f"{where}</div>")  # fmt: skip
            grid = plan_grid(base, row_axis, column_axis, name, self.page.backend.prepare, self.family_of)
        except gr.Error as e:  # its message is escaped already
            return f'<div class="plan bad">{e.message}</div>'
        except UserInputError as e:
            return f'<div class="plan bad">{esc(e)}</div>'
        return f'<div class="plan grid-cost">{esc(grid.cost(self.seconds(grid)))}</div>'

    def seconds(self, grid: Grid) -> float | None:
        """The grid's time on this server: every cell's estimate (None while any model has not run here)."""
        return estimate_total(self.page.backend, ((cell.prepared, cell.model) for cell in grid.cells))

    def grid(
        self,
        image: str | None,
        prompt: str,
        negative_prompt: str = "",
        rows: str = "strength",
        row_values: str = default_axis_values("strength"),
        columns: str = "steps",
        column_values: str = default_axis_values("steps"),
        strength: float | None = None,
        steps: int | None = None,
        real_steps: bool = False,
        seed: int | None = None,
        sampler: str | None = None,
        guidance_scale: float | None = None,
        width: int | None = None,
        height: int | None = None,
        resize_mode: str = DEFAULT_RESIZE_MODE,
        preview: str = DEFAULT_PREVIEW,
        model: str | None = None,
        loras: str = "",
        request: gr.Request = None,
    ):
        """The strength × steps grid: the same image, prompt and seed once per cell, ``rows`` (``strength`` or
        ``model``) down and ``columns`` (``steps`` or ``model``) across, their values as ``"0.4, 0.7"``, ``"10, 20"``
        or served model names; the setting no axis changes comes from ``strength`` / ``steps``.

        Returns the grid (HTML), its info (each cell's strength, steps, steps taken and PNG) and the cells' PNGs
        (settings embedded, each saying which cell it is)."""
        base = self.runs.request(dict(form_values(locals()), view="latents"))
        with shown_to_user():
            row_axis, column_axis = self.axes(rows, row_values, columns, column_values)
            name = self.page.model_name(model)
            grid = plan_grid(base, row_axis, column_axis, name, self.page.backend.prepare, self.family_of)
        session, folder = session_id(request), self.page.files.new()
        flag = self.page.stops.begin(session)
        files, thumbs = [], {}
        yield grid_html(grid, thumbs, self.family_of), grid_info(grid, files), []
        try:
            run = lambda prepared, model: run_to_end(self.page.backend, prepared, model, flag.is_set)  # noqa: E731
            with shown_to_user():
                for cell in run_grid(grid, run, should_stop=flag.is_set):
                    r = cell.result
                    settings = {**r.settings(), "grid": grid.settings(cell)}
                    path = folder / f"grid-row{cell.row + 1}-col{cell.column + 1}-seed{r.seed}.png"
                    files.append(str(save_png(r.output, path, settings)))
                    thumbs[id(cell)] = image_tag(r.output, f"output, {r.steps_taken} steps taken", "out",
                                                 GRID_THUMB_SIDE)  # fmt: skip
                    yield grid_html(grid, thumbs, self.family_of), grid_info(grid, files), list(files)
        finally:
            self.page.stops.end(session, flag)
        yield grid_html(grid, thumbs, self.family_of, done=True), grid_info(grid, files), list(files)


def grid_info(grid: Grid, files: list[str]) -> dict:
    """The grid as JSON: its axes, the steps it plans, and each finished cell (as ``sd-img2img grid`` prints them)."""
    finished = [c for c in grid.cells if c.result is not None]
    cells = [
        {"row": c.row + 1, "column": c.column + 1, "strength": c.result.strength, "steps": c.result.steps,
         "steps_taken": c.result.steps_taken, "model": c.model, "seed": c.result.seed, "stopped": c.result.stopped,
         "output": files[i].rsplit("/", 1)[-1] if i < len(files) else None}
        for i, c in enumerate(finished)
    ]  # fmt: skip
    return {"rows": grid.rows.by, "columns": grid.columns.by, "total_steps": grid.total_steps,
            "steps_taken": sum(c["steps_taken"] for c in cells), "seed": grid.cells[0].prepared.seed, "cells": cells,
            "stopped": len(finished) < len(grid.cells) or any(c.result.stopped for c in finished)}  # fmt: skip


def header(axis: GridAxis, value, family_of, scope: str, grid: Grid) -> str:
    """A row's or column's header: its value and, for strengths and models, the step rule it runs by."""
    rule = ""
    if axis.by == "model":
        rule = rule_line(family_of(value))
    elif axis.by == "strength" and "model" not in (grid.rows.by, grid.columns.by):
        rule = rule_line(family_of(grid.cells[0].model), float(value))
    small = f"<small>{esc(rule)}</small>" if rule else ""
    return f'<th scope="{scope}">{esc(axis.label(value))}{small}</th>'


def grid_html(grid: Grid, thumbs: dict, family_of, done: bool = False) -> str:
    """The grid as a table: strengths (or models) down, step counts (or models) across, each cell its output with
    the steps taken under it and how they came about; cells not run yet wait (or, after a stop, say so)."""
    head = "".join(header(grid.columns, v, family_of, "col", grid) for v in grid.columns.values)
    body = []
    for r, value in enumerate(grid.rows.values):
        cells = []
        for c in range(len(grid.columns.values)):
            cell = grid.cell(r, c)
            if cell.result is None:
                text = "not run (stopped)" if done else '<span class="spinner"></span>waiting…'
                cells.append(f'<td class="pending">{text}</td>')
                continue
            res = cell.result
            note = res.plan.taken_note(res.steps_taken, res.stopped) if res.plan is not None else ""
            cells.append(f'<td>{thumbs.get(id(cell), "")}<div class="taken"><b>{res.steps_taken}</b> taken</div>'
                         f"<small>{esc(note)}</small></td>")  # fmt: skip
        body.append(f"<tr>{header(grid.rows, value, family_of, 'row', grid)}{''.join(cells)}</tr>")
    seed = grid.cells[0].prepared.seed
    what = f"{esc(grid.rows.by)} down, {esc(grid.columns.by)} across"
    caption = f"Same image, prompt and seed ({seed}): {what} · {esc(grid.cost(None))}"
    return (f'<div class="grid-caption">{caption}</div><div class="grid-wrap"><table class="grid-table"><thead><tr>'
            f"<th></th>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>")  # fmt: skip


def empty_grid_html() -> str:
    return (
        '<div class="explain-empty">Pick the strengths and step counts and press <b>Build the grid</b>: every cell '
        "runs the Generate tab's image, prompt and seed.</div>"
    )
