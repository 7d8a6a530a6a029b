"""AUTOMATIC1111's settings text (its PNGs' ``parameters`` chunk; in JPEG and WebP files the EXIF UserComment; in its
stealth PNG info the pixels' low bits), parsed the way AUTOMATIC1111 itself parses it.

sd-parsers splits the settings line at every comma, so a quoted value such as ``ADetailer prompt: "face, Seed: 9"``
replaces the seed; here a value in double quotes is a JSON string and keeps its commas. Seeds are read exactly: the
text's digits, never a float.
"""

from __future__ import annotations

import json
import re

from sd_img2img.config import MASKED_CONTENT
from sd_img2img.formats.settings_reader import (
    NotThisTool,
    SettingsReader,
    Unreadable,
    listed,
    looks_like_json_object,
    lora_note,
    shown,
)

A1111_KEYS = ("parameters",)
MAX_TEXT_SETTINGS_CHARS = 100_000  # settings as text (AUTOMATIC1111's, InvokeAI's Dream line): longer is not read

# AUTOMATIC1111 settings read into our fields, those with notes of their own, and those not worth a note
A1111_USED = ("Steps", "Sampler", "Schedule type", "CFG scale", "Seed", "Size", "Model", "Model hash")
A1111_NOTED = ("Denoising strength", "Clip skip", "Lora hashes")
A1111_QUIET = ("Steps taken", "Version", "Hashes", "VAE hash")
# AUTOMATIC1111's inpainting settings (its img2img tab pastes them by these names) → ours
A1111_MASK = ("Mask blur", "Mask mode", "Masked content", "Inpaint area", "Masked area padding", "Mask hash")

_A1111_FIELD = re.compile(r'\s*(\w[\w \-/]{0,63}):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)')
_A1111_SIZE = re.compile(r"^(\d{1,6})x(\d{1,6})$")
_LORA_TAG = re.compile(r"<lora:([^:>]{1,200})")


def parse_a1111_parameters(text: str) -> tuple[str, str, dict[str, str]]:
    """Split AUTOMATIC1111's ``parameters`` text into prompt, negative prompt and settings.

    The settings line is the last line with at least three ``key: value`` fields, ``Steps`` among them; values
    in double quotes are JSON strings and may hold commas. Lines after the settings line (some extensions
    write them) are dropped.

    Args:
        text: the ``parameters`` chunk's text.

    Returns:
        ``(prompt, negative_prompt, settings)``, the settings keyed by AUTOMATIC1111's names (``"CFG scale"``,
        ``"Size"``, …) with their values as text; empty if there is no settings line.
    """
    lines = text.strip().split("\n")
    settings: dict[str, str] = {}
    end = len(lines)
    for i in range(len(lines) - 1, -1, -1):
        found = _a1111_fields(lines[i]) if lines[i].count(":") >= 3 else {}
        if len(found) >= 3 and "Steps" in found:
            settings, end = found, i
            break
    prompt: list[str] = []
    negative: list[str] = []
    target = prompt
    for line in lines[:end]:
        line = line.strip()
        if target is prompt and line.startswith("Negative prompt:"):
            target, line = negative, line[len("Negative prompt:") :].strip()
        target.append(line)
    return "\n".join(prompt).strip(), "\n".join(negative).strip(), settings


def _a1111_fields(line: str) -> dict[str, str]:
    fields = {}
    for key, value in _A1111_FIELD.findall(line):
        if len(value) >= 2 and value[0] == value[-1] == '"':
            try:
                value = json.loads(value)
            except ValueError:
                value = value[1:-1]
        fields[key.strip()] = str(value).strip()
    return fields


def from_a1111(chunks: dict[str, str]) -> SettingsReader:
    """AUTOMATIC1111's settings from its ``parameters`` text (``NotThisTool`` for a JSON object, which Fooocus and
    SwarmUI write there, unless it ends with AUTOMATIC1111's settings line)."""
    text = chunks["parameters"]
    if looks_like_json_object(text) and "Steps:" not in text.rsplit("\n", 1)[-1]:
        raise NotThisTool("a JSON object, not AUTOMATIC1111's text")
    if len(text) > MAX_TEXT_SETTINGS_CHARS:
        raise Unreadable(
            f"the AUTOMATIC1111 text is {len(text):,} characters long, more than a prompt and its settings take "
            f"(at most {MAX_TEXT_SETTINGS_CHARS:,}); not read"
        )
    prompt, negative, fields = parse_a1111_parameters(text)
    r = SettingsReader("AUTOMATIC1111")
    r.text("prompt", prompt, "prompt")
    r.text("negative_prompt", negative, "negative prompt")
    if not fields:
        r.complete = False
        r.note("the AUTOMATIC1111 text has no settings line ('Steps: …, Sampler: …'); only the prompt was read")
        return r
    r.number("steps", fields.get("Steps"), "Steps")
    r.sampler(fields.get("Sampler"), fields.get("Schedule type"))
    r.number("guidance_scale", fields.get("CFG scale"), "CFG scale")
    r.number("seed", fields.get("Seed"), "Seed")
    size = _A1111_SIZE.match(fields.get("Size", ""))
    if size:
        r.size(size.group(1), size.group(2), "Size")
    elif "Size" in fields:
        r.note(f"Size {shown(fields['Size'])} is not WIDTHxHEIGHT; width and height left as they were")
    r.model(fields.get("Model"), fields.get("Model hash"))
    _a1111_rest(r, prompt, fields)
    return r


def _a1111_rest(r: SettingsReader, prompt: str, fields: dict[str, str]) -> None:
    """AUTOMATIC1111's strength (unless a hires fix owns it), and notes for what does not carry over."""
    hires = [f"{k}: {fields[k]}" for k in fields if k.startswith("Hires ")]
    if hires:
        r.note(
            f"hires fix settings ignored ({listed(hires)})"
            + (
                "; its Denoising strength belongs to the hires pass, so strength is left as it was"
                if "Denoising strength" in fields
                else ""
            )
        )
    elif "Denoising strength" in fields:
        r.number("strength", fields["Denoising strength"], "Denoising strength")
    else:
        r.note("no Denoising strength (a txt2img image); strength left as it was")
    if fields.get("Clip skip", "1") != "1":
        r.note(f"Clip skip: {fields['Clip skip']} is not supported (the text encoder's last layer is used)")
    lora_names = _LORA_TAG.findall(prompt)
    if not lora_names and fields.get("Lora hashes"):
        lora_names = [part.split(":")[0] for part in fields["Lora hashes"].split(",")]
    lora_note(r, lora_names)
    _a1111_mask(r, fields)
    r.unused(
        [
            f"{k}: {v if len(v) <= 40 else v[:39] + '…'}"
            for k, v in fields.items()
            if k not in A1111_USED + A1111_NOTED + A1111_QUIET + A1111_MASK and not k.startswith("Hires ")
        ]
    )


def _a1111_mask(r: SettingsReader, fields: dict[str, str]) -> None:
    """AUTOMATIC1111's inpainting settings: mask blur, inverted, masked content, only masked and its padding (the
    mask itself is not in a PNG: give it again)."""
    if "Mask blur" not in fields and "Masked content" not in fields:
        return
    r.number("mask_blur", fields.get("Mask blur"), "Mask blur")
    if "Mask mode" in fields:
        r.settings["invert_mask"] = fields["Mask mode"].strip().lower() == "inpaint not masked"
    content = fields.get("Masked content", "").strip().lower()
    if content in MASKED_CONTENT:
        r.settings["masked_content"] = content
    elif content:
        r.note(f"Masked content {shown(content)} is not one of {', '.join(MASKED_CONTENT)}; left as it was")
    if "Inpaint area" in fields:
        r.settings["inpaint_area"] = "masked" if fields["Inpaint area"].strip().lower() == "only masked" else "whole"
    r.number("padding", fields.get("Masked area padding"), "Masked area padding")
    r.note("the mask is not in a PNG: paint or upload it again")
