"""The web demo's run-time state, kept apart from its layout (``app.py``) and its start-up settings (``settings.py``).

- ``ModelStatus``: loads the engine's model once, in the background, and says how that goes.
- ``StopFlags``: the Stop button's per-session flags, polled by the engine between steps.
- ``RunQueue``: the runs clicked and not finished, with their estimates, for a queued visitor's wait line.
- ``RunFiles`` / ``forget_paths`` / ``save_step_image``: per-run folders for the files the page shows, bounded.
- ``gpu``: ZeroGPU's ``spaces.GPU`` where the ``spaces`` package is importable, nothing otherwise.
- form values → requests: ``seed_value``, ``size_value``.

Nothing here loads a model at import time.
"""

from __future__ import annotations

import html
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

from sd_img2img import config

# -- background loading and its status ---------------------------------------------------------------------


class ModelStatus:
    """The served models' state for the page: the first one loads in a background thread at start (so the page is
    up at once); the others load on first use. ``state(name)`` is ``loading``, ``ready``, ``failed`` or ``idle``
    (listed, not loaded yet).

    Args:
        models: a ``models.ModelSet``, or one ``Engine`` (served under its model's short name).
    """

    def __init__(self, models):
        from sd_img2img.models.model_set import ModelSet

        if not isinstance(models, ModelSet):
            models = ModelSet.of({model_label(models.model): models})
        self.models = models
        self.started = time.monotonic()
        self._thread: threading.Thread | None = None

    @property
    def engine(self):
        """The first model's engine (made, not necessarily loaded)."""
        return self.models.existing(self.models.first) or self.models._engine(self.models.first)

    def start(self) -> ModelStatus:
        if self._thread is None and not self.engine.is_loaded:
            self._thread = threading.Thread(target=self._load, name="sd-img2img-load", daemon=True)
            self._thread.start()
        return self

    def _load(self) -> None:
        try:
            self.models.engine(self.models.first)
        except Exception:  # kept on engine.load_error and shown on the page
            return
        self.engine.model_hash()  # for the PNGs' "Model hash", read once here rather than in a visitor's run

    def wait(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.engine.is_loaded

    def state(self, name: str | None = None) -> str:
        name = name or self.models.first
        engine = self.models.existing(name)
        loading_first = name == self.models.first and self._thread is not None and self._thread.is_alive()
        if engine is not None and engine.is_loaded:
            return "ready"
        if engine is not None and engine.load_error is not None and not loading_first:
            return "failed"
        return "loading" if loading_first else "idle"

    @property
    def done(self) -> bool:
        """The first model's load is over (the page stops polling)."""
        return self.state() != "loading"

    def describe(self, name: str | None = None) -> str:
        name = name or self.models.first
        info = self.models.info(name)
        label = model_label(name) + (f" · {info.family_label}" if info.family_label else "")
        engine, state = self.models.existing(name), self.state(name)
        if state == "ready":
            secs = engine.load_seconds
            return f"Model ready · {label}" + (f" · loaded in {secs:.1f} s" if secs is not None else "")
        if state == "failed":
            err = engine.load_error
            return f"Model failed to load · {label} · {str(err) or type(err).__name__}"
        if state == "idle":
            return f"Model not loaded yet · {label} · loads with the first run"
        return f"Loading the model · {label} · {time.monotonic() - self.started:.0f} s"

    def html(self, name: str | None = None) -> str:
        return (
            f'<div class="model-status {self.state(name)}" role="status"><span class="dot"></span>'
            f"<span>{html.escape(self.describe(name))}</span></div>"
        )


def model_label(model: str) -> str:
    """A short name for the page: a hub id as is, a folder by its last part, the offline demo's as such."""
    path = Path(model)
    if path.is_absolute() or model.startswith("."):
        if path.name == "model" and path.parent.name.startswith("random-"):
            return f"random weights ({path.parent.name.removeprefix('random-')}, offline demo)"
        return path.name
    if model == "random" or model.startswith("random-"):
        return f"{model} (random weights, offline demo)"
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


# -- the queue, as a waiting visitor sees it ----------------------------------------------------------------


class RunQueue:
    """The runs clicked and not finished, in click order, each with its estimated seconds: what a visitor who clicks
    now waits for (gradio's one model queue serves them in that order). One entry per session."""

    def __init__(self, forget_seconds: float = config.QUEUE_FORGET_SECONDS):
        self._lock = threading.Lock()
        self._runs: dict[str, list] = {}  # session → [clicked at, estimate or None, started at or None]
        self.forget_seconds = forget_seconds

    def join(self, session: str | None, estimate: float | None) -> tuple[int, float | None]:
        """Queue ``session``'s run; return the runs ahead of it and the seconds they will take (None if any is
        unknown)."""
        now = time.monotonic()
        with self._lock:
            for old in [s for s, (t, *_) in self._runs.items() if now - t > self.forget_seconds]:
                del self._runs[old]
            ahead = [run for s, run in self._runs.items() if s != session]
            if session:
                self._runs[session] = [now, estimate, None]
        seconds = 0.0
        for _, est, started in ahead:
            if est is None:
                return len(ahead), None
            seconds += max(0.0, est - (now - started)) if started is not None else est
        return len(ahead), seconds

    def start(self, session: str | None) -> None:
        with self._lock:
            if session in self._runs:
                self._runs[session][2] = time.monotonic()

    def leave(self, session: str | None) -> None:
        with self._lock:
            self._runs.pop(session, None)


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


# -- files the page shows ----------------------------------------------------------------------------------


class RunFiles:
    """Folders for each run's files under one temporary root, so disk use stays bounded over weeks of traffic:
    a new run removes folders older than ``keep_seconds`` and, beyond ``max_runs``, the oldest ones."""

    def __init__(
        self,
        root: str | Path | None = None,
        keep_seconds: float = config.KEEP_RUN_SECONDS,
        max_runs: int = config.MAX_KEPT_RUNS,
        on_remove: Callable[[list[Path]], None] | None = None,
    ):
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
    prefixes = tuple(
        {os.path.join(str(f), "") for f in folders} | {os.path.join(os.path.realpath(f), "") for f in folders}
    )
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
