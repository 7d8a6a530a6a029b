"""Where a click's initial image and mask come from: the Image tab (the upload), the Sketch tab (the drawing) or the
Inpaint tab (the image painted on: the brush strokes are the mask; or an uploaded black-and-white mask; or the image's
transparency). The click settles them once (``settle_source``) into what every run endpoint takes (``image``, ``mask``,
``mask_from_alpha``), so an API caller gives the same three and the page's tabs stay the page's.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image, ImageChops

from sd_img2img.plan.images import open_picture, to_rgba
from sd_img2img.ui.page import shown_to_user

# the page-only values a click reads to settle its source (its handler's parameters, declared in ui/endpoints.py)
SOURCE_CHOICES = ("source", "sketch", "inpaint", "mask_upload", "use_alpha")
PAINTED = 64  # a painted layer's pixels at least this opaque are the mask (the brush's soft edge below it is not)


@dataclass(frozen=True)
class Source:
    """A click's initial image and mask, as the run endpoints take them."""

    image: Any  # a path (or None: prompt2img)
    mask: Any = None  # a path, a PIL image (the plan line's painted strokes), or None
    mask_from_alpha: bool = False
    background: Any = None  # the Inpaint tab's picture, when it was the source (the Image tab follows it)


def painted_mask(editor: dict | None) -> Image.Image | None:
    """The strokes painted on the Inpaint tab's picture as a mask (white = redraw), at the canvas' size (the
    picture's); None when nothing is painted."""
    if not editor or not editor.get("layers"):
        return None
    strokes = None
    for layer in editor["layers"]:
        if not layer:
            continue
        with shown_to_user():
            alpha = to_rgba(open_picture(layer, None, "painted mask")).getchannel("A")
        opaque = alpha.point(lambda v: 255 if v >= PAINTED else 0)
        strokes = opaque if strokes is None else ImageChops.lighter(strokes, opaque)
    if strokes is None or strokes.getextrema()[1] == 0:
        return None
    return strokes


def settle_source(values: dict, save_to: Path | None = None) -> Source:
    """The click's source from the form's ``values`` (by field name: the page-only ``source``, ``sketch``,
    ``inpaint``, ``mask_upload``, ``use_alpha`` and the run's ``init_image``, ``mask``, ``mask_from_alpha``).

    The Sketch tab in use: its drawing is the image, no mask. The Inpaint tab: its picture (else the Image tab's) and
    the strokes painted on it (saved as a PNG into ``save_to``; kept as a picture without one), else the uploaded
    mask, else the picture's transparency when asked. Any other tab: the Image tab's image, no mask (an API call's
    ``mask`` and ``mask_from_alpha`` are its own: ``source`` is then the Image tab's).
    """
    source, image = values.get("source"), values.get("init_image")
    if source == "sketch":
        sketch = values.get("sketch")
        return Source(sketch["composite"] if sketch and sketch.get("composite") else image)
    if source != "inpaint":
        return Source(image)
    editor = values.get("inpaint") or {}
    background = editor.get("background") or None
    painted = painted_mask(editor)
    if painted is not None and save_to is not None:
        save_to.mkdir(parents=True, exist_ok=True)
        painted.save(save_to / "painted-mask.png")
        painted = str(save_to / "painted-mask.png")
    mask = painted if painted is not None else values.get("mask_upload") or None
    alpha = bool(values.get("use_alpha")) and mask is None
    return Source(background or image, mask, alpha, background)


def open_inpaint(image, editor: dict | None, fingerprint: str | None):
    """The Inpaint tab opened: it is the source in use, and the Image tab's picture goes under the brush, unless it
    is there already (then the strokes stay). Returns the source, the editor's value and its picture's fingerprint."""
    if not image:
        return "inpaint", gr.skip(), gr.skip()
    now = file_fingerprint(image)
    if editor and editor.get("background") and now == fingerprint:
        return "inpaint", gr.skip(), gr.skip()
    return "inpaint", {"background": image, "layers": [], "composite": image}, now


def painted_fingerprint(source: Source):
    """After a click from the Inpaint tab, its picture's fingerprint (the tab keeps its strokes while the Image tab
    shows the same picture); nothing changes after any other click."""
    if source.background is None:
        return gr.skip()
    return file_fingerprint(source.background)


def file_fingerprint(path) -> str | None:
    """A short hash of a file's bytes (None when it cannot be read)."""
    try:
        return hashlib.sha1(Path(path).read_bytes()).hexdigest()[:16]
    except OSError:
        return None
