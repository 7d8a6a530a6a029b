"""Loopback: each output becomes the next initial image, as AUTOMATIC1111's ``scripts/loopback.py`` does it, as a
``Series`` of loops.

Loop ``i`` (from 0) runs at seed ``s + i`` and at a strength moving from the request's strength (loop 0) to a final
one (the last loop) along a curve of ``progress = i / (loops − 1)``: ``linear`` (progress itself), ``aggressive``
(``sin(progress · π/2)``: most of the change early) or ``lazy`` (``1 − cos(progress · π/2)``: most of it late). Each loop
is a normal request, prepared and run as any other, from the previous loop's output at the first loop's size.

Colour drift across loops (AUTOMATIC1111 #363, #2754) can be countered by matching each loop's output to the first
initial image: per-channel (R, G, B) histogram matching in numpy, the mapping of ``skimage.exposure.match_histograms``
(AUTOMATIC1111 matches in LAB instead). The matched picture is the loop's output and the next loop's initial image.
"""

from __future__ import annotations

import dataclasses
import math
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
from sd_img2img.errors import UserInputError, check_choice
from sd_img2img.formats.animation import Animation, save_animation
from sd_img2img.models.families import Family
from sd_img2img.plan.checks import check_int
from sd_img2img.plan.fields import Range, declared, setting
from sd_img2img.plan.prepare import PreparedRequest
from sd_img2img.plan.request import RANGES, GenerationRequest
from sd_img2img.plan.step_plan import StepPlan, plan_steps
from sd_img2img.series.axes import takes_strength
from sd_img2img.series.series import Series, SeriesRun, check_total_steps

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

    loops: int = setting(
        DEFAULT_LOOPS,
        label="Loops",
        help=f"how many runs, 1 to {MAX_LOOPS}, each output the next initial image, seed + 1 each loop",
        range=Range(1, MAX_LOOPS, whole=True),
    )
    final_strength: float = setting(
        DEFAULT_FINAL_STRENGTH,
        label="Final strength",
        help="the last loop's strength (the first loop's is the strength)",
        range=RANGES["strength"],
    )
    curve: str = setting(
        "linear",
        label="Strength curve",
        help="how strength moves from the first loop's to the final one (AUTOMATIC1111's loopback curves)",
        choices=LOOP_CURVES,
    )
    colour_match: bool = setting(
        False,
        label="Match colours to the initial image",
        help="per-channel histogram matching of each loop's output to the initial image",
        form=bool,
    )


OPTIONS = declared(LoopbackOptions)


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

    def records(self, index: int) -> dict:
        """What a loop's PNG records beside its own settings: which loop it is and how the series runs."""
        o = self.options
        return {
            "loopback": {
                "loop": index + 1,
                "loops": o.loops,
                "curve": o.curve,
                "start_strength": self.strengths[0],
                "final_strength": o.final_strength,
                "colour_match": COLOUR_MATCH if o.colour_match else None,
                "init_image": "the initial image" if index == 0 else f"loop {index}'s output",
            }
        }


def loop_plan(
    request: GenerationRequest, options: LoopbackOptions, family: Family | None = None, seed: int = 0
) -> LoopPlan:
    """The loops' strengths, seeds (``seed``, ``seed + 1``, …) and step plans, from the first loop's ``request`` (its
    strength, steps and real steps, the family's defaults filled in); raises ``UserInputError`` for options out of
    range, a loop whose strength runs no step, or more steps in all than ``config.MAX_LOOPBACK_STEPS``."""
    options = check_loopback(options)
    strengths = curve_strengths(float(request.strength), options.final_strength, options.loops, options.curve)
    takes = takes_strength(family)
    if not takes:  # an edit model: every loop as the family runs it, its image (the last output) a reference
        strengths = [float(family.strength)] * options.loops
    seeds = tuple((seed + i) % MAX_SEED for i in range(options.loops))
    plans = []
    for i, s in enumerate(strengths):
        try:
            plans.append(plan_steps(request.steps, s, request.real_steps, family=family))
        except UserInputError as e:
            raise UserInputError(f"loop {i + 1} of {options.loops} (strength {s:g}): {e}") from None
    return LoopPlan(options, tuple(strengths), seeds, tuple(plans), takes)


def loop_request(first: PreparedRequest, plan: LoopPlan, index: int, image: Image.Image) -> GenerationRequest:
    """Loop ``index``'s request: the first loop's settings from ``image`` (the previous loop's output), at the first
    loop's size, with this loop's strength and seed."""
    return dataclasses.replace(
        first.request,
        init_image=image,
        strength=plan.strengths[index],
        seed=plan.seeds[index],
        width=first.width,
        height=first.height,
    )


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
class Loopback:
    """A loopback as it runs: its first loop's prepared request, its plan, and its loops as a ``Series``."""

    first: PreparedRequest
    plan: LoopPlan
    series: Series


def plan_loopback(
    first: PreparedRequest, model: str, options: LoopbackOptions, family: Family | None = None
) -> Loopback:
    """Every loop of a loopback that starts with ``first`` (the first loop's prepared request, on ``model`` of
    ``family``). A later loop is prepared from the loop before it when its turn comes; until then it stands as the
    first loop's request with its own strength, seed and step plan, which is what its cost is.

    Raises ``UserInputError`` as ``loop_plan``, without an initial image, or over ``config.MAX_LOOPBACK_STEPS``."""
    if first.image is None:
        raise UserInputError("loopback needs an initial image: each loop starts from the one before")
    plan = loop_plan(first.request, options, family, first.seed)
    runs = [
        SeriesRun(f"loop {i + 1}", model, first if i == 0 else stand_in(first, plan, i), (i,), plan.records(i))
        for i in range(plan.options.loops)
    ]
    keep = (lambda run: match_colours(run.result.output, first.image)) if plan.options.colour_match else None
    chain = lambda run, previous: loop_request(first, plan, run.at[0], previous.output)  # noqa: E731
    series = Series("loopback", "loop", runs, chain=chain, keep=keep, description=plan.describe())
    check_total_steps(series, MAX_LOOPBACK_STEPS, "use fewer loops, fewer steps or lower strengths")
    return Loopback(first, plan, series)


def stand_in(first: PreparedRequest, plan: LoopPlan, index: int) -> PreparedRequest:
    """Loop ``index`` before the loop before it has run: the first loop's prepared request with this loop's strength,
    seed and step plan (what its cost and its place in the wait line are reckoned from)."""
    request = dataclasses.replace(first.request, strength=plan.strengths[index], seed=plan.seeds[index])
    return dataclasses.replace(first, request=request, seed=plan.seeds[index], plan=plan.plans[index])


def loop_animation(loopback: Loopback, path, format: str = "webp") -> Animation:
    """The finished loops as one animation at ``path``: the first initial image, then each loop's output (labelled
    with its strength and steps taken), the last held."""
    start, loops = loopback.first.image, loopback.series.finished
    strength = lambda x: f" · strength {x.result.strength:g}" if x.result.strength is not None else ""  # noqa: E731
    labels = ["start"] + [f"loop {x.at[0] + 1}{strength(x)} · {x.result.steps_taken} taken" for x in loops]
    return save_animation([start] + [x.output for x in loops], labels, path, format)
