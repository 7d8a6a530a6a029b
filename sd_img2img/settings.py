"""Start-up settings: the flags the CLI and the web demo share, their ``SD_IMG2IMG_*`` environment variables, and
the engine built from them.

- ``add_model_flags``: the flags both commands take (``--model --config --lora --device --dtype --offload --compile
  --preview --taesd --vae --no-safety-checker --max-side``), defined once.
- ``CommandParser``: argparse with a one-line error, and with environment variables: each flag that names a
  variable takes its default from it, and that value gets exactly the checks (type, choices) and the one-line
  message the flag itself gets. A flag given on the command line beats its variable.
- ``AppSettings`` / ``parse_settings``: the demo's settings (those flags plus host, port, share, queue size).
- ``options_from``: the ``EngineOptions`` those flags ask for; ``make_engine`` / ``models_from``: the engine (CLI) and
  the model set (demo) they build (``--model random`` builds the offline checkpoint first).
- ``quiet_libraries``: diffusers' and transformers' progress bars and warnings off, for a command's clean output.

The page's run-time state (stop flags, run files, the wait line) is ``ui/state.py``'s. Nothing here loads a model at import time.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from typing import Any

from sd_img2img import config
from sd_img2img.cache import cache_dir
from sd_img2img.models.options import EngineOptions
from sd_img2img.serve.options import RayOptions

ENV_PREFIX = "SD_IMG2IMG_"
RANDOM_MODEL = "random"  # --model random: the offline demo's random-weight checkpoint


@dataclass(frozen=True)
class _FromEnv:
    """A default taken from an environment variable, not yet checked."""

    var: str
    raw: str


class CommandParser(argparse.ArgumentParser):
    """argparse with a one-line error and ``SD_IMG2IMG_*`` variables as checked defaults.

    Args:
        environ: where the variables are read (``os.environ`` by default; ``{}`` reads none).
    """

    def __init__(self, *args, environ: dict[str, str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.environ = os.environ if environ is None else environ
        self._env_lists: dict[str, _FromEnv] = {}

    def error(self, message: str):  # one line, no usage dump
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")

    def add_env_argument(self, flag: str, env: str, **kwargs) -> argparse.Action:
        """``add_argument(flag, …)`` whose default comes from ``SD_IMG2IMG_<env>`` when that is set and not empty.

        A ``store_true`` flag is switched on by a variable set to 1, true, yes or on.
        """
        var = ENV_PREFIX + env
        kwargs["help"] = f"{kwargs.get('help', '')} [{var}]".strip()
        action = self.add_argument(flag, **kwargs)
        raw = self.environ.get(var, "")
        if raw != "":
            if isinstance(action, argparse._StoreTrueAction):
                action.default = raw.strip().lower() in ("1", "true", "yes", "on")
            elif isinstance(action, argparse._AppendAction):  # a list: the flags given replace it, none append to it
                self._env_lists[action.dest] = _FromEnv(var, raw)
            else:  # checked after parsing, unless the flag itself is given
                action.default = _FromEnv(var, raw)
        return action

    def parse_args(self, args=None, namespace=None):
        parsed = super().parse_args(args, namespace)
        for action in self._actions:
            value = getattr(parsed, action.dest, None)
            if value is None and action.dest in self._env_lists:
                value = self._env_lists[action.dest]
            if isinstance(value, _FromEnv):
                setattr(parsed, action.dest, self._checked_env_value(action, value.var, value.raw))
        return parsed

    def _checked_env_value(self, action: argparse.Action, var: str, raw: str) -> Any:
        """The variable's value through the flag's own conversion and choices; the flag's message if it fails."""
        flag = "/".join(action.option_strings)
        try:
            if isinstance(action, argparse._AppendAction):  # several values: separated by commas or new lines
                parts = [part.strip() for part in raw.replace("\n", ",").split(",") if part.strip()]
                return [self._get_values(action, [part]) for part in parts]
            return self._get_values(action, [raw] if action.nargs is None else raw.split())
        except argparse.ArgumentError as e:
            self.error(f"argument {flag} (from {var}): {e.message}")


class _LoraAction(argparse.Action):
    """``--lora`` given several times: the specs add up (replacing what ``SD_IMG2IMG_LORA`` said)."""

    def __call__(self, parser, namespace, values, option_string=None):
        current = getattr(namespace, self.dest, None)
        if not isinstance(current, list) or current is self.default:
            current = []
        setattr(namespace, self.dest, current + list(values))


def non_negative_seconds(text: str) -> float:
    """A number of seconds, 0 or more (0: no limit)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds (0: no limit)") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: give 0 (no limit) or more seconds")
    return value


def _lora_specs(text: str):
    """argparse type of ``--lora``: ``FILE[:SCALE]`` (several separated by commas or newlines)."""
    from sd_img2img.errors import UserInputError
    from sd_img2img.models.loras import parse_specs

    try:
        return parse_specs(text)
    except UserInputError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_model_flags(p: CommandParser, several_models: bool = False) -> None:
    """The flags the CLI and the demo share: which model, where and how it runs, how steps are drawn.

    Args:
        several_models: ``--model`` may be given more than once (the demo serves each; its variable lists them
            separated by commas).
    """
    what = (
        f"hub id, diffusers folder, single-file .safetensors checkpoint (SD 1.x/2.x, SDXL), or '{RANDOM_MODEL}' ('{RANDOM_MODEL}-sdxl', '{RANDOM_MODEL}-turbo', "
        f"'{RANDOM_MODEL}-lcm', '{RANDOM_MODEL}-sd3', '{RANDOM_MODEL}-flux', …) for an offline random-weight checkpoint"
    )
    if several_models:
        p.add_env_argument(
            "--model",
            "MODEL",
            action="append",
            default=None,
            metavar="ID_OR_DIR_OR_FILE",
            help=what + f"; repeat it to serve several, visitors choose among them (default: {config.DEMO_MODEL} "
            f"where the hub answers, else '{RANDOM_MODEL}'; the variable takes several separated by commas)",
        )
    else:
        p.add_env_argument("--model", "MODEL", default=config.DEFAULT_MODEL, metavar="ID_OR_DIR_OR_FILE", help=what)
    p.add_env_argument(
        "--config",
        "CONFIG",
        default=None,
        metavar="DIR",
        help="for a single-file --model: a local diffusers folder whose JSON files (and tokenizers) "
        "describe it (default: the configs shipped for SD 1.5, SD 2.1 768-v, SDXL base and refiner)",
    )
    p.add_env_argument(
        "--lora",
        "LORA",
        type=_lora_specs,
        action=_LoraAction,
        default=[],
        metavar="FILE[:SCALE]",
        help="a LoRA (.safetensors, kohya/AUTOMATIC1111 or diffusers format) loaded with the model, on "
        "at SCALE (default 1) unless a run says otherwise; repeatable (the variable: several "
        "separated by commas or newlines). A name containing 'lcm' marks an LCM-LoRA",
    )
    add_placement_flags(p)
    add_picture_flags(p)


def add_placement_flags(p: CommandParser) -> None:
    """Where and how the model runs: device, dtype, offload, compile."""
    p.add_env_argument("--device", "DEVICE", choices=config.DEVICES, default="auto", help="auto, cpu, cuda or mps")
    p.add_env_argument(
        "--dtype",
        "DTYPE",
        choices=config.DTYPES,
        default="auto",
        help="auto (float16 on GPUs; on the cpu bfloat16 where it computes it natively, else float32), "
        "float16, bfloat16 or float32",
    )
    p.add_env_argument(
        "--offload",
        "OFFLOAD",
        choices=config.OFFLOADS,
        default="none",
        help="none, model or sequential (accelerate; GPU)",
    )
    p.add_env_argument(
        "--compile",
        "COMPILE",
        action="store_true",
        help="torch.compile the UNet, warmed up at load so no run pays for compiling (GPU)",
    )


def add_picture_flags(p: CommandParser) -> None:
    """How step latents become pictures, which autoencoder encodes and decodes, the safety checker, the size cap."""
    p.add_env_argument(
        "--preview",
        "PREVIEW",
        choices=config.PREVIEWS,
        default=config.DEFAULT_PREVIEW,
        help="how step images are decoded: approx (free), taesd (small decoder), full (exact)",
    )
    p.add_env_argument(
        "--taesd",
        "TAESD",
        default=None,
        metavar="ID_OR_DIR",
        help="tiny autoencoder (hub id or folder) for the taesd preview (default: the model's family's: "
        "madebyollin/taesd, SDXL taesdxl, SD3 taesd3, FLUX taef1); also --vae tiny's",
    )
    p.add_env_argument(
        "--vae",
        "VAE",
        choices=config.VAES,
        default=config.DEFAULT_VAE,
        help="autoencoder for the init image and the output: full (the checkpoint's own, exact) or "
        "tiny (the family's tiny autoencoder, or --taesd: several times faster on a CPU, softer)",
    )
    p.add_env_argument(
        "--no-safety-checker", "NO_SAFETY_CHECKER", action="store_true", help="turn the checkpoint's safety checker off"
    )
    p.add_env_argument(
        "--max-side",
        "MAX_SIDE",
        type=int,
        default=config.MAX_SIDE,
        help=f"cap on the longest side of the default size (default {config.MAX_SIDE})",
    )


@dataclass
class AppSettings:
    """The web demo's start-up settings: the models served, how they load (``options``) and how the page serves."""

    model: str = config.DEMO_MODEL  # the first model (the one a request that names none runs on)
    more_models: tuple[str, ...] = ()  # the others visitors may choose, in order
    options: EngineOptions = field(default_factory=EngineOptions)
    preview: str = config.DEFAULT_PREVIEW
    host: str | None = None  # None: gradio's default (127.0.0.1, or GRADIO_SERVER_NAME as on Spaces)
    port: int | None = None  # None: gradio's default (7860, or GRADIO_SERVER_PORT)
    share: bool = False
    max_side: int = config.MAX_SIDE
    queue_size: int = config.QUEUE_MAX_SIZE
    max_request_seconds: float = config.MAX_REQUEST_SECONDS  # 0: no limit
    backend: str = "local"  # where the models run: "local" (this process) or "ray" (Ray Serve workers)
    ray: RayOptions = field(default_factory=RayOptions)  # the Ray backend's layout (``add_ray_flags``)
    mcp: bool = False  # also serve gradio's MCP server (/gradio_api/mcp/), each public endpoint a tool
    model_given: bool = True  # False: no --model, the demo's default (``models.demo_model.choose_demo_model``)
    note: str | None = None  # one line on how the models were chosen (the hub unreachable …), said at start and shown

    @property
    def models(self) -> tuple[str, ...]:
        """Every model served, the first one first, each once."""
        return tuple(dict.fromkeys((self.model, *self.more_models)))


def build_parser(environ: dict[str, str] | None = None, prog: str = "python app.py") -> CommandParser:
    """The demo's flags (``python app.py``, ``sd-img2img serve``)."""
    from sd_img2img import __version__

    p = CommandParser(
        prog=prog,
        environ=environ,
        description="The sd-img2img web demo: img2img with every denoising step. Each flag can also be set by "
        "an environment variable (shown in brackets); a flag beats its variable.",
    )
    add_model_flags(p, several_models=True)
    p.add_env_argument(
        "--host", "HOST", default=None, help="address to listen on (default 127.0.0.1; 0.0.0.0 for everyone)"
    )
    p.add_env_argument("--port", "PORT", type=int, default=None, help="port (default 7860)")
    p.add_env_argument(
        "--share", "SHARE", action="store_true", help="also open a public gradio.live link (off unless asked)"
    )
    p.add_env_argument(
        "--queue-size",
        "QUEUE_SIZE",
        type=int,
        default=config.QUEUE_MAX_SIZE,
        help="requests that may wait in the queue",
    )
    p.add_env_argument(
        "--max-request-seconds",
        "MAX_REQUEST_SECONDS",
        type=non_negative_seconds,
        default=config.MAX_REQUEST_SECONDS,
        help=f"refuse a request (a run, a grid, a loopback …) estimated to take longer than this here, once this "
        f"server has measured runs, saying its numbers (default {config.MAX_REQUEST_SECONDS}: about the longest a "
        "visitor waits; 0: no limit)",
    )
    p.add_env_argument(
        "--mcp",
        "MCP",
        action="store_true",
        help="also serve gradio's MCP server at /gradio_api/mcp/ (tools: img2img, txt2img, read_settings, compare, "
        "grid, loopback; needs the mcp extra: pip install 'sd-img2img[mcp]')",
    )
    p.add_argument("--version", action="version", version=f"sd-img2img {__version__}")
    add_ray_flags(p)
    return p


def parse_settings(
    argv: list[str] | None = None, environ: dict[str, str] | None = None, prog: str = "python app.py"
) -> AppSettings:
    """The demo's settings from its flags and ``SD_IMG2IMG_*`` variables (no ``--model``: ``model_given`` is False
    and the demo's default model stands in until ``main`` chooses)."""
    parser = build_parser(environ, prog)
    a = parser.parse_args(argv)
    models = a.model or [config.DEMO_MODEL]
    return AppSettings(
        mcp=a.mcp,
        model_given=bool(a.model),
        model=models[0],
        more_models=tuple(models[1:]),
        options=options_from(a),
        preview=a.preview,
        host=a.host,
        port=a.port,
        share=a.share,
        max_side=a.max_side,
        queue_size=a.queue_size,
        max_request_seconds=a.max_request_seconds,
        backend=a.backend,
        ray=ray_options_from(a, parser),
    )


def add_ray_flags(p: CommandParser) -> None:
    """The Ray backend's flags (``--backend ray``): where the cluster is and how the model workers are laid out."""
    p.add_env_argument(
        "--backend",
        "BACKEND",
        choices=("local", "ray"),
        default="local",
        help="where the models run: local (in this process) or ray (Ray Serve model workers, docs/crowd.md)",
    )
    p.add_env_argument(
        "--ray-address",
        "RAY_ADDRESS",
        default=None,
        metavar="ADDR",
        help="join the Ray cluster whose head is at ADDR (host:port, ray://host:port or auto); default: start a "
        "local instance on loopback",
    )
    add_ray_worker_flags(p)


def add_ray_worker_flags(p: CommandParser) -> None:
    """How many Ray Serve model workers, and what each holds."""
    p.add_env_argument("--ray-replicas", "RAY_REPLICAS", type=int, default=1, help="workers per model (default 1)")
    p.add_env_argument(
        "--ray-min-replicas", "RAY_MIN_REPLICAS", type=int, default=1, help="autoscaling: fewest workers per model"
    )
    p.add_env_argument(
        "--ray-max-replicas",
        "RAY_MAX_REPLICAS",
        type=int,
        default=None,
        help="autoscaling: most workers per model (given: autoscale between the min and this)",
    )
    p.add_env_argument(
        "--ray-target-ongoing",
        "RAY_TARGET_ONGOING",
        type=float,
        default=1.0,
        help="autoscaling: runs in progress per worker it aims at (default 1)",
    )
    p.add_env_argument(
        "--ray-max-ongoing",
        "RAY_MAX_ONGOING",
        type=int,
        default=1,
        help="runs one worker takes at once (default 1: a GPU denoises one run at a time)",
    )
    p.add_env_argument(
        "--ray-cpus-per-replica",
        "RAY_CPUS_PER_REPLICA",
        type=float,
        default=1.0,
        help="CPUs each worker holds (on a CPU also its torch threads; default 1)",
    )
    p.add_env_argument(
        "--ray-gpus-per-replica",
        "RAY_GPUS_PER_REPLICA",
        type=float,
        default=None,
        help="GPUs each worker holds, fractions allowed (default 1 where the cluster has GPUs, else 0)",
    )
    p.add_env_argument(
        "--ray-num-cpus",
        "RAY_NUM_CPUS",
        type=int,
        default=None,
        help="CPUs of the local instance (default all of this machine's; not used with --ray-address)",
    )


def ray_options_from(args: argparse.Namespace, parser: CommandParser) -> RayOptions:
    """The ``RayOptions`` the Ray flags ask for; a layout that cannot be is the parser's one-line error."""
    try:
        return RayOptions(
            address=args.ray_address or None,
            replicas=args.ray_replicas,
            min_replicas=args.ray_min_replicas,
            max_replicas=args.ray_max_replicas,
            target_ongoing=args.ray_target_ongoing,
            max_ongoing=args.ray_max_ongoing,
            cpus_per_replica=args.ray_cpus_per_replica,
            gpus_per_replica=args.ray_gpus_per_replica,
            num_cpus=args.ray_num_cpus,
        )
    except ValueError as e:
        parser.error(str(e))


def options_from(args: argparse.Namespace) -> EngineOptions:
    """The ``EngineOptions`` the shared model flags (``add_model_flags``) ask for."""
    return EngineOptions(
        device=args.device,
        dtype=args.dtype,
        offload=args.offload,
        safety_checker=not args.no_safety_checker,
        taesd=args.taesd,
        compile=args.compile,
        config=args.config,
        vae=args.vae,
        loras=tuple(args.lora or ()),
    )


# -- the models --------------------------------------------------------------------------------------------


def offline_if_random(models) -> None:
    """The offline demo's ``random*`` names need no network: the hub is not asked (``HF_HUB_OFFLINE``)."""
    if any(m == RANDOM_MODEL or m.startswith(RANDOM_MODEL + "-") for m in models):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")


def make_engine(model: str, options: EngineOptions):
    """The engine ``model`` with ``options`` asks for (not loaded yet). ``model='random'`` (``random-sdxl``, …)
    builds the offline checkpoint first (``tiny.random_model``)."""
    from sd_img2img.engine.engine import Engine

    if model in config.RANDOM_MODELS:
        from sd_img2img.testing.tiny import random_model

        folder, taesd = random_model(model)
        model, options = str(folder), options.replace(taesd=options.taesd or str(taesd))
        offline_if_random([RANDOM_MODEL])
    return Engine(model, options)  # results and PNGs name it by its display name (models.names), not its path


def models_from(settings: AppSettings):
    """The ``ModelSet`` the demo serves: every ``--model`` under its display name (a hub id as it is, a folder or file
    by its own name: visitors never see a path on the server), none loaded yet (``random*`` names build their offline
    checkpoints on first use)."""
    from sd_img2img.engine.model_set import ModelSet
    from sd_img2img.models.names import display_names

    offline_if_random(settings.models)
    return ModelSet(display_names(settings.models), settings.options, cache=cache_dir())


def quiet_libraries() -> None:
    """Silence diffusers' and transformers' progress bars and warnings (a command's output stays its own)."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    import warnings

    warnings.filterwarnings("ignore")
    from diffusers.utils import logging as dlogging
    from transformers.utils import logging as tlogging

    dlogging.set_verbosity_error()
    dlogging.disable_progress_bar()
    tlogging.set_verbosity_error()
    tlogging.disable_progress_bar()
