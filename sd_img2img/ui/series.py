"""What every series event does on the page (the explain table, the grid, loopback, a batch, a comparison): it takes
its place in the wait line (so a visitor queued behind it is told it is there, and how much of it is left), is
refused when the visitor has something going already or when it would take longer than this server allows, takes
the session's Stop, runs each run through the backend as a normal request in its own turn (others' runs go in
between; on Ray several of its runs go at once), saves each finished run's PNG (its settings, and which run of the
series it is), and redraws after each; Stop ends it between runs or steps, keeping what finished, and a run that fails
is shown failed while the others go on. The series' own summary line and strip are drawn here too; each kind draws
the rest (a table, a grid) itself."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import gradio as gr

from sd_img2img.errors import UserInputError
from sd_img2img.formats.metadata import save_png
from sd_img2img.series.series import Series, SeriesRun, estimate_runs, estimate_series, run_series
from sd_img2img.ui.html import esc, image_tag
from sd_img2img.ui.page import Page, session_id, shown_to_user
from sd_img2img.ui.sources import settle_source

THUMB_SIDE = 160  # a run's picture in a series' strip


def png_name(series: Series, run: SeriesRun) -> str:
    """``grid-row1-col2-seed7.png``, ``loop2-of-3-seed8.png``, ``column1-seed7.png``, ``diverge-b-seed7.png``: which
    run it is."""
    at = {
        "grid": lambda a: f"grid-row{a[0] + 1}-col{a[1] + 1}",
        "loopback": lambda a: f"loop{a[0] + 1}-of-{len(series.runs)}",
        "diverge": lambda a: f"diverge-{'ab'[a[0]]}",
        "batch": lambda a: f"batch{a[0] + 1}-of-{len(series.runs)}",
    }
    where = at.get(series.kind, lambda a: f"{series.noun}{a[0] + 1}")(run.at)
    return f"{where}-seed{run.result.seed}.png"


class SeriesEvents:
    """The page's side of running a series."""

    def __init__(self, page: Page):
        self.page = page

    def queue(self, plan: Callable[[dict], Series], values: dict, request) -> tuple:
        """At a series' click, before it queues: the source tab in use gives the initial image and the mask (the
        Sketch tab's drawing, the Inpaint tab's picture and strokes: ``ui.sources``), a Stop pressed earlier is
        forgotten, and the series takes its place in the wait line, planned when the models' families are known
        without loading them (its mistakes are said when it runs). Returns the initial image, the mask and whether the
        transparency is the mask (as the run endpoints take them)."""
        page, session = self.page, session_id(request)
        page.check_free(session)
        page.stops.clear_pending(session)
        folder = page.files.new() if values.get("source") == "inpaint" else None  # the painted mask's PNG
        with shown_to_user():
            source = settle_source(values, folder)
        given = {**values, "init_image": source.image, "mask": source.mask, "mask_from_alpha": source.mask_from_alpha}
        series = None
        if all(page.backend.describe(name).family is not None for name in page.backend.names):
            try:
                series = plan(given)
            except (gr.Error, UserInputError, ValueError, OSError):
                series = None
        if series is not None:
            self.check_time(series)
            self.join(series, session)
        else:
            page.queue.join(session, None, what=f"a {values.get('kind', 'series')}")
        return source.image, source.mask, source.mask_from_alpha

    def join(self, series: Series, session: str | None) -> None:
        """Take ``series``' place in the wait line (with its runs' estimates, once this server has measured its
        models)."""
        seconds = estimate_runs(self.page.backend, series)
        self.page.queue.join(session, seconds, what=series.what(), runs=len(series.runs), noun=series.noun)

    def check_time(self, series: Series) -> None:
        """Refuse ``series`` when it would take longer than this server allows one request, saying its numbers."""
        seconds = estimate_series(self.page.backend, series)
        reduce = f"run fewer {series.noun}s, or fewer steps or smaller pictures in each"
        self.page.check_time(seconds, f"this {series.name} of {series.plural(len(series.runs))}", reduce)

    def stream(
        self, series: Series, request, draw: Callable[[Series, list[str], Path | None], tuple], save: bool = True
    ) -> Iterator[tuple]:
        """Run ``series`` for the visitor of ``request``, yielding ``draw(series, files, folder)`` before the first run,
        after each, and once more when it has ended (``folder`` given then: where its files are); ``save``: write each
        finished run's PNG (its settings and which run it is embedded) into ``files``."""
        page, session = self.page, session_id(request)
        if not page.queue.has(session):  # an API call, which no click queued
            page.check_free(session)
            self.check_time(series)
            self.join(series, session)
        page.start(session)
        flag = page.stops.begin(session)
        folder, saved = page.files.new(), {}
        turns_before = page.turns.turns_of(session), page.turns.granted

        def files() -> list[str]:  # the PNGs in the series' order (runs may end out of order when several go at once)
            return [saved[id(run)] for run in series.runs if id(run) in saved]

        def turn():
            return page.turns.turn(session, flag.is_set)

        try:
            yield draw(series, [], None)
            with shown_to_user():
                at_once = self.at_once(series)
                for run in run_series(series, page.backend, should_stop=flag.is_set, turn=turn, at_once=at_once):
                    if save and run.done:
                        settings = {**run.result.settings(), **run.records}
                        saved[id(run)] = str(save_png(run.output, folder / png_name(series, run), settings))
                    page.queue.progress(session, len(series.finished) + len(series.failures))
                    series.others_between = others_between(page, session, turns_before)
                    yield draw(series, files(), None)
        finally:
            page.stops.end(session, flag)
            page.queue.leave(session)
            page.turns.forget(session)
        yield draw(series, files(), folder)

    def at_once(self, series: Series) -> int:
        """Runs of ``series`` that go at once: what the backend takes for one model (Ray's workers), else one."""
        backend = self.page.backend
        models = len({run.model for run in series.runs})
        return max(1, backend.capacity * models // max(1, len(backend.names)))


def others_between(page: Page, session: str | None, before: tuple[int, int]) -> int:
    """Turns others took since the series started (its own taken away): the runs that went in between."""
    own, everyone = before
    return (page.turns.granted - everyone) - (page.turns.turns_of(session) - own)


def progress_html(series: Series, running: bool, tail: str = "") -> str:
    """The series' summary line: ``Running cell 3 of 6…`` while it runs, ``Done: 6 cells · 58 steps taken`` (or
    ``Stopped after 2 of 6 cells …``) once ended, with the others' runs that went in between; ``tail`` is more text
    (escaped here)."""
    return f'<div class="series-status">{esc(series.progress(running))}{esc(tail)}</div>'


def strip_html(series: Series, running: bool, start=None, plans=None) -> str:
    """The series' runs side by side: each one's picture and steps taken once run (``waiting…`` before, ``not run``
    after a stop); ``start``: a first card (loopback's initial image); ``plans``: a caption per run before it runs."""
    cards = []
    if start is not None:
        cards.append(
            f'<figure class="loop start">{image_tag(start, "the initial image", "", THUMB_SIDE)}'
            "<figcaption>start</figcaption></figure>"
        )
    for i, run in enumerate(series.runs):
        head = plans[i] if plans else run.label
        if run.failed:
            picture, taken = f'<div class="loop-pending failed">failed: {esc(run.error)}</div>', "failed"
        elif run.done:
            picture = image_tag(run.output, f"{run.label}'s output", "", THUMB_SIDE)
            taken = f"<b>{run.result.steps_taken}</b> taken" + (" (stopped)" if run.result.stopped else "")
        else:
            waiting = '<span class="spinner"></span>waiting…' if running else "not run (stopped)"
            picture, taken = f'<div class="loop-pending">{waiting}</div>', f"{run.steps_to_run} to run"
        cards.append(f'<figure class="loop">{picture}<figcaption>{esc(head)}<br>{taken}</figcaption></figure>')
    return f'<div class="loop-strip">{"".join(cards)}</div>'
