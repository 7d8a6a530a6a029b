"""Samplers by their InvokeAI names, each built from the checkpoint's own scheduler config.

Names are plain data so the UI and validation can list them without importing diffusers. Which names fit a
loaded model is its family's business (``families.Family.samplers``): ``lcm`` only for LCM checkpoints,
``flow_*`` only for flow-matching ones (SD3, FLUX), the others for SD/SDXL (Turbo: a few one-call-a-step ones).
"""

from __future__ import annotations

from typing import Any

from sd_img2img.errors import check_choice
from sd_img2img.imports import diffusers_class

# name → (diffusers scheduler class, config overrides)
SAMPLERS: dict[str, tuple[str, dict[str, Any]]] = {
    "k_lms": ("LMSDiscreteScheduler", {}),
    "ddim": ("DDIMScheduler", {}),
    "plms": ("PNDMScheduler", {"skip_prk_steps": True}),
    "k_euler": ("EulerDiscreteScheduler", {}),
    "k_euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "k_heun": ("HeunDiscreteScheduler", {}),
    "k_dpm_2": ("KDPM2DiscreteScheduler", {}),
    "k_dpm_2_a": ("KDPM2AncestralDiscreteScheduler", {}),
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "dpmpp_2m_karras": (
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True},
    ),
    "lcm": ("LCMScheduler", {}),
    # flow matching (SD3, FLUX): x0 is derived as x − σ·v
    "flow_euler": ("FlowMatchEulerDiscreteScheduler", {}),
    "flow_euler_karras": ("FlowMatchEulerDiscreteScheduler", {"use_karras_sigmas": True}),
    "flow_euler_exponential": ("FlowMatchEulerDiscreteScheduler", {"use_exponential_sigmas": True}),
    "flow_euler_beta": ("FlowMatchEulerDiscreteScheduler", {"use_beta_sigmas": True}),
    "flow_heun": ("FlowMatchHeunDiscreteScheduler", {}),
}
ALL_SAMPLER_NAMES = tuple(SAMPLERS)  # every name some family takes (what the CLI accepts at parse time)
# samplers that step between the training timesteps themselves, so a schedule can't be longer than those
DISCRETE_TIMESTEP_SAMPLERS = ("ddim", "plms")


def make_scheduler(name: str, base_config: Any):
    """A fresh scheduler for one request, built from the checkpoint's scheduler config.

    Args:
        name: a sampler name from ``SAMPLERS`` (``checks.check_sampler`` says whether it fits the model).
        base_config: the loaded checkpoint's ``scheduler.config``.
    """
    cls_name, overrides = SAMPLERS[check_choice("sampler", name, ALL_SAMPLER_NAMES)]
    cls = diffusers_class(cls_name)
    return cls.from_config(base_config, **overrides)
