"""One tool's settings collected in this project's field names, each checked against the engine's limits first.

Every tool's reader (``a1111_text``, ``invokeai``, ``comfyui``, ``fooocus``, ``novelai``, ``swarmui``) fills a
``SettingsReader``: a value that fits its setting's declared range (``plan.request.RANGES``) is taken, anything else
is left out with a note saying what it was and why. Whole numbers are read exactly (a 19-digit seed keeps every
digit: it never passes through a float). A reader raises ``Unreadable`` when the tool's metadata is there but cannot
be read (the message says what was found), and ``NotThisTool`` when the text it looked at is another tool's.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from sd_img2img.config import MAX_DIMENSION, MAX_PROMPT_CHARS, MIN_DIMENSION, RANDOM_SEED
from sd_img2img.formats.sampler_names import our_sampler
from sd_img2img.plan.fields import number_text
from sd_img2img.plan.request import RANGES

MAX_CHUNK_CHARS = 1_000_000  # longer texts are skipped (Pillow refuses compressed PNG chunks past 1 MB anyway)
MAX_NOTE_ITEMS = 8  # a note lists at most this many settings, then says how many more
MAX_NUMBER_CHARS = 40  # a number written with more characters than this is not read as one

_WHOLE = re.compile(r"[+-]?[0-9]{1,40}")


class Unreadable(Exception):
    """A tool's metadata is there but cannot be read; the message says what was found and why."""


class NotThisTool(Exception):
    """The text a reader looked at is not its tool's (another reader may take it)."""


class SettingsReader:
    """Collects one tool's values in our field names, checked against the engine's limits, and the notes.

    Args:
        tool: the tool's name, as the notes and ``our_sampler`` name it.
    """

    def __init__(self, tool: str):
        self.tool = tool
        self.settings: dict[str, Any] = {}
        self.notes: list[str] = []
        self.complete = True  # False: only a prompt was found; another tool's chunk may say more

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def text(self, name: str, value: Any, label: str) -> None:
        """A prompt: text of at most ``config.MAX_PROMPT_CHARS`` characters."""
        if value is None:
            return
        if not isinstance(value, str):
            self.note(f"the {label} is not text; left as it was")
            return
        if not valid_text(value):
            self.note(f"the {label} is not valid text (it holds a lone UTF-16 surrogate); left as it was")
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
        number = to_whole(value) if limits.whole else to_number(value)
        if number is None:
            kind = "a whole number" if limits.whole else "a number"
            self.note(f"{label} {shown(value)} is not {kind}; {name} left as it was")
            return
        if name == "seed" and number == RANDOM_SEED:
            self.note(f"{label} {RANDOM_SEED} asks for a random seed; the seed is left as it was")
            return
        if number not in limits:
            bound = f"above {number_text(limits.low)}" if limits.above_low else f"from {number_text(limits.low)}"
            self.note(
                f"{label} {shown(value)} is outside this program's range ({bound} to {number_text(limits.high)}); "
                f"{name} left as it was"
            )
            return
        self.settings[name] = number

    def size(self, width: Any, height: Any, label: str) -> None:
        """Width and height in range, each rounded to a multiple of 8 (with a note when it was not one)."""
        for name, value in (("width", width), ("height", height)):
            number = to_whole(value)
            if number is None:
                self.note(f"{label} {name} {shown(value)} is not a whole number; {name} left as it was")
                continue
            if number not in RANGES[name]:
                self.note(
                    f"{label} {name} {number} is outside {MIN_DIMENSION} to {MAX_DIMENSION} pixels; "
                    f"{name} left as it was"
                )
                continue
            rounded = max(MIN_DIMENSION, round(number / 8) * 8)
            if rounded != number:
                self.note(f"{label} {name} {number} is not a multiple of 8; set to {rounded}")
            self.settings[name] = rounded

    def sampler(self, name: Any, schedule: Any = None) -> None:
        """Our sampler for the tool's sampler name and schedule (``sampler_names.our_sampler``), or a note."""
        if name is None or name == "":
            return
        texts = (name, schedule) if schedule is not None else (name,)
        if not all(isinstance(t, str) and valid_text(t) for t in texts):
            self.note(f"the {self.tool} sampler {shown(name)} is not a name; the sampler is left as it was")
            return
        ours, notes = our_sampler(self.tool, name[:200], schedule[:200] if schedule else None)
        for text in notes:
            self.note(text)
        if ours is not None:
            self.settings["sampler"] = ours

    def model(self, name: Any, model_hash: Any = None) -> None:
        """The model's name (information only) and its hash, when it looks like one."""
        if isinstance(name, str) and name.strip() and valid_text(name):
            self.settings["model"] = name.strip()[:500]
        if isinstance(model_hash, str) and re.fullmatch(r"[0-9A-Fa-f]{8,64}", model_hash.strip()):
            self.settings["model_hash"] = model_hash.strip().lower()

    def unused(self, names: list[str]) -> None:
        """One note listing the settings that do not carry over and have no note of their own."""
        if names:
            self.note(f"other settings not used here: {listed(names)}")


def to_number(value: Any) -> float | None:
    """A finite number from a number or its text (at most ``MAX_NUMBER_CHARS`` characters); None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        if len(value) > MAX_NUMBER_CHARS:
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


def to_whole(value: Any) -> int | None:
    """A whole number, exactly: an int as it is, a whole float, or text of digits (``"280823642470253"``) or of a
    whole float (``"20.0"``); None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _WHOLE.fullmatch(value.strip()):
        return int(value.strip())
    number = to_number(value)
    return int(number) if number is not None and number.is_integer() else None


def shown(value: Any, limit: int = 40) -> str:
    """A value quoted in a note, cut to ``limit`` characters (what is not valid text is written as an escape)."""
    text = repr(value) if not isinstance(value, str) else f"'{value}'"
    return printable(text if len(text) <= limit else text[: limit - 1] + "…'")


def valid_text(text: str) -> bool:
    """Text that UTF-8 can carry: JSON's ``\\ud800`` escapes give Python strings with lone surrogates, which no
    page, PNG or JSON reply can hold."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable(text: str) -> str:
    """``text`` with what UTF-8 cannot carry (a lone surrogate) written as its escape (``\\ud800``)."""
    return text if valid_text(text) else text.encode("utf-8", "backslashreplace").decode("utf-8")


def listed(items: list[str]) -> str:
    """Items joined by commas, at most ``MAX_NOTE_ITEMS`` of them, then how many more."""
    shown_items = ", ".join(items[:MAX_NOTE_ITEMS])
    more = len(items) - MAX_NOTE_ITEMS
    return shown_items + (f" and {more} more" if more > 0 else "")


def parse_json(raw: str, what: str, kind: type = dict) -> Any:
    """``raw`` decoded as JSON of type ``kind``; ``Unreadable`` naming ``what`` when it does not decode (nesting too
    deep included) or is of another type."""
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        raise Unreadable(f"the {what} is not valid JSON") from None
    if not isinstance(value, kind):
        raise Unreadable(f"the {what} is JSON of the wrong shape ({type(value).__name__}, not {kind.__name__})")
    return value


def looks_like_json_object(text: str) -> bool:
    """Text that is meant as a JSON object (Fooocus and SwarmUI write their settings so), whether it decodes or not."""
    text = text.strip()
    return text.startswith("{") and text.endswith("}")


def lora_note(reader: SettingsReader, names: list[Any]) -> None:
    """The note that these LoRAs are not applied (this program runs the LoRAs its server lists)."""
    names = list(dict.fromkeys(n.strip() for n in names if isinstance(n, str) and n.strip()))
    if names:
        reader.note(f"LoRAs are not supported here, so these are not applied: {listed(names)}")
