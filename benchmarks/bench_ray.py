"""What the Ray Serve backend costs and what it buys, in one run on one machine:

  overhead: the same request through the in-process backend (``LocalBackend``) and through one Ray Serve worker
            (``RayBackend``), alternately; medians of the whole request (click to result, as the page sees it) and of
            the time between two steps arriving, and their differences: the Ray path's per-request and per-step cost;
  throughput: N requests at once through 1, then 2 (…) workers: runs per second, and the ratio to one worker.

The in-process engine runs torch on as many threads as a worker's CPUs (``--cpus-per-replica``), so both paths
compute the same way. A local Ray instance (loopback, no dashboard) is started for the run and stopped after it.

    # CPU, the tiny checkpoint (what docs/performance.md quotes for this 2-core machine)
    python benchmarks/bench_ray.py --reps 10 --throughput 8 --replicas 1 2
    # CI's short mode
    python benchmarks/bench_ray.py --short
    # a GPU machine: SD1.5's real architecture with random weights, one GPU per worker
    python benchmarks/bench_ray.py --arch sd15 --device cuda --size 512 --steps 30 --reps 10 --throughput 16 \\
        --replicas 1 2

Runs offline (random weights: speed does not depend on their values).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
FIREPLACE = ROOT / "examples" / "fireplace.png"


def checkpoint(args) -> str:
    """The model to time: ``--model``, else a random-weight one of ``--arch`` (the tiny one by default)."""
    if args.model:
        return args.model
    from benchmarks.architectures import build_checkpoint

    return str(build_checkpoint(Path(tempfile.mkdtemp(prefix="bench-ray-")) / args.arch, args.arch))


def timed_run(backend, name: str, request) -> dict:
    """One request, click to result: its seconds, the time from the click to the first step, and the times between
    the steps as they arrived."""
    t0 = time.perf_counter()
    prepared = backend.prepare(request, name)
    arrivals, result = [], None
    for item in backend.stream(prepared, name):
        arrivals.append(time.perf_counter())
        if hasattr(item, "output"):
            result = item
    gaps = [b - a for a, b in zip(arrivals[1:-1], arrivals[2:-1])]  # step to step (not step 0, not the result)
    return dict(seconds=arrivals[-1] - t0, first=arrivals[0] - t0, gaps=gaps, steps=result.steps_taken)


def overhead(local, remote, name: str, request, reps: int) -> dict:
    """The same request through both backends, alternately, after one warm-up each; medians and differences."""
    runs = {"in_process": [], "ray": []}
    for rep in range(reps + 1):
        for path, backend in (("in_process", local), ("ray", remote))[:: 1 if rep % 2 else -1]:
            run = timed_run(backend, name, request)
            if rep:  # the first round warms both up
                runs[path].append(run)
    out = {}
    for path, rs in runs.items():
        out[path] = dict(
            request_s=statistics.median(r["seconds"] for r in rs),
            first_step_s=statistics.median(r["first"] for r in rs),
            step_s=statistics.median(g for r in rs for g in r["gaps"]),
            steps=rs[0]["steps"],
        )
    a, b = out["in_process"], out["ray"]
    out["per_request_overhead_s"] = b["request_s"] - a["request_s"]
    out["per_step_overhead_s"] = b["step_s"] - a["step_s"]
    out["ratio"] = b["request_s"] / a["request_s"]
    return out


def throughput(backend, name: str, request, count: int) -> float:
    """Runs per second for ``count`` requests sent at once (each on its own thread, as visitors of the page), at most
    ``backend.capacity`` in progress: the page's queue lets that many run together and holds the others."""
    errors, queue = [], threading.Semaphore(backend.capacity)

    def one():
        try:
            with queue:
                timed_run(backend, name, request)
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=one) for _ in range(count)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return count / (time.perf_counter() - t0)


def ray_backend(source: str, options, replicas: int, cpus: float, gpus: float | None):
    from sd_img2img.engine.model_set import ModelSet
    from sd_img2img.serve.backend import RayBackend
    from sd_img2img.serve.options import RayOptions

    layout = RayOptions(replicas=replicas, cpus_per_replica=cpus, gpus_per_replica=gpus)
    backend = RayBackend(ModelSet({"model": source}, options), layout).start()
    while backend.replicas("model") != {"RUNNING": replicas}:  # the new workers up, none of the last layout's left
        time.sleep(0.2)
    return backend


def removed(backend) -> None:
    """Close ``backend`` and wait until Serve has removed its applications (the next layout reuses their names)."""
    from ray import serve

    backend.close()
    while any(name.startswith("sd-img2img") for name in serve.status().applications):
        time.sleep(0.2)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="a checkpoint (default: a random-weight one of --arch)")
    p.add_argument(
        "--arch", default="tiny", help="an architecture of benchmarks/architectures.py (tiny, sd15, sd-turbo, sdxl, …)"
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--preview", default="approx", help="approx (frames at 1/8 size), taesd or full (full-size frames)")
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--throughput", type=int, default=8, help="requests sent at once for the throughput figures")
    p.add_argument("--replicas", type=int, nargs="+", default=[1, 2], help="worker counts for the throughput figures")
    p.add_argument("--cpus-per-replica", type=float, default=1.0)
    p.add_argument("--short", action="store_true", help="CI: 2 repetitions, 2 requests at once, 1 and 2 workers")
    p.add_argument("--json", default=None, help="also write the figures here")
    args = p.parse_args(argv)
    if args.short:
        args.reps, args.throughput, args.steps, args.size = 2, 2, 6, 64
    import torch

    from sd_img2img.engine.backend import LocalBackend
    from sd_img2img.engine.engine import Engine
    from sd_img2img.engine.model_set import ModelSet
    from sd_img2img.models.options import EngineOptions
    from sd_img2img.plan.request import GenerationRequest
    from sd_img2img.serve import cluster
    from sd_img2img.settings import quiet_libraries

    quiet_libraries()
    source = checkpoint(args)
    options = EngineOptions(device=args.device, dtype=args.dtype)
    gpus = 1.0 if args.device == "cuda" else 0.0
    request = GenerationRequest(prompt="a cozy fireplace", init_image=str(FIREPLACE), strength=1.0, steps=args.steps,
                                seed=1, width=args.size, height=args.size, preview=args.preview)  # fmt: skip
    if args.device == "cpu":
        torch.set_num_threads(max(1, int(args.cpus_per_replica)))  # as each worker
    report = dict(machine=platform.processor() or platform.machine(), cpus=os.cpu_count(), device=args.device,
                  model=args.arch if not args.model else args.model, size=args.size, steps=args.steps,
                  preview=args.preview)  # fmt: skip
    local = LocalBackend(ModelSet.of({"model": Engine(source, options)})).start()
    local.wait()
    cluster.start_local()
    remote = ray_backend(source, options, 1, args.cpus_per_replica, gpus)
    report["overhead"] = overhead(local, remote, "model", request, args.reps)
    removed(remote)
    report["throughput"] = {}
    for replicas in args.replicas:
        remote = ray_backend(source, options, replicas, args.cpus_per_replica, gpus)
        throughput(remote, "model", request, replicas)  # warm-up: each worker's first run
        report["throughput"][replicas] = throughput(remote, "model", request, args.throughput)
        removed(remote)
    cluster.disconnect("started")
    print_report(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return report


def print_report(report: dict) -> None:
    o = report["overhead"]
    a, b = o["in_process"], o["ray"]
    print(f"{report['model']} {report['size']}² · {o['ray']['steps']} steps · preview {report['preview']} · "
          f"{report['device']} · {report['cpus']} CPUs")  # fmt: skip
    print(f"{'':24}{'in-process':>12}{'Ray (1 worker)':>16}{'difference':>12}")
    for key, label in (("request_s", "request, median"), ("first_step_s", "to step 0, median"),
                       ("step_s", "step to step, median")):  # fmt: skip
        print(f"{label:24}{a[key] * 1000:10.1f}ms{b[key] * 1000:14.1f}ms{(b[key] - a[key]) * 1000:10.1f}ms")
    print(f"Ray / in-process, per request: {o['ratio']:.2f}×")
    one = report["throughput"].get(1)
    for replicas, rate in report["throughput"].items():
        ratio = f" ({rate / one:.2f}× one worker)" if one and replicas != 1 else ""
        print(f"throughput, {replicas} worker{'s' * (replicas != 1)}: {rate:.2f} runs/s{ratio}")


if __name__ == "__main__":
    main()
