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
from sd_img2img.plan.timing import format_duration

# -- ZeroGPU -----------------------------------------------------------------------------------------------


def gpu(fn: Callable) -> Callable:
    """``spaces.GPU(duration=VIEW_GPU_SECONDS)(fn)`` on Hugging Face ZeroGPU hardware (the ``spaces`` package is
    importable there), for the page's short GPU work outside a run (redrawing a run's steps in the other view);
    ``fn`` itself everywhere else. The runs themselves are one GPU call each (``engine.zero_gpu``)."""
    try:
        import spaces  # type: ignore[import-not-found]
    except ImportError:
        return fn
    return spaces.GPU(duration=config.VIEW_GPU_SECONDS)(fn)


# -- the queue, as a waiting visitor sees it ----------------------------------------------------------------

TURN_POLL_SECONDS = 1.0  # a run waiting for its turn redraws its wait line this often


@dataclass
class Waiting:
    """One session's run or series in the wait line."""

    clicked: float
    estimates: list[float] | None  # each run's seconds (None: not known yet)
    what: str = "a run"  # "a grid of 6 cells"
    runs: int = 1
    noun: str = "run"
    started: float | None = None
    done: int = 0  # runs of it ended
    run_started: float | None = None  # when its current run began (or began waiting for its turn)

    @property
    def estimate(self) -> float | None:
        return None if self.estimates is None else sum(self.estimates)

    def _current_left(self, now: float) -> float:
        """Seconds left of its current run (its first, before it starts)."""
        current = self.estimates[min(self.done, len(self.estimates) - 1)]
        return max(0.0, current - (now - self.run_started)) if self.run_started is not None else current

    def seconds_left(self, now: float) -> float | None:
        """Seconds left of all its runs."""
        if self.estimates is None:
            return None
        return self._current_left(now) + sum(self.estimates[self.done + 1 :])

    def turn_seconds(self, now: float) -> float | None:
        """Seconds it holds the models before a run clicked now gets its turn: runs take turns, so one run of it
        (the one going, or its first)."""
        return None if self.estimates is None else self._current_left(now)

    def describe(self, now: float | None = None) -> str:
        """``a run``, ``a grid of 6 cells`` (``… (3 of 6 left, about 40 s)`` once it has started)."""
        if self.runs == 1 or self.started is None:
            return self.what
        left = self.seconds_left(now if now is not None else time.monotonic())
        more = f", {format_duration(left)}" if left is not None else ""
        return f"{self.what} ({self.runs - self.done} of {self.runs} left{more})"


class RunQueue:
    """The runs and series clicked and not finished, in click order, each with its estimated seconds: what a visitor
    who clicks now waits for. Runs take turns (``engine.turns``), so a visitor waits for one run of each that is
    ahead, shared among the runs that go at once (``capacity``). One entry per session: a session has one thing in
    flight (``busy``)."""

    def __init__(self, forget_seconds: float = config.QUEUE_FORGET_SECONDS, capacity: int = 1):
        self._lock = threading.Lock()
        self._waiting: dict[str, Waiting] = {}
        self.forget_seconds = forget_seconds
        self.capacity = max(1, capacity)

    def join(
        self,
        session: str | None,
        estimate: float | list[float] | None,
        what: str = "a run",
        runs: int = 1,
        noun: str = "run",
    ) -> tuple[list[str], float | None]:
        """Queue ``session``'s run (or series: ``what`` it is, of ``runs`` runs; ``estimate``: its seconds in all, or
        each run's); return what is ahead of it, each as a wait line names it, and the seconds before its turn
        comes (None if any is unknown)."""
        now = time.monotonic()
        if estimate is not None and not isinstance(estimate, list):
            estimate = [estimate / runs] * runs
        with self._lock:
            for old in [s for s, w in self._waiting.items() if now - w.clicked > self.forget_seconds]:
                del self._waiting[old]
            ahead = [w for s, w in self._waiting.items() if s != session]
            if session:
                self._waiting[session] = Waiting(now, estimate, what, runs, noun)
            return self._wait(ahead, now)

    def ahead_of(self, session: str | None) -> tuple[list[str], float | None]:
        """What is ahead of ``session``'s run now (what has started, and what was clicked before it) and the seconds
        before its turn comes, as ``join`` says them."""
        now = time.monotonic()
        with self._lock:
            mine = self._waiting.get(session)
            clicked = mine.clicked if mine is not None else now
            ahead = [
                w for s, w in self._waiting.items() if s != session and (w.started is not None or w.clicked < clicked)
            ]
            return self._wait(ahead, now)

    def _wait(self, ahead: list[Waiting], now: float) -> tuple[list[str], float | None]:
        names = [w.describe(now) for w in ahead]
        turns = [w.turn_seconds(now) for w in ahead]
        return names, (None if None in turns else sum(turns) / self.capacity)

    def has(self, session: str | None) -> bool:
        with self._lock:
            return session in self._waiting

    def busy(self, session: str | None) -> Waiting | None:
        """``session``'s run or series that has started and not ended (a session has one thing in flight)."""
        with self._lock:
            waiting = self._waiting.get(session)
            return waiting if waiting is not None and waiting.started is not None else None

    def start(self, session: str | None) -> bool:
        """``session``'s run or series starts; False when one of its runs or series has started already."""
        with self._lock:
            waiting = self._waiting.get(session)
            if waiting is None:
                return True
            if waiting.started is not None:
                return False
            waiting.started = waiting.run_started = time.monotonic()
            return True

    def progress(self, session: str | None, done: int) -> None:
        """``done`` runs of ``session``'s series have ended (the next one begins)."""
        with self._lock:
            if session in self._waiting:
                self._waiting[session].done = done
                self._waiting[session].run_started = time.monotonic()

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
