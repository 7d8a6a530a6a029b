"""Honest time: what a planned run will take on *this* server, learnt from the runs it has done.

A run's time is a few parts, each measured by the engine on every run (``GenerationResult.seconds``):

- ``text_encode``: the prompts through the text encoder (0 when the prompt cache already holds them);
- ``before_steps``: from the encoded prompts to the first step: for img2img mostly the VAE encoding the init
  image (scales with the pixels), for prompt2img next to nothing;
- per UNet evaluation: the steps' time over the UNet calls (Heun/DPM2 take two a step, PLMS one more on its
  first), including the step pictures the run's preview decodes (scales with the pixels; guidance doubles the
  batch);
- ``after_steps``: the last step to the output: the VAE decode and the safety checker (scales with the pixels).

``TimingModel`` keeps the latest measurement of each part for each model, size and guidance on/off (the newest
run at a size replaces the one before: the process's first run at a size is slower, as its kernels are set up,
and is forgotten at once), and estimates a run at another size
from the nearest measured one (within 4× in pixels), in proportion to the pixels. It knows nothing until a run was measured:
``estimate`` returns ``None`` then. Why no calibration at load: on a 2-vCPU Space one 512×512 SD-Turbo step is
3–5 s and an SD1.5 guided step 6–10 s, so calibrating would delay the page for every start, and a short dummy run
at a small size extrapolates poorly to 512×512 (attention grows faster than the pixels); the first visitor's run
is the calibration, and it is measured exactly.

``format_plan`` and ``format_wait`` write the page's lines: "7 steps will run · about 40 s here",
"about 1 min 20 s before yours starts (2 runs ahead)".
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

from sd_img2img.config import DEFAULT_PREVIEW

ESTIMATE_MAX_SIZE_RATIO = 4.0  # no estimate from a measured size more than 4× smaller or larger in pixels
GUIDED_BATCH_FACTOR = 2.0  # guidance on runs the UNet on a batch of two: ~2× a step without (measured 9.9 vs 4.9 s)
TWO_CALL_SAMPLERS = ("k_heun", "k_dpm_2", "k_dpm_2_a")  # two UNet calls a step (the first step: one)


def model_calls(sampler: str, steps: int) -> int:
    """UNet evaluations a run of ``steps`` steps makes with ``sampler`` (as ``GenerationResult.model_calls``)."""
    if steps <= 0:
        return 0
    if sampler in TWO_CALL_SAMPLERS:
        return 2 * steps - 1
    if sampler == "plms":
        return steps + 1
    return steps


@dataclass
class RunTimes:
    """One finished run, as the timing model learns it."""

    model: str
    pixels: int
    guidance: bool  # classifier-free guidance on (batch of two)
    mode: str  # img2img or txt2img
    preview: str
    text_encode: float | None  # None: the prompts came from the cache (not a measurement of encoding)
    before_steps: float
    step_calls: int
    steps_seconds: float
    after_steps: float


class TimingModel:
    """Learns per-part seconds from finished runs and estimates planned ones (thread-safe)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._rates: dict[tuple, dict[int, float]] = {}  # part key → {pixels: seconds per pixel (per call)}
        self._text: dict[str, float] = {}  # model → seconds to encode the prompts

    def _learn(self, key: tuple, pixels: int, value: float) -> None:
        self._rates.setdefault(key, {})[pixels] = value / pixels

    def observe(self, run: RunTimes) -> None:
        """Learn from a finished run (a stopped run's steps still count)."""
        if run.pixels <= 0:
            return
        with self._lock:
            if run.text_encode is not None:
                self._text[run.model] = run.text_encode
            if run.step_calls > 0:
                self._learn(
                    ("step", run.model, run.guidance, run.preview), run.pixels, run.steps_seconds / run.step_calls
                )
            self._learn(("before", run.model, run.mode), run.pixels, run.before_steps)
            self._learn(("after", run.model), run.pixels, run.after_steps)

    def _per_pixel(self, key: tuple, pixels: int) -> float | None:
        """Seconds per pixel at the measured size nearest to ``pixels``; None when none was measured within
        ``ESTIMATE_MAX_SIZE_RATIO`` of it (fixed costs make a small run's rate a poor guide to a large one's)."""
        known = self._rates.get(key)
        if not known:
            return None
        nearest = min(known, key=lambda p: abs(math.log(p / pixels)))
        if abs(math.log(nearest / pixels)) > math.log(ESTIMATE_MAX_SIZE_RATIO):
            return None
        return known[nearest]

    def _step_seconds(self, model: str, pixels: int, guidance: bool, preview: str) -> float | None:
        rate = self._per_pixel(("step", model, guidance, preview), pixels)
        if rate is not None:
            return rate * pixels
        steps = [k for k in self._rates if k[0] == "step" and k[1] == model]
        for key in steps:  # another preview decoder, the same guidance
            rate = self._per_pixel(key, pixels) if key[2] == guidance else None
            if rate is not None:
                return rate * pixels
        for key in steps:  # guidance the other way: a batch of two is ~2× one
            rate = self._per_pixel(key, pixels)
            if rate is not None:
                return rate * pixels * (GUIDED_BATCH_FACTOR if guidance else 1 / GUIDED_BATCH_FACTOR)
        return None

    def estimate(
        self,
        model: str,
        *,
        pixels: int,
        guidance: bool,
        calls: int,
        mode: str = "img2img",
        preview: str = "approx",
        text_cached: bool = False,
    ) -> float | None:
        """Seconds a run will take on this server, or ``None`` while nothing has been measured for ``model``.

        Args:
            model: the engine's model.
            pixels: width × height of the run.
            guidance: classifier-free guidance on (guidance scale > 1).
            calls: UNet evaluations the run will make (``model_calls``).
            mode: ``img2img`` (the VAE encodes the init image) or ``txt2img``.
            preview: the run's preview decoder (its per-step cost is part of the step).
            text_cached: the prompts are in the prompt cache, so they are not encoded again.
        """
        with self._lock:
            step = self._step_seconds(model, pixels, guidance, preview)
            if step is None:
                return None
            before = self._per_pixel(("before", model, mode), pixels)
            if before is None:  # the other mode only: img2img's encode is an upper bound for txt2img's nothing
                before = 0.0 if mode == "txt2img" else (self._per_pixel(("before", model, "txt2img"), pixels) or 0.0)
            after = self._per_pixel(("after", model), pixels) or 0.0
            text = 0.0 if text_cached else self._text.get(model, 0.0)
            return text + before * pixels + calls * step + after * pixels


def format_duration(seconds: float) -> str:
    """``about 4 s``, ``about 40 s``, ``about 1 min 20 s``: rounded as far as an estimate deserves."""
    if seconds < 10:
        return f"about {max(1, round(seconds))} s"
    if seconds < 60:
        return f"about {round(seconds / 5) * 5} s"
    total = round(seconds / 10) * 10
    minutes, rest = divmod(total, 60)
    return f"about {minutes} min" + (f" {rest} s" if rest else "")


def format_plan(steps: int, seconds: float | None) -> str:
    """The page's plan line: ``7 steps will run · about 40 s here`` (no time while none is known)."""
    line = f"{steps} step{'s' * (steps != 1)} will run"
    return line if seconds is None else f"{line} · {format_duration(seconds)} here"


def format_wait(seconds_ahead: float | None, ahead: int | list[str]) -> str:
    """A queued visitor's wait: ``about 1 min 20 s before yours starts (2 runs ahead)``, ``… (a grid of 6 cells and 1
    run ahead)``. ``ahead``: what is ahead, each as the wait line names it (``a run``, ``a grid of 6 cells``), or how
    many single runs."""
    items = ["a run"] * ahead if isinstance(ahead, int) else list(ahead)
    if not items:
        return "yours runs next"
    text = f"{describe_ahead(items)} ahead"
    return text if seconds_ahead is None else f"{format_duration(seconds_ahead)} before yours starts ({text})"


def describe_ahead(items: list[str]) -> str:
    """``2 runs``, ``a grid of 6 cells and 1 run``: what is ahead, the single runs counted together."""
    runs = items.count("a run")
    parts = [item for item in items if item != "a run"] + ([f"{runs} run{'s' * (runs != 1)}"] if runs else [])
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


@dataclass(frozen=True)
class PlannedRun:
    """What an estimate needs of a run before it runs."""

    plan: Any  # plan.StepPlan
    width: int
    height: int
    guidance: float
    sampler: str
    preview: str
    mode: str
    prompts: tuple[str, str] | None  # the cleaned prompts (the prompt cache may hold their embeddings)


def planned_run(prepared_or_plan, width, height, guidance, sampler, preview, mode, default_sampler: str) -> PlannedRun:
    """A prepared request (``prepare.PreparedRequest``; the arguments override its settings) or a step plan completed
    by them (``width``, ``height`` and ``guidance`` required), as an estimate takes it."""
    prepared = prepared_or_plan if hasattr(prepared_or_plan, "plan") else None
    if prepared is not None:
        r = prepared.request
        return PlannedRun(
            prepared.plan,
            int(width or prepared.width),
            int(height or prepared.height),
            float(r.guidance_scale if guidance is None else guidance),
            sampler or r.sampler,
            preview or r.preview,
            mode or prepared.mode,
            (prepared.prompt, prepared.negative_prompt),
        )
    plan = prepared_or_plan
    if width is None or height is None or guidance is None:
        raise ValueError("with a StepPlan, give width, height and guidance")
    mode = mode or ("txt2img" if plan.strength is None else "img2img")
    return PlannedRun(
        plan,
        int(width),
        int(height),
        float(guidance),
        sampler or default_sampler,
        preview or DEFAULT_PREVIEW,
        mode,
        None,
    )


def run_times(model: str, prepared, guided: bool, calls: int, text_seconds, seconds: dict) -> RunTimes | None:
    """A finished run (its ``seconds`` in parts, ``denoise.run_parts``) as the timing model learns it; None for a run
    that took no step."""
    if "steps" not in seconds:
        return None
    return RunTimes(
        model=model,
        pixels=prepared.width * prepared.height,
        guidance=guided,
        mode=prepared.mode,
        preview=prepared.request.preview,
        text_encode=text_seconds,
        before_steps=seconds["before_steps"],
        step_calls=calls,
        steps_seconds=seconds["steps"],
        after_steps=seconds["after_steps"],
    )
