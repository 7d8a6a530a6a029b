"""Is the step gallery free? One request, sent alternately through three paths, in one process and one run:

  (a) diffusers' plain ``StableDiffusionImg2ImgPipeline`` (what a user gets without this project),
  (b) this project's ``Engine`` with the full step gallery (every step's picture, per preview decoder),
  (c) the demo's API end to end (``app.py`` served on 127.0.0.1, called with ``gradio_client``).

Each repetition runs every path once, in a rotating order, after one warm-up round that is not counted; the
report gives medians, the ratios (b)/(a) and (c)/(b), the seconds per step, a guided UNet step on its own,
and, on a GPU, peak memory per offload mode and each performance option's effect.

    # CPU, the real SD1.5 architecture with random weights (built once under benchmarks/results/)
    python benchmarks/bench_generation.py --arch sd15 --size 256 --steps 10 --reps 5
    # CI's short mode: the tiny checkpoint, two repetitions
    python benchmarks/bench_generation.py --short
    # GPU (see docs/performance.md for the full set)
    python benchmarks/bench_generation.py --arch sd15 --device cuda --size 512 --steps 50 --strength 0.75 1.0 \\
        --offload none model sequential --sweep --compile

Speed does not depend on the weights' values, so random weights measure it honestly. Runs offline.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
PROMPT = "a cozy room with a fireplace, photo"
SEED = 1592514025


# -- helpers ---------------------------------------------------------------------------------------------------


def sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: str) -> tuple[float, object]:
    sync(device)
    t = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t, out


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def machine() -> dict:
    import torch

    info = dict(
        python=platform.python_version(),
        platform=platform.platform(),
        cpu=platform.processor() or platform.machine(),
        cpu_count=os.cpu_count(),
        torch=torch.__version__,
        torch_threads=torch.get_num_threads(),
    )
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(Exception):
        import psutil

        info["memory_gib"] = round(psutil.virtual_memory().total / 2**30, 1)
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    import diffusers
    import transformers

    info.update(diffusers=diffusers.__version__, transformers=transformers.__version__)
    return info


def ensure_checkpoint(arch: str, folder: Path) -> tuple[Path, Path]:
    """A random-weight checkpoint and TAESD of ``arch`` under ``folder`` (built on first use, then reused)."""
    import torch
    from architectures import build_checkpoint, build_taesd

    ckpt, taesd = folder / f"{arch}", folder / f"taesd-{arch}"
    if not (ckpt / "model_index.json").is_file():
        print(f"building a random {arch} checkpoint in {ckpt} …", file=sys.stderr, flush=True)
        build_checkpoint(ckpt, arch, **({"dtype": torch.bfloat16} if arch == "sdxl" else {}))  # 7 GB, not 14
    if not (taesd / "config.json").is_file():
        build_taesd(taesd, arch)  # the tiny architectures' is tiny, the real ones' taesd's size
    return ckpt, taesd


def max_pixel_diff(a, b) -> int:
    import numpy as np

    return int(
        np.abs(np.asarray(a.convert("RGB"), dtype=np.int16) - np.asarray(b.convert("RGB"), dtype=np.int16)).max()
    )


# -- (c) the app's API -----------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppServer:
    """``python app.py`` as a subprocess on 127.0.0.1 and a port of its own, called through ``gradio_client``."""

    def __init__(self, model: Path, extra: list[str], timeout: float = 600.0, env: dict | None = None):
        env = env or {}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        cmd = [
            sys.executable,
            str(ROOT / "app.py"),
            "--model",
            str(model),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *extra,
        ]
        self.log = tempfile.NamedTemporaryFile("w+", prefix="bench-app-", suffix=".log", delete=False)
        t = time.perf_counter()
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **env}
        )
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app.py exited with {self.proc.returncode}: {self.tail()}")
            try:
                with urllib.request.urlopen(self.url, timeout=2):
                    break
            except OSError:
                if time.perf_counter() - t > timeout:
                    self.close()
                    raise RuntimeError(
                        f"app.py did not answer on {self.url} within {timeout:.0f} s: {self.tail()}"
                    ) from None
                time.sleep(0.2)
        self.start_seconds = time.perf_counter() - t
        from gradio_client import Client

        # As a browser does: step images are fetched by URL when shown; by default gradio_client would download
        # the whole gallery again at every streamed step (quadratic in the steps). The output PNG is fetched below.
        self.client = Client(self.url, verbose=False, download_files=False)

    def tail(self, n: int = 2000) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")[-n:]

    def call(self, image_path: str, *, strength: float, steps: int, size: int, sampler: str, guidance: float):
        from gradio_client import handle_file

        result = self.client.predict(
            image=handle_file(image_path),
            prompt=PROMPT,
            negative_prompt="",
            strength=strength,
            steps=steps,
            real_steps=False,
            seed=SEED,
            sampler=sampler,
            guidance_scale=guidance,
            width=size,
            height=size,
            api_name="/img2img",
        )
        with urllib.request.urlopen(result[0]["url"], timeout=60) as r:  # the output PNG, end to end
            r.read()
        return result

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()
        with contextlib.suppress(OSError):
            os.unlink(self.log.name)


# -- a guided UNet step on its own -----------------------------------------------------------------------------


def unet_step_ms(unet, size: int, device: str, dtype, iters: int, warmup: int = 2) -> float:
    """Median ms of one guided UNet evaluation (batch 2: unconditional + conditional) at ``size``×``size``."""
    import torch

    h = size // 8
    memory_format = (
        torch.channels_last
        if next(unet.parameters()).is_contiguous(memory_format=torch.channels_last)
        and next(unet.parameters()).dim() == 4
        else torch.contiguous_format
    )
    g = torch.Generator("cpu").manual_seed(0)
    x = torch.randn(2, 4, h, h, generator=g).to(device, dtype).contiguous(memory_format=memory_format)
    ctx = torch.randn(2, 77, unet.config.cross_attention_dim, generator=g).to(device, dtype)
    t = torch.tensor(500, device=device)
    extra = {}
    if unet.config.addition_embed_type == "text_time":  # SDXL: pooled text embeddings and size/crop ids
        pooled = unet.config.projection_class_embeddings_input_dim - 6 * unet.config.addition_time_embed_dim
        extra = dict(
            added_cond_kwargs=dict(
                text_embeds=torch.randn(2, pooled, generator=g).to(device, dtype),
                time_ids=torch.tensor([[size, size, 0, 0, size, size]] * 2).to(device, dtype),
            )
        )
    times = []
    with torch.inference_mode():
        for i in range(warmup + iters):
            dt, _ = timed(lambda: unet(x, t, encoder_hidden_states=ctx, return_dict=False, **extra), device)
            if i >= warmup:
                times.append(dt)
    return median(times) * 1000


# -- the benchmark ---------------------------------------------------------------------------------------------


def run(args) -> dict:
    import diffusers
    import torch

    from sd_img2img.engine import Engine, GenerationRequest
    from sd_img2img.models.devices import resolve_device, resolve_dtype
    from sd_img2img.models.families import peek
    from sd_img2img.models.loading import attention_processors
    from sd_img2img.plan.samplers import make_scheduler
    from sd_img2img.ui.examples import draw_fireplace

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    if args.model:
        ckpt, taesd = Path(args.model), Path(args.taesd) if args.taesd else None
    else:
        ckpt, taesd = ensure_checkpoint(args.arch, Path(args.checkpoints))
    report: dict = dict(
        machine=machine(),
        command=" ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        settings=dict(
            model=str(ckpt),
            arch=args.arch if not args.model else None,
            device=device,
            dtype=str(dtype).removeprefix("torch."),
            size=args.size,
            steps=args.steps,
            strengths=args.strength,
            sampler=args.sampler,
            guidance=args.guidance,
            reps=args.reps,
            previews=args.previews,
            compile=args.compile,
        ),
        runs=[],
        app=None,
        unet_step_ms={},
        offload={},
        sweep={},
    )
    print(f"# {report['command']}", flush=True)
    print(f"# machine: {json.dumps(report['machine'])}", flush=True)

    # (a) plain diffusers: the family's own img2img pipeline, loaded on its own (its UNet is not the engine's, so
    # engine options don't leak into it) — or, with --share-weights, built from the engine's loaded components (a
    # model too large to hold twice: the real SDXL on 24 GB)
    family = peek(ckpt)
    pipeline_class = getattr(diffusers, family.img2img)
    report["settings"]["family"] = family.name
    engine = Engine(
        str(ckpt), device=device, dtype=args.dtype, taesd=str(taesd) if taesd else None, compile=args.compile
    )
    t = time.perf_counter()
    if args.share_weights:
        lm = engine.load()
        plain = pipeline_class(**lm.img2img.components)
    else:
        plain = pipeline_class.from_pretrained(ckpt, torch_dtype=dtype, use_safetensors=True)
        plain.to(device)
    plain.set_progress_bar_config(disable=True)
    plain.scheduler = make_scheduler(args.sampler, plain.scheduler.config)
    report["load_seconds"] = {"plain": round(time.perf_counter() - t, 2)}

    # (b) the engine
    t = time.perf_counter()
    lm = engine.load()
    if "taesd" in args.previews:
        engine.decoder("taesd")  # load TAESD now, not inside the first timed run
    report["load_seconds"]["engine"] = round(time.perf_counter() - t, 2)
    report["load_seconds"]["engine_compile_warmup"] = round(lm.warmup_seconds, 2)
    report["attention"] = dict(plain=attention_processors(plain.unet), engine=lm.attention)
    report["channels_last"] = lm.channels_last

    init = draw_fireplace(args.size, args.size)
    tmp = tempfile.TemporaryDirectory(prefix="bench-")
    init_path = os.path.join(tmp.name, "init.png")
    init.save(init_path)

    app = None
    if args.app:
        if not (ROOT / "app.py").is_file():
            print("# (c) skipped: app.py does not exist yet", flush=True)
        else:
            extra = [
                "--device",
                device,
                "--dtype",  # the same dtype as (a) and (b)
                args.dtype,
                *(["--taesd", str(taesd)] if taesd else []),
                *(["--compile"] if args.compile else []),
                *args.app_args,
            ]
            t = time.perf_counter()
            app = AppServer(ckpt, extra, env={"OMP_NUM_THREADS": str(args.threads)} if args.threads else None)
            report["app"] = dict(start_seconds=round(app.start_seconds, 2), args=extra)

    def plain_run(strength: float):
        generator = torch.Generator("cpu").manual_seed(SEED)
        with torch.inference_mode():
            return plain(
                prompt=PROMPT,
                image=init,
                strength=strength,
                num_inference_steps=args.steps,
                guidance_scale=args.guidance,
                generator=generator,
            ).images[0]

    def engine_run(strength: float, preview: str):
        return engine.generate(
            GenerationRequest(
                prompt=PROMPT,
                init_image=init,
                strength=strength,
                steps=args.steps,
                seed=SEED,
                sampler=args.sampler,
                guidance_scale=args.guidance,
                width=args.size,
                height=args.size,
                preview=preview,
            )
        )

    try:
        for strength in args.strength:
            paths = [("a", "plain diffusers", lambda s=strength: plain_run(s))]
            for p in args.previews:
                paths.append((f"b:{p}", f"engine, {p} gallery", lambda s=strength, p=p: engine_run(s, p)))
            if app is not None:
                paths.append(
                    (
                        "c",
                        "app API",
                        lambda s=strength: app.call(
                            init_path,
                            strength=s,
                            steps=args.steps,
                            size=args.size,
                            sampler=args.sampler,
                            guidance=args.guidance,
                        ),
                    )
                )
            times: dict[str, list[float]] = {key: [] for key, _, _ in paths}
            per_step: dict[str, list[float]] = {key: [] for key, _, _ in paths if key.startswith("b:")}
            outputs: dict[str, object] = {}
            steps_taken = None
            for rep in range(args.warmup + args.reps):
                k = rep % len(paths)
                for key, _, fn in paths[k:] + paths[:k]:  # rotate the order so no path always goes first
                    dt, out = timed(fn, device)
                    if rep >= args.warmup:
                        times[key].append(dt)
                    print(
                        f"  rep {rep - args.warmup + 1 if rep >= args.warmup else 'warm-up'}: ({key}) {dt:.3f} s",
                        file=sys.stderr,
                        flush=True,
                    )
                    if key.startswith("b:"):
                        steps_taken = out.steps_taken
                        per_step[key].append(out.seconds["per_step"])
                        outputs[key] = out.output
                        assert len(out.frames) == out.steps_taken + 1 and all(f.images for f in out.frames)
                    elif key == "a":
                        outputs[key] = out
            med = {key: median(v) for key, v in times.items()}
            row = dict(
                strength=strength,
                steps_taken=steps_taken,
                median_seconds={k: round(v, 4) for k, v in med.items()},
                all_seconds={k: [round(x, 4) for x in v] for k, v in times.items()},
                seconds_per_step={k: round(v / steps_taken, 4) for k, v in med.items()} if steps_taken else {},
                engine_step_seconds={k: round(median(v), 4) for k, v in per_step.items()},
                ratios={},
                output_max_pixel_diff={},
            )
            # ratio of the medians (the headline), and two estimates that resist a busy machine: the ratio of
            # the fastest runs, and the median of the ratios within each repetition (paths run back to back)
            row["ratios_of_minimums"], row["median_paired_ratios"] = {}, {}

            def add_ratio(name: str, num: str, den: str, row=row, med=med, times=times) -> None:
                row["ratios"][name] = round(med[num] / med[den], 4)
                row["ratios_of_minimums"][name] = round(min(times[num]) / min(times[den]), 4)
                row["median_paired_ratios"][name] = round(median([x / y for x, y in zip(times[num], times[den])]), 4)

            for p in args.previews:
                add_ratio(f"b:{p}/a", f"b:{p}", "a")
                row["output_max_pixel_diff"][f"b:{p} vs a"] = max_pixel_diff(outputs[f"b:{p}"], outputs["a"])
            if app is not None:
                base = "b:approx" if "b:approx" in med else f"b:{args.previews[0]}"
                add_ratio(f"c/{base}", "c", base)
            report["runs"].append(row)
            print_row(row, paths)
    finally:
        if app is not None:
            app.close()
        tmp.cleanup()

    # a guided UNet step on its own: plain diffusers' UNet and the engine's (channels_last / compiled where on)
    iters = args.unet_iters
    report["unet_step_ms"]["plain"] = round(unet_step_ms(plain.unet, args.size, device, dtype, iters), 2)
    report["unet_step_ms"]["engine"] = round(unet_step_ms(lm.img2img.unet, args.size, device, dtype, iters), 2)
    print(
        f"guided UNet step at {args.size}x{args.size}: plain {report['unet_step_ms']['plain']:.2f} ms, "
        f"engine {report['unet_step_ms']['engine']:.2f} ms",
        flush=True,
    )

    if args.sweep:
        report["sweep"] = sweep(plain.unet, args, device, dtype)
    if device == "cuda":
        plain.to("cpu")  # out of the way of the offload modes' peak memory
        torch.cuda.empty_cache()
        report["offload"] = offload_memory(engine, ckpt, args, device)
    return report


def print_row(row: dict, paths) -> None:
    names = {key: name for key, name, _ in paths}
    print(
        f"\nstrength {row['strength']}: {row['steps_taken']} steps taken, medians of {len(next(iter(row['all_seconds'].values())))} reps"
    )
    for key, sec in row["median_seconds"].items():
        per = row["seconds_per_step"].get(key)
        extra = (
            f"  (engine's own step timer {row['engine_step_seconds'][key]:.4f} s)"
            if key in row["engine_step_seconds"]
            else ""
        )
        print(f"  ({key:9s}) {names[key]:24s} {sec:8.3f} s/image  {per:.4f} s/step{extra}")
    for name, ratio in row["ratios"].items():
        print(
            f"  ratio {name:14s} {ratio:.3f} of medians, {row['ratios_of_minimums'][name]:.3f} of minimums, "
            f"{row['median_paired_ratios'][name]:.3f} median of per-repetition ratios"
        )
    for name, diff in row["output_max_pixel_diff"].items():
        print(f"  output max pixel difference {name}: {diff}")
    sys.stdout.flush()


def sweep(unet, args, device: str, dtype) -> dict:
    """Each option's effect on a guided UNet step, one at a time, on plain diffusers' UNet."""
    import torch
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    out = {}
    ms = lambda: round(unet_step_ms(unet, args.size, device, dtype, args.unet_iters), 2)  # noqa: E731
    unet.set_attn_processor(AttnProcessor())
    out["math attention"] = ms()
    unet.set_attn_processor(AttnProcessor2_0())
    out["SDPA attention"] = ms()
    unet.to(memory_format=torch.channels_last)
    out["SDPA + channels_last"] = ms()
    if device == "cuda":
        for mode in ("default", "max-autotune-no-cudagraphs"):
            compiled = torch.compile(unet, mode=mode)
            t = time.perf_counter()
            unet_step_ms(compiled, args.size, device, dtype, 1, warmup=1)
            out[f"compile {mode}: compile seconds"] = round(time.perf_counter() - t, 1)
            out[f"SDPA + channels_last + compile {mode}"] = round(
                unet_step_ms(compiled, args.size, device, dtype, args.unet_iters), 2
            )
            torch._dynamo.reset()
    unet.to(memory_format=torch.contiguous_format)
    for k, v in out.items():
        print(f"  sweep: {k:52s} {v}", flush=True)
    return out


def offload_memory(engine, ckpt: Path, args, device: str) -> dict:
    """Peak GPU memory and seconds per image for each offload mode (one run each, at the first strength)."""
    import torch

    from sd_img2img.engine import Engine, GenerationRequest
    from sd_img2img.ui.examples import draw_fireplace

    init = draw_fireplace(args.size, args.size)
    out = {}
    for mode in args.offload:
        e = engine if mode == "none" else Engine(str(ckpt), device=device, dtype=args.dtype, offload=mode)
        e.load()
        req = GenerationRequest(
            prompt=PROMPT,
            init_image=init,
            strength=args.strength[0],
            steps=args.steps,
            seed=SEED,
            sampler=args.sampler,
            width=args.size,
            height=args.size,
            preview="approx",
        )
        e.generate(req)  # warm
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        dt, _ = timed(lambda e=e, req=req: e.generate(req), device)
        out[mode] = dict(seconds=round(dt, 3), peak_gib=round(torch.cuda.max_memory_allocated() / 2**30, 2))
        print(f"  offload {mode:10s} {dt:7.3f} s/image  peak {out[mode]['peak_gib']:.2f} GiB", flush=True)
        if e is not engine:
            del e
            torch.cuda.empty_cache()
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--short", action="store_true", help="CI: tiny checkpoint, 128×128, 4 steps, 2 reps")
    p.add_argument(
        "--arch",
        choices=("tiny", "sd15", "tiny-sdxl", "sdxl"),
        default="sd15",
        help="random checkpoint to build/use (sdxl: the real SDXL base architecture)",
    )
    p.add_argument(
        "--share-weights",
        action="store_true",
        help="(a) runs diffusers' own pipeline on the engine's loaded weights instead of a second copy "
        "(for models too large to hold twice)",
    )
    p.add_argument("--checkpoints", default=str(RESULTS / "checkpoints"), help="where random checkpoints are kept")
    p.add_argument("--model", help="use this checkpoint folder instead of a random one")
    p.add_argument("--taesd", help="TAESD folder to go with --model")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    p.add_argument("--dtype", default="auto", choices=("auto", "float16", "bfloat16", "float32"))
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--strength", type=float, nargs="+", default=[0.75])
    p.add_argument("--sampler", default="k_lms")
    p.add_argument("--guidance", type=float, default=7.5)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1, help="uncounted rounds first")
    p.add_argument("--previews", nargs="+", default=["approx", "taesd"], choices=("approx", "taesd", "full"))
    p.add_argument("--no-app", dest="app", action="store_false", help="leave out (c), the app's API")
    p.add_argument("--app-args", nargs=argparse.REMAINDER, default=[], help="extra flags for app.py (last option)")
    p.add_argument("--compile", action="store_true", help="the engine compiles its UNet (warmed up at load)")
    p.add_argument(
        "--offload",
        nargs="+",
        default=["none"],
        choices=("none", "model", "sequential"),
        help="on cuda: peak memory and speed per offload mode",
    )
    p.add_argument("--sweep", action="store_true", help="each option's effect on a guided UNet step")
    p.add_argument("--unet-iters", type=int, default=5)
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads here and in the app (0: torch's default); 1 resists other load on the machine",
    )
    p.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from sd_img2img.engine.cpu_memory import keep_freed_memory

    keep_freed_memory()  # as app.py and the CLI do, so (a), (b) and (c) run on the same malloc settings
    if args.short:
        args.arch, args.size, args.steps, args.reps, args.unet_iters = "tiny", 128, 4, 2, 2
        if args.dtype == "auto":  # CI checks (b) equals (a) pixel for pixel: float32, as diffusers runs by default
            args.dtype = "float32"
    report = run(args)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    print("\n" + json.dumps({"ratios": [dict(strength=r["strength"], **r["ratios"]) for r in report["runs"]]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
