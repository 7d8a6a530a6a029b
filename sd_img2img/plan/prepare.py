"""A request settled before it runs, short of the model: prepare_request checks it (checks.check_inputs),
fills the family's defaults, cleans the prompts, picks the seed, opens and fits the init image, plans the steps and
notes what runs but not as the family was made to. A click prepares its request once; the backend runs the
PreparedRequest as it is."""

from __future__ import annotations

import dataclasses
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

from PIL import Image

from sd_img2img.config import MAX_DIMENSION, MIN_DIMENSION, RANDOM_SEED_BELOW
from sd_img2img.models.families import Family, default_family
from sd_img2img.models.loras import LoraSpec, lcm_warnings, resolve
from sd_img2img.plan.checks import check_inputs
from sd_img2img.plan.images import ImageCache, default_size, fit_image, open_image
from sd_img2img.plan.mask import InpaintMask, inpaint_size, settle_mask, with_fill
from sd_img2img.plan.noise import entry_noise
from sd_img2img.plan.request import GenerationRequest, inpainting, with_defaults
from sd_img2img.plan.step_plan import StepPlan, plan_steps

_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")


@dataclass
class PreparedRequest:
    """A checked request, settled short of the model: defaults filled, prompts cleaned, image opened and fitted,
    size and seed chosen, steps planned. What a backend runs; made once per click (``prepare.prepare_request``).

    ``asked`` is the request as it came (so a caller can tell whether a prepared request still matches a form);
    ``request`` is it with the family's defaults filled in.
    """

    asked: GenerationRequest
    request: GenerationRequest
    family: str  # the family it was checked and planned for (families.FAMILIES)
    prompt: str
    negative_prompt: str
    image: Image.Image | None
    width: int
    height: int
    seed: int
    plan: StepPlan
    warnings: list[str] = field(default_factory=list)
    loras: dict[str, float] = field(default_factory=dict)  # the LoRAs this run switches on (name → scale)
    mask: InpaintMask | None = None  # inpainting: the mask settled (plan/mask.py); None: no inpainting

    @property
    def mode(self) -> str:
        return "txt2img" if self.image is None else "img2img"


def clean_prompt(text: str) -> tuple[str, int]:
    """Drop control characters (NUL and friends, but not tab/newline) and lone surrogates; return the count."""
    cleaned, count = _CONTROL_CHARS.subn("", text)
    return cleaned, count


def output_size(request: GenerationRequest, image: Image.Image | None, family: Family | None = None) -> tuple[int, int]:
    """Width and height of the run: as asked, else from the init image (one side given: keep its aspect),
    else the family's size for prompt2img (512; SDXL 1024)."""
    r = request
    family = family or default_family()
    m = family.size_multiple
    if image is None:
        return (
            int(r.width) if r.width is not None else family.size,
            int(r.height) if r.height is not None else family.size,
        )
    if r.width is not None and r.height is not None:
        return int(r.width), int(r.height)
    if r.width is not None:
        return int(r.width), max(MIN_DIMENSION, min(MAX_DIMENSION, round(r.width * image.height / image.width / m) * m))
    if r.height is not None:
        return max(MIN_DIMENSION, min(MAX_DIMENSION, round(r.height * image.width / image.height / m) * m)), int(
            r.height
        )
    width, height = default_size(*image.size, max_side=r.max_side)
    return width // m * m, height // m * m


def random_seed() -> int:
    """A new random seed: below ``config.RANDOM_SEED_BELOW`` (2³²), as AUTOMATIC1111's, though any seed up to 2⁶⁴ − 1
    may be asked for."""
    return secrets.randbelow(RANDOM_SEED_BELOW)


def prepare_request(
    request: GenerationRequest,
    family: Family | None = None,
    loras: Sequence[LoraSpec] | None = None,
    images: ImageCache | None = None,
) -> PreparedRequest:
    """Check ``request``, then settle everything a run needs short of the model.

    Args:
        request: the settings; unset ones take ``family``'s defaults.
        family: the model's (None: SD 1.x/2.x).
        loras: the LoRAs the model's server lists (None: none; a request that names one is refused).
        images: where init images already opened and fitted are kept (None: the image is opened now).

    In turn: ``check_inputs``; the prompts cleaned of control characters (with a warning); the seed (a random one
    when none is given); the init image opened and fitted (``fitted_image``); the steps planned, with the noise level
    the image enters at; the LoRAs the run switches on; warnings for settings the family runs but was not made for.
    """
    family = family or default_family()
    listed = {spec.name: spec.scale for spec in loras or ()}
    check_inputs(request, family, listed)
    r = with_defaults(request, family)
    prompt, negative_prompt, warnings = clean_prompts(r)
    seed = random_seed() if r.seed is None else int(r.seed)
    image, width, height = fitted_image(r, family, images)
    mask, mask_warnings = settled_mask(r, family, images, image, width, height)
    warnings += mask_warnings
    # the steps, and the noise level the image enters at (from the run's own schedule)
    if image is not None:
        plan = plan_steps(r.steps, r.strength, r.real_steps, family=family)
    else:
        plan = plan_steps(r.steps, None, family=family)
    noise = entry_noise(family, r.sampler, plan, width, height)
    plan = dataclasses.replace(plan, noise=noise, mask=mask.plan if mask is not None else None)
    active = resolve(r.loras, listed)
    # settings that run but the family was not made for
    warnings += family_warnings(family, r, negative_prompt, width, height)
    if image is not None and family.image_is_reference:
        warnings += reference_warnings(family, request, plan)
    if family.takes_lcm_lora:
        warnings += lcm_warnings(r.sampler, float(r.guidance_scale), active, loras or ())
    return PreparedRequest(
        asked=request,
        request=r,
        family=family.name,
        prompt=prompt,
        negative_prompt=negative_prompt,
        image=image,
        width=width,
        height=height,
        seed=seed,
        plan=plan,
        warnings=warnings,
        loras=active,
        mask=mask,
    )


def clean_prompts(request: GenerationRequest) -> tuple[str, str, list[str]]:
    """The prompt and negative prompt without control characters, and a warning for each that had some."""
    prompts, warnings = [], []
    for name, text in (("prompt", request.prompt), ("negative prompt", request.negative_prompt)):
        text, removed = clean_prompt(text)
        if removed:
            warnings.append(f"removed {removed} control character{'s' * (removed > 1)} from the {name}")
        prompts.append(text)
    return prompts[0], prompts[1], warnings


def fitted_image(
    request: GenerationRequest, family: Family, images: ImageCache | None
) -> tuple[Image.Image | None, int, int]:
    """The init image opened (its size checked before decoding), made upright RGB and fitted to the run's size, and
    that size (``output_size``); ``images``: where opened and fitted images are kept (None: opened now)."""
    image = None
    if request.init_image is not None:
        image = images.open(request.init_image) if images is not None else open_image(request.init_image)
    width, height = output_size(request, image, family)
    if image is not None and (inpainting(request) or family.mask_required):  # Qwen-Image-Edit's sizes itself
        width, height = inpaint_size(family, width, height)
    if image is not None and images is not None:
        image = images.fit(request.init_image, image, width, height, request.resize_mode)
    elif image is not None:
        image = fit_image(image, width, height, request.resize_mode)
    return image, width, height


def settled_mask(
    request: GenerationRequest,
    family: Family,
    images: ImageCache | None,
    image: Image.Image | None,
    width: int,
    height: int,
) -> tuple[InpaintMask | None, list[str]]:
    """The run's mask settled (``mask.settle_mask``: fitted to ``width`` × ``height`` as the init image ``image`` was)
    and its warnings; None without one (an inpainting checkpoint always has one: all white when none is given)."""
    if image is None or not (inpainting(request) or family.mask_required):
        return None, []
    opened = images.open(request.init_image) if images is not None else open_image(request.init_image)
    mask, warnings = settle_mask(request, family, opened.size, width, height)
    if family.inpaint_pixels is not None and (width, height) != output_size(request, opened, family):
        warnings.append(
            f"{family.label}'s inpaint pipeline ({family.inpaint}) works at about {family.inpaint_pixels / 1e6:.1f} "
            f"megapixels: this run is {width}×{height}"
        )
    return with_fill(mask, image), warnings


def family_warnings(
    family: Family, request: GenerationRequest, negative_prompt: str, width: int, height: int
) -> list[str]:
    """What runs but not as the family was made to: small SDXL sizes, guided Turbo, LCM's negative prompt."""
    out = []
    if family.min_size and min(width, height) < family.min_size:
        out.append(
            f"{family.label} was trained at {family.size}×{family.size}; {width}×{height} is below "
            f"{family.min_size} px, expect poor pictures"
        )
    if family.guidance_ignored and request.guidance_scale > family.guidance:
        out.append(f"{family.label} has no guidance; guidance {request.guidance_scale:g} was ignored")
    if family.trained_without_guidance and request.guidance_scale > 1:
        out.append(
            f"{family.label} was trained without guidance (guidance 0); guidance {request.guidance_scale:g} "
            "runs, doubles each step's work and often looks worse"
        )
    if family.cfg_needs_negative and request.guidance_scale > family.cfg_above and not negative_prompt:
        out.append(
            f"{family.label} guides only against a negative prompt (true CFG): guidance "
            f"{request.guidance_scale:g} does nothing without one; give a negative prompt (a space will do)"
        )
    if not family.negative_prompt and negative_prompt:
        out.append(f"{family.label} takes no negative prompt (its guidance is built into the model); it was ignored")
    return out


def reference_warnings(family: Family, asked: GenerationRequest, plan: StepPlan) -> list[str]:
    """What an edit model (its image a reference) ignores: a strength other than its own 1, real steps."""
    out = []
    if asked.strength is not None and asked.strength != family.strength:
        out.append(
            f"{family.label} takes no strength: your image is a reference and all {plan.steps_to_run} steps run from "
            f"pure noise; strength {asked.strength} was ignored"
        )
    if asked.real_steps:
        out.append(f"{family.label} runs every step it is given: real steps do not apply")
    return out


def truncation_warning(tokenizer, text: str, name: str, limit: int | None = None) -> str | None:
    """Say where the text encoder cuts a prompt longer than its 77 tokens (``limit`` tokens: T5's
    ``max_sequence_length`` less its end token), or None if it fits."""
    if not text or tokenizer is None:
        return None
    if limit is None:
        limit = tokenizer.model_max_length - 2  # without the start and end tokens
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, truncation=False)
    ids = enc["input_ids"]
    if len(ids) <= limit:
        return None
    cut = enc["offset_mapping"][limit][0]
    dropped = text[cut:].strip()
    shown = dropped if len(dropped) <= 40 else dropped[:40] + "…"
    return (
        f"the {name} is {len(ids)} tokens and the text encoder reads {limit}: it was cut at character {cut}, "
        f"so “{shown}” was ignored"
    )


def with_truncation_warnings(
    prepared: PreparedRequest, tokenizer, limit: int | None, negative: bool
) -> PreparedRequest:
    """``prepared`` with a warning for each prompt the model's text encoder cuts (``tokenizer`` and its ``limit``;
    ``negative``: the model takes a negative prompt)."""
    texts = [("prompt", prepared.prompt)] + ([("negative prompt", prepared.negative_prompt)] if negative else [])
    found = [w for name, text in texts if (w := truncation_warning(tokenizer, text, name, limit))]
    return dataclasses.replace(prepared, warnings=prepared.warnings + [w for w in found if w not in prepared.warnings])
