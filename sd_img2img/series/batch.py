"""A batch: one request made N times in one click with seeds seed, seed + 1, … (AUTOMATIC1111's batch count), as a
``Series`` of images. Each image is its own run through the backend, taking its own turn, so each equals the single
run with its seed; each has its own steps and its own PNG.

Several latents in one forward pass (batch *size*) is not done: it helps only on a GPU, and none measured it here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from sd_img2img.config import MAX_BATCH_COUNT, MAX_SEED
from sd_img2img.plan.fields import Range, check_range, declared, setting
from sd_img2img.plan.prepare import PreparedRequest
from sd_img2img.plan.request import whole_or
from sd_img2img.series.series import Series, SeriesRun


@dataclass
class BatchOptions:
    """How many images one click makes."""

    batch_count: int = setting(
        1,
        label="Batch count",
        help=f"images made in one click, 1 to {MAX_BATCH_COUNT}: seeds seed, seed + 1, … each its own run, equal to "
        "the single run with its seed",
        hint="images in one click: seed, seed + 1, …",
        range=Range(1, MAX_BATCH_COUNT, whole=True),
        form=whole_or(1),
    )


OPTIONS = declared(BatchOptions)


def batch_count(values: dict[str, Any]) -> int:
    """The batch count in an event's ``values`` (1 when not given), checked against its range."""
    count = OPTIONS["batch_count"].setting.form(values.get("batch_count"))
    check_range(OPTIONS["batch_count"], count, "make fewer images at once")
    return int(count)


def batch_seeds(seed: int, count: int) -> list[int]:
    """``seed``, ``seed + 1``, … (wrapping at 2**32)."""
    return [(seed + i) % MAX_SEED for i in range(count)]


def with_seed(prepared: PreparedRequest, seed: int) -> PreparedRequest:
    """``prepared`` as the same request prepared with ``seed`` would be (nothing else a seed changes)."""
    return dataclasses.replace(
        prepared,
        seed=seed,
        asked=dataclasses.replace(prepared.asked, seed=seed),
        request=dataclasses.replace(prepared.request, seed=seed),
    )


def plan_batch(first: PreparedRequest, model: str, count: int) -> Series:
    """The batch of ``count`` images of ``first`` (prepared once: its seed, image and mask settled) on ``model``: the
    i-th with seed ``first.seed + i``."""
    seeds = batch_seeds(first.seed, count)
    runs = [
        SeriesRun(f"seed {seed}", model, with_seed(first, seed), (i,), {"batch": {"image": i + 1, "of": count}})
        for i, seed in enumerate(seeds)
    ]
    steps = sum(run.steps_to_run for run in runs)
    seeds_said = f"seed {seeds[0]}" if count == 1 else f"seeds {seeds[0]} to {seeds[-1]}"
    return Series("batch", "image", runs, description=f"this batch runs {steps} steps in {count} images, {seeds_said}")


def batch_info(series: Series, files: list[str]) -> dict[str, Any]:
    """The batch as JSON: the steps it plans and took, and ``batch``: each finished image (its seed, PNG, steps)."""
    info = series.info(files)
    info["batch"] = info.pop(f"{series.noun}s")
    return info
