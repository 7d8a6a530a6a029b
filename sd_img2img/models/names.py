"""What a visitor sees a model called: its display name, never a path on the server.

    display_name("stabilityai/sd-turbo")                    # "stabilityai/sd-turbo" (a hub id, as it is)
    display_name("/srv/models/dreamshaper_8.safetensors")   # "dreamshaper_8"
    display_name("/tmp/ckpt/tiny-sd15")                     # "tiny-sd15"
    display_name("/home/me/.cache/sd-img2img/random/model") # "random" (the offline demo's, by the name it was asked by)

The page's model picker, the API's ``model`` default and choices, the run info, the PNG's settings and its
AUTOMATIC1111 ``Model:`` all show this name; what is loaded stays the source (``ModelSet.sources``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from sd_img2img.config import RANDOM_MODELS

WEIGHT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")


def looks_like_path(model: str) -> bool:
    """``model`` names a file or folder rather than a hub id (``owner/name``)."""
    if model.startswith((".", "/", "~", "\\")) or "\\" in model or ":" in model:
        return True
    return model.count("/") > 1 or model.lower().endswith(WEIGHT_SUFFIXES) or Path(model).exists()


def display_name(model: str) -> str:
    """The name visitors see for ``model`` (a hub id, a folder, a single file or a ``random*`` name).

    Args:
        model: what is loaded: a hub id stays as it is, a folder is shown by its own name, a single file by its name
            without the suffix, and the offline demo's checkpoint (``<cache>/random-sdxl/model``) by its ``random*``
            name.
    """
    model = str(model).strip()
    if model in RANDOM_MODELS or not looks_like_path(model):
        return model
    path = Path(model.replace("\\", "/").rstrip("/")).expanduser()
    if path.name == "model" and path.parent.name in RANDOM_MODELS:
        return path.parent.name
    return path.stem if path.suffix.lower() in WEIGHT_SUFFIXES else path.name or model


def display_names(sources: Iterable[str]) -> dict[str, str]:
    """Each source under its display name, in order (``{name: source}``, what ``ModelSet`` takes); two sources of
    the same name get ``-2``, ``-3`` … after the later ones' (a source listed twice is served once)."""
    named: dict[str, str] = {}
    for source in dict.fromkeys(sources):
        name, n = display_name(source), 1
        while name in named:
            n += 1
            name = f"{display_name(source)}-{n}"
        named[name] = source
    return named
