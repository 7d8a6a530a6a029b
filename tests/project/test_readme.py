"""The README as the Space's card: front matter that Spaces accepts (its configuration reference), a first screen
with what it is, its picture and the two commands, a page of about 120 lines, and commands that still work."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
# https://huggingface.co/docs/hub/spaces-config-reference
COLORS = {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}
HARDWARE = {"cpu-basic", "cpu-upgrade", "t4-small", "t4-medium", "l4x1", "l4x4", "zero-a10g", "a10g-small"}
HARDWARE |= {"a10g-large", "a10g-largex2", "a10g-largex4", "a100-large", "h100", "h100x8"}
KEYS = {"title", "emoji", "colorFrom", "colorTo", "sdk", "sdk_version", "python_version", "app_file", "pinned"}
KEYS |= {"license", "short_description", "suggested_hardware", "models", "preload_from_hub", "tags"}


def front_matter() -> dict:
    assert README.startswith("---\n")
    return yaml.safe_load(README.split("---\n")[1])


def test_the_front_matter_is_valid_for_spaces():
    from sd_img2img.config import DEFAULT_TAESD, DEMO_MODEL

    front = front_matter()
    assert set(front) <= KEYS, set(front) - KEYS
    assert front["sdk"] == "gradio" and front["app_file"] == "app.py" and (ROOT / "app.py").exists()
    assert front["colorFrom"] in COLORS and front["colorTo"] in COLORS
    assert len(front["short_description"]) <= 60
    assert isinstance(front["python_version"], str) and re.fullmatch(r"3\.\d+(\.\d+)?", front["python_version"])
    assert isinstance(front["sdk_version"], str) and front["suggested_hardware"] in HARDWARE
    assert front["license"] == "apache-2.0" and "Apache License" in (ROOT / "LICENSE").read_text()
    hub_id = re.compile(r"[\w.-]+/[\w.-]+")
    assert all(hub_id.fullmatch(m) for m in front["models"])
    preloaded = [entry.split()[0] for entry in front["preload_from_hub"]]  # "repo [files] [revision]"
    assert {DEMO_MODEL, DEFAULT_TAESD} <= set(preloaded) <= set(front["models"])  # the demo's default, downloaded once


def test_the_first_screen_says_what_it_is_and_how_to_run_it():
    body = README.split("---\n", 2)[2]
    first_screen = "\n".join(body.splitlines()[:40])
    title, sentence = [line for line in body.splitlines() if line.strip()][:2]
    assert title == "# sd-img2img" and sentence.endswith(".") and sentence.count(". ") == 0  # one sentence
    picture = re.search(r"!\[[^\]]+\]\(([^)]+)\)", first_screen)
    assert picture and (ROOT / picture.group(1)).is_file()
    assert "python3 install.py demo" in first_screen and "python3 install.py test" in first_screen
    assert "Duplicate this Space" in README and "(#duplicate-this-space)" in first_screen
    assert 90 <= len(README.splitlines()) <= 150, len(README.splitlines())  # a card, not the manual


def test_the_readme_links_resolve_and_names_hf_token_and_hardware():
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), target
    assert "HF_TOKEN" in README and "secret" in README and "never logs it" in README
    assert "| hardware |" in README and "CPU basic" in README and "ZeroGPU" in README


def test_the_readmes_api_snippet_uses_the_endpoints_parameters():
    """The gradio_client example names only parameters /img2img takes (the public API's names)."""
    from sd_img2img.series.batch import OPTIONS as BATCH
    from sd_img2img.ui.endpoints import parameters
    from sd_img2img.ui.runs import IMG2IMG

    (snippet,) = [block for block in re.findall(r"```python\n(.*?)```", README, re.S) if "client.predict" in block]
    calls = [n for n in ast.walk(ast.parse(snippet)) if isinstance(n, ast.Call)]
    (predict,) = [n for n in calls if getattr(n.func, "attr", "") == "predict"]
    names = {k.arg for k in predict.keywords} - {"api_name"}
    assert {"image", "prompt", "strength", "steps"} <= names <= {p.name for p in parameters(IMG2IMG, BATCH)}


def test_the_readmes_commands_run(tmp_path, capsys, monkeypatch, tiny_checkpoint):
    """Each ``sd-img2img`` line of the README runs as written, on the tiny checkpoint at a tiny size."""
    import json
    import shlex

    from sd_img2img.cli import main

    blocks = re.findall(r"```bash\n(.*?)```", README, re.S)
    lines = [line.split("  #")[0] for block in blocks for line in block.splitlines()]
    commands = [shlex.split(line)[1:] for line in lines if line.startswith("sd-img2img ") and "--prompt" in line]
    assert len(commands) >= 2  # one run and the grid
    monkeypatch.chdir(ROOT)  # examples/fireplace.png as the README names it
    for n, args in enumerate(commands):
        args = [a for a in args if a not in ("--out", "outputs/")]
        tiny = ["--model", str(tiny_checkpoint), "--device", "cpu", "--dtype", "float32", "--width", "64"]
        tiny += ["--height", "64"]
        assert main([*args, *tiny, "--out", str(tmp_path / str(n))]) == 0, args
        summary = json.loads(capsys.readouterr().out)
        assert summary["model"] == tiny_checkpoint.name and (summary.get("output") or summary.get("grid"))
