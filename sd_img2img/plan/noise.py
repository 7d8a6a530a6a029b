"""What strength really means: the noise level the image enters the run at, read from the run's own schedule.

img2img mixes the encoded image with noise at the first step it keeps. How much of the image survives there is what
strength sets, and the same strength is a different noise level per family (flow models barely change below strength
~0.8; SDXL 0.25 looks like SD1.5 0.05). ``entry_noise`` builds the request's own scheduler from the checkpoint's
scheduler config, sets its timesteps as the family's pipeline does (the pipeline's own sigmas and shift ``mu``, which
depends on the image's size) and reads the first step that runs:

- flow matching (x = σ·noise + (1 − σ)·x0): σ there, and 1 − σ of the image kept;
- k-diffusion samplers (x = x0 + σ·noise): σ there, and 1/√(σ² + 1) = √ᾱ of the image's signal kept;
- DDPM-style samplers (DDIM, PLMS, DPM-Solver, LCM: x = √ᾱ·x0 + √(1 − ᾱ)·noise): the timestep and √ᾱ;
- edit models: every step runs from pure noise (σ = 1 at the first step); none of the image is in it.

The test suite checks the plan's σ against the σ each family's run starts at (``StepFrame.sigma`` of step 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sd_img2img.models.families import Family
from sd_img2img.plan.samplers import make_scheduler


@dataclass(frozen=True)
class NoiseLevel:
    """Where a run's image enters the schedule.

    Args:
        kept: the share of the image's signal in the latents the run starts from (0 to 1).
        kind: ``flow``, ``k`` (k-diffusion σ), ``ddpm`` (√ᾱ at a timestep) or ``reference`` (an edit model).
        sigma: σ at the first step that runs (flow matching, k-diffusion samplers, edit models).
        timestep: the timestep of the first step that runs.
    """

    kept: float
    kind: str
    sigma: float | None = None
    timestep: float | None = None

    @property
    def percent(self) -> str:
        return f"{self.kept * 100:.0f} %"

    def describe(self) -> str:
        """``the image enters at σ = 0.73 (27 % of it kept)`` and its kin, for the plan line and the explain table."""
        if self.kind == "reference":
            return "every step starts from pure noise (σ = 1): the model looks at your image, none of it is mixed in"
        if self.kind == "ddpm":
            return (
                f"the image enters at t = {self.timestep:.0f} (√ᾱ = {self.kept:.2f}: {self.percent} of its signal kept)"
            )
        of = "it" if self.kind == "flow" else "its signal"
        return f"the image enters at σ = {self.sigma:.2f} ({self.percent} of {of} kept)"

    def short(self) -> str:
        """``σ = 0.73 · 27 % kept`` (the explain table's cell)."""
        if self.kind == "reference":
            return "σ = 1 · a reference: 0 % mixed in"
        level = f"t = {self.timestep:.0f}" if self.kind == "ddpm" else f"σ = {self.sigma:.2f}"
        return f"{level} · {self.percent} kept"

    def info(self) -> dict:
        """For the run info (JSON)."""
        return dict(kind=self.kind, sigma=self.sigma, timestep=self.timestep, image_kept=round(self.kept, 4))


def image_seq_len(family: Family, width: int, height: int) -> int:
    """The number of 2×2 latent patches the pipelines compute their shift ``mu`` from."""
    m = family.size_multiple
    return (int(height) // m) * (int(width) // m)


# diffusers' own helpers, written out: importing them would import their pipelines' modules (and transformers with
# them), seconds of work and, while a model loads in another thread, a race with its imports. The test suite checks
# that each equals diffusers' own over many inputs (tests/models/test_families_zimage_qwen_chroma_edit.py).
def calculate_shift(seq: int, base_seq: int = 256, max_seq: int = 4096, base_shift: float = 0.5, max_shift=1.15):
    """diffusers' ``pipelines.flux.pipeline_flux.calculate_shift``: the shift ``mu``, linear in the patch count."""
    m = (max_shift - base_shift) / (max_seq - base_seq)
    return seq * m + (base_shift - m * base_seq)


def compute_empirical_mu(seq: int, steps: int) -> float:
    """diffusers' ``pipelines.flux2.pipeline_flux2_klein.compute_empirical_mu``: FLUX.2's shift from size and steps."""
    a1, b1 = 8.73809524e-05, 1.89833333
    a2, b2 = 0.00016927, 0.45666666
    if seq > 4300:
        return float(a2 * seq + b2)
    m_200, m_10 = a2 * seq + b2, a1 * seq + b1
    a = (m_200 - m_10) / 190.0
    return float(a * steps + (m_200 - 200.0 * a))


def pipeline_sigmas(family: Family, steps: int):
    """The sigmas the family's pipeline hands its scheduler: ``linspace(1, 1/N, N)`` (numpy; Z-Image's in float32
    torch, ``get_default_z_image_sigmas``)."""
    import numpy as np
    import torch

    if family.name == "zimage":
        return torch.linspace(1.0, 1 / steps, steps).tolist()
    return np.linspace(1.0, 1 / steps, steps)


def set_schedule(scheduler, family: Family, steps: int, width: int, height: int) -> None:
    """``scheduler.set_timesteps`` as ``family``'s pipeline calls it for a ``steps``-step run at ``width``×``height``:
    the scheduler's own spacing (SD, SDXL, SD3: shift ``mu`` only with dynamic shifting), or the pipeline's sigmas
    with ``mu`` from the image's size (FLUX and the families after it; FLUX.2's empirical ``mu``)."""
    cfg = scheduler.config
    seq = image_seq_len(family, width, height)
    shift = (cfg.get("base_image_seq_len", 256), cfg.get("max_image_seq_len", 4096), cfg.get("base_shift", 0.5))
    if family.sigma_schedule == "scheduler":
        if cfg.get("use_dynamic_shifting", False):  # 1.16: StableDiffusion3Img2ImgPipeline's own fallback
            scheduler.set_timesteps(steps, mu=calculate_shift(seq, *shift, cfg.get("max_shift", 1.16)))
        else:
            scheduler.set_timesteps(steps)
        return
    sigmas = None if cfg.get("use_flow_sigmas", False) else pipeline_sigmas(family, steps)
    if family.sigma_schedule == "empirical":
        mu = compute_empirical_mu(seq, steps)
    else:
        mu = calculate_shift(seq, *shift, cfg.get("max_shift", 1.15))
    scheduler.set_timesteps(steps if sigmas is None else None, sigmas=sigmas, mu=mu)


def entry_noise(family: Family, sampler: str, plan, width: int, height: int) -> NoiseLevel | None:
    """The noise level ``plan``'s image enters at on ``family`` with ``sampler`` at ``width``×``height``; None for
    prompt2img, or when the checkpoint's scheduler config is not known.

    Args:
        family: the model's family, with its checkpoint's scheduler config.
        sampler: the run's sampler (``samplers.SAMPLERS``).
        plan: the run's ``plan.StepPlan`` (schedule length, steps that run; LCM's first timestep).
        width, height: the run's size (flow models shift their schedule by it).
    """
    if (plan.strength is None and not plan.reference) or family.scheduler_config is None:
        return None
    scheduler = make_scheduler(sampler, family.scheduler_config)
    if plan.start_timestep is not None:  # LCM: its rule puts the start on the training schedule
        t = int(plan.start_timestep)
        return NoiseLevel(kept=float(scheduler.alphas_cumprod[t]) ** 0.5, kind="ddpm", timestep=t)
    set_schedule(scheduler, family, plan.schedule_steps, width, height)
    start = (plan.schedule_steps - plan.steps_to_run) * scheduler.order
    timestep = float(scheduler.timesteps[start])
    sigmas = getattr(scheduler, "sigmas", None)
    if family.flow_matching:
        sigma = float(sigmas[start])
        kind = "reference" if plan.reference else "flow"
        return NoiseLevel(kept=0.0 if plan.reference else 1.0 - sigma, kind=kind, sigma=sigma, timestep=timestep)
    if float(getattr(scheduler, "init_noise_sigma", 1.0)) > 1.0 and sigmas is not None:  # k-diffusion
        sigma = float(sigmas[start])
        return NoiseLevel(kept=1.0 / math.sqrt(sigma**2 + 1.0), kind="k", sigma=sigma, timestep=timestep)
    alpha = float(scheduler.alphas_cumprod[int(timestep)])
    return NoiseLevel(kept=math.sqrt(alpha), kind="ddpm", timestep=timestep)
