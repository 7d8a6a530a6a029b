"""A single run's wait behind another visitor's grid, through the public API, with and without turns, in one run:

  turns:  the page as it is: every run of a series takes its own turn on the model, so a single run clicked during
          the grid goes in between its cells;
  before: the same page with gradio's queue holding the model for a whole event (the model events' concurrency limit
          set back to the backend's capacity, as before turns): the single run waits for the whole grid.

The scenario is the fair-turns issue's: a 6-cell strength × steps grid of 285 steps (strengths 1.0 and 0.9 down,
40, 50 and 60 steps across), and a single 10-step run at strength 0.7 clicked once the grid's first cell has the model
(two gradio_client visitors on loopback). It prints, for each mode, the single run alone, the longest cell alone, the
single run behind the grid (click to result) and the grid itself (medians over --reps), and the single run's wait
behind the grid as a ratio to its own time plus one cell (turns: at most 1).

    # the tiny random checkpoint at 512² on this machine (what docs/app.md quotes)
    python benchmarks/bench_turns.py --reps 3
    # a short check
    python benchmarks/bench_turns.py --short

Runs offline (random weights: the times do not depend on their values).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
FIREPLACE = str(ROOT / "examples" / "fireplace.png")
GRID = dict(rows="strength", row_values="1.0, 0.9", columns="steps", column_values="40, 50, 60")  # 285 steps


def serve(engine, size: int, before: bool):
    """The page on loopback around ``engine``; ``before``: gradio's queue gives a whole event the model."""
    import socket

    from sd_img2img.settings import AppSettings
    from sd_img2img.ui import app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    backend = app.as_backend(engine)
    settings = AppSettings(model=backend.names[0], host="127.0.0.1", port=port, max_side=size)
    demo = app.build_demo(backend, settings)
    if before:
        fns = demo.fns.values() if isinstance(demo.fns, dict) else demo.fns
        for fn in fns:
            if fn.concurrency_id == "model":
                fn.concurrency_limit = backend.capacity
    _, url, _ = app.launch(demo, settings, prevent_thread_lock=True, quiet=True)
    return demo, url


def single(client, size: int, seed: int = 99):
    from gradio_client import handle_file

    return client.submit(image=handle_file(FIREPLACE), prompt="fire", negative_prompt="", strength=0.7, steps=10,
                         seed=seed, width=size, height=size, api_name="/img2img")  # fmt: skip


def grid(client, size: int, **axes):
    from gradio_client import handle_file

    return client.submit(image=handle_file(FIREPLACE), prompt="fire", negative_prompt="", strength=1.0, steps=40,
                         seed=5, width=size, height=size, **{**GRID, **axes}, api_name="/grid")  # fmt: skip


def timed(job) -> float:
    t = time.perf_counter()
    job.result(timeout=3600)
    return time.perf_counter() - t


def one_round(url: str, size: int) -> dict:
    """The single run alone, the longest cell alone, then the single run clicked behind the started grid."""
    from gradio_client import Client

    a, b = (Client(url, verbose=False, download_files=False) for _ in range(2))
    alone = timed(single(b, size))
    cell = timed(grid(a, size, row_values="1.0", column_values="60"))  # the grid's longest cell, as a grid runs it
    t0 = time.perf_counter()
    job = grid(a, size)
    while not job.outputs():  # its first redraw: its first cell has the model
        time.sleep(0.005)
    behind = timed(single(b, size, seed=98))
    job.result(timeout=3600)
    return dict(alone=alone, cell=cell, behind=behind, grid=time.perf_counter() - t0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="hub id or folder (default: the tiny random checkpoint)")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--short", action="store_true", help="one round at 128² (a quick check)")
    args = p.parse_args(argv)
    if args.short:
        args.size, args.reps = 128, 1
    import torch

    from sd_img2img.engine import Engine

    model = args.model
    if model is None:
        from sd_img2img.testing.tiny import build_checkpoint

        model = str(build_checkpoint(Path(tempfile.mkdtemp(prefix="bench-turns-")) / "tiny-sd15"))
    engine = Engine(model, device="cpu", dtype="float32")
    flags = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in open("/proc/cpuinfo").read()]
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs ({', '.join(flags)}), "
          f"torch {torch.__version__} on {torch.get_num_threads()} threads; {model} at {args.size}²")  # fmt: skip
    rows = {}
    for mode in ("turns", "before"):
        demo, url = serve(engine, args.size, before=mode == "before")
        try:
            one_round(url, args.size)  # warm-up: this size's kernels, the timing model
            rounds = [one_round(url, args.size) for _ in range(args.reps)]
        finally:
            demo.close()
        rows[mode] = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    print("mode    single alone  longest cell  single behind the grid  grid   behind / (alone + cell)")
    for mode, r in rows.items():
        ratio = r["behind"] / (r["alone"] + r["cell"])
        print(f"{mode:7} {r['alone']:10.2f} s {r['cell']:11.2f} s {r['behind']:18.2f} s {r['grid']:8.2f} s  "
              f"{ratio:6.2f}")  # fmt: skip
    print(f"the single run behind the grid: {rows['before']['behind'] / rows['turns']['behind']:.1f}× sooner "
          "with turns")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
