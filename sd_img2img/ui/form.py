"""The Generate form and the request it makes, by field name (``plan.request``: each field declared once there, with
how the form hands it over).

- ``form_request``: the form's values → a ``GenerationRequest`` (empty fields: the model family's defaults);
- ``fit_form``: a PNG's settings → the values the form's controls can take, and a note for each they cannot;
- ``page_defaults`` / ``page_max_side``: where the page starts a model, on a CPU server a first run of about a minute.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sd_img2img import config
from sd_img2img.models.loras import format_scales
from sd_img2img.plan.fields import Range, number_text
from sd_img2img.plan.request import FORM_FIELDS, RANGES, SETTINGS, GenerationRequest

# what the page's controls can hold: the validation ranges, except that the strength slider starts at its step and
# the seed field also takes -1 (a new random seed)
FORM_RANGES = {
    **RANGES,
    "strength": Range(config.STRENGTH_STEP, RANGES["strength"].high),
    "seed": Range(config.RANDOM_SEED, RANGES["seed"].high, whole=True),
}


def form_request(values: Mapping[str, Any], *, preview: str, max_side: int) -> GenerationRequest:
    """The form's ``values`` (by field name; a field not given stays unset) as a ``GenerationRequest``.

    Args:
        values: field name → the form's value (an endpoint's values, ``ui.endpoints``); names that are not fields
            are ignored.
        preview: the server's preview decoder, for a form that leaves it empty.
        max_side: the longest side of a size taken from the init image (``page_max_side``).
    Raises ``UserInputError`` for a ``loras`` text that cannot be read.
    """
    kwargs = {name: SETTINGS[name].setting.form(values[name]) for name in FORM_FIELDS if name in values}
    kwargs["preview"] = kwargs.get("preview") or preview
    return GenerationRequest(**{"prompt": "", **kwargs}, max_side=max_side)


def fit_form(values: dict, samplers: tuple[str, ...], loras: tuple[str, ...] = ()) -> tuple[dict, list[str]]:
    """The values the form's controls can take (``samplers`` and ``loras``: the chosen model's), and a note for each
    one they cannot."""
    fitted, skipped = {}, []
    declared = {name: field.setting.choices for name, field in SETTINGS.items() if field.setting.choices}
    choices = {**declared, "sampler": ("", *samplers)}  # resize mode, masked content, inpaint area …
    for name, value in values.items():
        if name == "loras":
            asked = value if isinstance(value, dict) else {}
            skipped += [
                f"Not used: LoRA {n!r} (this server lists {', '.join(loras) or 'none'})"
                for n in asked
                if n not in loras
            ]
            usable = {
                n: v for n, v in asked.items() if n in loras and isinstance(v, (int, float)) and not isinstance(v, bool)
            }
            fitted[name] = format_scales(usable)
            continue
        limits = FORM_RANGES.get(name)
        if name in choices and value not in choices[name]:
            skipped.append(f"Not used: {name} {value!r} (not one of {', '.join(choices[name])})")
        elif limits is not None and value not in Range(limits.low, limits.high):
            skipped.append(
                f"Not used: {name} {value!r} (outside {number_text(limits.low)} to {number_text(limits.high)})"
            )
        else:
            fitted[name] = value
    return fitted, skipped


def page_defaults(family, on_cpu: bool) -> tuple[int, float, float]:
    """Steps, strength and guidance the page starts a model at: its family's, except that on a CPU a model that is not
    few-step starts at ``config.CPU_PAGE_STEPS`` so that a first run takes about a minute."""
    steps = family.steps
    if on_cpu and family.steps > config.FEW_STEPS:
        steps = min(steps, config.CPU_PAGE_STEPS)
    return steps, family.strength, family.guidance


def page_max_side(max_side: int, on_cpu: bool) -> int:
    """The longest side of a size taken from the init image: the server's, at most ``config.CPU_PAGE_MAX_SIDE`` on a
    CPU unless the starter set ``--max-side`` (so that a first run takes about a minute)."""
    if on_cpu and max_side == config.MAX_SIDE:
        return config.CPU_PAGE_MAX_SIDE
    return max_side
