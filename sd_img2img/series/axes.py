"""What changes from run to run in a series of the same image, prompt and seed: an ``Axis`` (strength, steps or the
served models) and its values, parsed from what a person writes (``"0.4, 0.7"``, ``"10 20"``, model names), and every
run's request along one or two axes (the explain table's columns, the grid's rows and columns).

Comparing models, each run keeps the base request's image, prompt, seed, steps and strength, and its model's family
fills in the sampler, guidance and LoRAs (another family's would not fit it). Edit models (``Family.takes_strength``
False: the image is a reference) take no strength, so a strength axis over one is refused by name.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from dataclasses import dataclass

from sd_img2img.config import GRID_MAX_CELLS
from sd_img2img.errors import UserInputError, check_choice
from sd_img2img.models.families import Family
from sd_img2img.plan.prepare import random_seed
from sd_img2img.plan.request import RANGES, GenerationRequest
from sd_img2img.plan.rules import rule_of

AXES = ("strength", "steps", "model")
PER_FAMILY = ("sampler", "guidance_scale", "loras")  # what each model's family fills in when comparing models
EXAMPLES = {"strength": "0.4, 0.7", "steps": "10, 20", "model": "the served models' names"}


@dataclass(frozen=True)
class Axis:
    """What changes along one axis (``strength``, ``steps`` or ``model``) and its values."""

    by: str
    values: tuple

    def label(self, value) -> str:
        """``strength 0.4``, ``10 steps``, or the model's name."""
        if self.by == "strength":
            return f"strength {value:g}"
        return f"{value} steps" if self.by == "steps" else str(value)


def takes_strength(family: Family | None) -> bool:
    """Whether ``family`` takes an img2img strength (edit models, whose image is a reference, take none); a family not
    known yet is taken to."""
    return rule_of(family).takes_strength


def parse_axis(by: str, text, models: tuple[str, ...] = (), limit: int = 6, where: str = "a grid axis") -> Axis:
    """An axis from its values as written: ``"0.4, 0.7"`` (strengths), ``"10 20"`` (step counts), or served model
    names (``models``; empty text: all of them), at most ``limit`` (``where`` names what takes them in messages)."""
    check_choice("axis", by, AXES)
    if isinstance(text, (list, tuple)):
        parts = [str(p) for p in text]
    elif by == "model":  # names may hold spaces
        parts = str(text or "").split(",")
    else:
        parts = str(text or "").replace(",", " ").replace(";", " ").split()
    parts = [p.strip() for p in parts if p.strip()] or (list(models[:limit]) if by == "model" else [])
    if not parts:
        raise UserInputError(f"give at least one {by} value, e.g. {EXAMPLES[by]}")
    if len(parts) > limit:
        raise UserInputError(f"{len(parts)} {by} values is more than {where} takes ({limit}); drop some")
    if by == "model":
        return Axis(by, tuple(check_choice("model", p, models) for p in parts))
    return Axis(by, tuple(_number(by, p) for p in parts))


def _number(by: str, text: str) -> float | int:
    try:
        value = float(text)
    except ValueError:
        raise UserInputError(f"{text!r} is not a number; write the {by} values like {EXAMPLES[by]}") from None
    if value not in RANGES[by]:
        limits = RANGES[by]
        above = ", above 0" if limits.above_low else ""
        raise UserInputError(f"{by} {text} is out of range ({limits.low:g} to {limits.high:g}{above})")
    if by == "steps":
        if not value.is_integer():
            raise UserInputError(f"step counts are whole numbers, got {text}")
        return int(value)
    return value


def check_axes(axes: tuple[Axis, ...], families: dict[str, Family | None]) -> None:
    """Different axes, at most ``config.GRID_MAX_CELLS`` runs, and no strength axis over a model that takes no strength
    (``families``: each model the series runs on → its family, None where not known yet)."""
    if len({axis.by for axis in axes}) < len(axes):
        raise UserInputError(f"the grid's rows and columns both change {axes[0].by}; pick two different things")
    runs = 1
    for axis in axes:
        runs *= len(axis.values)
    if runs > GRID_MAX_CELLS:
        sizes = " × ".join(str(len(axis.values)) for axis in axes)
        raise UserInputError(
            f"a grid of {sizes} = {runs} cells is above the limit of {GRID_MAX_CELLS}; drop some values"
        )
    if any(axis.by == "strength" for axis in axes):
        for name, family in families.items():
            if not takes_strength(family):
                raise UserInputError(
                    f"{name} is a {family.label} model, which edits the image and takes no strength: a strength "
                    "axis does not apply to it; compare step counts (and models) instead"
                )


def axis_requests(
    base: GenerationRequest, axes: tuple[Axis, ...], model: str
) -> list[tuple[tuple[int, ...], str, GenerationRequest]]:
    """Each run's place on ``axes`` (row-major), model and request: ``base`` (its seed, or one picked for all) with the
    axes' values; on ``model`` unless an axis is the models (each model's family then fills in ``PER_FAMILY``)."""
    seed = base.seed if base.seed is not None else random_seed()
    runs = []
    for at in itertools.product(*(range(len(axis.values)) for axis in axes)):
        changes, name = {"seed": seed}, model
        for axis, i in zip(axes, at):
            value = axis.values[i]
            if axis.by == "model":
                name = value
                changes.update(dict.fromkeys(PER_FAMILY))
            else:
                changes[axis.by] = float(value) if axis.by == "strength" else int(value)
        runs.append((at, name, dataclasses.replace(base, **changes)))
    return runs


def families_of(names, family_of: Callable[[str], Family | None]) -> dict[str, Family | None]:
    return {name: family_of(name) for name in dict.fromkeys(names)}
