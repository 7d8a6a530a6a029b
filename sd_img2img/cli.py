"""The ``sd-img2img`` command: the engine from a shell.

    sd-img2img fireplace.png --prompt "fire" --strength 0.7 --steps 10 --seed 1592514025 --out outputs/

Writes the output PNG (settings embedded), every step image (step 0 first) and the steps strip into
``--out``, named by a running number and the seed as InvokeAI does (``000032.1592514025.png``,
``000032.1592514025.step000.png``, ``000032.steps.png``), and prints one JSON object on stdout.
A mistake in the input gives a one-line message on stderr and exit status 2; a model or run failure
exit status 1. Ctrl-C stops the run between steps and still writes what was computed.

``--animation`` also writes the steps as one animation; ``--loops N --final-strength S --curve C`` runs loopback (each
output the next initial image); ``sd-img2img grid INIT --strengths 0.4,0.7 --step-counts 10,20`` runs the strength ×
steps grid (``formats/animation.py``, ``series/loopback.py``, ``series/grid.py``).
"""

from __future__ import annotations

import json
import re
import signal
import sys
import threading
from pathlib import Path

from sd_img2img import config
from sd_img2img.models.families import default_family
from sd_img2img.plan.samplers import ALL_SAMPLER_NAMES
from sd_img2img.settings import CommandParser, add_model_flags, make_engine, options_from, quiet_libraries

_NUMBERED = re.compile(r"^(\d{6})\.")


def build_parser(environ: dict[str, str] | None = None) -> CommandParser:
    p = CommandParser(
        prog="sd-img2img",
        environ=environ,
        description="Stable Diffusion img2img (or prompt2img without INIT_IMAGE) that writes every "
        "denoising step. The model flags can also be set by environment variables "
        "(shown in brackets); a flag beats its variable.",
    )
    add_request_flags(p)
    add_model_flags(p)
    p.add_argument(
        "--view",
        choices=config.VIEWS,
        default="latents",
        help="step images show the noisy latents or the predicted final image (x0)",
    )
    p.add_argument("--out", default="outputs", metavar="DIR", help="output folder (default ./outputs)")
    add_series_flags(p)
    return p


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
    p.add_argument("--seed", type=int, default=None, help="0 ≤ N < 2^32 (default: random; the seed used is reported)")
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
        type=float,
        default=None,
        help=f"classifier-free guidance scale (default: the model's; SD {sd.guidance:g}, Turbo 0)",
    )
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
    """``sd-img2img grid INIT_IMAGE --strengths … --step-counts …``: the other flags as ``sd-img2img``'s."""
    p = build_parser(environ)
    p.prog = "sd-img2img grid"
    p.description = (
        "The strength × steps grid: the same image, prompt and seed once per strength (rows) and step "
        "count (columns); prints the cells' outputs and the steps each took."
    )
    p.add_argument("--strengths", default=None, metavar="LIST", help="the rows, e.g. 0.4,0.7 (default: --strength)")
    p.add_argument("--step-counts", default=None, metavar="LIST", help="the columns, e.g. 10,20 (default: --steps)")
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
        "seed": result.seed,
        "steps": result.steps,
        "steps_taken": result.steps_taken,
        "schedule_steps": result.schedule_steps,
        "real_steps": result.real_steps,
        "model_calls": result.model_calls,
        "strength": result.strength,
        "noise_level": result.noise_level(),
        "sampler": result.sampler,
        "width": result.width,
        "height": result.height,
        "model": result.model,
        "family": result.family,
        "preview": result.preview,
        "dtype": result.dtype,
        "vae": result.vae,
        "seconds": result.seconds["total"],
        "nsfw_flagged": result.nsfw_flagged,
        "stopped": result.stopped,
        "warnings": result.warnings,
        "loras": result.loras,
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
    from sd_img2img.plan.request import GenerationRequest

    return GenerationRequest(
        prompt=args.prompt,
        init_image=args.init_image,
        negative_prompt=args.negative_prompt,
        strength=args.strength,
        steps=args.steps,
        real_steps=args.real_steps,
        seed=args.seed,
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

        plan_loopback(prepared, engine.model, loopback_options(args), family)
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
        "model": engine.model,
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
    from sd_img2img.errors import UserInputError
    from sd_img2img.series.grid import grid_sheet, plan_grid

    if args.loops is not None or args.animation or args.batch_count != 1:
        raise UserInputError("sd-img2img grid takes no --loops, --batch-count or --animation; run those without 'grid'")
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
        "model": engine.model,
        "warnings": warnings,
    }
    return summary, warnings


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    grid = argv[:1] == ["grid"]  # sd-img2img grid INIT …; an init image named "grid" is ./grid
    args = (build_grid_parser() if grid else build_parser()).parse_args(argv[1:] if grid else argv)
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
    try:
        engine = make_engine(args.model, options_from(args))
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
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    for warning in warnings:
        if warning not in said:
            print(f"sd-img2img: warning: {warning}", file=sys.stderr)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
