"""InvokeAI's settings in its three layouts: the ``invokeai_metadata`` JSON of 3.x and later, the older
``sd-metadata`` JSON and the ``Dream`` command line.

sd-parsers reads them right, so it parses them here. Added: the model name of InvokeAI 4+ (``model.name``; sd-parsers
looks only for 3.x's ``model_name``), and a guard, as sd-parsers raises ``TypeError``/``AttributeError`` on JSON of the
wrong shape, and its Dream patterns backtrack for ages over long runs of whitespace.
"""

from __future__ import annotations

import json
from typing import Any

from sd_img2img.formats.a1111_text import MAX_TEXT_SETTINGS_CHARS
from sd_img2img.formats.settings_reader import SettingsReader, Unreadable, lora_note

INVOKEAI_KEYS = ("invokeai_metadata", "sd-metadata", "Dream")
# InvokeAI settings that do not carry over, noted when set
INVOKEAI_UNUSED = (
    "seamless",
    "seamless_x",
    "seamless_y",
    "cfg_rescale_multiplier",
    "controlnets",
    "ipAdapters",
    "t2iAdapters",
    "variations",
    "vae",
)


def from_invokeai(chunks: dict[str, str]) -> SettingsReader:
    try:
        from sd_parsers.parsers import InvokeAIParser
    except ImportError:
        raise Unreadable("reading InvokeAI metadata needs the sd-parsers package (pip install sd-parsers)") from None
    chunks = dict(chunks)
    if "Dream" in chunks:
        if len(chunks["Dream"]) > MAX_TEXT_SETTINGS_CHARS:
            raise Unreadable(
                f"the InvokeAI 'Dream' text is {len(chunks['Dream']):,} characters long, more than a "
                f"prompt and its settings take (at most {MAX_TEXT_SETTINGS_CHARS:,}); not read"
            )
        # one space between words: sd-parsers' Dream patterns backtrack for ages over long runs of whitespace
        chunks["Dream"] = " ".join(chunks["Dream"].split())
    try:
        info = InvokeAIParser().parse(chunks)
    except Exception as e:  # ParserError, or TypeError/AttributeError on JSON of the wrong shape
        raise Unreadable(f"the InvokeAI metadata could not be read ({e or type(e).__name__})") from None
    if not info.samplers:
        raise Unreadable("the InvokeAI metadata names no sampler settings")
    r = SettingsReader("InvokeAI")
    sampler = info.samplers[0]
    params, meta = sampler.parameters, info.metadata
    r.text("prompt", info.full_prompt, "prompt")
    r.text("negative_prompt", info.full_negative_prompt, "negative prompt")
    r.number("steps", params.get("steps"), "steps")
    r.sampler(sampler.name)
    r.number("guidance_scale", params.get("cfg_scale"), "cfg_scale")
    r.number("seed", params.get("seed"), "seed")
    if "width" in meta or "height" in meta:
        r.size(meta.get("width"), meta.get("height"), "InvokeAI")
    strength = meta.get("strength", meta.get("f"))  # "f": the strength option of the Dream command line
    if strength is not None:
        r.number("strength", strength, "strength")
    else:
        r.note("no strength (a txt2img image); strength left as it was")
    model = sampler.model
    r.model(
        model.name if model else _invokeai_model_name(chunks.get("invokeai_metadata")), model.hash if model else None
    )
    _invokeai_notes(r, meta)
    return r


def _invokeai_model_name(raw: str | None) -> Any:
    """InvokeAI 4+: ``{"model": {"name": …, "key": …, "hash": …}}`` (sd-parsers reads 3.x's ``model_name`` only)."""
    if not raw:
        return None
    try:
        model = json.loads(raw).get("model")
    except (ValueError, RecursionError, AttributeError):
        return None
    return model.get("name") if isinstance(model, dict) else None


def _invokeai_notes(r: SettingsReader, meta: dict[str, Any]) -> None:
    loras = meta.get("loras")
    if isinstance(loras, list) and loras:
        names = []
        for lora in loras:
            inner = lora.get("lora", lora.get("model")) if isinstance(lora, dict) else None
            name = (inner.get("name") or inner.get("model_name")) if isinstance(inner, dict) else None
            names.append(name if isinstance(name, str) else "(unnamed)")
        lora_note(r, names)
    if meta.get("hrf_enabled") is True or meta.get("hires_fix") is True:
        r.note("hires fix settings ignored")
    clip_skip = meta.get("clip_skip")
    if isinstance(clip_skip, (int, float)) and not isinstance(clip_skip, bool) and clip_skip > 0:
        r.note(f"clip_skip {clip_skip} is not supported (the text encoder's last layer is used)")
    r.unused([key for key in INVOKEAI_UNUSED if meta.get(key) not in (None, False, 0, [], {}, "")])
