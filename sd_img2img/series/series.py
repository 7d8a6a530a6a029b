"""A series: several runs made as one thing (the explain table's columns, the strength × steps grid's cells,
loopback's loops; later a batch of seeds and the two sides of a comparison).

A ``Series`` is a list of prepared requests with their labels (``SeriesRun``), run one after another through the
page's ``Backend`` as normal requests, so each run's output is exactly that single run's. What they share is here
once: the cost before it starts (steps that run by each family's rule, the time once this server has measured its
models), how Stop ends it (between runs, keeping the finished ones; a run stopped part-way keeps its steps), how far
it has got, and the info a page or the CLI prints. What differs (how the requests are made, what a run's PNG records
beside its settings, how a page draws it) is each kind's own (``compare``, ``grid``, ``loopback``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from sd_img2img.engine.backend import Backend, run_to_end
from sd_img2img.engine.result import GenerationResult
from sd_img2img.errors import UserInputError
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

    @property
    def steps_to_run(self) -> int:
        return self.prepared.plan.steps_to_run

    @property
    def done(self) -> bool:
        return self.result is not None


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
    """

    kind: str
    noun: str
    runs: list[SeriesRun]
    name: str = ""
    chain: Callable[[SeriesRun, SeriesRun], GenerationRequest] | None = None
    keep: Callable[[SeriesRun], Image.Image] | None = None
    description: str | None = None

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
    def stopped(self) -> bool:
        """Not every run finished, or one was stopped part-way."""
        return len(self.finished) < len(self.runs) or any(run.result.stopped for run in self.finished)

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
        if running:
            return f"Running {self.noun} {min(done + 1, n)} of {n}…"
        head = f"Done: {self.plural(n)}" if not self.stopped else f"Stopped after {done} of {self.plural(n)}"
        return f"{head} · {self.steps_taken} steps taken"

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
        return {
            "kind": self.kind,
            "total_steps": self.total_steps,
            "steps_taken": self.steps_taken,
            "seed": self.seed,
            f"{self.noun}s": runs,
            "stopped": self.stopped,
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


def estimate_series(backend: Backend, series: Series) -> float | None:
    """Seconds ``series`` will take on this server: the sum of its runs' estimates, None while any of them has none
    (its model has not run here yet)."""
    total = 0.0
    for run in series.runs:
        seconds = backend.estimate(run.prepared, run.model)
        if seconds is None:
            return None
        total += seconds
    return total


def run_series(series: Series, backend: Backend, should_stop: Callable[[], bool] | None = None) -> Iterator[SeriesRun]:
    """Run each run in turn through ``backend``, yielding each as it finishes. Stop (``should_stop``, polled before each
    run and between its steps) ends the series, keeping the finished runs and the steps of the one it stopped.

    Args:
        series: the runs, prepared.
        backend: where they run (the page's, or ``LocalBackend(engine)``).
        should_stop: True ends the series.
    """
    previous: SeriesRun | None = None
    for run in series.runs:
        if should_stop is not None and should_stop():
            break
        if series.chain is not None and previous is not None:
            run.prepared = backend.prepare(series.chain(run, previous), run.model)
        run.result = run_to_end(backend, run.prepared, run.model, should_stop)
        run.output = series.keep(run) if series.keep is not None else run.result.output
        yield run
        if run.result.stopped:
            break
        previous = run
