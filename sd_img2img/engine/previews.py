"""Turning latents into pictures: ``approx``, ``taesd`` or ``full``, and the steps strip.

- ``approx``: a fixed linear map from the latent channels to RGB (plus a bias where one is published) at
  latent resolution (1/8 of the image side), nearly free. Each family has its own (``families.Family``):
  SD1.x/2.x keturn's least-squares fit for SD1.4 latents, as published in AUTOMATIC1111's
  ``modules/sd_vae_approx.py`` (``cheap_approximation``); SDXL ComfyUI's ``latent_formats.SDXL`` set.
- ``taesd``: diffusers' ``AutoencoderTiny`` (the family's: ``madebyollin/taesd``, ``taesdxl``), about 1/18
  of the full decoder's compute, at full resolution.
- ``full``: the checkpoint's own VAE with its own scaling (and shift) factor; an fp16 VAE that asks for
  ``force_upcast`` (SDXL's) decodes in float32 as diffusers does. The last step decoded with it is the
  output image, pixel for pixel.

Every picture, a [-1, 1] tensor, becomes a PIL image through diffusers' ``pt_to_pil``, which scales in the tensor's
own dtype and rounds as the pipeline's ``VaeImageProcessor.postprocess`` does (in bfloat16 and float16 too).
"""

from __future__ import annotations

import torch
from PIL import Image

from sd_img2img.config import STRIP_MAX_FRAME_HEIGHT
from sd_img2img.imports import diffusers_class
from sd_img2img.models.families import SD_FACTORS
from sd_img2img.plan.checks import check_preview

# rows: latent channels 0..3; columns: R, G, B; applied to the scaled latents, output in [-1, 1]
APPROX_RGB_FACTORS = SD_FACTORS


def to_pil(images: torch.Tensor) -> Image.Image:
    """The first picture of a [-1, 1] image tensor (N, 3, H, W) as PIL: diffusers' ``pt_to_pil``, scaled in the
    tensor's dtype and rounded as the pipeline's ``VaeImageProcessor`` rounds its output."""
    from diffusers.utils import pt_to_pil

    return pt_to_pil(images[:1])[0]


def unscale_latents(latents: torch.Tensor, vae) -> torch.Tensor:
    """The pipeline's scaled latents → what ``vae.decode`` takes, from the VAE's own config: ``z / scaling +
    shift``, or ``latents_mean``/``latents_std`` where the config has them (SDXL-style; Qwen-Image's, with no scaling
    factor), or FLUX.2's batch-norm statistics on the 2×2-patchified latents (as diffusers' pipelines do)."""
    cfg = vae.config
    bn = getattr(vae, "bn", None)
    if bn is not None:  # AutoencoderKLFlux2: (1, 32, h, w) normalized → patchified, de-normalized, unpatchified
        Flux2KleinPipeline = diffusers_class("Flux2KleinPipeline")  # its static (un)patchify
        patches = Flux2KleinPipeline._patchify_latents(latents)
        mean = bn.running_mean.view(1, -1, 1, 1).to(latents.device, latents.dtype)
        std = torch.sqrt(bn.running_var.view(1, -1, 1, 1) + cfg.batch_norm_eps).to(latents.device, latents.dtype)
        return Flux2KleinPipeline._unpatchify_latents(patches * std + mean)
    mean, std = getattr(cfg, "latents_mean", None), getattr(cfg, "latents_std", None)
    if mean is not None and std is not None:
        shape = (1, len(mean), 1, 1)
        mean = torch.tensor(mean, device=latents.device, dtype=latents.dtype).view(shape)
        std = torch.tensor(std, device=latents.device, dtype=latents.dtype).view(shape)
        if getattr(cfg, "scaling_factor", None) is None:  # Qwen-Image's pipelines divide by 1 / std
            return latents / (1.0 / std) + mean
        return latents * std / cfg.scaling_factor + mean
    shift = getattr(cfg, "shift_factor", None) or 0.0
    return latents / cfg.scaling_factor + shift


class PreviewDecoder:
    """Decodes a family's scaled latents (1, C, h, w) into a picture with one of the three methods.

    Args:
        method: ``approx``, ``taesd`` or ``full``.
        vae: the checkpoint's ``AutoencoderKL`` (used by ``full``).
        taesd: a loaded ``AutoencoderTiny`` (used by ``taesd``).
        device: where ``taesd``/``full`` decode (the pipeline's execution device; latents kept on the
            cpu are moved there).
        lock: held while decoding with ``taesd``/``full`` (the device's lock: a decode after the run must
            not cross another run's model offloading).
        factors, bias: the family's ``approx`` latent → RGB factors (C × 3) and bias (3); SD1.x's by default.
        frames: the VAE is a video VAE (Qwen-Image's): it decodes (1, C, 1, h, w), one frame.
    """

    def __init__(
        self,
        method: str,
        vae=None,
        taesd=None,
        device=None,
        lock=None,
        factors=APPROX_RGB_FACTORS,
        bias=None,
        frames: bool = False,
    ):
        self.method = check_preview(method)
        self.vae = vae
        self.taesd = taesd
        self.device = device
        self.lock = lock
        self.factors = factors
        self.bias = bias
        self.frames = frames
        self._factors: torch.Tensor | None = None
        self._bias: torch.Tensor | None = None

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> Image.Image:
        if self.method == "approx":
            if self._factors is None or self._factors.device != latents.device:
                self._factors = torch.tensor(self.factors, device=latents.device, dtype=torch.float32)
                self._bias = torch.tensor(
                    self.bias or (0.0, 0.0, 0.0), device=latents.device, dtype=torch.float32
                ).view(1, 3, 1, 1)
            rgb = torch.einsum("bchw,cr->brhw", latents.float(), self._factors)
            return to_pil(rgb + self._bias if self.bias else rgb)
        model = self.taesd if self.method == "taesd" else self.vae
        if latents.device.type == "cpu" and self.device is not None and torch.device(self.device).type != "cpu":
            latents = latents.to(self.device)
        upcast = model.dtype == torch.float16 and bool(getattr(model.config, "force_upcast", False))
        if upcast:  # SDXL's VAE overflows in float16: decode in float32, as diffusers' pipelines do
            model.to(dtype=torch.float32)
        try:
            z = unscale_latents(latents.to(model.dtype), model)
            if self.frames and model is self.vae:
                image = model.decode(z.unsqueeze(2), return_dict=False)[0][:, :, 0]
            else:
                image = model.decode(z, return_dict=False)[0]
        finally:
            if upcast:
                model.to(dtype=torch.float16)
        return to_pil(image)

    def decode_later(self, latents: torch.Tensor) -> Image.Image:
        """``decode`` for a step asked for after its run: waits for the device's lock when it needs a model."""
        if self.method == "approx" or self.lock is None:
            return self.decode(latents)
        with self.lock:
            return self.decode(latents)


def make_strip(
    images: list[Image.Image],
    max_frame_height: int = STRIP_MAX_FRAME_HEIGHT,
    gap: int = 2,
    per_row: int | None = None,
    background: tuple[int, ...] | None = (255, 255, 255),
) -> Image.Image:
    """All step images side by side in one picture (step 0 on the left), like InvokeAI's ``*.steps.png``.

    Args:
        images: the step images, step 0 first.
        max_frame_height: larger frames are scaled down to this height.
        gap: pixels between frames (and between rows), in the background colour.
        per_row: wrap after this many frames, the picture always that many frames wide (a contact sheet for
            a narrow column); ``None``: one row.
        background: colour of the gaps and empty cells; ``None`` makes them transparent (an RGBA picture).
    """
    if not images:
        raise ValueError("no step images to put in a strip")
    h = min(max_frame_height, max(im.height for im in images))
    frames = [
        im if im.height == h else im.resize((max(1, round(im.width * h / im.height)), h), Image.Resampling.LANCZOS)
        for im in images
    ]
    row_len = len(frames) if per_row is None else max(1, per_row)
    rows = [frames[i : i + row_len] for i in range(0, len(frames), row_len)]
    width = max(sum(f.width for f in row) + gap * (len(row) - 1) for row in rows)
    if per_row is not None:  # always row_len frames wide, so sheets of different lengths show frames at one scale
        width = max(width, row_len * frames[0].width + gap * (row_len - 1))
    size = (width, h * len(rows) + gap * (len(rows) - 1))
    strip = Image.new("RGBA", size, (0, 0, 0, 0)) if background is None else Image.new("RGB", size, background)
    for r, row in enumerate(rows):
        x = 0
        for f in row:
            strip.paste(f, (x, r * (h + gap)))
            x += f.width + gap
    return strip
