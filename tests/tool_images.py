"""Images carrying other tools' settings, built byte for byte to each tool's documented layout (nothing downloaded):
PNG text chunks, an EXIF block with a UserComment as piexif writes it (AUTOMATIC1111's JPEG and WebP) or as Pillow
writes it (Fooocus'), inserted into a JPEG as piexif.insert does, and AUTOMATIC1111's stealth PNG info hidden in the
pixels' low bits."""

from __future__ import annotations

import gzip
import io
import json
import struct

import numpy as np
from PIL import Image, PngImagePlugin

UNDEFINED, ASCII, LONG = 7, 2, 4
EXIF_IFD, USER_COMMENT, MAKER_NOTE, SOFTWARE = 0x8769, 0x9286, 0x927C, 0x0131


def png_with_text(path, chunks: dict, size=(16, 16), mode="RGB"):
    """A PNG with ``chunks`` as text chunks (dicts and lists written as JSON)."""
    info = PngImagePlugin.PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value if isinstance(value, str) else json.dumps(value))
    Image.new(mode, size, "gray").save(path, pnginfo=info)
    return path


def user_comment(text: str, code: str = "UNICODE", order: str = ">") -> bytes:
    """A UserComment's bytes: EXIF's 8-byte character code, then the text (``UNICODE``: UTF-16 in ``order``)."""
    if code == "UNICODE":
        return b"UNICODE\0" + text.encode("utf-16-be" if order == ">" else "utf-16-le")
    if code == "ASCII":
        return b"ASCII\0\0\0" + text.encode("utf-8")
    return text.encode("utf-8")  # no code at all


def exif_block(exif_ifd: dict[int, bytes] = (), ifd0: dict[int, bytes] = (), order: str = ">") -> bytes:
    """A TIFF-structured EXIF block (``MM``: big-endian, as piexif writes; ``<``: ``II``), its first IFD holding
    ``ifd0`` and a pointer to an Exif IFD holding ``exif_ifd``; every value is written as UNDEFINED bytes, except
    Software (ASCII)."""
    exif_ifd, ifd0 = dict(exif_ifd), dict(ifd0)
    head = (b"MM" if order == ">" else b"II") + struct.pack(order + "HI", 42, 8)

    def ifd(entries: dict[int, tuple[int, bytes]], at: int) -> bytes:
        table_size = 2 + 12 * len(entries) + 4
        table, data = struct.pack(order + "H", len(entries)), b""
        for tag, (kind, value) in sorted(entries.items()):
            count = len(value) // (4 if kind == LONG else 1)
            if len(value) <= 4:
                table += struct.pack(order + "HHI", tag, kind, count) + value.ljust(4, b"\0")
            else:
                table += struct.pack(order + "HHII", tag, kind, count, at + table_size + len(data))
                data += value + (b"\0" if len(value) % 2 else b"")
        return table + b"\0\0\0\0" + data

    first = {tag: (ASCII if tag == SOFTWARE else UNDEFINED, value) for tag, value in ifd0.items()}
    if exif_ifd:
        first[EXIF_IFD] = (LONG, b"\0\0\0\0")  # placeholder: the first IFD's size decides where the Exif IFD goes
        size = len(ifd(first, 8))
        first[EXIF_IFD] = (LONG, struct.pack(order + "I", 8 + size))
        return head + ifd(first, 8) + ifd({tag: (UNDEFINED, v) for tag, v in exif_ifd.items()}, 8 + size)
    return head + ifd(first, 8)


def jpeg_with_exif(path, exif: bytes, size=(32, 24)):
    """A JPEG with ``exif`` in an APP1 segment right after its start marker, as piexif.insert puts it."""
    buffer = io.BytesIO()
    Image.new("RGB", size, (120, 90, 60)).save(buffer, "JPEG", quality=80)
    jpeg = buffer.getvalue()
    app1 = b"Exif\0\0" + exif
    path.write_bytes(jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpeg[2:])
    return path


def webp_with_exif(path, exif: bytes, size=(32, 24)):
    """A WebP with ``exif`` as its EXIF chunk."""
    Image.new("RGB", size, (120, 90, 60)).save(path, "WEBP", exif=exif, quality=80)
    return path


def stealth_pixels(
    data: bytes, channel: str = "alpha", signature: bytes | None = None, size=(64, 64), length: int | None = None
) -> Image.Image:
    """An image whose pixels' low bits hold ``data`` the way AUTOMATIC1111's stealth PNG info extension writes it:
    signature, 32-bit length in bits, data, column by column (x outer, y inner), in the alpha channel's low bit or in
    red, green and blue's. ``signature`` and ``length`` default to the right ones (give others to build a broken
    header)."""
    if signature is None:
        signature = b"stealth_pnginfo" if channel == "alpha" else b"stealth_rgbinfo"
    bits = np.unpackbits(
        np.frombuffer(signature + struct.pack(">I", len(data) * 8 if length is None else length) + data, np.uint8)
    )
    width, height = size
    rng = np.random.default_rng(5)
    pixels = rng.integers(0, 256, (height, width, 4), dtype=np.uint8)  # a noisy picture: its low bits are random
    pixels[:, :, 3] |= 0xF0
    if channel == "alpha":
        plane = pixels[:, :, 3].T.reshape(-1)  # column by column
        assert len(bits) <= plane.size, "the picture is too small for the data"
        plane[: len(bits)] = (plane[: len(bits)] & 0xFE) | bits
        pixels[:, :, 3] = plane.reshape(width, height).T
    else:
        planes = pixels[:, :, :3].transpose(1, 0, 2).reshape(-1)
        assert len(bits) <= planes.size, "the picture is too small for the data"
        planes[: len(bits)] = (planes[: len(bits)] & 0xFE) | bits
        pixels[:, :, :3] = planes.reshape(width, height, 3).transpose(1, 0, 2)
    return Image.fromarray(pixels, "RGBA").convert("RGBA" if channel == "alpha" else "RGB")


def stealth_png(path, text: str, channel: str = "alpha", compressed: bool = False, size=(64, 64)):
    """A PNG with ``text`` in AUTOMATIC1111's stealth PNG info (``stealth_png{info,comp}`` in alpha,
    ``stealth_rgb{info,comp}`` in RGB) and no text chunk."""
    kind = ("png" if channel == "alpha" else "rgb") + ("comp" if compressed else "info")
    data = gzip.compress(text.encode()) if compressed else text.encode()
    stealth_pixels(data, channel, f"stealth_{kind}".encode(), size).save(path)
    return path
