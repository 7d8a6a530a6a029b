"""The command line contract of the animation, loopback and the grid: ``--animation`` → ``"animation": PATH``,
``--loops N --final-strength S --curve C`` → ``"loops": [...]``, ``sd-img2img grid INIT --strengths … --step-counts …``
→ ``"cells": [...]``; each loop's and cell's PNG says which it is."""

from __future__ import annotations

import json

import pytest
from helpers import max_diff
from PIL import Image

from sd_img2img.cli import main
from sd_img2img.formats.metadata import read_settings


@pytest.fixture(scope="module")
def init_png(tmp_path_factory, fireplace):
    path = tmp_path_factory.mktemp("init") / "fireplace.png"
    fireplace.save(path)
    return path


def run(capsys, *argv) -> dict:
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


def flags(tiny_checkpoint, tmp_path, *more):
    return ["--prompt", "fire", "--seed", 9, "--width", 64, "--height", 64, "--model", tiny_checkpoint, "--device",
            "cpu", "--dtype", "float32", "--out", tmp_path, *more]  # fmt: skip


def test_animation_flag(capsys, tiny_checkpoint, init_png, tmp_path):
    out = run(capsys, init_png, "--strength", 0.7, "--steps", 10, "--animation", *flags(tiny_checkpoint, tmp_path))
    assert out["animation"].endswith("000001.steps.webp") and out["steps_taken"] == 7
    with Image.open(out["animation"]) as anim:
        assert anim.n_frames == 8 == len(out["step_images"]) and out["animation_bytes"] > 0
    gif = run(capsys, init_png, "--steps", 4, "--animation", "--animation-format", "gif", "--view", "x0",
              *flags(tiny_checkpoint, tmp_path))  # fmt: skip
    assert gif["animation"].endswith(".steps.gif") and Image.open(gif["animation"]).format == "GIF"


def test_loops_flag(capsys, tiny_checkpoint, init_png, tmp_path):
    out = run(capsys, init_png, "--strength", 0.5, "--steps", 10, "--loops", 3, "--final-strength", 0.3, "--curve",
              "linear", "--animation", *flags(tiny_checkpoint, tmp_path))  # fmt: skip
    assert [(x["strength"], x["seed"], x["steps_taken"]) for x in out["loops"]] == [
        (0.5, 9, 5),
        (0.4, 10, 4),
        (0.3, 11, 3),
    ]
    assert set(out["loops"][0]) >= {"output", "strength", "seed", "steps_taken"} and out["steps_taken"] == 12
    settings = [read_settings(x["output"]) for x in out["loops"]]
    assert [s["loopback"]["loop"] for s in settings] == [1, 2, 3] and settings[2]["loopback"][
        "init_image"
    ] == "loop 2's output"
    assert Image.open(out["animation"]).n_frames == 4
    # loop 2 again, from loop 1's PNG, by the settings loop 2's PNG carries
    s = settings[1]
    again = run(capsys, out["loops"][0]["output"], "--strength", s["strength"], "--steps", s["steps"],
                *flags(tiny_checkpoint, tmp_path)[:2], "--seed", s["seed"], *flags(tiny_checkpoint, tmp_path)[4:])  # fmt: skip
    assert max_diff(Image.open(again["output"]), Image.open(out["loops"][1]["output"])) == 0


def test_grid_subcommand(capsys, tiny_checkpoint, init_png, tmp_path):
    out = run(
        capsys, "grid", init_png, "--strengths", "0.4,0.7", "--step-counts", "10,20", *flags(tiny_checkpoint, tmp_path)
    )
    cells = [(c["strength"], c["steps"], c["steps_taken"]) for c in out["cells"]]
    assert cells == [(0.4, 10, 4), (0.4, 20, 8), (0.7, 10, 7), (0.7, 20, 14)] and out["total_steps"] == 33
    assert set(out["cells"][0]) >= {"strength", "steps", "steps_taken", "output"}
    assert read_settings(out["cells"][3]["output"])["grid"] == {"row": 2, "column": 2, "rows": "strength",
        "columns": "steps", "row_value": 0.7, "column_value": 20, "cells": [2, 2]}  # fmt: skip
    assert Image.open(out["grid"]).size == (2 * 256 + 4, 2 * 256 + 4)  # the cells' sheet


def test_grid_and_loop_mistakes_are_one_line(capsys, tiny_checkpoint, init_png, tmp_path):
    assert main(["grid", str(init_png), "--strengths", "0.4,2", *map(str, flags(tiny_checkpoint, tmp_path))]) == 2
    assert "strength 2 is out of range" in capsys.readouterr().err
    assert main(["grid", "--strengths", "0.4", *map(str, flags(tiny_checkpoint, tmp_path))]) == 2
    assert "the grid needs an initial image" in capsys.readouterr().err
    assert (
        main([str(init_png), "--loops", "3", "--final-strength", "0.01", *map(str, flags(tiny_checkpoint, tmp_path))])
        == 2
    )
    assert "loop 3 of 3 (strength 0.01)" in capsys.readouterr().err
