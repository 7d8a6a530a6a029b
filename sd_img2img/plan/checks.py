"""Every check of a run's settings, in one place and flat, as diffusers' pipelines' ``check_inputs``.

``check_inputs(request, family, loras)`` checks a whole request against a model's family (and the LoRAs its server
lists) without opening anything; the parts are here too, for the code that needs one of them (the planner, the
image reader, the CLI). Each raises ``UserInputError`` naming the bad value and saying what to change. The ranges
are the request's declared ones (``request.SETTINGS``), which the page's controls and the PNG readers read as well;
how many steps a strength runs is the family's step rule's (``rules``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sd_img2img.config import MAX_INPUT_PIXELS, MAX_INPUT_SIDE, MAX_PROMPT_CHARS
from sd_img2img.errors import UserInputError, check_choice
from sd_img2img.models.families import FAMILIES, Family, default_family
from sd_img2img.models.loras import check_scale
from sd_img2img.plan.fields import check_range
from sd_img2img.plan.request import RANGES, SETTINGS, GenerationRequest, inpainting, with_defaults
from sd_img2img.plan.rules import rule_of
from sd_img2img.plan.samplers import ALL_SAMPLER_NAMES, DISCRETE_TIMESTEP_SAMPLERS


def check_int(name: str, value: Any, low: int, high: int, hint: str) -> int:
    """``value`` as a whole number in ``[low, high]`` (a whole float is taken); ``hint`` says what to use."""
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise UserInputError(f"{name} must be a whole number, got {value!r}")
    if not low <= value <= high:
        raise UserInputError(f"{name}={value} is out of range [{low}, {high}]; {hint}")
    return value


def check_prompt(name: str, text: Any) -> None:
    if not isinstance(text, str):
        raise UserInputError(f"{name} must be text, got {type(text).__name__}")
    if len(text) > MAX_PROMPT_CHARS:
        raise UserInputError(
            f"the {name} is {len(text)} characters, above the limit of {MAX_PROMPT_CHARS}; "
            "shorten it (the text encoder reads about 75 tokens anyway)"
        )


def check_sampler(name: str, family: Family | None = None) -> str:
    """``name`` if it fits ``family`` (None: any known sampler), else an error naming the ones that fit."""
    if family is None:
        return check_choice("sampler", name, ALL_SAMPLER_NAMES)
    if name in ALL_SAMPLER_NAMES and name not in family.samplers:
        raise UserInputError(
            f"sampler {name!r} does not fit {family.label} checkpoints; choose one of: {', '.join(family.samplers)}"
        )
    return check_choice("sampler", name, family.samplers)


def check_preview(name: str) -> str:
    return check_choice("preview decoder", name, SETTINGS["preview"].setting.choices)


def check_guidance(value: Any) -> None:
    check_range(SETTINGS["guidance_scale"], value)


def check_seed(value: Any) -> int:
    high = int(RANGES["seed"].high)
    return check_int(
        "seed", value, 0, high, f"use a seed from 0 to {high} (2⁶⁴ − 1), or none (-1 on the page) for a random one"
    )


def check_size(name: str, value: Any, family: Family) -> int:
    """A width or height: whole, in range, and a multiple of the family's ``size_multiple``."""
    low, high = int(RANGES[name].low), int(RANGES[name].high)
    value = check_int(name, value, low, high, f"use {low} to {high} pixels")
    m = family.size_multiple
    if value % m:
        raise UserInputError(
            f"{name}={value} is not a multiple of {m}"
            + (f" ({family.label} works on 2×2 latent patches)" if m != 8 else "")
            + f"; use {value // m * m} or {value // m * m + m}"
        )
    return value


def check_image_size(width: int, height: int, name: str) -> None:
    """An init image's size, from its header, before any pixel is decoded."""
    if width < 1 or height < 1:
        raise UserInputError(f"{name} has no pixels ({width}×{height})")
    if max(width, height) > MAX_INPUT_SIDE or width * height > MAX_INPUT_PIXELS:
        raise UserInputError(
            f"{name} is {width}×{height} pixels, above the limit of {MAX_INPUT_SIDE} px a side and "
            f"{MAX_INPUT_PIXELS // 1_000_000} megapixels; scale it down first"
        )


def check_steps(steps: Any, strength: Any, real_steps: bool = False, family: Family | None = None) -> None:
    """Steps and strength that give a run: in range, at least one step to run, a schedule within the limit, a
    combination LCM can run (``strength=None``: prompt2img); what the family's step rule refuses is its own."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise UserInputError(f"steps must be a whole number ≥ 1, got {steps!r}")
    if steps > RANGES["steps"].high:
        raise UserInputError(f"steps={steps} is above the limit of {RANGES['steps'].high}; lower steps")
    rule = rule_of(family)
    if not rule.takes_strength:
        return  # an edit model: strength and real steps do not apply (prepare_request says so when given)
    if strength is not None:
        check_range(SETTINGS["strength"], strength)
    rule.check(steps, strength, real_steps, family.scheduler_config if family is not None else None)


def check_schedule_length(sampler: str, schedule_steps: int, family: Family) -> None:
    """DDIM and PLMS step between the training timesteps themselves: a schedule at most that long."""
    limit = int((family.scheduler_config or {}).get("num_train_timesteps", 1000))
    if sampler in DISCRETE_TIMESTEP_SAMPLERS and schedule_steps > limit:
        raise UserInputError(
            f"sampler {sampler!r} cannot run a schedule of {schedule_steps} steps (at most {limit}, the model's "
            "training timesteps); raise strength, lower steps, or use a k_ sampler"
        )


def check_loras(asked: Any, listed: Mapping[str, float]) -> None:
    """A run's LoRA switches: names the server lists (``listed``: name → start-up scale), each with a usable scale
    (``asked=None``: each listed one at its start-up scale)."""
    if asked is None:
        return
    if not isinstance(asked, Mapping):
        raise UserInputError(f"loras must map LoRA names to scales, got {type(asked).__name__}")
    for name, scale in asked.items():
        if name not in listed:
            which = ", ".join(listed) if listed else "none were listed when the program started (--lora FILE[:SCALE])"
            raise UserInputError(f"unknown LoRA {name!r}; the listed LoRAs are: {which}")
        check_scale(scale, f"the scale of LoRA {name!r}")


def check_starting_point(request: GenerationRequest, family: Family) -> None:
    """An init image where the family cannot start from pure noise (the SDXL refiner, edit models)."""
    if request.init_image is not None or family.can_txt2img:
        return
    if family.image_is_reference:
        raise UserInputError(
            f"{family.label} edits the image you give it and cannot make one from a prompt alone; give it an image "
            "(and say in the prompt what to change)"
        )
    if family.mask_required:
        raise UserInputError(
            f"an {family.label} checkpoint redraws part of a picture and cannot start from a prompt alone; give it an "
            "initial image and a mask of what to redraw"
        )
    raise UserInputError(
        f"the {family.label} cannot start from pure noise (prompt2img); give it an initial image to refine, e.g. an "
        "SDXL base model's output"
    )


def check_mask(request: GenerationRequest, family: Family) -> None:
    """The mask and its settings (their ranges and choices always; a mask only with an init image, only one mask
    source, only on a family with an inpaint pipeline, and only the options that pipeline has)."""
    for name in ("mask_blur", "padding"):
        check_range(SETTINGS[name], getattr(request, name))
    for name in ("masked_content", "inpaint_area"):
        check_choice(SETTINGS[name].setting.label.lower(), getattr(request, name), SETTINGS[name].setting.choices)
    if not inpainting(request):
        return
    if request.init_image is None:
        raise UserInputError(
            "a mask says which part of an initial image to redraw, and no initial image was given; give one (or "
            "leave the mask out for prompt2img)"
        )
    if request.mask is not None and request.mask_from_alpha:
        raise UserInputError("give a mask or take it from the image's transparency, not both")
    if not family.takes_mask:
        able = ", ".join(dict.fromkeys(f.label for f in FAMILIES.values() if f.takes_mask))
        raise UserInputError(
            f"{family.label} has no inpaint pipeline in diffusers, so it takes no mask; leave the mask out, or use "
            f"a checkpoint of a family that inpaints ({able})"
        )
    if request.inpaint_area != "whole" and not family.inpaint_crop:
        raise UserInputError(
            f"{family.label}'s inpaint pipeline ({family.inpaint}) redraws only the whole picture (it has no "
            "padding_mask_crop); use inpaint area whole"
        )
    if request.masked_content.startswith("latent") and not family.inpaint_latents:
        raise UserInputError(
            f"masked content {request.masked_content!r} replaces the image's latents where {family.label}'s inpaint "
            f"pipeline ({family.inpaint}) gives no way in; use masked content original or fill"
        )


def check_inputs(
    request: GenerationRequest, family: Family | None = None, loras: Mapping[str, float] | None = None
) -> None:
    """Check every setting of ``request`` that needs neither the loaded model nor the image's pixels.

    Args:
        request: the settings; those left unset take ``family``'s defaults first.
        family: the model's (e.g. ``Engine.family``; None: SD 1.x/2.x): which samplers fit, how steps are counted,
            whether it can start from pure noise, the sizes it takes.
        loras: the LoRAs the model's server lists (name → start-up scale); None: LoRA switches are not checked.
    """
    family = family or default_family()
    r = with_defaults(request, family)
    check_prompt("prompt", r.prompt)
    check_prompt("negative prompt", r.negative_prompt)
    check_sampler(r.sampler, family)
    check_preview(r.preview)
    for name in ("view", "resize_mode"):
        check_choice(SETTINGS[name].setting.label.lower(), getattr(r, name), SETTINGS[name].setting.choices)
    check_guidance(r.guidance_scale)
    if r.seed is not None:
        check_seed(r.seed)
    for name in ("width", "height"):
        if getattr(r, name) is not None:
            check_size(name, getattr(r, name), family)
    check_starting_point(r, family)
    check_mask(r, family)
    strength = None if r.init_image is None else r.strength
    check_steps(r.steps, strength, r.real_steps, family)
    rule = rule_of(family)
    real = strength is not None and r.real_steps and rule.takes_strength and rule.takes_real_steps
    check_schedule_length(r.sampler, rule.schedule_for_real_steps(r.steps, strength) if real else r.steps, family)
    if loras is not None:
        check_loras(r.loras, loras)
