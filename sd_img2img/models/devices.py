"""Where a model runs and in what number format: the device (``auto``: cuda, then mps, then cpu), the dtype
(``auto``: float16 on GPUs, bfloat16 on CPUs that compute it natively), one lock per device, memory layout, and
freeing what a failed run held."""

from __future__ import annotations

import threading

import torch

from sd_img2img.config import DEVICES, DTYPES
from sd_img2img.errors import UserInputError, check_choice

_DEVICE_LOCKS: dict[str, threading.RLock] = {}
_DEVICE_LOCKS_GUARD = threading.Lock()


def device_lock(device: str) -> threading.RLock:
    """One lock per device: runs on the same device take turns, whatever engine they come from.

    Re-entrant, so a step callback may decode a picture (which takes the lock) inside its own run.
    """
    with _DEVICE_LOCKS_GUARD:
        return _DEVICE_LOCKS.setdefault(device, threading.RLock())


def resolve_device(device: str = "auto") -> str:
    """``auto`` → cuda, then mps, then cpu; an explicit device must be present."""
    check_choice("device", device, DEVICES)
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise UserInputError("device 'cuda' was asked for but no CUDA GPU is available; use --device auto or cpu")
    if device == "mps" and not has_mps:
        raise UserInputError("device 'mps' was asked for but Apple's MPS is not available; use --device auto or cpu")
    return device


def resolve_dtype(dtype: str, device: str) -> torch.dtype:
    """``auto`` → float16 on cuda and mps; on the cpu bfloat16 where it computes bf16 natively (AVX-512 BF16,
    AMX, Arm BF16: ``cpu_features.native_bf16``), float32 elsewhere."""
    from sd_img2img.models.cpu_features import native_bf16

    check_choice("dtype", dtype, DTYPES)
    if dtype == "auto":
        if device in ("cuda", "mps"):
            return torch.float16
        return torch.bfloat16 if native_bf16() else torch.float32
    return getattr(torch, dtype)


def default_channels_last(device: str, dtype: torch.dtype) -> bool:
    """channels_last where it measurably helps: on cuda, and on the cpu in bfloat16, where oneDNN's bf16
    convolutions work in NHWC (a bf16 UNet step at 512×512: 3.0 s channels_last vs 6.5 s contiguous here,
    docs/performance.md "CPU: what helps"). The cpu's float32 path is left exactly as diffusers runs it."""
    return device == "cuda" or (device == "cpu" and dtype == torch.bfloat16)


def free_memory(device: str | None = None) -> None:
    """Release what a failed run held: diffusers' ``training_utils.free_memory``, Python's garbage collection, then
    the cached blocks of the host's accelerator (``torch.accelerator``: cuda, mps, xpu …; nothing more on a
    cpu-only host).

    Imported here, not at the top: the module imports diffusers' models and pipelines (and peft where installed),
    seconds on a cold start but nothing once a model is loaded, which is when a run can fail.

    Args:
        device: the device the run used; unused (kept for the callers), as a run uses the host's one accelerator.
    """
    from diffusers.training_utils import free_memory as diffusers_free_memory

    diffusers_free_memory()
