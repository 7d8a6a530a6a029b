"""Start-up: how long until the first result is served, and how fast the command line starts.

1. ``python app.py --model DIR`` as a user runs it: seconds until the page answers and until the first
   ``/img2img`` result comes back (the model loads in the background while the page is already up).
2. The same phases in one fresh interpreter, each timed on its own: imports (``import app``: gradio, torch,
   diffusers), model load (``engine.load()``), page up (``build_demo`` + ``launch``), first request (it pays
   the warm-up: first-touch allocations, oneDNN/cuDNN kernel choice), and a second request for comparison.
3. The ``sd-img2img`` command: wall time of ``sd-img2img --help`` and of importing its run path, and a check
   that gradio is never imported on it.

    python benchmarks/bench_startup.py --arch sd15 --size 256 --steps 10
    python benchmarks/bench_startup.py --short      # CI: the tiny checkpoint
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from bench_generation import PROMPT, RESULTS, SEED, ensure_checkpoint, free_port  # noqa: E402

# The run path of the CLI: the module, its parser, and what main() imports before it runs a request.
CLI_IMPORTS = "import sd_img2img.cli, sd_img2img.engine, sd_img2img.formats.metadata"


def wall(cmd: list[str], reps: int) -> float:
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def cli_startup(reps: int) -> dict:
    exe = Path(sys.executable).with_name("sd-img2img")
    help_cmd = [str(exe), "--help"] if exe.exists() else [sys.executable, "-m", "sd_img2img", "--help"]
    check = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys; {CLI_IMPORTS}; from sd_img2img import cli\n"
            "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m == 'gradio' or m.startswith('gradio.')))",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    gradio_modules = json.loads(check.stdout.strip().splitlines()[-1].replace("'", '"'))
    importtime = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", CLI_IMPORTS], capture_output=True, text=True, check=True, cwd=ROOT
    ).stderr
    top = []  # the slowest top-level imports (cumulative µs)
    for line in importtime.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit() and not parts[2].startswith("  "):
            top.append((int(parts[1]), parts[2].strip()))
    top.sort(reverse=True)
    out = dict(
        help_seconds=round(wall(help_cmd, reps), 3),
        run_path_import_seconds=round(wall([sys.executable, "-c", CLI_IMPORTS], reps), 3),
        gradio_imported=bool(gradio_modules),
        slowest_imports={name: round(us / 1e6, 3) for us, name in top[:5]},
    )
    print(
        f"sd-img2img --help: {out['help_seconds']:.2f} s; importing its run path: {out['run_path_import_seconds']:.2f} s; "
        f"gradio imported: {out['gradio_imported']}; slowest imports: {out['slowest_imports']}",
        flush=True,
    )
    return out


def request_kwargs(image_path: str, size: int, steps: int) -> dict:
    from gradio_client import handle_file

    return dict(
        image=handle_file(image_path),
        prompt=PROMPT,
        negative_prompt="",
        strength=0.75,
        steps=steps,
        real_steps=False,
        seed=SEED,
        sampler="k_lms",
        guidance_scale=7.5,
        width=size,
        height=size,
        api_name="/img2img",
    )


def init_image(folder: str, size: int) -> str:
    from sd_img2img.ui.examples import draw_fireplace

    path = os.path.join(folder, "init.png")
    draw_fireplace(size, size).save(path)
    return path


def app_end_to_end(model: Path, taesd: Path, args, folder: str) -> dict:
    """``python app.py`` from outside: page up, then the first served result."""
    from gradio_client import Client

    image = init_image(folder, args.size)
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    log = open(os.path.join(folder, "app.log"), "w+")
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "app.py"),
            "--model",
            str(model),
            "--taesd",
            str(taesd),
            "--device",
            args.device,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"app.py exited with {proc.returncode}: {log.read()[-2000:]}")
            try:
                with urllib.request.urlopen(url, timeout=2):
                    break
            except OSError:
                time.sleep(0.1)
        t_page = time.perf_counter() - t0
        client = Client(url, verbose=False)
        client.predict(**request_kwargs(image, args.size, args.steps))
        t_first = time.perf_counter() - t0
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    out = dict(page_seconds=round(t_page, 2), first_result_seconds=round(t_first, 2))
    print(f"python app.py → page answers: {t_page:.2f} s, first /img2img result served: {t_first:.2f} s", flush=True)
    return out


CHILD = r"""
import json, os, sys, time
t0 = time.perf_counter()
sys.path.insert(0, {root!r}); sys.argv = ["app.py"]
from sd_img2img.ui import app
from sd_img2img.engine.backend import LocalBackend
from sd_img2img.settings import make_engine, parse_settings
t1 = time.perf_counter()
settings = parse_settings(["--model", {model!r}, "--taesd", {taesd!r}, "--device", {device!r},
                           "--host", "127.0.0.1", "--port", str({port})])
engine = make_engine(settings.model, settings.options)
engine.load()
t2 = time.perf_counter()
demo = app.build_demo(LocalBackend(engine, name=settings.model).start(), settings)
app.launch(demo, settings, prevent_thread_lock=True, quiet=True)
t3 = time.perf_counter()
from gradio_client import Client, handle_file
client = Client("http://127.0.0.1:{port}/", verbose=False)
kw = dict(image=handle_file({image!r}), prompt={prompt!r}, negative_prompt="", strength=0.75, steps={steps},
          real_steps=False, seed={seed}, sampler="k_lms", guidance_scale=7.5, width={size}, height={size},
          api_name="/img2img")
client.predict(**kw)
t4 = time.perf_counter()
client.predict(**kw)
t5 = time.perf_counter()
demo.close()
print("PHASES " + json.dumps(dict(imports=t1 - t0, load=t2 - t1, page_up=t3 - t2, first_request=t4 - t3,
                                  second_request=t5 - t4)))
"""


def app_phases(model: Path, taesd: Path, args, folder: str) -> dict:
    """The phases of start-up, each timed in one fresh interpreter."""
    code = CHILD.format(
        root=str(ROOT),
        model=str(model),
        taesd=str(taesd),
        device=args.device,
        port=free_port(),
        image=init_image(folder, args.size),
        prompt=PROMPT,
        steps=args.steps,
        seed=SEED,
        size=args.size,
    )
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=1800)
    total = time.perf_counter() - t
    line = [x for x in proc.stdout.splitlines() if x.startswith("PHASES ")]
    if proc.returncode or not line:
        raise RuntimeError(f"start-up phases failed ({proc.returncode}): {proc.stderr[-2000:]}")
    phases = {k: round(v, 2) for k, v in json.loads(line[0][7:]).items()}
    phases["warm_up"] = round(phases["first_request"] - phases["second_request"], 2)
    phases["process_total"] = round(total, 2)
    print("in one interpreter: " + ", ".join(f"{k} {v:.2f} s" for k, v in phases.items()), flush=True)
    return phases


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--short", action="store_true", help="CI: tiny checkpoint, 128×128, 4 steps")
    p.add_argument("--arch", choices=("tiny", "sd15"), default="sd15")
    p.add_argument("--checkpoints", default=str(RESULTS / "checkpoints"))
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "mps", "auto"))
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--reps", type=int, default=3, help="repetitions of the CLI timings")
    p.add_argument("--no-app", dest="app", action="store_false")
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args(argv)
    if args.short:
        args.arch, args.size, args.steps, args.reps = "tiny", 128, 4, 1
    report: dict = dict(command=" ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), cli=cli_startup(args.reps))
    if args.app and (ROOT / "app.py").is_file():
        model, taesd = ensure_checkpoint(args.arch, Path(args.checkpoints))
        with tempfile.TemporaryDirectory(prefix="bench-startup-") as folder:
            report["app"] = app_end_to_end(model, taesd, args, folder)
            report["app_phases"] = app_phases(model, taesd, args, folder)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))
    return 1 if report["cli"]["gradio_imported"] else 0


if __name__ == "__main__":
    sys.exit(main())
