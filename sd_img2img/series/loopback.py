"""Loopback: each output becomes the next initial image, as AUTOMATIC1111's ``scripts/loopback.py`` does it.

Loop ``i`` (from 0) runs at seed ``s + i`` and at a strength moving from the request's strength (loop 0) to a final
one (the last loop) along a curve of ``progress = i / (loops − 1)``: ``linear`` (progress itself), ``aggressive``
(``sin(progress · π/2)``: most of the change early) or ``lazy`` (``1 − cos(progress · π/2)``: most of it late). Each loop
is a normal request, prepared and run as any other (``prepare``/``run`` are the caller's: a backend's), from the
previous loop's output at the first loop's size.

Colour drift across loops (AUTOMATIC1111 #363, #2754) can be countered by matching each loop's output to the first
initial image: per-channel (R, G, B) histogram matching in numpy, the mapping of ``skimage.exposure.match_histograms``
(AUTOMATIC1111 matches in LAB instead). The matched picture is the loop's output and the next loop's initial image.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image

from sd_img2img.config import (
    DEFAULT_FINAL_STRENGTH,
    DEFAULT_LOOPS,
    LOOP_CURVES,
    LOOP_STRENGTH_DIGITS,
    MAX_LOOPBACK_STEPS,
    MAX_LOOPS,
    MAX_SEED,
)
from sd_img2img.engine.result import GenerationResult
from sd_img2img.errors import UserInputError, check_choice
from sd_img2img.formats.animation import Animation, save_animation
from sd_img2img.models.families import Family
from sd_img2img.plan.checks import check_int
from sd_img2img.plan.prepare import PreparedRequest
from sd_img2img.plan.request import RANGES, GenerationRequest
from sd_img2img.plan.step_plan import StepPlan, plan_steps

COLOUR_MATCH = "per-channel RGB histogram matching to the first initial image"


@dataclass(frozen=True)
class LoopbackOptions:
    """How a loopback runs.

    Args:
        loops: how many runs, 1 to ``config.MAX_LOOPS``.
        final_strength: the last loop's strength (the first loop's is the request's).
        curve: how strength moves between them: ``linear``, ``aggressive`` or ``lazy``.
        colour_match: match each loop's colours to the first initial image's (``COLOUR_MATCH``).
    """

    loops: int = DEFAULT_LOOPS
    final_strength: float = DEFAULT_FINAL_STRENGTH
    curve: str = "linear"
    colour_match: bool = False


def check_loopback(options: LoopbackOptions) -> LoopbackOptions:
    """``options`` with whole loops; ``UserInputError`` naming the value for loops, strength or curve out of range."""
    loops = check_int("loops", options.loops, 1, MAX_LOOPS, f"use 1 to {MAX_LOOPS} loops")
    if options.final_strength not in RANGES["strength"]:
        raise UserInputError(f"the final strength must be above 0 and at most 1, got {options.final_strength!r}")
    check_choice("strength curve", options.curve, LOOP_CURVES)
    return dataclasses.replace(options, loops=loops, final_strength=float(options.final_strength))


def curve_strengths(start: float, final: float, loops: int, curve: str = "linear") -> list[float]:
    """Each loop's strength, loop 0 first: ``start`` to ``final`` along ``curve`` (one loop: ``start``). The loops
    between are rounded to ``config.LOOP_STRENGTH_DIGITS`` decimals, so what runs is what is shown and recorded.

    >>> curve_strengths(0.5, 0.3, 3)
    [0.5, 0.4, 0.3]
    """
    check_choice("strength curve", curve, LOOP_CURVES)
    if loops == 1:
        return [float(start)]
    shape = {
        "linear": lambda p: p,
        "aggressive": lambda p: math.sin(p * math.pi * 0.5),
        "lazy": lambda p: 1 - math.cos(p * math.pi * 0.5),
    }[curve]
    middle = [
        round(start + (final - start) * shape(i / (loops - 1)), LOOP_STRENGTH_DIGITS) for i in range(1, loops - 1)
    ]
    return [float(start), *middle, float(final)]


@dataclass(frozen=True)
class LoopPlan:
    """What a loopback will run, before it runs: each loop's strength, seed and step plan."""

    options: LoopbackOptions
    strengths: tuple[float, ...]
    seeds: tuple[int, ...]
    plans: tuple[StepPlan, ...]
    width: int
    height: int
    takes_strength: bool = True  # False for an edit model: each loop edits the last output, strength does not apply

    @property
    def total_steps(self) -> int:
        return sum(p.steps_to_run for p in self.plans)

    def describe(self) -> str:
        """``3 loops, strength 0.5 → 0.4 → 0.3 (linear) · 5 + 4 + 3 = 12 steps run`` (an edit model: ``3 loops, each
        an edit of the last output (FLUX.1 Kontext takes no strength) · …``)."""
        curve = " → ".join(f"{s:g}" for s in self.strengths)
        steps = " + ".join(str(p.steps_to_run) for p in self.plans)
        total = f"{steps} = {self.total_steps}" if len(self.plans) > 1 else steps
        n = self.options.loops
        how = f"strength {curve} ({self.options.curve})"
        if not self.takes_strength:
            how = f"each an edit of the last output ({self.plans[0].family or 'the model'} takes no strength)"
        return f"{n} loop{'s' * (n != 1)}, {how} · {total} steps run"

    def settings(self, index: int) -> dict:
        """What a loop's PNG records beside its own settings: which loop it is and how the series runs."""
        o = self.options
        return {"loop": index + 1, "loops": o.loops, "curve": o.curve, "start_strength": self.strengths[0],
                "final_strength": o.final_strength, "colour_match": COLOUR_MATCH if o.colour_match else None,
                "init_image": "the initial image" if index == 0 else f"loop {index}'s output"}  # fmt: skip


def plan_loopback(first: PreparedRequest, options: LoopbackOptions, family: Family | None = None) -> LoopPlan:
    """Plan every loop of a loopback that starts with ``first`` (the first loop's prepared request, on a model of
    ``family``); ``UserInputError`` as ``loop_plan``, or without an initial image."""
    if first.image is None:
        raise UserInputError("loopback needs an initial image: each loop starts from the one before")
    r = first.request
    return loop_plan(r.strength, r.steps, r.real_steps, options, family, first.seed, first.width, first.height)


def loop_plan(
    strength: float,
    steps: int,
    real_steps: bool,
    options: LoopbackOptions,
    family: Family | None = None,
    seed: int = 0,
    width: int = 0,
    height: int = 0,
) -> LoopPlan:
    """The loops' strengths, seeds (``seed``, ``seed + 1``, …) and step plans, from the first loop's ``strength`` and
    ``steps``; raises ``UserInputError`` for options out of range, a loop whose strength runs no step, or more steps in
    all than ``config.MAX_LOOPBACK_STEPS``."""
    options = check_loopback(options)
    strengths = curve_strengths(float(strength), options.final_strength, options.loops, options.curve)
    takes = family is None or bool(getattr(family, "takes_strength", True))
    if not takes:  # an edit model: every loop as the family runs it, its image (the last output) a reference
        strengths = [float(family.strength)] * options.loops
    seeds = tuple((seed + i) % MAX_SEED for i in range(options.loops))
    plans = []
    for i, s in enumerate(strengths):
        try:
            plans.append(plan_steps(steps, s, real_steps, family=family))
        except UserInputError as e:
            raise UserInputError(f"loop {i + 1} of {options.loops} (strength {s:g}): {e}") from None
    plan = LoopPlan(options, tuple(strengths), seeds, tuple(plans), width, height, takes)
    if plan.total_steps > MAX_LOOPBACK_STEPS:
        raise UserInputError(
            f"this loopback runs {plan.total_steps} steps ({plan.describe()}), above the limit of {MAX_LOOPBACK_STEPS}; "
            "use fewer loops, fewer steps or lower strengths"
        )
    return plan


def loop_request(first: PreparedRequest, plan: LoopPlan, index: int, image: Image.Image) -> GenerationRequest:
    """Loop ``index``'s request: the first loop's settings from ``image`` (the previous loop's output), at the first
    loop's size, with this loop's strength and seed."""
    return dataclasses.replace(first.request, init_image=image, strength=plan.strengths[index],
                               seed=plan.seeds[index], width=plan.width, height=plan.height)  # fmt: skip


def match_colours(image: Image.Image, reference: Image.Image) -> Image.Image:
    """``image`` with each of its R, G, B channels mapped so that its histogram matches ``reference``'s."""
    source = np.asarray(image.convert("RGB"))
    target = np.asarray(reference.convert("RGB"))
    out = np.empty_like(source)
    for c in range(3):
        values, where, counts = np.unique(source[..., c].ravel(), return_inverse=True, return_counts=True)
        ref_values, ref_counts = np.unique(target[..., c].ravel(), return_counts=True)
        quantiles = np.cumsum(counts) / source[..., c].size
        ref_quantiles = np.cumsum(ref_counts) / target[..., c].size
        mapped = np.interp(quantiles, ref_quantiles, ref_values)
        out[..., c] = np.clip(np.rint(mapped[where]), 0, 255).astype(np.uint8).reshape(source.shape[:2])
    return Image.fromarray(out, "RGB")


@dataclass
class Loop:
    """One finished loop: its result (as run) and its output (colour-matched when asked: the next initial image)."""

    index: int
    strength: float | None  # None for an edit model's loop (its image is a reference: strength does not apply)
    seed: int
    result: GenerationResult
    output: Image.Image


def run_loopback(
    first: PreparedRequest,
    plan: LoopPlan,
    prepare: Callable[[GenerationRequest], PreparedRequest],
    run: Callable[[PreparedRequest], GenerationResult],
    should_stop: Callable[[], bool] | None = None,
) -> Iterator[list[Loop]]:
    """Run the loops in turn; yield the loops finished so far after each (a stop ends the series, keeping them).

    Args:
        first: the first loop's prepared request (its image is the series' first initial image).
        plan: ``plan_loopback(first, …)``.
        prepare: prepares a later loop's request (``loop_request``) for the model.
        run: runs a prepared request to its result.
        should_stop: polled before each loop (the run polls it between steps too).
    """
    loops: list[Loop] = []
    prepared = first
    for i in range(plan.options.loops):
        if should_stop is not None and should_stop():
            break
        if i > 0:
            prepared = prepare(loop_request(first, plan, i, loops[-1].output))
        result = run(prepared)
        output = match_colours(result.output, first.image) if plan.options.colour_match else result.output
        loops.append(Loop(i, plan.strengths[i] if plan.takes_strength else None, plan.seeds[i], result, output))
        yield loops
        if result.stopped:
            break


def loop_animation(start: Image.Image, loops: list[Loop], path, format: str = "webp") -> Animation:
    """The loops as one animation at ``path``: the first initial image, then each loop's output (labelled with its
    strength, seed and steps taken), the last held."""
    strength = lambda x: f" · strength {x.strength:g}" if x.strength is not None else ""  # noqa: E731
    labels = ["start"] + [f"loop {x.index + 1}{strength(x)} · {x.result.steps_taken} taken" for x in loops]
    return save_animation([start] + [x.output for x in loops], labels, path, format)
