"""What every event of the page shares: the backend the runs go to, the settings, the run-time state; and how the
engine's errors become a message on the page."""

from __future__ import annotations

import html
from contextlib import contextmanager
from dataclasses import dataclass, field

import gradio as gr

from sd_img2img.engine.backend import Backend, ModelStatus
from sd_img2img.engine.turns import TurnQueue
from sd_img2img.errors import GenerationError, ModelLoadError, UserInputError, check_choice
from sd_img2img.models.families import Family
from sd_img2img.plan.timing import format_duration
from sd_img2img.settings import AppSettings
from sd_img2img.ui.form import page_max_side
from sd_img2img.ui.state import RunFiles, RunQueue, StopFlags

ERRORS = (UserInputError, ModelLoadError, GenerationError)


def user_error(message) -> gr.Error:
    """A message on the page. gradio renders ``gr.Error`` text as HTML, and ours may quote a visitor's input (a
    file name, a value, a prompt), so it is escaped: the visitor sees their text, never markup made from it."""
    return gr.Error(html.escape(str(message), quote=False))


@contextmanager
def shown_to_user():
    """The engine's errors (bad input, a model that failed to load, a failed run) as a message on the page."""
    try:
        yield
    except ERRORS as e:
        raise user_error(e) from None


def session_id(request: gr.Request | None) -> str | None:
    """The browser session an event comes from (None when called as a plain function)."""
    return getattr(request, "session_hash", None) if request is not None else None


@dataclass
class Page:
    """The page's shared state.

    Args:
        backend: where the runs go (visitors choose among its model names only).
        settings: the demo's settings (default preview, size cap).
        files: where each run's files go (the page sets this to a folder in gradio's own cache).
        turns: the runs' turns on the models (``engine.turns``), as many at once as the backend takes.
        queue: the wait line a visitor who clicks is shown.
    """

    backend: Backend
    settings: AppSettings
    files: RunFiles = field(default_factory=RunFiles)
    stops: StopFlags = field(default_factory=StopFlags)
    turns: TurnQueue | None = None
    queue: RunQueue | None = None

    def __post_init__(self):
        self.turns = self.turns or TurnQueue(self.backend.capacity)
        self.queue = self.queue or RunQueue(capacity=self.backend.capacity)

    def check_free(self, session: str | None) -> None:
        """A session has one thing in flight: a click while its run or series goes is refused, saying so."""
        busy = self.queue.busy(session)
        if busy is not None:
            raise user_error(
                f"You have {busy.describe()} going already: one at a time for each visitor. Press Stop to end it "
                "(what it has finished is kept), or wait for it, then click again."
            )

    def start(self, session: str | None) -> None:
        """The session's run or series starts (``UserInputError`` when another of its own has started already)."""
        if not self.queue.start(session):
            self.check_free(session)

    def check_time(self, seconds: float | None, what: str, reduce: str) -> None:
        """Refuse a request estimated (once this server has measured runs) over ``--max-request-seconds``, with its
        numbers and what to ``reduce``; before any measurement the step limits alone apply."""
        limit = self.settings.max_request_seconds
        if seconds is not None and limit and seconds > limit:
            raise user_error(
                f"{what} would take {format_duration(seconds)} here, above this server's limit of "
                f"{format_duration(limit).removeprefix('about ')} for one request; {reduce}"
            )

    @property
    def on_cpu(self) -> bool:
        return self.backend.on_cpu

    @property
    def max_side(self) -> int:
        return page_max_side(self.settings.max_side, self.on_cpu)

    def model_name(self, model: str | None) -> str:
        """A served model's name (None or empty: the first one); any other name is refused, listing the names."""
        with shown_to_user():
            return check_choice("model", model or self.backend.names[0], self.backend.names)

    def status(self, model: str | None) -> ModelStatus:
        return self.backend.describe(self.model_name(model))

    def family(self, model: str | None) -> Family | None:
        """The model's family, told without loading weights where possible (else None)."""
        try:
            return self.status(model).family
        except (gr.Error, OSError, ValueError):
            return None
