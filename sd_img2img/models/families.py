"""Model families: what differs between SD 1.x/2.x, SD-Turbo, SDXL (base, refiner, Turbo), LCM, SD3/3.5, FLUX.1 (dev,
schnell), Z-Image, Qwen-Image, Chroma and the edit models (FLUX.1 Kontext, FLUX.2 Klein, Qwen-Image-Edit), as data.

Each ``Family`` names its diffusers pipelines, the components its weights live in, the samplers that fit it,
how many of N steps an img2img run takes at strength s (its *rule*), the defaults a request falls back to,
and how its latents become pictures (the ``approx`` factors, the tiny autoencoder). ``detect`` picks the
family from a checkpoint's ``model_index.json`` (plus its scheduler and UNet configs); ``peek`` reads those
small JSON files without loading any weights.

Step rules (diffusers 0.42):

- ``int``: ``min(int(N × s), N)`` steps run (SD, SD-Turbo, SDXL, SDXL-Turbo, the refiner);
- ``lcm``: all N run; strength moves the start of LCMScheduler's schedule instead (4 × 0.3 → t = 299 …);
- ``flow``: ``N − int(N − N × s)`` run (rounds up; SD3, FLUX, Z-Image, Qwen-Image, Chroma: their pipelines write it
  ``init = min(N × s, N)``, ``t_start = int(max(N − init, 0))``, the same count);
- ``reference``: edit models (Kontext, Klein, Qwen-Image-Edit): the image is a reference the model looks at, not a
  starting point; no strength, all N steps run from pure noise.

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
# Qwen-Image's VAE is Wan 2.1's: ComfyUI latent_formats.Wan21, on the normalized latents ((z − mean) / std), as
# diffusers' Qwen pipelines keep them
WAN21_FACTORS = (
    (-0.1299, -0.1692, 0.2932),
    (0.0671, 0.0406, 0.0442),
    (0.3568, 0.2548, 0.1747),
    (0.0372, 0.2344, 0.1420),
    (0.0313, 0.0189, -0.0328),
    (0.0296, -0.0956, -0.0665),
    (-0.3477, -0.4059, -0.2925),
    (0.0166, 0.1902, 0.1975),
    (-0.0412, 0.0267, -0.1364),
    (-0.1293, 0.0740, 0.1636),
    (0.0680, 0.3019, 0.1128),
    (0.0032, 0.0581, 0.0639),
    (-0.1251, 0.0927, 0.1699),
    (0.0060, -0.0633, 0.0005),
    (0.3477, 0.2275, 0.2950),
    (0.1984, 0.0913, 0.1861),
)
WAN21_BIAS = (-0.1835, -0.0868, -0.3360)
# FLUX.2's 32 latent channels: ComfyUI latent_formats.Flux2, on the batch-normalized latents unpatchified to 32 channels
FLUX2_FACTORS = (
    (0.0058, 0.0113, 0.0073),
    (0.0495, 0.0443, 0.0836),
    (-0.0099, 0.0096, 0.0644),
    (0.2144, 0.3009, 0.3652),
    (0.0166, -0.0039, -0.0054),
    (0.0157, 0.0103, -0.0160),
    (-0.0398, 0.0902, -0.0235),
    (-0.0052, 0.0095, 0.0109),
    (-0.3527, -0.2712, -0.1666),
    (-0.0301, -0.0356, -0.0180),
    (-0.0107, 0.0078, 0.0013),
    (0.0746, 0.0090, -0.0941),
    (0.0156, 0.0169, 0.0070),
    (-0.0034, -0.0040, -0.0114),
    (0.0032, 0.0181, 0.0080),
    (-0.0939, -0.0008, 0.0186),
    (0.0018, 0.0043, 0.0104),
    (0.0284, 0.0056, -0.0127),
    (-0.0024, -0.0022, -0.0030),
    (0.1207, -0.0026, 0.0065),
    (0.0128, 0.0101, 0.0142),
    (0.0137, -0.0072, -0.0007),
    (0.0095, 0.0092, -0.0059),
    (0.0000, -0.0077, -0.0049),
    (-0.0465, -0.0204, -0.0312),
    (0.0095, 0.0012, -0.0066),
    (0.0290, -0.0034, 0.0025),
    (0.0220, 0.0169, -0.0048),
    (-0.0332, -0.0457, -0.0468),
    (-0.0085, 0.0389, 0.0609),
    (-0.0076, 0.0003, -0.0043),
    (-0.0111, -0.0460, -0.0614),
)
# flow-matching samplers that work with SD3's / FLUX's img2img pipelines in diffusers 0.42 (FLUX passes its own
# sigmas and shift, which FlowMatchHeun does not take; DPM-Solver/UniPC lack the scale_noise img2img needs)
SD3_SAMPLERS = ("flow_euler", "flow_euler_karras", "flow_euler_exponential", "flow_euler_beta", "flow_heun")
FLUX_SAMPLERS = ("flow_euler", "flow_euler_karras", "flow_euler_exponential", "flow_euler_beta")
# the pipelines that pass their own sigmas (and shift mu) to the scheduler: Z-Image, Qwen, Chroma, Kontext, Klein
SIGMA_SAMPLERS = FLUX_SAMPLERS


@dataclass(frozen=True)
class Family:
    """What differs per model family. ``detect`` returns one, with this checkpoint's scheduler config attached."""

    name: str  # sd, sd-turbo, sdxl, sdxl-turbo, sdxl-refiner, lcm, sd3, flux, zimage, qwen-image, …
    label: str  # for people: "SDXL", "LCM", …
    img2img: str  # diffusers pipeline class for img2img (an edit model's: the one that takes the reference image)
    txt2img: str | None  # … for prompt2img; None: this checkpoint cannot start from a prompt alone
    weights: tuple[str, ...]  # component folders that must hold safetensors weights
    samplers: tuple[str, ...]  # sampler names (samplers.SAMPLERS) that fit; the first is not the default
    rule: str  # how many of N steps run at strength s: "int", "lcm", "flow" or "reference"
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
    taesd: str | None = config.DEFAULT_TAESD  # the family's tiny autoencoder for preview "taesd" (None: none known)
    latent_channels: int = 4
    size_multiple: int = 8  # width and height must be multiples of this (SD3/FLUX: 16, latents in 2×2 patches)
    denoiser: str = "unet"  # the pipeline component that denoises ("transformer" for SD3/FLUX)
    packing: str | None = None  # latents travel packed and pictures need them unpacked: "flux" ((B, HW/4, 64):
    # the pipeline's _unpack_latents) or "flux2" ((B, HW/4, 128) patchified latents: _unpack_latents_with_ids)
    latent_frames: bool = False  # a video VAE (Qwen-Image's): latents are (B, C, 1, h, w), one frame a picture
    flow_matching: bool = False  # x = σ·noise + (1 − σ)·x0; its img2img pipeline takes the size too
    sigma_schedule: str = "scheduler"  # how the pipeline sets the schedule: "scheduler" (set_timesteps(N)),
    # "linspace" (sigmas linspace(1, 1/N, N), shift mu from the image's size), "empirical" (FLUX.2: mu from size and N)
    image_is_reference: bool = False  # edit models: the image is a reference, every step runs from pure noise
    guidance_kwarg: str = "guidance_scale"  # the pipeline argument the guidance goes to (Qwen: "true_cfg_scale")
    cfg_above: float = 1.0  # classifier-free guidance (a second model call a step) runs above this (Z-Image: 0)
    cfg_needs_negative: bool = False  # Qwen's true CFG runs only when a negative prompt is given
    max_area: bool = False  # Kontext scales its output to max_area pixels: it is given width × height
    vision_processor: bool = False  # Qwen-Image-Edit: a Qwen2-VL processor/ (built image-only without torchvision)
    guidance_ignored: bool = False  # FLUX.1-schnell, distilled FLUX.2 Klein: no guidance at all
    takes_lcm_lora: bool = False  # an LCM-LoRA adds the lcm sampler (SD, SDXL; not Turbo, not LCM itself)
    safety_checker: bool = False  # its pipelines carry a safety checker (SD, SD-Turbo, LCM)
    cached_prompts: bool = False  # its prompt embeddings go through the prompt cache (SD's encode_prompt)
    guidance_embedded: bool = False  # FLUX: guidance is an embedding (or absent), never a second batch
    prompt_tokenizer: str | None = None  # the tokenizer whose limit cuts prompts (None: the first CLIP one)
    max_sequence_length: int | None = None  # … and its limit (T5: the pipeline's max_sequence_length)
    inpaint: str | None = None  # diffusers' inpaint pipeline of the family (None: it takes no mask)
    inpaint_crop: bool = True  # … which takes padding_mask_crop (inpaint area "only masked")
    inpaint_latents: bool = True  # … which encodes the image through _encode_vae_image (masked content "latent …")
    inpaint_pixels: int | None = None  # … which works at about this many pixels whatever size is asked (Qwen-Edit)
    mask_required: bool = False  # an inpainting checkpoint (a 9-channel UNet, FLUX.1 Fill): every run takes a mask
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

    def guided(self, guidance_scale: float, embedded: bool = False) -> bool:
        """Whether a run at ``guidance_scale`` runs classifier-free guidance (a second model call a step), by the
        pipelines' own rule (``do_classifier_free_guidance``): above ``cfg_above`` (1; Z-Image 0), never where guidance
        is an embedding (FLUX; ``embedded``: an LCM UNet's ``time_cond_proj_dim``) or absent (distilled FLUX.2 Klein)."""
        if self.guidance_embedded or self.guidance_ignored or embedded:
            return False
        return guidance_scale > self.cfg_above

    @property
    def takes_mask(self) -> bool:
        """Whether diffusers has an inpaint pipeline for the family (a model without one refuses a mask)."""
        return self.inpaint is not None

    @property
    def takes_strength(self) -> bool:
        """Whether strength means anything: not for an edit model, whose image is a reference."""
        return not self.image_is_reference


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
    inpaint="StableDiffusionInpaintPipeline",
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
    inpaint="StableDiffusionXLInpaintPipeline",
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
            guidance_embedded=True,  # the UNet's time_cond_proj_dim: one batch whatever the scale
            takes_lcm_lora=False,
            cached_prompts=False,
            inpaint=None,  # diffusers has no LCM inpaint pipeline
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
            flow_matching=True,
            prompt_tokenizer="tokenizer_3",
            max_sequence_length=256,
            inpaint="StableDiffusion3InpaintPipeline",
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
            packing="flux",
            flow_matching=True,
            sigma_schedule="linspace",
            guidance_embedded=True,
            prompt_tokenizer="tokenizer_2",
            max_sequence_length=512,
            inpaint="FluxInpaintPipeline",
        ),
    )
}
FAMILIES["flux-schnell"] = dataclasses.replace(
    FAMILIES["flux"], name="flux-schnell", label="FLUX.1-schnell", steps=4, guidance=0.0, guidance_ignored=True
)
# Inpainting checkpoints: the denoiser also reads the mask and the masked image (a 9-channel UNet, FLUX.1 Fill's
# 384-channel transformer), so every run is an inpaint run (without a mask: all of the image redrawn) and none starts
# from a prompt alone
FAMILIES["sd-inpaint"] = dataclasses.replace(
    _SD,
    name="sd-inpaint",
    label="SD inpainting",
    img2img="StableDiffusionInpaintPipeline",
    txt2img=None,
    takes_lcm_lora=False,
    mask_required=True,
)
FAMILIES["flux-fill"] = dataclasses.replace(
    FAMILIES["flux"],
    name="flux-fill",
    label="FLUX.1 Fill",
    img2img="FluxFillPipeline",
    txt2img=None,
    steps=50,
    strength=1.0,  # FluxFillPipeline's own defaults: all steps, guidance 30
    guidance=30.0,
    inpaint="FluxFillPipeline",
    inpaint_crop=False,  # no padding_mask_crop
    mask_required=True,
)

# The families after FLUX: transformers on 16- (FLUX.2: 32-) channel latents in 2×2 patches, each pipeline passing its
# own sigmas linspace(1, 1/N, N) and shift to FlowMatchEulerDiscreteScheduler
_FLOW_MODEL = dict(
    samplers=SIGMA_SAMPLERS,
    sampler="flow_euler",
    size=1024,
    latent_channels=16,
    size_multiple=16,
    denoiser="transformer",
    flow_matching=True,
    sigma_schedule="linspace",
    prompt_tokenizer="tokenizer",
)
_FLUX_VAE = dict(approx_factors=FLUX_FACTORS, approx_bias=FLUX_BIAS, taesd="madebyollin/taef1")  # FLUX.1's VAE
_QWEN_VAE = dict(approx_factors=WAN21_FACTORS, approx_bias=WAN21_BIAS, taesd=None, packing="flux", latent_frames=True)
_QWEN_CFG = dict(guidance=4.0, guidance_kwarg="true_cfg_scale", cfg_needs_negative=True, max_sequence_length=1024)
_EDIT = dict(rule="reference", strength=1.0, image_is_reference=True)
_KLEIN = Family(
    name="flux2-klein",
    label="FLUX.2 Klein",
    img2img="Flux2KleinPipeline",
    txt2img="Flux2KleinPipeline",
    weights=("transformer", "vae", "text_encoder"),
    steps=4,
    guidance=1.0,
    negative_prompt=False,
    guidance_ignored=True,  # step-distilled (is_distilled): diffusers runs no guidance
    approx_factors=FLUX2_FACTORS,
    approx_bias=FLUX_BIAS,
    taesd=None,
    packing="flux2",
    max_sequence_length=512,
    inpaint="Flux2KleinInpaintPipeline",
    **{**_FLOW_MODEL, "latent_channels": 32, "sigma_schedule": "empirical"},
    **_EDIT,
)
FAMILIES.update(
    (f.name, f)
    for f in (
        Family(
            name="zimage",
            label="Z-Image",
            img2img="ZImageImg2ImgPipeline",
            txt2img="ZImagePipeline",
            weights=("transformer", "vae", "text_encoder"),
            rule="flow",
            steps=8,  # Turbo's (Tongyi-MAI/Z-Image-Turbo): 8 steps, no guidance
            strength=0.6,
            guidance=0.0,
            cfg_above=0.0,  # diffusers' Z-Image guides whenever guidance > 0
            max_sequence_length=512,
            inpaint="ZImageInpaintPipeline",
            inpaint_crop=False,  # no padding_mask_crop
            inpaint_latents=False,  # it encodes the image inside prepare_latents
            **_FLOW_MODEL,
            **_FLUX_VAE,
        ),
        Family(
            name="qwen-image",
            label="Qwen-Image",
            img2img="QwenImageImg2ImgPipeline",
            txt2img="QwenImagePipeline",
            weights=("transformer", "vae", "text_encoder"),
            rule="flow",
            steps=50,
            strength=0.6,
            inpaint="QwenImageInpaintPipeline",
            **_QWEN_CFG,
            **_FLOW_MODEL,
            **_QWEN_VAE,
        ),
        Family(
            name="chroma",
            label="Chroma",
            img2img="ChromaImg2ImgPipeline",
            txt2img="ChromaPipeline",
            weights=("transformer", "vae", "text_encoder"),
            rule="flow",
            steps=35,  # ChromaImg2ImgPipeline's own defaults
            strength=0.9,
            guidance=5.0,
            packing="flux",
            max_sequence_length=512,
            inpaint="ChromaInpaintPipeline",
            **_FLOW_MODEL,
            **_FLUX_VAE,
        ),
        Family(
            name="flux-kontext",
            label="FLUX.1 Kontext",
            img2img="FluxKontextPipeline",
            txt2img="FluxKontextPipeline",  # without an image it makes one from the prompt alone
            weights=("transformer", "vae", "text_encoder", "text_encoder_2"),
            steps=28,
            guidance=3.5,
            negative_prompt=False,
            packing="flux",
            max_area=True,
            guidance_embedded=True,
            max_sequence_length=512,
            inpaint="FluxKontextInpaintPipeline",
            **{**_FLOW_MODEL, "prompt_tokenizer": "tokenizer_2"},
            **_FLUX_VAE,
            **_EDIT,
        ),
        _KLEIN,
        dataclasses.replace(
            _KLEIN, name="flux2-klein-base", label="FLUX.2 Klein Base", steps=50, guidance=4.0, guidance_ignored=False
        ),
        Family(
            name="qwen-image-edit",
            label="Qwen-Image-Edit",
            img2img="QwenImageEditPipeline",
            txt2img=None,  # its pipeline needs the image
            weights=("transformer", "vae", "text_encoder"),
            steps=50,
            vision_processor=True,
            inpaint="QwenImageEditInpaintPipeline",
            inpaint_pixels=1024 * 1024,  # its inpaint pipeline sizes every run to about a megapixel
            **_QWEN_CFG,
            **_FLOW_MODEL,
            **_QWEN_VAE,
            **_EDIT,
        ),
    )
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
    "ZImagePipeline": "zimage",
    "ZImageImg2ImgPipeline": "zimage",
    "QwenImagePipeline": "qwen-image",
    "QwenImageImg2ImgPipeline": "qwen-image",
    "ChromaPipeline": "chroma",
    "ChromaImg2ImgPipeline": "chroma",
    "FluxKontextPipeline": "flux-kontext",
    "Flux2KleinPipeline": "flux2-klein",
    "QwenImageEditPipeline": "qwen-image-edit",
    # checkpoints saved as their inpaint pipelines (a 9-channel UNet is told by its in_channels, in detect)
    "StableDiffusionInpaintPipeline": "sd",
    "StableDiffusionXLInpaintPipeline": "sdxl",
    "FluxInpaintPipeline": "flux",
    "FluxFillPipeline": "flux-fill",
}

INPAINT_UNET_CHANNELS = 9  # an SD inpainting checkpoint's UNet (stable-diffusion-inpainting): its in_channels

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
    if name == "sd" and (unet or {}).get("in_channels") == INPAINT_UNET_CHANNELS:
        name = "sd-inpaint"  # latents, mask and masked image latents: 4 + 1 + 4 channels
    elif name == "sd" and (unet or {}).get("time_cond_proj_dim") is not None:
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
    elif name == "flux2-klein" and not index.get("is_distilled", False):
        name = "flux2-klein-base"  # Flux2KleinPipeline's is_distilled defaults to False
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
