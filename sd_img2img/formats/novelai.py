"""NovelAI's settings: its PNGs' ``Software`` chunk says ``NovelAI``, ``Description`` holds the prompt and ``Comment``
a JSON object with ``prompt``, ``uc`` (the negative prompt), ``steps``, ``scale`` (guidance), ``seed``, ``sampler``
(``k_euler_ancestral``, …) and ``noise_schedule``, ``width``, ``height``, and for img2img (``request_type``
``Img2ImgRequest``) ``strength`` and ``noise``. NovelAI's V4 images add ``v4_prompt`` / ``v4_negative_prompt`` (a base
caption and per-character captions). NovelAI also hides the same chunks, as JSON, in the alpha channel's low bits
(``stealth_info``), which is where they are found once an image editor has dropped the text chunks.
"""

from __future__ import annotations

import json
from typing import Any

from sd_img2img.formats.settings_reader import NotThisTool, SettingsReader, parse_json, shown

NOVELAI_KEYS = ("Comment", "Description", "Software", "Source", "Title")
# keys only NovelAI's Comment has: a Comment JSON without the Software chunk is taken for NovelAI's when it has one
NOVELAI_OWN = ("uc", "noise_schedule", "request_type", "v4_prompt", "uncond_scale", "sm_dyn")
# NovelAI settings that change the picture and do not carry over, noted when set (to something not their default)
NOVELAI_UNUSED = {
    "cfg_rescale": 0,
    "uncond_scale": 1,
    "sm": False,
    "sm_dyn": False,
    "dynamic_thresholding": False,
    "skip_cfg_above_sigma": None,
    "skip_cfg_below_sigma": 0,
    "controlnet_model": None,
    "reference_image_multiple": [],
    "reference_information_extracted_multiple": [],
    "lora_unet_weights": None,
    "lora_clip_weights": None,
}


def from_novelai(chunks: dict[str, str]) -> SettingsReader:
    """NovelAI's settings from its chunks (``NotThisTool`` when neither ``Software`` nor ``Comment`` is NovelAI's)."""
    comment = _comment(chunks)
    r = SettingsReader("NovelAI")
    if comment is None:
        r.text("prompt", chunks.get("Description"), "prompt")
        r.complete = False
        read = "; only the prompt was read" if "prompt" in r.settings else ""
        r.note(f"the NovelAI image has no 'Comment' with its settings{read}")
        return r
    prompt = comment.get("prompt") or _caption(comment.get("v4_prompt")) or chunks.get("Description")
    r.text("prompt", prompt, "prompt")
    r.text("negative_prompt", comment.get("uc", _caption(comment.get("v4_negative_prompt"))), "negative prompt (uc)")
    r.number("steps", comment.get("steps"), "steps")
    r.number("guidance_scale", comment.get("scale"), "scale")
    r.number("seed", comment.get("seed"), "seed")
    r.sampler(comment.get("sampler"), comment.get("noise_schedule"))
    if "width" in comment or "height" in comment:
        r.size(comment.get("width"), comment.get("height"), "NovelAI")
    _strength(r, comment)
    _novelai_rest(r, comment)
    return r


def _comment(chunks: dict[str, str]) -> dict[str, Any] | None:
    """The Comment JSON when the image is NovelAI's (None: NovelAI's, without one); ``NotThisTool`` otherwise."""
    named = chunks.get("Software", "").strip() == "NovelAI"
    raw = chunks.get("Comment")
    if raw is None:
        if named:
            return None
        raise NotThisTool("no NovelAI Software or Comment chunk")
    try:
        comment = json.loads(raw)
    except (ValueError, RecursionError):
        comment = None
    if not named and not (isinstance(comment, dict) and any(key in comment for key in NOVELAI_OWN)):
        raise NotThisTool("a Comment that is not NovelAI's")
    return parse_json(raw, "NovelAI 'Comment'") if not isinstance(comment, dict) else comment


def _caption(prompt: Any) -> str | None:
    """A V4 prompt's base caption (``{"caption": {"base_caption": …, "char_captions": […]}}``)."""
    caption = prompt.get("caption") if isinstance(prompt, dict) else None
    text = caption.get("base_caption") if isinstance(caption, dict) else None
    return text if isinstance(text, str) else None


def _strength(r: SettingsReader, comment: dict[str, Any]) -> None:
    """An img2img image's strength (a txt2img image's Comment may carry the default one: it is not read)."""
    request_type = comment.get("request_type")
    if request_type not in (None, "Img2ImgRequest") or "strength" not in comment:
        r.note("not an img2img image (no Img2ImgRequest strength); strength left as it was")
        return
    r.number("strength", comment["strength"], "strength")
    noise = comment.get("noise")
    if isinstance(noise, (int, float)) and not isinstance(noise, bool) and noise > 0:
        r.note(f"noise {noise:g} (noise NovelAI adds to the image before img2img) is not supported here")


def _novelai_rest(r: SettingsReader, comment: dict[str, Any]) -> None:
    """Notes for V4's character prompts and the settings that change the picture and do not carry over."""
    for key, label in (("v4_prompt", "character prompts"), ("v4_negative_prompt", "character negative prompts")):
        caption = comment.get(key, {}).get("caption") if isinstance(comment.get(key), dict) else None
        characters = caption.get("char_captions") if isinstance(caption, dict) else None
        if isinstance(characters, list) and characters:
            r.note(f"{len(characters)} NovelAI {label} are not carried over (only the base caption is)")
    r.unused(
        [
            f"{key}: {shown(comment[key], 40)}"
            for key, default in NOVELAI_UNUSED.items()
            if key in comment and comment[key] != default and comment[key] not in (None, [], {})
        ]
    )
