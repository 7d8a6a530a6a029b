"""AUTOMATIC1111's settings outside PNG text chunks: in a JPEG's or WebP's EXIF UserComment (as piexif writes it, and
the other ways writers encode it), and in the stealth PNG info hidden in the pixels' low bits (alpha and RGB,
compressed and not). Every image is built here, byte for byte (tests/tool_images.py)."""

from __future__ import annotations

import pytest
from PIL import Image
from tool_images import USER_COMMENT, exif_block, jpeg_with_exif, stealth_pixels, stealth_png, webp_with_exif

from sd_img2img.errors import UserInputError
from sd_img2img.formats import stealth_info
from sd_img2img.formats.image_settings import read_image_settings

A1111 = (
    "a lighthouse at dusk, oil painting, «tempête»\n"
    "Negative prompt: blurry, fog\n"
    "Steps: 24, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 3551027315, Size: 512x640, "
    "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Denoising strength: 0.55, Version: v1.10.1"
)
EXPECTED = {
    "prompt": "a lighthouse at dusk, oil painting, «tempête»",
    "negative_prompt": "blurry, fog",
    "steps": 24,
    "sampler": "dpmpp_2m_karras",
    "guidance_scale": 6.5,
    "seed": 3551027315,
    "width": 512,
    "height": 640,
    "model": "v1-5-pruned-emaonly",
    "model_hash": "6ce0161689",
    "strength": 0.55,
}


@pytest.mark.parametrize(
    "comment, order",
    [
        (b"UNICODE\0" + A1111.encode("utf-16-be"), ">"),  # piexif's UserComment.dump(…, encoding="unicode"): A1111's
        (b"UNICODE\0" + A1111.encode("utf-16-le"), "<"),  # in the EXIF block's own (little-endian) byte order
        (b"UNICODE\0" + A1111.encode("utf-16"), ">"),  # with a byte-order mark
        (b"ASCII\0\0\0" + A1111.encode("utf-8"), ">"),  # the ASCII code, holding UTF-8 in practice
        (A1111.encode("utf-8"), "<"),  # no character code at all
    ],
    ids=["unicode-be", "unicode-le", "unicode-bom", "ascii", "plain"],
)
def test_a1111_jpeg_user_comment(tmp_path, comment, order):
    got = read_image_settings(jpeg_with_exif(tmp_path / "a1111.jpg", exif_block({USER_COMMENT: comment}, order=order)))
    assert (got.tool, got.found_in, got.notes) == ("AUTOMATIC1111", "the JPEG EXIF UserComment", [])
    assert got.settings == EXPECTED


def test_a1111_webp_user_comment(tmp_path):
    exif = exif_block({USER_COMMENT: b"UNICODE\0" + A1111.encode("utf-16-be")})
    got = read_image_settings(webp_with_exif(tmp_path / "a1111.webp", exif))
    assert (got.tool, got.found_in, got.settings) == ("AUTOMATIC1111", "the WebP EXIF UserComment", EXPECTED)


@pytest.mark.parametrize("channel", ["alpha", "rgb"])
@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_a1111_stealth_png_info(tmp_path, channel, compressed):
    got = read_image_settings(stealth_png(tmp_path / "stealth.png", A1111, channel, compressed, size=(64, 48)))
    signature = ("stealth_png" if channel == "alpha" else "stealth_rgb") + ("comp" if compressed else "info")
    assert got.tool == "AUTOMATIC1111" and got.found_in.startswith(f"the stealth PNG info ({signature}, in the ")
    assert got.settings == EXPECTED and got.notes == []


def test_stealth_info_in_a_lossless_webp(tmp_path):
    path = tmp_path / "stealth.webp"
    stealth_pixels(A1111.encode(), "alpha", size=(64, 48)).save(path, "WEBP", lossless=True)
    assert read_image_settings(path).settings == EXPECTED


def test_text_chunks_come_before_the_pixels(tmp_path):
    """As AUTOMATIC1111's extension reads them: an image's own text first, its hidden info only without one."""
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", A1111.replace("Seed: 3551027315", "Seed: 5"))
    path = tmp_path / "both.png"
    stealth_pixels(A1111.encode(), "alpha", size=(64, 48)).save(path, pnginfo=info)
    got = read_image_settings(path)
    assert got.found_in == "the PNG text chunks" and got.settings["seed"] == 5


def test_the_stealth_search_stops_at_the_first_invalid_header(tmp_path):
    """The signature must open the first column: a valid one further on is never looked for (the rest of the
    picture is not read bit by bit)."""
    data = b"\0" * 60 + b"stealth_pnginfo" + (len(A1111) * 8).to_bytes(4, "big") + A1111.encode()
    path = tmp_path / "late.png"
    stealth_pixels(data, "alpha", signature=b"not_a_signature", length=0, size=(64, 48)).save(path)
    with pytest.raises(UserInputError, match="carries no generation settings"):
        read_image_settings(path)


def test_images_past_the_size_cap_are_not_searched(tmp_path, monkeypatch):
    monkeypatch.setattr(stealth_info, "STEALTH_MAX_PIXELS", 64 * 48 - 1)
    path = stealth_png(tmp_path / "big.png", A1111, size=(64, 48))
    with pytest.raises(UserInputError, match="its pixels were not searched for stealth PNG info: it is 64×48"):
        read_image_settings(path)
    monkeypatch.setattr(stealth_info, "STEALTH_MAX_PIXELS", 64 * 48)
    assert read_image_settings(path).settings == EXPECTED


def test_a_jpeg_without_settings_says_where_it_looked(tmp_path):
    path = tmp_path / "plain.jpg"
    Image.new("RGB", (16, 16)).save(path, "JPEG")
    with pytest.raises(UserInputError, match="'plain.jpg' carries no generation settings .* EXIF UserComment"):
        read_image_settings(path)
