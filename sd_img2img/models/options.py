"""How a model is loaded and run, as one object: ``EngineOptions``. The command line and the demo build it from
their flags (``settings``); ``Engine``, ``ModelSet`` and ``load_model`` take it whole."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from sd_img2img.config import DEFAULT_VAE, DEVICES, DTYPES, OFFLOADS, VAES
from sd_img2img.errors import UserInputError, check_choice
from sd_img2img.models.loras import LoraSpec, as_specs


@dataclass(frozen=True)
class EngineOptions:
    """How a model is loaded and run.

    Args:
        device: ``auto`` (cuda, then mps, then cpu), ``cpu``, ``cuda`` or ``mps``.
        dtype: ``auto`` (float16 on GPUs; on the cpu bfloat16 where it computes it natively, else float32),
            ``float16``, ``bfloat16`` or ``float32``.
        offload: ``none``, ``model`` or ``sequential`` (accelerate; GPU).
        safety_checker: keep the checkpoint's safety checker if it has one.
        taesd: hub id or folder of the tiny autoencoder for ``preview="taesd"`` and ``vae="tiny"``; None: the
            family's (``madebyollin/taesd``; SDXL ``taesdxl``, SD3 ``taesd3``, FLUX ``taef1``).
        compile: ``torch.compile`` the UNet at load and warm it up there (GPU; docs/performance.md).
        config: for a single-file model, a local diffusers folder describing it (None: the shipped configs).
        vae: ``full`` (the checkpoint's VAE) or ``tiny`` (the tiny autoencoder encodes and decodes).
        loras: LoRAs loaded with the model (``FILE[:SCALE]`` strings or ``LoraSpec``s, made specs here); runs switch
            them on and off and scale them.
    """

    device: str = "auto"
    dtype: str = "auto"
    offload: str = "none"
    safety_checker: bool = True
    taesd: str | None = None
    compile: bool = False
    config: str | None = None
    vae: str = DEFAULT_VAE
    loras: tuple[LoraSpec, ...] = ()

    def __post_init__(self):
        check_choice("device", self.device, DEVICES)
        check_choice("dtype", self.dtype, DTYPES)
        check_choice("offload", self.offload, OFFLOADS)
        check_choice("vae", self.vae, VAES)
        object.__setattr__(self, "loras", as_specs(self.loras))
        if self.compile and self.loras:
            raise UserInputError(
                "--compile with --lora is not supported: LoRA adapters are switched per run, which "
                "the compiled UNet would recompile for; leave one of them out"
            )

    def replace(self, **changes) -> EngineOptions:
        return dataclasses.replace(self, **changes)
