"""One prepared request's call of diffusers' own pipeline: a shallow copy of the loaded pipeline with its own scheduler
and the step recorder attached (``request_pipeline``), the arguments as the family's pipeline takes them
(``pipeline_kwargs``), and the call itself (``call_pipeline``: diffusers' own denoising loop).

The caller holds the device's lock around ``call_pipeline`` (runs on one device take turns); nothing here is shared
between requests but the model's weights. What the call left becomes a result in ``run_outcome``.
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass
from typing import Any, Callable

import torch

from sd_img2img.config import VIEWS
from sd_img2img.engine import inpaint
from sd_img2img.engine.previews import PreviewDecoder
from sd_img2img.engine.step_recorder import StepFrame, StepRecorder
from sd_img2img.errors import GenerationError
from sd_img2img.models.devices import free_memory
from sd_img2img.models.loading import LoadedModel
from sd_img2img.plan.prepare import PreparedRequest
from sd_img2img.plan.samplers import make_scheduler


@dataclass
class Denoised:
    """What the pipeline call left: its output and the recorder that watched it."""

    out: Any
    recorder: StepRecorder


def request_pipeline(
    lm: LoadedModel,
    prepared: PreparedRequest,
    decoder: PreviewDecoder,
    on_step: Callable[[StepFrame], None] | None,
    should_stop: Callable[[], bool] | None,
) -> tuple[Any, StepRecorder]:
    """A shallow copy of the loaded pipeline (the family's inpaint pipeline for a masked run) with its own scheduler, and
    a ``StepRecorder`` on it (which draws a masked run's mask on every step)."""
    r = prepared.request
    base = lm.img2img if prepared.image is not None else lm.txt2img
    if prepared.mask is not None:
        base = inpaint.inpaint_pipeline(lm)
    assert base is not None, "prepare_request refuses prompt2img for a family without a prompt2img pipeline"
    pipe = copy.copy(base)
    pipe.scheduler = make_scheduler(r.sampler, base.scheduler.config)
    if prepared.mask is not None:
        crop = inpaint.crop_region(pipe, prepared)
        inpaint.replace_latent_content(pipe, prepared, crop)
        decoder = inpaint.masked_preview(decoder, prepared, crop)
    unpack = latent_unpacker(lm.family, pipe, prepared.width, prepared.height)
    recorder = StepRecorder(
        pipe,
        decoder,
        prepared.plan.steps_to_run,
        on_step,
        should_stop,
        VIEWS if r.preview == "approx" else (r.view,),
        flow=lm.family.flow_matching,
        unpack=unpack,
    )
    return pipe, recorder


def latent_unpacker(family, pipe, width: int, height: int) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """How ``family``'s packed latents become (1, C, h, w) for pictures, by its pipeline's own methods: FLUX's 2×2
    patches (``_unpack_latents``; Qwen-Image's then have a frame axis, dropped), FLUX.2's patchified tokens
    (``_unpack_latents_with_ids``, then ``_unpatchify_latents`` to its 32 channels). None: not packed."""
    if family.packing is None:
        return None
    if family.packing == "flux2":
        side = pipe.vae_scale_factor * 2
        # Flux2KleinPipeline's takes the grid's size too; Flux2KleinInpaintPipeline's reads it from the ids
        sized = len(inspect.signature(pipe._unpack_latents_with_ids).parameters) > 2
        grid_size = (height // side, width // side) if sized else ()

        def unpack_flux2(x):
            ids = pipe._prepare_latent_ids(torch.zeros(1, 1, height // side, width // side)).to(x.device)
            return pipe._unpatchify_latents(pipe._unpack_latents_with_ids(x, ids, *grid_size))

        return unpack_flux2

    def unpack(x):
        x = pipe._unpack_latents(x, height, width, pipe.vae_scale_factor)
        return x[:, :, 0] if family.latent_frames else x  # Qwen: (B, C, 1, h, w)

    return unpack


def pipeline_kwargs(lm: LoadedModel, recorder: StepRecorder, prepared: PreparedRequest, prompts: dict) -> dict:
    """The arguments of the pipeline call, by the family: guidance under its own name, strength only where it means
    something, the size for flow models (FLUX img2img would otherwise work at 1024×1024), Kontext's ``max_area``."""
    r, family = prepared.request, lm.family
    kwargs = dict(
        **prompts,
        num_inference_steps=prepared.plan.schedule_steps,
        generator=torch.Generator("cpu").manual_seed(prepared.seed),
        callback_on_step_end=recorder.callback_on_step_end,
    )
    kwargs[family.guidance_kwarg] = float(r.guidance_scale)
    if not family.negative_prompt:
        kwargs.pop("negative_prompt", None)
    if prepared.image is not None:
        kwargs["image"] = prepared.image
        if family.takes_strength:
            kwargs["strength"] = float(r.strength)
    if prepared.image is None or family.flow_matching:
        kwargs.update(width=prepared.width, height=prepared.height)
    if family.max_area:  # FluxKontextPipeline rescales its output to max_area pixels
        kwargs["max_area"] = prepared.width * prepared.height
    if prepared.mask is not None:
        kwargs.update(inpaint.mask_kwargs(lm, prepared))
    return kwargs


def call_pipeline(lm: LoadedModel, pipe, recorder: StepRecorder, prepared: PreparedRequest, prompts: dict) -> Denoised:
    """Call the pipeline; out of memory becomes a ``GenerationError`` saying what to lower.

    ``prompts``: the prompts as the pipeline takes them (text, or ``prompt_embeds`` from the prompt cache).
    """
    kwargs = pipeline_kwargs(lm, recorder, prepared, prompts)
    out = None
    try:
        with torch.inference_mode():
            out = pipe(**kwargs)
    except torch.OutOfMemoryError:
        pass  # handled below, once the exception (and the tensors its traceback holds) is gone
    if out is None:
        del pipe, kwargs
        free_memory(lm.device)
        raise GenerationError(
            f"out of memory on {lm.device} at {prepared.width}×{prepared.height}; lower width/height or "
            "steps, use preview 'approx', or start with --offload model (or sequential)"
        )
    if prepared.mask is not None:
        out.images[0] = inpaint.overlay(pipe, prepared, out.images[0])
    return Denoised(out, recorder)
