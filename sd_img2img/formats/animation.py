"""A run's steps as one animation, and any series of pictures as one (the loops of a loopback): animated WebP or GIF,
made with Pillow alone.

The frames of a run's animation are exactly the gallery's: step 0 (the initial image SD sees), then one frame per step
actually taken, in the view asked for (the noisy latents, or the predicted final image x0); the last frame is the
run's output itself (what the last step decodes to), held before the animation loops. Each frame carries its step
number and timestep, small, in a corner. Frames are scaled to at most ``config.ANIMATION_MAX_SIDE`` a side (step
previews at 1/8 of the size are enlarged pixel for pixel, as the gallery shows them), so the file stays small;
``Animation`` says how large it is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from sd_img2img.config import (
    ANIMATION_FORMATS,
    ANIMATION_FRAME_MS,
    ANIMATION_HOLD_MS,
    ANIMATION_MAX_SIDE,
    ANIMATION_QUALITY,
    ANIMATION_SECONDS,
    VIEWS,
)
from sd_img2img.engine.result import GenerationResult
from sd_img2img.errors import check_choice

FORMAT_NAMES = {"webp": "WebP", "gif": "GIF"}


@dataclass(frozen=True)
class Animation:
    """An animation written to ``path``: its format, frames, frame size and file size."""

    path: Path
    format: str  # one of config.ANIMATION_FORMATS
    frames: int
    width: int
    height: int
    bytes: int
    durations: tuple[int, ...]  # milliseconds each frame shows (the last one held)

    def describe(self) -> str:
        """``WebP · 8 frames · 41 KB``."""
        size = f"{self.bytes / 1024:.0f} KB" if self.bytes < 1024**2 else f"{self.bytes / 1024**2:.1f} MB"
        size = f"{self.bytes} bytes" if self.bytes < 1024 else size
        return f"{FORMAT_NAMES[self.format]} · {self.frames} frame{'s' * (self.frames != 1)} · {size}"

    def info(self) -> dict:
        """JSON-ready: format, frames, size in pixels and in bytes."""
        return {
            "format": self.format,
            "frames": self.frames,
            "width": self.width,
            "height": self.height,
            "bytes": self.bytes,
        }


def frame_size(width: int, height: int, max_side: int = ANIMATION_MAX_SIDE) -> tuple[int, int]:
    """``width``×``height`` scaled down (never up) so its longest side is at most ``max_side``."""
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def frame_durations(count: int) -> list[int]:
    """Milliseconds per frame: the frames before the last share ``ANIMATION_SECONDS`` (each within
    ``ANIMATION_FRAME_MS``), the last is held ``ANIMATION_HOLD_MS``."""
    if count <= 1:
        return [ANIMATION_HOLD_MS] * count
    low, high = ANIMATION_FRAME_MS
    each = min(high, max(low, round(ANIMATION_SECONDS * 1000 / (count - 1))))
    return [each] * (count - 1) + [ANIMATION_HOLD_MS]


def labelled(image: Image.Image, text: str, size: tuple[int, int]) -> Image.Image:
    """``image`` at ``size`` (a smaller picture enlarged pixel for pixel, a larger one scaled down smoothly) with
    ``text`` drawn small on a dark band in its bottom-left corner."""
    if image.size != size:
        resample = Image.Resampling.NEAREST if image.width < size[0] else Image.Resampling.LANCZOS
        image = image.resize(size, resample)
    frame = image.convert("RGBA")
    overlay = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    points = max(9, round(min(size) / 24))
    while True:  # smaller type until the text fits the frame's width (or reaches 7 points)
        font = ImageFont.load_default(size=points)
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        if right - left <= size[0] - 4 * max(2, (bottom - top) // 4) or points <= 7:
            break
        points -= 1
    pad = max(2, (bottom - top) // 4)
    x, y = pad, size[1] - (bottom - top) - 3 * pad
    draw.rounded_rectangle(
        (x - pad, y - pad, x + right - left + pad, y + bottom - top + pad), radius=pad, fill=(0, 0, 0, 150)
    )
    draw.text((x - left, y - top), text, font=font, fill=(255, 255, 255, 255))
    return Image.alpha_composite(frame, overlay).convert("RGB")


def save_animation(
    images: list[Image.Image],
    labels: list[str],
    path: str | os.PathLike,
    format: str = "webp",
    max_side: int = ANIMATION_MAX_SIDE,
) -> Animation:
    """Write ``images`` (each with its label drawn in a corner) as one looping animation at ``path``.

    Args:
        images: the frames, first first; all are shown at the first one's aspect, the largest size among them
            scaled to at most ``max_side``.
        labels: one text per frame.
        path: where to write it.
        format: ``webp`` (animated WebP) or ``gif``.
        max_side: the frames' longest side at most.
    """
    check_choice("animation format", format, ANIMATION_FORMATS)
    if not images or len(images) != len(labels):
        raise ValueError(f"an animation needs one label per frame, got {len(images)} frames, {len(labels)} labels")
    biggest = max(images, key=lambda im: im.width * im.height)
    size = frame_size(*biggest.size, max_side=max_side)
    frames = [labelled(im, text, size) for im, text in zip(images, labels)]
    durations = frame_durations(len(frames))
    path = Path(path)
    # every WebP frame a key frame: libwebp's inter-frame coding otherwise drops the small changes of late steps, and
    # frames that should differ come out the same (kmax=1: +13% in size on a 10 × 0.7 run)
    webp = dict(quality=ANIMATION_QUALITY, method=2, kmin=0, kmax=1)  # method 2: half the time of 4, ≤ 5% larger
    options = webp if format == "webp" else dict(optimize=False, disposal=1)
    frames[0].save(
        path, format=format.upper(), save_all=True, append_images=frames[1:], duration=durations, loop=0, **options
    )
    return Animation(path, format, len(frames), size[0], size[1], path.stat().st_size, tuple(durations))


def step_labels(result: GenerationResult) -> list[str]:
    """Each frame's corner text: ``step 0 · start``, ``step 3/7 · t=701``, the last ``… · output``."""
    labels = []
    for frame in result.frames:
        text = "step 0 · start" if frame.index == 0 else f"step {frame.index}/{frame.total} · t={frame.timestep}"
        labels.append(text)
    if len(labels) > 1:
        labels[-1] += " · output"
    return labels


def step_animation(
    result: GenerationResult,
    path: str | os.PathLike,
    view: str = "latents",
    format: str = "webp",
    reference: Image.Image | None = None,
) -> Animation:
    """The run's steps as an animation at ``path``: the gallery's frames in ``view`` (``latents`` or ``x0``), the last
    one the output, held; an edit model's ``reference`` image (what it was given; its step 0 is pure noise) first."""
    check_choice("view", view, VIEWS)
    images, labels = result.step_images(view), step_labels(result)
    if len(images) > 1:
        images[-1] = result.output
    if reference is not None:
        images, labels = [reference, *images], ["your image · the reference", *labels]
        labels[1] = "step 0 · pure noise"
    return save_animation(images, labels, path, format)
