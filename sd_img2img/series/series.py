"""A series: several runs made as one thing (the explain table's columns, the strength × steps grid's cells,
loopback's loops; later a batch of seeds and the two sides of a comparison).

A ``Series`` is a list of prepared requests with their labels (``SeriesRun``), run through the page's ``Backend`` as
normal requests, so each run's output is exactly that single run's. On a page each run takes its own turn on the
models (``engine.turns``: others' runs go in between), and where the backend takes several runs at once (Ray's
workers) several runs of a series go at once. What they share is here once: the cost before it starts (steps that run
by each family's rule, the time once this server has measured its models), how Stop ends it (between runs, keeping
the finished ones; a run stopped part-way keeps its steps), a run that fails (said on it, the others go on), how far
it has got, and the info a page or the CLI prints. What differs (how the requests are made, what a run's PNG records
beside its settings, how a page draws it) is each kind's own (``compare``, ``grid``, ``loopback``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from sd_img2img.engine.backend import Backend, run_to_end
from sd_img2img.engine.result import GenerationResult
from sd_img2img.engine.turns import TurnStopped
from sd_img2img.errors import ModelLoadError, UserInputError
from sd_img2img.plan.prepare import PreparedRequest
from sd_img2img.plan.request import GenerationRequest
from sd_img2img.plan.timing import format_duration


@dataclass
class SeriesRun:
    """One run of a series.

    Args:
        label: what it is, for people (``strength 0.4 · 10 steps``, ``loop 2``).
        model: the served model it runs on.
        prepared: its request, prepared before the series starts (a chained run's is prepared again from the run
            before it when its turn comes).
        at: where it sits on the series' axes (a grid cell: (row, column); a column: (column,); a loop: (loop,)).
        records: what its PNG records beside its own settings (which cell or loop it is).
    """

    label: str
    model: str
    prepared: PreparedRequest
    at: tuple[int, ...] = ()
    records: dict[str, Any] = field(default_factory=dict)
    result: GenerationResult | None = None
    output: Image.Image | None = None  # the picture it made (loopback's colour-matched), once run
    error: str | None = None  # why it failed, when it raised (the series went on without it)

    @property
    def steps_to_run(self) -> int:
        return self.prepared.plan.steps_to_run

    @property
    def done(self) -> bool:
        return self.result is not None

    @property
    def failed(self) -> bool:
        return self.error is not None


@dataclass
class Series:
    """Runs made as one thing, and what they share.

    Args:
        kind: ``compare``, ``grid``, ``loopback`` or ``batch``.
        noun: what one run is called (``column``, ``cell``, ``loop``, ``image``).
        name: what a wait line and a message call it (``table``, ``grid``, ``loopback``; default: the kind).
        runs: the runs, in the order they run.
        chain: how a run's request follows from the run before it (loopback: the previous output is the next initial
            image); None: every run is prepared up front.
        keep: the picture a finished run keeps (loopback: colour-matched to the first initial image); None: its output.
        description: what the cost line says before the time (loopback's curve); None: its steps and runs.
        others_between: other visitors' runs that took their turns between its runs (on a page).
    """

    kind: str
    noun: str
    runs: list[SeriesRun]
    name: str = ""
    chain: Callable[[SeriesRun, SeriesRun], GenerationRequest] | None = None
    keep: Callable[[SeriesRun], Image.Image] | None = None
    description: str | None = None
    others_between: int = 0  # other visitors' runs that went in between its runs (a page's turns)

    def __post_init__(self):
        self.name = self.name or self.kind

    @property
    def total_steps(self) -> int:
        """The steps its runs will run, by their families' rules."""
        return sum(run.steps_to_run for run in self.runs)

    @property
    def finished(self) -> list[SeriesRun]:
        return [run for run in self.runs if run.done]

    @property
    def steps_taken(self) -> int:
        return sum(run.result.steps_taken for run in self.finished)

    @property
    def seed(self) -> int:
        return self.runs[0].prepared.seed

    @property
    def failures(self) -> list[SeriesRun]:
        return [run for run in self.runs if run.failed]

    @property
    def stopped(self) -> bool:
        """A run neither finished nor failed, or one was stopped part-way."""
        ended = len(self.finished) + len(self.failures)
        return ended < len(self.runs) or any(run.result.stopped for run in self.finished)

    def plural(self, n: int) -> str:
        return f"{n} {self.noun}{'s' * (n != 1)}"

    def what(self) -> str:
        """``a grid of 6 cells``: the series, as a wait line names it."""
        return f"a {self.name} of {self.plural(len(self.runs))}"

    def cost(self, seconds: float | None) -> str:
        """``this grid runs 58 steps in 6 cells · about 1 min here`` (no time until this server has measured runs)."""
        n = self.total_steps
        line = self.description or f"this {self.name} runs {n} step{'s' * (n != 1)} in {self.plural(len(self.runs))}"
        return line + (f" · {format_duration(seconds)} here" if seconds is not None else "")

    def progress(self, running: bool) -> str:
        """``Running cell 3 of 6…``, ``Done: 6 cells · 58 steps taken``, ``Stopped after 2 of 6 cells · …``."""
        n, done = len(self.runs), len(self.finished)
        failed = f" · {len(self.failures)} failed" if self.failures else ""
        k = self.others_between
        if k:
            failed += (
                " · 1 other visitor's run went in between" if k == 1 else f" · {k} other visitors' runs went in between"
            )
        if running:
            return f"Running {self.noun} {min(done + len(self.failures) + 1, n)} of {n}…{failed}"
        head = f"Done: {self.plural(n)}" if not self.stopped else f"Stopped after {done} of {self.plural(n)}"
        return f"{head} · {self.steps_taken} steps taken{failed}"

    def run_info(self, run: SeriesRun, output: str | None) -> dict[str, Any]:
        """One finished run as JSON: which it is, what it ran and took, its PNG's file name."""
        r = run.result
        return {
            "label": run.label,
            **_position(self, run),
            "model": run.model,
            "strength": r.strength,
            "steps": r.steps,
            "steps_taken": r.steps_taken,
            "seed": r.seed,
            "stopped": r.stopped,
            "output": output,
        }

    def info(self, files: list[str]) -> dict[str, Any]:
        """The series as JSON: the steps it plans and took, and each finished run (``files``: their PNGs, in order)."""
        names = [f.rsplit("/", 1)[-1] for f in files]
        runs = [self.run_info(run, names[i] if i < len(names) else None) for i, run in enumerate(self.finished)]
        failed = [{"label": run.label, **_position(self, run), "error": run.error} for run in self.failures]
        return {
            "kind": self.kind,
            "total_steps": self.total_steps,
            "steps_taken": self.steps_taken,
            "seed": self.seed,
            f"{self.noun}s": runs,
            "stopped": self.stopped,
            **({"failed": failed} if failed else {}),
        }


def _position(series: Series, run: SeriesRun) -> dict[str, int]:
    """Where ``run`` sits, counted from 1, under its kind's names (grid: row and column; compare: column; loop)."""
    names = {"grid": ("row", "column"), "compare": ("column",), "loopback": ("loop",), "batch": ("image",)}
    names = names.get(series.kind, ())
    return {name: i + 1 for name, i in zip(names, run.at)}


def check_total_steps(series: Series, limit: int, hint: str) -> None:
    """``UserInputError`` with the numbers when ``series`` runs more than ``limit`` steps in all."""
    if series.total_steps > limit:
        detail = f" ({series.description})" if series.description else ""
        raise UserInputError(
            f"this {series.name} runs {series.total_steps} steps{detail}, above the limit of {limit}; {hint}"
        )


def estimate_runs(backend: Backend, series: Series) -> list[float] | None:
    """Seconds each of ``series``' runs will take on this server; None while any has none (its model has not run
    here yet)."""
    seconds = [backend.estimate(run.prepared, run.model) for run in series.runs]
    return None if None in seconds else seconds


def estimate_series(backend: Backend, series: Series) -> float | None:
    """Seconds ``series`` will take on this server: the sum of its runs' estimates (None as ``estimate_runs``)."""
    seconds = estimate_runs(backend, series)
    return None if seconds is None else sum(seconds)


Turn = Callable[[], AbstractContextManager]


def run_series(
    series: Series,
    backend: Backend,
    should_stop: Callable[[], bool] | None = None,
    turn: Turn | None = None,
    at_once: int = 1,
) -> Iterator[SeriesRun]:
    """Run each run through ``backend``, yielding each as it ends (finished, or failed: ``run.error`` says why, and
    the others go on). Stop (``should_stop``, polled before each run, while it waits for its turn and between its
    steps) ends the series, keeping the finished runs and the steps of the one it stopped.

    Args:
        series: the runs, prepared.
        backend: where they run (the page's, or ``LocalBackend(engine)``).
        should_stop: True ends the series.
        turn: held around each run (the page's ``TurnQueue.turn`` for the visitor: each run waits for its own turn,
            and ``TurnStopped`` from it ends the series as Stop does); None: no turns to wait for (the CLI).
        at_once: runs that go at once (a backend that takes several: Ray's workers); a chained series (loopback)
            runs one at a time.
    """
    if at_once > 1 and series.chain is None and len(series.runs) > 1:
        yield from _run_together(series, backend, should_stop, turn, at_once)
        return
    previous: SeriesRun | None = None
    for run in series.runs:
        if should_stop is not None and should_stop():
            break
        if series.chain is not None and previous is not None:
            run.prepared = backend.prepare(series.chain(run, previous), run.model)
        if not _run_one(series, run, backend, should_stop, turn):
            break
        yield run
        if run.failed and series.chain is not None:
            break  # the next loop starts from this one's output
        if run.result is not None and run.result.stopped:
            break
        previous = run


def _run_one(series: Series, run: SeriesRun, backend: Backend, should_stop, turn: Turn | None) -> bool:
    """Run ``run`` in its turn; False when Stop came first (it did not run). A run that raises is marked failed
    (``run.error``), except where nothing of the series can run: a model that cannot load, bad input."""
    if should_stop is not None and should_stop():
        return False
    try:
        with turn() if turn is not None else nullcontext():
            run.result = run_to_end(backend, run.prepared, run.model, should_stop)
    except TurnStopped:
        return False
    except (ModelLoadError, UserInputError):
        raise
    except Exception as e:  # noqa: BLE001  a failed run is said on it; the series goes on
        if should_stop is not None and should_stop():
            return False  # stopped from outside the run (a ZeroGPU call closed): not a failure
        logging.getLogger(__name__).warning("%s of a %s failed", run.label, series.name, exc_info=True)
        run.error = str(e) or type(e).__name__
        return True
    run.output = series.keep(run) if series.keep is not None else run.result.output
    return True


def _run_together(series: Series, backend: Backend, should_stop, turn: Turn | None, at_once: int):
    """``run_series`` with ``at_once`` runs going at once, each in its own turn; yields runs as they end. Closing the
    generator (Stop, a closed tab) stops the runs still going between their steps."""
    closed = threading.Event()

    def stop() -> bool:
        return closed.is_set() or (should_stop is not None and should_stop())

    pool = ThreadPoolExecutor(at_once, thread_name_prefix=f"sd-img2img-{series.kind}")
    try:
        futures = {pool.submit(_run_one, series, run, backend, stop, turn): run for run in series.runs}
        for future in as_completed(futures):
            if future.result():
                yield futures[future]
    finally:
        closed.set()
        pool.shutdown(wait=True, cancel_futures=True)
