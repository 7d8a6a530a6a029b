"""The Generate tab's runs: the plan line, the click (its place in the wait line), /img2img and /txt2img streaming
every step into the gallery, the view switch, Stop. Each endpoint's parameters are declared settings
(``ui.endpoints``).

A click prepares its request once (``queue_run``, before the run queues: the checks, the image opened and fitted, the
steps planned) and hands the ``PreparedRequest`` to the run through the session's state; an API call that comes
without one prepares it when it runs. The plan line prepares the same request, from the same fitted image.
"""

from __future__ import annotations

import gradio as gr

from sd_img2img.errors import UserInputError
from sd_img2img.plan.prepare import PreparedRequest
from sd_img2img.plan.request import GenerationRequest
from sd_img2img.plan.timing import format_wait
from sd_img2img.series.batch import OPTIONS as BATCH
from sd_img2img.series.batch import batch_count, plan_batch
from sd_img2img.series.series import estimate_runs
from sd_img2img.ui import run_view
from sd_img2img.ui.batch import BatchRuns
from sd_img2img.ui.endpoints import endpoint, form_names
from sd_img2img.ui.form import form_request
from sd_img2img.ui.html import esc, plan_line, status_html
from sd_img2img.ui.page import Page, session_id, shown_to_user, user_error
from sd_img2img.ui.sources import SOURCE_CHOICES, Source, painted_fingerprint, settle_source
from sd_img2img.ui.state import TURN_POLL_SECONDS

IMG2IMG = (*form_names(), *BATCH)
TXT2IMG = (*form_names(img2img=False), *BATCH)
MASK_SETTINGS = ("invert_mask", "mask_blur", "masked_content", "inpaint_area", "padding")
PLAN = (
    "init_image",
    *SOURCE_CHOICES,
    "strength",
    "steps",
    "real_steps",
    "model",
    "width",
    "height",
    "guidance_scale",
    "sampler",
    "preview",
    "resize_mode",
    *MASK_SETTINGS,
    "batch_count",
)  # what the plan line follows


class Runs:
    """What the Generate tab's run events do."""

    def __init__(self, page: Page):
        self.page = page
        self.batches = BatchRuns(page)

    def request(self, values: dict) -> GenerationRequest:
        """The form's values (by field name) as a request; a ``loras`` text that cannot be read is a message."""
        with shown_to_user():
            return form_request(values, preview=self.page.settings.preview, max_side=self.page.max_side)

    def prepare(self, request: GenerationRequest, model: str | None) -> PreparedRequest | None:
        """``request`` prepared for the model when its family is known without loading it (else None: the run
        prepares it once the model is loaded); bad input raises ``UserInputError``."""
        name = self.page.model_name(model)
        if self.page.backend.describe(name).family is None:
            return None
        return self.page.backend.prepare(request, name)

    def estimate(self, prepared: PreparedRequest | None, model: str | None) -> float | None:
        """Seconds ``prepared`` will take on this server (None until the model has run here, or if it cannot tell)."""
        return self.page.backend.estimate(prepared, self.page.model_name(model)) if prepared is not None else None

    @endpoint(PLAN, BATCH)
    def plan(self, values: dict, request=None):
        """The plan line: what will run, by the model's rule (with a mask: how much of the picture is redrawn), and
        how long it takes here once the model has run."""
        try:
            source = settle_source(values)
        except (gr.Error, UserInputError, OSError):  # a painted layer still being written: the next event will do
            source = Source(values.get("init_image"))
        image, model = source.image, values["model"]
        has_image = bool(image) or values["source"] == "sketch"
        prepared = seconds = None
        if image or not has_image:  # the request as the run will take it: its plan says where the image enters
            try:
                prepared = self.prepare(self.request(with_source(values, source)), model)
                if prepared is not None and self.page.status(model).state == "ready":
                    seconds = self.estimate(prepared, model)
                    count = batch_count(values)
                    seconds = seconds * count if seconds is not None else None
            except (gr.Error, UserInputError, ValueError, OSError):
                prepared = seconds = None
        plan = prepared.plan if prepared is not None else None
        family = self.page.family(model)
        note = self.batches.plan_note(values)
        return plan_line(
            has_image, values["strength"], values["steps"], values["real_steps"], family, seconds, plan, note
        )

    @endpoint((*SOURCE_CHOICES, *IMG2IMG), BATCH)
    def queue_run(self, values: dict, request: gr.Request = None):
        """At the Generate click, before the run queues: the drawing becomes the initial image when the Sketch tab is
        in use (the Inpaint tab: its picture, and the strokes painted on it the mask), a Stop pressed earlier is
        forgotten, the request is prepared (bad input is said now), and the run (or the batch) takes its place in the
        wait line (the status says what is ahead and how long it will take).
        Returns the initial image, the status line, the prepared request (for the run), the mask, whether the
        transparency is the mask and the fingerprint of the picture the Inpaint tab paints on."""
        session = session_id(request)
        self.page.check_free(session)
        source = self.use_source(values, request)
        with shown_to_user():
            prepared = self.prepare(self.request(with_source(values, source)), values["model"])
            count = batch_count(values)
        if count > 1 and prepared is not None:
            series = plan_batch(prepared, self.page.model_name(values["model"]), count)
            seconds = estimate_runs(self.page.backend, series)
            self.page.check_time(seconds and sum(seconds), series.what(), "make fewer images, or fewer steps")
            ahead, seconds = self.page.queue.join(session, seconds, what=series.what(), runs=count, noun="image")
        else:
            seconds = self.estimate(prepared, values["model"])
            self.page.check_time(seconds, "this run", "lower the steps, the strength or the size")
            ahead, seconds = self.page.queue.join(session, seconds)
        status = status_html("running", "Starting…", 0.0)
        if ahead:
            status = status_html("queued", f"Queued · {esc(wait_line(seconds, ahead))}", 0.0)
        image, mask, alpha = source_outputs(source)
        return image, status, prepared, mask, alpha, painted_fingerprint(source)

    @endpoint((*IMG2IMG, "prepared"), BATCH)
    def img2img(self, values: dict, request: gr.Request = None):
        """Stable Diffusion img2img: turn the given picture towards the prompt, showing every denoising step.

        The image is noised part of the way (strength) and only the rest of the schedule runs: 10 steps at strength
        0.7 run 7 steps (SD's rule, int(steps × strength); run info's steps_taken says what ran). Without an image
        it is prompt2img; with a mask (white = redraw) it inpaints, the rest of the picture kept. Strength, steps,
        sampler and guidance left empty take the model's defaults; batch_count above 1 makes that many images, seeds
        seed, seed + 1, … One run takes seconds on a GPU, about a minute on a free CPU. Returns the output PNG
        (settings embedded), the step gallery (step 0 first), the run info (JSON: steps_taken, seed, seconds …; a
        batch's: each image under batch), the steps strip, a status line, the PNG again as a download and the steps
        as an animation (WebP); for a batch, the first image's."""
        yield from self.run_or_batch(values, request, values["prepared"])

    @endpoint(TXT2IMG, BATCH)
    def txt2img(self, values: dict, request: gr.Request = None):
        """Stable Diffusion prompt2img (text to image) from pure noise, showing every denoising step: all of the
        steps run. Empty settings take the model's defaults. Returns what img2img returns."""
        yield from self.run_or_batch(values, request)

    def run_or_batch(self, values: dict, request: gr.Request | None, prepared=None):
        """One run, or with a batch count above 1 a batch (``ui.batch``)."""
        with shown_to_user():
            count = batch_count(values)
        asked = self.request(values)
        if count == 1:
            yield from self.run(asked, session_id(request), values["model"], prepared)
            return
        first = self.ready(asked, values["model"], prepared)
        yield from self.batches.run(first, self.page.model_name(values["model"]), count, request)

    def ready(self, request: GenerationRequest, model: str | None, prepared: PreparedRequest | None):
        """The prepared request of the click when it is this request's, else ``request`` prepared now (bad input is
        answered before waiting for the model: by its family's rules where they can be told without loading it)."""
        if prepared is not None and prepared.asked == request:
            return prepared
        with shown_to_user():
            return self.page.backend.prepare(request, self.page.model_name(model))

    def run(self, request: GenerationRequest, session: str | None, model: str | None, prepared=None):
        """Shared by /img2img and /txt2img: wait for the run's turn (the wait line updated each second), then yield
        page updates as each step arrives, then the result."""
        page, name = self.page, self.page.model_name(model)
        prepared = self.ready(request, model, prepared)
        if not page.queue.has(session):  # an API call, which no click queued
            page.check_free(session)
            seconds = self.estimate(prepared, model)
            page.check_time(seconds, "this run", "lower the steps, the strength or the size")
            page.queue.join(session, seconds)
        page.start(session)
        flag = page.stops.begin(session)
        ticket = page.turns.ticket(session)
        try:
            while not ticket.wait(TURN_POLL_SECONDS):
                if flag.is_set():  # Stop, or the tab closed, before its turn came
                    yield (
                        None,
                        [],
                        None,
                        None,
                        status_html("stopped", "Stopped before its turn came"),
                        None,
                        gr.skip(),
                        None,
                    )
                    return
                ahead, seconds = page.queue.ahead_of(session)
                queued = status_html("queued", f"Queued · {esc(wait_line(seconds, ahead))}", 0.0)
                yield None, [], None, None, queued, None, gr.skip(), None
            result = yield from self.take_turn(request, prepared, name, flag)
        finally:
            ticket.release()
            page.stops.end(session, flag)
            page.queue.leave(session)
        yield result

    def take_turn(self, request: GenerationRequest, prepared: PreparedRequest, name: str, flag):
        """The run, in its turn: its steps streamed into the gallery; returns the page's finished outputs."""
        with shown_to_user():
            stream = self.page.backend.stream(prepared, name, should_stop=flag.is_set)
        folder = self.page.files.new()
        steps = run_view.reference_item(prepared, folder)
        shown = len(steps)  # an edit model's reference image stands before step 0
        try:
            result = yield from run_view.stream_steps(stream, prepared, request.view, folder, steps)
        finally:
            stream.close()
        if result is None and flag.is_set():  # stopped from outside the run (a ZeroGPU call is closed)
            stopped = status_html("stopped", f"<b>Stopped</b> · {len(steps) - shown} steps shown")
            return None, list(steps), None, None, stopped, None, gr.skip(), None
        if result is None:
            raise user_error("the run ended without a result; try again")
        return run_view.finished(result, folder, steps, request.view, steps[:shown], prepared.image if shown else None)

    def switch_view(self, last, view):
        """Redraw the gallery, strip and animation of the last run in the other view (decoded on first use)."""
        return run_view.switch_view(last, view)

    def stop(self, request: gr.Request = None):
        """Stop this session's run (or series) after its current step; what was computed is kept and returned."""
        self.page.stops.stop(session_id(request))

    def leave(self, request: gr.Request = None):
        """The visitor's tab closed: their run (or series) stops, between steps or before its turn comes."""
        self.page.stops.stop(session_id(request))

    def use_source(self, values: dict, request: gr.Request = None) -> Source:
        """At the click, before the run queues: a Stop pressed earlier is forgotten (so it cannot end this run), and
        the source tab in use gives the initial image and the mask (``ui.sources.settle_source``)."""
        self.page.stops.clear_pending(session_id(request))
        folder = self.page.files.new() if values.get("source") == "inpaint" else None  # the painted mask's PNG
        with shown_to_user():
            return settle_source(values, folder)


def wait_line(seconds: float | None, ahead: list[str]) -> str:
    """``about 8 s before yours starts (a grid of 6 cells (3 of 6 left, about 40 s) ahead) · runs take turns: yours
    goes in between`` (the note when a series is ahead)."""
    line = format_wait(seconds, ahead)
    if any(item != "a run" for item in ahead):
        line += " · runs take turns: yours goes in between"
    return line


def with_source(values: dict, source: Source) -> dict:
    """The form's values with the click's initial image and mask."""
    return {**values, "init_image": source.image, "mask": source.mask, "mask_from_alpha": source.mask_from_alpha}


def source_outputs(source: Source) -> tuple:
    """What a click sets on the page: the initial image, the mask, whether the transparency is the mask."""
    return source.image, source.mask, source.mask_from_alpha
