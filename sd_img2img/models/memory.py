"""How much memory a checkpoint needs, read from its safetensors headers (no weights read), and what the system
has: what a GPU server checks before loading a model, and what a CPU user is told before a large one loads."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from sd_img2img.models.families import Family

_DTYPE_BYTES = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
}


def safetensors_parameters(path: str | Path) -> tuple[int, int]:
    """(number of values, bytes on disk) of a ``.safetensors`` file, from its header only (``single_file.read_header``:
    ``safetensors.safe_open``, no tensor read). Raises ``ModelLoadError`` for a file that is not safetensors."""
    from sd_img2img.models.single_file import read_header

    count = size = 0
    for entry in read_header(path).values():
        n = math.prod(entry["shape"])
        count += n
        size += n * _DTYPE_BYTES.get(entry["dtype"], 4)
    return count, size


def model_memory(model: str | Path, dtype: torch.dtype | str | None = None) -> dict[str, int] | None:
    """Bytes each component of a local checkpoint takes in memory once loaded in ``dtype`` (None: as stored),
    from the safetensors headers (no weights read); a single ``.safetensors`` file is one part. None for a
    checkpoint that is neither a local folder nor a file.

    The sum is what loading it needs (plus activations while it runs); the largest component is what
    ``offload="model"`` keeps on the GPU at a time.
    """
    path = Path(str(model)).expanduser()
    if isinstance(dtype, str):
        dtype = None if dtype == "auto" else getattr(torch, dtype)
    per_value = torch.finfo(dtype).bits // 8 if dtype is not None else None
    if path.suffix == ".safetensors" and path.is_file():  # a single file: one part (all components together)
        count, size = safetensors_parameters(path)
        return {"single_file": count * per_value if per_value else size}
    if not (path / "model_index.json").is_file():
        return None
    out: dict[str, int] = {}
    for folder in sorted(p for p in path.iterdir() if p.is_dir()):
        files = list(folder.glob("*.safetensors"))
        if not files:
            continue
        count = size = 0
        for f in files:
            c, s = safetensors_parameters(f)
            count, size = count + c, size + s
        out[folder.name] = count * per_value if per_value else size
    return out


def memory_available() -> int | None:
    """Bytes of memory the system can still give (``MemAvailable`` of /proc/meminfo); None where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def estimate_memory(model: str | Path, dtype: torch.dtype | str | None = None) -> int | None:
    """Bytes loading ``model`` (a local folder) in ``dtype`` takes: every component's weights, from the
    safetensors headers. None when it cannot be told (a hub id)."""
    parts = model_memory(model, dtype)
    return sum(parts.values()) if parts else None


def cpu_load_warning(model: str | Path, family: Family, dtype: torch.dtype, rest: str | Path | None = None) -> str:
    """What to tell someone about to load a flow-matching model (SD3, FLUX and after) on the cpu: how much memory it
    needs (and has), and that it will be very slow. ``rest``: the folder the other components come from when ``model``
    is a transformer-only file (Z-Image's), counted too. Sizes as accelerate writes them (``convert_bytes``:
    1024-based, two decimals: ``23.17 GB``)."""
    from accelerate.utils import convert_bytes

    need = estimate_memory(model, dtype)
    if need and rest is not None:
        others = model_memory(rest, dtype) or {}
        need += sum(size for part, size in others.items() if part != family.denoiser)
    have = memory_available()
    size = f"about {convert_bytes(need)} of memory" if need else "tens of GB of memory"
    free = f" ({convert_bytes(have)} available now)" if have else ""
    short = "; it will not fit: expect the load to fail or swap" if need and have and need > have else ""
    return (
        f"{family.label} on the cpu needs {size}{free} for its weights in "
        f"{str(dtype).removeprefix('torch.')}{short}; every step will be very slow (minutes at 1024×1024): "
        "use a GPU if you can"
    )
