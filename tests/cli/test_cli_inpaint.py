"""The command line's inpainting and batches: ``--mask PATH`` (and its settings) writes the mask beside each PNG, whose
settings record its hash; ``--batch-count N`` → ``"batch": [{"seed", "output", "steps_taken", …}, …]``; a bad mask or
count is a one-line message and exit status 2."""

from __future__ import annotations

import json

import pytest
from PIL import Image, ImageDraw

from sd_img2img.cli import main
from sd_img2img.formats.metadata import read_settings


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("inpaint-cli")
    Image.new("RGB", (64, 64), (196, 84, 40)).save(root / "init.png")
    mask = Image.new("L", (32, 32), 0)  # half the image's size: fitted with it
    ImageDraw.Draw(mask).rectangle((8, 8, 23, 19), fill=255)
    mask.save(root / "mask.png")
    (root / "notes.txt").write_text("not a picture")
    return root


def flags(tiny_checkpoint, out, *more):
    return [
        "--prompt",
        "fire",
        "--seed",
        9,
        "--steps",
        4,
        "--strength",
        0.5,
        "--model",
        tiny_checkpoint,
        "--device",
        "cpu",
        "--dtype",
        "float32",
        "--out",
        out,
        *more,
    ]


def test_mask_and_batch_count(capsys, tiny_checkpoint, files, tmp_path):
    argv = [files / "init.png", "--mask", files / "mask.png", "--mask-blur", 0, "--masked-content", "latent-noise"]
    code = main([str(a) for a in [*argv, *flags(tiny_checkpoint, tmp_path, "--batch-count", 2)]])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    out = json.loads(captured.out)
    assert out["kind"] == "batch" and [b["seed"] for b in out["batch"]] == [9, 10]
    assert [b["steps_taken"] for b in out["batch"]] == [2, 2] and out["steps_taken"] == 4
    for entry in out["batch"]:
        settings = read_settings(entry["output"])
        assert settings["batch"]["of"] == 2 and settings["seed"] == entry["seed"]
        assert settings["mask_hash"] == entry["mask"]["mask_hash"] and settings["masked_content"] == "latent noise"
        with Image.open(entry["mask"]["file"]) as mask:  # the mask beside it, fitted to the run's size
            assert mask.size == (64, 64) and mask.mode == "L"
    assert "the mask is 32×32 and the image 64×64" in captured.err  # said, once


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--mask", "{files}/mask.png"], "a mask says which part of an initial image to redraw"),
        (["{files}/init.png", "--mask", "{files}/notes.txt"], "'notes.txt' is not an image this program can read"),
        (["{files}/init.png", "--batch-count", "9"], "batch count must be from 1 to 8, got 9"),
        (["{files}/init.png", "--mask", "{files}/mask.png", "--padding", "300"], "padding must be from 0 to 256"),
    ],
)
def test_bad_masks_and_counts(capsys, tiny_checkpoint, files, tmp_path, argv, message):
    code = main([a.format(files=files) for a in argv] + [str(a) for a in flags(tiny_checkpoint, tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err
