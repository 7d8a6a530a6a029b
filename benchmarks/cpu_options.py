"""What helps on a CPU? Each option's effect on the parts of an SD-Turbo-shaped run, measured one by one.

    python benchmarks/cpu_options.py --arch sd-turbo --size 512 --iters 3 --json benchmarks/results/cpu-options.json
    python benchmarks/cpu_options.py --only unet --interop 1   # the inter-op pool's size (set before any work)
    python benchmarks/cpu_options.py --only compile            # torch.compile of the UNet (minutes to compile)

Parts timed (medians of ``--iters`` after one warm-up call): one UNet evaluation at batch 1 (guidance off, as
SD-Turbo runs) in float32 and bfloat16, contiguous and channels_last, 2 and 1 torch threads; the text encoder on
one prompt in float32 and bfloat16; the full VAE's encode and decode and TAESD's at ``--size``. Random weights
with the real architecture (``benchmarks/architectures.py``): speed does not depend on the weights' values.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def timed(fn, iters: int, warmup: int = 1) -> float:
    times = []
    for i in range(warmup + iters):
        t = time.perf_counter()
        fn()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return round(statistics.median(times), 4)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="sd-turbo", choices=("sd15", "sd-turbo"))
    p.add_argument("--checkpoints", default=str(ROOT / "benchmarks" / "results" / "checkpoints"))
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--interop", type=int, default=0, help="torch.set_num_interop_threads first (0: leave it)")
    p.add_argument("--only", nargs="+", default=["unet", "text", "vae"], choices=("unet", "text", "vae", "compile"))
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args(argv)

    import torch

    if args.interop:
        torch.set_num_interop_threads(args.interop)
    from bench_generation import ensure_checkpoint, machine

    from sd_img2img.engine.cpu_memory import keep_freed_memory

    keep_freed_memory()
    from diffusers import AutoencoderKL, AutoencoderTiny, UNet2DConditionModel
    from transformers import CLIPTextModel

    ckpt, taesd_dir = ensure_checkpoint(args.arch, Path(args.checkpoints))
    report: dict = dict(
        machine=machine(),
        arch=args.arch,
        size=args.size,
        iters=args.iters,
        interop_threads=torch.get_num_interop_threads(),
        threads=torch.get_num_threads(),
        seconds={},
    )
    out = report["seconds"]
    threads = torch.get_num_threads()
    h = args.size // 8
    g = torch.Generator("cpu").manual_seed(0)

    def show(name, value):
        out[name] = value
        print(f"{name:48s} {value:8.3f} s", flush=True)

    with torch.inference_mode():
        if "unet" in args.only or "compile" in args.only:
            unet = UNet2DConditionModel.from_pretrained(ckpt / "unet", use_safetensors=True).eval()
            x = torch.randn(1, 4, h, h, generator=g)
            ctx = torch.randn(1, 77, unet.config.cross_attention_dim, generator=g)
            t = torch.tensor(999)
        if "unet" in args.only:  # every variant once per round, rounds interleaved: outside load hits all alike
            bf16 = copy.deepcopy(unet).to(torch.bfloat16)
            bf16_cl = copy.deepcopy(bf16).to(memory_format=torch.channels_last)
            fp32_cl = copy.deepcopy(unet).to(memory_format=torch.channels_last)
            xb, cb = x.to(torch.bfloat16), ctx.to(torch.bfloat16)
            variants = {
                f"unet batch1 float32 contiguous t{threads}": (unet, x, ctx, threads),
                f"unet batch1 float32 channels_last t{threads}": (
                    fp32_cl,
                    x.contiguous(memory_format=torch.channels_last),
                    ctx,
                    threads,
                ),
                f"unet batch1 bfloat16 contiguous t{threads}": (bf16, xb, cb, threads),
                f"unet batch1 bfloat16 channels_last t{threads}": (
                    bf16_cl,
                    xb.contiguous(memory_format=torch.channels_last),
                    cb,
                    threads,
                ),
                "unet batch1 bfloat16 contiguous t1": (bf16, xb, cb, 1),
            }
            times: dict[str, list[float]] = {k: [] for k in variants}
            for i in range(1 + args.iters):
                for name, (model, xs, cs, n) in variants.items():
                    torch.set_num_threads(n)
                    start = time.perf_counter()
                    model(xs, t, cs)
                    if i:
                        times[name].append(time.perf_counter() - start)
            torch.set_num_threads(threads)
            for name, v in times.items():
                show(name, round(statistics.median(v), 4))
            report["all_unet_seconds"] = {k: [round(s, 3) for s in v] for k, v in times.items()}
            del bf16, bf16_cl, fp32_cl
        if "compile" in args.only:  # inductor with freezing: oneDNN weight prepacking, conv+ReLU fusion
            import torch._inductor.config as inductor

            inductor.freezing = True
            unet.to(dtype=torch.bfloat16, memory_format=torch.channels_last)
            xb, cb = x.to(torch.bfloat16), ctx.to(torch.bfloat16)
            tiny = AutoencoderTiny.from_pretrained(taesd_dir, torch_dtype=torch.bfloat16).eval()
            tiny.to(memory_format=torch.channels_last)
            lat = torch.randn(1, 4, h, h, generator=g).to(torch.bfloat16)
            start = time.perf_counter()
            tiny_decode = torch.compile(tiny.decoder)
            tiny_decode(lat)
            show("torch.compile TAESD decoder: compile + first call", round(time.perf_counter() - start, 2))
            times = {"TAESD decoder bf16 eager": [], "TAESD decoder bf16 compiled": []}
            for i in range(1 + args.iters):
                for name, fn in (
                    ("TAESD decoder bf16 eager", tiny.decoder),
                    ("TAESD decoder bf16 compiled", tiny_decode),
                ):
                    start = time.perf_counter()
                    fn(lat)
                    if i:
                        times[name].append(time.perf_counter() - start)
            for name, v in times.items():
                show(name, round(statistics.median(v), 4))
            compiled = torch.compile(unet)
            start = time.perf_counter()
            compiled(xb, t, cb)
            show("torch.compile UNet: compile + first call", round(time.perf_counter() - start, 2))
            times = {"unet batch1 bfloat16 channels_last eager": [], "unet batch1 bfloat16 channels_last compiled": []}
            for i in range(1 + args.iters):
                for name, fn in (
                    ("unet batch1 bfloat16 channels_last eager", unet),
                    ("unet batch1 bfloat16 channels_last compiled", compiled),
                ):
                    start = time.perf_counter()
                    fn(xb, t, cb)
                    if i:
                        times[name].append(time.perf_counter() - start)
            for name, v in times.items():
                show(name, round(statistics.median(v), 4))
        if "text" in args.only:
            text = CLIPTextModel.from_pretrained(ckpt / "text_encoder", use_safetensors=True).eval()
            ids = torch.randint(0, 49000, (1, 77), generator=g)
            text_bf16 = copy.deepcopy(text).to(torch.bfloat16)
            times = {"text encoder float32": [], "text encoder bfloat16": []}
            for i in range(1 + max(args.iters, 5)):  # interleaved, as the UNet's
                for name, model in (("text encoder float32", text), ("text encoder bfloat16", text_bf16)):
                    start = time.perf_counter()
                    model(ids)
                    if i:
                        times[name].append(time.perf_counter() - start)
            for name, v in times.items():
                show(name, round(statistics.median(v), 4))
        if "vae" in args.only:
            image = torch.rand(1, 3, args.size, args.size, generator=g) * 2 - 1
            lat = torch.randn(1, 4, h, h, generator=g)
            vae = AutoencoderKL.from_pretrained(ckpt / "vae", use_safetensors=True).eval()
            tiny = AutoencoderTiny.from_pretrained(taesd_dir, use_safetensors=True).eval()
            for dtype in (torch.float32, torch.bfloat16):
                name = str(dtype).removeprefix("torch.")
                for label, model in (("full VAE", vae), ("TAESD", tiny)):
                    model.to(dtype)
                    show(f"{label} encode {name}", timed(lambda m=model, d=dtype: m.encode(image.to(d)), args.iters))
                    show(f"{label} decode {name}", timed(lambda m=model, d=dtype: m.decode(lat.to(d)), args.iters))
            tiny.to(torch.bfloat16, memory_format=torch.channels_last)  # as the engine holds it with --vae tiny
            show(
                "TAESD encode bfloat16 channels_last", timed(lambda: tiny.encode(image.to(torch.bfloat16)), args.iters)
            )
            show("TAESD decode bfloat16 channels_last", timed(lambda: tiny.decode(lat.to(torch.bfloat16)), args.iters))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
