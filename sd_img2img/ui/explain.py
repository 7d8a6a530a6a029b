"""The explain table: one image, prompt and seed run at several strengths or step counts, side by side.

Rows, as in InvokeAI's img2img guide: the initial image SD sees, the steps argument, the steps actually
taken, the latent space at each step (a strip) and the output; one column per value. ``run_compare`` yields
the columns as each run finishes so a page can fill the table in; ``compare_html`` draws it.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import secrets
from dataclasses import dataclass
from typing import Callable, Iterator

from PIL import Image

from sd_img2img.config import (
    COMPARE_FRAME_HEIGHT,
    COMPARE_FRAMES_PER_ROW,
    COMPARE_MAX_COLUMNS,
    COMPARE_STEP_COUNTS,
    COMPARE_STRENGTHS,
    MAX_SEED,
)
from sd_img2img.errors import UserInputError, check_choice
from sd_img2img.run.previews import make_strip
from sd_img2img.run.schedule import plan_steps

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


def column_requests(base, by: str, values: list, family=None) -> list:
    """One request per value, all with ``base``'s image, prompt and seed (a seed is picked if it has none).

    ``family`` (the model's ``families.Family``; None: SD 1.x/2.x) fills unset settings and checks the steps. When
    comparing models, each column keeps ``base`` as it is and its model's family fills the rest when it runs.
    """
    from sd_img2img.engine.engine import with_defaults

    seed = base.seed if base.seed is not None else secrets.randbelow(MAX_SEED)
    out = []
    for v in values:
        if by == "model":
            out.append(dataclasses.replace(base, seed=seed))
            continue
        changes = {"strength": float(v)} if by == "strength" else {"steps": int(v)}
        r = with_defaults(dataclasses.replace(base, seed=seed, **changes), family)
        plan_steps(r.steps, r.strength, r.real_steps, family=family)  # every column is checked before any runs
        out.append(r)
    return out


def run_compare(
    engine, base, by: str, values: list, should_stop: Callable[[], bool] | None = None
) -> Iterator[list[Column]]:
    """Run each column in turn; yield the columns after each finishes (the last yield has them all).

    Args:
        engine: the ``Engine`` every column runs on, or, comparing models (``by="model"``), the ``ModelSet`` whose
            listed models ``values`` names.
    """
    if base.init_image is None:
        raise UserInputError(
            "the explain table needs an initial image: upload or draw one on the Generate tab, or pick an example"
        )
    requests = column_requests(base, by, values, None if by == "model" else engine.family)
    columns = [Column(v) for v in values]
    for column, request in zip(columns, requests):
        if should_stop is not None and should_stop():
            break
        runner = engine.engine(column.value) if by == "model" else engine
        column.result = runner.generate(request, should_stop=should_stop)
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
    rows = {"sees": [], "arg": [], "taken": [], "strip": [], "out": []}
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
        rows["sees"].append(f"<td>{_img(frames[0], 'step 0: the initial image SD sees', 'sees', max_height=192)}</td>")
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
    plan = r.plan
    rule = plan.rule if plan is not None else "int"
    label = f"{plan.family}: " if plan is not None and plan.family else ""
    skipped = r.schedule_steps - r.steps_taken
    if r.strength is None:
        note = f"{label}prompt2img: every step of {r.schedule_steps} runs"
    elif rule == "lcm":
        start = f", from t = {plan.start_timestep}" if plan.start_timestep is not None else ""
        note = f"{label}all {r.schedule_steps} run{start} (strength sets where they start)"
    elif r.real_steps:
        note = f"{label}of a {r.schedule_steps}-step schedule" + (f", {skipped} skipped" if skipped > 0 else "")
    elif rule == "flow":
        n, s = r.schedule_steps, r.strength
        note = f"{label}{n} − int({n} − {n} × {s:g}) = {n - int(n - n * s)}, rounds up"
    else:
        n, s = r.schedule_steps, r.strength
        note = f"{label}int({n} × {s:g}) = {min(int(n * s), n)}" + (f", {skipped} skipped" if skipped > 0 else "")
    return note + (", stopped" if r.stopped else "")


def compare_info(columns: list[Column], by: str) -> list[dict]:
    """Per column: the value and the run's info (JSON-ready)."""
    return [{"compare": by, "value": c.value, **c.result.info()} for c in columns if c.result is not None]
