"""Generation settings read from any tool's PNG: this project's, AUTOMATIC1111's, InvokeAI's or ComfyUI's.

``read_png_settings`` returns the values in this project's field names (what ``GenerationRequest`` takes, plus
``model`` and ``model_hash`` as information), which tool wrote them, and notes on what did not carry over. It
looks, in this order, for this project's own JSON chunk (read exactly as ``metadata.read_settings`` reads it),
AUTOMATIC1111's ``parameters`` text, InvokeAI's metadata, and ComfyUI's ``prompt`` graph.

Who parses what:

* InvokeAI's three layouts (the ``invokeai_metadata`` JSON of 3.x and later, the older ``sd-metadata`` JSON
  and the ``Dream`` command line) go through sd-parsers, which reads them right. Added here: the model name of
  InvokeAI 4+ (``model.name``; sd-parsers looks only for 3.x's ``model_name``), and a guard, as sd-parsers
  raises ``TypeError``/``AttributeError`` on JSON of the wrong shape.
* AUTOMATIC1111's text is parsed here, the way AUTOMATIC1111 itself parses it: sd-parsers splits the settings
  line at every comma, so a quoted value such as ``ADetailer prompt: "face, Seed: 9"`` replaces the seed.
* ComfyUI's graph is walked here: sd-parsers reads it only when the ``workflow`` chunk is there as well (images
  queued through ComfyUI's API carry only ``prompt``), and it does not tie the image size to the sampler.

Hostile files: chunks longer than ``MAX_CHUNK_CHARS`` are skipped, JSON that does not decode or has the wrong
shape is refused, graphs are walked breadth first with a visited set (cycles end) and a size cap, and every
value is checked against the engine's limits before it is used. What is skipped is said in the notes; a file
with nothing readable raises ``UserInputError``.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from sd_img2img.config import MASKED_CONTENT, MAX_DIMENSION, MAX_PROMPT_CHARS, MIN_DIMENSION
from sd_img2img.errors import UserInputError
from sd_img2img.formats.metadata import METADATA_KEY, own_settings, png_text, request_kwargs, short_model_name
from sd_img2img.formats.sampler_names import our_sampler
from sd_img2img.plan.request import RANGES

MAX_CHUNK_CHARS = 1_000_000  # longer text chunks are skipped (Pillow refuses compressed ones past 1 MB anyway)
MAX_TEXT_SETTINGS_CHARS = 100_000  # settings as text (AUTOMATIC1111's, InvokeAI's Dream line): longer is not read
MAX_GRAPH_NODES = 5000  # ComfyUI graphs with more nodes are refused
MAX_GRAPH_SAMPLERS = 16  # sampler nodes looked at in one ComfyUI graph (the first ones by node id)
MAX_NOTE_ITEMS = 8  # a note lists at most this many settings, then says how many more

A1111_KEYS = ("parameters",)
INVOKEAI_KEYS = ("invokeai_metadata", "sd-metadata", "Dream")
COMFYUI_KEYS = ("prompt", "workflow")

# AUTOMATIC1111 settings read into our fields, those with notes of their own, and those not worth a note
A1111_USED = ("Steps", "Sampler", "Schedule type", "CFG scale", "Seed", "Size", "Model", "Model hash")
A1111_NOTED = ("Denoising strength", "Clip skip", "Lora hashes")
A1111_QUIET = ("Steps taken", "Version", "Hashes", "VAE hash")
# AUTOMATIC1111's inpainting settings (its img2img tab pastes them by these names) → ours
A1111_MASK = ("Mask blur", "Mask mode", "Masked content", "Inpaint area", "Masked area padding", "Mask hash")
COMFYUI_SAMPLERS = ("KSampler", "KSamplerAdvanced")
COMFYUI_TEXT_INPUTS = ("text", "text_g", "string", "value")  # where a prompt's text sits on a node
COMFYUI_SKIPPED_LINKS = ("clip",)  # inputs not followed when looking for a prompt's text

_A1111_FIELD = re.compile(r'\s*(\w[\w \-/]{0,63}):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)')
_A1111_SIZE = re.compile(r"^(\d{1,6})x(\d{1,6})$")
_LORA_TAG = re.compile(r"<lora:([^:>]{1,200})")


@dataclass
class PngSettings:
    """Generation settings read from a PNG.

    Args:
        tool: who wrote them: ``"sd-img2img"``, ``"AUTOMATIC1111"``, ``"InvokeAI"`` or ``"ComfyUI"``.
        settings: the values, in this project's field names; only those that were read and fit the engine's
            limits. ``model`` (and ``model_hash``) are information: this program runs the model it loaded.
            For this project's own PNGs, everything ``metadata.read_settings`` returns.
        notes: what did not carry over, for the user (empty when everything did).
    """

    tool: str
    settings: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    @property
    def model(self) -> str | None:
        """The model the image was made with, as the tool names it (information only)."""
        model = self.settings.get("model")
        return model if isinstance(model, str) else None

    def request_kwargs(self) -> dict[str, Any]:
        """The ``GenerationRequest`` keyword arguments among the settings (the init image is not stored)."""
        return request_kwargs(self.settings)


def read_png_settings(source: str | os.PathLike | Image.Image) -> PngSettings:
    """The generation settings a PNG carries, from this project or AUTOMATIC1111, InvokeAI or ComfyUI.

    Raises ``UserInputError`` if ``source`` is not an image or carries no settings that can be read (the
    message says what was found and why it was not read).

    Args:
        source: a path or an open PIL image.
    """
    keys = (METADATA_KEY, *A1111_KEYS, *INVOKEAI_KEYS, *COMFYUI_KEYS)
    text, name = png_text(source, keys)
    notes: list[str] = []
    chunks: dict[str, str] = {}
    for key in keys:
        if key not in text:
            continue
        if len(text[key]) > MAX_CHUNK_CHARS:
            notes.append(
                f"the '{key}' text chunk is {len(text[key]):,} characters long, more than any settings "
                f"take (at most {MAX_CHUNK_CHARS:,}); skipped"
            )
        else:
            chunks[key] = text[key]
    if METADATA_KEY in chunks:
        try:
            return PngSettings("sd-img2img", own_settings(chunks[METADATA_KEY], name), notes)
        except UserInputError as e:
            notes.append(f"{e}; reading the other chunks instead")

    partial: tuple[str, _Reader] | None = None
    for tool, keys, parse in _PARSERS:
        found = {k: chunks[k] for k in keys if k in chunks}
        if not found:
            continue
        try:
            reader = parse(found)
        except _Unreadable as e:
            notes.append(str(e))
            continue
        except Exception as e:  # a shape of data no parser expected: say so rather than fail the upload
            notes.append(f"the {tool} metadata could not be read ({type(e).__name__}: {e})")
            continue
        if reader.complete:
            return PngSettings(tool, reader.settings, notes + reader.notes)
        partial = partial or (tool, reader)
    if partial is not None:
        tool, reader = partial
        return PngSettings(tool, reader.settings, notes + reader.notes)
    if notes:
        raise UserInputError(f"no settings could be read from {name}: " + "; ".join(notes))
    raise UserInputError(
        f"{name} carries no generation settings (looked for those of sd-img2img, AUTOMATIC1111, InvokeAI and ComfyUI)"
    )


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


class _Unreadable(Exception):
    """A tool's metadata is there but cannot be read; the message says why."""


class _Reader:
    """Collects one tool's values in our field names, checked against the engine's limits, and the notes."""

    def __init__(self, tool: str):
        self.tool = tool
        self.settings: dict[str, Any] = {}
        self.notes: list[str] = []
        self.complete = True  # False: only a prompt was found; another tool's chunk may say more

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def text(self, name: str, value: Any, label: str) -> None:
        if value is None:
            return
        if not isinstance(value, str):
            self.note(f"the {label} is not text; left as it was")
            return
        if len(value) > MAX_PROMPT_CHARS:
            self.note(
                f"the {label} is {len(value):,} characters, more than the {MAX_PROMPT_CHARS:,} this program takes; "
                "left as it was"
            )
            return
        self.settings[name] = value

    def number(self, name: str, value: Any, label: str) -> None:
        """``value`` for the setting ``name`` if it is in the setting's range (``plan.request.RANGES``), else a note."""
        if value is None or value == "":
            return
        limits = RANGES[name]
        number = _to_number(value)
        if number is None or (limits.whole and number != int(number)):
            kind = "a whole number" if limits.whole else "a number"
            self.note(f"{label} {_shown(value)} is not {kind}; {name} left as it was")
            return
        if number not in limits:
            bound = f"above {limits.low:g}" if limits.above_low else f"from {limits.low:g}"
            self.note(
                f"{label} {_shown(value)} is outside this program's range ({bound} to {limits.high:g}); "
                f"{name} left as it was"
            )
            return
        self.settings[name] = int(number) if limits.whole else number

    def size(self, width: Any, height: Any, label: str) -> None:
        for name, value in (("width", width), ("height", height)):
            number = _to_number(value)
            if number is None or number != int(number):
                self.note(f"{label} {name} {_shown(value)} is not a whole number; {name} left as it was")
                continue
            if number not in RANGES[name]:
                self.note(
                    f"{label} {name} {int(number)} is outside {MIN_DIMENSION} to {MAX_DIMENSION} pixels; "
                    f"{name} left as it was"
                )
                continue
            rounded = max(MIN_DIMENSION, round(number / 8) * 8)
            if rounded != number:
                self.note(f"{label} {name} {int(number)} is not a multiple of 8; set to {rounded}")
            self.settings[name] = rounded

    def sampler(self, name: Any, schedule: Any = None) -> None:
        if name is None or name == "":
            return
        if not isinstance(name, str) or not (schedule is None or isinstance(schedule, str)):
            self.note(f"the {self.tool} sampler {_shown(name)} is not a name; the sampler is left as it was")
            return
        ours, notes = our_sampler(self.tool, name[:200], schedule[:200] if schedule else None)
        for text in notes:
            self.note(text)
        if ours is not None:
            self.settings["sampler"] = ours

    def model(self, name: Any, model_hash: Any = None) -> None:
        if isinstance(name, str) and name.strip():
            self.settings["model"] = name.strip()[:500]
        if isinstance(model_hash, str) and re.fullmatch(r"[0-9A-Fa-f]{8,64}", model_hash.strip()):
            self.settings["model_hash"] = model_hash.strip().lower()


def _to_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        if len(value) > 40:
            return None
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, int):
        try:
            value = float(value)
        except OverflowError:
            return None
    if not isinstance(value, float) or not math.isfinite(value):
        return None
    return value


def _shown(value: Any, limit: int = 40) -> str:
    text = repr(value) if not isinstance(value, str) else f"'{value}'"
    return text if len(text) <= limit else text[: limit - 1] + "…'"


def _listed(items: list[str]) -> str:
    shown = ", ".join(items[:MAX_NOTE_ITEMS])
    return shown + (f" and {len(items) - MAX_NOTE_ITEMS} more" if len(items) > MAX_NOTE_ITEMS else "")


def _json(raw: str, what: str, kind: type = dict) -> Any:
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        raise _Unreadable(f"the {what} is not valid JSON") from None
    if not isinstance(value, kind):
        raise _Unreadable(f"the {what} is JSON of the wrong shape ({type(value).__name__}, not {kind.__name__})")
    return value


def _lora_note(reader: _Reader, names: list[str]) -> None:
    names = list(dict.fromkeys(n.strip() for n in names if isinstance(n, str) and n.strip()))
    if names:
        reader.note(f"LoRAs are not supported here, so these are not applied: {_listed(names)}")


# -- AUTOMATIC1111 ---------------------------------------------------------------------------------------


def _from_a1111(chunks: dict[str, str]) -> _Reader:
    text = chunks["parameters"]
    if len(text) > MAX_TEXT_SETTINGS_CHARS:
        raise _Unreadable(
            f"the AUTOMATIC1111 'parameters' text is {len(text):,} characters long, more than a prompt "
            f"and its settings take (at most {MAX_TEXT_SETTINGS_CHARS:,}); not read"
        )
    if text.lstrip().startswith("{"):
        try:
            if isinstance(json.loads(text), dict):
                raise _Unreadable(
                    "the 'parameters' chunk holds JSON (as Fooocus writes), not AUTOMATIC1111's text; not read"
                )
        except (ValueError, RecursionError):
            pass
    r = _Reader("AUTOMATIC1111")
    prompt, negative, fields = parse_a1111_parameters(text)
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
        r.note(f"Size {_shown(fields['Size'])} is not WIDTHxHEIGHT; width and height left as they were")
    r.model(fields.get("Model"), fields.get("Model hash"))
    _a1111_rest(r, prompt, fields)
    return r


def _a1111_rest(r: _Reader, prompt: str, fields: dict[str, str]) -> None:
    """AUTOMATIC1111's strength (unless a hires fix owns it), and notes for what does not carry over."""
    hires = [f"{k}: {fields[k]}" for k in fields if k.startswith("Hires ")]
    if hires:
        r.note(
            f"hires fix settings ignored ({_listed(hires)})"
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
    _lora_note(r, lora_names)
    _a1111_mask(r, fields)
    other = [
        f"{k}: {v if len(v) <= 40 else v[:39] + '…'}"
        for k, v in fields.items()
        if k not in A1111_USED + A1111_NOTED + A1111_QUIET + A1111_MASK and not k.startswith("Hires ")
    ]
    if other:
        r.note(f"other settings not used here: {_listed(other)}")


def _a1111_mask(r: _Reader, fields: dict[str, str]) -> None:
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
        r.note(f"Masked content {_shown(content)} is not one of {', '.join(MASKED_CONTENT)}; left as it was")
    if "Inpaint area" in fields:
        r.settings["inpaint_area"] = "masked" if fields["Inpaint area"].strip().lower() == "only masked" else "whole"
    r.number("padding", fields.get("Masked area padding"), "Masked area padding")
    r.note("the mask is not in a PNG: paint or upload it again")


# -- InvokeAI --------------------------------------------------------------------------------------------


def _from_invokeai(chunks: dict[str, str]) -> _Reader:
    try:
        from sd_parsers.parsers import InvokeAIParser
    except ImportError:
        raise _Unreadable("reading InvokeAI metadata needs the sd-parsers package (pip install sd-parsers)") from None
    chunks = dict(chunks)
    if "Dream" in chunks:
        if len(chunks["Dream"]) > MAX_TEXT_SETTINGS_CHARS:
            raise _Unreadable(
                f"the InvokeAI 'Dream' text is {len(chunks['Dream']):,} characters long, more than a "
                f"prompt and its settings take (at most {MAX_TEXT_SETTINGS_CHARS:,}); not read"
            )
        # one space between words: sd-parsers' Dream patterns backtrack for ages over long runs of whitespace
        chunks["Dream"] = " ".join(chunks["Dream"].split())
    try:
        info = InvokeAIParser().parse(chunks)
    except Exception as e:  # ParserError, or TypeError/AttributeError on JSON of the wrong shape
        raise _Unreadable(f"the InvokeAI metadata could not be read ({e or type(e).__name__})") from None
    if not info.samplers:
        raise _Unreadable("the InvokeAI metadata names no sampler settings")
    r = _Reader("InvokeAI")
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


def _invokeai_notes(r: _Reader, meta: dict[str, Any]) -> None:
    loras = meta.get("loras")
    if isinstance(loras, list) and loras:
        names = []
        for lora in loras:
            inner = lora.get("lora", lora.get("model")) if isinstance(lora, dict) else None
            name = (inner.get("name") or inner.get("model_name")) if isinstance(inner, dict) else None
            names.append(name if isinstance(name, str) else "(unnamed)")
        _lora_note(r, names)
    if meta.get("hrf_enabled") is True or meta.get("hires_fix") is True:
        r.note("hires fix settings ignored")
    clip_skip = meta.get("clip_skip")
    if isinstance(clip_skip, (int, float)) and not isinstance(clip_skip, bool) and clip_skip > 0:
        r.note(f"clip_skip {clip_skip} is not supported (the text encoder's last layer is used)")
    unused = [
        key
        for key in (
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
        if meta.get(key) not in (None, False, 0, [], {}, "")
    ]
    if unused:
        r.note(f"other settings not used here: {_listed(unused)}")


# -- ComfyUI ---------------------------------------------------------------------------------------------


def _from_comfyui(chunks: dict[str, str]) -> _Reader:
    if "prompt" not in chunks:
        raise _Unreadable("only ComfyUI's editor 'workflow' is embedded, without the 'prompt' graph; not read")
    graph = _json(chunks["prompt"], "ComfyUI 'prompt' graph")
    nodes = {str(k): v for k, v in graph.items() if isinstance(v, dict) and isinstance(v.get("inputs"), dict)}
    if len(nodes) > MAX_GRAPH_NODES:
        raise _Unreadable(f"the ComfyUI graph has {len(nodes):,} nodes, more than {MAX_GRAPH_NODES:,}; not read")
    samplers = sorted((k for k, v in nodes.items() if v.get("class_type") in COMFYUI_SAMPLERS), key=_node_order)
    if not samplers:
        raise _Unreadable(f"the ComfyUI graph has no {' or '.join(COMFYUI_SAMPLERS)} node; not read")
    r = _Reader("ComfyUI")
    first = next((k for k in samplers[:MAX_GRAPH_SAMPLERS] if _is_first_stage(nodes, k)), samplers[0])
    if len(samplers) > 1:
        r.note(
            f"the graph has {len(samplers)} sampler nodes; read #{first}, the first stage "
            "(later stages such as a hires fix or refiner are ignored)"
        )
    inputs = nodes[first]["inputs"]
    advanced = nodes[first].get("class_type") == "KSamplerAdvanced"
    steps = _resolved(nodes, inputs.get("steps"))
    r.number("steps", steps, "steps")
    r.sampler(_resolved(nodes, inputs.get("sampler_name")), _resolved(nodes, inputs.get("scheduler")))
    r.number("guidance_scale", _resolved(nodes, inputs.get("cfg")), "cfg")
    seed_input = "noise_seed" if advanced else "seed"
    r.number("seed", _resolved(nodes, inputs.get(seed_input)), seed_input)
    _comfyui_prompts(r, nodes, inputs)
    _comfyui_image(r, nodes, inputs, steps, advanced)
    _comfyui_model(r, nodes, inputs)
    return r


def _comfyui_prompts(r: _Reader, nodes: dict[str, dict], inputs: dict) -> None:
    """The sampler's positive and negative prompts: the texts of the conditioning nodes upstream of it."""
    for key, name in (("positive", "prompt"), ("negative", "negative_prompt")):
        if not _is_link(inputs.get(key)):
            continue
        texts = _prompt_texts(nodes, inputs[key])
        if not texts:
            r.note(f"no text was found for the {key} prompt in the graph; left as it was")
            continue
        texts = [t for t in texts if t] or [""]
        if len(texts) > 1:
            r.note(f"the {key} conditioning combines {len(texts)} texts; they are joined with ', '")
        r.text(name, ", ".join(texts), f"{key} prompt")


def _comfyui_image(r: _Reader, nodes: dict[str, dict], inputs: dict, steps, advanced: bool) -> None:
    """The size of the sampler's latent image, and its denoise as strength where it starts from an encoded image."""
    latent = [node for _, node in _upstream(nodes, [inputs.get("latent_image")])]
    sized = next(
        (n["inputs"] for n in latent if _whole(n["inputs"].get("width")) and _whole(n["inputs"].get("height"))), None
    )
    if sized is not None:
        r.size(sized["width"], sized["height"], "ComfyUI")
    if advanced:
        start, total = _resolved(nodes, inputs.get("start_at_step")), _to_number(steps)
        denoise = 1 - start / total if _whole(start) and total and 0 <= start < total else None
    else:
        denoise = _resolved(nodes, inputs.get("denoise"))
    if any("VAEEncode" in str(n.get("class_type")) for n in latent):
        r.number("strength", denoise, "denoise")
    elif denoise is not None:
        r.note("the sampler does not start from an encoded image (txt2img); strength left as it was")


def _comfyui_model(r: _Reader, nodes: dict[str, dict], inputs: dict) -> None:
    """The checkpoint and the LoRAs upstream of the sampler's model."""
    model_chain = [node["inputs"] for _, node in _upstream(nodes, [inputs.get("model")])]
    checkpoint = next(
        (
            i.get("ckpt_name", i.get("unet_name"))
            for i in model_chain
            if isinstance(i.get("ckpt_name", i.get("unet_name")), str)
        ),
        None,
    )
    if checkpoint:  # a file name under ComfyUI's models folder, maybe in a subfolder
        r.model(short_model_name(checkpoint.replace("\\", "/").rsplit("/", 1)[-1]))
    _lora_note(r, [i["lora_name"] for i in model_chain if isinstance(i.get("lora_name"), str)])


def _is_first_stage(nodes: dict[str, dict], key: str) -> bool:
    """No other sampler is upstream of this sampler's latent image (later ones: hires fix, refiner)."""
    upstream = _upstream(nodes, [nodes[key]["inputs"].get("latent_image")])
    return not any(node.get("class_type") in COMFYUI_SAMPLERS for _, node in upstream)


def _node_order(node_id: str) -> tuple[int, int, str]:
    return (0, int(node_id), "") if node_id.isdigit() and len(node_id) < 12 else (1, 0, node_id)


def _is_link(value: Any) -> bool:
    """ComfyUI's API graph writes an input fed by another node as ``[node_id, output_index]``."""
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], (str, int))
        and not isinstance(value[0], bool)
        and isinstance(value[1], int)
    )


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _upstream(
    nodes: dict[str, dict],
    links: list[Any],
    skip: Callable[[str], bool] = lambda key: False,
    stop: Callable[[dict], bool] = lambda node: False,
) -> Iterator[tuple[str, dict]]:
    """The nodes feeding ``links``, breadth first, each once (so cycles end).

    Args:
        nodes: the graph, node id → node.
        links: the inputs to start from; those that are not links are ignored.
        skip: inputs (by name) not to follow.
        stop: nodes whose own inputs are not followed.
    """
    queue = deque(str(link[0]) for link in links if _is_link(link))
    seen: set[str] = set()
    while queue:
        key = queue.popleft()
        if key in seen or key not in nodes:
            continue
        seen.add(key)
        node = nodes[key]
        yield key, node
        if stop(node):
            continue
        queue.extend(str(value[0]) for name, value in node["inputs"].items() if _is_link(value) and not skip(name))


def _resolved(nodes: dict[str, dict], value: Any, hops: int = 3) -> Any:
    """An input's value; one fed by a link is taken from the feeding node's first plain value (a seed node, …)."""
    while _is_link(value) and hops > 0:
        node = nodes.get(str(value[0]))
        if node is None:
            return None
        values = [v for v in node["inputs"].values() if not isinstance(v, (list, dict))]
        links = [v for v in node["inputs"].values() if _is_link(v)]
        value = values[0] if values else links[0] if links else None
        hops -= 1
    return None if isinstance(value, (list, dict)) else value


def _prompt_texts(nodes: dict[str, dict], link: Any) -> list[str]:
    """The texts encoded into a conditioning input: the nearest text on each path upstream of it (maybe empty)."""

    def text_of(node: dict) -> str | None:
        return next((node["inputs"][k] for k in COMFYUI_TEXT_INPUTS if isinstance(node["inputs"].get(k), str)), None)

    texts = []
    for _, node in _upstream(
        nodes, [link], skip=lambda name: name in COMFYUI_SKIPPED_LINKS, stop=lambda node: text_of(node) is not None
    ):
        text = text_of(node)
        if text is not None and text.strip() not in texts:
            texts.append(text.strip())
    return texts


_PARSERS: tuple[tuple[str, tuple[str, ...], Callable[[dict[str, str]], _Reader]], ...] = (
    ("AUTOMATIC1111", A1111_KEYS, _from_a1111),
    ("InvokeAI", INVOKEAI_KEYS, _from_invokeai),
    ("ComfyUI", COMFYUI_KEYS, _from_comfyui),
)
