"""The Generate tab's runs: the plan line, the click (its place in the wait line), /img2img and /txt2img streaming
every step into the gallery, the files a run leaves, the view switch, Stop.

A click prepares its request once (``queue_run``, before the run queues: the checks, the image opened and fitted, the
steps planned) and hands the ``PreparedRequest`` to the run through the session's state; an API call that comes
without one prepares it when it runs. The plan line prepares the same request, from the same fitted image.
"""

from __future__ import annotations

import gradio as gr

from sd_img2img import config
from sd_img2img.engine.result import GenerationResult
from sd_img2img.errors import UserInputError
from sd_img2img.formats.animation import step_animation
from sd_img2img.formats.metadata import save_png
from sd_img2img.plan.prepare import PreparedRequest
from sd_img2img.plan.request import GenerationRequest
from sd_img2img.plan.timing import format_wait
from sd_img2img.ui.form import form_request, form_values
from sd_img2img.ui.html import caption, esc, plan_line, status_html, summary_html
from sd_img2img.ui.page import Page, session_id, shown_to_user, user_error
from sd_img2img.ui.state import save_step_image


def reference_item(prepared: PreparedRequest, folder) -> list[tuple[str, str]]:
    """The gallery's first picture for an edit model: the image it was given, as a reference (step 0 beside it is
    pure noise); nothing for any other run."""
    if not prepared.plan.reference or prepared.image is None:
        return []
    return [(save_step_image(prepared.image, folder / "reference.webp"), "your image · the reference")]


def animate(result: GenerationResult, folder, view: str, reference=None):
    """The run's steps as an animated WebP in ``folder`` (an edit model's ``reference`` image first, as in the
    gallery); None for a run without frames."""
    path = folder / f"sd-img2img-{result.seed}-steps-{view}.webp"
    return step_animation(result, path, view, reference=reference) if result.frames else None


class Runs:
    """What the Generate tab's run events do."""

    def __init__(self, page: Page):
        self.page = page

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

    def plan(self, image, source, strength, steps, real_steps, model, width, height, guidance_scale, sampler, preview):
        """The plan line: what will run, by the model's rule, and how long it takes here once the model has run."""
        has_image = bool(image) or source == "sketch"
        values = form_values(locals())
        prepared = seconds = None
        if image or not has_image:  # the request as the run will take it: its plan says where the image enters
            try:
                prepared = self.prepare(self.request(values), model)
                if prepared is not None and self.page.status(model).state == "ready":
                    seconds = self.estimate(prepared, model)
            except (gr.Error, UserInputError, ValueError, OSError):
                prepared = seconds = None
        plan = prepared.plan if prepared is not None else None
        return plan_line(has_image, strength, steps, real_steps, self.page.family(model), seconds, plan)

    def queue_run(
        self,
        source,
        sketch,
        image,
        prompt,
        negative_prompt,
        strength,
        steps,
        real_steps,
        seed,
        sampler,
        guidance_scale,
        width,
        height,
        resize_mode,
        preview,
        view,
        model,
        loras,
        request: gr.Request = None,
    ):
        """At the Generate click, before the run queues: the drawing becomes the initial image when the Sketch tab is
        in use, a Stop pressed earlier is forgotten, the request is prepared (bad input is said now), and the run
        takes its place in the wait line (the status says how many runs are ahead and how long they will take).
        Returns the initial image, the status line and the prepared request (for the run)."""
        image = self.use_sketch(source, sketch, image, request)
        values = form_values({**locals(), "image": image})
        with shown_to_user():
            prepared = self.prepare(self.request(values), model)
        ahead, seconds = self.page.queue.join(session_id(request), self.estimate(prepared, model))
        if ahead == 0:
            return image, status_html("running", "Starting…", 0.0), prepared
        return image, status_html("queued", f"Queued · {esc(format_wait(seconds, ahead))}", 0.0), prepared

    def img2img(
        self,
        image: str | None,
        prompt: str,
        negative_prompt: str = "",
        strength: float | None = None,
        steps: int | None = None,
        real_steps: bool = False,
        seed: int | None = None,
        sampler: str | None = None,
        guidance_scale: float | None = None,
        width: int | None = None,
        height: int | None = None,
        resize_mode: str = config.DEFAULT_RESIZE_MODE,
        preview: str = config.DEFAULT_PREVIEW,
        view: str = "latents",
        model: str | None = None,
        loras: str = "",
        prepared: PreparedRequest | None = None,
        request: gr.Request = None,
    ):
        """Stable Diffusion img2img (prompt2img when no image is given); streams every step.

        ``model`` is one of the served models (None: the first); strength, steps, sampler and guidance left empty
        take its family's defaults. ``loras`` switches the LoRAs the server lists: ``"name:scale, …"`` (0 is off;
        empty: each at its start-up scale). Returns the output PNG (settings embedded), the step gallery (step 0
        first), the run info, the steps strip, a status line, the download, the session's last run and the steps as
        an animation (WebP)."""
        yield from self.run(self.request(form_values(locals())), session_id(request), model, prepared)

    def txt2img(
        self,
        prompt: str,
        negative_prompt: str = "",
        steps: int | None = None,
        seed: int | None = None,
        sampler: str | None = None,
        guidance_scale: float | None = None,
        width: int | None = None,
        height: int | None = None,
        preview: str = config.DEFAULT_PREVIEW,
        view: str = "latents",
        model: str | None = None,
        loras: str = "",
        request: gr.Request = None,
    ):
        """Stable Diffusion prompt2img from pure noise; streams every step."""
        yield from self.run(self.request(form_values(locals())), session_id(request), model)

    def ready(self, request: GenerationRequest, model: str | None, prepared: PreparedRequest | None):
        """The prepared request of the click when it is this request's, else ``request`` prepared now (bad input is
        answered before waiting for the model: by its family's rules where they can be told without loading it)."""
        if prepared is not None and prepared.asked == request:
            return prepared
        with shown_to_user():
            return self.page.backend.prepare(request, self.page.model_name(model))

    def run(self, request: GenerationRequest, session: str | None, model: str | None, prepared=None):
        """Shared by /img2img and /txt2img: yield page updates as each step arrives, then the result."""
        page, name = self.page, self.page.model_name(model)
        page.queue.start(session)
        flag = page.stops.begin(session)
        try:
            prepared = self.ready(request, model, prepared)
            with shown_to_user():
                stream = page.backend.stream(prepared, name, should_stop=flag.is_set)
        except BaseException:
            page.stops.end(session, flag)
            page.queue.leave(session)
            raise
        folder = page.files.new()
        steps, result = reference_item(prepared, folder), None
        shown = len(steps)  # an edit model's reference image stands before step 0
        try:
            # Plain values while streaming, not gr.skip(): gradio keeps every component a prop update creates for a
            # session (tens of KB per run, for as long as the session lives); clearing the last result is cheap.
            yield None, [], None, None, status_html("running", "Starting…", 0.0), None, gr.skip(), None
            with shown_to_user():
                for item in stream:
                    if isinstance(item, GenerationResult):
                        result = item
                        break
                    path = save_step_image(item.image(request.view), folder / f"step{item.index:03d}.webp")
                    steps.append((path, caption(item, prepared.plan.reference)))
                    text = "the initial image SD sees" if item.index == 0 else f"step {item.index} of {item.total}"
                    if item.index == 0 and prepared.plan.reference:
                        text = "step 0: pure noise (your image is the reference)"
                    running = status_html("running", text, item.index / max(1, item.total))
                    yield None, list(steps), None, None, running, None, gr.skip(), None
        finally:
            stream.close()
            page.stops.end(session, flag)
            page.queue.leave(session)
        if result is None:
            raise user_error("the run ended without a result; try again")
        yield self.finished(result, folder, steps, request.view, steps[:shown], prepared.image if shown else None)

    @staticmethod
    def finished(result: GenerationResult, folder, steps: list, view: str, before: list = (), reference=None) -> tuple:
        """The page after a run: the PNG (settings embedded), every step (after ``before``: an edit model's reference
        image, ``reference``), the info, the strip, the summary, the steps as an animation."""
        png = save_png(result.output, folder / f"sd-img2img-{result.seed}.png", result.settings())
        strip = save_step_image(result.strip(view), folder / "steps.webp")
        animation = animate(result, folder, view, reference)
        path = str(animation.path) if animation is not None else None
        last = {"result": result, "folder": folder, "seed": result.seed, "before": list(before), "animation": path,
                "reference": reference}  # fmt: skip
        info = {**result.info(), "animation": animation.info() if animation is not None else None}
        return str(png), steps, info, strip, summary_html(result, animation), str(png), last, path

    def switch_view(self, last, view):
        """Redraw the gallery, strip and animation of the last run in the other view (decoded on first use)."""
        if not last:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        result, folder = last["result"], last["folder"]
        folder.mkdir(parents=True, exist_ok=True)  # swept away meanwhile if the run is old
        with shown_to_user():
            reference = result.plan is not None and result.plan.reference
            gallery = last.get("before", []) + [
                (save_step_image(f.image(view), folder / f"{view}{f.index:03d}.webp"), caption(f, reference))
                for f in result.frames
            ]
            strip = save_step_image(result.strip(view), folder / f"steps-{view}.webp")
            animation = animate(result, folder, view, last.get("reference"))
        path = str(animation.path) if animation is not None else None
        return gallery, strip, path, path

    def stop(self, request: gr.Request = None):
        self.page.stops.stop(session_id(request))

    def use_sketch(self, source, sketch, image, request: gr.Request = None):
        """At the click, before the run queues: a Stop pressed earlier is forgotten (so it cannot end this run),
        and when the Sketch tab is the one in use, its drawing becomes the initial image."""
        self.page.stops.clear_pending(session_id(request))
        if source == "sketch" and sketch and sketch.get("composite"):
            return sketch["composite"]
        return image
