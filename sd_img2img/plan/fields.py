"""Each setting declared once: its label and help, the values it takes, how a page's form hands it over, whether a
PNG records it, and the name and type an endpoint gives it. A declaration is a dataclass field's metadata
(``setting(default, label=…, …)``); ``GenerationRequest`` (``request``) and the series' options declare theirs so,
and what reads a setting (validation's ranges, the form conversion, the PNG readers, the page's controls, the
endpoints' parameter lists) reads ``declared(cls)`` instead of a list of its own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sd_img2img.errors import UserInputError

SETTING = "sd_img2img.setting"  # the metadata key a declaration lives under
SAME = object()  # an endpoint default that is the field's own


@dataclass(frozen=True)
class Range:
    """The values a numeric setting may take: ``low`` to ``high`` (``above_low``: low itself excluded)."""

    low: float
    high: float
    whole: bool = False
    above_low: bool = False

    def __contains__(self, value) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            return False
        if self.whole and value != int(value):
            return False
        return (self.low < value if self.above_low else self.low <= value) and value <= self.high

    def describe(self) -> str:
        """``above 0 and at most 1``, ``from 1 to 150``, as a message says it."""
        if self.above_low:
            return f"above {number_text(self.low)} and at most {number_text(self.high)}"
        return f"from {number_text(self.low)} to {number_text(self.high)}"


def number_text(value: float) -> str:
    """A bound or value as a message writes it: a whole number with all its digits (a 64-bit seed's
    ``18446744073709551615``, never ``1.84467e+19``), any other number as ``:g`` writes it (``0.75``)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return f"{value:g}"


def keep(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class Setting:
    """A setting as people meet it.

    Args:
        label: its name on the page and in messages ("Guidance scale").
        help: what it does and takes, in the endpoints' docs (and so the MCP tools') and the CLI's help.
        hint: the page's one-line note under its control (empty: none).
        range: the numbers it takes (``Range``); None: not a number, or any.
        choices: the names it takes, where they are fixed (the sampler's depend on the model: None).
        form: how a page's form value becomes the request's (empty fields → None, whole floats → int …).
        recorded: a PNG records it, and a later run takes it back to reproduce the picture.
        param: the endpoints' parameter name, where it differs from the field's (the init image's is ``image``).
        annotation: the endpoints' type for it, where it differs from the field's.
        api_default: the endpoints' default, where it differs from the field's.
        img2img_only: it means nothing without an init image (prompt2img endpoints leave it out).
        on_form: a page's form fills it in (False: the server's, such as the size cap).
    """

    label: str
    help: str = ""
    hint: str = ""
    range: Range | None = None
    choices: tuple[str, ...] | None = None
    form: Callable[[Any], Any] = keep
    recorded: bool = False
    param: str | None = None
    annotation: Any = None
    api_default: Any = SAME
    img2img_only: bool = False
    on_form: bool = True


def setting(default: Any = dataclasses.MISSING, **declaration) -> Any:
    """A dataclass field with its ``Setting`` (``declaration``: the Setting's own fields)."""
    return dataclasses.field(default=default, metadata={SETTING: Setting(**declaration)})


@dataclass(frozen=True)
class Declared:
    """One declared field of a dataclass: its name, type, default and ``Setting``."""

    name: str
    type: Any
    default: Any
    setting: Setting

    @property
    def param(self) -> str:
        return self.setting.param or self.name

    @property
    def api_default(self) -> Any:
        return self.default if self.setting.api_default is SAME else self.setting.api_default


def declared(cls) -> dict[str, Declared]:
    """The declared fields of the dataclass ``cls``, in declaration order, by field name."""
    hints = _types(cls)
    return {
        f.name: Declared(f.name, hints.get(f.name, Any), f.default, f.metadata[SETTING])
        for f in dataclasses.fields(cls)
        if SETTING in f.metadata
    }


def _types(cls) -> dict[str, Any]:
    import typing

    try:
        return typing.get_type_hints(cls)
    except (NameError, TypeError):  # a type only known where the class is used
        return {}


def check_range(field: Declared, value: Any, hint: str = "") -> None:
    """``UserInputError`` naming ``field`` when ``value`` is outside its declared range: ``guidance scale must be
    from 0 to 30, got 31``; ``hint`` says what to do instead."""
    limits = field.setting.range
    if limits is not None and value not in limits:
        whole = "a whole number " if limits.whole and not _is_whole(value) else ""
        tail = f"; {hint}" if hint else ""
        raise UserInputError(f"{field.setting.label.lower()} must be {whole}{limits.describe()}, got {value!r}{tail}")


def _is_whole(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer()
