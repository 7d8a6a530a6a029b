"""An inpainting run's mask, settled before it runs: opened as safely as an init image, fitted to the run's size with
the init image's resize mode, inverted if asked, blurred as diffusers blurs a mask, and measured.

A mask comes from a black-and-white picture (white = redraw), from the init image's transparency (transparent =
redraw, as InvokeAI's canvas) or, for an inpainting checkpoint given none, is all white (the whole picture redrawn,
as AUTOMATIC1111 runs img2img on one). ``settle_mask`` makes the ``InpaintMask`` a backend runs: the mask as fitted
(what the PNG saves beside the output and hashes), the blurred mask the pipeline is given, the share of the picture
redrawn (as the pipelines binarize the mask, at 0.5), and for masked content "fill" the image with the masked region
filled from its surroundings (AUTOMATIC1111's ``masking.fill``). ``MaskPlan`` is what the plan line says of it: "the
masked 23 % is redrawn in 7 steps; the rest is kept". Nothing here needs torch or diffusers.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from PIL import Image, ImageFilter, ImageOps

from sd_img2img.errors import UserInputError
from sd_img2img.models.families import Family
from sd_img2img.plan.images import alpha_mask, fit_image, open_picture, to_mask
from sd_img2img.plan.request import GenerationRequest

THRESHOLD = 128  # the pipelines binarize the mask at 0.5 (VaeImageProcessor.binarize): pixels ≥ 128 are redrawn
# AUTOMATIC1111's masking.fill: the picture outside the mask blurred into it, widest first
FILL_PASSES = ((256, 1), (64, 1), (16, 2), (4, 4), (2, 2), (0, 1))


@dataclass(frozen=True)
class MaskPlan:
    """What the plan line and the run info say of a run's mask (numbers only).

    Args:
        share: of the picture redrawn, 0 to 1.
        area: ``whole`` or ``masked`` (only the masked region and ``padding`` pixels around it, at width × height).
        padding, blur: pixels.
        content: what the masked region starts from (``original``, ``fill``, ``latent noise``, ``latent nothing``).
        width, height: the run's size.
    """

    share: float
    area: str
    padding: int
    blur: int
    content: str
    width: int
    height: int

    @property
    def percent(self) -> str:
        value = self.share * 100
        return f"{value:.1f} %" if 0 < value < 1 else f"{value:.0f} %"

    def describe(self, steps: int, reference: bool = False) -> str:
        """``the masked 23 % is redrawn in 7 steps; the rest is kept`` (``steps``: the steps that run)."""
        what = f"the masked {self.percent}"
        if self.content != "original":
            what += f" (from {self.content})"
        if self.area == "masked":
            what = f"only {what} and {self.padding} px around it, at {self.width}×{self.height},"
        how = f"from pure noise in all {steps} steps" if reference else f"in {steps} step{'s' * (steps != 1)}"
        rest = "the rest is kept" + (" (its seam blurred)" if self.blur else "")
        if self.share >= 1:
            rest = "nothing is kept"
        return f"{what} is redrawn {how}; {rest}"

    def info(self) -> dict:
        return dict(
            share=round(self.share, 4), area=self.area, padding=self.padding, blur=self.blur, content=self.content
        )


@dataclass(frozen=True)
class InpaintMask:
    """A run's mask, settled (``settle_mask``).

    Args:
        image: the mask fitted to the run's size and inverted if asked, 8-bit grey, white = redraw (before the blur):
            what the PNG saves beside the output, and what ``hash`` hashes.
        blurred: what the pipeline is given (``image`` itself at blur 0).
        plan: its share and settings, for the plan line.
        inverted: it was inverted.
        source: where it came from: ``mask``, ``alpha`` (the init image's transparency) or ``white``.
        fill: the init image with the masked region filled from its surroundings (masked content ``fill``); None:
            the pipeline is given the init image itself.
    """

    image: Image.Image
    blurred: Image.Image
    plan: MaskPlan
    inverted: bool = False
    source: str = "mask"
    fill: Image.Image | None = None

    @property
    def hash(self) -> str:
        """The first 10 hex digits of the SHA-256 of its size and pixels (the PNG records it)."""
        digest = hashlib.sha256(f"{self.image.width}x{self.image.height}:".encode() + self.image.tobytes())
        return digest.hexdigest()[:10]

    def binary(self) -> Image.Image:
        """What the pipeline redraws: the blurred mask at 0.5, as diffusers binarizes it (255 = redraw)."""
        return self.blurred.point(lambda v: 255 if v >= THRESHOLD else 0)

    def records(self) -> dict:
        """What a run's PNG records of it: its hash and the settings it ran with."""
        plan = self.plan
        return dict(
            mask_hash=self.hash,
            mask_source=self.source,
            mask_blur=plan.blur,
            masked_content=plan.content,
            inpaint_area=plan.area,
            padding=plan.padding,
            invert_mask=self.inverted,
            mask_share=round(plan.share, 4),
        )


def share_redrawn(blurred: Image.Image) -> float:
    """The share of pixels the pipelines redraw: those of the blurred mask at or above 0.5."""
    histogram = blurred.histogram()
    return sum(histogram[THRESHOLD:]) / max(1, blurred.width * blurred.height)


def blur_mask(mask: Image.Image, blur: int) -> Image.Image:
    """diffusers' ``VaeImageProcessor.blur(mask, blur)`` (a Gaussian blur of radius ``blur``), written out so the planner
    needs no diffusers; the test suite checks the two agree."""
    return mask.filter(ImageFilter.GaussianBlur(blur)) if blur else mask


def fill_masked(image: Image.Image, mask: Image.Image) -> Image.Image:
    """AUTOMATIC1111's ``masking.fill``: the picture outside ``mask`` (white = redraw) blurred into the masked region,
    widest first, so the masked region starts from its surroundings' colours."""
    filled = Image.new("RGBA", image.size)
    outside = Image.new("RGBa", image.size)
    outside.paste(image.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(mask.convert("L")))
    outside = outside.convert("RGBa")
    for radius, repeats in FILL_PASSES:
        blurred = outside.filter(ImageFilter.GaussianBlur(radius)).convert("RGBA")
        for _ in range(repeats):
            filled.alpha_composite(blurred)
    return filled.convert("RGB")


def open_mask(request: GenerationRequest) -> tuple[Image.Image, str]:
    """The request's mask as 8-bit grey, white = redraw, and where it came from (``mask``, ``alpha``, ``white``:
    an inpainting checkpoint given none, all of it redrawn)."""
    if request.mask is not None:
        return to_mask(open_picture(request.mask, None, "mask")), "mask"
    if request.mask_from_alpha:
        return alpha_mask(open_picture(request.init_image, None, "init image")), "alpha"
    return Image.new("L", (8, 8), 255), "white"


def settle_mask(
    request: GenerationRequest, family: Family, image_size: tuple[int, int], width: int, height: int
) -> tuple[InpaintMask, list[str]]:
    """The run's ``InpaintMask`` and what it warns of (a mask of another size than the image, all of it redrawn).

    Args:
        request: the settings (its mask or ``mask_from_alpha``, how to fit it, invert, blur, content, area, padding).
        family: the model's (a checkpoint that needs a mask gets an all-white one when none is given).
        image_size: the init image's own size, before it was fitted.
        width, height: the run's size, which the mask is fitted to with the init image's resize mode.
    Raises ``UserInputError`` for a mask that cannot be opened, and for one that leaves nothing to redraw.
    """
    mask, source = open_mask(request)
    warnings = []
    if source == "mask" and mask.size != tuple(image_size):
        (mw, mh), (iw, ih) = mask.size, image_size
        warnings.append(
            f"the mask is {mw}×{mh} and the image {iw}×{ih}: the mask was fitted with the image ({request.resize_mode} "
            f"to {width}×{height})"
        )
    fitted = (
        Image.new("L", (width, height), 255)
        if source == "white"
        else fit_image(mask, width, height, request.resize_mode)
    )
    if request.invert_mask:
        fitted = ImageOps.invert(fitted)
    blur = int(request.mask_blur)
    blurred = blur_mask(fitted, blur)
    share = share_redrawn(blurred)
    if share == 0:
        after = f" (after a blur of {blur} px)" if fitted.getextrema()[1] >= THRESHOLD else ""
        raise UserInputError(
            f"the mask is all black{after}: it leaves nothing to redraw; paint white where to redraw"
            + (", lower the mask blur" if after else "")
            + (" or untick invert mask" if request.invert_mask else " or invert the mask")
        )
    if source == "white":
        warnings.append(
            f"{family.label} is an inpainting checkpoint and no mask was given: the whole picture is redrawn"
        )
    elif share >= 1:
        warnings.append("the mask is all white: the whole picture is redrawn, as img2img without a mask would")
    plan = MaskPlan(share, request.inpaint_area, int(request.padding), blur, request.masked_content, width, height)
    settled = InpaintMask(fitted, blurred, plan, bool(request.invert_mask), source)
    return settled, warnings


def with_fill(mask: InpaintMask, image: Image.Image) -> InpaintMask:
    """``mask`` with the init image ``image`` filled under it, for masked content ``fill``."""
    if mask.plan.content != "fill":
        return mask
    from dataclasses import replace

    return replace(mask, fill=fill_masked(image, mask.blurred))


def inpaint_size(family: Family, width: int, height: int) -> tuple[int, int]:
    """The size ``family``'s inpaint pipeline runs a ``width`` × ``height`` picture at, where it sizes every run itself
    (Qwen-Image-Edit's: about ``inpaint_pixels``, diffusers' ``calculate_dimensions`` then multiples of 16), else the
    size asked. Repeated until the size keeps its own aspect (the pipeline sizes the fitted picture again)."""
    if family.inpaint_pixels is None:
        return width, height
    for _ in range(4):
        ratio = width / height
        w = math.sqrt(family.inpaint_pixels * ratio)
        h = w / ratio
        w, h = round(w / 32) * 32, round(h / 32) * 32
        m = family.size_multiple  # the pipeline's vae_scale_factor × 2
        new = (w // m * m, h // m * m)
        if new == (width, height):
            break
        width, height = new
    return width, height
