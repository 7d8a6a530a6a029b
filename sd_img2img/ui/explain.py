"""The explain table on the page: one image, prompt and seed run at several strengths, step counts or served models,
side by side (``/compare``). The columns are a series (``series.compare``); this draws them.

Rows, as in InvokeAI's img2img guide: the initial image SD sees, where the image enters, the steps argument, the steps
actually taken, the latent space at each step (a strip) and the output; one column per value.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass

import gradio as gr
from PIL import Image

from sd_img2img.config import COMPARE_FRAME_HEIGHT, COMPARE_FRAMES_PER_ROW, COMPARE_STEPS, COMPARE_STRENGTH
from sd_img2img.engine.previews import make_strip
from sd_img2img.plan.fields import declared, setting
from sd_img2img.plan.request import RANGES
from sd_img2img.series.compare import COMPARE_BY, compare_axis, default_values, plan_compare
from sd_img2img.series.series import Series, SeriesRun
from sd_img2img.ui.endpoints import endpoint, form_names, with_options
from sd_img2img.ui.page import Page, shown_to_user
from sd_img2img.ui.runs import Runs
from sd_img2img.ui.series import SeriesEvents, progress_html
from sd_img2img.ui.sources import SOURCE_CHOICES


@dataclass
class CompareOptions:
    """The explain table's own settings: what changes from column to column, its values, and the steps and strength
    every column shares."""

    compare_by: str = setting(
        "strength",
        label="Compare",
        help="what changes from column to column: strength, steps or model",
        choices=COMPARE_BY,
    )
    values: str = setting(
        default_values("strength"),
        label="Values (one column each)",
        help='the columns\' values: strengths such as "0.4, 0.7", step counts such as "29, 30", or model names',
    )
    steps: int = setting(
        COMPARE_STEPS,
        label="Steps of every column",
        help="each column's steps (comparing strengths or models)",
        range=RANGES["steps"],
    )
    strength: float = setting(
        COMPARE_STRENGTH,
        label="Strength of every column",
        help="each column's strength (comparing step counts or models)",
        range=RANGES["strength"],
    )


OPTIONS = declared(CompareOptions)
COMPARE = with_options(form_names(without=("view",)), OPTIONS, after="negative_prompt")
ROWS = {
    "sees": "initial image SD sees",
    "noise": "where the image enters",
    "arg": "steps argument",
    "taken": "steps actually taken",
    "strip": "latent space at each step",
    "out": "output",
}


def _data_uri(image: Image.Image, max_height: int | None = None, max_width: int | None = None) -> str:
    if max_height and image.height > max_height:
        image = image.resize(
            (max(1, round(image.width * max_height / image.height)), max_height), Image.Resampling.LANCZOS
        )
    if max_width and image.width > max_width:
        image = image.resize(
            (max_width, max(1, round(image.height * max_width / image.width))), Image.Resampling.LANCZOS
        )
    buf = io.BytesIO()
    image.save(buf, format="WEBP", quality=85)
    return "data:image/webp;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _img(image: Image.Image, alt: str, cls: str, **limits) -> str:
    small = " pixelated" if image.height < 128 else ""
    return f'<img class="{cls}{small}" src="{_data_uri(image, **limits)}" alt="{html.escape(alt)}" title="{html.escape(alt)}">'


def column_title(run: SeriesRun, by: str) -> str:
    if by == "model":
        family = run.result.plan.family if run.done and run.result.plan is not None else ""
        return run.model + (f" · {family}" if family else "")
    return run.label


def column_cells(run: SeriesRun, view: str) -> dict[str, str]:
    """One column's cells, by row."""
    if not run.done:
        return {
            key: '<td class="pending"><span class="spinner"></span>waiting…</td>'
            if key == "sees"
            else '<td class="pending"></td>'
            for key in ROWS
        }
    r = run.result
    frames = r.step_images(view)
    reference = r.plan is not None and r.plan.reference
    sees = "step 0: pure noise (the image is a reference)" if reference else "step 0: the initial image SD sees"
    noise = r.plan.noise if r.plan is not None else None
    arg = f"{r.steps}" + (" <small>(real steps)</small>" if r.real_steps else "")
    sheet = make_strip(frames, max_frame_height=COMPARE_FRAME_HEIGHT, per_row=COMPARE_FRAMES_PER_ROW, background=None)
    return {
        "sees": f"<td>{_img(frames[0], sees, 'sees', max_height=192)}</td>",
        "noise": f"<td><small>{html.escape(noise.short() if noise else 'prompt2img')}</small></td>",
        "arg": f'<td><span class="num">{arg}</span></td>',
        "taken": f'<td><span class="num">{r.steps_taken}</span> <small>{html.escape(taken_note(r))}</small></td>',
        "strip": f"<td>{_img(sheet, f'{len(frames)} step images, step 0 first, left to right', 'strip')}"
        f"<small>{len(frames)} pictures: step 0, then each of the {r.steps_taken} steps</small></td>",
        "out": f"<td>{_img(r.output, 'output', 'out', max_width=384)}</td>",
    }


def compare_html(series: Series | None, by: str, view: str = "latents", running: bool = False) -> str:
    """The table; columns not run yet show as pending."""
    if series is None:
        return (
            '<div class="explain-empty">Pick the values to compare and press <b>Build the table</b>. '
            "Each column runs the same image, prompt and seed.</div>"
        )
    head = "".join(f'<th scope="col">{html.escape(column_title(run, by))}</th>' for run in series.runs)
    columns = [column_cells(run, view) for run in series.runs]
    body = "".join(
        f'<tr class="row-{k}"><th scope="row">{label}</th>{"".join(c[k] for c in columns)}</tr>'
        for k, label in ROWS.items()
    )
    what = "model (each with its family's sampler and guidance)" if by == "model" else by
    caption = f"Same image, prompt and seed ({series.seed}) — only the {what} changes."
    return (
        f'{progress_html(series, running)}<div class="explain-table-wrap"><table class="explain-table">'
        f"<caption>{html.escape(caption)}</caption><thead><tr><th></th>{head}</tr></thead><tbody>{body}</tbody>"
        "</table></div>"
    )


def taken_note(r) -> str:
    """How the steps taken came about, by the model family's own rule, with the run's numbers."""
    return r.plan.taken_note(r.steps_taken, r.stopped)


def compare_info(series: Series, by: str) -> list[dict]:
    """Per finished column: what it compared, the value, and the run's info (JSON-ready)."""
    return [
        {"compare": by, "value": run.records["compare"]["value"], "column": run.at[0] + 1, **run.result.info()}
        for run in series.finished
    ]


class Explain:
    """The Explain tab's events: what to compare, and the table (``/compare``)."""

    def __init__(self, page: Page, runs: Runs):
        self.page = page
        self.runs = runs
        self.series = SeriesEvents(page)

    def compare_by(self, by: str):
        """Comparing something else: its default values, and which of the two sliders applies."""
        return (
            default_values(by, self.page.backend.names),
            gr.update(visible=by != "steps"),
            gr.update(visible=by != "strength"),
        )

    def plan(self, values: dict) -> Series:
        """The columns the values ask for, each prepared (``series.compare.plan_compare``)."""
        base = self.runs.request(dict(values, view="latents"))
        axis = compare_axis(values["compare_by"], values["values"], self.page.backend.names)
        name = self.page.model_name(values.get("model"))
        return plan_compare(base, axis, name, self.page.backend.prepare, self.page.family)

    @endpoint((*SOURCE_CHOICES, *COMPARE), OPTIONS)
    def queue(self, values: dict, request: gr.Request = None):
        """At the click, before the table queues: its place in the wait line (``ui.series.SeriesEvents.queue``).
        Returns the initial image and the mask."""
        return self.series.queue(self.plan, {**values, "kind": "table"}, request)

    @endpoint(COMPARE, OPTIONS)
    def compare(self, values: dict, request: gr.Request = None):
        """The explain table: the same image, prompt and seed at several strengths or step counts (on ``model``),
        or across the served models (``compare_by="model"``, ``values`` their names).

        Returns the table (HTML) and one info object per column."""
        by = values["compare_by"]
        with shown_to_user():
            series = self.plan(values)

        def draw(series, files, folder):
            return compare_html(series, by, running=folder is None), compare_info(series, by)

        yield from self.series.stream(series, request, draw, save=False)
