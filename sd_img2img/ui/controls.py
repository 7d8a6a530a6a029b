"""The page's controls from the declared settings (``plan.request``, a series' options): their label, their note and
their range, so a control says what validation and the API say."""

from __future__ import annotations

from sd_img2img.plan.fields import Declared
from sd_img2img.plan.request import SETTINGS


def declared_setting(name: str, *tables: dict[str, Declared]) -> Declared:
    for table in (*tables, SETTINGS):
        if name in table:
            return table[name]
    raise KeyError(f"no declared setting named {name!r}")


def labels(name: str, *tables: dict[str, Declared]) -> dict:
    """A control's ``label`` and ``info`` (its declared hint; none where it has none)."""
    setting = declared_setting(name, *tables).setting
    return dict(label=setting.label, **({"info": setting.hint} if setting.hint else {}))


def limits(name: str, *tables: dict[str, Declared], low: float | None = None) -> tuple[float, float]:
    """A numeric control's lowest and highest value (``low``: where the control starts above the range's own, as
    the strength slider starts at its step)."""
    r = declared_setting(name, *tables).setting.range
    return (r.low if low is None else low), r.high
