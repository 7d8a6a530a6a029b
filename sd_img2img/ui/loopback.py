"""Loopback on the Generate tab: the strength curve as numbers before it runs, each loop's output and steps taken in a
strip as it finishes, each loop's PNG, the loops as one animation, and ``/loopback``. The series itself (the curve,
seeds, colour matching) is ``series.loopback``'s; the page's side of running a series is ``ui.series``'."""

from __future__ import annotations

import gradio as gr

from sd_img2img.errors import UserInputError
from sd_img2img.models.families import default_family
from sd_img2img.plan.request import with_defaults
from sd_img2img.plan.timing import format_duration
from sd_img2img.series.loopback import (
    COLOUR_MATCH,
    OPTIONS,
    Loopback,
    LoopbackOptions,
    loop_animation,
    loop_plan,
    plan_loopback,
)
from sd_img2img.series.series import estimate_series
from sd_img2img.ui.endpoints import endpoint, form_names, with_options
from sd_img2img.ui.html import esc, refused_plan
from sd_img2img.ui.page import Page, shown_to_user
from sd_img2img.ui.runs import Runs
from sd_img2img.ui.series import SeriesEvents, progress_html, strip_html
from sd_img2img.ui.sources import SOURCE_CHOICES

LOOPBACK = with_options(form_names(without=("view",)), OPTIONS, after="loras")
CURVE = (
    "init_image",
    "source",
    "prompt",
    "strength",
    "steps",
    "real_steps",
    "width",
    "height",
    "resize_mode",
    "model",
    "loops",
    "final_strength",
    "curve",
)  # what the curve line follows


def options_of(values: dict) -> LoopbackOptions:
    return LoopbackOptions(**{name: values[name] for name in OPTIONS if name in values})


class LoopbackPage:
    """The loopback events: the curve line and ``/loopback``."""

    def __init__(self, page: Page, runs: Runs):
        self.page = page
        self.runs = runs
        self.series = SeriesEvents(page)

    def plan(self, values: dict) -> Loopback:
        """The loops the values ask for, the first one prepared (``series.loopback.plan_loopback``)."""
        r = self.runs.request(dict(values, view="latents"))
        name = self.page.model_name(values.get("model"))
        if r.init_image is None:
            raise UserInputError("loopback needs an initial image: upload or draw one, or pick an example")
        first = self.page.backend.prepare(r, name)
        return plan_loopback(first, name, options_of(values), self.page.family(name))

    @endpoint(CURVE, OPTIONS)
    def curve_line(self, values: dict, request=None):
        """What the loops will run, before they run: ``3 loops, strength 0.5 → 0.4 → 0.3 (linear) · 5 + 4 + 3 = 12
        steps run · about 10 s here`` (the time once this server has measured the model), or what is wrong."""
        image, model = values["init_image"], values["model"]
        try:
            family = self.page.family(model) or default_family()
            if image and self.page.status(model).state == "ready":  # (a model not loaded is not loaded for this)
                loopback = self.plan(values)
                line, seconds = loopback.plan.describe(), estimate_series(self.page.backend, loopback.series)
            else:
                r = with_defaults(self.runs.request(values), family)
                line, seconds = loop_plan(r, options_of(values), family).describe(), None
        except (gr.Error, UserInputError, TypeError, ValueError) as e:
            return refused_plan(e)
        tail = "" if image or values["source"] == "sketch" else " · pick an initial image first"
        time = f" · {format_duration(seconds)} here" if seconds is not None else ""
        return f'<div class="plan loop-curve">{esc(line)}{esc(time)}{tail}</div>'

    @endpoint((*SOURCE_CHOICES, *LOOPBACK), OPTIONS)
    def queue(self, values: dict, request: gr.Request = None):
        """At the click, before the loopback queues: its place in the wait line (``ui.series.SeriesEvents.queue``).
        Returns the initial image and the mask."""
        return self.series.queue(lambda values: self.plan(values).series, {**values, "kind": "loopback"}, request)

    @endpoint(LOOPBACK, OPTIONS)
    def loopback(self, values: dict, request: gr.Request = None):
        """Loopback: ``loops`` runs, each output the next initial image, seed + 1 each loop, strength moving from
        ``strength`` to ``final_strength`` along ``curve`` (``linear``, ``aggressive``, ``lazy``); ``colour_match``
        matches each loop's colours to the initial image (per-channel histogram matching).

        Returns the loops' strip (HTML), the loops as one animation (WebP), each loop's PNG (settings embedded, each
        saying which loop it is) and the info (each loop's strength, seed and steps taken)."""
        with shown_to_user():
            loopback = self.plan(values)

        def draw(series, files, folder):
            animation = None
            if folder is not None and series.finished:
                animation = loop_animation(loopback, folder / f"loops-seed{loopback.first.seed}.webp")
            path = str(animation.path) if animation is not None else None
            return loops_html(loopback, folder is None, animation), path, list(files), loops_info(loopback, files)

        yield from self.series.stream(loopback.series, request, draw)


def loops_info(loopback: Loopback, files: list[str]) -> dict:
    """The series as JSON: the curve planned, and each finished loop as ``sd-img2img --loops`` prints it."""
    plan = loopback.plan
    return {
        **loopback.series.info(files),
        "curve": plan.options.curve,
        "strengths": list(plan.strengths) if plan.takes_strength else None,
        "colour_match": COLOUR_MATCH if plan.options.colour_match else None,
    }


def loops_html(loopback: Loopback, running: bool, animation=None) -> str:
    """The strip: the initial image, then each loop (its output and steps taken once run, its strength and seed
    before), with a line saying how far the series is."""
    plan, series = loopback.plan, loopback.series
    heads = [
        f"loop {i + 1}"
        + (f" · strength {plan.strengths[i]:g}" if plan.takes_strength else "")
        + f" · seed {plan.seeds[i]}"
        for i in range(plan.options.loops)
    ]
    tail = f" · animation {animation.describe()}" if animation is not None else ""
    if plan.options.colour_match:
        tail += f" · colours matched to the initial image ({COLOUR_MATCH})"
    return (
        f'<div class="loops">{progress_html(series, running, tail)}'
        f"{strip_html(series, running, start=loopback.first.image, plans=heads)}</div>"
    )
