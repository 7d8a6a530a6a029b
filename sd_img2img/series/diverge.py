"""Where two runs part ways: two requests that differ in one setting (the steps, seed, strength, sampler, guidance, a
LoRA's scale, or the model, within one latent space), run as a ``Series`` of two sides, their steps paired by noise
level and compared (``series.step_alignment``); the parting step is the first pair whose pictures differ by more
than a stated threshold.

The guide this project grew from ends on it: "img2img is very sensitive to the step count … by comparing the latents
we can sort of see that something got interpreted differently enough on the third or fourth step". Both sides are
normal requests, prepared and run as any other, so each side's output and steps are exactly that single run's.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sd_img2img.config import DIVERGE_THRESHOLD, MAX_SEED
from sd_img2img.errors import UserInputError, check_choice
from sd_img2img.formats.metadata import save_png
from sd_img2img.models.families import (
    FLUX2_FACTORS,
    FLUX_FACTORS,
    SD3_FACTORS,
    SD_FACTORS,
    SDXL_FACTORS,
    WAN21_FACTORS,
    Family,
)
from sd_img2img.models.loras import parse_scales
from sd_img2img.plan.fields import check_range
from sd_img2img.plan.prepare import PreparedRequest
from sd_img2img.plan.request import SETTINGS, GenerationRequest
from sd_img2img.plan.samplers import ALL_SAMPLER_NAMES
from sd_img2img.series.series import Series, SeriesRun
from sd_img2img.series.step_alignment import VIEW, AlignedStep, align

VARIES = ("steps", "seed", "strength", "sampler", "guidance_scale", "loras", "model")  # what the sides may differ in
ALIASES = {"guidance": "guidance_scale", "cfg": "guidance_scale", "lora": "loras", "lora_scale": "loras"}
SIDES = ("a", "b")
# latent spaces by the published latent → RGB factors their families preview with (one VAE, one set)
LATENT_SPACES = {
    SD_FACTORS: "SD 1.x/2.x",
    SDXL_FACTORS: "SDXL",
    SD3_FACTORS: "SD3",
    FLUX_FACTORS: "FLUX.1",
    WAN21_FACTORS: "Qwen-Image (Wan 2.1)",
    FLUX2_FACTORS: "FLUX.2",
}


def varied_setting(name: str) -> str:
    """The request field ``name`` means (``guidance`` is ``guidance_scale``, ``lora`` is ``loras``), if the sides
    may differ in it."""
    key = str(name or "").strip().lower().replace("-", "_")
    return check_choice("setting to vary", ALIASES.get(key, key), VARIES)


def parse_vs(text: str) -> tuple[str, str]:
    """``--vs KEY=VALUE`` → (the field, the value as written)."""
    key, sep, value = str(text).partition("=")
    if not sep or not value.strip():
        raise UserInputError(
            f"--vs takes KEY=VALUE, e.g. steps=29 or seed=7 (one of: {', '.join(VARIES)}); got {text!r}"
        )
    return varied_setting(key), value.strip()


def parse_value(vary: str, text: Any, models: tuple[str, ...] = (), loras: tuple[str, ...] = ()) -> Any:
    """One side's value of ``vary`` from what a person writes: ``30``, ``0.7``, ``k_euler``, a served model's name, or
    a LoRA's scale (``name:0.8``, or ``0.8`` when the model lists one LoRA; ``loras``: the listed names)."""
    vary, raw = varied_setting(vary), str(text if text is not None else "").strip()
    if not raw:
        raise UserInputError(f"give both sides' {label(vary)}, e.g. {EXAMPLES[vary]}")
    if vary == "sampler":
        return check_choice("sampler", raw, ALL_SAMPLER_NAMES)
    if vary == "model":
        return check_choice("model", raw, models)
    if vary == "loras":
        return _lora_value(raw, loras)
    try:
        value = float(raw)
    except ValueError:
        raise UserInputError(f"{raw!r} is not a number; write the {label(vary)} like {EXAMPLES[vary]}") from None
    if vary in ("steps", "seed"):
        if not value.is_integer():
            raise UserInputError(f"{label(vary)} are whole numbers, got {raw}")
        value = int(value)
    check_range(SETTINGS[vary], value)
    return value


EXAMPLES = {
    "steps": "30 and 29",
    "seed": "1592514025 and 1592514026",
    "strength": "0.4 and 0.7",
    "sampler": "k_lms and k_euler",
    "guidance_scale": "7.5 and 5",
    "loras": "0 and 0.8 (or name:0.8)",
    "model": "two served models' names",
}


def label(vary: str) -> str:
    return {"guidance_scale": "guidance", "loras": "LoRA scales", "model": "models", "sampler": "samplers"}.get(
        vary, vary if vary.endswith("s") else f"{vary}s"
    )


def _lora_value(raw: str, loras: tuple[str, ...]) -> dict[str, float]:
    if ":" in raw:
        return parse_scales(raw) or {}
    if len(loras) != 1:
        which = ", ".join(loras) if loras else "none are listed"
        raise UserInputError(f"say which LoRA the scale {raw} is for, as name:{raw} (the listed LoRAs: {which})")
    return parse_scales(f"{loras[0]}:{raw}") or {}


def describe_value(vary: str, value: Any) -> str:
    """One side as people say it: ``30 steps``, ``seed 7``, ``strength 0.7``, ``k_lms``, ``guidance 5``,
    ``LoRA detail at 0.8``, or the model's name."""
    if vary == "steps":
        return f"{value} steps"
    if vary in ("seed", "strength"):
        return f"{vary} {value:g}" if vary == "strength" else f"seed {value}"
    if vary == "guidance_scale":
        return f"guidance {value:g}"
    if vary == "loras":
        return ", ".join(f"LoRA {name} at {scale:g}" for name, scale in value.items())
    return str(value)


def both_values(vary: str, values: tuple[Any, Any]) -> str:
    """The two sides as one phrase: ``30 and 29 steps``, ``strength 0.4 and 0.7``, ``k_lms and k_euler``."""
    a, b = values
    if vary == "steps":
        return f"{a} and {b} steps"
    if vary in ("seed", "strength", "guidance_scale"):
        word = {"seed": "seeds", "guidance_scale": "guidance"}.get(vary, vary)
        fmt = (lambda v: str(v)) if vary == "seed" else (lambda v: f"{v:g}")
        return f"{word} {fmt(a)} and {fmt(b)}"
    return f"{describe_value(vary, a)} and {describe_value(vary, b)}"


def latent_space(family: Family | None) -> str | None:
    """The latent space a family's steps live in (its VAE's), by name where this project knows it, else by the
    family's label; None when the family is not known yet."""
    if family is None:
        return None
    return LATENT_SPACES.get(family.approx_factors) or f"{family.label} ({family.latent_channels} channels)"


@dataclass
class Diverge:
    """The two sides (a ``Series`` of two runs) and what they differ in."""

    vary: str
    values: tuple[Any, Any]
    series: Series
    threshold: float = DIVERGE_THRESHOLD

    @property
    def sides(self) -> list[SeriesRun]:
        return self.series.runs

    def what(self) -> str:
        """``30 and 29 steps``."""
        return both_values(self.vary, self.values)

    def compare(self) -> Comparison:
        """The finished sides' steps, paired and compared (nothing to pair until both have run)."""
        a, b = self.sides
        entries = align(a.result.frames, b.result.frames) if a.done and b.done else []
        return Comparison(self, entries)


@dataclass
class Comparison:
    """The pairs of steps and where the sides part."""

    diverge: Diverge
    entries: list[AlignedStep]

    @property
    def threshold(self) -> float:
        return self.diverge.threshold

    @property
    def shorter(self) -> str:
        """The side whose steps the pairs follow (``a`` when both are as long)."""
        a, b = (side.result for side in self.diverge.sides)
        return "b" if a is not None and b is not None and len(b.frames) < len(a.frames) else "a"

    @property
    def parts_at(self) -> int | None:
        """The index of the first pair whose pictures differ by more than the threshold; None if none does."""
        return next((i for i, e in enumerate(self.entries) if e.difference > self.threshold), None)

    def sentence(self) -> str:
        """``30 and 29 steps part at step 3 (σ 0.58)``, ``… never part: …``, or why there is nothing to compare."""
        what, series = self.diverge.what(), self.diverge.series
        if not self.entries:
            return f"{what}: nothing to compare yet" + (" (stopped before both ran)" if series.stopped else "")
        stopped = " before the stop" if series.stopped else ""
        i = self.parts_at
        if i is None:
            most = max(e.difference for e in self.entries)
            if most == 0:
                return f"{what} never part{stopped}: every step's pictures are identical"
            return (
                f"{what} never part{stopped}: no step's pictures differ by more than {self.threshold:g} of 255 "
                f"(at most {most:.2f})"
            )
        if i == 0 and None not in (self.entries[0].sigma_a, self.entries[0].sigma_b):  # they start apart
            first = self.entries[0]
            return f"{what} part at step 0, where they start (σ {first.sigma_a:.2f} and {first.sigma_b:.2f})"
        return f"{what} part at step {i} ({self.level_text(self.entries[i])})"

    def level_text(self, entry: AlignedStep) -> str:
        """``σ 0.58`` (the shorter side's), ``t 681`` for a sampler without σ, ``the start`` for step 0 without."""
        level = entry.level(self.shorter)
        by_sigma = (entry.sigma_a if self.shorter == "a" else entry.sigma_b) is not None
        if level is None:
            return "the start"
        return f"σ {level:.2f}" if by_sigma else f"t {level:.0f}"

    def info(self, files: list[tuple[str, str, str]]) -> dict[str, Any]:
        """The pairs as JSON (``files``: each pair's two pictures and map, as saved), the threshold, the first pair
        over it (``parts_at``, None if none is) and the sentence."""
        aligned = [entry_info(entry, *paths) for entry, paths in zip(self.entries, files)]
        i = self.parts_at
        return {
            "aligned": aligned,
            "threshold": self.threshold,
            "parts_at": aligned[i] if i is not None and i < len(aligned) else None,
            "sentence": self.sentence(),
        }


def entry_info(entry: AlignedStep, a_image: str, b_image: str, map_image: str) -> dict[str, Any]:
    """One pair as JSON: each run's step, σ and timestep, the pictures compared, their differences and the map."""
    return {
        "a_step": entry.a_step,
        "b_step": entry.b_step,
        "sigma_a": entry.sigma_a,
        "sigma_b": entry.sigma_b,
        "timestep_a": entry.timestep_a,
        "timestep_b": entry.timestep_b,
        "a_image": a_image,
        "b_image": b_image,
        "difference": entry.difference,
        "latent_difference": entry.latent_difference,
        "map": map_image,
    }


def save_pairs(comparison: Comparison, folder: Path, stem: str) -> list[tuple[str, str, str]]:
    """Write each pair's two pictures (PNGs with their run's settings, the step and the view) and its difference map
    into ``folder`` as ``{stem}.pair003.a.png``, ``….b.png``, ``….map.png``; their paths, pair by pair."""
    a, b = comparison.diverge.sides
    if not comparison.entries:  # (stopped before both ran)
        return []
    settings = [{**side.result.settings(), **side.records, "view": VIEW} for side in (a, b)]
    out = []
    for k, entry in enumerate(comparison.entries):
        name = Path(folder) / f"{stem}.pair{k:03d}"
        pa = save_png(entry.a_image, f"{name}.a.png", {**settings[0], "step": entry.a_step})
        pb = save_png(entry.b_image, f"{name}.b.png", {**settings[1], "step": entry.b_step})
        entry.map.save(f"{name}.map.png")
        out.append((str(pa), str(pb), f"{name}.map.png"))
    return out


def side_records(vary: str, values: tuple[Any, Any], side: int) -> dict[str, Any]:
    """What a side's PNG records beside its own settings: which side it is and what the other one differs by."""
    return {"diverge": {"side": SIDES[side], "vary": vary, "value": values[side], "other": values[1 - side]}}


def side_requests(
    base: GenerationRequest, vary: str, values: tuple[Any, Any], model: str, listed: Mapping[str, float]
) -> list[tuple[str, GenerationRequest]]:
    """Each side's model and request: ``base`` (its seed, or one picked for both) with ``vary`` set to its value."""
    seed = base.seed if base.seed is not None else secrets.randbelow(MAX_SEED)
    out = []
    for value in values:
        changes: dict[str, Any] = {"seed": seed}
        name = model
        if vary == "model":
            name = value
        elif vary == "loras":
            changes["loras"] = {**(base.loras if base.loras is not None else listed), **value}
        else:
            changes[vary] = value
        out.append((name, dataclasses.replace(base, **changes)))
    return out


def check_one_latent_space(names: tuple[str, str], family_of: Callable[[str], Family | None]) -> None:
    """Two models compared step by step must share a latent space (one VAE): ``UserInputError`` naming both."""
    spaces = [latent_space(family_of(name)) for name in names]
    if None not in spaces and spaces[0] != spaces[1]:
        raise UserInputError(
            f"{names[0]} works in {spaces[0]} latents and {names[1]} in {spaces[1]} latents: their steps cannot be "
            "compared picture for picture; compare two models of one latent space (or vary another setting)"
        )


def plan_diverge(
    base: GenerationRequest,
    vary: str,
    values: tuple[Any, Any],
    model: str,
    prepare: Callable[[GenerationRequest, str], PreparedRequest],
    family_of: Callable[[str], Family | None],
    threshold: float = DIVERGE_THRESHOLD,
    listed_loras: Mapping[str, float] | None = None,
) -> Diverge:
    """The two sides, each prepared (checked, image fitted, steps planned) before either runs.

    Args:
        base: what both sides share (the image, prompt, seed and every other setting).
        vary: the setting they differ in (``VARIES``).
        values: side a's value and side b's (``parse_value``'s).
        model: the model both run on, unless ``vary`` is the model.
        prepare: prepares a side's request for a model (a backend's ``prepare``).
        family_of: a model's family, where it can be told.
        threshold: the parting step is the first whose pictures differ by more than this (0–255).
        listed_loras: the model's listed LoRAs (name → start-up scale), which a LoRA scale changes one of.
    Raises ``UserInputError`` without an initial image, for two models of different latent spaces, for a threshold
    outside 0 to 255 and for two sides of different sizes (each side's own steps are in range, so the two together are
    at most twice ``config.MAX_STEPS``).
    """
    vary = varied_setting(vary)
    if base.init_image is None:
        raise UserInputError("comparing two runs needs an initial image: upload or draw one, or pick an example")
    if not 0 <= float(threshold) <= 255:
        raise UserInputError(f"the threshold is a difference of 0 to 255 levels, got {threshold!r}")
    planned = side_requests(base, vary, tuple(values), model, listed_loras or {})
    if vary == "model":
        check_one_latent_space((planned[0][0], planned[1][0]), family_of)
    runs = [
        SeriesRun(describe_value(vary, values[i]), name, prepare(request, name), (i,), side_records(vary, values, i))
        for i, (name, request) in enumerate(planned)
    ]
    a, b = (run.prepared for run in runs)
    if (a.width, a.height) != (b.width, b.height):
        raise UserInputError(
            f"the two sides would run at {a.width}×{a.height} and {b.width}×{b.height}: give a width and height so "
            "that their pictures can be compared"
        )
    counts = f"{runs[0].steps_to_run} + {runs[1].steps_to_run} = {runs[0].steps_to_run + runs[1].steps_to_run} steps"
    series = Series("diverge", "side", runs, name="comparison", description=f"two runs, {counts}")
    return Diverge(vary, tuple(values), series, float(threshold))
