"""ZeroGPU (Hugging Face's shared GPUs), as far as it can be checked off that hardware: the start-up order its
``spaces`` package needs, and one GPU call per run, each asking for that run's own duration.

ZeroGPU itself attaches a GPU only on a Space, so the second test hands ``ZeroGpuBackend`` a recording ``spaces``
stand-in that calls the duration function as ZeroGPU does (with the call's own arguments) and then the run itself;
everything else is the real backend and the tiny checkpoint.
"""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest
from appserver import ROOT

FIREPLACE = str(ROOT / "examples" / "fireplace.png")


def test_spaces_is_imported_before_torch_is_asked_about_cuda():
    """The Space's start-up (app.py's imports, its settings and backend), with every CUDA question torch is asked
    recorded: ZeroGPU needs ``spaces`` imported before the first one."""
    pytest.importorskip("spaces", reason="ZeroGPU's spaces package is not installed (pip install spaces)")
    script = f"""
import sys
import torch
asked = []
for name in ("is_available", "device_count", "current_device", "init", "_lazy_init", "is_bf16_supported"):
    real = getattr(torch.cuda, name)
    def wrapped(*a, _real=real, _name=name, **k):
        asked.append((_name, "spaces" in sys.modules))
        return _real(*a, **k)
    setattr(torch.cuda, name, wrapped)
sys.path.insert(0, {str(ROOT)!r})
sys.argv = ["app.py", "--model", "random"]
import app  # the Space's entry: its imports
from sd_img2img.ui.app import make_backend
from sd_img2img.settings import parse_settings
make_backend(parse_settings(["--model", "random"], environ={{}}))
print(asked)
assert asked, "torch was never asked about CUDA: the check checked nothing"
assert all(after for _, after in asked), asked
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


class RecordingSpaces:
    """``spaces`` as ZeroGPU runs it, minus the GPU: ``GPU(duration=fn)(task)`` asks ``fn`` with the call's
    arguments for the seconds, then runs the task."""

    def __init__(self):
        self.calls: list[int] = []

    def GPU(self, duration):  # noqa: N802  (the package's name)
        def decorate(task):
            def call(*args, **kwargs):
                self.calls.append(duration(*args, **kwargs))
                yield from task(*args, **kwargs)

            return call

        return decorate


def test_each_run_of_a_grid_is_one_gpu_call_asking_for_its_own_estimate(tiny_checkpoint):
    import math

    from sd_img2img import config
    from sd_img2img.engine import Engine
    from sd_img2img.engine.backend import LocalBackend
    from sd_img2img.engine.zero_gpu import ZeroGpuBackend, on_zero_gpu
    from sd_img2img.plan.request import GenerationRequest
    from sd_img2img.series.grid import grid_axis, plan_grid
    from sd_img2img.series.series import run_series

    engine = Engine(str(tiny_checkpoint), device="cpu", dtype="float32")  # nothing measured yet
    local = LocalBackend(engine)
    assert on_zero_gpu(local) is local  # off ZeroGPU nothing changes
    spaces = RecordingSpaces()
    backend = ZeroGpuBackend(local, spaces)
    base = GenerationRequest("fire", FIREPLACE, strength=1.0, steps=4, seed=3, width=64, height=64)
    axes = grid_axis("strength", "1.0", local.names), grid_axis("steps", "4, 8, 12", local.names)
    grid = plan_grid(base, axes, local.names[0], local.prepare, lambda name: engine.family)
    cells = list(run_series(grid.series, backend))
    assert len(spaces.calls) == 3 == len(cells)  # one GPU call per cell, never one for the grid
    assert spaces.calls[0] == config.GPU_SECONDS  # before this server measured a run
    assert all(config.GPU_SECONDS_FLOOR < s < config.GPU_SECONDS for s in spaces.calls[1:]), spaces.calls
    last = grid.series.runs[2].prepared
    assert backend.duration(last, local.names[0]) == math.ceil(local.estimate(last, local.names[0]) * 1.5 + 10)
    alone = [engine.generate(run.prepared).output for run in grid.series.runs]
    assert all(c.result.output.tobytes() == a.tobytes() for c, a in zip(cells, alone))
    stopped = SimpleNamespace(flag=False)
    stream = backend.stream(last, local.names[0], should_stop=lambda: stopped.flag)
    first = next(stream)
    stopped.flag = True  # Stop reaches the call from outside: it ends after the step it is on
    assert first.index == 0 and list(stream) == [] and len(spaces.calls) == 4
