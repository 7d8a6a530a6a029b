"""The sd-img2img command: the guide's table from a shell, the JSON contract, one-line errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from sd_img2img.cli import main
from sd_img2img.formats.metadata import read_settings

ROOT = Path(__file__).resolve().parents[2]
SEED = 1592514025


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "sd_img2img", *args], capture_output=True, text=True, env=env, timeout=300
    )


@pytest.fixture(scope="module")
def fireplace_png(tmp_path_factory, fireplace):
    path = tmp_path_factory.mktemp("init") / "fireplace.png"
    fireplace.save(path)
    return path


def test_the_guides_table_from_the_command_line(tiny_checkpoint, fireplace_png, tmp_path):
    """Done-when: 384×384, 10 steps, k_lms, seed 1592514025, prompt "fire": 0.7 → 7 steps, 0.4 → 4."""
    out = tmp_path / "out"
    proc = run_cli(
        str(fireplace_png),
        "--prompt",
        "fire",
        "--strength",
        "0.7",
        "--steps",
        "10",
        "--seed",
        str(SEED),
        "--sampler",
        "k_lms",
        "--width",
        "384",
        "--height",
        "384",
        "--model",
        str(tiny_checkpoint),
        "--device",
        "cpu",
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") == 1  # ONE JSON object
    summary = json.loads(proc.stdout)
    for key in (
        "output",
        "step_images",
        "strip",
        "seed",
        "steps",
        "steps_taken",
        "strength",
        "sampler",
        "width",
        "height",
        "model",
        "seconds",
        "dtype",
        "vae",
    ):
        assert key in summary
    assert summary["steps_taken"] == 7 and summary["steps"] == 10 and summary["seed"] == SEED
    assert (summary["width"], summary["height"]) == (384, 384)
    from sd_img2img.models.cpu_features import native_bf16  # --dtype auto on the cpu: bf16 exactly where it is native

    assert summary["dtype"] == ("bfloat16" if native_bf16() else "float32") and summary["vae"] == "full"
    assert Path(summary["output"]).name == f"000001.{SEED}.png"
    assert Path(summary["strip"]).name == "000001.steps.png"
    assert len(summary["step_images"]) == 8 and all(Path(p).is_file() for p in summary["step_images"])
    assert summary["step_images"][0].endswith("step000.png")
    settings = read_settings(summary["output"])
    assert settings["steps_taken"] == 7 and settings["seed"] == SEED and settings["strength"] == 0.7
    assert Image.open(summary["output"]).size == (384, 384)

    assert (
        main(
            [
                str(fireplace_png),
                "--prompt",
                "fire",
                "--strength",
                "0.4",
                "--steps",
                "10",
                "--seed",
                str(SEED),
                "--width",
                "384",
                "--height",
                "384",
                "--model",
                str(tiny_checkpoint),
                "--device",
                "cpu",
                "--dtype",
                "float32",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    files = sorted(p.name for p in out.iterdir() if p.name.startswith("000002."))
    assert f"000002.{SEED}.png" in files and "000002.steps.png" in files
    assert len([f for f in files if ".step0" in f]) == 5  # 4 steps taken + step 0
    strip = Image.open(out / "000002.steps.png")
    assert strip.width > 5 * strip.height


@pytest.mark.parametrize("strength", ["0.4", "0.7"])
def test_real_steps(tiny_checkpoint, fireplace_png, tmp_path, capsys, strength):
    code = main(
        [
            str(fireplace_png),
            "--prompt",
            "fire",
            "--strength",
            strength,
            "--steps",
            "20",
            "--real-steps",
            "--seed",
            str(SEED),
            "--width",
            "128",
            "--height",
            "128",
            "--model",
            str(tiny_checkpoint),
            "--device",
            "cpu",
            "--dtype",
            "float32",
            "--out",
            str(tmp_path),
        ]
    )
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["steps_taken"] == 20 and len(summary["step_images"]) == 21
    assert summary["real_steps"] and summary["schedule_steps"] == {"0.4": 50, "0.7": 29}[strength]


def test_prompt2img_without_init_image(tiny_checkpoint, tmp_path, capsys):
    assert (
        main(
            [
                "--prompt",
                "a lake",
                "--steps",
                "3",
                "--seed",
                "18446744073709551615",  # any seed up to 2⁶⁴ − 1, as ComfyUI's
                "--width",
                "64",
                "--height",
                "96",
                "--model",
                str(tiny_checkpoint),
                "--device",
                "cpu",
                "--dtype",
                "float32",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert (
        summary["steps_taken"] == 3
        and summary["strength"] is None
        and (summary["width"], summary["height"]) == (64, 96)
    )
    assert summary["seed"] == 2**64 - 1 == read_settings(summary["output"])["seed"]


def test_seed_minus_one_is_a_new_random_seed():
    from sd_img2img.cli import build_parser, request_from

    args = ["--prompt", "x"]
    assert request_from(build_parser({}).parse_args([*args, "--seed", "-1"])).seed is None
    assert request_from(build_parser({}).parse_args([*args, "--seed", str(2**64 - 1)])).seed == 2**64 - 1
    assert "2^64 − 1" in build_parser({}).format_help()


def test_user_mistake_is_one_line_without_traceback(tiny_checkpoint, tmp_path):
    proc = run_cli(str(tmp_path / "missing.png"), "--prompt", "fire", "--model", str(tiny_checkpoint))
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "args,message",
    [
        (["--strength", "0"], "strength must be above 0"),
        (["--strength", "0.05", "--steps", "10"], "use strength ≥ 0.1"),
        (["--steps", "0"], "steps must be a whole number ≥ 1"),
        (["--steps", "1000"], "above the limit of 150"),
        (["--seed", "-5"], "seed=-5 is out of range"),
        (["--width", "130", "--height", "128"], "width=130 is not a multiple of 8"),
        (["--sampler", "nope"], "invalid choice: 'nope'"),
        (["--steps", "ten"], "invalid int value: 'ten'"),
    ],
)
def test_bad_arguments(tiny_checkpoint, fireplace_png, tmp_path, capsys, args, message):
    try:
        code = main(
            [
                str(fireplace_png),
                "--prompt",
                "fire",
                "--model",
                str(tiny_checkpoint),
                "--device",
                "cpu",
                "--dtype",
                "float32",
                "--out",
                str(tmp_path),
                *args,
            ]
        )
    except SystemExit as e:  # argparse's own checks
        code = e.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not any(tmp_path.iterdir())  # nothing written


def test_model_problems_exit_1(tmp_path, fireplace_png, capsys):
    assert (
        main([str(fireplace_png), "--prompt", "x", "--model", str(tmp_path), "--device", "cpu", "--dtype", "float32"])
        == 1
    )
    assert "has no model_index.json" in capsys.readouterr().err


def test_the_command_does_not_import_gradio():
    code = "import sys, sd_img2img.cli, sd_img2img.engine; print('gradio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr


def test_view_x0_decodes_each_step_once(tiny_checkpoint, fireplace_png, tmp_path, capsys, monkeypatch):
    """--preview full --view x0: each step's x0 is decoded while the run goes and never again (5 steps: 6 step
    pictures and the output = 7 VAE decodes), and the step files are those x0 pictures."""
    from diffusers import AutoencoderKL

    calls = []
    decode = AutoencoderKL.decode

    def counted(self, *args, **kwargs):
        calls.append(1)
        return decode(self, *args, **kwargs)

    monkeypatch.setattr(AutoencoderKL, "decode", counted)
    code = main(
        [
            str(fireplace_png),
            "--prompt",
            "fire",
            "--model",
            str(tiny_checkpoint),
            "--device",
            "cpu",
            "--dtype",
            "float32",
            "--strength",
            "1",
            "--steps",
            "5",
            "--width",
            "64",
            "--height",
            "64",
            "--seed",
            "3",
            "--preview",
            "full",
            "--view",
            "x0",
            "--out",
            str(tmp_path),
        ]
    )
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["steps_taken"] == 5 and len(summary["step_images"]) == 6
    assert len(calls) == 7
    latents_view = main(
        [
            str(fireplace_png),
            "--prompt",
            "fire",
            "--model",
            str(tiny_checkpoint),
            "--device",
            "cpu",
            "--dtype",
            "float32",
            "--strength",
            "1",
            "--steps",
            "5",
            "--width",
            "64",
            "--height",
            "64",
            "--seed",
            "3",
            "--preview",
            "full",
            "--out",
            str(tmp_path / "latents"),
        ]
    )
    other = json.loads(capsys.readouterr().out)
    assert latents_view == 0 and len(calls) == 14
    x0_last, latents_last = (Image.open(s["step_images"][-2]) for s in (summary, other))
    assert x0_last.tobytes() != latents_last.tobytes()  # the x0 view is what was written


@pytest.mark.parametrize(
    "command,var,value,message",
    [
        ("sd-img2img", "SD_IMG2IMG_DEVICE", "gpu", "argument --device (from SD_IMG2IMG_DEVICE): invalid choice: 'gpu'"),
        ("sd-img2img", "SD_IMG2IMG_MAX_SIDE", "big", "--max-side (from SD_IMG2IMG_MAX_SIDE): invalid int value: 'big'"),
        ("app.py", "SD_IMG2IMG_PREVIEW", "bogus", "--preview (from SD_IMG2IMG_PREVIEW): invalid choice: 'bogus'"),
        ("app.py", "SD_IMG2IMG_PORT", "abc", "argument --port (from SD_IMG2IMG_PORT): invalid int value: 'abc'"),
    ],
    ids=["cli-device", "cli-max-side", "app-preview", "app-port"],
)
def test_environment_values_get_the_flags_checks(fireplace_png, command, var, value, message):
    """Both commands (the flags they share are defined once, settings.add_model_flags; --port is the demo's own)."""
    argv = [str(ROOT / "app.py")] if command == "app.py" else ["-m", "sd_img2img", str(fireplace_png), "--prompt", "x"]
    proc = subprocess.run(
        [sys.executable, *argv], capture_output=True, text=True, env={**os.environ, var: value}, timeout=120
    )
    assert proc.returncode == 2 and message in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_pngs_carry_automatic1111_sampler_names_and_model_hash(tiny_checkpoint, fireplace_png, tmp_path, capsys):
    import hashlib

    code = main(
        [
            str(fireplace_png),
            "--prompt",
            "fire",
            "--model",
            str(tiny_checkpoint),
            "--device",
            "cpu",
            "--dtype",
            "float32",
            "--strength",
            "0.5",
            "--steps",
            "4",
            "--width",
            "64",
            "--height",
            "64",
            "--seed",
            "5",
            "--sampler",
            "k_euler_a",
            "--out",
            str(tmp_path),
        ]
    )
    summary = json.loads(capsys.readouterr().out)
    assert code == 0
    text = Image.open(summary["output"]).text["parameters"]
    unet = Path(tiny_checkpoint) / "unet" / "diffusion_pytorch_model.safetensors"
    assert f"Model hash: {hashlib.sha256(unet.read_bytes()).hexdigest()[:10]}" in text
    assert "Sampler: Euler a" in text and "Model: tiny-sd15" in text and str(tiny_checkpoint) not in text
