"""An inpainting run shows its work (engine/inpaint.py): every step in both views carries the mask's outline, step 0 is
the masked region noised with the rest as kept, the masked region changes from step to step while the rest holds;
a blurred mask lays the output over the image (the kept pixels the image's own); AUTOMATIC1111's latent masked content
changes where the masked region starts and nothing outside it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from sd_img2img.config import MASK_OUTLINE
from sd_img2img.engine import GenerationRequest
from sd_img2img.plan.mask import blur_mask

SIZE = 64
KEPT = (196, 84, 40)  # the init image's colour around the mask
BOX = (16, 16, 47, 39)


def init_image() -> Image.Image:
    image = Image.new("RGB", (SIZE, SIZE), KEPT)
    ImageDraw.Draw(image).rectangle((20, 20, 44, 36), fill=(30, 40, 190))  # something under the mask to redraw
    return image


def mask_image() -> Image.Image:
    mask = Image.new("L", (SIZE, SIZE), 0)
    ImageDraw.Draw(mask).rectangle(BOX, fill=255)
    return mask


def run(engine, **kw):
    settings = dict(prompt="fire", init_image=init_image(), mask=mask_image(), mask_blur=0, steps=4, strength=0.75)
    return engine.generate(GenerationRequest(**{**settings, "seed": 11, **kw}))


def regions(size: tuple[int, int]):
    """Boolean arrays at ``size``: well inside the mask, well outside it (clear of the outline)."""
    w, h = size
    sx, sy = w / SIZE, h / SIZE
    ys, xs = np.mgrid[0:h, 0:w]
    x, y = (xs + 0.5) / sx, (ys + 0.5) / sy
    inside = (x > BOX[0] + 5) & (x < BOX[2] - 4) & (y > BOX[1] + 5) & (y < BOX[3] - 4)
    outside = (x < BOX[0] - 5) | (x > BOX[2] + 6) | (y < BOX[1] - 5) | (y > BOX[3] + 6)
    return inside, outside


def test_every_step_shows_the_mask_and_the_region_changes(engine):
    result = run(engine)
    assert result.steps_taken == 3 and len(result.frames) == 4
    light, dark = (np.array(c) for c in MASK_OUTLINE)
    first = None
    for view in ("latents", "x0"):
        for frame in result.frames:
            pixels = np.asarray(frame.image(view).convert("RGB"), dtype=int)
            assert min(pixels.shape[:2]) >= 128  # approx's eighth-size pictures, enlarged so the outline is thin
            colours = pixels.reshape(-1, 3)
            assert (colours == light).all(axis=1).sum() > 40 and (colours == dark).all(axis=1).sum() > 40, view
            inside, outside = regions((pixels.shape[1], pixels.shape[0]))
            assert np.abs(pixels[outside] - np.array(KEPT)).max() <= 2  # the rest as kept, every step
            if view == "latents" and frame.index == 0:
                first = pixels
                assert np.abs(pixels[inside] - np.array(KEPT)).mean() > 20  # step 0: the masked region noised
    last = np.asarray(result.frames[-1].image("latents").convert("RGB"), dtype=int)
    inside, _ = regions((last.shape[1], last.shape[0]))
    assert np.abs(last[inside] - first[inside]).mean() > 5  # the masked region re-imagined, step by step
    animation_frames = result.step_images("latents")
    assert len(animation_frames) == 4  # what the strip and the animation are made of: the painted steps


def test_a_blurred_mask_lays_the_output_over_the_image(engine):
    soft = run(engine, mask_blur=4)
    hard = run(engine, mask_blur=0)
    out, init = np.asarray(soft.output, dtype=int), np.asarray(init_image(), dtype=int)
    inside, outside = regions((SIZE, SIZE))
    untouched = np.asarray(blur_mask(mask_image(), 4)) == 0  # where the blurred mask does not reach
    assert np.array_equal(out[untouched], init[untouched])  # kept: the image's own pixels
    assert np.abs(np.asarray(hard.output, dtype=int)[outside] - init[outside]).max() > 2  # blur 0: the pipeline's
    assert np.abs(out[inside] - init[inside]).mean() > 10  # redrawn
    assert soft.settings()["mask_blur"] == 4 and soft.mask_image.size == (SIZE, SIZE)


@pytest.mark.parametrize("content", ["latent nothing", "latent noise"])
def test_latent_masked_content_changes_only_where_the_masked_region_starts(engine, content):
    original, other = run(engine), run(engine, masked_content=content)
    a, b = original.frames[0].latents, other.frames[0].latents  # step 0's latents as the UNet sees them
    mask = torch.nn.functional.interpolate(
        torch.from_numpy(np.asarray(mask_image(), dtype=np.float32) / 255)[None, None], size=a.shape[-2:]
    )[0, 0].bool()
    assert torch.equal(a[..., ~mask], b[..., ~mask])  # the kept region starts where it did
    assert (a[..., mask] - b[..., mask]).abs().mean() > 0.05
    assert other.settings()["masked_content"] == content
