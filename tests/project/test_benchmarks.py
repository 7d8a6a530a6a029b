"""The benchmarks run (short mode, tiny checkpoint): they print medians and ratios. No timing is asserted here;
the figures themselves are in docs/performance.md. Each takes ~20 s on 2 cores, so they are long checks
(``python -m pytest -m slow tests/project``), not part of the default run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(args: list[str], timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.slow
def test_generation_benchmark_short(tiny_checkpoint, tiny_taesd, tmp_path):
    out = tmp_path / "report.json"
    args = [
        "benchmarks/bench_generation.py",
        "--short",
        "--model",
        str(tiny_checkpoint),
        "--taesd",
        str(tiny_taesd),
        "--json",
        str(out),
    ]
    proc = run(args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "plain diffusers" in proc.stdout and "ratio b:approx/a" in proc.stdout and "ratio b:taesd/a" in proc.stdout
    report = json.loads(out.read_text())
    (row,) = report["runs"]
    assert row["steps_taken"] == 3  # 4 steps at strength 0.75
    assert set(row["median_seconds"]) >= {"a", "b:approx", "b:taesd"}
    assert all(len(v) == 2 for v in row["all_seconds"].values())  # two counted repetitions per path
    for key, (path, base) in {"b:approx/a": ("b:approx", "a"), "b:taesd/a": ("b:taesd", "a")}.items():
        expected = row["median_seconds"][path] / row["median_seconds"][base]  # the ratio printed is the medians'
        assert abs(row["ratios"][key] - expected) < 0.01 * expected + 1e-3, (key, row)
    assert row["output_max_pixel_diff"] == {"b:approx vs a": 0, "b:taesd vs a": 0}  # the engine is diffusers, exactly
    if (ROOT / "app.py").is_file():  # (c): the app's API end to end, printed with its ratio
        expected = row["median_seconds"]["c"] / row["median_seconds"]["b:approx"]
        assert abs(row["ratios"]["c/b:approx"] - expected) < 0.01 * expected + 1e-3, proc.stdout
        assert f"{row['ratios']['c/b:approx']:.3f} of medians" in proc.stdout
    assert report["unet_step_ms"]["plain"] > 0


@pytest.mark.slow
def test_cpu_benchmark_short(tmp_path):
    """bench_cpu.py --short: both targets run on tiny checkpoints; the printed ratios are the medians' ratios, the
    float32 engine is plain diffusers exactly, every path ran the one planned step."""
    out = tmp_path / "cpu.json"
    proc = run(
        ["benchmarks/bench_cpu.py", "--short", "--checkpoints", str(tmp_path / "ckpts"), "--json", str(out)],
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    unet, turbo = report["target1_unet"], report["target2_turbo"]
    med = unet["median_seconds"]
    assert abs(unet["ratio"] - med["auto"] / med["float32"]) < 1e-3 * unet["ratio"] + 1e-4
    assert f"{unet['ratio']:.3f} of medians" in proc.stdout
    assert all(len(v) == 2 for v in unet["all_seconds"].values())
    if unet["auto_dtype"] == "float32":  # no native bf16: auto is float32, the same model
        assert unet["auto_vs_fp32_max_abs"] == 0
    med = turbo["median_seconds"]
    assert abs(turbo["ratio"] - med["app"] / med["plain"]) < 1e-3 * turbo["ratio"] + 1e-4
    assert f"{turbo['ratio']:.3f} of medians" in proc.stdout
    assert turbo["fp32_engine_vs_plain_max_pixel_diff"] == 0  # float32 + full VAE: diffusers, exactly
    assert turbo["steps_taken"] == {"engine": 1, "app": 1}  # 2 steps × 0.5
    assert turbo["estimate_after_first_run"] is not None and "1 step will run · about" in turbo["plan_line"]
    from sd_img2img.models.cpu_features import native_bf16

    assert turbo["engine_dtype"] == ("bfloat16" if native_bf16() else "float32")
