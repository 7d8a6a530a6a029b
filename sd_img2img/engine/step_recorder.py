"""Step capture: every step of a run, as the diffusion sees it.

diffusers' ``callback_on_step_end`` hands over the latents after each scheduler step, but nothing before the
first step, and not the model's prediction of the final image. ``StepRecorder`` attaches to one request's
own pipeline copy and scheduler and records:

- frame 0: the latents at the entry point (for img2img the encoded init image mixed with the noise of that
  point, "the initial image SD sees"; for prompt2img and edit models the starting noise: an edit model's pipeline
  makes it before it sets its schedule, so the frame waits for ``set_timesteps`` to know its σ);
- one frame per step actually taken: the latents after it and the predicted final image x0, taken from the
  scheduler's ``pred_original_sample`` (LCMScheduler's ``denoised``) where it gives one and derived from the
  model output otherwise.

Noisy latents are shown as the UNet sees them: k-diffusion samplers (LMS, Euler, Heun, DPM2) keep
``x0 + sigma·noise`` with sigma up to ~15, which the pipeline divides by ``sqrt(sigma² + 1)`` before the
UNet; the recorder does the same so every sampler's latents look alike. Flow matching (SD3, FLUX) keeps
``x = σ·noise + (1 − σ)·x0`` with σ ≤ 1, shown as it is; its schedulers give no x0, which is ``x − σ·v``
(packed latents, FLUX's and those after it, are unpacked first). Second-order samplers (Heun, DPM2)
call the scheduler twice per step, and PLMS twice on its first step; a frame is recorded when a whole step is
done, and ``model_calls`` counts the UNet evaluations.
"""

from __future__ import annotations

import copy
import functools
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from PIL import Image

from sd_img2img.engine.previews import PreviewDecoder


@dataclass
class StepFrame:
    """One picture of the run: step 0 is the starting point, step i the state after the i-th step taken.

    The latents of both views stay on the cpu; a view's picture is decoded when first asked for (the view
    the run was asked to show is decoded while it runs, so a UI can stream it) and then kept.
    """

    index: int
    total: int  # steps this run will take
    timestep: int | None  # the timestep the step ran at (None for frame 0)
    sigma: float | None  # noise level of the latents in k-diffusion terms, where the sampler has one
    seconds: float  # since the run started
    latents: torch.Tensor = field(repr=False)  # the noisy latents as the UNet sees them (1, 4, h, w), cpu
    x0: torch.Tensor | None = field(repr=False)  # the predicted final image's latents, cpu
    decode: Callable[[torch.Tensor], Image.Image] | None = field(default=None, repr=False)
    images: dict[str, Image.Image] = field(default_factory=dict, repr=False)

    def image(self, view: str = "latents") -> Image.Image:
        """The picture of this step: ``latents`` (noisy, as the UNet sees them) or ``x0`` (predicted final)."""
        if view not in self.images:
            source = self.x0 if view == "x0" and self.x0 is not None else self.latents
            if view == "x0" and self.x0 is None and "latents" in self.images:
                self.images[view] = self.images["latents"]
            elif self.decode is None:
                raise RuntimeError("this step's pictures were not kept and there is no decoder to make them")
            else:
                self.images[view] = self.decode(source)
        return self.images[view]


class StepRecorder:
    """Records a run's frames on one request's pipeline copy and scheduler.

    Args:
        pipe: the request's own pipeline (a shallow copy of the loaded one, with its own scheduler).
        decoder: turns latents into pictures.
        total: steps this run will take (for labels).
        views: the views decoded while the run goes (the others are decoded when asked for).
        on_step: called with each frame as soon as it is computed.
        should_stop: polled after every step; when it returns True the run ends between steps.
        flow: a flow-matching model (SD3, FLUX, …): σ from the scheduler, latents shown unscaled, x0 = x − σ·v.
        unpack: turns packed latents (FLUX's (B, HW/4, 64) …) into (B, C, h, w) before they become pictures.
    """

    def __init__(
        self,
        pipe,
        decoder: PreviewDecoder,
        total: int,
        on_step: Callable[[StepFrame], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        views: tuple[str, ...] = ("latents", "x0"),
        flow: bool = False,
        unpack: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ):
        self.pipe = pipe
        self.flow = flow
        self.unpack = unpack
        self.views = views
        self.scheduler = pipe.scheduler
        self.decoder = decoder
        self.total = total
        self.on_step = on_step
        self.should_stop = should_stop
        self.frames: list[StepFrame] = []
        self.stopped = False
        self.nonfinite_at: int | None = None
        self._x0: torch.Tensor | None = None
        self._pending: torch.Tensor | None = None  # step 0's latents, made before the schedule was set
        self._t0 = self.started = time.perf_counter()  # frames' seconds count from here
        self._k_style = float(getattr(self.scheduler, "init_noise_sigma", 1.0)) > 1.0
        self.decoded_finite = True
        self.model_calls = 0  # scheduler steps, each one UNet evaluation (batched with guidance)
        self._wrap_prepare_latents()
        self._wrap_set_timesteps()
        self._wrap_scheduler_step()
        self._wrap_run_safety_checker()

    # -- hooks ---------------------------------------------------------------------------------------------

    def _wrap_prepare_latents(self) -> None:
        original = self.pipe.prepare_latents

        @functools.wraps(original)
        def prepare_latents(*args, **kwargs):
            result = original(*args, **kwargs)
            latents = result[0] if isinstance(result, tuple) else result  # FLUX: (latents, latent_image_ids)
            if getattr(self.scheduler, "num_inference_steps", None) is None:  # no schedule yet (edit models)
                self._pending = latents
            else:
                self._emit_start(latents)
            return result

        self.pipe.prepare_latents = prepare_latents  # this request's copy only

    def _wrap_set_timesteps(self) -> None:
        original = self.scheduler.set_timesteps

        @functools.wraps(original)
        def set_timesteps(*args, **kwargs):
            out = original(*args, **kwargs)
            if self._pending is not None:
                latents, self._pending = self._pending, None
                self._emit_start(latents)
            return out

        self.scheduler.set_timesteps = set_timesteps  # this request's scheduler only

    def _emit_start(self, latents: torch.Tensor) -> None:
        """Step 0, at the σ of the first step that runs."""
        self._emit(latents, None, None, self._sigma_at(getattr(self.scheduler, "begin_index", None) or 0))

    def _wrap_scheduler_step(self) -> None:
        scheduler = self.scheduler
        original = scheduler.step

        # functools.wraps keeps the signature visible: diffusers passes ``generator``/``eta`` only to a
        # step() whose signature names them (prepare_extra_step_kwargs)
        @functools.wraps(original)
        def step(model_output, timestep, sample, *args, return_dict: bool = True, **kwargs):
            index = getattr(scheduler, "step_index", None)
            if index is None:  # the first step: the scheduler starts at its begin index
                index = getattr(scheduler, "begin_index", None)
            if index is None and hasattr(scheduler, "index_for_timestep"):
                index = scheduler.index_for_timestep(timestep)
            sigma = self._sigma_at(index) if index is not None else None
            out = original(model_output, timestep, sample, *args, return_dict=True, **kwargs)
            x0 = getattr(out, "pred_original_sample", None)
            if x0 is None:
                x0 = getattr(out, "denoised", None)  # LCMScheduler
            self._x0 = (
                x0 if x0 is not None else derive_x0(self.scheduler, model_output, timestep, sample, sigma, self.flow)
            )
            return out if return_dict else out.to_tuple()

        scheduler.step = step  # this request's scheduler only

    def _wrap_run_safety_checker(self) -> None:
        """Check the VAE's decoded output is finite: where the safety checker receives it (SD, LCM), else
        where the image processor turns it into a picture (SDXL has no safety checker)."""
        if hasattr(self.pipe, "run_safety_checker"):
            original = self.pipe.run_safety_checker

            @functools.wraps(original)
            def run_safety_checker(image, *args, **kwargs):  # receives the VAE's decoded output
                self.decoded_finite = bool(torch.isfinite(image).all())
                return original(image, *args, **kwargs)

            self.pipe.run_safety_checker = run_safety_checker  # this request's copy only
            return
        processor = self.pipe.image_processor = copy.copy(self.pipe.image_processor)  # this request's only
        postprocess = processor.postprocess

        @functools.wraps(postprocess)
        def checked_postprocess(image, *args, **kwargs):
            if isinstance(image, torch.Tensor):
                self.decoded_finite = bool(torch.isfinite(image).all())
            return postprocess(image, *args, **kwargs)

        processor.postprocess = checked_postprocess

    def callback_on_step_end(self, pipe, i: int, t, callback_kwargs: dict) -> dict:
        """diffusers' ``callback_on_step_end``: record the step, stop between steps on request."""
        self.model_calls += 1
        if self._step_complete(i, pipe):
            step_index = getattr(self.scheduler, "step_index", None)
            sigma = self._sigma_at(step_index) if step_index is not None else None
            self._emit(callback_kwargs["latents"], int(t), self._x0, sigma)
        if self.nonfinite_at is not None or (self.should_stop is not None and self.should_stop()):
            if hasattr(type(pipe), "interrupt"):  # LCM's pipelines have none: they finish their few steps
                self.stopped = self.nonfinite_at is None
                pipe._interrupt = True
        return {}

    # -- helpers -------------------------------------------------------------------------------------------

    def _step_complete(self, i: int, pipe) -> bool:
        """True when the scheduler call just made finished a whole step.

        Heun and DPM2 take two calls per step (``state_in_first_order`` is False between them), and PLMS
        takes two on its first step (``cur_sample`` is kept between them); the last call always ends a step.
        """
        if i == pipe._num_timesteps - 1:
            return True
        return (
            getattr(self.scheduler, "state_in_first_order", True)
            and getattr(self.scheduler, "cur_sample", None) is None
        )

    def _sigma_at(self, index: int) -> float | None:
        sigmas = getattr(self.scheduler, "sigmas", None)
        if not (self._k_style or self.flow) or sigmas is None or index >= len(sigmas):
            return None
        return float(sigmas[index])

    def _emit(self, latents: torch.Tensor, timestep: int | None, x0: torch.Tensor | None, sigma: float | None) -> None:
        latents = latents[:1].detach()
        if not torch.isfinite(latents).all():
            self.nonfinite_at = len(self.frames)
            return
        x0 = x0[:1].detach() if x0 is not None else None
        if self.unpack is not None:
            latents = self.unpack(latents) if latents.ndim == 3 else latents
            x0 = self.unpack(x0) if x0 is not None and x0.ndim == 3 else x0
        seen = latents / (sigma**2 + 1) ** 0.5 if sigma and not self.flow else latents
        frame = StepFrame(
            index=len(self.frames),
            total=self.total,
            timestep=timestep,
            sigma=sigma,
            seconds=time.perf_counter() - self._t0,
            latents=seen.cpu(),
            x0=x0.cpu() if x0 is not None else None,
            decode=self.decoder.decode_later,
        )
        for view in self.views:  # decode on the device, from the tensors still there
            frame.images[view] = self.decoder.decode(x0 if view == "x0" and x0 is not None else seen)
        self.frames.append(frame)
        if self.on_step is not None:
            self.on_step(frame)


def derive_x0(scheduler, model_output, timestep, sample, sigma: float | None, flow: bool) -> torch.Tensor:
    """x0 from the model output where the sampler gives none (PNDM, DPM-Solver, flow matching)."""
    if flow:  # x = σ·noise + (1 − σ)·x0 and the model predicts v = noise − x0
        return sample - sigma * model_output
    prediction = scheduler.config.prediction_type
    if sigma is not None:
        if prediction == "v_prediction":
            return model_output * (-sigma / (sigma**2 + 1) ** 0.5) + sample / (sigma**2 + 1)
        return sample - sigma * model_output
    alphas = scheduler.alphas_cumprod.to(sample.device)
    a = alphas[int(timestep)].to(sample.dtype)
    if prediction == "v_prediction":
        return a.sqrt() * sample - (1 - a).sqrt() * model_output
    return (sample - (1 - a).sqrt() * model_output) / a.sqrt()
