"""Settings embedded in the PNGs this project writes, and read back to reproduce a run.

The settings go in a PNG text chunk ``sd-img2img`` as JSON. A second chunk, ``parameters``, holds the same
in AUTOMATIC1111's text layout, with AUTOMATIC1111's sampler names, the model's short name and (when the
settings carry one) its ``Model hash``, so AUTOMATIC1111's PNG Info, sd-parsers and image sites read them.
Reading the settings of any tool's image (PNG, JPEG, WebP) is ``image_settings.read_image_settings``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin, UnidentifiedImageError

from sd_img2img.config import MAX_INPUT_PIXELS
from sd_img2img.errors import UserInputError, file_name
from sd_img2img.formats.sampler_names import a1111_sampler
from sd_img2img.plan.request import RECORDED_FIELDS

METADATA_KEY = "sd-img2img"
CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")

# the settings a PNG records and a run takes back (``GenerationRequest``'s, declared once in ``plan/request.py``)
REQUEST_FIELDS = RECORDED_FIELDS


def short_model_name(model: str) -> str:
    """The name AUTOMATIC1111's ``Model:`` field would show: a hub id as it is, a path's last part.

    Args:
        model: a hub id (``owner/name``), a folder or a checkpoint file path.
    """
    model = str(model).strip().rstrip("/\\")
    is_path = model.startswith((".", "/", "~")) or "\\" in model or ":" in model or model.count("/") > 1
    name = model.replace("\\", "/").rsplit("/", 1)[-1] if is_path else model
    for suffix in CHECKPOINT_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def a1111_quote(value: Any) -> str:
    """A value as AUTOMATIC1111 writes it in its settings line: JSON-quoted if it holds ``,``, ``:`` or a newline."""
    text = str(value)
    return json.dumps(text, ensure_ascii=False) if any(c in text for c in ",:\n") else text


def a1111_parameters(settings: dict[str, Any]) -> str:
    """The settings in AUTOMATIC1111's ``parameters`` text layout.

    Args:
        settings: what ``GenerationResult.settings()`` returns, optionally with ``model_hash`` (10 hex digits,
            see ``model_hash.model_hash``). Settings that are missing or ``None`` are left out.
    """
    lines = [settings.get("prompt") or ""]
    if settings.get("loras"):  # as AUTOMATIC1111 writes LoRAs: tags in the prompt (its paste applies them)
        from sd_img2img.models.loras import a1111_tags

        lines[0] = f"{lines[0]} {a1111_tags(settings['loras'])}".strip()
    if settings.get("negative_prompt"):
        lines.append(f"Negative prompt: {settings['negative_prompt']}")
    sampler, schedule = a1111_sampler(settings["sampler"]) if settings.get("sampler") else (None, None)
    width, height = settings.get("width"), settings.get("height")
    fields = {
        "Steps": settings.get("steps"),
        "Sampler": sampler,
        "Schedule type": schedule,
        "CFG scale": settings.get("guidance_scale"),
        "Seed": settings.get("seed"),
        "Size": f"{width}x{height}" if width and height else None,
        "Model hash": settings.get("model_hash"),
        "Model": short_model_name(settings["model"]) if settings.get("model") else None,
        "Denoising strength": settings.get("strength"),
        "Steps taken": settings.get("steps_taken"),
        **mask_fields(settings),
        **series_fields(settings),
    }
    lines.append(", ".join(f"{key}: {a1111_quote(value)}" for key, value in fields.items() if value is not None))
    return "\n".join(lines)


def mask_fields(settings: dict[str, Any]) -> dict[str, Any]:
    """An inpainting run's mask settings (``plan.mask.InpaintMask.records``) under the names AUTOMATIC1111's img2img
    tab pastes them by (``Mask blur``, ``Mask mode``, ``Masked content``, ``Inpaint area``, ``Masked area padding``),
    and the mask's hash; nothing for any other run."""
    if not settings.get("mask_hash"):
        return {}
    masked = settings.get("inpaint_area") == "masked"
    return {
        "Mask blur": settings.get("mask_blur"),
        "Mask mode": "Inpaint not masked" if settings.get("invert_mask") else None,
        "Masked content": settings.get("masked_content"),
        "Inpaint area": "Only masked" if masked else None,
        "Masked area padding": settings.get("padding") if masked else None,
        "Mask hash": settings.get("mask_hash"),
    }


def series_fields(settings: dict[str, Any]) -> dict[str, Any]:
    """Where a loop of a loopback or a cell of a grid sits in its series (``settings["loopback"]`` /
    ``settings["grid"]``, as ``series.loopback.LoopPlan.records`` and ``series.grid.cell_records`` write them), in
    AUTOMATIC1111's words where it has them (its loopback script's ``Final denoising strength``, ``Denoising curve``)."""
    fields: dict[str, Any] = {}
    loop = settings.get("loopback")
    if isinstance(loop, dict):
        fields["Loopback"] = f"loop {loop.get('loop')} of {loop.get('loops')}"
        fields["Final denoising strength"] = loop.get("final_strength")
        fields["Denoising curve"] = str(loop.get("curve", "")).capitalize() or None
        fields["Color correction"] = "histogram" if loop.get("colour_match") else None
    cell = settings.get("grid")
    if isinstance(cell, dict):
        rows, columns = cell.get("cells") or (None, None)
        fields["Grid cell"] = (
            f"row {cell.get('row')} of {rows} ({cell.get('rows')}), column {cell.get('column')} of {columns} ({cell.get('columns')})"
        )
    return fields


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


def png_text(
    source: str | os.PathLike | Image.Image, keys: tuple[str, ...] | None = None
) -> tuple[dict[str, str], str]:
    """An image's text chunks, and how to name the image in messages (``opened_image`` and ``text_chunks``).

    Args:
        source: a path or an open PIL image.
        keys: the chunks wanted; ``None``: any.
    """
    with opened_image(source) as (image, name):
        return text_chunks(image, name, keys), name


@contextmanager
def opened_image(source: str | os.PathLike | Image.Image) -> Iterator[tuple[Image.Image, str]]:
    """The image at ``source`` opened (its header read, no pixel decoded), and how to name it in messages; closed
    afterwards unless it was given open. Raises ``UserInputError`` if ``source`` is missing, not an image, or has more
    text than Pillow unpacks (``text_too_large``).

    Args:
        source: a path or an open PIL image.
    """
    if isinstance(source, Image.Image):
        yield source, "the image"
        return
    name = file_name(source)
    try:
        image = Image.open(source)
    except FileNotFoundError:
        raise UserInputError(f"'{source}' does not exist") from None
    except (UnidentifiedImageError, OSError):
        raise UserInputError(f"{name} is not an image") from None
    except ValueError as e:  # Pillow's limits on text chunks
        raise UserInputError(text_too_large(name, e) or f"{name} cannot be read: {e}") from None
    try:
        yield image, name
    finally:
        image.close()


def text_chunks(image: Image.Image, name: str, keys: tuple[str, ...] | None = None) -> dict[str, str]:
    """An open image's text chunks.

    Chunks before the pixel data come from the header alone. Chunks after it (rare) are read by decoding the
    image, so only when none of ``keys`` was in the header and the image is small enough (at most
    ``config.MAX_INPUT_PIXELS``). Raises ``UserInputError`` if it has more text than Pillow unpacks.

    Args:
        image: an open image.
        name: how to name it in messages.
        keys: the chunks wanted; ``None``: any.
    """
    text = {k: v for k, v in image.info.items() if isinstance(k, str) and isinstance(v, str)}
    in_header = keys is not None and any(key in text for key in keys)
    small = image.width * image.height <= MAX_INPUT_PIXELS
    if not in_header and small and isinstance(image, PngImagePlugin.PngImageFile):
        try:
            text = {**image.text, **text}  # loads the image, for chunks after the pixel data
        except ValueError as e:
            if too_large := text_too_large(name, e):
                raise UserInputError(too_large) from None
        except (OSError, SyntaxError, Image.DecompressionBombError):
            pass
    return text


def text_too_large(name: str, error: ValueError) -> str | None:
    """What to tell someone whose PNG has more text than Pillow unpacks (its ``MAX_TEXT_CHUNK`` for one compressed
    chunk, ``MAX_TEXT_MEMORY`` for all of them, guards against decompression bombs); None for another error.

    Pillow then refuses the whole file, pixels too, so the picture cannot be an init image either (``images.open_image``
    says it cannot be decoded).

    Args:
        name: how to name the image.
        error: what Pillow raised.
    """
    if "MAX_TEXT_CHUNK" in str(error):
        limit = f"a compressed text chunk unpacks to more than {PngImagePlugin.MAX_TEXT_CHUNK / 2**20:g} MB"
    elif "MAX_TEXT_MEMORY" in str(error):
        limit = f"its text chunks hold more than {PngImagePlugin.MAX_TEXT_MEMORY / 2**20:g} MB in all"
    else:
        return None
    return (
        f"{name} carries embedded text too large to read ({limit}, the most Pillow reads): its settings cannot be "
        "read, and the picture cannot be opened as an init image either; re-save it without its metadata (an "
        "image editor's export without metadata does) to use it"
    )


def read_settings(source: str | os.PathLike | Image.Image) -> dict[str, Any]:
    """The settings a PNG written by this project carries.

    Raises ``UserInputError`` if the file is not such a PNG.

    Args:
        source: a path or an open PIL image.
    """
    text, name = png_text(source, (METADATA_KEY,))
    return own_settings(text.get(METADATA_KEY), name)


def own_settings(raw: str | None, name: str = "the image") -> dict[str, Any]:
    """This project's settings from the text of its ``sd-img2img`` chunk; ``UserInputError`` if missing or damaged.

    Args:
        raw: the chunk's text (``None`` if the image has no such chunk).
        name: how to name the image in messages.
    """
    if not raw:
        raise UserInputError(f"{name} carries no sd-img2img settings (only PNGs this program wrote do)")
    try:
        settings = json.loads(raw)
    except (ValueError, RecursionError):
        raise UserInputError(f"the sd-img2img settings in {name} are damaged") from None
    if not isinstance(settings, dict):
        raise UserInputError(f"the sd-img2img settings in {name} are damaged")
    return settings


def request_kwargs(settings: dict[str, Any]) -> dict[str, Any]:
    """The ``GenerationRequest`` keyword arguments stored in ``settings`` (the init image is not stored)."""
    return {k: settings[k] for k in REQUEST_FIELDS if k in settings and settings[k] is not None}
