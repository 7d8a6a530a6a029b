"""What the steps' animation costs beside the run it animates: seconds to make it, its size, and the ratio to the run.

    python benchmarks/bench_animation.py [--arch tiny|sd15] [--size 512] [--repeats 3]

Runs img2img at strength 0.7 (10 and 30 steps, the ``approx`` and ``full`` previews) on a random-weight checkpoint of
the architecture (``benchmarks/architectures.py``; cpu, float32), then ``formats.animation.step_animation`` on each
result, and prints the medians. Random weights make noisy frames, the worst case for the file's size.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.architectures import build_checkpoint  # noqa: E402
from sd_img2img.engine import Engine, GenerationRequest  # noqa: E402
from sd_img2img.formats.animation import step_animation  # noqa: E402
from sd_img2img.ui.examples import draw_fireplace  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="tiny", help="tiny (default) or a real architecture such as sd15")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-animation-") as tmp:
        engine = Engine(str(build_checkpoint(Path(tmp) / args.arch, args.arch)), device="cpu", dtype="float32")
        engine.load()
        image = draw_fireplace(args.size, args.size)
        for preview, steps in (("approx", 10), ("approx", 30), ("full", 30)):
            runs, animations, sizes = [], [], []
            for k in range(args.repeats + 1):  # the first of each setting warms up, uncounted
                request = GenerationRequest(prompt="fire", init_image=image, strength=0.7, steps=steps, seed=k,
                                            width=args.size, height=args.size, preview=preview)  # fmt: skip
                t = time.perf_counter()
                result = engine.generate(request)
                run = time.perf_counter() - t
                t = time.perf_counter()
                animation = step_animation(result, Path(tmp) / f"{k}.webp")
                if k:
                    runs.append(run), animations.append(time.perf_counter() - t), sizes.append(animation.bytes)
            run, made = statistics.median(runs), statistics.median(animations)
            print(f"{args.arch} {args.size}² {steps} steps × 0.7, preview {preview}: {animation.frames} frames · run "
                  f"{run:.2f} s · animation {made:.2f} s ({made / run:.1%} of the run) · "
                  f"{statistics.median(sizes) / 1024:.0f} KB")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
