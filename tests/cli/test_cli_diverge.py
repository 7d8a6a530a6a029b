"""``sd-img2img diverge INIT --vs KEY=VALUE``: one JSON line with ``a`` and ``b`` (each run's summary, as a single run
prints it), ``aligned`` (one pair per step of the shorter run, step 0 included), ``threshold`` and ``parts_at``; every
picture it compares written, and the mistakes said in one line."""

from __future__ import annotations

import json

import pytest
from helpers import max_diff, pixels
from PIL import Image

from sd_img2img.cli import main
from sd_img2img.formats.metadata import read_settings

ENTRY = {"a_step", "b_step", "sigma_a", "sigma_b", "a_image", "b_image", "difference", "latent_difference", "map"}


@pytest.fixture(scope="module")
def init_png(tmp_path_factory, fireplace):
    path = tmp_path_factory.mktemp("init") / "fireplace.png"
    fireplace.save(path)
    return path


def run(capsys, *argv) -> dict:
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert out.out.count("\n") == 1  # one JSON line
    return json.loads(out.out)


def flags(tiny_checkpoint, tmp_path, steps=30):
    """The guide's settings (strength 0.7, 30 steps, k_lms, its seed, prompt "fire"), small, on the tiny model."""
    guide = ["--prompt", "fire", "--strength", 0.7, "--steps", steps, "--sampler", "k_lms", "--seed", 1592514025]
    machine = ["--model", tiny_checkpoint, "--device", "cpu", "--dtype", "float32"]
    return [*guide, "--width", 64, "--height", 64, *machine, "--out", tmp_path]


def test_diverge_subcommand_30_vs_29(capsys, tiny_checkpoint, init_png, tmp_path):
    out = run(capsys, "diverge", init_png, "--vs", "steps=29", *flags(tiny_checkpoint, tmp_path / "d"))
    assert set(out) >= {"a", "b", "aligned", "threshold", "parts_at"} and out["threshold"] == 2.0
    single = run(capsys, init_png, *flags(tiny_checkpoint, tmp_path / "single"))
    assert set(out["a"]) == set(single) and (out["a"]["steps"], out["b"]["steps"]) == (30, 29)
    same = {"seed", "steps", "steps_taken", "strength", "sampler", "noise_level", "width", "height", "model_calls"}
    assert {k: out["a"][k] for k in same} == {k: single[k] for k in same}
    assert max_diff(Image.open(out["a"]["output"]), Image.open(single["output"])) == 0  # run A is that single run
    assert read_settings(out["b"]["output"])["diverge"] == {"side": "b", "vary": "steps", "value": 29, "other": 30}
    aligned = out["aligned"]
    assert len(aligned) == out["b"]["steps_taken"] + 1 == 21 and all(set(e) >= ENTRY for e in aligned)
    assert [e["b_step"] for e in aligned] == list(range(21)) and (aligned[0]["a_step"], aligned[0]["b_step"]) == (0, 0)
    assert all(x["sigma_b"] > y["sigma_b"] for x, y in zip(aligned, aligned[1:]))  # σ falls along the entries
    for e in aligned:
        a, b = Image.open(e["a_image"]), Image.open(e["b_image"])
        assert e["difference"] == float(abs(pixels(a) - pixels(b)).mean())
        assert Image.open(e["map"]).size == a.size
        assert read_settings(e["a_image"])["step"] == e["a_step"] and read_settings(e["b_image"])["steps"] == 29
    first = next((e for e in aligned if e["difference"] > out["threshold"]), None)
    assert out["parts_at"] == first


def test_diverge_same_settings_and_mistakes(capsys, tiny_checkpoint, init_png, tmp_path):
    """Done-when: the same settings on both sides differ by 0 at every step and never part."""
    out = run(capsys, "diverge", init_png, "--vs", "seed=1592514025", *flags(tiny_checkpoint, tmp_path, steps=10))
    assert out["parts_at"] is None and len(out["aligned"]) == 8
    assert {e["difference"] for e in out["aligned"]} == {0.0} == {e["latent_difference"] for e in out["aligned"]}
    for argv, message in [
        (["--vs", "steps"], "--vs takes KEY=VALUE"),
        (["--vs", "prompt=dog"], "unknown setting to vary 'prompt'"),
        (["--vs", "strength=1.5"], "strength must be above 0 and at most 1, got 1.5"),
        (["--vs", "sampler=flow_euler"], "sampler 'flow_euler' does not fit SD checkpoints"),
        (["--vs", "seed=2", "--loops", 2], "sd-img2img diverge takes no --loops"),
    ]:
        assert main(["diverge", str(init_png), *map(str, argv), *map(str, flags(tiny_checkpoint, tmp_path))]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err


def test_diverge_two_models(capsys, tiny_checkpoint, init_png, tmp_path):
    """``--vs model=OTHER`` runs run B on a second model beside the first (here the same weights in another folder:
    every pair the same)."""
    import shutil

    other = shutil.copytree(tiny_checkpoint, tmp_path / "same-weights")
    out = run(capsys, "diverge", init_png, "--vs", f"model={other}", *flags(tiny_checkpoint, tmp_path, steps=4))
    names = (tiny_checkpoint.name, other.name)  # the models as visitors see them: their folders' names
    assert (out["a"]["model"], out["b"]["model"]) == names and out["parts_at"] is None
    assert out["values"] == [str(tiny_checkpoint), str(other)] and {e["difference"] for e in out["aligned"]} == {0.0}
