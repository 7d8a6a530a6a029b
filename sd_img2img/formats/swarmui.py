"""SwarmUI's settings: a JSON object whose ``sui_image_params`` holds each parameter by its id (in a PNG's
``parameters`` chunk; in a JPEG's or WebP's EXIF UserComment), as SwarmUI's "Image Metadata Format" documents it.

The ids read: ``prompt``, ``negativeprompt``, ``seed`` (SwarmUI's reach 2⁶³ − 1), ``steps``, ``cfgscale``, ``width``,
``height``, ``sampler`` and ``scheduler`` (ComfyUI's names), ``model``, and ``initimagecreativity`` (its img2img
strength, recorded when an init image was used). Values may be numbers or their text (``"7.0"``); lists may be JSON
lists or comma-separated text.
"""

from __future__ import annotations

from typing import Any

from sd_img2img.formats.settings_reader import SettingsReader, Unreadable, lora_note, shown

SWARMUI_USED = (
    "prompt",
    "negativeprompt",
    "seed",
    "steps",
    "cfgscale",
    "width",
    "height",
    "sampler",
    "scheduler",
    "model",
    "initimage",
    "initimagecreativity",
    "loras",
    "loraweights",
)
SWARMUI_QUIET = (
    "swarm_version",
    "date",
    "generation_time",
    "aspectratio",
    "automaticvae",
    "imageformat",
    "nopreviews",
    "wildcardseed",
    "original_prompt",
    "used_wildcards",
    "batchsize",
    "images",
)


def from_swarmui(meta: dict[str, Any]) -> SettingsReader:
    """SwarmUI's settings from its metadata object ``meta`` (which holds ``sui_image_params``)."""
    params = meta["sui_image_params"]
    if not isinstance(params, dict):
        raise Unreadable(f"the SwarmUI 'sui_image_params' is {type(params).__name__}, not an object; not read")
    r = SettingsReader("SwarmUI")
    r.text("prompt", params.get("prompt"), "prompt")
    r.text("negative_prompt", params.get("negativeprompt"), "negative prompt")
    r.number("steps", params.get("steps"), "steps")
    r.number("guidance_scale", params.get("cfgscale"), "cfgscale")
    r.number("seed", params.get("seed"), "seed")
    if "width" in params or "height" in params:
        r.size(params.get("width"), params.get("height"), "SwarmUI")
    r.sampler(params.get("sampler"), params.get("scheduler"))
    r.model(params.get("model"))
    if "initimagecreativity" in params:
        r.number("strength", params["initimagecreativity"], "initimagecreativity")
    else:
        r.note("no initimagecreativity (a txt2img image); strength left as it was")
    lora_note(r, _names(params.get("loras")))
    r.unused(
        [
            f"{k}: {shown(v, 40)}"
            for k, v in params.items()
            if k not in SWARMUI_USED + SWARMUI_QUIET and v not in (None, "", [], {})
        ]
    )
    return r


def _names(value: Any) -> list[str]:
    """A SwarmUI list: a JSON list, or comma-separated text."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",")]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
