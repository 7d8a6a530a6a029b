"""Keep freed activations in the process, so a CPU UNet step does not page-fault its memory back in.

A UNet forward allocates and frees hundreds of MB of activations. glibc's malloc hands large freed blocks
back to the kernel (``munmap``, heap trimming, and whole per-thread heaps deleted once empty), so the next
layer and the next step fault the same memory in again, zero-filled page by page. Measured here on an SD1.5
UNet forward at 128×128 (batch 2, one torch thread): ~464,000 minor page faults and ~1 s of kernel time in a
2.6 s step, in every thread; and a worker thread (where the web demo runs the model) faults even where the
main thread has stopped doing so. With one arena, a fixed mmap threshold, a high trim threshold and 256 MiB
of top padding the same step takes almost no faults (~0.1 %) and ~1.6–1.7 s in the main thread and in worker
threads alike (``benchmarks/unet_threads.py``, docs/performance.md).

``keep_freed_memory()`` sets those with ``mallopt``. It must run before the process starts threads that
allocate (glibc fixes its arena limit at the first one), so ``app.py`` and the ``sd-img2img`` command call it
first thing. The cost: memory freed by a run stays with the process for the next one (its peak stays
resident), which is what a server that runs the same model over and over wants. Set
``SD_IMG2IMG_KEEP_FREED_MEMORY=0`` to leave malloc as it is; on anything but Linux/glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

# mallopt parameters, from glibc's malloc.h
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8

SETTINGS = (
    (M_ARENA_MAX, 1),  # every thread allocates from the main heap, which keeps what it is given back
    (M_MMAP_THRESHOLD, 32 << 20),  # blocks under 32 MiB come from the heap (fixed: no dynamic threshold)
    (M_TRIM_THRESHOLD, 1 << 30),  # the heap's free top goes back to the kernel only beyond 1 GiB
    (M_TOP_PAD, 256 << 20),  # and keeps 256 MiB of slack above what is in use (64 MiB still faults)
)
ENV = "SD_IMG2IMG_KEEP_FREED_MEMORY"

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Tune glibc's malloc as the module docstring says; True when it is (now or earlier) in effect."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get(ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own libc
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    _applied = all(mallopt(param, value) == 1 for param, value in SETTINGS)
    return _applied
