"""The Explain tab's "Where do they part?": two runs that differ in one setting, their steps paired by noise level,
side by side with σ under each, the difference maps between them, a chart of the difference against the noise level
with the parting step marked, one sentence, and ``/diverge``. The two runs and their comparison are
``series.diverge``'s; the page's side of running a series is ``ui.series``'.

Its defaults are the guide's own (strength 0.7, 30 vs 29 steps, k_lms, seed 1592514025, 384×384, prompt "fire"); with
no initial image on the Generate tab it runs the guide's fireplace drawing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import gradio as gr

from sd_img2img import config
from sd_img2img.errors import UserInputError
from sd_img2img.plan.fields import Range, declared, number_text, setting
from sd_img2img.plan.request import RANGES
from sd_img2img.series.diverge import VARIES, Comparison, Diverge, both_values, parse_value, plan_diverge, save_pairs
from sd_img2img.series.series import estimate_series
from sd_img2img.ui.endpoints import endpoint, form_names, with_options
from sd_img2img.ui.examples import draw_fireplace
from sd_img2img.ui.html import esc, image_tag, refused_plan
from sd_img2img.ui.page import Page, shown_to_user
from sd_img2img.ui.runs import Runs
from sd_img2img.ui.series import SeriesEvents, progress_html

SHARED = ("strength", "steps", "seed", "sampler")  # the section's own controls the varied one hides
PARTING = "parting step"  # the chart's upright line
CHART_COLOURS = {"difference": "#ea580c", "threshold": "#8a8178", PARTING: "#b91c1c"}
A, B = (str(v) for v in config.DIVERGE_VALUES)


@dataclass
class DivergeOptions:
    """What the two runs differ in and its two values, and what both share (the guide's settings by default)."""

    vary: str = setting(
        config.DIVERGE_VARY,
        label="Setting that differs",
        help="what the two runs differ in: steps, seed, strength, sampler, guidance_scale, loras (a LoRA's scale) or "
        "model (two served models of one latent space)",
        choices=VARIES,
    )
    value_a: str = setting(
        A,
        label="Run A",
        help='run A\'s value: e.g. "30" (steps), "0.4" (strength), "k_lms", "name:0.8" (a LoRA\'s scale) or a served '
        "model's name",
    )
    value_b: str = setting(B, label="Run B", help="run B's value, written as run A's")
    prompt: str = setting(config.DIVERGE_PROMPT, label="Prompt", help="what both runs make")
    strength: float = setting(
        config.DIVERGE_STRENGTH, label="Strength", help="both runs' strength", range=RANGES["strength"]
    )
    steps: int = setting(config.DIVERGE_VALUES[0], label="Steps", help="both runs' steps", range=RANGES["steps"])
    real_steps: bool = setting(False, label="Real steps", help="steps is the number of steps that must run")
    seed: int = setting(
        config.DIVERGE_SEED,
        label="Seed",
        help=f"both runs' seed, 0 to {number_text(RANGES['seed'].high)}, a number or its digits",
        range=RANGES["seed"],
        annotation=int | str,
    )
    sampler: str = setting(config.DIVERGE_SAMPLER, label="Sampler", help="both runs' sampler (empty: the model's)")
    width: int | None = setting(config.DIVERGE_SIZE, label="Width", help="both runs' width", range=RANGES["width"])
    height: int | None = setting(config.DIVERGE_SIZE, label="Height", help="both runs' height", range=RANGES["height"])
    threshold: float = setting(
        config.DIVERGE_THRESHOLD,
        label="Threshold (of 255)",
        help="the runs part at the first step whose predicted pictures differ by more than this, as the mean "
        "absolute difference of their 0–255 RGB values (identical runs differ by 0)",
        hint="the runs part where the pictures differ by more than this, on average",
        range=Range(0.0, 255.0),
    )


OPTIONS = declared(DivergeOptions)
DIVERGE = with_options(form_names(without=("view",)), OPTIONS, after="init_image")
COST = (
    "init_image",
    "source",
    "guidance_scale",
    "resize_mode",
    "model",
    "loras",
    *OPTIONS,
)  # what the cost line follows


def default_values(vary: str, models: tuple[str, ...] = (), loras: tuple[str, ...] = ()) -> tuple[str, str]:
    """The two values a setting starts with: the guide's 30 and 29 steps, its strengths 0.4 and 0.7, …"""
    seed = config.DIVERGE_SEED
    starts = {
        "steps": (A, B),
        "seed": (str(seed), str(seed + 1)),
        "strength": tuple(f"{s:g}" for s in config.DIVERGE_PRESET_STRENGTHS),
        "sampler": ("k_lms", "k_euler"),
        "guidance_scale": ("7.5", "3"),
        "loras": ("0", "1") if len(loras) == 1 else (f"{loras[0]}:0", f"{loras[0]}:1") if loras else ("", ""),
        "model": (models[0], models[1]) if len(models) > 1 else (models[:1] * 2 or ("", "")),
    }
    return starts[vary]


def shown(vary: str) -> list:
    """The shared controls' visibility: the setting that differs is given per run instead."""
    return [gr.update(visible=name != vary) for name in SHARED]


def preset(vary: str, values: tuple[str, str], steps: int, real_steps: bool) -> tuple:
    """The section's controls for a preset: the setting, its two values, strength 0.7 (the guide's), the steps, real
    steps, and the shared controls shown but the varied one."""
    strength, steps_shown, seed, sampler = (name != vary for name in SHARED)
    return (
        vary,
        *values,
        gr.update(value=config.DIVERGE_STRENGTH, visible=strength),
        gr.update(value=steps, visible=steps_shown),
        real_steps,
        gr.update(visible=seed),
        gr.update(visible=sampler),
    )


class DivergePage:
    """The section's events: the setting picked, the presets, the cost line and ``/diverge``."""

    def __init__(self, page: Page, runs: Runs):
        self.page = page
        self.runs = runs
        self.series = SeriesEvents(page)

    def lora_names(self, model: str | None) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.page.status(model).loras)

    def pick(self, vary: str, model: str | None = None):
        """Another setting picked: its two starting values, and the shared controls without it."""
        return (*default_values(vary, self.page.backend.names, self.lora_names(model)), *shown(vary))

    def preset_guide(self):
        """The guide's comparison: strength 0.7, 30 vs 29 steps."""
        return preset("steps", (A, B), config.DIVERGE_VALUES[0], real_steps=False)

    def preset_strengths(self):
        """The guide's other comparison: strengths 0.4 and 0.7, each running 20 steps (real steps)."""
        return preset("strength", default_values("strength"), config.DIVERGE_PRESET_REAL_STEPS, real_steps=True)

    def plan(self, values: dict) -> Diverge:
        """The two runs the values ask for, each prepared (``series.diverge.plan_diverge``); the guide's fireplace
        drawing when no initial image is given."""
        base = self.runs.request(dict(values, view="x0"))
        if base.init_image is None:
            base = dataclasses.replace(base, init_image=draw_fireplace(config.DIVERGE_SIZE, config.DIVERGE_SIZE))
        name = self.page.model_name(values.get("model"))
        specs = self.page.status(name).loras
        listed = {spec.name: spec.scale for spec in specs}
        with shown_to_user():
            pair = tuple(
                parse_value(values["vary"], values[k], self.page.backend.names, tuple(listed))
                for k in ("value_a", "value_b")
            )
            prepare, family_of = self.page.backend.prepare, self.page.family
            return plan_diverge(base, values["vary"], pair, name, prepare, family_of, values["threshold"], listed)

    @endpoint(COST, OPTIONS)
    def cost(self, values: dict, request=None):
        """The line before the comparison runs: ``two runs, 21 + 20 = 41 steps · about 20 s here`` (the time once this
        server has measured the model's runs), or what is wrong."""
        try:
            if any(self.page.family(name) is None for name in self.models_of(values)):
                return '<div class="plan diverge-cost">two runs: their steps are counted once the model is known</div>'
            diverge = self.plan(values)
        except (gr.Error, UserInputError) as e:
            return refused_plan(e)
        line = diverge.series.cost(estimate_series(self.page.backend, diverge.series))
        if not values.get("init_image"):
            sketch = values.get("source") == "sketch"
            line += " · the drawing is used at the click" if sketch else " · on the guide's fireplace drawing"
        return f'<div class="plan diverge-cost">{esc(line)}</div>'

    def models_of(self, values: dict) -> set[str]:
        names = {self.page.model_name(values.get("model"))}
        if values.get("vary") == "model":
            names |= {v for v in (values.get("value_a"), values.get("value_b")) if v in self.page.backend.names}
        return names

    @endpoint(("source", "sketch", *DIVERGE), OPTIONS)
    def queue(self, values: dict, request: gr.Request = None):
        """At the click, before the comparison queues: its place in the wait line (``ui.series.SeriesEvents.queue``).
        Returns the initial image (a comparison takes no mask)."""
        image, _, _ = self.series.queue(
            lambda values: self.plan(values).series, {**values, "kind": "comparison"}, request
        )
        return image

    @endpoint(DIVERGE, OPTIONS)
    def diverge(self, values: dict, request: gr.Request = None):
        """Where two runs part ways: the same image, prompt and seed run twice, differing only in ``vary`` (``steps``,
        ``seed``, ``strength``, ``sampler``, ``guidance_scale``, ``loras`` or ``model``: ``value_a`` and ``value_b``);
        their steps paired by noise level (σ; the timestep for samplers without one), each pair's predicted pictures
        compared. Without an image it runs the guide's fireplace drawing.

        Returns the pairs (HTML: both runs' steps aligned, σ under each, the difference maps, one sentence), the chart
        of the difference against the noise level, the info (``a`` and ``b``: each run's info; ``aligned``: each pair's
        steps, σ, difference, latent difference and files; ``threshold``; ``parts_at``: the first pair over it, or
        null) and the files (both runs' PNGs, then each pair's two pictures and difference map)."""
        diverge = self.plan(values)
        state: dict = {}

        def draw(series, files, folder):
            comparison = state.get("comparison")
            if comparison is None and (all(s.done for s in series.runs) or folder is not None):
                comparison = state["comparison"] = diverge.compare()
            if folder is not None and comparison is not None:
                state["pairs"] = save_pairs(comparison, folder, "diverge")
            pairs = state.get("pairs", [])
            paths = list(files) + [path for pair in pairs for path in pair]
            info = diverge_info(diverge, comparison, files, pairs)
            return diverge_html(diverge, comparison, running=folder is None), chart_update(comparison), info, paths

        yield from self.series.stream(diverge.series, request, draw)


def diverge_info(diverge: Diverge, comparison: Comparison | None, files: list[str], pairs: list) -> dict:
    """The comparison as JSON, as ``sd-img2img diverge`` prints it (``a`` and ``b``: each run's info and PNG)."""
    names = [f.rsplit("/", 1)[-1] for f in files]
    sides = []
    for i, side in enumerate(diverge.sides):
        sides.append({**side.result.info(), "output": names[i] if i < len(names) else None} if side.done else None)
    base = {"kind": "diverge", "vary": diverge.vary, "values": list(diverge.values), "a": sides[0], "b": sides[1]}
    if comparison is None:
        return {**base, "aligned": [], "threshold": diverge.threshold, "parts_at": None, "stopped": False}
    named = [tuple(p.rsplit("/", 1)[-1] for p in pair) for pair in pairs]
    return {**base, **comparison.info(named), "stopped": diverge.series.stopped}


# -- drawing -----------------------------------------------------------------------------------------------------


def diverge_html(diverge: Diverge, comparison: Comparison | None, running: bool) -> str:
    """The sentence, the progress line and the aligned strips (run A's steps, run B's, their difference maps)."""
    head = progress_html(diverge.series, running)
    if comparison is None or not comparison.entries:
        text = "" if comparison is None else comparison.sentence()
        return f'<div class="diverge">{head}<p class="diverge-sentence">{esc(text)}</p></div>' if text else head
    a, b = diverge.sides
    rows = [
        strip_row(f"A · {a.label}", comparison, "a"),
        strip_row(f"B · {b.label}", comparison, "b"),
        map_row(comparison),
    ]
    parts = comparison.parts_at
    heads = "".join(
        f'<th scope="col"{_parts(i, comparison)}>{"parts: " if i == parts else ""}step {i}</th>'
        for i in range(len(comparison.entries))
    )
    note = (
        f"Each column pairs a step of the shorter run with the other run's step nearest in noise level; the pictures "
        f"are each step's predicted final image (step 0: where the run starts). Maps: |A − B|, black where they agree, "
        f"pale yellow {config.DIVERGE_MAP_FULL}+ levels apart (of 255). They part where the mean difference exceeds "
        f"{comparison.threshold:g}."
    )
    return (
        f'<div class="diverge">{head}<p class="diverge-sentence">{esc(comparison.sentence())}</p>'
        f'<p class="diverge-note">{esc(note)}</p><div class="diverge-wrap"><table class="diverge-table">'
        f"<thead><tr><th></th>{heads}</tr></thead><tbody>{''.join(rows)}</tbody></table></div></div>"
    )


def strip_row(title: str, comparison: Comparison, side: str) -> str:
    cells = []
    for i, entry in enumerate(comparison.entries):
        step = entry.a_step if side == "a" else entry.b_step
        sigma = entry.sigma_a if side == "a" else entry.sigma_b
        t = entry.timestep_a if side == "a" else entry.timestep_b
        level = f"σ {sigma:.2f}" if sigma is not None else (f"t {t}" if t is not None else "start")
        picture = entry.a_image if side == "a" else entry.b_image
        alt = f"run {side.upper()}, step {step}, {level}"
        cells.append(
            f"<td{_parts(i, comparison)}>{image_tag(picture, alt, _small(picture), config.DIVERGE_THUMB_SIDE)}"
            f"<small>step {step} · {esc(level)}</small></td>"
        )
    return f'<tr><th scope="row">{esc(title)}</th>{"".join(cells)}</tr>'


def map_row(comparison: Comparison) -> str:
    cells = []
    for i, entry in enumerate(comparison.entries):
        latent = f" · latents {entry.latent_difference:.3f}" if entry.latent_difference is not None else ""
        alt = f"difference map of pair {i}: {entry.difference:.2f} of 255 on average{latent}"
        cells.append(
            f"<td{_parts(i, comparison)}>{image_tag(entry.map, alt, _small(entry.map), config.DIVERGE_THUMB_SIDE)}"
            f"<small><b>{entry.difference:.2f}</b></small></td>"
        )
    return f'<tr class="maps"><th scope="row">|A − B|</th>{"".join(cells)}</tr>'


def _small(picture) -> str:
    """``pixelated`` for a picture smaller than its place on the page (an ``approx`` preview is 1/8 of the size)."""
    return "pixelated" if max(picture.size) < config.DIVERGE_THUMB_SIDE else ""


def _parts(i: int, comparison: Comparison) -> str:
    return ' class="parts"' if i == comparison.parts_at else ""


def chart_rows(comparison: Comparison | None):
    """The chart's points: each pair's difference at the shorter run's noise level, the threshold across, and the
    parting step as an upright line."""
    import pandas as pd

    columns = ["level", "difference", "line"]
    if comparison is None or not comparison.entries:  # typed, so that the chart's axes are numbers from the start
        return pd.DataFrame(
            {"level": pd.Series(dtype=float), "difference": pd.Series(dtype=float), "line": pd.Series(dtype=str)}
        )
    points = [(e.level(comparison.shorter), e.difference) for e in comparison.entries]
    points = [(x, y) for x, y in points if x is not None]
    rows = [dict(level=x, difference=y, line="difference") for x, y in points]
    if points:
        low, high = min(x for x, _ in points), max(x for x, _ in points)
        rows += [dict(level=x, difference=comparison.threshold, line="threshold") for x in (high, low)]
        i = comparison.parts_at
        level = comparison.entries[i].level(comparison.shorter) if i is not None else None
        if level is not None:
            top = max(max(y for _, y in points), comparison.threshold) * 1.1
            rows += [dict(level=level, difference=y, line=PARTING) for y in (0.0, top)]
    return pd.DataFrame(rows, columns=columns)


def chart_update(comparison: Comparison | None):
    """The chart shown with the pairs once there are any, hidden until then (gradio 6.31 draws no line in a line plot
    that was on the page empty and then got points; one that appears with its points draws them)."""
    rows = chart_rows(comparison)
    return gr.update(value=rows, visible=not rows.empty, x_title=level_title(comparison))


def level_title(comparison: Comparison | None) -> str:
    """The chart's x axis: σ, or the timestep for a run whose sampler has no σ."""
    by_sigma = comparison is None or not comparison.entries or comparison.level_text(comparison.entries[-1])[0] == "σ"
    return f"{'noise level σ' if by_sigma else 'timestep t'}, falling as the steps run"


def diverge_chart(comparison: Comparison | None = None) -> gr.LinePlot:
    """The chart: the difference (0–255) against the noise level, falling as the steps run (so from left to right);
    hidden until there are pairs to draw (``chart_update``)."""
    rows = chart_rows(comparison)
    return gr.LinePlot(
        rows,
        visible=not rows.empty,
        x="level",
        y="difference",
        color="line",
        title="Difference at each noise level",
        label="Difference at each noise level",
        show_label=False,  # the title says it
        x_title=level_title(comparison),
        y_title="mean difference (of 255)",
        color_title="",
        color_map=CHART_COLOURS,
        sort="-x",
        height=280,
        elem_id="diverge-chart",
    )


def empty_html() -> str:
    what = both_values(config.DIVERGE_VARY, config.DIVERGE_VALUES)
    return (
        f'<div class="explain-empty">Press <b>Compare the two runs</b>: {esc(what)} at strength '
        f"{config.DIVERGE_STRENGTH:g}, as in the guide, each step of one run next to the other's at the same noise "
        "level.</div>"
    )
