"""Does this CPU compute bfloat16 natively? ``--dtype auto`` on the cpu picks bfloat16 only where it does.

bfloat16 halves the bytes every weight and activation moves, and where the CPU has bf16 dot-product
instructions oneDNN runs convolutions and matmuls on them: measured here (2-vCPU AMD EPYC with AVX-512 BF16)
an SD1.5 UNet step at 512×512 takes 6.0 s in bf16 against 9.9 s in fp32. Without those instructions bf16 is
emulated and many times *slower* than fp32 (pytorch #86550, #146508), so it is never picked blindly.

Native means:

- x86: ``avx512_bf16`` (AVX-512 BF16: AMD Zen 4 and later, Intel Cooper Lake) or ``amx_bf16`` (Intel AMX:
  Sapphire Rapids and later) in ``/proc/cpuinfo``'s flags;
- Arm: the ``bf16`` feature (``/proc/cpuinfo``'s ``Features`` on Linux; ``hw.optional.arm.FEAT_BF16`` on macOS).

``SD_IMG2IMG_NATIVE_BF16=0`` (or ``1``) overrides the detection, e.g. to keep a server in float32.
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
import sys

ENV = "SD_IMG2IMG_NATIVE_BF16"
X86_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
ARM_BF16_FLAGS = ("bf16",)


def cpu_flags(cpuinfo: str) -> set[str]:
    """The feature flags of ``/proc/cpuinfo``'s text (x86 ``flags``, Arm ``Features``), of every processor."""
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return flags


def _override(environ) -> bool | None:
    raw = environ.get(ENV, "").strip().lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    return None


@functools.lru_cache(maxsize=1)
def _detected() -> bool:
    if sys.platform == "darwin":
        try:
            out = subprocess.run(
                ["sysctl", "-n", "hw.optional.arm.FEAT_BF16"], capture_output=True, text=True, timeout=5
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return False
        return out == "1"
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            return has_native_bf16(f.read(), platform.machine())
    except OSError:
        return False


def has_native_bf16(cpuinfo: str, machine: str) -> bool:
    """Whether ``/proc/cpuinfo`` text ``cpuinfo`` of a ``machine`` (``x86_64``, ``aarch64`` …) shows native bf16."""
    flags = cpu_flags(cpuinfo)
    arm = machine.lower() in ("aarch64", "arm64") or machine.lower().startswith("arm")
    return any(f in flags for f in (ARM_BF16_FLAGS if arm else X86_BF16_FLAGS))


def native_bf16(environ=None) -> bool:
    """True where this CPU computes bfloat16 natively (``SD_IMG2IMG_NATIVE_BF16`` overrides the detection)."""
    override = _override(os.environ if environ is None else environ)
    return _detected() if override is None else override


def describe() -> str:
    """One line for logs and reports: what was detected and whether the override is set."""
    override = _override(os.environ)
    detected = _detected()
    text = f"native bf16: {'yes' if detected else 'no'} ({platform.machine()})"
    if override is not None:
        text += f"; {ENV}={os.environ[ENV]} → {'yes' if override else 'no'}"
    return text
