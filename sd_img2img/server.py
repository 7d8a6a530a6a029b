"""What the web demo (``app.py``) needs besides its layout.

- ``AppSettings`` / ``parse_settings``: the demo's flags (the CLI's names where they overlap), each with an
  ``SD_IMG2IMG_*`` environment variable for hosts such as Hugging Face Spaces (a flag beats its variable).
- ``random_checkpoint``: the offline demo's tiny random-weight checkpoint, built once into a cache folder.
- ``ModelStatus``: loads the engine's model once, in the background, and says how that goes.
- ``gpu``: ZeroGPU's ``spaces.GPU`` where the ``spaces`` package is importable, nothing otherwise.
- ``StopFlags``: the Stop button's per-session flags, polled by the engine between steps.
- form values ↔ requests: ``seed_value``, ``size_value``, ``form_values`` (a PNG's settings → form fields).
- ``RunFiles``: per-run folders for the files the page shows (step images, strip, output PNG).

Nothing here loads a model at import time.
"""

from __future__ import annotations

import argparse
import html
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from . import config

ENV_PREFIX = "SD_IMG2IMG_"
RANDOM_MODEL = "random"  # --model random: the offline demo's random-weight checkpoint


# -- settings ----------------------------------------------------------------------------------------------

@dataclass
class AppSettings:
    model: str = config.DEFAULT_MODEL
    device: str = "auto"
    dtype: str = "auto"
    offload: str = "none"
    preview: str = config.DEFAULT_PREVIEW
    taesd: str = config.DEFAULT_TAESD
    host: str | None = None  # None: gradio's default (127.0.0.1, or GRADIO_SERVER_NAME as on Spaces)
    port: int | None = None  # None: gradio's default (7860, or GRADIO_SERVER_PORT)
    share: bool = False
    max_side: int = config.MAX_SIDE
    safety_checker: bool = True
    queue_size: int = config.QUEUE_MAX_SIZE
    compile: bool = False


# flag → (environment variable, type, help); the choices come from config
_ENV = {
    "model": ("MODEL", str, f"hub id or diffusers folder, or '{RANDOM_MODEL}' for the offline random-weight demo"),
    "device": ("DEVICE", str, "auto, cpu, cuda or mps"),
    "dtype": ("DTYPE", str, "auto, float16, bfloat16 or float32"),
    "offload": ("OFFLOAD", str, "none, model or sequential"),
    "preview": ("PREVIEW", str, "default step-image decoder: approx, taesd or full"),
    "taesd": ("TAESD", str, "TAESD decoder (hub id or folder) for the taesd preview"),
    "host": ("HOST", str, "address to listen on (default 127.0.0.1; 0.0.0.0 for everyone)"),
    "port": ("PORT", int, "port (default 7860)"),
    "max_side": ("MAX_SIDE", int, "cap on the longest side of the default size"),
    "queue_size": ("QUEUE_SIZE", int, "requests that may wait in the queue"),
}
_CHOICES = {"device": config.DEVICES, "dtype": config.DTYPES, "offload": config.OFFLOADS, "preview": config.PREVIEWS}


def _truthy(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes", "on")


def build_parser(environ: dict[str, str] | None = None) -> argparse.ArgumentParser:
    environ = os.environ if environ is None else environ
    defaults = AppSettings()
    p = argparse.ArgumentParser(
        prog="python app.py",
        description="The sd-img2img web demo: img2img with every denoising step. Each flag can also be set by "
                    "an environment variable (shown in brackets); a flag beats its variable.")
    for name, (env, kind, help_text) in _ENV.items():
        var = ENV_PREFIX + env
        default = environ.get(var)
        default = kind(default) if default not in (None, "") else getattr(defaults, name)
        p.add_argument("--" + name.replace("_", "-"), type=kind, default=default, choices=_CHOICES.get(name),
                       help=f"{help_text} [{var}]")
    share_default = _truthy(environ.get(ENV_PREFIX + "SHARE", ""))
    p.add_argument("--share", action="store_true", default=share_default,
                   help=f"also open a public gradio.live link (off unless asked) [{ENV_PREFIX}SHARE]")
    p.add_argument("--compile", action="store_true", default=_truthy(environ.get(ENV_PREFIX + "COMPILE", "")),
                   help=f"torch.compile the UNet, warmed up at load so no visitor pays for it (GPU) [{ENV_PREFIX}COMPILE]")
    p.add_argument("--no-safety-checker", action="store_true",
                   default=_truthy(environ.get(ENV_PREFIX + "NO_SAFETY_CHECKER", "")),
                   help=f"turn the checkpoint's safety checker off [{ENV_PREFIX}NO_SAFETY_CHECKER]")
    return p


def parse_settings(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> AppSettings:
    args = build_parser(environ).parse_args(argv)
    values = {name: getattr(args, name) for name in _ENV}
    return AppSettings(**values, share=args.share, safety_checker=not args.no_safety_checker, compile=args.compile)


# -- the offline demo's random checkpoint ------------------------------------------------------------------

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
        done.write_text("built by sd_img2img.server.random_checkpoint\n")
    return model, taesd


def make_engine(settings: AppSettings):
    """The engine the demo serves (not loaded yet). ``--model random`` builds the offline checkpoint first."""
    from .engine import Engine

    model, taesd = settings.model, settings.taesd
    if model == RANDOM_MODEL:
        model, taesd_dir = random_checkpoint()
        model = str(model)
        if taesd == config.DEFAULT_TAESD:
            taesd = str(taesd_dir)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return Engine(model, device=settings.device, dtype=settings.dtype, offload=settings.offload,
                  safety_checker=settings.safety_checker, taesd=taesd, compile=settings.compile)


# -- background loading and its status ---------------------------------------------------------------------

class ModelStatus:
    """Loads ``engine``'s model once in a background thread; ``state`` is loading, ready or failed."""

    def __init__(self, engine):
        self.engine = engine
        self.started = time.monotonic()
        self._thread: threading.Thread | None = None

    def start(self) -> ModelStatus:
        if self._thread is None and not self.engine.is_loaded:
            self._thread = threading.Thread(target=self._load, name="sd-img2img-load", daemon=True)
            self._thread.start()
        return self

    def _load(self) -> None:
        try:
            self.engine.load()
        except Exception:  # kept on engine.load_error and shown on the page
            pass

    def wait(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.engine.is_loaded

    @property
    def state(self) -> str:
        if self.engine.is_loaded:
            return "ready"
        if self.engine.load_error is not None and (self._thread is None or not self._thread.is_alive()):
            return "failed"
        return "loading"

    @property
    def done(self) -> bool:
        return self.state != "loading"

    def describe(self) -> str:
        name = model_label(self.engine.model)
        state = self.state
        if state == "ready":
            secs = self.engine.load_seconds
            return f"Model ready · {name}" + (f" · loaded in {secs:.1f} s" if secs is not None else "")
        if state == "failed":
            err = self.engine.load_error
            return f"Model failed to load · {name} · {str(err) or type(err).__name__}"
        return f"Loading the model · {name} · {time.monotonic() - self.started:.0f} s"

    def html(self) -> str:
        return (f'<div class="model-status {self.state}" role="status"><span class="dot"></span>'
                f"<span>{html.escape(self.describe())}</span></div>")


def model_label(model: str) -> str:
    """A short name for the page: a hub id as is, a folder by its last part, the offline demo's as such."""
    path = Path(model)
    if path.is_absolute() or model.startswith("."):
        if path.parent.name == "random-tiny" or path.name in ("tiny-sd15",):
            return "random weights (offline demo)"
        return path.name
    return model


# -- ZeroGPU -----------------------------------------------------------------------------------------------

def gpu(fn: Callable) -> Callable:
    """``spaces.GPU(duration=GPU_SECONDS)(fn)`` on Hugging Face ZeroGPU hardware (the ``spaces`` package is
    importable there); ``fn`` itself everywhere else."""
    try:
        import spaces  # type: ignore[import-not-found]
    except ImportError:
        return fn
    return spaces.GPU(duration=config.GPU_SECONDS)(fn)


# -- the Stop button ---------------------------------------------------------------------------------------

class StopFlags:
    """One flag per browser session. Stop sets it; the session's run polls it between steps.

    A Stop that comes while the session's run still waits in the queue is kept (for ``keep_seconds``), and
    that run ends at once.
    """

    def __init__(self, keep_seconds: float = 600.0):
        self._lock = threading.Lock()
        self._running: dict[str, threading.Event] = {}
        self._pending: dict[str, float] = {}  # session → when its Stop came; old ones are dropped
        self.keep_seconds = keep_seconds

    def begin(self, session: str | None) -> threading.Event:
        event = threading.Event()
        if session:
            with self._lock:
                if self._pending.pop(session, None) is not None:
                    event.set()
                self._running[session] = event
        return event

    def end(self, session: str | None, event: threading.Event) -> None:
        if session:
            with self._lock:
                if self._running.get(session) is event:
                    del self._running[session]

    def stop(self, session: str | None) -> bool:
        """Ask the session's run to stop; True if one was running."""
        if not session:
            return False
        with self._lock:
            event = self._running.get(session)
            if event is None:
                now = time.monotonic()
                for old in [s for s, t in self._pending.items() if now - t > self.keep_seconds]:
                    del self._pending[old]  # visitors who pressed Stop with nothing running and left
                self._pending[session] = now
                return False
            event.set()
            return True

    def clear_pending(self, session: str | None) -> None:
        with self._lock:
            self._pending.pop(session, None)


# -- form values -------------------------------------------------------------------------------------------

def seed_value(value: Any) -> int | None:
    """A seed field's value: empty, None or -1 mean "random"; a whole float becomes an int."""
    if value is None or value == "" or value == -1:
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def size_value(value: Any) -> int | None:
    """A width/height field's value: empty, None or 0 mean "the image's own size" (512 for prompt2img)."""
    if value is None or value == "" or value == 0:
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


FORM_FIELDS = ("prompt", "negative_prompt", "strength", "steps", "real_steps", "seed", "sampler",
               "guidance_scale", "width", "height", "resize_mode")


def form_values(png_path: str | Path) -> dict[str, Any]:
    """The form fields a PNG written by this project (app or CLI) fills: {field: value}, only those it has.

    Raises ``UserInputError`` when the file carries no settings.
    """
    from .metadata import read_settings, request_kwargs

    kwargs = request_kwargs(read_settings(png_path))
    return {k: v for k, v in kwargs.items() if k in FORM_FIELDS}


# -- files the page shows ----------------------------------------------------------------------------------

class RunFiles:
    """Folders for each run's files under one temporary root, so disk use stays bounded over weeks of traffic:
    a new run removes folders older than ``keep_seconds`` and, beyond ``max_runs``, the oldest ones."""

    def __init__(self, root: str | Path | None = None, keep_seconds: float = config.KEEP_RUN_SECONDS,
                 max_runs: int = config.MAX_KEPT_RUNS, on_remove: Callable[[list[Path]], None] | None = None):
        self.root = Path(root) if root is not None else Path(tempfile.gettempdir()) / f"sd-img2img-app-{os.getpid()}"
        self.keep_seconds = keep_seconds
        self.max_runs = max_runs
        self.on_remove = on_remove  # told which run folders went (the app drops them from gradio's file lists)
        self._lock = threading.Lock()

    def new(self) -> Path:
        with self._lock:
            self.root.mkdir(parents=True, exist_ok=True)
            now = time.time()
            runs = []
            for old in self.root.iterdir():
                try:
                    runs.append((old.stat().st_mtime, old))
                except OSError:
                    pass
            runs.sort()
            removed = []
            for i, (mtime, old) in enumerate(runs):
                if now - mtime > self.keep_seconds or len(runs) - i >= self.max_runs:
                    shutil.rmtree(old, ignore_errors=True)
                    removed.append(old)
            if removed and self.on_remove is not None:
                self.on_remove(removed)
            return Path(tempfile.mkdtemp(dir=self.root, prefix="run-"))


def forget_paths(path_sets: list[set[str]], folders: list[Path]) -> int:
    """Drop every path inside ``folders`` from ``path_sets`` (gradio's ``Blocks.temp_file_sets``); return how many.

    gradio records each file it serves and its cache sweep keeps the record of a file someone else deleted, so
    without this the records of swept runs would pile up for as long as the server runs.
    """
    prefixes = tuple({os.path.join(str(f), "") for f in folders} | {os.path.join(os.path.realpath(f), "") for f in folders})
    dropped = 0
    for paths in path_sets:
        stale = {p for p in list(paths) if isinstance(p, str) and p.startswith(prefixes)}
        paths -= stale
        dropped += len(stale)
    return dropped


def save_step_image(image, path: Path) -> str:
    """Step pictures travel as small WebP files (they are previews; the output stays a PNG)."""
    image.save(path, format="WEBP", quality=85, method=4)
    return str(path)
