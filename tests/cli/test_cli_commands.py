"""The sd-img2img command's commands and help (one run, grid, serve, --version), and its JSON line as a recipe: its
settings, given back as flags, make the same picture."""

from __future__ import annotations

import json

import pytest
from helpers import max_diff
from PIL import Image

from sd_img2img import __version__
from sd_img2img.cli import main
from sd_img2img.formats.metadata import read_settings


def help_of(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exit:
        main(list(argv))
    assert exit.value.code == 0
    return capsys.readouterr().out


def test_version_and_the_commands_in_the_help(capsys):
    assert help_of(capsys, "--version").strip() == f"sd-img2img {__version__}"  # no --prompt asked for
    main_help = help_of(capsys, "--help")
    assert "sd-img2img grid INIT_IMAGE" in main_help and "sd-img2img serve" in main_help
    assert "--loops" in main_help and "--animation" in main_help
    grid_help = help_of(capsys, "grid", "--help")
    assert "--strengths" in grid_help and "--step-counts" in grid_help and "--prompt" in grid_help
    for flag in ("--loops", "--animation", "--final-strength", "--curve", "--colour-match"):
        assert flag not in grid_help  # grid --help lists only what grid takes
    serve_help = help_of(capsys, "serve", "--help")
    assert serve_help.startswith("usage: sd-img2img serve")
    assert "--port" in serve_help and "--mcp" in serve_help and "--prompt" not in serve_help
    assert help_of(capsys, "serve", "--version").strip() == f"sd-img2img {__version__}"


def test_grid_refuses_what_it_does_not_take(capsys, tiny_checkpoint, fireplace, tmp_path):
    with pytest.raises(SystemExit) as exit:
        main(["grid", str(tmp_path / "x.png"), "--prompt", "x", "--loops", "3", "--model", str(tiny_checkpoint)])
    assert exit.value.code == 2 and "unrecognized arguments: --loops 3" in capsys.readouterr().err


# the JSON line's keys that are a run's settings, each given back as the flag of the same name
RECIPE = ("prompt", "negative_prompt", "strength", "steps", "seed", "sampler", "guidance_scale", "width", "height")
RECIPE += ("resize_mode", "model")


def flags_from(summary: dict) -> list[str]:
    flags = [f for key in RECIPE for f in (f"--{key.replace('_', '-')}", str(summary[key]))]
    return flags + (["--real-steps"] if summary["real_steps"] else [])


def test_the_json_line_reproduces_its_run(capsys, tiny_checkpoint, fireplace, tmp_path, monkeypatch):
    """Every setting under the PNG's own keys: fed back as flags (``guidance_scale`` → ``--guidance-scale``) they make
    the same output, pixel for pixel; the model is named as visitors see it (a folder by its name, no path)."""
    monkeypatch.chdir(tiny_checkpoint.parent)  # the folder is given as it is named, as a visitor's copy would be
    fireplace.resize((96, 96)).save(tmp_path / "init.png")
    placement = ["--device", "cpu", "--dtype", "float32"]
    first = ["--prompt", "fire", "--negative-prompt", "blurry", "--strength", "0.6", "--steps", "3", "--real-steps"]
    first += ["--guidance", "5.5", "--sampler", "k_euler", "--resize", "crop", "--model", str(tiny_checkpoint)]
    assert main([str(tmp_path / "init.png"), *first, *placement, "--out", str(tmp_path / "a")]) == 0
    summary = json.loads(capsys.readouterr().out)
    png = read_settings(summary["output"])
    for key in (*RECIPE, "real_steps", "loras", "steps_taken", "mode"):
        assert key in summary and summary[key] == png.get(key, {} if key == "loras" else None), key
    assert summary["model"] == tiny_checkpoint.name and "/" not in json.dumps(png["model"])
    assert (summary["guidance_scale"], summary["negative_prompt"], summary["real_steps"]) == (5.5, "blurry", True)

    again = [str(tmp_path / "init.png"), *flags_from(summary), *placement, "--out", str(tmp_path / "b")]
    assert main(again) == 0
    second = json.loads(capsys.readouterr().out)
    assert {k: second[k] for k in RECIPE} == {k: summary[k] for k in RECIPE}
    assert max_diff(Image.open(second["output"]), Image.open(summary["output"])) == 0


def test_docs_flags_lists_every_flag_of_every_command():
    """docs/flags.md, the full list the README links to, names each flag the three commands take."""
    from pathlib import Path

    from sd_img2img.cli import build_grid_parser, build_parser
    from sd_img2img.settings import build_parser as serve_parser

    text = (Path(__file__).resolve().parents[2] / "docs" / "flags.md").read_text()
    for parser in (build_parser({}), build_grid_parser({}), serve_parser({}, "sd-img2img serve")):
        flags = {o for a in parser._actions for o in a.option_strings if o.startswith("--") and o != "--help"}
        missing = sorted(f for f in flags if f"`{f}`" not in text)
        assert not missing, (parser.prog, missing)
