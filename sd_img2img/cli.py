"""The ``sd-img2img`` command: the engine from a shell.

    sd-img2img fireplace.png --prompt "fire" --strength 0.7 --steps 10 --seed 1592514025 --out outputs/

Writes the output PNG (settings embedded), every step image (step 0 first) and the steps strip into
``--out``, named by a running number and the seed as InvokeAI does (``000032.1592514025.png``,
``000032.1592514025.step000.png``, ``000032.steps.png``), and prints one JSON object on stdout.
A mistake in the input gives a one-line message on stderr and exit status 2; a model or run failure
exit status 1. Ctrl-C stops the run between steps and still writes what was computed.
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
from sd_img2img.run.samplers import ALL_SAMPLER_NAMES
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
    add_model_flags(p)
    p.add_argument(
        "--view",
        choices=config.VIEWS,
        default="latents",
        help="step images show the noisy latents or the predicted final image (x0)",
    )
    p.add_argument("--out", default="outputs", metavar="DIR", help="output folder (default ./outputs)")
    return p


def next_number(folder: Path) -> int:
    """The next running number in ``folder`` (one above the highest ``NNNNNN.*`` file)."""
    numbers = [int(m.group(1)) for f in folder.iterdir() if (m := _NUMBERED.match(f.name))]
    return max(numbers, default=0) + 1


def write_outputs(result, folder: Path, view: str = "latents") -> dict:
    """Write the output, step images and strip of ``result`` into ``folder``; return the JSON summary."""
    from sd_img2img.formats.metadata import save_png

    folder.mkdir(parents=True, exist_ok=True)
    n = next_number(folder)
    stem = f"{n:06d}.{result.seed}"
    settings = result.settings()
    output = save_png(result.output, folder / f"{stem}.png", settings)
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
    from sd_img2img.run.request import GenerationRequest

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
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from sd_img2img.run.cpu_memory import keep_freed_memory

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
        request = request_from(args)
        from sd_img2img.run.prepare import prepare_request

        family = engine.peek_family()  # from the checkpoint's JSON files, no weights loaded
        # bad input (the image too) is reported before the model loads, and the run takes the prepared request
        prepared = prepare_request(request, family, engine.lora_specs) if family is not None else None
        engine.load()
        engine.model_hash()  # the PNGs carry AUTOMATIC1111's "Model hash"
        result = engine.generate(prepared or request, should_stop=stop.is_set)
        summary = write_outputs(result, Path(args.out), args.view)
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
    for warning in result.warnings:
        if warning not in said:
            print(f"sd-img2img: warning: {warning}", file=sys.stderr)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
