"""One prepared request run on a loaded model: its own pipeline copy and scheduler with the step recorder attached,
diffusers' own denoising loop, the output checked (NaN, the safety checker, a stop) and the result assembled.

The caller holds the device's lock around ``denoise`` (runs on one device take turns); nothing here is shared
between requests but the model's weights.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch

from sd_img2img.config import VIEWS
from sd_img2img.errors import GenerationError
from sd_img2img.models.devices import free_memory
from sd_img2img.models.loading import LoadedModel
from sd_img2img.run.prepare import PreparedRequest
from sd_img2img.run.previews import PreviewDecoder
from sd_img2img.run.result import GenerationResult
from sd_img2img.run.samplers import make_scheduler
from sd_img2img.run.steps import StepFrame, StepRecorder


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
    """A shallow copy of the loaded pipeline with its own scheduler, and a ``StepRecorder`` on it."""
    r = prepared.request
    base = lm.img2img if prepared.image is not None else lm.txt2img
    assert base is not None, "prepare_request refuses prompt2img for a family without a prompt2img pipeline"
    pipe = copy.copy(base)
    pipe.scheduler = make_scheduler(r.sampler, base.scheduler.config)
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

        def unpack_flux2(x):
            side = pipe.vae_scale_factor * 2
            grid = torch.zeros(1, 1, height // side, width // side)
            ids = pipe._prepare_latent_ids(grid).to(x.device)
            return pipe._unpatchify_latents(pipe._unpack_latents_with_ids(x, ids, height // side, width // side))

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
    return kwargs


def denoise(lm: LoadedModel, pipe, recorder: StepRecorder, prepared: PreparedRequest, prompts: dict) -> Denoised:
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
    return Denoised(out, recorder)


def flagged(out) -> bool:
    """Whether the safety checker flagged the output (pipelines without one, such as SDXL's, never do)."""
    nsfw = getattr(out, "nsfw_content_detected", None)
    return bool(nsfw and nsfw[0])


def output_warnings(lm: LoadedModel, done: Denoised, prepared: PreparedRequest) -> list[str]:
    """Raise on NaN/inf; return the run's warnings (the model's, the request's, a flagged output, a stop)."""
    recorder = done.recorder
    if recorder.nonfinite_at is not None or not recorder.decoded_finite:
        at = recorder.nonfinite_at
        raise GenerationError(
            "the run produced NaN/inf values"
            + (f" at step {at}" if at is not None else " in the VAE decode")
            + f" (dtype {str(lm.dtype).removeprefix('torch.')}); try --dtype float32 or another seed"
        )
    warnings = list(lm.warnings) + list(prepared.warnings)  # at load (a flow model on the cpu) …
    if flagged(done.out):
        warnings.append("the safety checker flagged the output, so it was withheld (blacked out)")
    if recorder.stopped:
        warnings.append(f"stopped after {len(recorder.frames) - 1} of {prepared.plan.steps_to_run} steps")
    return warnings


def run_parts(recorder: StepRecorder, text_seconds: float | None, t_done: float) -> dict[str, float]:
    """The run's time in parts: text encoding, up to the first step (VAE encode), the steps, the decode."""
    frames = recorder.frames
    if not frames:
        return {}
    text = text_seconds or 0.0
    return dict(
        text_encode=text,
        before_steps=max(0.0, frames[0].seconds - text),
        steps=frames[-1].seconds - frames[0].seconds,
        after_steps=max(0.0, t_done - recorder.started - frames[-1].seconds),
    )


def make_result(
    lm: LoadedModel,
    prepared: PreparedRequest,
    done: Denoised,
    warnings: list[str],
    seconds: dict[str, float],
    model_hash: str | None,
) -> GenerationResult:
    """The result of a finished (or stopped) run, its steps counted from the recorder's frames."""
    r, plan, frames = prepared.request, prepared.plan, done.recorder.frames
    unet_seconds = sorted(b.seconds - a.seconds for a, b in zip(frames, frames[1:]))
    seconds = {k: round(v, 4) for k, v in seconds.items()}
    seconds["per_step"] = round(unet_seconds[len(unet_seconds) // 2], 4) if unet_seconds else 0.0
    return GenerationResult(
        output=done.out.images[0],
        frames=frames,
        mode=prepared.mode,
        prompt=prepared.prompt,
        negative_prompt=prepared.negative_prompt,
        seed=prepared.seed,
        steps=r.steps,
        real_steps=bool(r.real_steps),
        schedule_steps=plan.schedule_steps,
        steps_taken=len(frames) - 1,
        model_calls=done.recorder.model_calls,
        strength=float(r.strength) if prepared.image is not None and lm.family.takes_strength else None,
        sampler=r.sampler,
        guidance_scale=float(r.guidance_scale),
        width=prepared.width,
        height=prepared.height,
        resize_mode=r.resize_mode,
        preview=r.preview,
        model=lm.model,
        seconds=seconds,
        family=lm.family.name,
        nsfw_flagged=flagged(done.out),
        stopped=done.recorder.stopped,
        warnings=warnings,
        model_hash=model_hash,
        plan=plan,
        loras=dict(prepared.loras),
        dtype=str(lm.denoiser.dtype).removeprefix("torch."),
        vae=lm.vae_kind,
    )


def timed_seconds(t_start: float, t_locked: float, t_done: float, parts: dict[str, float]) -> dict[str, float]:
    """The run's seconds: in all, waiting for the device, running, and the parts of the run."""
    return dict(total=time.perf_counter() - t_start, queued=t_locked - t_start, run=t_done - t_locked, **parts)
