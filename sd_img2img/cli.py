"""The ``sd-img2img`` command: the engine from a shell.

    sd-img2img fireplace.png --prompt "fire" --strength 0.7 --steps 10 --seed 1592514025 --out outputs/

Writes the output PNG (settings embedded), every step image (step 0 first) and the steps strip into
``--out``, named by a running number and the seed as InvokeAI does (``000032.1592514025.png``,
``000032.1592514025.step000.png``, ``000032.steps.png``), and prints one JSON object on stdout.
A mistake in the input gives a one-line message on stderr and exit status 2; a model or run failure
exit status 1. Ctrl-C stops the run between steps and still writes what was computed.

``sd-img2img serve [FLAGS]`` serves the web demo (app.py's flags: ``sd_img2img.ui.app.serve``); ``--version`` says the
version. ``--animation`` also writes the steps as one animation; ``--loops N --final-strength S --curve C`` runs loopback (each
output the next initial image); ``sd-img2img grid INIT --strengths 0.4,0.7 --step-counts 10,20`` runs the strength ×
steps grid; ``sd-img2img diverge INIT --vs steps=29`` compares two runs step by step, where they part ways
(``formats/animation.py``, ``series/loopback.py``, ``series/grid.py``, ``series/diverge.py``).
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import textwrap
import threading
from pathlib import Path

from sd_img2img import config
from sd_img2img.models.families import default_family
from sd_img2img.plan.samplers import ALL_SAMPLER_NAMES
from sd_img2img.settings import (
    CommandParser,
    add_model_flags,
    make_engine,
    options_from,
    parse_settings,
    quiet_libraries,
)

_NUMBERED = re.compile(r"^(\d{6})\.")


COMMANDS = """commands:
  sd-img2img [INIT_IMAGE] --prompt TEXT …   one run (these flags)
  sd-img2img grid INIT_IMAGE …              the strength × steps grid (sd-img2img grid --help)
  sd-img2img serve [FLAGS]                  the web demo, as app.py serves it (sd-img2img serve --help)"""


def build_parser(environ: dict[str, str] | None = None) -> CommandParser:
    """``sd-img2img``'s flags: one run (loopback with ``--loops``); its help names the other commands."""
    p = command_parser(
        "sd-img2img",
        environ,
        "Stable Diffusion img2img (or prompt2img without INIT_IMAGE) that writes every denoising step.",
    )
    p.epilog = COMMANDS
    add_run_flags(p)
    add_series_flags(p)
    return p


def command_parser(prog: str, environ: dict[str, str] | None, description: str) -> CommandParser:
    """A parser with ``--version`` and the note on environment variables."""
    from sd_img2img import __version__

    text = description + " The model flags can also be set by environment variables (shown in brackets); a flag beats "
    p = CommandParser(
        prog=prog,
        environ=environ,
        description=textwrap.fill(text + "its variable.", 100),
        formatter_class=argparse.RawDescriptionHelpFormatter,  # the commands' table (the epilog) as it is written
    )
    p.add_argument("--version", action="version", version=f"sd-img2img {__version__}")
    return p


def add_run_flags(p: CommandParser) -> None:
    """What every run takes: its settings, the model flags, the view its step images show, the output folder."""
    add_request_flags(p)
    add_model_flags(p)
    p.add_argument(
        "--view",
        choices=config.VIEWS,
        default="latents",
        help="step images show the noisy latents or the predicted final image (x0)",
    )
    p.add_argument("--out", default="outputs", metavar="DIR", help="output folder (default ./outputs)")


def add_request_flags(p: CommandParser) -> None:
    """The run's settings: the init image, the prompts, strength and steps, seed, sampler, guidance, size."""
    p.add_argument("init_image", nargs="?", metavar="INIT_IMAGE", help="initial image; leave out for prompt2img")
    p.add_argument("--prompt", required=True, help="what to make")
    p.add_argument("--negative-prompt", default="", help="what to steer away from")
    sd = default_family()
    p.add_argument(
        "--strength",
        type=float,
        default=None,
        help=f"0 < F ≤ 1: share of the schedule that runs (default: the model's; SD {sd.strength})",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help=f"schedule length (default: the model's; SD {sd.steps}); with --real-steps the steps that run",
    )
    p.add_argument("--real-steps", action="store_true", help="--steps is the number of steps that must actually run")
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="0 ≤ N ≤ 2^64 − 1 (any ComfyUI seed); -1 or left out: a new random one (the seed used is reported)",
    )
    p.add_argument(
        "--sampler",
        choices=ALL_SAMPLER_NAMES,
        default=None,
        metavar="NAME",
        help=f"one of {', '.join(ALL_SAMPLER_NAMES)} that fits the model (default: the model's; "
        f"SD {sd.sampler}; LCM checkpoints take only lcm)",
    )
    p.add_argument(
        "--guidance",
        "--guidance-scale",
        dest="guidance",
        type=float,
        default=None,
        help=f"classifier-free guidance scale (default: the model's; SD {sd.guidance:g}, Turbo 0)",
    )
    add_size_flags(p)


def add_size_flags(p: CommandParser) -> None:
    """The run's size and how the init image is fitted to it."""
    p.add_argument(
        "--width",
        type=int,
        default=None,
        help="multiple of 8, SD3/FLUX 16 (default: the init image's, or the model's: 512, SDXL 1024)",
    )
    p.add_argument(
        "--height",
        type=int,
        default=None,
        help="multiple of 8, SD3/FLUX 16 (default: the init image's, or the model's: 512, SDXL 1024)",
    )
    p.add_argument(
        "--resize",
        "--resize-mode",
        dest="resize",
        choices=config.RESIZE_MODES,
        default=config.DEFAULT_RESIZE_MODE,
        help="fit the init image by stretching, centre-cropping or padding",
    )
    add_mask_flags(p)


def add_mask_flags(p: CommandParser) -> None:
    """Inpainting: the mask and how it is used (the settings declared in ``plan/request.py``)."""
    from sd_img2img.plan.request import SETTINGS

    def helped(name: str) -> str:
        return SETTINGS[name].setting.help.removeprefix("inpainting: ")

    p.add_argument("--mask", default=None, metavar="PATH", help=helped("mask"))
    p.add_argument("--mask-from-alpha", action="store_true", help=helped("mask_from_alpha"))
    p.add_argument("--invert-mask", action="store_true", help=helped("invert_mask"))
    p.add_argument(
        "--mask-blur", type=int, default=SETTINGS["mask_blur"].default, metavar="PX", help=helped("mask_blur")
    )
    p.add_argument(
        "--masked-content",
        type=lambda text: text.replace("-", " "),  # latent-noise as well as "latent noise"
        choices=config.MASKED_CONTENT,
        default=SETTINGS["masked_content"].default,
        help=helped("masked_content"),
    )
    p.add_argument(
        "--inpaint-area",
        choices=config.INPAINT_AREAS,
        default=SETTINGS["inpaint_area"].default,
        help=helped("inpaint_area"),
    )
    p.add_argument("--padding", type=int, default=SETTINGS["padding"].default, metavar="PX", help=helped("padding"))


def add_series_flags(p: CommandParser) -> None:
    """The steps as an animation, and loopback."""
    p.add_argument(
        "--animation",
        action="store_true",
        help="also write the steps (with --loops: the loops) as one animation beside the strip",
    )
    p.add_argument("--animation-format", choices=config.ANIMATION_FORMATS, default="webp", help="animated WebP or GIF")
    p.add_argument(
        "--batch-count",
        type=int,
        default=1,
        metavar="N",
        help=f"make N images (1 to {config.MAX_BATCH_COUNT}) with seeds seed, seed + 1, …, each its own run",
    )
    p.add_argument(
        "--loops",
        type=int,
        default=None,
        metavar="N",
        help=f"loopback: run N times (1 to {config.MAX_LOOPS}), each output the next initial image, seed + 1 each loop",
    )
    p.add_argument(
        "--final-strength",
        type=float,
        default=config.DEFAULT_FINAL_STRENGTH,
        metavar="S",
        help="loopback: the last loop's strength (the first's is --strength)",
    )
    p.add_argument(
        "--curve",
        choices=config.LOOP_CURVES,
        default="linear",
        help="loopback: how strength moves from --strength to --final-strength (AUTOMATIC1111's loopback curves)",
    )
    p.add_argument(
        "--colour-match",
        action="store_true",
        help="loopback: match each loop's colours to the initial image (per-channel histogram matching)",
    )


def build_grid_parser(environ: dict[str, str] | None = None) -> CommandParser:
    """``sd-img2img grid INIT_IMAGE --strengths … --step-counts …``: one run's flags (no loopback, no animation)."""
    p = command_parser(
        "sd-img2img grid",
        environ,
        "The strength × steps grid: the same image, prompt and seed once per strength (rows) and step count "
        "(columns); prints the cells' outputs and the steps each took.",
    )
    add_run_flags(p)
    p.add_argument("--strengths", default=None, metavar="LIST", help="the rows, e.g. 0.4,0.7 (default: --strength)")
    p.add_argument("--step-counts", default=None, metavar="LIST", help="the columns, e.g. 10,20 (default: --steps)")
    return p


def build_diverge_parser(environ: dict[str, str] | None = None) -> CommandParser:
    """``sd-img2img diverge INIT_IMAGE --vs KEY=VALUE``: the other flags as ``sd-img2img``'s (run A's settings)."""
    p = build_parser(environ)
    p.prog = "sd-img2img diverge"
    p.description = (
        "Where two runs part ways: the same image, prompt and seed run twice, run B differing from run A (the other "
        "flags) in one setting; their steps paired by noise level, each pair's predicted pictures compared; prints "
        "both runs' summaries, every pair and the first step over the threshold."
    )
    p.add_argument(
        "--vs",
        required=True,
        metavar="KEY=VALUE",
        help="what run B differs in and its value: steps=29, seed=7, strength=0.4, sampler=k_euler, guidance=5, "
        "lora=NAME:SCALE or model=MODEL (one latent space)",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=config.DIVERGE_THRESHOLD,
        metavar="LEVELS",
        help="the runs part at the first pair whose pictures differ by more than this, as a mean absolute difference "
        f"of 0–255 RGB (default {config.DIVERGE_THRESHOLD:g})",
    )
    return p


def next_number(folder: Path) -> int:
    """The next running number in ``folder`` (one above the highest ``NNNNNN.*`` file)."""
    numbers = [int(m.group(1)) for f in folder.iterdir() if (m := _NUMBERED.match(f.name))]
    return max(numbers, default=0) + 1


def write_outputs(result, folder: Path, view: str = "latents", extra: dict | None = None, output_image=None) -> dict:
    """Write the output, step images and strip of ``result`` into ``folder``; return the JSON summary.

    ``extra``: more settings for every PNG (where a loop or grid cell sits in its series); ``output_image``: the picture
    written as the output instead of ``result.output`` (a loop's colour-matched output)."""
    from sd_img2img.formats.metadata import save_png

    folder.mkdir(parents=True, exist_ok=True)
    n = next_number(folder)
    stem = f"{n:06d}.{result.seed}"
    settings = {**result.settings(), **(extra or {})}
    output = save_png(output_image or result.output, folder / f"{stem}.png", settings)
    mask = None
    if result.mask_image is not None:  # the mask beside the output (its PNG records the mask's hash)
        mask = {**result.mask, "file": str(save_png(result.mask_image, folder / f"{stem}.mask.png", settings))}
    steps = []
    for frame in result.frames:
        path = folder / f"{stem}.step{frame.index:03d}.png"
        save_png(frame.image(view), path, {**settings, "step": frame.index, "timestep": frame.timestep, "view": view})
        steps.append(str(path))
    strip = save_png(result.strip(view), folder / f"{n:06d}.steps.png", {**settings, "view": view})
    return {
        "output": str(output),
        "step_images": steps,
        "strip": str(strip),
        # every setting that reproduces the run, under the PNG's own keys (``GenerationResult.settings``): each is the
        # flag of the same name (``guidance_scale`` → ``--guidance-scale``, ``resize_mode`` → ``--resize-mode``)
        **result.settings(),
        "loras": result.loras,  # {} when none was on (the PNG leaves it out)
        "noise_level": result.noise_level(),
        "family": result.family,
        "preview": result.preview,
        "view": view,
        "dtype": result.dtype,
        "vae": result.vae,
        "seconds": result.seconds["total"],
        "nsfw_flagged": result.nsfw_flagged,
        "warnings": result.warnings,
        **({"mask": mask} if mask is not None else {}),
    }


def _say_load_warnings() -> list[str]:
    """Print the engine's warnings at load time (``sd_img2img`` logger) on stderr as they come, once; return the
    list they are collected in, so the run's own warnings do not repeat them."""
    import logging

    said: list[str] = []

    class Say(logging.Handler):
        def emit(self, record):
            said.append(record.getMessage())
            print(f"sd-img2img: warning: {record.getMessage()}", file=sys.stderr)

    logger = logging.getLogger("sd_img2img")
    logger.handlers = [h for h in logger.handlers if type(h).__name__ != "Say"] + [Say(logging.WARNING)]
    logger.propagate = False
    return said


def request_from(args):
    """The ``GenerationRequest`` the flags ask for."""
    from sd_img2img.plan.request import GenerationRequest, seed_value

    return GenerationRequest(
        prompt=args.prompt,
        init_image=args.init_image,
        negative_prompt=args.negative_prompt,
        strength=args.strength,
        steps=args.steps,
        real_steps=args.real_steps,
        seed=seed_value(args.seed),
        sampler=args.sampler,
        guidance_scale=args.guidance,
        width=args.width,
        height=args.height,
        resize_mode=args.resize,
        preview=args.preview,
        view=args.view,
        max_side=args.max_side,
        mask=args.mask,
        mask_from_alpha=args.mask_from_alpha,
        invert_mask=args.invert_mask,
        mask_blur=args.mask_blur,
        masked_content=args.masked_content,
        inpaint_area=args.inpaint_area,
        padding=args.padding,
    )


def run_command(engine, args, grid: bool, should_stop) -> tuple[dict, list[str]]:
    """What the flags ask for, on ``engine``: one run, loopback (``--loops``) or the grid; the JSON summary and the
    run's warnings."""
    from sd_img2img.plan.prepare import prepare_request

    request = request_from(args)
    if grid:
        return run_grid_command(engine, args, request, should_stop)
    family = engine.peek_family()  # from the checkpoint's JSON files, no weights loaded
    # bad input (the image too) is reported before the model loads, and the run takes the prepared request
    prepared = prepare_request(request, family, engine.lora_specs) if family is not None else None
    if args.loops is not None and prepared is not None:  # the whole series checked before the model loads
        from sd_img2img.series.loopback import plan_loopback

        plan_loopback(prepared, engine.name, loopback_options(args), family)
    check_batch_count(args)
    engine.load()
    engine.model_hash()  # the PNGs carry AUTOMATIC1111's "Model hash"
    if args.loops is not None:
        return run_loopback_command(engine, args, prepared or engine.prepare(request), should_stop)
    if args.batch_count != 1:
        return run_batch_command(engine, args, prepared or engine.prepare(request), should_stop)
    result = engine.generate(prepared or request, should_stop=should_stop)
    summary = write_outputs(result, Path(args.out), args.view)
    if args.animation:
        from sd_img2img.formats.animation import step_animation

        strip = Path(summary["strip"])
        path = strip.with_name(f"{strip.name.split('.')[0]}.steps.{args.animation_format}")
        animation = step_animation(result, path, args.view, args.animation_format)
        summary.update(animation=str(animation.path), animation_bytes=animation.bytes)
    return summary, result.warnings


def check_batch_count(args) -> None:
    """``--batch-count`` in its range, and not with another series (``--loops``, ``grid``)."""
    from sd_img2img.errors import UserInputError
    from sd_img2img.series.batch import batch_count

    batch_count({"batch_count": args.batch_count})
    if args.batch_count != 1 and args.loops is not None:
        raise UserInputError("--batch-count and --loops make two different series; give one of them")
    if args.batch_count != 1 and args.animation:
        raise UserInputError("--animation writes one run's steps (or --loops' loops); leave it out with --batch-count")


def run_batch_command(engine, args, first, should_stop) -> tuple[dict, list[str]]:
    """``--batch-count N``: seeds seed, seed + 1, … (``series.batch``), each image written as one run is, its PNG saying
    which image of the batch it is; ``batch`` lists them."""
    from sd_img2img.engine.backend import LocalBackend
    from sd_img2img.series.batch import batch_info, plan_batch

    backend = LocalBackend(engine)
    series = plan_batch(first, backend.names[0], args.batch_count)
    entries, warnings = write_series(series, backend, args, should_stop)
    summary = {**batch_info(series, []), "batch": entries, "model": engine.model, "warnings": warnings}
    return summary, warnings


def loopback_options(args):
    from sd_img2img.series.loopback import LoopbackOptions

    return LoopbackOptions(args.loops, args.final_strength, args.curve, args.colour_match)


def write_series(series, backend, args, should_stop) -> tuple[list[dict], list[str]]:
    """Run ``series`` (``series.series.run_series``), writing each finished run as one run is written, its PNG saying
    which run of the series it is; each run's summary entry (its position, output, steps taken, …) and the warnings."""
    from sd_img2img.series.series import run_series

    entries, warnings = [], []
    for run in run_series(series, backend, should_stop):
        s = write_outputs(run.result, Path(args.out), args.view, run.records, run.output)
        entries.append(
            {**series.run_info(run, s["output"]), "strip": s["strip"], **({"mask": s["mask"]} if "mask" in s else {})}
        )
        warnings += [w for w in run.result.warnings if w not in warnings]
    return entries, warnings


def run_loopback_command(engine, args, first, should_stop) -> tuple[dict, list[str]]:
    """``--loops N``: each output the next initial image (``series.loopback``); every loop's files as one run's, its
    PNG saying which loop it is; with ``--animation`` the loops as one animation."""
    from sd_img2img.engine.backend import LocalBackend
    from sd_img2img.series.loopback import COLOUR_MATCH, loop_animation, plan_loopback

    backend = LocalBackend(engine)
    loopback = plan_loopback(first, backend.names[0], loopback_options(args), engine.family)
    entries, warnings = write_series(loopback.series, backend, args, should_stop)
    plan = loopback.plan
    summary = {
        **loopback.series.info([]),
        "loops": entries,
        "curve": plan.options.curve,
        "model": engine.name,
        "strengths": list(plan.strengths) if plan.takes_strength else None,
        "colour_match": COLOUR_MATCH if plan.options.colour_match else None,
        "warnings": warnings,
    }
    if args.animation and entries:
        name = Path(entries[0]["output"]).name.split(".")[0]
        animation = loop_animation(
            loopback, Path(args.out) / f"{name}.loops.{args.animation_format}", args.animation_format
        )
        summary.update(animation=str(animation.path), animation_bytes=animation.bytes)
    return summary, warnings


def grid_axes(engine, args, request, name: str):
    """The grid's rows (``--strengths``; an edit model: the model, one row) and columns (``--step-counts``)."""
    from sd_img2img.series.axes import Axis, takes_strength
    from sd_img2img.series.grid import grid_axis

    family = engine.peek_family() or engine.family
    if args.strengths is None and not takes_strength(family):  # an edit model: one row, the model
        rows = Axis("model", (name,))
    else:
        rows = grid_axis(
            "strength", args.strengths if args.strengths is not None else [request.strength or family.strength]
        )
    columns = grid_axis("steps", args.step_counts if args.step_counts is not None else [request.steps or family.steps])
    return (rows, columns), family


def run_grid_command(engine, args, request, should_stop) -> tuple[dict, list[str]]:
    """``sd-img2img grid``: strengths down, step counts across (``series.grid``), each cell run through the page's
    backend interface and written as one run, its PNG saying which cell it is; the cells' pictures as one sheet."""
    from sd_img2img.engine.backend import LocalBackend
    from sd_img2img.series.grid import grid_sheet, plan_grid

    backend = LocalBackend(engine)
    name = backend.names[0]
    axes, family = grid_axes(engine, args, request, name)
    grid = plan_grid(request, axes, name, backend.prepare, lambda _: family)
    engine.load()
    engine.model_hash()
    cells, warnings = write_series(grid.series, backend, args, should_stop)
    sheet = None
    if cells:
        sheet = Path(args.out) / f"{Path(cells[0]['output']).name.split('.')[0]}.grid.png"
        grid_sheet(grid).save(sheet)
    summary = {
        **grid.series.info([]),
        "cells": cells,
        "grid": str(sheet) if sheet else None,
        "rows": axes[0].by,
        "columns": axes[1].by,
        "model": engine.name,
        "warnings": warnings,
    }
    return summary, warnings


def side_a_value(vary: str, request, engine, name: str):
    """Run A's value of ``vary``: its flag's, else the model's default (a LoRA: its start-up scale, the model: ``name``)."""
    family = engine.peek_family() or engine.family
    if vary == "model":
        return name
    if vary == "loras":
        return {spec.name: spec.scale for spec in engine.lora_specs}
    own = {"steps": "steps", "strength": "strength", "sampler": "sampler", "guidance_scale": "guidance"}
    value = getattr(request, vary)
    return value if value is not None or vary == "seed" else getattr(family, own[vary])


def diverge_backend(engine, args, vary: str, raw: str):
    """The backend both runs go through: ``engine`` alone, or with run B's model beside it (``--vs model=…``)."""
    from sd_img2img.engine.backend import LocalBackend
    from sd_img2img.engine.model_set import ModelSet

    if vary != "model" or raw == args.model:
        return LocalBackend(engine, name=args.model)
    return LocalBackend(ModelSet.of({args.model: engine, raw: make_engine(raw, options_from(args))}))


def run_diverge_command(engine, args, should_stop) -> tuple[dict, list[str]]:
    """``sd-img2img diverge``: run A (the flags) and run B (``--vs KEY=VALUE``) as a series (``series.diverge``), each
    written as one run is; each pair's two pictures and difference map; one JSON object."""
    from sd_img2img.errors import UserInputError
    from sd_img2img.series.diverge import parse_value, parse_vs, plan_diverge, save_pairs
    from sd_img2img.series.series import run_series

    if args.loops is not None or args.animation:
        raise UserInputError("sd-img2img diverge takes no --loops or --animation; run those without 'diverge'")
    vary, raw = parse_vs(args.vs)
    request = request_from(args)
    backend = diverge_backend(engine, args, vary, raw)
    lora_names = tuple(spec.name for spec in engine.lora_specs)
    if vary == "seed" and request.seed is None:  # each run's seed is said: run A's is picked here
        import dataclasses
        import secrets

        request = dataclasses.replace(request, seed=secrets.randbelow(config.MAX_SEED))
    values = (side_a_value(vary, request, engine, args.model), parse_value(vary, raw, backend.names, lora_names))
    listed = {spec.name: spec.scale for spec in engine.lora_specs}
    family_of = lambda name: backend.describe(name).family  # noqa: E731
    diverge = plan_diverge(request, vary, values, args.model, backend.prepare, family_of, args.threshold, listed)
    engine.load()
    engine.model_hash()
    sides, warnings = [], []
    for run in run_series(diverge.series, backend, should_stop):
        sides.append(write_outputs(run.result, Path(args.out), args.view, run.records))
        warnings += [w for w in run.result.warnings if w not in warnings]
    comparison = diverge.compare()
    stem = "-".join(Path(s["output"]).name.split(".")[0] for s in sides)
    pairs = save_pairs(comparison, Path(args.out), f"{stem}.diverge")
    sides += [None] * (2 - len(sides))
    summary = {
        "a": sides[0],
        "b": sides[1],
        **comparison.info(pairs),
        "vary": vary,
        "values": list(values),
        "stopped": diverge.series.stopped,
        "warnings": warnings,
    }
    return summary, warnings


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"]:  # the web demo, app.py's flags; an init image named "serve" is ./serve
        settings = parse_settings(argv[1:], prog="sd-img2img serve")  # a bad flag: answered before gradio loads
        from sd_img2img.ui.app import serve

        serve(settings, prog="sd-img2img serve")
        return 0
    grid = argv[:1] == ["grid"]  # sd-img2img grid INIT …; an init image named "grid" is ./grid
    diverge = argv[:1] == ["diverge"]  # sd-img2img diverge INIT --vs KEY=VALUE …
    parser = build_grid_parser() if grid else build_diverge_parser() if diverge else build_parser()
    args = parser.parse_args(argv[1:] if grid or diverge else argv)
    from sd_img2img.engine.cpu_memory import keep_freed_memory

    keep_freed_memory()  # before torch starts threads: CPU steps stop page-faulting their activations in
    quiet_libraries()
    said = _say_load_warnings()  # e.g. a flow-matching model about to load on the cpu: said before it loads
    from sd_img2img.errors import GenerationError, ModelLoadError, UserInputError

    stop = threading.Event()

    def on_sigint(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print("sd-img2img: stopping after this step (Ctrl-C again to abort)", file=sys.stderr)

    previous = (
        signal.signal(signal.SIGINT, on_sigint) if threading.current_thread() is threading.main_thread() else None
    )
    from sd_img2img.models import download

    downloaded = threading.Event()  # a hub model being downloaded says its progress on stderr until the run is done
    download.report([args.model], lambda line: print(line, file=sys.stderr, flush=True), downloaded)
    try:
        engine = make_engine(args.model, options_from(args))
        if diverge:
            summary, warnings = run_diverge_command(engine, args, stop.is_set)
        else:
            summary, warnings = run_command(engine, args, grid, stop.is_set)
    except UserInputError as e:
        print(f"sd-img2img: error: {e}", file=sys.stderr)
        return 2
    except (ModelLoadError, GenerationError) as e:
        print(f"sd-img2img: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # e.g. the output folder cannot be written
        print(f"sd-img2img: error: {e.strerror or e}: {e.filename or ''}".rstrip(": "), file=sys.stderr)
        return 1
    finally:
        downloaded.set()
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    for warning in warnings:
        if warning not in said:
            print(f"sd-img2img: warning: {warning}", file=sys.stderr)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
