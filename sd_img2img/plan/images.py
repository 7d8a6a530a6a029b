"""Init images: open safely, normalise to upright RGB, pick the size, fit to it.

The header is read and its size checked before a single pixel is decoded, so a 20000×20000 image or a
decompression bomb costs nothing. Every mode PIL can open ends as 8-bit RGB: alpha is laid on white,
16-bit and float images are scaled (not clipped), CMYK and palette images converted, EXIF rotation applied.
"""

from __future__ import annotations

import io
import os
import re
import threading
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError

from sd_img2img.config import MAX_INPUT_BYTES, MAX_INPUT_PIXELS, MAX_SIDE, MIN_DIMENSION, RESIZE_MODES
from sd_img2img.errors import UserInputError, check_choice, file_name
from sd_img2img.plan.checks import check_image_size


def open_image(source, name: str | None = None) -> Image.Image:
    """Open an init image from a path, bytes or a PIL image and return it as upright 8-bit RGB.

    Raises ``UserInputError`` for a missing, empty, oversized, corrupt or non-image file.
    """
    return to_rgb(open_picture(source, name))


def open_picture(source, name: str | None = None, what: str = "init image") -> Image.Image:
    """A picture from a path, bytes or a PIL image, decoded as it is (any mode), its size checked before any pixel is
    decoded; ``what`` names it in messages (``init image``, ``mask``).

    Raises ``UserInputError`` for a missing, empty, oversized, corrupt or non-image file.
    """
    if isinstance(source, Image.Image):
        check_image_size(*source.size, name or f"the {what}")
        return source
    if isinstance(source, (bytes, bytearray)):
        name = name or ("the uploaded file" if what == "init image" else f"the uploaded {what}")
        data = io.BytesIO(source)
        size = len(source)
    else:
        path = Path(os.fspath(source))
        given = name or f"'{path}'"  # a file that is not there is named as it was given
        if not path.exists():
            raise UserInputError(f"{what} {given} does not exist; check the path")
        if not path.is_file():
            raise UserInputError(f"{what} {given} is not a file")
        name = name or file_name(path)
        size = path.stat().st_size
        data = path
    if size == 0:
        raise UserInputError(f"{name} is empty (0 bytes); choose an image file")
    if size > MAX_INPUT_BYTES:
        raise UserInputError(f"{name} is {size / 2**20:.0f} MB, above the limit of {MAX_INPUT_BYTES // 2**20} MB")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(data)
            check_image_size(img.width, img.height, name)  # before decoding any pixel
            img.load()
    except UserInputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        # PIL refuses the worst bombs while reading the header; its message carries the pixel count
        count = re.search(r"\((\d+) pixels\)", str(e))
        pixels = f"{int(count.group(1)) / 1e6:.0f} megapixels" if count else "too many pixels"
        raise UserInputError(
            f"{name} would decode to {pixels}, above the limit of "
            f"{MAX_INPUT_PIXELS // 1_000_000} megapixels; scale it down first"
        ) from None
    except UnidentifiedImageError:
        raise UserInputError(
            f"{name} is not an image this program can read; use PNG, JPEG, WebP, BMP, GIF or TIFF"
        ) from None
    except (OSError, SyntaxError, ValueError) as e:  # truncated or corrupt data
        raise UserInputError(
            f"{name} is damaged and cannot be decoded ({e}); re-save or choose another image"
        ) from None
    return img


def to_mask(img: Image.Image) -> Image.Image:
    """A mask picture as 8-bit grey (white = redraw): EXIF rotation applied, its brightness, transparent pixels black
    (a painted layer's strokes on a transparent sheet are its opaque pixels)."""
    img = to_rgba(img)
    black = Image.new("RGBA", img.size, (0, 0, 0, 255))
    return Image.alpha_composite(black, img).convert("L")


def alpha_mask(img: Image.Image, name: str = "the init image") -> Image.Image:
    """The mask a picture's transparency makes: transparent = redraw (white), opaque = keep (black), as InvokeAI's
    canvas reads it; ``UserInputError`` when it has no transparency at all."""
    img = to_rgba(img)
    alpha = img.getchannel("A")
    if alpha.getextrema()[0] == 255:
        raise UserInputError(
            f"{name} has no transparent pixels, so its transparency makes no mask; erase what to redraw (or give a "
            "mask)"
        )
    return ImageOps.invert(alpha)


def to_rgba(img: Image.Image) -> Image.Image:
    """Upright 8-bit RGBA (16-bit and float pictures scaled as ``to_rgb`` does, opaque)."""
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # a broken EXIF block must not lose the picture
        pass
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return to_rgb(img).convert("RGBA")
    return img.convert("RGBA")


def to_rgb(img: Image.Image) -> Image.Image:
    """Upright 8-bit RGB: EXIF rotation applied, transparency on white, 16-bit/float scaled, CMYK/palette converted."""
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # a broken EXIF block must not lose the picture
        pass
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        if mode == "F" and arr.max(initial=0) <= 1.0:
            top = 1.0
        arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if mode in ("P", "PA"):
        img = img.convert("RGBA")
    elif mode in ("LA", "La", "RGBa"):
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, img).convert("RGB")
    if img.mode != "RGB":
        img = img.convert("RGB")
    return img


def default_size(width: int, height: int, max_side: int = MAX_SIDE) -> tuple[int, int]:
    """The init image's own size rounded down to multiples of 8, longest side capped at ``max_side``."""
    scale = min(1.0, max_side / max(width, height))
    w, h = int(width * scale) // 8 * 8, int(height * scale) // 8 * 8
    if min(w, h) < MIN_DIMENSION:
        raise UserInputError(
            f"the init image is {width}×{height} pixels, too small to use at its own size (the smallest is "
            f"{MIN_DIMENSION}×{MIN_DIMENSION}); use a larger image or set width and height"
        )
    return w, h


def fit_image(img: Image.Image, width: int, height: int, mode: str = "resize") -> Image.Image:
    """Fit ``img`` to ``width``×``height``.

    Args:
        mode: ``resize`` stretches to the size; ``crop`` keeps the aspect and cuts the overflow from the
            centre; ``fill`` keeps the whole image and fills the borders with a blurred stretch of itself.
    """
    check_choice("resize mode", mode, RESIZE_MODES)
    if img.size == (width, height):
        return img
    if mode == "resize":
        return img.resize((width, height), Image.Resampling.LANCZOS)
    if mode == "crop":
        return ImageOps.fit(img, (width, height), Image.Resampling.LANCZOS)
    background = img.resize((width, height), Image.Resampling.BILINEAR).filter(
        ImageFilter.GaussianBlur(radius=max(width, height) / 32)
    )
    inner = ImageOps.contain(img, (width, height), Image.Resampling.LANCZOS)
    background.paste(inner, ((width - inner.width) // 2, (height - inner.height) // 2))
    return background


class ImageCache:
    """The last few init images opened and fitted, so that planning the same request again (a slider moved, then
    the click) opens and resizes nothing twice. Keyed by the file's path, size and modification time; images given
    as bytes or PIL images are not kept.

    Args:
        max_entries: fitted images kept (each with the opened image it came from).
    """

    def __init__(self, max_entries: int = 4):
        self.max_entries = max_entries
        self._items: OrderedDict[tuple, Image.Image] = OrderedDict()
        self._lock = threading.Lock()
        self.opened = 0  # files actually opened and decoded (the rest came from here)

    @staticmethod
    def _key(source) -> tuple | None:
        if not isinstance(source, (str, os.PathLike)):
            return None
        try:
            stat = os.stat(source)
        except OSError:
            return None  # open_image says what is wrong with it
        return (os.fspath(source), stat.st_size, stat.st_mtime_ns)

    def _get(self, key: tuple, make):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = make()
        with self._lock:
            self._items[key] = value
            while len(self._items) > 2 * self.max_entries:
                self._items.popitem(last=False)
        return value

    def open(self, source) -> Image.Image:
        """``open_image(source)``, from here when the same file was opened before."""
        key = self._key(source)
        if key is None:
            return open_image(source)

        def make():
            self.opened += 1
            return open_image(source)

        return self._get(key, make)

    def fit(self, source, image: Image.Image, width: int, height: int, mode: str) -> Image.Image:
        """``fit_image(image, …)`` of the image opened from ``source``, from here when fitted the same way before."""
        key = self._key(source)
        if key is None:
            return fit_image(image, width, height, mode)
        return self._get((*key, width, height, mode), lambda: fit_image(image, width, height, mode))
