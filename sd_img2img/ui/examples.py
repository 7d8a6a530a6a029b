"""Example init images the project draws itself (no downloads): a hand-drawn-style fireplace, a rough
landscape sketch and a photo-like scene, shipped as package data in ``sd_img2img/examples/`` (``examples/`` in a clone
points there). ``python -m sd_img2img.ui.examples [DIR]`` draws them again (default: that folder)."""

from __future__ import annotations

import math
import random
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

# (file name, prompt) for each example
EXAMPLES = (
    ("fireplace.png", "fire", "a cozy fireplace with a roaring fire, oil painting"),
    ("landscape.png", "landscape", "a mountain landscape with a lake at sunset, detailed painting"),
    ("street.png", "street", "a photo of a quiet city street at night, rain, neon lights"),
)


def _wobbly_line(draw: ImageDraw.ImageDraw, points, rng: random.Random, width: int, fill) -> None:
    """A line that wobbles a little, as a hand would draw it."""
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        steps = max(2, int(math.hypot(x1 - x0, y1 - y0) / 6))
        prev = (x0, y0)
        for i in range(1, steps + 1):
            t = i / steps
            p = (x0 + (x1 - x0) * t + rng.uniform(-1.2, 1.2), y0 + (y1 - y0) * t + rng.uniform(-1.2, 1.2))
            draw.line([prev, p], fill=fill, width=width)
            prev = p


def draw_fireplace(width: int = 512, height: int = 512, seed: int = 7) -> Image.Image:
    """A crude hand-drawn fireplace: brick mantel, dark opening, orange and yellow flames, on paper white."""
    rng = random.Random(seed)
    im = Image.new("RGB", (width, height), (246, 242, 232))
    d = ImageDraw.Draw(im)
    sx, sy = width / 512, height / 512
    s = lambda x, y: (x * sx, y * sy)  # noqa: E731
    d.rectangle([s(0, 420), s(512, 512)], fill=(150, 110, 80))  # floor
    d.rectangle([s(96, 110), s(416, 430)], fill=(168, 74, 52))  # brick surround
    for row, y in enumerate(range(110, 430, 26)):
        _wobbly_line(d, [s(96, y), s(416, y)], rng, 2, (120, 50, 40))
        for x in range(96 + (row % 2) * 24, 416, 48):
            _wobbly_line(d, [s(x, y), s(x, y + 26)], rng, 2, (120, 50, 40))
    d.rectangle([s(70, 88), s(442, 118)], fill=(110, 72, 46))  # mantel shelf
    d.rectangle([s(160, 220), s(352, 430)], fill=(40, 30, 30))  # opening
    d.polygon(
        [s(190, 430), s(215, 330), s(240, 380), s(258, 290), s(280, 370), s(300, 320), s(322, 430)], fill=(240, 120, 30)
    )
    d.polygon([s(220, 430), s(240, 370), s(258, 335), s(275, 380), s(295, 430)], fill=(252, 210, 70))
    d.rectangle([s(180, 420), s(332, 432)], fill=(90, 55, 35))  # logs
    _wobbly_line(d, [s(96, 110), s(416, 110), s(416, 430), s(96, 430), s(96, 110)], rng, 4, (30, 25, 25))
    return im


def draw_landscape(width: int = 512, height: int = 384, seed: int = 3) -> Image.Image:
    """A rough landscape sketch: sky, sun, two mountains, a lake and a green shore."""
    rng = random.Random(seed)
    im = Image.new("RGB", (width, height), (120, 170, 230))
    d = ImageDraw.Draw(im)
    sx, sy = width / 512, height / 384
    s = lambda x, y: (x * sx, y * sy)  # noqa: E731
    d.ellipse([s(380, 40), s(450, 110)], fill=(255, 214, 90))
    d.polygon([s(-20, 260), s(150, 80), s(300, 260)], fill=(110, 100, 120))
    d.polygon([s(180, 260), s(340, 110), s(540, 260)], fill=(90, 90, 110))
    d.polygon([s(120, 120), s(150, 80), s(180, 120)], fill=(250, 250, 250))
    d.rectangle([s(0, 255), s(512, 320)], fill=(60, 110, 180))
    d.rectangle([s(0, 315), s(512, 384)], fill=(70, 140, 60))
    for _ in range(14):
        x = rng.uniform(0, 512)
        _wobbly_line(d, [s(x, 340), s(x, 300)], rng, max(1, int(3 * sx)), (60, 40, 30))
        d.ellipse([s(x - 14, 270), s(x + 14, 318)], fill=(40, 100 + rng.randint(0, 40), 40))
    return im


def draw_street(width: int = 512, height: int = 512, seed: int = 11) -> Image.Image:
    """A photo-like night street: perspective road, lit windows, glow and film grain."""
    rng = random.Random(seed)
    im = Image.new("RGB", (width, height), (16, 20, 38))
    d = ImageDraw.Draw(im)
    sx, sy = width / 512, height / 512
    s = lambda x, y: (x * sx, y * sy)  # noqa: E731
    for y in range(0, 230, 4):  # sky gradient
        c = int(16 + y / 230 * 40)
        d.rectangle([s(0, y), s(512, y + 4)], fill=(c, c + 6, c + 30))
    d.polygon([s(0, 512), s(230, 260), s(282, 260), s(512, 512)], fill=(45, 45, 55))  # road
    d.polygon([s(0, 120), s(200, 230), s(200, 300), s(0, 512)], fill=(58, 48, 52))  # left facade
    d.polygon([s(512, 90), s(312, 230), s(312, 300), s(512, 512)], fill=(52, 50, 62))  # right facade
    for i in range(6):
        for j in range(3):
            x, y = 20 + i * 30, 170 + j * 50 + i * 6
            if rng.random() < 0.7:
                d.rectangle([s(x, y), s(x + 14, y + 22)], fill=(255, 200 - rng.randint(0, 60), 110))
            x2 = 480 - i * 30
            if rng.random() < 0.6:
                d.rectangle([s(x2, y - 10), s(x2 + 14, y + 12)], fill=(120 + rng.randint(0, 120), 220, 255))
    glow = Image.new("RGB", im.size, (0, 0, 0))
    ImageDraw.Draw(glow).ellipse([s(210, 200), s(300, 290)], fill=(255, 80, 180))
    im = Image.blend(im, glow.filter(ImageFilter.GaussianBlur(30 * sx)), 0.25)
    noise = Image.effect_noise(im.size, 18).convert("RGB")
    return Image.blend(im, noise, 0.06).filter(ImageFilter.GaussianBlur(0.6))


DRAWERS = {"fireplace.png": draw_fireplace, "landscape.png": draw_landscape, "street.png": draw_street}


def write_examples(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, _, _ in EXAMPLES:
        path = folder / name
        DRAWERS[name]().save(path)
        paths.append(path)
    return paths


if __name__ == "__main__":
    for p in write_examples(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "examples"):
        print(p)
