"""Start-up settings: the flags the CLI and the web demo share, their ``SD_IMG2IMG_*`` environment variables, and
the engine built from them.

- ``add_model_flags``: the ten flags both commands take (``--model --device --dtype --offload --compile --preview
  --taesd --vae --no-safety-checker --max-side``), defined once.
- ``CommandParser``: argparse with a one-line error, and with environment variables: each flag that names a
  variable takes its default from it, and that value gets exactly the checks (type, choices) and the one-line
  message the flag itself gets. A flag given on the command line beats its variable.
- ``AppSettings`` / ``parse_settings``: the demo's settings (those flags plus host, port, share, queue size).
- ``make_engine``: the engine a set of settings asks for (``--model random`` builds the offline checkpoint first).
- ``quiet_libraries``: diffusers' and transformers' progress bars and warnings off, for a command's clean output.

Run-time state (model status, stop flags, run files) is ``server.py``'s. Nothing here loads a model at import time.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import config

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
            else:  # checked after parsing, unless the flag itself is given
                action.default = _FromEnv(var, raw)
        return action

    def parse_args(self, args=None, namespace=None):
        parsed = super().parse_args(args, namespace)
        for action in self._actions:
            value = getattr(parsed, action.dest, None)
            if isinstance(value, _FromEnv):
                setattr(parsed, action.dest, self._checked_env_value(action, value.var, value.raw))
        return parsed

    def _checked_env_value(self, action: argparse.Action, var: str, raw: str) -> Any:
        """The variable's value through the flag's own conversion and choices; the flag's message if it fails."""
        flag = "/".join(action.option_strings)
        try:
            value = self._get_values(action, [raw] if action.nargs is None else raw.split())
        except argparse.ArgumentError as e:
            self.error(f"argument {flag} (from {var}): {e.message}")
        return value


def add_model_flags(p: CommandParser) -> None:
    """The flags the CLI and the demo share: which model, where and how it runs, how steps are drawn."""
    p.add_env_argument("--model", "MODEL", default=config.DEFAULT_MODEL, metavar="ID_OR_DIR",
                       help=f"hub id or diffusers folder, or '{RANDOM_MODEL}' for the offline random-weight checkpoint")
    p.add_env_argument("--device", "DEVICE", choices=config.DEVICES, default="auto", help="auto, cpu, cuda or mps")
    p.add_env_argument("--dtype", "DTYPE", choices=config.DTYPES, default="auto",
                       help="auto (float16 on GPUs; on the cpu bfloat16 where it computes it natively, else float32), "
                            "float16, bfloat16 or float32")
    p.add_env_argument("--offload", "OFFLOAD", choices=config.OFFLOADS, default="none",
                       help="none, model or sequential (accelerate; GPU)")
    p.add_env_argument("--compile", "COMPILE", action="store_true",
                       help="torch.compile the UNet, warmed up at load so no run pays for compiling (GPU)")
    p.add_env_argument("--preview", "PREVIEW", choices=config.PREVIEWS, default=config.DEFAULT_PREVIEW,
                       help="how step images are decoded: approx (free), taesd (small decoder), full (exact)")
    p.add_env_argument("--taesd", "TAESD", default=config.DEFAULT_TAESD, metavar="ID_OR_DIR",
                       help="TAESD (hub id or folder) for the taesd preview and --vae tiny")
    p.add_env_argument("--vae", "VAE", choices=config.VAES, default=config.DEFAULT_VAE,
                       help="autoencoder for the init image and the output: full (the checkpoint's own, exact) or "
                            "tiny (the TAESD of --taesd: several times faster on a CPU, slightly softer)")
    p.add_env_argument("--no-safety-checker", "NO_SAFETY_CHECKER", action="store_true",
                       help="turn the checkpoint's safety checker off")
    p.add_env_argument("--max-side", "MAX_SIDE", type=int, default=config.MAX_SIDE,
                       help=f"cap on the longest side of the default size (default {config.MAX_SIDE})")


@dataclass
class AppSettings:
    """The web demo's start-up settings."""

    model: str = config.DEFAULT_MODEL
    device: str = "auto"
    dtype: str = "auto"
    offload: str = "none"
    preview: str = config.DEFAULT_PREVIEW
    taesd: str = config.DEFAULT_TAESD
    vae: str = config.DEFAULT_VAE
    host: str | None = None  # None: gradio's default (127.0.0.1, or GRADIO_SERVER_NAME as on Spaces)
    port: int | None = None  # None: gradio's default (7860, or GRADIO_SERVER_PORT)
    share: bool = False
    max_side: int = config.MAX_SIDE
    safety_checker: bool = True
    queue_size: int = config.QUEUE_MAX_SIZE
    compile: bool = False


def build_parser(environ: dict[str, str] | None = None) -> CommandParser:
    """``python app.py``'s flags."""
    p = CommandParser(
        prog="python app.py", environ=environ,
        description="The sd-img2img web demo: img2img with every denoising step. Each flag can also be set by "
                    "an environment variable (shown in brackets); a flag beats its variable.")
    add_model_flags(p)
    p.add_env_argument("--host", "HOST", default=None, help="address to listen on (default 127.0.0.1; 0.0.0.0 for everyone)")
    p.add_env_argument("--port", "PORT", type=int, default=None, help="port (default 7860)")
    p.add_env_argument("--share", "SHARE", action="store_true", help="also open a public gradio.live link (off unless asked)")
    p.add_env_argument("--queue-size", "QUEUE_SIZE", type=int, default=config.QUEUE_MAX_SIZE,
                       help="requests that may wait in the queue")
    return p


def parse_settings(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> AppSettings:
    a = build_parser(environ).parse_args(argv)
    return AppSettings(model=a.model, device=a.device, dtype=a.dtype, offload=a.offload, preview=a.preview,
                       taesd=a.taesd, vae=a.vae, host=a.host, port=a.port, share=a.share, max_side=a.max_side,
                       safety_checker=not a.no_safety_checker, queue_size=a.queue_size, compile=a.compile)


# -- the model ---------------------------------------------------------------------------------------------

def cache_dir(environ: dict[str, str] | None = None) -> Path:
    """``$SD_IMG2IMG_CACHE``, else ``$XDG_CACHE_HOME/sd-img2img``, else ``~/.cache/sd-img2img``."""
    environ = os.environ if environ is None else environ
    if environ.get(ENV_PREFIX + "CACHE"):
        return Path(environ[ENV_PREFIX + "CACHE"])
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sd-img2img"


def random_checkpoint(folder: str | Path | None = None) -> tuple[Path, Path]:
    """The tiny random-weight checkpoint and TAESD of the offline demo, built on first use and then reused.

    Returns ``(checkpoint folder, taesd folder)``. Its pictures are noise, but every step, control and table works.
    """
    from .random_checkpoint import build_checkpoint, build_taesd

    root = Path(folder) if folder is not None else cache_dir() / "random-tiny"
    model, taesd, done = root / "sd", root / "taesd", root / ".complete"
    if not done.exists():
        root.mkdir(parents=True, exist_ok=True)
        build_checkpoint(model, "tiny")
        build_taesd(taesd, "tiny")
        done.write_text("built by sd_img2img.settings.random_checkpoint\n")
    return model, taesd


def make_engine(model: str, *, device: str = "auto", dtype: str = "auto", offload: str = "none",
                safety_checker: bool = True, taesd: str = config.DEFAULT_TAESD, compile: bool = False,
                vae: str = config.DEFAULT_VAE):
    """The engine these settings ask for (not loaded yet). ``model='random'`` builds the offline checkpoint first."""
    from .engine import Engine

    if model == RANDOM_MODEL:
        folder, taesd_dir = random_checkpoint()
        model = str(folder)
        if taesd == config.DEFAULT_TAESD:
            taesd = str(taesd_dir)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return Engine(model, device=device, dtype=dtype, offload=offload, safety_checker=safety_checker, taesd=taesd,
                  compile=compile, vae=vae)


def engine_from(settings: Any):
    """``make_engine`` from parsed flags or ``AppSettings`` (anything with the shared flags' attributes)."""
    safety = getattr(settings, "safety_checker", None)
    if safety is None:
        safety = not settings.no_safety_checker
    return make_engine(settings.model, device=settings.device, dtype=settings.dtype, offload=settings.offload,
                       safety_checker=safety, taesd=settings.taesd, compile=settings.compile,
                       vae=getattr(settings, "vae", config.DEFAULT_VAE))


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
