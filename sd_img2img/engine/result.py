"""What a run made and how: the output, every step, and the settings that reproduce it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from sd_img2img import __version__
from sd_img2img.config import VIEWS
from sd_img2img.engine.previews import make_strip
from sd_img2img.engine.step_recorder import StepFrame
from sd_img2img.errors import check_choice
from sd_img2img.plan.step_plan import StepPlan


@dataclass
class GenerationResult:
    """What a run made and how: the output, every step, and the settings that reproduce it."""

    output: Image.Image
    frames: list[StepFrame]
    mode: str  # "img2img" or "txt2img"
    prompt: str
    negative_prompt: str
    seed: int
    steps: int  # as asked
    real_steps: bool
    schedule_steps: int  # length of the schedule handed to the scheduler
    steps_taken: int  # counted from the run
    model_calls: int  # UNet evaluations (Heun and DPM2 take two a step, PLMS two on its first)
    strength: float | None
    sampler: str
    guidance_scale: float
    width: int
    height: int
    resize_mode: str
    preview: str
    model: str
    seconds: dict[str, float]
    family: str = ""  # the model's family (families.FAMILIES), e.g. "sdxl-turbo"
    nsfw_flagged: bool = False
    stopped: bool = False
    warnings: list[str] = field(default_factory=list)
    model_hash: str | None = None  # AUTOMATIC1111-style short hash of the weights, once the engine has it
    plan: StepPlan | None = field(default=None, repr=False)  # what was planned: the family's label and step rule
    loras: dict[str, float] = field(default_factory=dict)  # the LoRAs that were on (name → scale)
    dtype: str = ""  # the dtype the run computed in (float32, bfloat16, float16)
    vae: str = "full"  # the autoencoder that encoded and decoded: the checkpoint's ("full") or TAESD ("tiny")
    mask: dict[str, Any] | None = None  # inpainting: the mask's hash and settings (plan.mask.InpaintMask.records)
    mask_image: Image.Image | None = field(default=None, repr=False)  # … and the mask itself, saved beside the PNG

    def step_images(self, view: str = "latents") -> list[Image.Image]:
        """Step images, step 0 first; ``view`` is ``latents`` (noisy, as the UNet sees them) or ``x0``."""
        check_choice("view", view, VIEWS)
        return [f.image(view) for f in self.frames]

    def strip(self, view: str = "latents") -> Image.Image:
        """All step images side by side in one picture."""
        return make_strip(self.step_images(view))

    def settings(self) -> dict[str, Any]:
        """The settings that reproduce this run (what PNG metadata records)."""
        return dict(
            generator=f"sd-img2img {__version__}",
            mode=self.mode,
            model=self.model,
            prompt=self.prompt,
            negative_prompt=self.negative_prompt,
            seed=self.seed,
            steps=self.steps,
            real_steps=self.real_steps,
            schedule_steps=self.schedule_steps,
            steps_taken=self.steps_taken,
            model_calls=self.model_calls,
            strength=self.strength,
            sampler=self.sampler,
            guidance_scale=self.guidance_scale,
            width=self.width,
            height=self.height,
            resize_mode=self.resize_mode,
            stopped=self.stopped,
            **({"model_hash": self.model_hash} if self.model_hash else {}),
            **({"loras": dict(self.loras)} if self.loras else {}),
            **(self.mask or {}),
        )

    def noise_level(self) -> dict[str, Any] | None:
        """Where the image entered the schedule (``noise.NoiseLevel``: σ or the timestep, the share of the image
        kept, ``kind`` ``reference`` for an edit model's reference image); None for prompt2img."""
        noise = self.plan.noise if self.plan is not None else None
        return noise.info() if noise is not None else None

    def info(self) -> dict[str, Any]:
        """Settings plus how the run went: timings, flags, warnings (JSON-ready)."""
        return {
            **self.settings(),
            "family": self.family,
            "noise_level": self.noise_level(),
            "preview": self.preview,
            "dtype": self.dtype,
            "vae": self.vae,
            "seconds": self.seconds,
            "nsfw_flagged": self.nsfw_flagged,
            "warnings": list(self.warnings),
        }
