"""Comparisons the tests share."""

from __future__ import annotations

import numpy as np
from PIL import Image


def pixels(im: Image.Image) -> np.ndarray:
    """``im`` as RGB values in a signed type, so that differences do not wrap around."""
    return np.asarray(im.convert("RGB"), dtype=np.int16)


def max_diff(a: Image.Image, b: Image.Image) -> int:
    """The largest difference of any channel of any pixel between two pictures of one size (0: identical)."""
    return int(np.abs(pixels(a) - pixels(b)).max())
