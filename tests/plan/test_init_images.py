"""Init images: every kind of file a person might hand over ends as upright RGB or a clear message."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from sd_img2img.errors import UserInputError
from sd_img2img.plan.images import open_image


def save(im: Image.Image, path, **kw):
    im.save(path, **kw)
    return path


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width×height with almost no data: the size must be refused before decoding."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    )


def test_missing_file(tmp_path):
    with pytest.raises(UserInputError, match="does not exist; check the path"):
        open_image(tmp_path / "nope.png")


def test_empty_and_non_image_files(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(UserInputError, match="is empty"):
        open_image(tmp_path / "empty.png")
    (tmp_path / "notes.png").write_text("these are not pixels")
    with pytest.raises(UserInputError, match="not an image this program can read"):
        open_image(tmp_path / "notes.png")
    (tmp_path / "page.png").write_text("<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>")
    with pytest.raises(UserInputError, match="not an image this program can read"):
        open_image(tmp_path / "page.png")


def test_truncated_file(tmp_path):
    buf = io.BytesIO()
    Image.effect_noise((256, 256), 50).convert("RGB").save(buf, "PNG")
    (tmp_path / "cut.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(UserInputError, match="damaged"):
        open_image(tmp_path / "cut.png")


def test_huge_image_is_refused_before_decoding(tmp_path):
    (tmp_path / "huge.png").write_bytes(png_header_only(20000, 20000))
    with pytest.raises(UserInputError, match="would decode to 400 megapixels, above the limit of 50 megapixels"):
        open_image(tmp_path / "huge.png")
    (tmp_path / "tall.png").write_bytes(png_header_only(100, 13000))
    with pytest.raises(UserInputError, match="100×13000 pixels, above the limit of 12000 px a side"):
        open_image(tmp_path / "tall.png")
    with pytest.raises(UserInputError, match="above the limit"):
        open_image(png_header_only(9000, 9000))  # 81 MP in a few bytes: a decompression bomb


def test_one_pixel_image_opens_but_has_no_default_size(engine, tmp_path):
    from sd_img2img.engine import GenerationRequest

    path = save(Image.new("RGB", (1, 1), "red"), tmp_path / "dot.png")
    assert open_image(path).size == (1, 1)
    with pytest.raises(UserInputError, match=r"1×1 pixels, too small.*set width and height"):
        engine.generate(GenerationRequest(prompt="x", init_image=path))
    ok = engine.generate(GenerationRequest(prompt="x", init_image=path, width=64, height=64, steps=2, strength=1.0))
    assert ok.output.size == (64, 64)


def test_rgba_lies_on_white(tmp_path):
    im = Image.new("RGBA", (16, 16), (255, 0, 0, 0))
    im.putpixel((0, 0), (0, 0, 255, 255))
    out = open_image(save(im, tmp_path / "a.png"))
    assert out.mode == "RGB" and out.getpixel((5, 5)) == (255, 255, 255) and out.getpixel((0, 0)) == (0, 0, 255)


def test_palette_with_transparency(tmp_path):
    im = Image.new("P", (8, 8), 1)
    im.putpalette([0, 0, 0, 10, 200, 10] + [0] * 762)
    im.info["transparency"] = 0
    im.putpixel((0, 0), 0)
    out = open_image(save(im, tmp_path / "p.png", transparency=0))
    assert out.mode == "RGB" and out.getpixel((3, 3)) == (10, 200, 10) and out.getpixel((0, 0)) == (255, 255, 255)


def test_grayscale_and_16_bit_are_scaled_not_clipped(tmp_path):
    assert open_image(save(Image.new("L", (8, 8), 77), tmp_path / "g.png")).getpixel((1, 1)) == (77, 77, 77)
    arr = np.full((8, 8), 32768, dtype=np.uint16)  # mid-grey in 16 bits
    out = open_image(save(Image.fromarray(arr), tmp_path / "g16.png"))
    assert out.mode == "RGB" and abs(out.getpixel((1, 1))[0] - 128) <= 1


def test_cmyk(tmp_path):
    out = open_image(save(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), tmp_path / "c.jpg", quality=95))
    r, g, b = out.getpixel((4, 4))
    assert out.mode == "RGB" and r > 200 and g < 60 and b < 60


def test_exif_rotation_is_applied(tmp_path):
    im = Image.new("RGB", (40, 20), "white")
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view"
    out = open_image(save(im, tmp_path / "phone.jpg", exif=exif))
    assert out.size == (20, 40)


def test_bytes_and_pil_sources():
    buf = io.BytesIO()
    Image.new("LA", (10, 12), (100, 255)).save(buf, "PNG")
    assert open_image(buf.getvalue()).size == (10, 12)
    assert open_image(Image.new("I;16", (5, 5))).mode == "RGB"
