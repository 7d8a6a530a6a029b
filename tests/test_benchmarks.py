"""The benchmarks run (short mode, tiny checkpoint): they print medians and ratios. No timing is asserted here;
the figures themselves are in docs/performance.md."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(args: list[str], timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)


def test_generation_benchmark_short(tiny_checkpoint, tiny_taesd, tmp_path):
    out = tmp_path / "report.json"
    args = ["benchmarks/bench_generation.py", "--short", "--model", str(tiny_checkpoint), "--taesd", str(tiny_taesd),
            "--json", str(out)]
    proc = run(args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "plain diffusers" in proc.stdout and "ratio b:approx/a" in proc.stdout and "ratio b:taesd/a" in proc.stdout
    report = json.loads(out.read_text())
    (row,) = report["runs"]
    assert row["steps_taken"] == 3  # 4 steps at strength 0.75
    assert set(row["median_seconds"]) >= {"a", "b:approx", "b:taesd"}
    assert all(len(v) == 2 for v in row["all_seconds"].values())  # two counted repetitions per path
    assert row["ratios"]["b:approx/a"] > 0 and row["ratios"]["b:taesd/a"] > 0
    assert row["output_max_pixel_diff"] == {"b:approx vs a": 0, "b:taesd vs a": 0}  # the engine is diffusers, exactly
    if (ROOT / "app.py").is_file():  # (c): the app's API end to end
        assert row["ratios"]["c/b:approx"] > 0, proc.stdout
    assert report["unet_step_ms"]["plain"] > 0


def test_cli_path_does_not_import_gradio():
    code = ("import sys, sd_img2img.cli, sd_img2img.engine, sd_img2img.metadata\n"
            "print(any(m == 'gradio' or m.startswith('gradio.') for m in sys.modules))")
    proc = run(["-c", code], timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "False"
