"""Comparisons the tests share."""

from __future__ import annotations

import time

import numpy as np
from PIL import Image


def pixels(im: Image.Image) -> np.ndarray:
    """``im`` as RGB values in a signed type, so that differences do not wrap around."""
    return np.asarray(im.convert("RGB"), dtype=np.int16)


def max_diff(a: Image.Image, b: Image.Image) -> int:
    """The largest difference of any channel of any pixel between two pictures of one size (0: identical)."""
    return int(np.abs(pixels(a) - pixels(b)).max())


def copy_slowly(source: bytes, target, chunks: int, pause: float) -> None:
    """Write ``source`` into ``target`` chunk by chunk, ``pause`` seconds apart, as a download arrives (the hub's
    ``.incomplete`` file)."""
    size = len(source) // chunks
    with open(target, "wb") as f:
        for i in range(chunks):
            f.write(source[i * size : (i + 1) * size])
            f.flush()
            time.sleep(pause)
