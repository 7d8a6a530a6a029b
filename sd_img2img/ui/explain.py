"""The explain table: one image, prompt and seed run at several strengths or step counts, side by side.

Rows, as in InvokeAI's img2img guide: the initial image SD sees, the steps argument, the steps actually
taken, the latent space at each step (a strip) and the output; one column per value. ``run_compare`` yields
the columns as each run finishes so a page can fill the table in; ``compare_html`` draws it; ``Explain.compare`` is
the page's event (``/compare``).
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import secrets
from dataclasses import dataclass
from typing import Callable, Iterator

import gradio as gr
from PIL import Image

from sd_img2img.config import (
    COMPARE_FRAME_HEIGHT,
    COMPARE_FRAMES_PER_ROW,
    COMPARE_MAX_COLUMNS,
    COMPARE_STEP_COUNTS,
    COMPARE_STEPS,
    COMPARE_STRENGTH,
    COMPARE_STRENGTHS,
    DEFAULT_PREVIEW,
    DEFAULT_RESIZE_MODE,
    MAX_SEED,
)
from sd_img2img.engine.backend import Backend, run_to_end
from sd_img2img.engine.previews import make_strip
from sd_img2img.errors import UserInputError, check_choice
from sd_img2img.plan.prepare import PreparedRequest
from sd_img2img.ui.form import form_values
from sd_img2img.ui.page import Page, session_id, shown_to_user
from sd_img2img.ui.runs import Runs

COMPARE_BY = ("strength", "steps", "model")


def default_values(by: str, models: tuple[str, ...] = ()) -> str:
    """The values a table compares by default: two strengths, two step counts, or the served models."""
    if by == "model":
        return ", ".join(models[:COMPARE_MAX_COLUMNS])
    values = COMPARE_STRENGTHS if by == "strength" else COMPARE_STEP_COUNTS
    return ", ".join(f"{v:g}" for v in values)


def parse_values(text: str, by: str, models: tuple[str, ...] = ()) -> list:
    """``"0.4, 0.7"`` → ``[0.4, 0.7]`` (strengths), ``"29 30"`` → ``[29, 30]`` (step counts), or served model
    names (``models``; empty text: all of them)."""
    check_choice("comparison", by, COMPARE_BY)
    if by == "model":
        names = [n.strip() for n in str(text or "").split(",") if n.strip()] or list(models[:COMPARE_MAX_COLUMNS])
        if len(names) > COMPARE_MAX_COLUMNS:
            raise UserInputError(
                f"{len(names)} models is more than the table's {COMPARE_MAX_COLUMNS} columns; drop some"
            )
        return [check_choice("model", n, models) for n in names]
    parts = [p for p in str(text or "").replace(",", " ").replace(";", " ").split() if p]
    if not parts:
        raise UserInputError(f"give at least one {by} value to compare, e.g. {default_values(by)}")
    if len(parts) > COMPARE_MAX_COLUMNS:
        raise UserInputError(f"{len(parts)} values is more than the table's {COMPARE_MAX_COLUMNS} columns; drop some")
    values: list = []
    for p in parts:
        try:
            v = float(p)
        except ValueError:
            raise UserInputError(f"{p!r} is not a number; write the {by} values like {default_values(by)}") from None
        if by == "steps":
            if not v.is_integer():
                raise UserInputError(f"step counts are whole numbers, got {p}")
            v = int(v)
        values.append(v)
    return values


@dataclass
class Column:
    value: float | int
    result: object | None = None  # GenerationResult once run

    def title(self, by: str) -> str:
        if by == "model":
            family = self.result.plan.family if self.result is not None and self.result.plan is not None else ""
            return f"{self.value}" + (f" · {family}" if family else "")
        return f"strength {self.value:g}" if by == "strength" else f"{self.value} steps"


def column_requests(base, by: str, values: list) -> list:
    """One request per value, all with ``base``'s image, prompt and seed (a seed is picked if it has none); comparing
    models, each column keeps ``base`` as it is and its model's family fills the rest."""
    seed = base.seed if base.seed is not None else secrets.randbelow(MAX_SEED)
    changes = {"strength": float, "steps": int, "model": None}[by]
    return [dataclasses.replace(base, seed=seed, **({by: changes(v)} if changes else {})) for v in values]


def prepare_columns(backend: Backend, base, by: str, values: list, model: str) -> list[tuple[str, PreparedRequest]]:
    """Each column's model and prepared request, every column checked before any runs.

    Args:
        backend: where the columns run.
        base: the request every column starts from (the Generate tab's image, prompt, seed and settings).
        by: ``strength``, ``steps`` or ``model``; ``values`` are the columns' (comparing models: served names).
        model: the model every column runs on, unless comparing models.
    """
    if base.init_image is None:
        raise UserInputError(
            "the explain table needs an initial image: upload or draw one on the Generate tab, or pick an example"
        )
    names = list(values) if by == "model" else [model] * len(values)
    return [(n, backend.prepare(r, n)) for r, n in zip(column_requests(base, by, values), names)]


def run_compare(
    backend: Backend, columns: list[Column], prepared: list, should_stop: Callable[[], bool] | None = None
) -> Iterator[list[Column]]:
    """Run each column (``prepare_columns``) in turn; yield the columns after each finishes (the last yield has them
    all)."""
    for column, (name, request) in zip(columns, prepared):
        if should_stop is not None and should_stop():
            break
        column.result = run_to_end(backend, request, name, should_stop)
        yield columns


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


def compare_html(columns: list[Column], by: str, view: str = "latents") -> str:
    """The table; columns not run yet show as pending."""
    if not columns:
        return (
            '<div class="explain-empty">Pick the values to compare and press <b>Build the table</b>. '
            "Each column runs the same image, prompt and seed.</div>"
        )
    head = "".join(f'<th scope="col">{html.escape(c.title(by))}</th>' for c in columns)
    rows = {"sees": [], "noise": [], "arg": [], "taken": [], "strip": [], "out": []}
    for c in columns:
        r = c.result
        if r is None:
            for key in rows:
                rows[key].append(
                    '<td class="pending"><span class="spinner"></span>waiting…</td>'
                    if key == "sees"
                    else '<td class="pending"></td>'
                )
            continue
        frames = r.step_images(view)
        reference = r.plan is not None and r.plan.reference
        sees = "step 0: pure noise (the image is a reference)" if reference else "step 0: the initial image SD sees"
        rows["sees"].append(f"<td>{_img(frames[0], sees, 'sees', max_height=192)}</td>")
        noise = r.plan.noise if r.plan is not None else None
        rows["noise"].append(f"<td><small>{html.escape(noise.short() if noise else 'prompt2img')}</small></td>")
        arg = f"{r.steps}" + (" <small>(real steps)</small>" if r.real_steps else "")
        rows["arg"].append(f'<td><span class="num">{arg}</span></td>')
        rows["taken"].append(
            f'<td><span class="num">{r.steps_taken}</span> <small>{html.escape(taken_note(r))}</small></td>'
        )
        sheet = make_strip(
            frames, max_frame_height=COMPARE_FRAME_HEIGHT, per_row=COMPARE_FRAMES_PER_ROW, background=None
        )
        rows["strip"].append(
            f"<td>{_img(sheet, f'{len(frames)} step images, step 0 first, left to right', 'strip')}"
            f"<small>{len(frames)} pictures: step 0, then each of the {r.steps_taken} steps</small></td>"
        )
        rows["out"].append(f"<td>{_img(r.output, 'output', 'out', max_width=384)}</td>")
    labels = {
        "sees": "initial image SD sees",
        "noise": "where the image enters",
        "arg": "steps argument",
        "taken": "steps actually taken",
        "strip": "latent space at each step",
        "out": "output",
    }
    body = "".join(
        f'<tr class="row-{k}"><th scope="row">{labels[k]}</th>{"".join(cells)}</tr>' for k, cells in rows.items()
    )
    seed = next((c.result.seed for c in columns if c.result is not None), None)
    what = "model (each with its family's sampler and guidance)" if by == "model" else by
    caption = f"Same image, prompt and seed{f' ({seed})' if seed is not None else ''} — only the {what} changes."
    return (
        f'<div class="explain-table-wrap"><table class="explain-table"><caption>{html.escape(caption)}</caption>'
        f"<thead><tr><th></th>{head}</tr></thead><tbody>{body}</tbody></table></div>"
    )


def taken_note(r) -> str:
    """How the steps taken came about, by the model family's own rule, with the run's numbers."""
    return r.plan.taken_note(r.steps_taken, r.stopped)


def compare_info(columns: list[Column], by: str) -> list[dict]:
    """Per column: the value and the run's info (JSON-ready)."""
    return [{"compare": by, "value": c.value, **c.result.info()} for c in columns if c.result is not None]


class Explain:
    """The Explain tab's events: what to compare, and the table (``/compare``)."""

    def __init__(self, page: Page, runs: Runs):
        self.page = page
        self.runs = runs

    def compare_by(self, by: str):
        """Comparing something else: its default values, and which of the two sliders applies."""
        return (
            default_values(by, self.page.backend.names),
            gr.update(visible=by != "steps"),
            gr.update(visible=by != "strength"),
        )

    def compare(
        self,
        image: str | None,
        prompt: str,
        negative_prompt: str = "",
        compare_by: str = "strength",
        values: str = default_values("strength"),
        steps: int = COMPARE_STEPS,
        strength: float = COMPARE_STRENGTH,
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
        """The explain table: the same image, prompt and seed at several strengths or step counts (on ``model``),
        or across the served models (``compare_by="model"``, ``values`` their names).

        Returns the table (HTML) and one info object per column."""
        base = self.runs.request(dict(form_values(locals()), view="latents"))
        with shown_to_user():
            vals = parse_values(values, compare_by, self.page.backend.names)
            if compare_by == "model":  # each model runs with its own family's sampler, guidance and LoRAs
                base = dataclasses.replace(base, sampler=None, guidance_scale=None, loras=None)
            prepared = prepare_columns(self.page.backend, base, compare_by, vals, self.page.model_name(model))
        session = session_id(request)
        flag = self.page.stops.begin(session)
        columns = [Column(v) for v in vals]
        yield compare_html(columns, compare_by), []
        try:
            with shown_to_user():
                for done in run_compare(self.page.backend, columns, prepared, should_stop=flag.is_set):
                    yield compare_html(done, compare_by), compare_info(done, compare_by)
        finally:
            self.page.stops.end(session, flag)
