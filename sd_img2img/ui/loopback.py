"""Loopback on the Generate tab: the strength curve as numbers before it runs, each loop's output and steps taken in a
strip as it finishes, each loop's PNG, the loops as one animation, and ``/loopback``. The series itself (the curve,
seeds, colour matching) is ``run.loopback``'s; every loop runs through the page's backend as a normal request."""

from __future__ import annotations

import dataclasses

import gradio as gr

from sd_img2img.config import DEFAULT_FINAL_STRENGTH, DEFAULT_LOOPS, DEFAULT_PREVIEW, DEFAULT_RESIZE_MODE
from sd_img2img.engine.backend import estimate_total, run_to_end
from sd_img2img.errors import UserInputError
from sd_img2img.formats.metadata import save_png
from sd_img2img.models.families import default_family
from sd_img2img.plan.timing import format_duration
from sd_img2img.series.loopback import (
    COLOUR_MATCH,
    Loop,
    LoopbackOptions,
    LoopPlan,
    loop_animation,
    loop_plan,
    plan_loopback,
    run_loopback,
)
from sd_img2img.ui.form import form_values
from sd_img2img.ui.html import esc, image_tag
from sd_img2img.ui.page import Page, session_id, shown_to_user
from sd_img2img.ui.runs import Runs

THUMB_SIDE = 160  # a loop's picture in the strip


class LoopbackPage:
    """The loopback events: the curve line and ``/loopback``."""

    def __init__(self, page: Page, runs: Runs):
        self.page = page
        self.runs = runs

    def curve_line(self, image, source, prompt, strength, steps, real_steps, width, height, resize_mode, model, loops,
                   final_strength, curve):  # fmt: skip
        """What the loops will run, before they run: ``3 loops, strength 0.5 → 0.4 → 0.3 (linear) · 5 + 4 + 3 = 12
        steps run · about 10 s here`` (the time once this server has measured the model), or what is wrong."""
        options = LoopbackOptions(loops, final_strength, curve)
        try:
            family = self.page.family(model) or default_family()
            if image and self.page.status(model).state == "ready":  # (a model not loaded is not loaded for this)
                first = self.page.backend.prepare(self.runs.request(form_values(locals())), self.page.model_name(model))
                plan = plan_loopback(first, options, family)
                seconds = self.seconds(first, plan, model)
            else:
                r = self.runs.request(form_values(locals()))
                plan = loop_plan(r.strength or family.strength, r.steps or family.steps, r.real_steps, options, family)
                seconds = None
        except gr.Error as e:  # its message is escaped already
            return f'<div class="plan bad">{e.message}</div>'
        except (UserInputError, TypeError, ValueError) as e:
            return f'<div class="plan bad">{esc(e)}</div>'
        tail = "" if image or source == "sketch" else " · pick an initial image first"
        return f'<div class="plan loop-curve">{esc(plan.describe())}{esc(plan_time(seconds))}{tail}</div>'

    def seconds(self, first, plan: LoopPlan, model) -> float | None:
        """Every loop's estimate on this server, from the first loop's prepared request with each loop's step plan."""
        name = self.page.model_name(model)
        return estimate_total(
            self.page.backend, ((dataclasses.replace(first, plan=steps), name) for steps in plan.plans)
        )

    def loopback(
        self,
        image: str | None,
        prompt: str,
        negative_prompt: str = "",
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
        loops: int = DEFAULT_LOOPS,
        final_strength: float = DEFAULT_FINAL_STRENGTH,
        curve: str = "linear",
        colour_match: bool = False,
        request: gr.Request = None,
    ):
        """Loopback: ``loops`` runs, each output the next initial image, seed + 1 each loop, strength moving from
        ``strength`` to ``final_strength`` along ``curve`` (``linear``, ``aggressive``, ``lazy``); ``colour_match``
        matches each loop's colours to the initial image (per-channel histogram matching).

        Returns the loops' strip (HTML), the loops as one animation (WebP), each loop's PNG (settings embedded, each
        saying which loop it is) and the info (each loop's strength, seed and steps taken)."""
        r = self.runs.request(dict(form_values(locals()), view="latents"))
        name = self.page.model_name(model)
        with shown_to_user():
            if r.init_image is None:
                raise UserInputError("loopback needs an initial image: upload or draw one, or pick an example")
            first = self.page.backend.prepare(r, name)
            plan = plan_loopback(first, LoopbackOptions(loops, final_strength, curve, bool(colour_match)),
                                 self.page.family(name))  # fmt: skip
        session, folder = session_id(request), self.page.files.new()
        flag = self.page.stops.begin(session)
        done: list[Loop] = []
        files: list[str] = []
        yield loops_html(first, plan, done, running=True), None, [], loops_info(plan, done, files)
        try:
            prepare = lambda req: self.page.backend.prepare(req, name)  # noqa: E731
            run = lambda prepared: run_to_end(self.page.backend, prepared, name, flag.is_set)  # noqa: E731
            with shown_to_user():
                for done in run_loopback(first, plan, prepare, run, should_stop=flag.is_set):
                    loop = done[-1]
                    settings = {**loop.result.settings(), "loopback": plan.settings(loop.index)}
                    path = folder / f"loop{loop.index + 1}-of-{plan.options.loops}-seed{loop.seed}.png"
                    files.append(str(save_png(loop.output, path, settings)))
                    yield loops_html(first, plan, done, running=True), None, list(files), loops_info(plan, done, files)
        finally:
            self.page.stops.end(session, flag)
        animation = loop_animation(first.image, done, folder / f"loops-seed{first.seed}.webp") if done else None
        path = str(animation.path) if animation is not None else None
        yield loops_html(first, plan, done, animation=animation), path, list(files), loops_info(plan, done, files)


def plan_time(seconds: float | None) -> str:
    return f" · {format_duration(seconds)} here" if seconds is not None else ""


def loops_info(plan: LoopPlan, loops: list[Loop], files: list[str]) -> dict:
    """The series as JSON: the curve planned, and each finished loop as ``sd-img2img --loops`` prints it."""
    entries = [{"loop": x.index + 1, "strength": x.strength, "seed": x.seed, "steps_taken": x.result.steps_taken,
                "output": files[i].rsplit("/", 1)[-1] if i < len(files) else None} for i, x in enumerate(loops)]  # fmt: skip
    return {"loops": entries, "curve": plan.options.curve, "strengths": list(plan.strengths) if plan.takes_strength else None,
            "colour_match": COLOUR_MATCH if plan.options.colour_match else None,
            "steps_taken": sum(e["steps_taken"] for e in entries),
            "stopped": len(loops) < plan.options.loops or any(x.result.stopped for x in loops)}  # fmt: skip


def loops_html(first, plan: LoopPlan, loops: list[Loop], running: bool = False, animation=None) -> str:
    """The strip: the initial image, then each loop (its output and steps taken once run, its strength and seed
    before), with a line saying how far the series is."""
    n = plan.options.loops
    cards = [f'<figure class="loop start">{image_tag(first.image, "the initial image", "", THUMB_SIDE)}'
             "<figcaption>start</figcaption></figure>"]  # fmt: skip
    for i in range(n):
        strength = f" · strength {plan.strengths[i]:g}" if plan.takes_strength else ""
        head = f"loop {i + 1}{strength} · seed {plan.seeds[i]}"
        if i < len(loops):
            x = loops[i]
            picture = image_tag(x.output, f"loop {i + 1}'s output", "", THUMB_SIDE)
            taken = f"<b>{x.result.steps_taken}</b> taken" + (" (stopped)" if x.result.stopped else "")
        else:
            waiting = '<span class="spinner"></span>waiting…' if running else "not run (stopped)"
            picture, taken = f'<div class="loop-pending">{waiting}</div>', f"{plan.plans[i].steps_to_run} to run"
        cards.append(f'<figure class="loop">{picture}<figcaption>{esc(head)}<br>{taken}</figcaption></figure>')
    if running:
        status = f"Running loop {min(len(loops) + 1, n)} of {n}…"
    else:
        status = (
            f"Done: {len(loops)} loop{'s' * (len(loops) != 1)}"
            if len(loops) == n
            else f"Stopped after {len(loops)} of {n} loops"
        )
        status += f" · {sum(x.result.steps_taken for x in loops)} steps taken"
        if animation is not None:
            status += f" · animation {animation.describe()}"
    colour = f" · colours matched to the initial image ({COLOUR_MATCH})" if plan.options.colour_match else ""
    return (f'<div class="loops"><div class="loops-status">{esc(status)}{esc(colour)}</div>'
            f'<div class="loop-strip">{"".join(cards)}</div></div>')  # fmt: skip
