"""Settings embedded in the PNGs this project writes, and read back to reproduce a run.

The settings go in a PNG text chunk ``sd-img2img`` as JSON. A second chunk, ``parameters``, holds the same
in AUTOMATIC1111's text layout so other tools' "PNG info" readers show them too.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin, UnidentifiedImageError

from .errors import UserInputError

METADATA_KEY = "sd-img2img"

# fields of GenerationRequest that a PNG's settings fill in
REQUEST_FIELDS = ("prompt", "negative_prompt", "strength", "steps", "real_steps", "seed", "sampler",
                  "guidance_scale", "width", "height", "resize_mode")


def a1111_parameters(settings: dict[str, Any]) -> str:
    """The settings in AUTOMATIC1111's ``parameters`` text layout."""
    lines = [settings.get("prompt", "")]
    if settings.get("negative_prompt"):
        lines.append(f"Negative prompt: {settings['negative_prompt']}")
    parts = [f"Steps: {settings.get('steps')}", f"Sampler: {settings.get('sampler')}",
             f"CFG scale: {settings.get('guidance_scale')}", f"Seed: {settings.get('seed')}",
             f"Size: {settings.get('width')}x{settings.get('height')}", f"Model: {settings.get('model')}"]
    if settings.get("strength") is not None:
        parts.append(f"Denoising strength: {settings['strength']}")
    parts.append(f"Steps taken: {settings.get('steps_taken')}")
    lines.append(", ".join(parts))
    return "\n".join(lines)


def png_info(settings: dict[str, Any]) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    info.add_itxt(METADATA_KEY, json.dumps(settings, ensure_ascii=False))
    info.add_itxt("parameters", a1111_parameters(settings))
    return info


def save_png(image: Image.Image, path: str | os.PathLike, settings: dict[str, Any]) -> Path:
    """Write ``image`` as a PNG at ``path`` with ``settings`` embedded."""
    path = Path(path)
    image.save(path, format="PNG", pnginfo=png_info(settings))
    return path


def read_settings(source: str | os.PathLike | Image.Image) -> dict[str, Any]:
    """The settings a PNG written by this project carries.

    Raises ``UserInputError`` if the file is not such a PNG.
    """
    if isinstance(source, Image.Image):
        image = source
        name = "the image"
    else:
        name = f"'{source}'"
        try:
            image = Image.open(source)
        except FileNotFoundError:
            raise UserInputError(f"{name} does not exist") from None
        except (UnidentifiedImageError, OSError):
            raise UserInputError(f"{name} is not an image") from None
    text = getattr(image, "text", None) or image.info
    raw = text.get(METADATA_KEY) if isinstance(text, dict) else None
    if not raw:
        raise UserInputError(f"{name} carries no sd-img2img settings (only PNGs this program wrote do)")
    try:
        settings = json.loads(raw)
    except ValueError:
        raise UserInputError(f"the sd-img2img settings in {name} are damaged") from None
    if not isinstance(settings, dict):
        raise UserInputError(f"the sd-img2img settings in {name} are damaged")
    return settings


def request_kwargs(settings: dict[str, Any]) -> dict[str, Any]:
    """The ``GenerationRequest`` keyword arguments stored in ``settings`` (the init image is not stored)."""
    return {k: settings[k] for k in REQUEST_FIELDS if k in settings and settings[k] is not None}
