"""Fooocus' settings: the JSON its "fooocus" metadata scheme writes (in a PNG's ``parameters`` chunk, beside a
``fooocus_scheme`` chunk; in a JPEG's or WebP's EXIF UserComment, the scheme in MakerNote). With its "a1111" scheme
Fooocus writes AUTOMATIC1111's text instead, which ``a1111_text`` reads.

The JSON holds the prompt as typed (``prompt``) and as it ran (``full_prompt``: a list, the styles and the Fooocus V2
expansion applied), ``steps``, ``guidance_scale``, ``seed`` (as text; Fooocus' seeds reach 2⁶³ − 1), ``sampler`` and
``scheduler`` (ComfyUI's names), ``resolution`` (``"(1152, 896)"``), ``base_model``, ``loras`` and Fooocus' own
(sharpness, ADM guidance, refiner, …). The prompt read is the one that ran, joined by ", " as Fooocus' own
AUTOMATIC1111 text joins it. Fooocus records no img2img strength.
"""

from __future__ import annotations

import re
from typing import Any

from sd_img2img.formats.settings_reader import SettingsReader, Unreadable, listed, lora_note, shown

FOOOCUS_KEYS = ("parameters", "fooocus_scheme")
# keys only Fooocus' JSON has: a JSON object without any of them is not taken for Fooocus'
FOOOCUS_OWN = ("full_prompt", "performance", "base_model", "guidance_scale", "resolution", "sharpness", "styles")
FOOOCUS_USED = (
    "prompt",
    "negative_prompt",
    "full_prompt",
    "full_negative_prompt",
    "steps",
    "guidance_scale",
    "seed",
    "sampler",
    "scheduler",
    "resolution",
    "base_model",
    "base_model_hash",
    "loras",
)
FOOOCUS_QUIET = ("version", "metadata_scheme", "performance", "prompt_expansion", "created_by", "image_number")

_RESOLUTION = re.compile(r"""\(\s*'?(\d{1,6})'?\s*,\s*'?(\d{1,6})'?\s*\)""")


def from_fooocus(meta: dict[str, Any], scheme: str | None = None) -> SettingsReader:
    """Fooocus' settings from its JSON ``meta`` (``scheme``: its ``fooocus_scheme`` chunk or MakerNote, if any)."""
    if scheme != "fooocus" and not any(key in meta for key in FOOOCUS_OWN):
        keys = [shown(k, 30) for k in list(meta)[:20]]
        raise Unreadable(
            f"the settings text holds JSON that neither Fooocus nor SwarmUI writes (keys: {listed(keys) or 'none'}); "
            "not read"
        )
    r = SettingsReader("Fooocus")
    for name, key, label in (("prompt", "prompt", "prompt"), ("negative_prompt", "negative_prompt", "negative prompt")):
        typed, ran = meta.get(key), _joined(meta.get(f"full_{key}"))
        r.text(name, ran if ran is not None else typed, label)
        if ran is not None and isinstance(typed, str) and ran != typed and name in r.settings:
            r.note(f"the {label} read is the one Fooocus ran (its styles applied); as typed it was {shown(typed, 60)}")
    r.number("steps", meta.get("steps"), "steps")
    r.number("guidance_scale", meta.get("guidance_scale"), "guidance_scale")
    r.number("seed", meta.get("seed"), "seed")
    r.sampler(meta.get("sampler"), meta.get("scheduler"))
    size = _RESOLUTION.fullmatch(str(meta.get("resolution", "")).strip())
    if size:
        r.size(size.group(1), size.group(2), "resolution")
    elif "resolution" in meta:
        r.note(f"resolution {shown(meta['resolution'])} is not (WIDTH, HEIGHT); width and height left as they were")
    r.model(meta.get("base_model"), meta.get("base_model_hash"))
    r.note("no strength (Fooocus records none for img2img); strength left as it was")
    _fooocus_rest(r, meta)
    return r


def _joined(parts: Any) -> str | None:
    """Fooocus' ``full_prompt``: a list of texts, joined by ", " (None if it is not one)."""
    if isinstance(parts, list) and parts and all(isinstance(p, str) for p in parts):
        return ", ".join(p.strip() for p in parts if p.strip())
    return None


def _fooocus_rest(r: SettingsReader, meta: dict[str, Any]) -> None:
    """Notes for Fooocus' LoRAs and the settings that do not carry over."""
    loras = meta.get("loras")
    names = [lora[0] for lora in loras if isinstance(lora, list) and lora] if isinstance(loras, list) else []
    names += [str(v).split(" : ")[-2] for k, v in meta.items() if k.startswith("lora_combined_") and " : " in str(v)]
    lora_note(r, names)
    if meta.get("refiner_model") not in (None, "", "None"):
        r.note(f"the refiner {shown(meta['refiner_model'])} is not used here")
    quiet = FOOOCUS_USED + FOOOCUS_QUIET + (("styles",) if _joined(meta.get("full_prompt")) is not None else ())
    r.unused(
        [
            f"{k}: {shown(v, 40)}"
            for k, v in meta.items()
            if k not in quiet
            and not k.startswith("lora_combined_")
            and not k.startswith("refiner_")
            and v not in (None, "", "None", "Default (model)", [], {})
        ]
    )
