"""keep_freed_memory: memory a step frees is reused by the next without page faults, in worker threads too."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest
from appserver import ROOT

pytestmark = pytest.mark.skipif(sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")

# A worker thread runs a small SD-shaped UNet (random weights) three times, as the demo runs its steps; count the
# page faults of the third forward (the first two may grow the heap).
CHILD = r"""
import json, resource, sys, threading
from sd_img2img.engine.cpu_memory import keep_freed_memory
applied = keep_freed_memory()
import torch
from diffusers import UNet2DConditionModel
torch.set_num_threads(1)
torch.manual_seed(0)
unet = UNet2DConditionModel(block_out_channels=(64, 128, 256, 256), layers_per_block=1, cross_attention_dim=64,
                            attention_head_dim=8, sample_size=32).eval()
x, t, c = torch.randn(2, 4, 48, 48), torch.tensor([500, 500]), torch.randn(2, 77, 64)
faults = []
def steps():
    for _ in range(3):
        before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
        with torch.inference_mode():
            unet(x, t, encoder_hidden_states=c)
        faults.append(resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before)
worker = threading.Thread(target=steps)
worker.start(); worker.join()
print(json.dumps({"applied": applied, "faults": faults}))
"""


def run_child(keep: str) -> dict:
    env = {**os.environ, "SD_IMG2IMG_KEEP_FREED_MEMORY": keep, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_freed_activations_are_reused_without_page_faults():
    tuned, plain = run_child("1"), run_child("0")
    assert tuned["applied"] is True and plain["applied"] is False
    # malloc as is: every forward faults its activations in again (thousands of pages, ~60 MB here) …
    assert plain["faults"][2] > 5000, plain
    # … kept: the third forward reuses what the second freed
    assert tuned["faults"][2] < plain["faults"][2] / 10, (tuned, plain)
