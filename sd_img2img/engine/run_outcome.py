"""What a run's pipeline call left, as a result: the output checked (NaN/inf, the safety checker, a stop), the run's
time in parts, and the ``GenerationResult`` with the steps counted from the recorder's frames."""

from __future__ import annotations

import time

from sd_img2img.engine.pipeline_call import Denoised
from sd_img2img.engine.result import GenerationResult
from sd_img2img.engine.step_recorder import StepRecorder
from sd_img2img.errors import GenerationError
from sd_img2img.models.loading import LoadedModel
from sd_img2img.plan.prepare import PreparedRequest


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
    model: str | None = None,
) -> GenerationResult:
    """The result of a finished (or stopped) run, its steps counted from the recorder's frames; ``model``: what the
    result calls the model (its display name; default: the loaded source)."""
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
        model=model or lm.model,
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
        mask=prepared.mask.records() if prepared.mask is not None else None,
        mask_image=prepared.mask.image if prepared.mask is not None else None,
    )


def timed_seconds(t_start: float, t_locked: float, t_done: float, parts: dict[str, float]) -> dict[str, float]:
    """The run's seconds: in all, waiting for the device, running, and the parts of the run."""
    return dict(total=time.perf_counter() - t_start, queued=t_locked - t_start, run=t_done - t_locked, **parts)
