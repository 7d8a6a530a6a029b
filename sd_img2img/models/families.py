"""Model families: what differs between SD 1.x/2.x, SD-Turbo, SDXL (base, refiner, Turbo), LCM, SD3/3.5 and
FLUX.1 (dev, schnell), as data.

Each ``Family`` names its diffusers pipelines, the components its weights live in, the samplers that fit it,
how many of N steps an img2img run takes at strength s (its *rule*), the defaults a request falls back to,
and how its latents become pictures (the ``approx`` factors, the tiny autoencoder). ``detect`` picks the
family from a checkpoint's ``model_index.json`` (plus its scheduler and UNet configs); ``peek`` reads those
small JSON files without loading any weights.

Step rules (diffusers 0.42):

- ``int``: ``min(int(N × s), N)`` steps run (SD, SD-Turbo, SDXL, SDXL-Turbo, the refiner);
- ``lcm``: all N run; strength moves the start of LCMScheduler's schedule instead (4 × 0.3 → t = 299 …);
- ``flow``: ``N − int(N − N × s)`` run (rounds up; SD3 and FLUX, flow matching).

Turbo checkpoints are SD/SDXL checkpoints whose scheduler spaces timesteps ``trailing`` (as stabilityai's
sd-turbo and sdxl-turbo repositories do); LCM checkpoints have a UNet with ``time_cond_proj_dim`` (the
guidance embedding) and diffusers' LatentConsistencyModel pipelines. FLUX.1-dev's transformer has a guidance
embedding (``guidance_embeds``), schnell's none.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sd_img2img import config
from sd_img2img.errors import ModelLoadError

# k-diffusion, DDIM/PLMS and DPM-Solver samplers: everything samplers.py offers for noise-prediction models
DIFFUSION_SAMPLERS = (
    "k_lms",
    "ddim",
    "plms",
    "k_euler",
    "k_euler_a",
    "k_heun",
    "k_dpm_2",
    "k_dpm_2_a",
    "dpmpp_2m",
    "dpmpp_2m_karras",
)
# Turbo: one model call a step (second-order samplers would double a 1–4 step run) and no PLMS warm-up
TURBO_SAMPLERS = ("k_euler_a", "k_euler", "k_lms", "ddim", "dpmpp_2m")

# Published latent → RGB factors (rows: latent channels; columns: R, G, B), applied to the scaled latents,
# output in [-1, 1]. SD1.x: keturn's fit (AUTOMATIC1111 sd_vae_approx.py). SDXL: ComfyUI latent_formats.SDXL.
SD_FACTORS = ((0.298, 0.207, 0.208), (0.187, 0.286, 0.173), (-0.158, 0.189, 0.264), (-0.184, -0.271, -0.473))
SDXL_FACTORS = (
    (0.3651, 0.4232, 0.4341),
    (-0.2533, -0.0042, 0.1068),
    (0.1076, 0.1111, -0.0362),
    (-0.3165, -0.2492, -0.2188),
)
SDXL_BIAS = (0.1084, -0.0175, -0.0011)
# 16-channel flow-matching latents: ComfyUI latent_formats.SD3 and .Flux (on (z − shift) × scale, as diffusers')
SD3_FACTORS = (
    (-0.0922, -0.0175, 0.0749),
    (0.0311, 0.0633, 0.0954),
    (0.1994, 0.0927, 0.0458),
    (0.0856, 0.0339, 0.0902),
    (0.0587, 0.0272, -0.0496),
    (-0.0006, 0.1104, 0.0309),
    (0.0978, 0.0306, 0.0427),
    (-0.0042, 0.1038, 0.1358),
    (-0.0194, 0.0020, 0.0669),
    (-0.0488, 0.0130, -0.0268),
    (0.0922, 0.0988, 0.0951),
    (-0.0278, 0.0524, -0.0542),
    (0.0332, 0.0456, 0.0895),
    (-0.0069, -0.0030, -0.0810),
    (-0.0596, -0.0465, -0.0293),
    (-0.1448, -0.1463, -0.1189),
)
SD3_BIAS = (0.2394, 0.2135, 0.1925)
FLUX_FACTORS = (
    (-0.0346, 0.0244, 0.0681),
    (0.0034, 0.0210, 0.0687),
    (0.0275, -0.0668, -0.0433),
    (-0.0174, 0.0160, 0.0617),
    (0.0859, 0.0721, 0.0329),
    (0.0004, 0.0383, 0.0115),
    (0.0405, 0.0861, 0.0915),
    (-0.0236, -0.0185, -0.0259),
    (-0.0245, 0.0250, 0.1180),
    (0.1008, 0.0755, -0.0421),
    (-0.0515, 0.0201, 0.0011),
    (0.0428, -0.0012, -0.0036),
    (0.0817, 0.0765, 0.0749),
    (-0.1264, -0.0522, -0.1103),
    (-0.0280, -0.0881, -0.0499),
    (-0.1262, -0.0982, -0.0778),
)
FLUX_BIAS = (-0.0329, -0.0718, -0.0851)
# flow-matching samplers that work with SD3's / FLUX's img2img pipelines in diffusers 0.42 (FLUX passes its own
# sigmas and shift, which FlowMatchHeun does not take; DPM-Solver/UniPC lack the scale_noise img2img needs)
SD3_SAMPLERS = ("flow_euler", "flow_euler_karras", "flow_euler_exponential", "flow_euler_beta", "flow_heun")
FLUX_SAMPLERS = ("flow_euler", "flow_euler_karras", "flow_euler_exponential", "flow_euler_beta")


@dataclass(frozen=True)
class Family:
    """What differs per model family. ``detect`` returns one, with this checkpoint's scheduler config attached."""

    name: str  # sd, sd-turbo, sdxl, sdxl-turbo, sdxl-refiner, lcm
    label: str  # for people: "SDXL", "LCM", …
    img2img: str  # diffusers pipeline class for img2img
    txt2img: str | None  # … for prompt2img; None: this checkpoint cannot start from pure noise
    weights: tuple[str, ...]  # component folders that must hold safetensors weights
    samplers: tuple[str, ...]  # sampler names (samplers.SAMPLERS) that fit; the first is not the default
    rule: str  # how many of N steps run at strength s: "int", "lcm" or "flow"
    steps: int  # defaults a request falls back to
    strength: float
    guidance: float
    sampler: str
    size: int  # prompt2img's default width and height
    min_size: int = 0  # below this side a run works but the model was not trained for it: a warning
    negative_prompt: bool = True  # LCM pipelines take none
    trained_without_guidance: bool = False  # Turbo: guidance above 1 runs but was not trained for
    approx_factors: tuple[tuple[float, ...], ...] = SD_FACTORS
    approx_bias: tuple[float, ...] | None = None
    taesd: str = config.DEFAULT_TAESD  # the family's tiny autoencoder for preview "taesd"
    latent_channels: int = 4
    size_multiple: int = 8  # width and height must be multiples of this (SD3/FLUX: 16, latents in 2×2 patches)
    denoiser: str = "unet"  # the pipeline component that denoises ("transformer" for SD3/FLUX)
    packed: bool = False  # FLUX: latents travel packed (B, HW/4, 64); pictures need them unpacked
    guidance_ignored: bool = False  # FLUX.1-schnell: no guidance at all
    takes_lcm_lora: bool = False  # an LCM-LoRA adds the lcm sampler (SD, SDXL; not Turbo, not LCM itself)
    safety_checker: bool = False  # its pipelines carry a safety checker (SD, SD-Turbo, LCM)
    cached_prompts: bool = False  # its prompt embeddings go through the prompt cache (SD's encode_prompt)
    guidance_embedded: bool = False  # FLUX: guidance is an embedding (or absent), never a second batch
    prompt_tokenizer: str | None = None  # the tokenizer whose limit cuts prompts (None: the first CLIP one)
    max_sequence_length: int | None = None  # … and its limit (T5: the pipeline's max_sequence_length)
    scheduler_config: dict[str, Any] | None = field(default=None, compare=False, hash=False, repr=False)

    @property
    def defaults(self) -> dict[str, Any]:
        """What a request leaves unset becomes: steps, strength, guidance_scale, sampler, size."""
        return dict(
            steps=self.steps, strength=self.strength, guidance_scale=self.guidance, sampler=self.sampler, size=self.size
        )

    @property
    def can_txt2img(self) -> bool:
        return self.txt2img is not None

    @property
    def flow_matching(self) -> bool:
        """Flow matching (SD3, FLUX): x = σ·noise + (1 − σ)·x0, its img2img pipeline takes the size too."""
        return self.rule == "flow"


_SD = Family(
    name="sd",
    label="SD",
    img2img="StableDiffusionImg2ImgPipeline",
    txt2img="StableDiffusionPipeline",
    weights=("unet", "vae", "text_encoder"),
    samplers=DIFFUSION_SAMPLERS,
    rule="int",
    steps=config.DEFAULT_STEPS,
    strength=config.DEFAULT_STRENGTH,
    guidance=config.DEFAULT_GUIDANCE,
    sampler=config.DEFAULT_SAMPLER,
    size=config.DEFAULT_TXT2IMG_SIZE,
    takes_lcm_lora=True,
    safety_checker=True,
    cached_prompts=True,
)
_SDXL = Family(
    name="sdxl",
    label="SDXL",
    img2img="StableDiffusionXLImg2ImgPipeline",
    txt2img="StableDiffusionXLPipeline",
    weights=("unet", "vae", "text_encoder", "text_encoder_2"),
    samplers=DIFFUSION_SAMPLERS,
    rule="int",
    steps=config.DEFAULT_STEPS,
    strength=config.DEFAULT_STRENGTH,
    guidance=5.0,
    sampler="k_euler",
    size=1024,
    min_size=512,
    approx_factors=SDXL_FACTORS,
    approx_bias=SDXL_BIAS,
    taesd="madebyollin/taesdxl",
    takes_lcm_lora=True,
)

FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        _SD,
        dataclasses.replace(
            _SD,
            name="sd-turbo",
            label="SD-Turbo",
            samplers=TURBO_SAMPLERS,
            steps=2,
            strength=0.5,
            guidance=0.0,
            sampler="k_euler",
            trained_without_guidance=True,
            takes_lcm_lora=False,
        ),
        _SDXL,
        dataclasses.replace(
            _SDXL,
            name="sdxl-turbo",
            label="SDXL-Turbo",
            samplers=TURBO_SAMPLERS,
            steps=2,
            strength=0.5,
            guidance=0.0,
            sampler="k_euler_a",
            size=512,
            trained_without_guidance=True,
            takes_lcm_lora=False,
        ),
        dataclasses.replace(
            _SDXL,
            name="sdxl-refiner",
            label="SDXL refiner",
            txt2img=None,
            weights=("unet", "vae", "text_encoder_2"),
            strength=0.3,
            takes_lcm_lora=False,
        ),
        dataclasses.replace(
            _SD,
            name="lcm",
            label="LCM",
            img2img="LatentConsistencyModelImg2ImgPipeline",
            txt2img="LatentConsistencyModelPipeline",
            samplers=("lcm",),
            rule="lcm",
            steps=4,
            strength=0.5,
            guidance=8.5,
            sampler="lcm",
            negative_prompt=False,
            takes_lcm_lora=False,
            cached_prompts=False,
        ),
        Family(
            name="sd3",
            label="SD3",
            img2img="StableDiffusion3Img2ImgPipeline",
            txt2img="StableDiffusion3Pipeline",
            weights=("transformer", "vae", "text_encoder", "text_encoder_2", "text_encoder_3"),
            samplers=SD3_SAMPLERS,
            rule="flow",
            steps=28,
            strength=0.6,
            guidance=7.0,
            sampler="flow_euler",
            size=1024,
            approx_factors=SD3_FACTORS,
            approx_bias=SD3_BIAS,
            taesd="madebyollin/taesd3",
            latent_channels=16,
            size_multiple=16,
            denoiser="transformer",
            prompt_tokenizer="tokenizer_3",
            max_sequence_length=256,
        ),
        Family(
            name="flux",
            label="FLUX.1-dev",
            img2img="FluxImg2ImgPipeline",
            txt2img="FluxPipeline",
            weights=("transformer", "vae", "text_encoder", "text_encoder_2"),
            samplers=FLUX_SAMPLERS,
            rule="flow",
            steps=28,
            strength=0.6,
            guidance=3.5,
            sampler="flow_euler",
            size=1024,
            negative_prompt=False,
            approx_factors=FLUX_FACTORS,
            approx_bias=FLUX_BIAS,
            taesd="madebyollin/taef1",
            latent_channels=16,
            size_multiple=16,
            denoiser="transformer",
            packed=True,
            guidance_embedded=True,
            prompt_tokenizer="tokenizer_2",
            max_sequence_length=512,
        ),
    )
}
FAMILIES["flux-schnell"] = dataclasses.replace(
    FAMILIES["flux"], name="flux-schnell", label="FLUX.1-schnell", steps=4, guidance=0.0, guidance_ignored=True
)

# model_index.json "_class_name" → family name (before the Turbo/LCM/refiner refinements below)
PIPELINE_FAMILIES = {
    "StableDiffusionPipeline": "sd",
    "StableDiffusionImg2ImgPipeline": "sd",
    "StableDiffusionXLPipeline": "sdxl",
    "StableDiffusionXLImg2ImgPipeline": "sdxl",
    "LatentConsistencyModelPipeline": "lcm",
    "LatentConsistencyModelImg2ImgPipeline": "lcm",
    "StableDiffusion3Pipeline": "sd3",
    "StableDiffusion3Img2ImgPipeline": "sd3",
    "FluxPipeline": "flux",
    "FluxImg2ImgPipeline": "flux",
}

# the scheduler a Turbo checkpoint ships with → its sampler name (so a Turbo runs its own scheduler by default)
_OWN_SAMPLER = {"EulerDiscreteScheduler": "k_euler", "EulerAncestralDiscreteScheduler": "k_euler_a"}


def supported_pipelines() -> tuple[str, ...]:
    return tuple(PIPELINE_FAMILIES)


def detect(
    index: dict[str, Any],
    scheduler: dict[str, Any] | None = None,
    unet: dict[str, Any] | None = None,
    transformer: dict[str, Any] | None = None,
    where: str = "the checkpoint",
) -> Family:
    """The family of a checkpoint from its ``model_index.json`` and its scheduler, UNet and transformer configs.

    Raises ``ModelLoadError`` listing the supported pipelines for any other class.
    """
    cls = index.get("_class_name")
    name = PIPELINE_FAMILIES.get(cls)
    if name is None:
        raise ModelLoadError(
            f"{where} holds a {cls}; this program runs {', '.join(f.label for f in FAMILIES.values())} checkpoints "
            f"({', '.join(supported_pipelines())})"
        )
    scheduler = scheduler or {}
    trailing = scheduler.get("timestep_spacing") == "trailing"
    if name == "sd" and (unet or {}).get("time_cond_proj_dim") is not None:
        name = "lcm"  # an LCM-distilled SD checkpoint saved as a StableDiffusionPipeline
    elif (
        name == "sdxl"
        and cls == "StableDiffusionXLImg2ImgPipeline"
        and (index.get("requires_aesthetics_score") or _missing(index.get("text_encoder")))
    ):
        name = "sdxl-refiner"
    elif name in ("sd", "sdxl") and trailing:
        name += "-turbo"
    elif name == "flux" and transformer is not None and not transformer.get("guidance_embeds", True):
        name = "flux-schnell"
    family = FAMILIES[name]
    changes: dict[str, Any] = {"scheduler_config": dict(scheduler) or None}
    own = _OWN_SAMPLER.get(scheduler.get("_class_name", ""))
    if family.trained_without_guidance and own in family.samplers:
        changes["sampler"] = own
    return dataclasses.replace(family, **changes)


def _missing(entry) -> bool:
    return entry is None or (isinstance(entry, (list, tuple)) and (not entry or entry[0] is None))


def read_configs(model: str | Path) -> tuple[dict, dict | None, dict | None, dict | None] | None:
    """``model_index.json``, the scheduler, UNet and transformer configs of a local folder or a hub id.

    Reads only those small files: a hub id is looked up in the local cache (or fetched when online). Returns
    None when the index cannot be had.
    """
    names = ("model_index.json", "scheduler/scheduler_config.json", "unet/config.json", "transformer/config.json")
    path = Path(str(model)).expanduser()
    out: list[dict | None] = []
    for name in names:
        text = None
        if path.is_dir():
            f = path / name
            text = f.read_text() if f.is_file() else None
        elif "/" in str(model) and not str(model).startswith((".", "/", "~")):
            try:
                from huggingface_hub import hf_hub_download

                text = Path(hf_hub_download(str(model), name)).read_text()
            except Exception:  # offline and not cached, no such file, …: the loader will say why
                text = None
        try:
            out.append(json.loads(text) if text is not None else None)
        except ValueError:
            out.append(None)
        if out[0] is None:
            return None
    return out[0], out[1], out[2], out[3]  # type: ignore[return-value]


def peek(model: str | Path) -> Family | None:
    """The family of ``model`` read from its JSON files (no weights loaded); None when it cannot be told."""
    configs = read_configs(model)
    if configs is None:
        return None
    try:
        return detect(*configs, where=f"'{model}'")
    except ModelLoadError:
        return None


def default_family() -> Family:
    """The family requests are checked against when no model is known yet (SD 1.x/2.x: today's defaults)."""
    return FAMILIES["sd"]
