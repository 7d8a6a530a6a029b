"""Install sd-img2img into the current Python environment: torch first, then this package with its test tools.

    python install.py            # the CPU build of torch where there is no NVIDIA GPU, else PyPI's CUDA build
    python install.py --cpu      # the CPU build whatever the machine has
    python install.py --no-test  # without pytest, Playwright and ruff

Why a script: PyPI's Linux torch wheels are CUDA builds (several GB with their nvidia-* packages), and a plain
``pip install -e .`` takes one even on a machine without a GPU. The CPU build comes from a wheel pip already has
locally (``--find-links``, no index asked), else from PyTorch's CPU index. A torch that is already installed is kept.
The package itself does not pin torch, so any torch ≥ 2.1 you install yourself is used as it is.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
HERE = Path(__file__).resolve().parent


def has_nvidia_gpu() -> bool:
    return shutil.which("nvidia-smi") is not None or Path("/proc/driver/nvidia/version").exists()


def pip(*args: str, check: bool = True) -> bool:
    cmd = [sys.executable, "-m", "pip", "install", "-q", *args]
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=check).returncode == 0


def install_torch(cpu: bool) -> None:
    if importlib.util.find_spec("torch") is not None:
        print("torch is already installed: kept", flush=True)
        return
    if not cpu:
        pip("torch")
        return
    # a CPU wheel pip already has (its --find-links), without asking any index, else PyTorch's CPU index; then
    # torch's own requirements (filelock, sympy, …) from the usual index, the torch installed staying as it is
    if not pip("--no-index", "--no-deps", "torch", check=False):
        pip("--no-deps", "torch", "--index-url", CPU_INDEX)
    pip("torch")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cpu", action="store_true", help="install torch's CPU build even where there is a GPU")
    p.add_argument("--no-test", action="store_true", help="leave out the test tools (pytest, Playwright, ruff)")
    args = p.parse_args(argv)
    cpu = args.cpu or not has_nvidia_gpu()
    print(f"torch: {'CPU build' if cpu else 'CUDA build (an NVIDIA GPU is present)'}", flush=True)
    install_torch(cpu)
    pip("-e", f"{HERE}[test]" if not args.no_test else str(HERE))
    import torch  # noqa: F401 — fails here, not in the demo, if the install is broken

    print(
        f"installed: torch {sys.modules['torch'].__version__}; run `python app.py --model random` for the "
        "offline demo, `python -m pytest -q` for the tests",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
