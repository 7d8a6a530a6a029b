"""One run's settings, as asked: ``GenerationRequest`` (``prepare.PreparedRequest`` is it settled before it runs).

``RECORDED_FIELDS`` are the settings a PNG records and a later run takes back to reproduce it; ``FORM_FIELDS`` are
what a page's form fills in (those, the init image, and how steps are drawn). Both are listed here once: the page,
the PNG readers and the metadata writer take them from here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from sd_img2img.config import DEFAULT_PREVIEW, DEFAULT_RESIZE_MODE, MAX_SIDE
from sd_img2img.models.families import Family, default_family


@dataclass
class GenerationRequest:
    """One run's settings. ``init_image=None`` means prompt2img (strength does not apply).

    Args:
        prompt: what to make.
        init_image: a path, bytes or PIL image; ``None`` for prompt2img.
        negative_prompt: what to steer away from (LCM takes none: a warning says it was ignored).
        strength: 0 < strength ≤ 1; how much of the schedule runs, and how far the init image may change.
        steps: schedule length, or with ``real_steps`` the number of steps that must run.
        real_steps: pick the schedule length so that exactly ``steps`` steps run.
        seed: 0 ≤ seed < 2**32; ``None`` picks one at random (the result reports it).
        sampler: a name from ``samplers.ALL_SAMPLER_NAMES`` that fits the model's family (``Engine.samplers``).
        guidance_scale: classifier-free guidance; 1 turns it off (LCM: the guidance embedding's scale).
        strength, steps, sampler, guidance_scale: ``None`` (the default) takes the loaded model's family's
            default (``Engine.defaults``; SD 1.x/2.x: 0.75, 30, k_lms, 7.5).
        width, height: multiples of 8; ``None`` takes the init image's own size (longest side ≤ ``max_side``),
            for prompt2img the family's size (512; SDXL 1024).
        resize_mode: how the init image is fitted to width×height: ``resize``, ``crop`` or ``fill``.
        preview: how step latents become pictures: ``approx``, ``taesd`` or ``full``.
        view: the view decoded while the run goes (``latents`` or ``x0``); with ``taesd``/``full`` the
            other view is decoded when first asked for, so the run pays for one decode a step. ``approx``
            decodes both (it is nearly free).
        max_side: cap on the longest side of the default size.
        loras: LoRA name → scale for this run (names from ``Engine.loras``; absent or 0 = off); ``None``: each
            listed LoRA at its start-up scale.
    """

    prompt: str
    init_image: Any = None
    negative_prompt: str = ""
    strength: float | None = None
    steps: int | None = None
    real_steps: bool = False
    seed: int | None = None
    sampler: str | None = None
    guidance_scale: float | None = None
    width: int | None = None
    height: int | None = None
    resize_mode: str = DEFAULT_RESIZE_MODE
    preview: str = DEFAULT_PREVIEW
    view: str = "latents"
    max_side: int = MAX_SIDE
    loras: dict[str, float] | None = None


# the settings a PNG records and that reproduce its run (the init image is not stored)
RECORDED_FIELDS = (
    "prompt",
    "negative_prompt",
    "strength",
    "steps",
    "real_steps",
    "seed",
    "sampler",
    "guidance_scale",
    "width",
    "height",
    "resize_mode",
    "loras",  # name → scale; the engine refuses names it was not started with
)
# what a page's form fills in: the recorded settings, the init image, and how steps are drawn (max_side is the
# server's)
FORM_FIELDS = ("init_image", *RECORDED_FIELDS, "preview", "view")
assert set(FORM_FIELDS) | {"max_side"} == {f.name for f in dataclasses.fields(GenerationRequest)}

# what a request leaves unset (None) and its model's family fills in
FAMILY_DEFAULTS = {"steps": "steps", "strength": "strength", "guidance_scale": "guidance", "sampler": "sampler"}


def with_defaults(request: GenerationRequest, family: Family | None = None) -> GenerationRequest:
    """``request`` with the settings it leaves unset (``None``) taken from ``family``'s defaults."""
    family = family or default_family()
    changes = {name: getattr(family, own) for name, own in FAMILY_DEFAULTS.items() if getattr(request, name) is None}
    return dataclasses.replace(request, **changes) if changes else request
