"""The page's run-time state, kept apart from its layout and its start-up settings (``settings.py``).

- ``StopFlags``: the Stop button's per-session flags, polled by the engine between steps.
- ``RunQueue``: the runs and series clicked and not finished, with their estimates, for a queued visitor's wait line.
- ``RunFiles`` / ``forget_paths`` / ``save_step_image``: per-run folders for the files the page shows, bounded.
- ``gpu``: ZeroGPU's ``spaces.GPU`` where the ``spaces`` package is importable, nothing otherwise.

The models' load state is the backend's (``engine.backend``).

Nothing here loads a model at import time.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from sd_img2img import config

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


@dataclass
class Waiting:
    """One session's run or series in the wait line."""

    clicked: float
    estimate: float | None  # seconds it takes in all (None: not known yet)
    what: str = "a run"  # "a grid of 6 cells"
    runs: int = 1
    noun: str = "run"
    started: float | None = None
    done: int = 0  # runs of it finished

    def seconds_left(self, now: float) -> float | None:
        if self.estimate is None:
            return None
        return max(0.0, self.estimate - (now - self.started)) if self.started is not None else self.estimate

    def describe(self) -> str:
        """``a run``, ``a grid of 6 cells`` (``… (2 of 6 done)`` once it has finished some)."""
        return self.what + (f" ({self.done} of {self.runs} done)" if self.runs > 1 and self.done else "")


class RunQueue:
    """The runs and series clicked and not finished, in click order, each with its estimated seconds: what a visitor
    who clicks now waits for (gradio's one model queue serves them in that order). One entry per session."""

    def __init__(self, forget_seconds: float = config.QUEUE_FORGET_SECONDS):
        self._lock = threading.Lock()
        self._waiting: dict[str, Waiting] = {}
        self.forget_seconds = forget_seconds

    def join(
        self, session: str | None, estimate: float | None, what: str = "a run", runs: int = 1, noun: str = "run"
    ) -> tuple[list[str], float | None]:
        """Queue ``session``'s run (or series: ``what`` it is, of ``runs`` runs); return what is ahead of it, each as
        a wait line names it, and the seconds they will take (None if any is unknown)."""
        now = time.monotonic()
        with self._lock:
            for old in [s for s, w in self._waiting.items() if now - w.clicked > self.forget_seconds]:
                del self._waiting[old]
            ahead = [w for s, w in self._waiting.items() if s != session]
            if session:
                self._waiting[session] = Waiting(now, estimate, what, runs, noun)
        seconds = 0.0
        for waiting in ahead:
            left = waiting.seconds_left(now)
            if left is None:
                return [w.describe() for w in ahead], None
            seconds += left
        return [w.describe() for w in ahead], seconds

    def has(self, session: str | None) -> bool:
        with self._lock:
            return session in self._waiting

    def start(self, session: str | None) -> None:
        with self._lock:
            if session in self._waiting:
                self._waiting[session].started = time.monotonic()

    def progress(self, session: str | None, done: int) -> None:
        """``done`` runs of ``session``'s series have finished."""
        with self._lock:
            if session in self._waiting:
                self._waiting[session].done = done

    def leave(self, session: str | None) -> None:
        with self._lock:
            self._waiting.pop(session, None)


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
