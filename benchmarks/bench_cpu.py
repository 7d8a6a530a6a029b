"""Fast on a 2-vCPU CPU Space? Two targets, measured in one run on this machine, with medians and ratios.

  Target 1: one guided SD1.5-architecture UNet step (batch 2) at 512×512, ``--dtype auto`` (bfloat16 where the
            CPU computes it natively) against float32. Target: ratio ≤ 0.65.
  Target 2: an SD-Turbo-shaped img2img request (SD2.1 architecture, 512×512, 2 steps × strength 0.5 = 1 step,
            guidance 0) through the demo's API (``python app.py --vae tiny --taesd … --dtype auto`` served on
            127.0.0.1, ``/img2img`` called with gradio_client, warm) against plain diffusers' float32
            ``StableDiffusionImg2ImgPipeline`` in this process. Target: ratio ≤ 0.25 (aim 0.2).

Also timed: the same request through this project's ``Engine`` in this process with the app's settings (what
the app costs on top), and the honest-time estimate the engine makes for it after its first run. Checked, not
timed: the engine in float32 with the full VAE gives plain diffusers' output exactly (max pixel difference 0).

    python benchmarks/bench_cpu.py --json benchmarks/results/cpu-targets.json
    python benchmarks/bench_cpu.py --short      # CI: tiny checkpoints, 64×64; seconds

Random weights with the real architectures (``benchmarks/architectures.py``, built once under
``benchmarks/results/checkpoints``): speed does not depend on the weights' values. Runs offline.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
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
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_generation import RESULTS, SEED, AppServer, ensure_checkpoint, machine, max_pixel_diff, median  # noqa: E402

PROMPT = "a cozy room with a fireplace, photo"
SAMPLER = "k_euler"  # SD-Turbo's own scheduler (Euler, trailing timesteps), built from the checkpoint's config


def ratio(num: float, den: float) -> float:
    return round(num / den, 4)


# -- target 1 ---------------------------------------------------------------------------------------------------


def unet_target(args, report: dict) -> None:
    """One guided UNet step (batch 2), float32 and ``--dtype auto``, interleaved; medians and their ratio."""
    import torch
    from diffusers import UNet2DConditionModel

    from sd_img2img.models.devices import default_channels_last, resolve_dtype

    ckpt, _ = ensure_checkpoint(args.unet_arch, Path(args.checkpoints))
    auto = resolve_dtype("auto", "cpu")
    fp32 = UNet2DConditionModel.from_pretrained(ckpt / "unet", use_safetensors=True).eval()
    models = {"float32": fp32, "auto": fp32 if auto == torch.float32 else copy.deepcopy(fp32).to(auto)}
    auto_channels_last = default_channels_last("cpu", auto)  # as load_model prepares the UNet for --dtype auto
    if auto_channels_last:
        models["auto"].to(memory_format=torch.channels_last)
    h = args.size // 8
    g = torch.Generator("cpu").manual_seed(0)
    x = torch.randn(2, 4, h, h, generator=g)
    ctx = torch.randn(2, 77, fp32.config.cross_attention_dim, generator=g)
    t = torch.tensor(500)
    times: dict[str, list[float]] = {k: [] for k in models}
    outputs = {}
    with torch.inference_mode():
        for i in range(1 + args.unet_iters):  # the first round warms up and is not counted
            for name, unet in models.items():
                dtype = next(unet.parameters()).dtype
                start = time.perf_counter()
                out = unet(x.to(dtype), t, ctx.to(dtype), return_dict=False)[0]
                if i:
                    times[name].append(time.perf_counter() - start)
                outputs[name] = out.float()
    med = {k: round(median(v), 4) for k, v in times.items()}
    row = dict(
        arch=args.unet_arch,
        size=args.size,
        batch=2,
        auto_dtype=str(auto).removeprefix("torch."),
        auto_channels_last=auto_channels_last,
        median_seconds=med,
        all_seconds={k: [round(s, 4) for s in v] for k, v in times.items()},
        ratio=ratio(med["auto"], med["float32"]),
        target=0.65,
        auto_vs_fp32_max_abs=round(float((outputs["auto"] - outputs["float32"]).abs().max()), 5),
    )
    report["target1_unet"] = row
    print(f"Target 1: guided UNet step ({args.unet_arch}, {args.size}×{args.size}, batch 2)")
    print(f"  float32              median {med['float32']:.3f} s")
    layout = ", channels_last" if auto_channels_last else ""
    print(f"  auto ({row['auto_dtype']}{layout})  median {med['auto']:.3f} s")
    print(f"  ratio auto/float32   {row['ratio']:.3f} of medians (target ≤ 0.65)", flush=True)
    del models, fp32


# -- target 2 ---------------------------------------------------------------------------------------------------


def turbo_target(args, report: dict) -> None:
    import torch
    from diffusers import StableDiffusionImg2ImgPipeline

    from sd_img2img.engine import Engine, GenerationRequest
    from sd_img2img.plan.images import fit_image
    from sd_img2img.plan.samplers import make_scheduler
    from sd_img2img.plan.timing import format_plan
    from sd_img2img.ui.examples import draw_fireplace

    ckpt, taesd = ensure_checkpoint(args.turbo_arch, Path(args.checkpoints))
    size, steps, strength = args.size, 2, 0.5
    image = draw_fireplace(size, size)
    image_path = Path(tempfile.mkdtemp(prefix="bench-cpu-")) / "init.png"
    image.save(image_path)

    plain = StableDiffusionImg2ImgPipeline.from_pretrained(ckpt, use_safetensors=True, torch_dtype=torch.float32)
    plain.set_progress_bar_config(disable=True)
    plain.scheduler = make_scheduler(SAMPLER, plain.scheduler.config)

    def plain_run():
        return plain(
            prompt=PROMPT,
            image=fit_image(image, size, size),
            strength=strength,
            num_inference_steps=steps,
            guidance_scale=0.0,
            generator=torch.Generator("cpu").manual_seed(SEED),
        ).images[0]

    request = GenerationRequest(
        prompt=PROMPT,
        init_image=image,
        strength=strength,
        steps=steps,
        seed=SEED,
        sampler=SAMPLER,
        guidance_scale=0.0,
        width=size,
        height=size,
    )
    # Checked, not timed: float32 + the full VAE through the engine is plain diffusers, pixel for pixel.
    exact = Engine(str(ckpt), device="cpu", dtype="float32", vae="full")
    fp32_diff = max_pixel_diff(exact.generate(request).output, plain_run())
    del exact

    fast = Engine(str(ckpt), device="cpu", dtype="auto", vae="tiny", taesd=str(taesd))
    fast.load()
    app = AppServer(ckpt, ["--vae", "tiny", "--taesd", str(taesd), "--dtype", "auto", "--device", "cpu"])
    paths = {
        "plain": lambda: plain_run(),
        "engine": lambda: fast.generate(request),
        "app": lambda: app.call(
            str(image_path), strength=strength, steps=steps, size=size, sampler=SAMPLER, guidance=0.0
        ),
    }
    times: dict[str, list[float]] = {k: [] for k in paths}
    estimate = None
    steps_taken = {}
    try:
        for i in range(1 + args.reps):  # round 0 warms every path up (the app loads its model) and is not counted
            for name, fn in paths.items():
                start = time.perf_counter()
                out = fn()
                if i:
                    times[name].append(time.perf_counter() - start)
                if name == "engine":
                    steps_taken["engine"] = out.steps_taken
                elif name == "app":
                    steps_taken["app"] = out[2]["steps_taken"]
            if i == 0:  # after one run, what the engine says the next will take
                estimate = fast.estimate_seconds(fast.prepare(request))
    finally:
        app.close()
    med = {k: round(median(v), 4) for k, v in times.items()}
    row = dict(
        arch=args.turbo_arch,
        size=size,
        steps=steps,
        strength=strength,
        guidance=0.0,
        sampler=SAMPLER,
        app_flags="--vae tiny --dtype auto",
        engine_dtype=str(fast.loaded.dtype).removeprefix("torch."),
        steps_taken=steps_taken,
        median_seconds=med,
        all_seconds={k: [round(s, 4) for s in v] for k, v in times.items()},
        ratio=ratio(med["app"], med["plain"]),
        engine_ratio=ratio(med["engine"], med["plain"]),
        target=0.25,
        fp32_engine_vs_plain_max_pixel_diff=fp32_diff,
        estimate_after_first_run=round(estimate, 4) if estimate is not None else None,
        plan_line=format_plan(steps_taken.get("engine", 0), estimate),
    )
    report["target2_turbo"] = row
    print(
        f"Target 2: SD-Turbo-shaped img2img ({args.turbo_arch}, {size}×{size}, {steps} steps × {strength}, guidance 0)"
    )
    print(f"  plain diffusers float32             median {med['plain']:.3f} s")
    print(f"  engine ({row['engine_dtype']}, vae tiny)       median {med['engine']:.3f} s")
    print(f"  app API ({row['engine_dtype']}, vae tiny)      median {med['app']:.3f} s")
    print(f"  ratio app/plain                     {row['ratio']:.3f} of medians (target ≤ 0.25, aim 0.2)")
    print(f"  ratio engine/plain                  {row['engine_ratio']:.3f} of medians")
    print(f"  steps taken                         {steps_taken}")
    print(f"  estimate after the first run        {row['plan_line']}")
    print(f"  float32 engine vs plain diffusers   max pixel difference {fp32_diff}", flush=True)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--short", action="store_true", help="CI: tiny checkpoints, 64×64, 2 repetitions (seconds)")
    p.add_argument("--checkpoints", default=str(RESULTS / "checkpoints"), help="where random checkpoints are kept")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--unet-arch", default="sd15", choices=("tiny", "sd15"))
    p.add_argument("--turbo-arch", default="sd-turbo", choices=("tiny", "sd-turbo"))
    p.add_argument("--unet-iters", type=int, default=3, help="counted UNet steps per dtype (one more warms up)")
    p.add_argument("--reps", type=int, default=3, help="counted requests per path (one more round warms up)")
    p.add_argument("--only", nargs="+", default=["1", "2"], choices=("1", "2"), help="which targets")
    p.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.short:
        args.size, args.unet_arch, args.turbo_arch, args.unet_iters, args.reps = 64, "tiny", "tiny", 2, 2
    from sd_img2img.engine.cpu_memory import keep_freed_memory
    from sd_img2img.models.cpu_features import describe

    keep_freed_memory()  # as app.py and the CLI do, so in-process paths and the app compare like with like
    from sd_img2img.settings import quiet_libraries

    quiet_libraries()
    import torch

    report = dict(
        machine=machine(),
        cpu_bf16=describe(),
        torch_threads=torch.get_num_threads(),
        short=args.short,
        command=" ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
    )
    print(
        f"{report['machine'].get('cpu')} · {describe()} · torch {torch.__version__} · {torch.get_num_threads()} threads"
    )
    if "1" in args.only:
        unet_target(args, report)
    if "2" in args.only:
        turbo_target(args, report)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
