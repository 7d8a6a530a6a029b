"""An inpainting run's PNG: its settings record the mask (hash, blur, content, area, padding, invert) and take them
back to reproduce it; AUTOMATIC1111's text carries them under the names its img2img tab pastes, and an
AUTOMATIC1111 inpainting PNG fills them in."""

from __future__ import annotations

from PIL import Image

from sd_img2img.formats.image_settings import read_image_settings
from sd_img2img.formats.metadata import read_settings, request_kwargs, save_png
from sd_img2img.ui.form import fit_form

RECORDS = dict(
    mask_hash="0123456789",
    mask_source="mask",
    mask_blur=6,
    masked_content="latent noise",
    inpaint_area="masked",
    padding=40,
    invert_mask=True,
    mask_share=0.2,
)


def test_our_png_records_the_mask_and_takes_its_settings_back(tmp_path):
    png = save_png(Image.new("RGB", (8, 8)), tmp_path / "out.png", {"prompt": "fire", "steps": 4, **RECORDS})
    kwargs = request_kwargs(read_settings(png))
    assert {k: kwargs[k] for k in ("mask_blur", "masked_content", "inpaint_area", "padding", "invert_mask")} == {
        "mask_blur": 6,
        "masked_content": "latent noise",
        "inpaint_area": "masked",
        "padding": 40,
        "invert_mask": True,
    }
    text = Image.open(png).info["parameters"]
    assert (
        "Mask blur: 6, Mask mode: Inpaint not masked, Masked content: latent noise, Inpaint area: Only masked, "
        "Masked area padding: 40, Mask hash: 0123456789" in text
    )


def test_an_automatic1111_inpainting_png_fills_the_mask_settings(tmp_path):
    png = tmp_path / "a1111.png"
    text = (
        "fire\\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512, Denoising strength: 0.75, "
        "Mask blur: 8, Masked content: fill, Inpaint area: Only masked, Masked area padding: 64"
    )
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", text.replace("\\n", "\n"))
    Image.new("RGB", (8, 8)).save(png, pnginfo=info)
    found = read_image_settings(png)
    got = found.request_kwargs()
    assert (got["mask_blur"], got["masked_content"], got["inpaint_area"], got["padding"]) == (8, "fill", "masked", 64)
    assert "the mask is not in a PNG: paint or upload it again" in found.notes
    assert not any("other settings not used" in n for n in found.notes)
    values, skipped = fit_form({"masked_content": "bogus", "inpaint_area": "masked"}, ("k_lms",))
    assert values == {"inpaint_area": "masked"} and "Not used: masked_content 'bogus'" in skipped[0]
