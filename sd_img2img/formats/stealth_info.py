"""Settings hidden in an image's pixels: AUTOMATIC1111's "stealth PNG info" (the sd-webui-stealth-pnginfo extension),
which NovelAI writes too, so that the settings survive an editor or a site that drops the text chunks.

The bits are the least significant bits of the alpha channel (one a pixel: ``stealth_pnginfo``, ``stealth_pngcomp``)
or of red, green and blue (three a pixel: ``stealth_rgbinfo``, ``stealth_rgbcomp``), read column by column (x outer,
y inner), most significant bit of each byte first: the 15-byte signature, a 32-bit big-endian length in bits, then
the text, UTF-8, gzip'd for the ``…comp`` signatures. AUTOMATIC1111's extension writes its settings text there;
NovelAI a JSON object of its PNG chunks (``Description``, ``Comment``, …).

Bounds: only RGB and RGBA images (not JPEGs: lossy) of at most ``config.STEALTH_MAX_PIXELS`` are looked at; the signature is read from
the first columns alone and the search stops there when it is not one of the four (RGB first, then alpha, as the
extension reads them); a length the image cannot hold, data past ``MAX_STEALTH_BYTES`` or text that unpacks past
``MAX_STEALTH_TEXT_BYTES`` is refused with what was found, never decoded.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image

from sd_img2img.config import STEALTH_MAX_PIXELS
from sd_img2img.formats.settings_reader import MAX_CHUNK_CHARS

SIGNATURES = {  # signature → (channel, gzip'd)
    b"stealth_pnginfo": ("alpha", False),
    b"stealth_pngcomp": ("alpha", True),
    b"stealth_rgbinfo": ("rgb", False),
    b"stealth_rgbcomp": ("rgb", True),
}
SIGNATURE_BITS = 15 * 8
HEADER_BITS = SIGNATURE_BITS + 32
MAX_STEALTH_BYTES = MAX_CHUNK_CHARS  # the hidden data (gzip'd or not) is at most this long …
MAX_STEALTH_TEXT_BYTES = 4 * MAX_CHUNK_CHARS  # … and its text, unpacked, at most this (UTF-8: ≤ 4 bytes a character)


@dataclass(frozen=True)
class StealthInfo:
    """Text hidden in the pixels: where (``alpha`` or ``rgb``), whether it was gzip'd, and the text."""

    channel: str
    compressed: bool
    text: str

    @property
    def where(self) -> str:
        return describe(self.channel, self.compressed)


class StealthUnreadable(ValueError):
    """A stealth signature is there but what follows cannot be read; the message says what was found and why."""


def describe(channel: str, compressed: bool) -> str:
    """``stealth PNG info (stealth_pngcomp, in the alpha channel's low bits)``: how a message names it."""
    signature = next(s for s, found in SIGNATURES.items() if found == (channel, compressed)).decode()
    bits = "the alpha channel's low bits" if channel == "alpha" else "the red, green and blue low bits"
    return f"stealth PNG info ({signature}, in {bits})"


def may_hold_stealth_info(image: Image.Image) -> bool:
    """An RGB or RGBA image that is not a JPEG (whose lossy pixels lose their low bits)."""
    return image.mode in ("RGB", "RGBA") and getattr(image, "format", None) != "JPEG"


def not_searched(image: Image.Image) -> str | None:
    """Why the pixels of an image that may hold stealth info are not searched: too large (None: they are)."""
    if may_hold_stealth_info(image) and image.width * image.height > STEALTH_MAX_PIXELS:
        return (
            f"its pixels were not searched for stealth PNG info: it is {image.width}×{image.height}, more than the "
            f"{STEALTH_MAX_PIXELS / 1e6:.1f} megapixels searched"
        )
    return None


def read_stealth_info(image: Image.Image) -> StealthInfo | None:
    """The text hidden in ``image``'s pixels, or None when there is none: not an RGB or RGBA PNG or WebP, too large
    (``not_searched`` says so), or no stealth signature. Raises ``StealthUnreadable`` for a signature whose length or
    data cannot be read, and what Pillow raises for pixels that do not decode.

    Args:
        image: an open image; its pixels are decoded only when it may hold stealth info.
    """
    if not may_hold_stealth_info(image) or not_searched(image):
        return None
    image.load()
    channels = ("rgb", "alpha") if image.mode == "RGBA" else ("rgb",)
    for channel in channels:
        if image.width * image.height * (3 if channel == "rgb" else 1) < HEADER_BITS:
            continue
        header = _bits(image, channel, HEADER_BITS)
        found = SIGNATURES.get(np.packbits(header[:SIGNATURE_BITS]).tobytes())
        if found is not None and found[0] == channel:
            return _payload(image, channel, found[1], int.from_bytes(np.packbits(header[SIGNATURE_BITS:]), "big"))
    return None


def _payload(image: Image.Image, channel: str, compressed: bool, length: int) -> StealthInfo:
    """The ``length`` bits after the header, as text."""
    where = describe(channel, compressed)
    capacity = image.width * image.height * (3 if channel == "rgb" else 1) - HEADER_BITS
    if length > capacity:
        raise StealthUnreadable(f"its {where} says it holds {length:,} bits, more than the {capacity:,} the image has")
    if length > MAX_STEALTH_BYTES * 8:
        raise StealthUnreadable(
            f"its {where} holds {length // 8:,} bytes, more than any settings take (at most {MAX_STEALTH_BYTES:,})"
        )
    data = np.packbits(_bits(image, channel, HEADER_BITS + length)[HEADER_BITS:]).tobytes()[: length // 8]
    if compressed:
        data = _gunzipped(data, where)
    try:
        return StealthInfo(channel, compressed, data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise StealthUnreadable(f"its {where} is not UTF-8 text ({e.reason} at byte {e.start:,})") from None


def _gunzipped(data: bytes, where: str) -> bytes:
    """``data`` gunzipped, at most ``MAX_STEALTH_TEXT_BYTES`` of it."""
    unpack = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        text = unpack.decompress(data, MAX_STEALTH_TEXT_BYTES)
    except zlib.error as e:
        raise StealthUnreadable(f"its {where} is not valid gzip data ({e})") from None
    if unpack.unconsumed_tail:
        raise StealthUnreadable(
            f"its {where} unpacks to more than {MAX_STEALTH_TEXT_BYTES:,} bytes, more than any settings take"
        )
    if not unpack.eof:
        raise StealthUnreadable(f"its {where} ends before its gzip data does")
    return text


def _bits(image: Image.Image, channel: str, count: int) -> np.ndarray:
    """The first ``count`` low bits of ``channel`` in the extension's order (column by column), read from the first
    columns of the image only."""
    per_column = image.height * (3 if channel == "rgb" else 1)
    columns = min(image.width, max(1, math.ceil(count / per_column)))
    pixels = np.asarray(image.crop((0, 0, columns, image.height)))  # (height, columns, bands)
    values = pixels[:, :, 3] if channel == "alpha" else pixels[:, :, :3]
    ordered = values.transpose(1, 0, 2) if values.ndim == 3 else values.T  # column by column, then y, then band
    return (ordered.reshape(-1)[:count] & 1).astype(np.uint8)
