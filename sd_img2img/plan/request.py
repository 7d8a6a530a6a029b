"""One run's settings, as asked: ``GenerationRequest`` (``prepare.PreparedRequest`` is it settled before it runs).

Each field is declared once here (``fields.setting``): its label, help and range, how a page's form hands it over, and
whether a PNG records it. The names derived from the declarations: ``RECORDED_FIELDS`` (what a PNG records and a
later run takes back), ``FORM_FIELDS`` (what a page's form fills in), ``RANGES`` (the numbers validation, the page's
controls and the PNG readers allow) and ``SETTINGS`` (every declaration, by field name).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from sd_img2img.config import (
    DEFAULT_MASK_BLUR,
    DEFAULT_PADDING,
    DEFAULT_PREVIEW,
    DEFAULT_RESIZE_MODE,
    INPAINT_AREAS,
    MASKED_CONTENT,
    MAX_DIMENSION,
    MAX_GUIDANCE,
    MAX_MASK_BLUR,
    MAX_PADDING,
    MAX_SEED,
    MAX_SIDE,
    MAX_STEPS,
    MIN_DIMENSION,
    PREVIEWS,
    RANDOM_SEED,
    RESIZE_MODES,
    VIEWS,
)
from sd_img2img.models.families import Family, default_family
from sd_img2img.models.loras import parse_scales
from sd_img2img.plan.fields import Range, declared, setting

# -- how a page's form hands a value over ----------------------------------------------------------------


def text(value: Any) -> str:
    return value or ""


def or_none(value: Any) -> Any:
    return value or None


def whole(value: Any) -> Any:
    """A whole float as an int (number fields send floats); anything else as it is."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def number_or_none(value: Any) -> float | None:
    return float(value) if value is not None else None


def seed_value(value: Any) -> Any:
    """A seed field's value: empty, None or -1 mean "random"; a whole float, or a whole number's digits as text (the
    page's seed box is text, so that every seed up to 2⁶⁴ − 1 keeps its digits), becomes an int; anything else stays
    as it is, for the checks to refuse by name."""
    if isinstance(value, str):
        text = value.strip()
        value = None if not text else int(text) if _WHOLE_TEXT.fullmatch(text) else value
    if value is None or value == RANDOM_SEED:
        return None
    return whole(value)


def size_value(value: Any) -> int | None:
    """A width/height field's value: empty, None or 0 mean "the image's own size" (512 for prompt2img)."""
    if value is None or value == "" or value == 0:
        return None
    return whole(value)


_WHOLE_TEXT = re.compile(r"[+-]?[0-9]{1,40}")


def choice_or(default: str):
    return lambda value: value or default


def whole_or(default: int):
    """A whole-number field's value (a whole float becomes an int); empty or None: ``default``."""
    return lambda value: default if value is None or value == "" else whole(value)


_SIZE = dict(
    range=Range(MIN_DIMENSION, MAX_DIMENSION, whole=True), form=size_value, recorded=True, annotation=int | None
)
_SIZE_HELP = (
    f"pixels, a multiple of 8 (SD3/FLUX 16) from {MIN_DIMENSION} to {MAX_DIMENSION}; empty: the init image's size, "
    "longest side capped (prompt2img: the model's, 512 for SD, 1024 for SDXL)"
)


@dataclass
class GenerationRequest:
    """One run's settings, each field declared below with its label, help (what it does, its units and limits) and
    range. For library callers: ``init_image`` and ``mask`` take a path, bytes or a PIL image (no ``init_image``:
    prompt2img); ``strength``, ``steps``, ``sampler`` and ``guidance_scale`` left ``None`` take the model family's
    defaults (``Engine.defaults``; SD 1.x/2.x: 0.75, 30, k_lms, 7.5); ``seed=None`` picks one below 2**32 (the result
    reports it; torch's CPU generator, as diffusers' and ComfyUI's, draws from a seed's low 32 bits); ``loras`` maps a
    listed LoRA's name to its scale (``None``: each at its start-up scale)."""

    prompt: str = setting(
        "",
        label="Prompt",
        help="what to make, in words (CLIP reads the first 77 tokens; the run says where a longer prompt was cut)",
        hint="Ctrl+Enter (⌘+Enter) runs Generate",
        form=text,
        recorded=True,
    )
    init_image: Any = setting(
        None,
        label="Initial image",
        help="the picture to start from (a file); empty: prompt2img, from pure noise",
        form=or_none,
        param="image",
        annotation=str | None,
        img2img_only=True,
    )
    negative_prompt: str = setting(
        "", label="Negative prompt", help="what to steer away from", form=text, recorded=True
    )
    strength: float | None = setting(
        None,
        label="Strength",
        help="how far into the noise the image goes, a number above 0 and at most 1: the share of the schedule that "
        "runs (SD: int(steps × strength), so 10 steps at 0.7 run 7; each family counts its own way); 0.3 keeps the "
        "image, 0.8 reimagines it, 1 ignores it; empty: the model's (SD 0.75)",
        hint="How far into the noise your image goes: low keeps it, high reimagines it",
        range=Range(0.0, 1.0, above_low=True),
        form=number_or_none,
        recorded=True,
        img2img_only=True,
    )
    steps: int | None = setting(
        None,
        label="Steps",
        help=f"the schedule's length, a whole number from 1 to {MAX_STEPS}: img2img skips its start and runs about "
        "steps × strength of them (with real steps: exactly this many run); more steps, more detail and more time "
        "(each a fraction of a second on a GPU, seconds on a CPU); empty: the model's (SD 30, Turbo 2)",
        range=Range(1, MAX_STEPS, whole=True),
        form=whole,
        recorded=True,
    )
    real_steps: bool = setting(
        False,
        label="Real steps",
        help="steps is the number of steps that must run: the schedule is lengthened so exactly that many do",
        hint="run exactly this many",
        form=bool,
        recorded=True,
        img2img_only=True,
    )
    seed: int | None = setting(
        None,
        label="Seed",
        help=f"the noise's seed, a whole number from 0 to {MAX_SEED - 1} (2⁶⁴ − 1, as ComfyUI's), a number or its "
        f"digits as text: the same seed and settings give the same picture; {RANDOM_SEED} or empty: a new random seed "
        "(the run info says which)",
        hint=f"0 to 2⁶⁴ − 1 · {RANDOM_SEED} = a new random seed each run",
        range=Range(0, MAX_SEED - 1, whole=True),
        form=seed_value,
        recorded=True,
        annotation=int | str | None,
    )
    sampler: str | None = setting(
        None,
        label="Sampler",
        help="the scheduler by its InvokeAI name (k_lms, k_euler_a, dpmpp_2m, ddim …), one that fits the model; empty: "
        "the model's",
        form=or_none,
        recorded=True,
    )
    guidance_scale: float | None = setting(
        None,
        label="Guidance scale",
        help=f"classifier-free guidance, a number from 0 to {MAX_GUIDANCE:g}: how closely to follow the prompt (SD "
        "about 7.5; 1 or less turns it off, and Turbo models take 0); empty: the model's",
        hint="How closely to follow the prompt (1 = off)",
        range=Range(0.0, MAX_GUIDANCE),
        recorded=True,
    )
    width: int | None = setting(None, label="Width", help=_SIZE_HELP, **_SIZE)
    height: int | None = setting(None, label="Height", help=_SIZE_HELP, **_SIZE)
    resize_mode: str = setting(
        DEFAULT_RESIZE_MODE,
        label="Resize mode",
        help="how the init image is fitted to width × height: resize stretches, crop cuts, fill pads",
        hint="resize stretches, crop cuts, fill pads",
        choices=RESIZE_MODES,
        form=choice_or(DEFAULT_RESIZE_MODE),
        recorded=True,
        img2img_only=True,
    )
    preview: str = setting(
        DEFAULT_PREVIEW,
        label="Step previews",
        help="how each step becomes a picture: approx (instant, 1/8 size), taesd (a small decoder) or full (the "
        "model's own VAE: exact, slow)",
        hint="approx: instant, 1/8 size · taesd: small decoder · full: exact, slow",
        choices=PREVIEWS,
    )
    view: str = setting(
        "latents",
        label="View",
        help="the steps as the noisy latents or the predicted final image (x0)",
        choices=VIEWS,
        form=choice_or("latents"),
    )
    max_side: int = setting(MAX_SIDE, label="Longest side", help="cap on the default size", on_form=False)
    loras: dict[str, float] | None = setting(
        None,
        label="LoRAs",
        help='the listed LoRAs to switch: "name:scale, …" (0 is off; empty: each at its start-up scale)',
        form=parse_scales,
        recorded=True,
        annotation=str,
        api_default="",
    )
    # inpainting: the mask and how it is used (plan/mask.py settles them; checks.check_mask says what is refused)
    mask: Any = setting(
        None,
        label="Mask",
        help="inpainting: a black-and-white picture of what to redraw (white) and keep (black), fitted to the image "
        "as it is; empty: no inpainting",
        form=or_none,
        annotation=str | None,
        img2img_only=True,
    )
    mask_from_alpha: bool = setting(
        False,
        label="Mask from transparency",
        help="inpainting: redraw where the initial image is transparent (its alpha channel), as InvokeAI's canvas does",
        form=bool,
        img2img_only=True,
    )
    invert_mask: bool = setting(
        False,
        label="Invert mask",
        help="inpainting: redraw where the mask is black and keep where it is white",
        hint="redraw the black part instead",
        form=bool,
        recorded=True,
        img2img_only=True,
    )
    mask_blur: int = setting(
        DEFAULT_MASK_BLUR,
        label="Mask blur",
        help=f"inpainting: pixels of blur on the mask's edge, 0 to {MAX_MASK_BLUR} (AUTOMATIC1111's "
        f"{DEFAULT_MASK_BLUR}); above 0 the output is laid over your image through the blurred mask, a soft seam",
        hint="a soft seam between what is redrawn and what is kept",
        range=Range(0, MAX_MASK_BLUR, whole=True),
        form=whole_or(DEFAULT_MASK_BLUR),
        recorded=True,
        img2img_only=True,
    )
    masked_content: str = setting(
        MASKED_CONTENT[0],
        label="Masked content",
        help="inpainting: what the masked region starts from: original (your image), fill (its surroundings' "
        "colours), latent noise or latent nothing (AUTOMATIC1111's)",
        hint="what the masked region starts from",
        choices=MASKED_CONTENT,
        form=choice_or(MASKED_CONTENT[0]),
        recorded=True,
        img2img_only=True,
    )
    inpaint_area: str = setting(
        INPAINT_AREAS[0],
        label="Inpaint area",
        help="inpainting: whole (the whole picture) or masked (only the masked region and the padding around it, "
        "redrawn at the run's full size and pasted back: AUTOMATIC1111's only masked)",
        hint="masked: the masked region alone, at full size",
        choices=INPAINT_AREAS,
        form=choice_or(INPAINT_AREAS[0]),
        recorded=True,
        img2img_only=True,
    )
    padding: int = setting(
        DEFAULT_PADDING,
        label="Only-masked padding",
        help=f"inpainting, only masked: pixels of the picture around the masked region that go with it, 0 to "
        f"{MAX_PADDING} (AUTOMATIC1111's {DEFAULT_PADDING})",
        hint="pixels of context around the masked region",
        range=Range(0, MAX_PADDING, whole=True),
        form=whole_or(DEFAULT_PADDING),
        recorded=True,
        img2img_only=True,
    )


SETTINGS = declared(GenerationRequest)
# the settings a PNG records and that reproduce its run (the init image is not stored)
RECORDED_FIELDS = tuple(name for name, field in SETTINGS.items() if field.setting.recorded)
# what a page's form fills in: the recorded settings, the init image, and how steps are drawn
FORM_FIELDS = tuple(name for name, field in SETTINGS.items() if field.setting.on_form)
# each numeric setting's range: what validation accepts (checks), what the page's controls allow and what a PNG's
# settings may fill in (formats/settings_reader.py, ui/form.py)
RANGES = {name: field.setting.range for name, field in SETTINGS.items() if field.setting.range is not None}

# what a request leaves unset (None) and its model's family fills in
FAMILY_DEFAULTS = {"steps": "steps", "strength": "strength", "guidance_scale": "guidance", "sampler": "sampler"}


def inpainting(request: GenerationRequest) -> bool:
    """Whether ``request`` inpaints: a mask is given (or the init image's transparency is asked to be one)."""
    return request.mask is not None or bool(request.mask_from_alpha)


def with_defaults(request: GenerationRequest, family: Family | None = None) -> GenerationRequest:
    """``request`` with the settings it leaves unset (``None``) taken from ``family``'s defaults."""
    family = family or default_family()
    changes = {name: getattr(family, own) for name, own in FAMILY_DEFAULTS.items() if getattr(request, name) is None}
    return dataclasses.replace(request, **changes) if changes else request
