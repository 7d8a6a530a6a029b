"""A CPU UNet forward in the main thread and in worker threads, with malloc as it is and with
``sd_img2img.cpu_memory.keep_freed_memory()``: seconds, minor page faults and kernel time per forward.

    python benchmarks/unet_threads.py                       # SD1.5 architecture (random init), 128×128, 1 thread
    python benchmarks/unet_threads.py --size 256 --reps 3

Each setting runs in its own fresh process (malloc settings are process-wide and must precede any thread);
the script prints each one's medians and the ratios. No checkpoint on disk is needed: the UNet is built
with random weights in memory (speed does not depend on their values).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def measure(args) -> dict:
    """In this process: forwards in the main thread and in fresh threads, alternating."""
    from sd_img2img.engine.cpu_memory import keep_freed_memory

    tuned = keep_freed_memory()  # a no-op when SD_IMG2IMG_KEEP_FREED_MEMORY=0
    import resource
    import threading
    import time

    import torch
    from architectures import architecture
    from diffusers import UNet2DConditionModel

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**architecture(args.arch).unet).eval()
    side = args.size // 8
    x, t, c = (
        torch.randn(2, 4, side, side),
        torch.tensor([500, 500]),
        torch.randn(2, 77, unet.config.cross_attention_dim),
    )

    def forward() -> tuple[float, int, float]:
        r0, t0 = resource.getrusage(resource.RUSAGE_THREAD), time.perf_counter()
        with torch.inference_mode():
            unet(x, t, encoder_hidden_states=c)
        r1 = resource.getrusage(resource.RUSAGE_THREAD)
        return time.perf_counter() - t0, r1.ru_minflt - r0.ru_minflt, r1.ru_stime - r0.ru_stime

    def in_thread() -> list:
        out: list = []
        worker = threading.Thread(target=lambda: out.extend(forward() for _ in range(2)))
        worker.start()
        worker.join()
        return out

    forward()  # warm-up
    runs: dict[str, list] = {"main": [], "thread": []}
    for _ in range(args.reps):
        runs["main"] += [forward() for _ in range(2)]
        runs["thread"] += in_thread()
    return {
        "keep_freed_memory": tuned,
        **{
            where: dict(
                seconds=round(statistics.median(r[0] for r in rs), 3),
                minor_faults=int(statistics.median(r[1] for r in rs)),
                kernel_seconds=round(statistics.median(r[2] for r in rs), 3),
            )
            for where, rs in runs.items()
        },
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", choices=("tiny", "sd15"), default="sd15")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--reps", type=int, default=3, help="rounds of (2 main-thread + 2 worker-thread forwards)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args)))
        return 0
    results = {}
    for name, value in (("malloc as is", "0"), ("keep_freed_memory", "1")):
        env = {**os.environ, "SD_IMG2IMG_KEEP_FREED_MEMORY": value, "PYTHONPATH": str(ROOT)}
        out = subprocess.run(
            [sys.executable, __file__, "--child", *(argv or sys.argv[1:])],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        results[name] = json.loads(out.strip().splitlines()[-1])
        for where in ("main", "thread"):
            r = results[name][where]
            print(
                f"{name:18s} {where:6s}: {r['seconds']:.3f} s/forward, {r['minor_faults']:>7d} minor faults, "
                f"{r['kernel_seconds']:.3f} s in the kernel",
                flush=True,
            )
    base, tuned = results["malloc as is"], results["keep_freed_memory"]
    print(
        f"worker thread / main thread: as is {base['thread']['seconds'] / base['main']['seconds']:.2f}, "
        f"tuned {tuned['thread']['seconds'] / tuned['main']['seconds']:.2f}"
    )
    print(
        f"tuned / as is: main {tuned['main']['seconds'] / base['main']['seconds']:.2f}, "
        f"worker thread {tuned['thread']['seconds'] / base['thread']['seconds']:.2f}"
    )
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
