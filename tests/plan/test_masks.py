"""An inpainting run's mask before any model (plan/mask.py, the mask's checks): opened as safely as an init image,
fitted with the image's resize mode (and said so), inverted, blurred as diffusers blurs it, measured for the plan line;
the bad masks an AUTOMATIC1111 or InvokeAI user can give each get a message and no run."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from sd_img2img.errors import UserInputError
from sd_img2img.models.families import FAMILIES
from sd_img2img.plan.mask import blur_mask, fill_masked, inpaint_size
from sd_img2img.plan.prepare import prepare_request
from sd_img2img.plan.request import RECORDED_FIELDS, GenerationRequest


def picture(size=(128, 128), colour=(196, 84, 40)) -> Image.Image:
    image = Image.new("RGB", size, colour)
    ImageDraw.Draw(image).rectangle((10, 10, 50, 90), fill=(30, 40, 190))
    return image


def box_mask(size=(128, 128), box=(32, 32, 95, 79)) -> Image.Image:
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).rectangle(box, fill=255)
    return mask


def prepared(family="sd", **kw):
    settings = {"prompt": "fire", "init_image": picture(), "mask": box_mask(), "steps": 10, "strength": 0.7, **kw}
    return prepare_request(GenerationRequest(**settings), FAMILIES[family])


def test_the_plan_line_says_what_is_redrawn():
    p = prepared(mask_blur=0)
    share = 64 * 48 / 128**2  # the box's pixels
    assert p.mask.plan.share == pytest.approx(share)
    assert p.plan.describe().endswith(
        f"7 steps will run (3 skipped) · the masked {share * 100:.0f} % is redrawn in 7 steps; the rest is kept"
    )
    masked = prepared(inpaint_area="masked", padding=16, masked_content="fill", mask_blur=0).plan.describe()
    assert "only the masked 19 % (from fill) and 16 px around it, at 128×128, is redrawn in 7 steps" in masked
    kontext = prepared("flux-kontext", steps=28, strength=None, mask_blur=0).plan.describe()
    assert "the masked 19 % is redrawn from pure noise in all 28 steps; the rest is kept" in kontext
    assert prepared().plan.describe().endswith("; the rest is kept (its seam blurred)")  # blur 4, the default


def test_a_mask_of_another_size_is_fitted_with_the_image_and_said_so():
    small = box_mask((64, 64), (16, 16, 47, 39))  # the same box at half the size
    p = prepared(mask=small, mask_blur=0)
    assert p.mask.image.size == (128, 128) and p.mask.plan.share == pytest.approx(0.1875, abs=0.01)
    assert "the mask is 64×64 and the image 128×128: the mask was fitted with the image (resize to 128×128)" in (
        p.warnings
    )
    # crop mode cuts the mask as it cuts the image (the centre 128 of 256 columns), resize squeezes it
    wide = Image.new("L", (256, 128), 0)
    ImageDraw.Draw(wide).rectangle((96, 0, 159, 127), fill=255)  # 64 columns in the middle
    fits = {
        mode: prepared(init_image=picture((256, 128)), mask=wide, width=128, height=128, resize_mode=mode, mask_blur=0)
        for mode in ("crop", "resize")
    }
    assert fits["crop"].mask.plan.share == pytest.approx(0.5, abs=0.02)
    assert fits["resize"].mask.plan.share == pytest.approx(0.25, abs=0.02)
    assert not any("the mask is" in w for w in fits["crop"].warnings)  # the image's own size: nothing to say


def test_invert_blur_and_what_the_png_records():
    p = prepared(invert_mask=True, mask_blur=0)
    assert p.mask.plan.share == pytest.approx(1 - 64 * 48 / 128**2)
    blurred = prepared(mask_blur=6).mask
    expected = blur_mask(box_mask(), 6)
    assert np.array_equal(np.asarray(blurred.blurred), np.asarray(expected))
    records = blurred.records()
    assert records["mask_blur"] == 6 and len(records["mask_hash"]) == 10 and records["inpaint_area"] == "whole"
    assert records["mask_hash"] != prepared(mask=box_mask(box=(0, 0, 20, 20))).mask.records()["mask_hash"]
    assert {"mask_blur", "masked_content", "inpaint_area", "padding", "invert_mask"} <= set(RECORDED_FIELDS)


def test_the_blur_is_diffusers_own():
    from diffusers.image_processor import VaeImageProcessor

    for radius in (1, 4, 9):
        ours = blur_mask(box_mask(), radius)
        theirs = VaeImageProcessor.blur(box_mask(), radius)
        assert np.array_equal(np.asarray(ours), np.asarray(theirs))


def test_mask_from_the_image_transparency():
    rgba = picture().convert("RGBA")
    alpha = Image.new("L", rgba.size, 255)
    ImageDraw.Draw(alpha).rectangle((0, 0, 63, 127), fill=0)  # the left half transparent
    rgba.putalpha(alpha)
    p = prepared(init_image=rgba, mask=None, mask_from_alpha=True, mask_blur=0)
    assert p.mask.source == "alpha" and p.mask.plan.share == pytest.approx(0.5)
    with pytest.raises(UserInputError, match="has no transparent pixels, so its transparency makes no mask"):
        prepared(mask=None, mask_from_alpha=True)
    with pytest.raises(UserInputError, match="give a mask or take it from the image's transparency, not both"):
        prepared(mask_from_alpha=True)


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(mask=Image.new("L", (128, 128), 0)), "the mask is all black: it leaves nothing to redraw; paint white"),
        (dict(mask=box_mask(box=(60, 60, 61, 61)), mask_blur=8), r"all black \(after a blur of 8 px\).*lower the mask"),
        (dict(init_image=None), "a mask says which part of an initial image to redraw, and no initial image was given"),
        (dict(mask=b"not a picture"), "the uploaded mask is not an image this program can read; use PNG, JPEG"),
        (dict(mask="/no/such/mask.png"), "mask '/no/such/mask.png' does not exist; check the path"),
        (dict(mask_blur=65), "mask blur must be from 0 to 64, got 65"),
        (dict(mask_blur=2.5), "mask blur must be a whole number from 0 to 64, got 2.5"),
        (dict(padding=-1), "only-masked padding must be from 0 to 256, got -1"),
        (dict(masked_content="noise"), "unknown masked content 'noise'; choose one of: original, fill"),
        (dict(inpaint_area="all"), "unknown inpaint area 'all'; choose one of: whole, masked"),
    ],
)
def test_bad_masks_get_a_message_and_no_run(changes, message):
    with pytest.raises(UserInputError, match=message):
        prepared(**changes)


def test_a_truncated_mask_gets_the_init_images_message():
    buffer = io.BytesIO()
    box_mask().save(buffer, format="PNG")
    with pytest.raises(UserInputError, match="is damaged and cannot be decoded"):
        prepared(mask=buffer.getvalue()[:60])


def test_an_all_white_mask_is_a_note_and_redraws_everything():
    p = prepared(mask=Image.new("L", (128, 128), 255))
    assert p.mask.plan.share == 1.0 and p.plan.describe().endswith("is redrawn in 7 steps; nothing is kept")
    assert any("the mask is all white: the whole picture is redrawn" in w for w in p.warnings)
    # an inpainting checkpoint given no mask redraws everything too, and says so
    whole = prepare_request(GenerationRequest(prompt="x", init_image=picture(), steps=10), FAMILIES["sd-inpaint"])
    assert whole.mask.source == "white" and any("no mask was given" in w for w in whole.warnings)


def test_fill_starts_the_masked_region_from_its_surroundings():
    image = Image.new("RGB", (64, 64), (200, 30, 30))
    ImageDraw.Draw(image).rectangle((20, 20, 43, 43), fill=(0, 0, 255))  # blue under the mask
    filled = np.asarray(fill_masked(image, box_mask((64, 64), (20, 20, 43, 43))), dtype=int)
    assert abs(filled[32, 32] - np.array([200, 30, 30])).max() < 40  # the red around it, not the blue under it
    assert prepared(masked_content="fill").mask.fill is not None and prepared().mask.fill is None


def test_qwen_image_edit_inpaints_at_its_pipelines_own_size():
    """diffusers' QwenImageEditInpaintPipeline sizes every run to about a megapixel (its calculate_dimensions); the
    run is planned at that size, so the mask and image are fitted to what it will run."""
    from diffusers.pipelines.qwenimage.pipeline_qwenimage_edit_inpaint import calculate_dimensions

    for width, height in ((1024, 1024), (640, 480), (512, 896), (1000, 700)):
        w, h = inpaint_size(FAMILIES["qwen-image-edit"], width, height)
        theirs = calculate_dimensions(1024 * 1024, w / h)[:2]
        assert (w, h) == (theirs[0] // 16 * 16, theirs[1] // 16 * 16)  # a fixed point: it sizes it the same again
    assert inpaint_size(FAMILIES["sd"], 640, 480) == (640, 480)
