"""Inpainting on the engine's side: the family's diffusers inpaint pipeline made once from the loaded components
(``inpaint_pipeline``), the call's mask arguments (``mask_kwargs``), AUTOMATIC1111's latent masked content put where
the pipeline encodes the image (``replace_latent_content``), every step drawn with the mask (``MaskedPreview``: the
masked region as the run has it, the rest as kept, the mask's outline on top) and the output laid over the image
through the blurred mask (``overlay``).

diffusers' own loop does the inpainting: a regular checkpoint's pipeline blends the kept region back each step (the
image's latents noised to the next timestep, mixed by the latent-size mask), an inpainting checkpoint's denoiser reads
the mask and the masked image itself; ``padding_mask_crop`` is "only masked".
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageChops, ImageFilter

from sd_img2img.config import MASK_OUTLINE
from sd_img2img.engine.previews import PreviewDecoder
from sd_img2img.imports import diffusers_class
from sd_img2img.models.loading import LoadedModel
from sd_img2img.plan.mask import THRESHOLD, InpaintMask
from sd_img2img.plan.prepare import PreparedRequest

MIN_PAINTED_SIDE = 128  # a step drawn with its mask is at least this big (its outline one pixel of it)


def inpaint_pipeline(lm: LoadedModel) -> Any:
    """The family's inpaint pipeline on the loaded components (``from_pipe``: no weights loaded twice), made on first
    use; an inpainting checkpoint's own pipeline is one already. Called under the device's lock."""
    if lm.family.mask_required:
        return lm.img2img
    if lm.inpaint is None:
        extra = {"vae": lm.img2img.vae} if lm.vae_kind == "tiny" else {}  # from_pipe leaves out an AutoencoderTiny
        pipe = diffusers_class(lm.family.inpaint).from_pipe(lm.img2img, dtype=lm.dtype, **extra)
        pipe.set_progress_bar_config(disable=True)
        lm.inpaint = pipe
    return lm.inpaint


def mask_kwargs(lm: LoadedModel, prepared: PreparedRequest) -> dict:
    """What the inpaint pipeline's call takes beyond img2img's: the (blurred) mask, the image (filled, for masked
    content "fill"), strength (an edit model's 1: every step from pure noise in the mask), the size, the crop."""
    mask, family = prepared.mask, lm.family
    kwargs = dict(
        image=mask.fill if mask.fill is not None else prepared.image,
        mask_image=mask.blurred,
        strength=float(prepared.request.strength) if family.takes_strength else 1.0,
        width=prepared.width,
        height=prepared.height,
    )
    if mask.plan.area == "masked":
        kwargs["padding_mask_crop"] = mask.plan.padding
    if family.max_area:  # FluxKontextInpaintPipeline sizes its run to a preferred resolution unless told not to
        kwargs["_auto_resize"] = False
    return kwargs


def crop_region(pipe, prepared: PreparedRequest) -> tuple[int, int, int, int] | None:
    """The box "only masked" redraws (the pipeline's own ``mask_processor.get_crop_region``); None: the whole picture."""
    mask = prepared.mask
    if mask is None or mask.plan.area != "masked":
        return None
    return pipe.mask_processor.get_crop_region(mask.blurred, prepared.width, prepared.height, pad=mask.plan.padding)


def in_view(picture: Image.Image, crop: tuple[int, int, int, int] | None, size: tuple[int, int]) -> Image.Image:
    """``picture`` as the run sees it at ``size``: the crop box of "only masked" cut out, then resized."""
    if crop is not None:
        picture = picture.crop(crop)
    return picture if picture.size == size else picture.resize(size, Image.Resampling.BILINEAR)


def replace_latent_content(pipe, prepared: PreparedRequest, crop) -> None:
    """Masked content ``latent noise`` / ``latent nothing`` (AUTOMATIC1111's): where ``prepare_latents`` encodes the
    image (``_encode_vae_image``), its latents in the mask become noise (from the seed) or zeros, before the pipeline
    noises them to the first step; the kept region's latents, which the pipeline blends back, are untouched.
    On this request's pipeline copy only."""
    content = prepared.mask.plan.content
    if not content.startswith("latent"):
        return
    size = (prepared.width, prepared.height)
    mask = in_view(prepared.mask.binary(), crop, size)
    encode, prepare = pipe._encode_vae_image, pipe.prepare_latents
    inside = []

    def encode_image(*args, **kwargs):
        latents = encode(*args, **kwargs)
        if not inside:
            return latents
        m = torch.from_numpy(np.asarray(mask, dtype=np.float32) / 255.0)[None, None]
        m = torch.nn.functional.interpolate(m, size=tuple(latents.shape[-2:])).to(latents.device, latents.dtype)
        if content == "latent nothing":
            return latents * (1 - m)
        generator = torch.Generator("cpu").manual_seed(prepared.seed)
        noise = torch.randn(latents.shape, generator=generator).to(latents.device, latents.dtype)
        return latents * (1 - m) + noise * m

    def prepare_latents(*args, **kwargs):
        inside.append(True)
        try:
            return prepare(*args, **kwargs)
        finally:
            inside.clear()

    pipe._encode_vae_image = encode_image
    pipe.prepare_latents = prepare_latents


class MaskedPreview:
    """A preview decoder that draws every step with its mask: the masked region as the step has it, the rest as kept
    (the init image), and the mask's outline (a light ring outside it, a dark one inside) on top, at the size the
    decoder makes its pictures (``approx``'s eighth-size ones enlarged to ``MIN_PAINTED_SIDE`` first).

    Args:
        decoder: the run's ``PreviewDecoder``.
        kept: the picture outside the mask, as the run sees it (the init image; "only masked": its crop, resized).
        mask: what is redrawn (255) at the run's size, as the run sees it.
    """

    def __init__(self, decoder: PreviewDecoder, kept: Image.Image, mask: Image.Image):
        self.decoder = decoder
        self.method = decoder.method
        self.kept = kept.convert("RGB")
        self.mask = mask
        self._at: dict[tuple[int, int], tuple[Image.Image, ...]] = {}

    def decode(self, latents: torch.Tensor) -> Image.Image:
        return self.paint(self.decoder.decode(latents))

    def decode_later(self, latents: torch.Tensor) -> Image.Image:
        return self.paint(self.decoder.decode_later(latents))

    def parts(self, size: tuple[int, int]) -> tuple[Image.Image, ...]:
        """The kept picture, the mask and its two rings at ``size`` (made once a size)."""
        if size not in self._at:
            kept = self.kept.resize(size, Image.Resampling.LANCZOS) if self.kept.size != size else self.kept
            mask = self.mask.resize(size, Image.Resampling.BILINEAR).point(lambda v: 255 if v >= THRESHOLD else 0)
            outside = ImageChops.subtract(mask.filter(ImageFilter.MaxFilter(3)), mask)
            inside = ImageChops.subtract(mask, mask.filter(ImageFilter.MinFilter(3)))
            self._at[size] = (kept, mask, outside, inside)
        return self._at[size]

    def paint(self, picture: Image.Image) -> Image.Image:
        if min(picture.size) < MIN_PAINTED_SIDE:  # approx's eighth-size pictures: the outline would cover them
            scale = math.ceil(MIN_PAINTED_SIDE / min(picture.size))
            picture = picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.BILINEAR)
        kept, mask, outside, inside = self.parts(picture.size)
        out = Image.composite(picture.convert("RGB"), kept, mask)
        light, dark = MASK_OUTLINE
        out.paste(light, mask=outside)
        out.paste(dark, mask=inside)
        return out


def masked_preview(decoder: PreviewDecoder, prepared: PreparedRequest, crop) -> MaskedPreview:
    """``decoder`` drawing ``prepared``'s mask on every step (``crop``: the box "only masked" redraws)."""
    size = (prepared.width, prepared.height)
    return MaskedPreview(decoder, in_view(prepared.image, crop, size), in_view(prepared.mask.binary(), crop, size))


def overlay(pipe, prepared: PreparedRequest, output: Image.Image) -> Image.Image:
    """The output laid over the init image through the blurred mask (the pipeline's own ``apply_overlay``), where the
    mask is blurred and the whole picture was redrawn: a soft seam, and the kept region the image's own pixels, as
    AUTOMATIC1111 keeps them. "Only masked" pastes back through it in the pipeline already; at blur 0 the output is the
    pipeline's as it is."""
    mask: InpaintMask | None = prepared.mask
    if mask is None or mask.plan.blur == 0 or mask.plan.area != "whole" or mask.source == "white":
        return output
    return pipe.image_processor.apply_overlay(mask.blurred, prepared.image, output)
