"""A batch (series/batch.py): seeds seed, seed + 1, …, each image its own run through the backend, each equal to the
single run with its seed; the mask goes along; the batch count's range."""

from __future__ import annotations

import pytest
from helpers import max_diff
from PIL import Image, ImageDraw

from sd_img2img.engine import GenerationRequest
from sd_img2img.engine.backend import LocalBackend
from sd_img2img.errors import UserInputError
from sd_img2img.series.batch import batch_count, batch_info, plan_batch
from sd_img2img.series.series import run_series


class CountingBackend(LocalBackend):
    """The real in-process backend, counting the runs it streams (each image is one)."""

    streams = 0

    def stream(self, prepared, name, should_stop=None):
        self.streams += 1
        return super().stream(prepared, name, should_stop)


def test_batch_count_3_gives_seeds_s_s1_s2_each_equal_to_its_single_run(engine):
    """Done-when: --batch-count 3 gives seeds s, s+1 and s+2, each equal to the single run with that seed."""
    image = Image.new("RGB", (64, 64), (196, 84, 40))
    mask = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(mask).rectangle((16, 16, 47, 39), fill=255)
    request = GenerationRequest(prompt="fire", init_image=image, mask=mask, steps=4, strength=0.5, seed=41)
    backend = CountingBackend(engine)
    series = plan_batch(backend.prepare(request, backend.names[0]), backend.names[0], 3)
    runs = list(run_series(series, backend))
    assert [run.result.seed for run in runs] == [41, 42, 43] and backend.streams == 3  # each image its own run
    for run in runs:
        single = engine.generate(GenerationRequest(**{**vars(request), "seed": run.result.seed}))
        assert max_diff(run.result.output, single.output) == 0 and run.result.steps_taken == single.steps_taken == 2
        assert run.result.mask == single.mask  # the mask goes along
    info = batch_info(series, [f"/x/batch{i}.png" for i in (1, 2, 3)])
    assert [(b["seed"], b["image"], b["output"]) for b in info["batch"]] == [
        (41, 1, "batch1.png"),
        (42, 2, "batch2.png"),
        (43, 3, "batch3.png"),
    ]
    assert info["kind"] == "batch" and info["steps_taken"] == 6 and series.what() == "a batch of 3 images"
    assert runs[1].records == {"batch": {"image": 2, "of": 3}}


def test_batch_count_range():
    assert batch_count({}) == 1 and batch_count({"batch_count": 8.0}) == 8
    with pytest.raises(UserInputError, match="batch count must be from 1 to 8, got 9; make fewer images at once"):
        batch_count({"batch_count": 9})
