"""ZeroGPU (Hugging Face Spaces' shared GPUs): a GPU is attached for one call of a function decorated with
``spaces.GPU(duration=…)``, and a call that runs past its duration is cut off.

``ZeroGpuBackend`` makes every run its own GPU call: a single run, and each run of a series (a grid cell, a loop, a
batch image) in its turn, so a grid is never cut off at a fixed limit and the GPU is handed back between the runs of
a series, while other visitors' runs go in between. Each call asks for its run's estimate on this server (×
``GPU_SECONDS_MARGIN`` + ``GPU_SECONDS_FLOOR``), or ``GPU_SECONDS`` before this server has measured a run.

Stop reaches the run from outside the call: the stream is closed between steps (no flag travels into the call).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

from sd_img2img.config import GPU_SECONDS, GPU_SECONDS_FLOOR, GPU_SECONDS_MARGIN
from sd_img2img.engine.result import GenerationResult
from sd_img2img.engine.step_recorder import StepFrame
from sd_img2img.plan.prepare import PreparedRequest


def zero_gpu_spaces() -> Any | None:
    """The ``spaces`` package on ZeroGPU hardware (installed, and its config says so: ``SPACES_ZERO_GPU``), else
    None (elsewhere ``spaces.GPU`` changes nothing)."""
    try:
        import spaces  # type: ignore[import-not-found]
        from spaces.config import Config  # type: ignore[import-not-found]
    except ImportError:
        return None
    return spaces if getattr(Config, "zero_gpu", False) else None


def on_zero_gpu(backend, spaces: Any | None = None):
    """``backend`` with each run a ZeroGPU call on ZeroGPU hardware (or with ``spaces`` given); ``backend`` itself
    elsewhere."""
    spaces = spaces if spaces is not None else zero_gpu_spaces()
    return ZeroGpuBackend(backend, spaces) if spaces is not None else backend


class ZeroGpuBackend:
    """``backend`` (a ``Backend``) whose ``stream`` is one ``spaces.GPU`` call per run, its duration the run's own.

    Args:
        backend: where the runs go.
        spaces: the ``spaces`` package.
    """

    def __init__(self, backend, spaces: Any):
        self.backend = backend
        self._gpu_stream = spaces.GPU(duration=self.duration)(self._run)

    def __getattr__(self, name: str):  # names, capacity, describe, prepare, estimate …: the backend's own
        return getattr(self.backend, name)

    def duration(self, prepared: PreparedRequest, name: str) -> int:
        """Seconds of GPU time one run asks for: its estimate here with a margin, ``GPU_SECONDS`` before any."""
        seconds = self.backend.estimate(prepared, name)
        if seconds is None:
            return GPU_SECONDS
        return math.ceil(seconds * GPU_SECONDS_MARGIN + GPU_SECONDS_FLOOR)

    def _run(self, prepared: PreparedRequest, name: str) -> Iterator[StepFrame | GenerationResult]:
        yield from self.backend.stream(prepared, name)

    def stream(
        self, prepared: PreparedRequest, name: str, should_stop: Callable[[], bool] | None = None
    ) -> Iterator[StepFrame | GenerationResult]:
        """One GPU call for the run; ``should_stop`` turning True closes it after the step it is on."""
        stream = self._gpu_stream(prepared, name)
        try:
            for item in stream:
                yield item
                if should_stop is not None and should_stop() and not isinstance(item, GenerationResult):
                    return
        finally:
            stream.close()
