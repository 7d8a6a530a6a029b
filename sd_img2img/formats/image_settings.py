"""Generation settings read from any tool's image: a PNG, JPEG or WebP written by this project, AUTOMATIC1111,
InvokeAI, ComfyUI, Fooocus, NovelAI or SwarmUI.

``read_image_settings`` returns the values in this project's field names (what ``GenerationRequest`` takes, plus
``model`` and ``model_hash`` as information), which tool wrote them, where in the file they were, and notes on what
did not carry over. It looks, in this order:

1. in the text chunks (a PNG's): this project's own JSON chunk (read exactly as ``metadata.read_settings`` reads it),
   then a ``parameters`` text (SwarmUI's or Fooocus' JSON, else AUTOMATIC1111's text), InvokeAI's metadata, NovelAI's
   ``Comment``, ComfyUI's ``prompt`` graph;
2. in the EXIF UserComment (a JPEG's or WebP's; ``exif_comment``): the same ``parameters`` readers;
3. in the pixels (``stealth_info``), only when neither gave a whole set of settings: AUTOMATIC1111's stealth PNG info
   (its text), or NovelAI's (its chunks as JSON).

Each tool's reader is a module of its own (``a1111_text``, ``invokeai``, ``novelai``, ``comfyui``, ``fooocus``,
``swarmui``) filling a ``settings_reader.SettingsReader``, which checks every value against the engine's limits.

Hostile files: texts longer than ``MAX_CHUNK_CHARS`` are skipped, JSON that does not decode (nesting too deep
included) or has the wrong shape is refused, graphs are walked with a visited set and a size cap, the EXIF comment
and the stealth data have size caps of their own, and the stealth search stops at the first columns when they hold
no signature. What is skipped is said in the notes; a file whose settings cannot be read raises ``UserInputError``
saying what was found and why it was not read, and only a file with none at all is said to carry none.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from sd_img2img.errors import UserInputError
from sd_img2img.formats.a1111_text import A1111_KEYS, from_a1111
from sd_img2img.formats.comfyui import COMFYUI_KEYS, from_comfyui
from sd_img2img.formats.exif_comment import exif_texts
from sd_img2img.formats.fooocus import FOOOCUS_KEYS, from_fooocus
from sd_img2img.formats.invokeai import INVOKEAI_KEYS, from_invokeai
from sd_img2img.formats.metadata import METADATA_KEY, opened_image, own_settings, request_kwargs, text_chunks
from sd_img2img.formats.novelai import NOVELAI_KEYS, from_novelai
from sd_img2img.formats.settings_reader import (
    MAX_CHUNK_CHARS,
    NotThisTool,
    SettingsReader,
    Unreadable,
    looks_like_json_object,
    parse_json,
    printable,
    valid_text,
)
from sd_img2img.formats.stealth_info import StealthUnreadable, not_searched, read_stealth_info
from sd_img2img.formats.swarmui import from_swarmui

KEYS = tuple(dict.fromkeys((METADATA_KEY, *A1111_KEYS, *FOOOCUS_KEYS, *INVOKEAI_KEYS, *NOVELAI_KEYS, *COMFYUI_KEYS)))
TOOLS = ("sd-img2img", "AUTOMATIC1111", "InvokeAI", "ComfyUI", "Fooocus", "NovelAI", "SwarmUI")
FORMAT_NAMES = {"PNG": "PNG", "JPEG": "JPEG", "WEBP": "WebP"}


@dataclass
class ImageSettings:
    """Generation settings read from an image.

    Args:
        tool: who wrote them: one of ``TOOLS``.
        settings: the values, in this project's field names; only those that were read and fit the engine's
            limits. ``model`` (and ``model_hash``) are information: this program runs the model it loaded.
            For this project's own PNGs, everything ``metadata.read_settings`` returns.
        notes: what did not carry over, for the user (empty when everything did).
        found_in: where in the file they were: ``the PNG text chunks``, ``the JPEG EXIF UserComment``, ``the
            stealth PNG info (stealth_pngcomp, in the alpha channel's low bits)``.
    """

    tool: str
    settings: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    found_in: str = "the PNG text chunks"

    @property
    def model(self) -> str | None:
        """The model the image was made with, as the tool names it (information only)."""
        model = self.settings.get("model")
        return model if isinstance(model, str) else None

    def request_kwargs(self) -> dict[str, Any]:
        """The ``GenerationRequest`` keyword arguments among the settings (the init image is not stored)."""
        return request_kwargs(self.settings)


@dataclass
class _Found:
    """Texts found in one place of the file, in the keys PNGs use, and notes on what was there but skipped."""

    found_in: str
    texts: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    in_chunks: bool = False  # the file's own text chunks (their notes name the chunk already)

    def add(self, key: str, text: str) -> None:
        """``text`` under ``key``, unless it is longer than any settings (then a note says so)."""
        if len(text) <= MAX_CHUNK_CHARS:
            self.texts[key] = text
            return
        where = f"the '{key}' text chunk is" if self.in_chunks else f"{self.found_in} is"
        self.notes.append(
            f"{where} {len(text):,} characters long, more than any settings take (at most {MAX_CHUNK_CHARS:,}); skipped"
        )


def read_image_settings(source: str | os.PathLike | Image.Image) -> ImageSettings:
    """The generation settings an image carries (a PNG, JPEG or WebP from this project, AUTOMATIC1111, InvokeAI,
    ComfyUI, Fooocus, NovelAI or SwarmUI).

    Raises ``UserInputError`` if ``source`` is not an image or carries no settings that can be read (the message
    says what was found and why it was not read).

    Args:
        source: a path or an open PIL image.
    """
    with opened_image(source) as (image, name):
        chunks = _found_in_chunks(image, name)
        if METADATA_KEY in chunks.texts:
            try:
                return _own(own_settings(chunks.texts[METADATA_KEY], name), chunks.notes)
            except UserInputError as e:
                chunks.notes.append(f"{e}; reading the other chunks instead")
        notes: list[str] = []
        partial: ImageSettings | None = None
        for found in _places(image, chunks):
            notes += found.notes
            settings, failures = _read(found)
            if settings is not None and not isinstance(settings, _Partial):
                return _settings(settings, notes)
            partial = partial or settings
            notes += failures
        if partial is not None:
            return _settings(partial, notes)
        if notes:
            raise UserInputError(f"no settings could be read from {name}: " + printable("; ".join(notes)))
        unsearched = not_searched(image)
        raise UserInputError(
            f"{name} carries no generation settings (looked for those of {', '.join(TOOLS[:-1])} and {TOOLS[-1]} "
            "in its text chunks, EXIF UserComment and stealth PNG info"
            + (f"; {unsearched}" if unsearched else "")
            + ")"
        )


def _settings(found: ImageSettings, notes: list[str]) -> ImageSettings:
    """``found`` with the notes from before it first, every note written so that a page can show it."""
    return ImageSettings(found.tool, found.settings, [printable(n) for n in notes + found.notes], found.found_in)


def _own(settings: dict[str, Any], notes: list[str]) -> ImageSettings:
    """This project's own settings, without a text that no page or PNG can carry (a hostile file's lone surrogate)."""
    invalid = [key for key, value in settings.items() if isinstance(value, str) and not valid_text(value)]
    notes += [f"the {printable(key)} is not valid text (it holds a lone UTF-16 surrogate); left out" for key in invalid]
    return ImageSettings("sd-img2img", {k: v for k, v in settings.items() if k not in invalid}, notes)


class _Partial(ImageSettings):
    """Settings of which only a prompt was read: another place in the file may hold them all."""


def _found_in_chunks(image: Image.Image, name: str) -> _Found:
    """The file's text chunks that a reader looks at."""
    found = _Found(f"the {FORMAT_NAMES.get(image.format or '', 'image')} text chunks", in_chunks=True)
    for key, text in text_chunks(image, name, KEYS).items():
        if key in KEYS:
            found.add(key, text)
    return found


def _places(image: Image.Image, chunks: _Found) -> Iterator[_Found]:
    """Where settings may be, in turn: the text chunks, the EXIF UserComment, the pixels (decoded only if reached)."""
    yield chunks
    texts, notes = exif_texts(image)
    if texts or notes:
        found = _Found(f"the {FORMAT_NAMES.get(image.format or '', 'image')} EXIF UserComment", notes=notes)
        for key, text in texts.items():
            found.add(key, text)
        yield found
    try:
        stealth = read_stealth_info(image)
    except StealthUnreadable as e:
        yield _Found("the stealth PNG info", notes=[str(e)])
        return
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        yield _Found("the pixels", notes=[f"its pixels could not be decoded to look for stealth PNG info ({e})"])
        return
    if stealth is not None:
        found = _Found(f"the {stealth.where}")
        for key, text in _stealth_texts(stealth.text).items():
            found.add(key, text)
        yield found


def _stealth_texts(text: str) -> dict[str, str]:
    """Stealth info's text as chunks: NovelAI's is a JSON object of its PNG chunks, AUTOMATIC1111's its settings text."""
    if looks_like_json_object(text):
        try:
            chunks = parse_json(text, "stealth PNG info")
        except Unreadable:
            chunks = {}
        if any(key in chunks for key in NOVELAI_KEYS):
            return {key: value if isinstance(value, str) else json.dumps(value) for key, value in chunks.items()}
    return {"parameters": text}


def _read(found: _Found) -> tuple[ImageSettings | None, list[str]]:
    """The first whole set of settings among ``found``'s texts (a ``_Partial`` if only a prompt was read), and what
    could not be read, each saying where it was found when that is not the text chunks."""
    failures: list[str] = []
    partial: ImageSettings | None = None
    for what, keys, parse in _PARSERS:
        texts = {k: found.texts[k] for k in keys if k in found.texts}
        if not texts:
            continue
        try:
            reader = parse(texts)
        except NotThisTool:
            continue
        except Unreadable as e:
            failures.append(str(e) if found.in_chunks else f"{found.found_in} holds {what}, but {e}")
            continue
        except Exception as e:  # a shape of data no reader expected: say so rather than fail the upload
            failures.append(f"the {what} could not be read ({type(e).__name__}: {e})")
            continue
        if not reader.settings:  # the tool's metadata is there, but no value in it fits
            failures += reader.notes or [f"the {what} holds no setting this program takes"]
            continue
        kind = ImageSettings if reader.complete else _Partial
        settings = kind(reader.tool, reader.settings, reader.notes, found.found_in)
        if reader.complete:
            return settings, failures
        partial = partial or settings
    return partial, failures


def _from_json_parameters(texts: dict[str, str]) -> SettingsReader:
    """A ``parameters`` text that is a JSON object: SwarmUI's (``sui_image_params``) or Fooocus'."""
    text = texts.get("parameters")
    if text is None or not looks_like_json_object(text):
        raise NotThisTool("no JSON settings text")
    meta = parse_json(text, "settings text (JSON, as Fooocus and SwarmUI write it)")
    if "sui_image_params" in meta:
        return from_swarmui(meta)
    return from_fooocus(meta, texts.get("fooocus_scheme"))


_PARSERS: tuple[tuple[str, tuple[str, ...], Callable[[dict[str, str]], SettingsReader]], ...] = (
    ("Fooocus or SwarmUI JSON", FOOOCUS_KEYS, _from_json_parameters),
    ("AUTOMATIC1111 text", A1111_KEYS, from_a1111),
    ("InvokeAI metadata", INVOKEAI_KEYS, from_invokeai),
    ("NovelAI metadata", NOVELAI_KEYS, from_novelai),
    ("a ComfyUI graph", COMFYUI_KEYS, from_comfyui),
)
