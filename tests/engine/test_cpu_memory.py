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

# A worker thread runs an SD-shaped stack of convolutions (random weights, latents of 96 × 96: activations of several
# MB, each freed as the next layer runs) three times, as the demo runs its steps; count the page faults of the third
# forward (the first two may grow the heap). Plain torch: the allocator's behaviour is the same as in a UNet, and the
# child starts in ~2 s instead of ~7 s with diffusers.
CHILD = r"""
import json, resource, sys, threading
from sd_img2img.engine.cpu_memory import keep_freed_memory
applied = keep_freed_memory()
import torch
torch.set_num_threads(1)
torch.manual_seed(0)
layers = []
for a, b in ((4, 64), (64, 128), (128, 128), (128, 64), (64, 4)):
    layers += [torch.nn.Conv2d(a, b, 3, padding=1), torch.nn.SiLU()]
net = torch.nn.Sequential(*layers).eval()
x = torch.randn(2, 4, 96, 96)
faults = []
def steps():
    for _ in range(3):
        before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
        with torch.inference_mode():
            net(x)
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
