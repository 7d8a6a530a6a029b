"""The explain table's columns: one image, prompt and seed run at several strengths, step counts or served models, as
a ``Series`` of columns (InvokeAI's img2img guide, built live). The table itself is the page's (``ui/explain.py``)."""

from __future__ import annotations

from collections.abc import Callable

from sd_img2img.config import COMPARE_MAX_COLUMNS, COMPARE_STEP_COUNTS, COMPARE_STRENGTHS, GRID_MAX_STEPS
from sd_img2img.errors import UserInputError
from sd_img2img.models.families import Family
from sd_img2img.plan.prepare import PreparedRequest
from sd_img2img.plan.request import GenerationRequest
from sd_img2img.series.axes import Axis, axis_requests, check_axes, families_of, parse_axis
from sd_img2img.series.series import Series, SeriesRun, check_total_steps

COMPARE_BY = ("strength", "steps", "model")


def default_values(by: str, models: tuple[str, ...] = ()) -> str:
    """The values a table compares by default: two strengths, two step counts, or the served models."""
    if by == "model":
        return ", ".join(models[:COMPARE_MAX_COLUMNS])
    return ", ".join(f"{v:g}" for v in (COMPARE_STRENGTHS if by == "strength" else COMPARE_STEP_COUNTS))


def compare_axis(by: str, text, models: tuple[str, ...] = ()) -> Axis:
    """The columns from their values as written: ``"0.4, 0.7"``, ``"29 30"`` or served model names (empty: all)."""
    return parse_axis(by, text, models, COMPARE_MAX_COLUMNS, "the table's columns")


def plan_compare(
    base: GenerationRequest,
    axis: Axis,
    model: str,
    prepare: Callable[[GenerationRequest, str], PreparedRequest],
    family_of: Callable[[str], Family | None],
) -> Series:
    """Each column prepared (checked, image fitted, steps planned) before any runs.

    Args:
        base: the request every column starts from (the Generate tab's image, prompt, seed and settings).
        axis: what changes from column to column, and its values (comparing models: served names).
        model: the model every column runs on, unless comparing models.
        prepare: prepares a column's request for a model (a backend's ``prepare``).
        family_of: a model's family, where it can be told.
    """
    if base.init_image is None:
        raise UserInputError(
            "the explain table needs an initial image: upload or draw one on the Generate tab, or pick an example"
        )
    planned = axis_requests(base, (axis,), model)
    check_axes((axis,), families_of((name for _, name, _ in planned), family_of))
    runs = [
        SeriesRun(
            axis.label(axis.values[at[0]]),
            name,
            prepare(request, name),
            at,
            {"compare": {"by": axis.by, "value": axis.values[at[0]], "column": at[0] + 1}},
        )
        for at, name, request in planned
    ]
    series = Series("compare", "column", runs, name="table")
    check_total_steps(series, GRID_MAX_STEPS, "compare fewer values or use fewer steps")
    return series
