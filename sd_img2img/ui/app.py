"""The sd-img2img web demo: Stable Diffusion img2img with every denoising step on show.

    python app.py --model random            # offline: a tiny random-weight checkpoint (pictures are noise)
    python app.py --model stable-diffusion-v1-5/stable-diffusion-v1-5 --host 0.0.0.0

Layout and wiring only: the model work is ``sd_img2img``'s (engine, compare), the run-time state ``server``'s.
``Handlers`` holds what each event does (testable without a browser); ``generate_tab`` and ``explain_tab`` lay the
page out; ``wire`` connects the two. ``import app`` loads no model; ``build_demo(engine)`` makes the page and
``launch(demo, settings)`` serves it.

Every text a visitor, a PNG or a model can influence is escaped (``esc``) before it reaches HTML.
"""

from __future__ import annotations

import dataclasses
import html
import sys
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
from PIL import Image as PILImage

from sd_img2img import config
from sd_img2img.errors import GenerationError, ModelLoadError, UserInputError, check_choice
from sd_img2img.formats.metadata import REQUEST_FIELDS
from sd_img2img.formats.png_settings import read_png_settings
from sd_img2img.models.devices import resolve_device
from sd_img2img.models.families import default_family
from sd_img2img.models.loras import format_scales, parse_scales
from sd_img2img.run.cpu_memory import keep_freed_memory
from sd_img2img.run.images import open_image
from sd_img2img.run.samplers import ALL_SAMPLER_NAMES, SAMPLER_NAMES
from sd_img2img.run.schedule import plan_steps
from sd_img2img.run.timing import format_duration, format_wait
from sd_img2img.settings import AppSettings, models_from, parse_settings, quiet_libraries
from sd_img2img.ui.examples import EXAMPLES
from sd_img2img.ui.explain import Column, compare_html, compare_info, default_values, parse_values, run_compare
from sd_img2img.ui.state import (
    ModelStatus,
    RunFiles,
    RunQueue,
    StopFlags,
    forget_paths,
    gpu,
    model_label,
    save_step_image,
    seed_value,
    size_value,
)

HERE = Path(__file__).resolve().parent
EXAMPLES_DIR = HERE.parents[1] / "examples"
CSS_PATH = HERE / "app.css"
MODEL_QUEUE = "model"  # the one concurrency group of every event that uses the model
VIEW_CHOICES = [("Noisy latents", "latents"), ("Predicted image", "x0")]
ERRORS = (UserInputError, ModelLoadError, GenerationError)

INTRO = """
<div class="hero">
  <h1>img2img, step by step</h1>
  <p>Stable Diffusion turns your picture into noise, then denoises it towards your prompt.
  <b>Strength</b> says how far back into the noise it goes — and so how many of the steps actually run.
  Every step appears below as it is computed.</p>
</div>
"""

EXPLAIN = """
**Why does strength change the number of steps?** img2img does not start from pure noise: it noises your
image part of the way and runs only the rest of the schedule. With 10 steps at strength 0.7 it skips the
first 3 and runs 7. The table runs the *same image, prompt and seed* from the Generate tab once per value,
so the only thing that changes is the one you pick.
"""


# -- HTML pieces ---------------------------------------------------------------------------------------------


def esc(text) -> str:
    """Text for HTML: every ``<``, ``>``, ``&`` and quote escaped."""
    return html.escape(str(text), quote=True)


def plan_line(has_image: bool, strength, steps, real_steps, family=None, seconds: float | None = None) -> str:
    """The live "what will happen" line, from the same ``plan_steps`` the engine runs, by the model family's rule;
    with ``seconds`` (this server's estimate, once it has measured a run) how long it will take."""
    tail = f" · {esc(format_duration(seconds))} here" if seconds is not None else ""
    try:
        steps_i = int(steps)
        if not has_image:
            plan = plan_steps(steps_i, None, family=family)
            if plan.rule != "lcm":
                return (
                    f'<div class="plan t2i">No initial image → <b>prompt2img</b>: {steps_i} steps from pure noise '
                    f"(strength does not apply){tail}.</div>"
                )
            return f'<div class="plan t2i">No initial image → <b>prompt2img</b>: {esc(plan.describe())}{tail}.</div>'
        text = esc(plan_steps(steps_i, float(strength), bool(real_steps), family).describe())
        return f'<div class="plan">{text}{tail}</div>'
    except (UserInputError, TypeError, ValueError) as e:
        return f'<div class="plan bad">{esc(e)}</div>'


def caption(frame) -> str:
    """A step's caption in the gallery: its number and timestep (step 0 is where the run starts)."""
    return "step 0 · start" if frame.index == 0 else f"step {frame.index} · t={frame.timestep}"


def status_html(kind: str, text_html: str, fraction: float | None = None) -> str:
    """The status line; ``text_html`` is trusted markup (escape what goes into it)."""
    bar = ""
    if fraction is not None:
        bar = f'<div class="bar"><span style="width:{max(0.0, min(1.0, fraction)) * 100:.1f}%"></span></div>'
    return f'<div class="run-status {esc(kind)}">{bar}<div class="text">{text_html}</div></div>'


def summary_html(result) -> str:
    """The status line after a run: what ran, how long, and its warnings (which may quote the prompt)."""
    stopped = "Stopped" if result.stopped else "Done"
    asked = f"{result.steps} steps asked" + (" (real steps)" if result.real_steps else "")
    mode = "prompt2img" if result.mode == "txt2img" else f"strength {result.strength:g}"
    text = (
        f"<b>{stopped}</b> in {result.seconds['total']:.1f} s · seed <code>{result.seed}</code> · {esc(asked)} · "
        f"<b>{result.steps_taken} taken</b> · {esc(mode)} · {esc(result.sampler)} · {result.width}×{result.height}"
    )
    warnings = "".join(f'<div class="warn">⚠ {esc(w)}</div>' for w in result.warnings)
    return status_html("stopped" if result.stopped else "done", text + warnings, None)


def png_note(found: dict) -> str:
    """What "Settings from a PNG" did: who wrote the settings, what it filled, what did not carry over."""
    filled = [k for k in REQUEST_FIELDS if k in found]
    text = f"Filled in from the {found['tool']} PNG: {', '.join(filled) or 'nothing'}."
    if found.get("model"):
        text += f" Made with {found['model']}."
    notes = "".join(f"<li>{esc(n)}</li>" for n in found["notes"])
    return f'<div class="png-note">{esc(text)}' + (f"<ul>{notes}</ul>" if notes else "") + "</div>"


# what each form field can hold: the page's controls refuse anything else, so a PNG's value outside this is not used
FORM_CHOICES = {"sampler": SAMPLER_NAMES, "resize_mode": config.RESIZE_MODES}
FORM_RANGES = {
    "strength": (0.01, 1.0),
    "steps": (1, config.MAX_STEPS),
    "seed": (-1, config.MAX_SEED - 1),
    "guidance_scale": (0, config.MAX_GUIDANCE),
    "width": (config.MIN_DIMENSION, config.MAX_DIMENSION),
    "height": (config.MIN_DIMENSION, config.MAX_DIMENSION),
}


def fit_form(
    values: dict, samplers: tuple[str, ...] = SAMPLER_NAMES, loras: tuple[str, ...] = ()
) -> tuple[dict, list[str]]:
    """The values the form's controls can take (``samplers`` and ``loras``: the chosen model's), and a note for each
    one they cannot."""
    fitted, skipped = {}, []
    choices = {**FORM_CHOICES, "sampler": ("", *samplers)}
    for name, value in values.items():
        if name == "loras":
            asked = value if isinstance(value, dict) else {}
            skipped += [
                f"Not used: LoRA {n!r} (this server lists {', '.join(loras) or 'none'})"
                for n in asked
                if n not in loras
            ]
            fitted[name] = format_scales(
                {
                    n: v
                    for n, v in asked.items()
                    if n in loras and isinstance(v, (int, float)) and not isinstance(v, bool)
                }
            )
            continue
        low_high = FORM_RANGES.get(name)
        if name in choices and value not in choices[name]:
            skipped.append(f"Not used: {name} {value!r} (not one of {', '.join(choices[name])})")
        elif low_high and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or not low_high[0] <= value <= low_high[1]
        ):
            skipped.append(f"Not used: {name} {value!r} (outside {low_high[0]:g} to {low_high[1]:g})")
        else:
            fitted[name] = value
    return fitted, skipped


# -- what the events do --------------------------------------------------------------------------------------


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


class Handlers:
    """What each event does, apart from the layout: holds the served models, the stop flags and the run files.

    Args:
        models: the ``ModelSet`` served (visitors choose among its names only).
        settings: the demo's settings (default preview, size cap).
        status: the models' load state, for the badge.
        files: where each run's files go (the page sets this to a folder in gradio's own cache).
    """

    def __init__(self, models, settings: AppSettings, status: ModelStatus, files: RunFiles | None = None):
        self.models = models
        self.settings = settings
        self.status = status
        self.stops = StopFlags()
        self.files = files or RunFiles()
        self.queue = RunQueue()
        self.on_cpu = resolve_device(settings.device) == "cpu"

    # -- models ------------------------------------------------------------------------------------------------

    def model_name(self, model: str | None) -> str:
        """A listed model's name (None or empty: the first one); any other name is refused, listing the names."""
        with shown_to_user():
            return check_choice("model", model or self.models.first, self.models.names)

    def family(self, model: str | None):
        """The model's family, told without loading weights where possible (else None)."""
        try:
            return self.models.family(self.model_name(model))
        except (gr.Error, OSError, ValueError):
            return None

    def engine(self, model: str | None):
        """The model's engine, loaded (the first run on a model loads it, freeing another when both do not fit)."""
        with shown_to_user():
            return self.models.engine(self.model_name(model))

    def page_defaults(self, family) -> tuple[int, float, float]:
        """Steps, strength and guidance the page starts the model at: its family's, except that on a CPU a model that
        is not few-step starts at ``config.CPU_PAGE_STEPS`` so that a first run takes about a minute."""
        steps = family.steps
        if self.on_cpu and family.steps > config.FEW_STEPS:
            steps = min(steps, config.CPU_PAGE_STEPS)
        return steps, family.strength, family.guidance

    def estimate(self, request, model: str | None) -> float | None:
        """Seconds ``request`` will take on this server (None until the model has run here, or if it cannot tell)."""
        engine = self.models.existing(self.model_name(model))
        if engine is None or not engine.is_loaded:
            return None
        try:
            return engine.estimate_seconds(engine.prepare(request))
        except (UserInputError, ValueError, OSError):
            return None

    def plan(self, image, source, strength, steps, real_steps, model, width, height, guidance_scale, sampler, preview):
        """The plan line: what will run, by the model's rule, and how long it takes here once that is known."""
        has_image = bool(image) or source == "sketch"
        seconds = None
        if image or not has_image:
            try:
                seconds = self.estimate(
                    self.request(
                        image,
                        "",
                        "",
                        strength,
                        steps,
                        real_steps,
                        None,
                        sampler,
                        guidance_scale,
                        width,
                        height,
                        None,
                        preview,
                        "latents",
                    ),
                    model,
                )
            except gr.Error:
                seconds = None
        return plan_line(has_image, strength, steps, real_steps, self.family(model), seconds)

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
        in use, a Stop pressed earlier is forgotten, and the run takes its place in the wait line (the status says
        how many runs are ahead and how long they will take)."""
        image = self.use_sketch(source, sketch, image, request)
        session = session_id(request)
        try:
            estimate = self.estimate(
                self.request(
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
                    loras,
                ),
                model,
            )
        except gr.Error:
            estimate = None
        ahead, seconds = self.queue.join(session, estimate)
        if ahead == 0:
            return image, status_html("running", "Starting…", 0.0)
        return image, status_html("queued", f"Queued · {esc(format_wait(seconds, ahead))}", 0.0)

    def lora_specs(self, model: str | None) -> tuple:
        """The LoRAs the starter listed for the model (``loras.LoraSpec``: name, start-up scale, …)."""
        name = self.model_name(model)
        engine = self.models.existing(name)
        return tuple(engine.lora_specs) if engine is not None else tuple(self.models.loras.get(name, ()))

    @property
    def lora_slots(self) -> int:
        """Sliders the page needs: the most LoRAs any served model has."""
        return max((len(self.lora_specs(name)) for name in self.models.names), default=0)

    def lora_updates(self, model: str | None) -> list:
        """One update per LoRA slider for the model's LoRAs (named, at their start-up scale), the rest hidden;
        then the ``loras`` text they make."""
        specs = self.lora_specs(model)
        sliders = [
            gr.update(visible=True, label=spec.name, value=spec.scale)
            if i < len(specs)
            else gr.update(visible=False, value=0)
            for i, spec in enumerate(specs + (None,) * self.lora_slots)
        ]
        return sliders[: self.lora_slots] + [format_scales({spec.name: spec.scale for spec in specs})]

    def compose_loras(self, model: str | None, *scales) -> str:
        """The sliders' values as the ``loras`` text (``name:scale, …``; 0 is off)."""
        return format_scales({spec.name: scale for spec, scale in zip(self.lora_specs(model), scales)})

    def show_loras(self, model: str | None, text: str):
        """The ``loras`` text (filled from a PNG, say) shown on the sliders; names not listed are left out."""
        try:
            asked = parse_scales(text) or {}
        except UserInputError:
            asked = None
        specs = self.lora_specs(model)
        updates = [
            gr.update(value=asked.get(specs[i].name, 0.0)) if asked is not None and i < len(specs) else gr.skip()
            for i in range(self.lora_slots)
        ]
        return updates[0] if len(updates) == 1 else updates  # gradio takes one output's value as it is

    def choose_model(self, model: str):
        """A visitor picked another model: the form takes its family's samplers and defaults, its LoRAs; the badge
        its state."""
        family = self.family(model)
        loras = self.lora_updates(model)
        if family is None:
            return [gr.skip()] * 4 + [self.status.html(model)] + loras
        return [
            gr.update(choices=sampler_choices(family), value=""),
            *self.page_defaults(family),
            self.status.html(model),
        ] + loras

    def model_badge(self, model: str | None = None):
        return self.status.html(model or None), gr.Timer(active=not self.status.done)

    # -- runs --------------------------------------------------------------------------------------------------

    def request(
        self,
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
        loras=None,
    ):
        """The form's values as a ``GenerationRequest`` (empty fields: the model family's defaults)."""
        from sd_img2img.engine import GenerationRequest

        with shown_to_user():
            loras = parse_scales(loras)
        return GenerationRequest(
            loras=loras,
            prompt=prompt or "",
            init_image=image or None,
            negative_prompt=negative_prompt or "",
            strength=float(strength) if strength is not None else None,
            steps=int(steps) if isinstance(steps, float) and steps.is_integer() else steps,
            real_steps=bool(real_steps),
            seed=seed_value(seed),
            sampler=sampler or None,
            guidance_scale=guidance_scale,
            width=size_value(width),
            height=size_value(height),
            resize_mode=resize_mode or config.DEFAULT_RESIZE_MODE,
            preview=preview or self.settings.preview,
            view=view or "latents",
            max_side=self.max_side,
        )

    @property
    def max_side(self) -> int:
        """The longest side of a size taken from the init image: the server's, at most ``config.CPU_PAGE_MAX_SIDE``
        on a CPU unless the starter set ``--max-side`` (so that a first run takes about a minute)."""
        if self.on_cpu and self.settings.max_side == config.MAX_SIDE:
            return config.CPU_PAGE_MAX_SIDE
        return self.settings.max_side

    def _ready(self, request, model: str | None):
        """Bad input is answered before waiting for the model (by its family's rules where they can be told without
        loading it); then the model's engine, loaded."""
        from sd_img2img.engine import prepare_request

        family = self.family(model)
        with shown_to_user():
            if family is not None:
                prepare_request(request, family)
        return self.engine(model)

    def run(self, request, session: str | None, model: str | None = None):
        """Shared by /img2img and /txt2img: yield page updates as each step arrives, then the result."""
        from sd_img2img.engine import GenerationResult
        from sd_img2img.formats.metadata import save_png

        self.queue.start(session)
        try:
            engine = self._ready(request, model)
        except BaseException:
            self.queue.leave(session)
            raise
        folder = self.files.new()
        flag = self.stops.begin(session)
        stream = engine.stream(request, should_stop=flag.is_set)
        steps, result = [], None
        try:
            # Plain values while streaming, not gr.skip(): gradio keeps every component a prop update creates for a
            # session (tens of KB per run, for as long as the session lives); clearing the last result is cheap.
            yield None, [], None, None, status_html("running", "Starting…", 0.0), None, gr.skip()
            with shown_to_user():
                for item in stream:
                    if isinstance(item, GenerationResult):
                        result = item
                        break
                    path = save_step_image(item.image(request.view), folder / f"step{item.index:03d}.webp")
                    steps.append((path, caption(item)))
                    text = "the initial image SD sees" if item.index == 0 else f"step {item.index} of {item.total}"
                    yield (
                        None,
                        list(steps),
                        None,
                        None,
                        status_html("running", text, item.index / max(1, item.total)),
                        None,
                        gr.skip(),
                    )
        finally:
            stream.close()
            self.stops.end(session, flag)
            self.queue.leave(session)
        if result is None:
            raise user_error("the run ended without a result; try again")
        png = save_png(result.output, folder / f"sd-img2img-{result.seed}.png", result.settings())
        strip = save_step_image(result.strip(request.view), folder / "steps.webp")
        yield (
            str(png),
            steps,
            result.info(),
            strip,
            summary_html(result),
            str(png),
            {"result": result, "folder": folder, "seed": result.seed},
        )

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
        request: gr.Request = None,
    ):
        """Stable Diffusion img2img (prompt2img when no image is given); streams every step.

        ``model`` is one of the served models (None: the first); strength, steps, sampler and guidance left empty
        take its family's defaults. ``loras`` switches the LoRAs the server lists: ``"name:scale, …"`` (0 is off;
        empty: each at its start-up scale). Returns the output PNG (settings embedded), the step gallery (step 0 first), the
        run info, the steps strip, a status line, the download and the session's last run."""
        req = self.request(
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
            loras,
        )
        yield from self.run(req, session_id(request), model)

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
        req = self.request(
            None,
            prompt,
            negative_prompt,
            None,
            steps,
            False,
            seed,
            sampler,
            guidance_scale,
            width,
            height,
            None,
            preview,
            view,
            loras,
        )
        yield from self.run(req, session_id(request), model)

    def compare(
        self,
        image: str | None,
        prompt: str,
        negative_prompt: str = "",
        compare_by: str = "strength",
        values: str = default_values("strength"),
        steps: int = config.COMPARE_STEPS,
        strength: float = config.COMPARE_STRENGTH,
        real_steps: bool = False,
        seed: int | None = None,
        sampler: str | None = None,
        guidance_scale: float | None = None,
        width: int | None = None,
        height: int | None = None,
        resize_mode: str = config.DEFAULT_RESIZE_MODE,
        preview: str = config.DEFAULT_PREVIEW,
        model: str | None = None,
        loras: str = "",
        request: gr.Request = None,
    ):
        """The explain table: the same image, prompt and seed at several strengths or step counts (on ``model``),
        or across the served models (``compare_by="model"``, ``values`` their names).

        Returns the table (HTML) and one info object per column."""
        with shown_to_user():
            vals = parse_values(values, compare_by, self.models.names)
        base = self.request(
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
            "latents",
            loras,
        )
        if compare_by == "model":  # each model runs with its own family's sampler, guidance and LoRAs
            base = dataclasses.replace(base, sampler=None, guidance_scale=None, loras=None)
        self._ready(base, vals[0] if compare_by == "model" else model)
        session = session_id(request)
        flag = self.stops.begin(session)
        yield compare_html([Column(v) for v in vals], compare_by), []
        try:
            with shown_to_user():
                for columns in run_compare(
                    self.models if compare_by == "model" else self.engine(model),
                    base,
                    compare_by,
                    vals,
                    should_stop=flag.is_set,
                ):
                    yield compare_html(columns, compare_by), compare_info(columns, compare_by)
        finally:
            self.stops.end(session, flag)

    def switch_view(self, last, view):
        """Redraw the gallery and strip of the last run in the other view (decoded on first use)."""
        if not last:
            return gr.skip(), gr.skip()
        result, folder = last["result"], last["folder"]
        folder.mkdir(parents=True, exist_ok=True)  # swept away meanwhile if the run is old
        with shown_to_user():
            gallery = [
                (save_step_image(f.image(view), folder / f"{view}{f.index:03d}.webp"), caption(f))
                for f in result.frames
            ]
            strip = save_step_image(result.strip(view), folder / f"steps-{view}.webp")
        return gallery, strip

    def stop(self, request: gr.Request = None):
        self.stops.stop(session_id(request))

    def use_sketch(self, source, sketch, image, request: gr.Request = None):
        """At the click, before the run queues: a Stop pressed earlier is forgotten (so it cannot end this run),
        and when the Sketch tab is the one in use, its drawing becomes the initial image."""
        self.stops.clear_pending(session_id(request))
        if source == "sketch" and sketch and sketch.get("composite"):
            return sketch["composite"]
        return image

    # -- settings from a PNG -----------------------------------------------------------------------------------

    def read_settings(self, png: str | None, model: str | None = None) -> dict:
        """A PNG's generation settings, written by this project, AUTOMATIC1111, InvokeAI or ComfyUI, as the form's
        values.

        Returns {field: value} for each form field it fills (``prompt``, ``sampler``, ``steps``, …), plus ``tool``
        (who wrote the settings), ``model`` (what they were made with, for information) and ``notes`` (what did not
        carry over, and why)."""
        if not png:
            raise user_error("give a PNG to read the settings of")
        with shown_to_user():
            found = read_png_settings(png)
        family = self.family(model)
        listed = tuple(spec.name for spec in self.lora_specs(model))
        values, skipped = fit_form(found.request_kwargs(), family.samplers if family else ALL_SAMPLER_NAMES, listed)
        return {**values, "tool": found.tool, "model": found.model, "notes": found.notes + skipped}

    def load_png(self, path, model: str | None = None):
        """ "Settings from a PNG": one value per form field (``metadata.REQUEST_FIELDS``, skipped where the PNG has
        none), then a note saying what was filled and what was not."""
        if not path:
            return [gr.skip()] * (len(REQUEST_FIELDS) + 1)
        found = self.read_settings(path, model)
        return [found[name] if name in found else gr.skip() for name in REQUEST_FIELDS] + [png_note(found)]


def readable_uploads(component: gr.Image) -> gr.Image:
    """A file gradio cannot even open gets the engine's clear message instead of a bare exception."""
    preprocess = component.preprocess

    def checked(payload):
        try:
            return preprocess(payload)
        except (
            OSError,
            ValueError,
            SyntaxError,
            PILImage.DecompressionBombError,
        ):  # UnidentifiedImageError is an OSError
            name = f"'{getattr(payload, 'orig_name', None) or 'the uploaded file'}'"
            try:  # the engine's own check says precisely what is wrong (too many pixels, damaged, not an image)
                open_image(payload.path, name)
            except UserInputError as e:
                raise user_error(e) from None
            raise user_error(
                f"{name} is not an image this program can read; use PNG, JPEG, WebP, BMP, GIF or TIFF"
            ) from None

    component.preprocess = checked
    return component


# -- layout --------------------------------------------------------------------------------------------------


def source_panel() -> SimpleNamespace:
    """The initial image: uploaded (or pasted, or from the webcam), or drawn on the Sketch tab."""
    with gr.Tabs(elem_classes="source-tabs"):
        with gr.Tab("Image", id="image") as image_tab:
            init_image = readable_uploads(
                gr.Image(
                    label="Initial image",
                    type="filepath",
                    sources=["upload", "clipboard", "webcam"],
                    image_mode=None,  # the path as uploaded: sd_img2img opens it (size checked first)
                    height=300,
                    elem_id="init-image",
                    placeholder="Drop an image, paste one, or use the webcam — or leave empty for prompt2img",
                )
            )
        with gr.Tab("Sketch", id="sketch") as sketch_tab:
            sketch = gr.ImageEditor(
                label="Draw your initial image",
                type="filepath",
                format="png",
                sources=(),
                canvas_size=(512, 512),
                height=360,
                elem_id="sketch",
                layers=False,
                brush=gr.Brush(
                    colors=["#1f1f1f", "#a0412d", "#e8782a", "#f6d04d", "#3f7f3a", "#3a6bb0", "#f6f2e8"],
                    default_size=12,
                    color_mode="defaults",
                ),
            )
            gr.Markdown(
                "Draw a rough scene (a fireplace: a brick frame, a dark opening, orange flames). While this "
                "tab is open, Generate uses the drawing.",
                elem_classes="hint",
            )
    return SimpleNamespace(image_tab=image_tab, init_image=init_image, sketch_tab=sketch_tab, sketch=sketch)


def sampler_choices(family) -> list[tuple[str, str]]:
    """The samplers that fit the model's family, after "the model's default" (empty: what an API call that names no
    sampler gets, whichever model it picks)."""
    return [(f"model default ({family.sampler})", "")] + [(name, name) for name in family.samplers]


def model_choices(h: Handlers) -> list[tuple[str, str]]:
    """The model picker's entries: each served model's short name and family."""
    infos = [h.models.info(name) for name in h.models.names]
    return [(model_label(i.name) + (f" · {i.family_label}" if i.family_label else ""), i.name) for i in infos]


def settings_panel(h: Handlers) -> SimpleNamespace:
    """The model (when several are served), prompt, strength and steps with the live plan line, the buttons, the
    seed and the rarer settings. The first model's family gives the starting values and the samplers offered."""
    ui = SimpleNamespace()
    family = h.family(None) or default_family()
    start_steps, start_strength, _ = h.page_defaults(family)
    ui.model = gr.Dropdown(
        model_choices(h),
        value=h.models.first,
        label="Model",
        elem_id="model",
        visible=len(h.models.names) > 1,
        info="each family counts img2img steps its own way",
    )
    ui.prompt = gr.Textbox(
        "", label="Prompt", lines=2, placeholder="a cozy fireplace with a roaring fire, oil painting", elem_id="prompt"
    )
    ui.negative_prompt = gr.Textbox(
        "", label="Negative prompt", lines=1, placeholder="blurry, low quality", elem_id="negative-prompt"
    )
    ui.strength = gr.Slider(
        0.01,
        1.0,
        value=start_strength,
        step=0.01,
        label="Strength",
        info="How far into the noise your image goes: low keeps it, high reimagines it",
        elem_id="strength",
    )
    with gr.Row(elem_classes="steps-row"):
        ui.steps = gr.Slider(1, config.MAX_STEPS, value=start_steps, step=1, label="Steps", elem_id="steps", scale=3)
        ui.real_steps = gr.Checkbox(
            label="Real steps", value=False, elem_id="real-steps", scale=1, info="run exactly this many"
        )
    ui.plan = gr.HTML(plan_line(False, start_strength, start_steps, False, family), elem_id="plan-line")
    if h.on_cpu:
        gr.HTML(
            f'<div class="cpu-note">This server runs on a CPU, so the page starts models that are not few-step at '
            f"{config.CPU_PAGE_STEPS} steps and pictures at most {config.CPU_PAGE_MAX_SIDE} px wide, for a first "
            "run of about a minute; few-step models (Turbo, LCM, schnell) keep their own settings. More steps or a "
            "larger size take longer: after a first run the line above says how long.</div>",
            elem_id="cpu-note",
        )
    with gr.Row(elem_classes="actions"):
        ui.run_btn = gr.Button("Generate", variant="primary", size="lg", elem_id="run", scale=3)
        ui.stop_btn = gr.Button("Stop", variant="secondary", size="lg", elem_id="stop", scale=1)
    with gr.Row(elem_classes="seed-row"):
        ui.seed = gr.Number(
            label="Seed",
            value=-1,
            precision=0,
            info="-1 = a new random seed each run",
            elem_id="seed",
            scale=4,
            minimum=-1,
            maximum=config.MAX_SEED - 1,
        )
        ui.dice = gr.Button("🎲 Random", elem_id="seed-random", scale=0, min_width=96, size="md")
        ui.reuse = gr.Button("↺ Last seed", elem_id="seed-reuse", scale=0, min_width=110, size="md")
    more_settings(h, family, ui)
    return ui


def more_settings(h: Handlers, family, ui: SimpleNamespace) -> None:
    """The rarer settings, folded away: sampler, guidance, size, previews; the listed LoRAs; settings from a PNG."""
    start_guidance = h.page_defaults(family)[2]
    with gr.Accordion("More settings", open=False, elem_classes="more"):
        ui.sampler = gr.Dropdown(sampler_choices(family), value="", label="Sampler", elem_id="sampler")
        ui.guidance_scale = gr.Slider(
            0,
            config.MAX_GUIDANCE,
            value=start_guidance,
            step=0.5,
            label="Guidance scale",
            info="How closely to follow the prompt (1 = off)",
        )
        with gr.Row():
            ui.width = gr.Number(label="Width", value=None, precision=0, step=8, placeholder="auto", min_width=100)
            ui.height = gr.Number(label="Height", value=None, precision=0, step=8, placeholder="auto", min_width=100)
        ui.resize_mode = gr.Radio(
            list(config.RESIZE_MODES),
            value=config.DEFAULT_RESIZE_MODE,
            label="Resize mode",
            info="resize stretches, crop cuts, fill pads",
        )
        ui.preview = gr.Radio(
            list(config.PREVIEWS),
            value=h.settings.preview,
            label="Step previews",
            info="approx: instant, 1/8 size · taesd: small decoder · full: exact, slow",
        )
    specs = h.lora_specs(None)
    with gr.Accordion("LoRAs", open=False, elem_classes="more", visible=h.lora_slots > 0):
        ui.lora_sliders = [
            gr.Slider(
                -2,
                2,
                value=specs[i].scale if i < len(specs) else 0,
                step=0.05,
                label=specs[i].name if i < len(specs) else "LoRA",
                visible=i < len(specs),
                elem_id=f"lora-{i}",
                info="0 = off",
            )
            for i in range(h.lora_slots)
        ]
        ui.loras = gr.Textbox(
            format_scales({spec.name: spec.scale for spec in specs}), visible=False, label="loras", elem_id="loras"
        )
    with gr.Accordion("Settings from a PNG", open=False, elem_classes="more"):
        ui.png = gr.File(
            label="Drop a PNG made by this app, AUTOMATIC1111, InvokeAI or ComfyUI",
            file_types=[".png"],
            type="filepath",
            height=90,
            elem_id="png-settings",
        )
        ui.png_note = gr.HTML()


def output_panel() -> SimpleNamespace:
    """The status line, the result, every step as it comes, the strip, the download and the run info."""
    ui = SimpleNamespace()
    ui.run_status = gr.HTML(
        label="Status",
        elem_id="run-status",
        value=status_html("idle", "Ready when you are: pick an example below or upload an image."),
    )
    ui.output = gr.Image(
        label="Result",
        type="filepath",
        format="png",
        interactive=False,
        height=360,
        elem_id="output",
        buttons=["download", "fullscreen"],
    )
    with gr.Row(elem_classes="steps-head"):
        gr.HTML('<div class="section-title">Every step <span>step 0 is what SD starts from</span></div>')
        ui.view = gr.Radio(
            VIEW_CHOICES, value="latents", show_label=False, container=False, elem_id="view", min_width=220
        )
    ui.gallery = gr.Gallery(
        label="Steps",
        show_label=False,
        columns=5,
        height="auto",
        object_fit="contain",
        format="webp",
        elem_id="steps-gallery",
        preview=False,
        allow_preview=True,
        buttons=["fullscreen"],
    )
    ui.strip = gr.Image(
        label="Steps strip",
        type="filepath",
        interactive=False,
        height=96,
        elem_id="strip",
        buttons=["download"],
        elem_classes="strip-image",
    )
    with gr.Row():
        ui.download = gr.DownloadButton("Download PNG (with settings)", elem_id="download", size="md")
    with gr.Accordion("Run info", open=False, elem_classes="more"):
        ui.info = gr.JSON(label="Run info", elem_id="run-info")
    return ui


def generate_tab(h: Handlers) -> SimpleNamespace:
    """The Generate tab: inputs on the left, every step on the right, the examples below."""
    with gr.Row(equal_height=False, elem_classes="workspace"):
        with gr.Column(scale=5, min_width=300, elem_classes="panel inputs"):
            source = source_panel()
            form = settings_panel(h)
        with gr.Column(scale=7, min_width=300, elem_classes="panel outputs"):
            out = output_panel()
    gr.Examples(
        examples=[[str(EXAMPLES_DIR / name), prompt_text] for name, _, prompt_text in EXAMPLES],
        inputs=[source.init_image, form.prompt],
        example_labels=[short for _, short, _ in EXAMPLES],
        label="Examples (drawn by the project itself)",
        cache_examples=False,
        elem_id="examples",
    )
    return SimpleNamespace(**vars(source), **vars(form), **vars(out))


def explain_tab(h: Handlers) -> SimpleNamespace:
    """The Explain tab: the guide's table, built live (across the served models too, when there are several)."""
    ui = SimpleNamespace()
    gr.Markdown(EXPLAIN, elem_classes="explain-intro")
    choices = [("Compare strengths", "strength"), ("Compare step counts", "steps")]
    if len(h.models.names) > 1:
        choices.append(("Compare models", "model"))
    with gr.Row(elem_classes="explain-controls"):
        ui.compare_by = gr.Radio(choices, value="strength", label="Compare", elem_id="compare-by", scale=2)
        ui.values = gr.Textbox(
            default_values("strength"), label="Values (one column each)", elem_id="compare-values", scale=2
        )
        ui.steps = gr.Slider(
            1,
            config.MAX_STEPS,
            value=config.COMPARE_STEPS,
            step=1,
            label="Steps of every column",
            elem_id="compare-steps",
            scale=2,
        )
        ui.strength = gr.Slider(
            0.01,
            1.0,
            value=config.COMPARE_STRENGTH,
            step=0.01,
            label="Strength of every column",
            visible=False,
            elem_id="compare-strength",
            scale=2,
        )
    with gr.Row(elem_classes="actions"):
        ui.run_btn = gr.Button("Build the table", variant="primary", elem_id="compare-run", scale=3)
        ui.stop_btn = gr.Button("Stop", elem_id="compare-stop", scale=1)
    ui.table = gr.HTML(compare_html([], "strength"), label="Table", elem_id="explain-table")
    with gr.Accordion("Column info", open=False, elem_classes="more"):
        ui.info = gr.JSON(label="Columns")
    return ui


# -- wiring --------------------------------------------------------------------------------------------------

PRIVATE = dict(api_visibility="private", show_progress="hidden")  # page-only events
MODEL_EVENT = dict(concurrency_id=MODEL_QUEUE, concurrency_limit=1)  # every event that uses the model: one queue


# the Generate tab's fields each event takes, in the order of its handler's parameters
RUN_FIELDS = (
    "init_image",
    "prompt",
    "negative_prompt",
    "strength",
    "steps",
    "real_steps",
    "seed",
    "sampler",
    "guidance_scale",
    "width",
    "height",
    "resize_mode",
    "preview",
    "view",
    "model",
    "loras",
)
TXT2IMG_FIELDS = (
    "prompt",
    "negative_prompt",
    "steps",
    "seed",
    "sampler",
    "guidance_scale",
    "width",
    "height",
    "preview",
    "view",
    "model",
    "loras",
)
PLAN_FIELDS = (
    "init_image",
    "source",
    "strength",
    "steps",
    "real_steps",
    "model",
    "width",
    "height",
    "guidance_scale",
    "sampler",
    "preview",
)


def fields(names: tuple[str, ...], *spaces: SimpleNamespace) -> list:
    """The components named, looked up in the given namespaces in turn."""
    return [next(getattr(ns, n) for ns in spaces if hasattr(ns, n)) for n in names]


def wire_form(h: Handlers, g: SimpleNamespace, top: SimpleNamespace) -> None:
    """The form's own events: which source tab is open, the plan line, a model picked, the LoRA sliders."""
    g.image_tab.select(lambda: "image", None, top.source, api_name="source_image", queue=False, **PRIVATE)
    g.sketch_tab.select(lambda: "sketch", None, top.source, api_name="source_sketch", queue=False, **PRIVATE)
    plan_inputs = fields(PLAN_FIELDS, g, top)
    triggers = [c.change for c in plan_inputs if c is not g.init_image and c is not top.source]
    gr.on([g.init_image.change, top.source.change, top.run_done.change, *triggers], h.plan, plan_inputs, g.plan,
          api_name="plan", queue=False, trigger_mode="always_last", **PRIVATE)  # fmt: skip
    model_outputs = [g.sampler, g.steps, g.strength, g.guidance_scale, top.model_badge, *g.lora_sliders, g.loras]
    g.model.change(h.choose_model, g.model, model_outputs, api_name="choose_model", queue=False, **PRIVATE)
    if g.lora_sliders:  # a slider moved by the visitor → the loras text; the text set otherwise (a PNG) → the sliders
        gr.on([slider.input for slider in g.lora_sliders], h.compose_loras, [g.model, *g.lora_sliders], g.loras,
              api_name="compose_loras", queue=False, **PRIVATE)  # fmt: skip
        g.loras.change(h.show_loras, [g.model, g.loras], g.lora_sliders, api_name="show_loras", queue=False, **PRIVATE)


def wire_run(h: Handlers, g: SimpleNamespace, top: SimpleNamespace) -> None:
    """Generate (and /txt2img), Stop, the view switch and the seed buttons."""
    run_inputs = fields(RUN_FIELDS, g)
    run_outputs = [g.output, g.gallery, g.info, g.strip, g.run_status, g.download, top.last_run]
    click = g.run_btn.click(h.queue_run, [top.source, g.sketch, *run_inputs], [g.init_image, g.run_status],
                            queue=False, api_name="queue_run", **PRIVATE)  # fmt: skip
    run = click.success(gpu(h.img2img), run_inputs, run_outputs, api_name="img2img", show_progress="hidden",
                        **MODEL_EVENT)  # fmt: skip
    run.then(lambda n: (n or 0) + 1, top.run_done, top.run_done, api_name="run_done", queue=False, **PRIVATE)
    top.txt2img_btn.click(gpu(h.txt2img), fields(TXT2IMG_FIELDS, g), run_outputs, api_name="txt2img",
                          show_progress="hidden", **MODEL_EVENT)  # fmt: skip
    g.stop_btn.click(h.stop, None, None, api_name="stop", queue=False, show_progress="hidden")
    g.view.change(gpu(h.switch_view), [top.last_run, g.view], [g.gallery, g.strip], api_name="switch_view",
                  **PRIVATE, **MODEL_EVENT)  # fmt: skip
    g.dice.click(lambda: -1, None, g.seed, api_name="random_seed", queue=False, **PRIVATE)
    g.reuse.click(lambda last: last["seed"] if last else gr.skip(), top.last_run, g.seed, api_name="reuse_seed",
                  queue=False, **PRIVATE)  # fmt: skip


def wire_png(h: Handlers, g: SimpleNamespace, top: SimpleNamespace) -> None:
    """Settings from a PNG: the form filled on the page, the same as JSON through /read_settings."""
    g.png.upload(h.load_png, [g.png, g.model], [*fields(REQUEST_FIELDS, g), g.png_note], api_name="png_settings",
                 **PRIVATE)  # fmt: skip
    top.read_btn.click(h.read_settings, top.settings_png, top.settings_out, api_name="read_settings", queue=False,
                       show_progress="hidden")  # fmt: skip


def wire_explain(h: Handlers, e: SimpleNamespace, g: SimpleNamespace, top: SimpleNamespace) -> None:
    """The Explain tab's events: the table runs with the Generate tab's image, prompt, seed and settings."""
    e.compare_by.change(
        lambda by: (
            default_values(by, h.models.names),
            gr.update(visible=by != "steps"),
            gr.update(visible=by != "strength"),
        ),
        e.compare_by,
        [e.values, e.steps, e.strength],
        api_name="compare_by",
        queue=False,
        **PRIVATE,
    )
    e.stop_btn.click(h.stop, None, None, api_name="stop_compare", queue=False, **PRIVATE)
    e.run_btn.click(
        h.use_sketch,
        [top.source, g.sketch, g.init_image],
        g.init_image,
        queue=False,
        api_name="use_sketch_compare",
        **PRIVATE,
    ).success(
        gpu(h.compare),
        [
            g.init_image,
            g.prompt,
            g.negative_prompt,
            e.compare_by,
            e.values,
            e.steps,
            e.strength,
            g.real_steps,
            g.seed,
            g.sampler,
            g.guidance_scale,
            g.width,
            g.height,
            g.resize_mode,
            g.preview,
            g.model,
            g.loras,
        ],
        [e.table, e.info],
        api_name="compare",
        show_progress="hidden",
        **MODEL_EVENT,
    )


def build_demo(models, settings: AppSettings | None = None, status: ModelStatus | None = None) -> gr.Blocks:
    """The page, serving ``models`` (a ``ModelSet``, or one ``Engine``) as they are; ``status`` (the first model loading
    in the background) feeds the model badge."""
    settings = settings or AppSettings()
    status = status or ModelStatus(models)
    models = status.models
    with gr.Blocks(
        title="sd-img2img · every step of img2img",
        fill_width=False,
        delete_cache=(config.CACHE_SWEEP_SECONDS, config.KEEP_RUN_SECONDS),
    ) as demo:
        # the runs' files live in gradio's own cache, so streaming them copies nothing
        files = RunFiles(
            Path(demo.GRADIO_CACHE) / "sd-img2img-runs",
            on_remove=lambda folders: forget_paths(demo.temp_file_sets, folders),
        )
        h = Handlers(models, settings, status, files)
        top = SimpleNamespace(
            last_run=gr.State(None, time_to_live=3600), source=gr.State("image"), run_done=gr.State(0)
        )  # counts finished runs: the plan line's estimate follows them
        with gr.Row(elem_classes="topbar"):
            gr.HTML(INTRO, elem_classes="intro")
            top.model_badge = gr.HTML(status.html(), elem_classes="badge-wrap")
        top.timer = gr.Timer(1.0, active=not status.done)
        with gr.Tabs(elem_classes="main-tabs"):
            with gr.Tab("Generate", id="generate"):
                g = generate_tab(h)
            with gr.Tab("Explain: strength & steps", id="explain"):
                e = explain_tab(h)
        with gr.Row(visible=False):  # API endpoints only: on the page, Generate without an image is /txt2img, and
            top.txt2img_btn = gr.Button("txt2img")  # "Settings from a PNG" reads what /read_settings returns
            top.settings_png = gr.File(label="png", type="filepath", file_types=[".png"])
            top.settings_out = gr.JSON(label="settings")
            top.read_btn = gr.Button("read_settings")
        gr.HTML(
            '<div class="footer-note">Runs are queued one at a time. Settings are embedded in every PNG — drop '
            "one back in to reproduce it. Use the API link below for gradio_client.</div>"
        )

        top.timer.tick(
            h.model_badge, g.model, [top.model_badge, top.timer], api_name="model_status", queue=False, **PRIVATE
        )
        demo.load(h.model_badge, g.model, [top.model_badge, top.timer], api_name="page_load", queue=False, **PRIVATE)
        wire_form(h, g, top)
        wire_run(h, g, top)
        wire_png(h, g, top)
        wire_explain(h, e, g, top)
    demo.handlers = h  # for tests and embedding: the page's logic without a browser
    return demo


def launch(demo: gr.Blocks, settings: AppSettings, **kwargs):
    """Serve ``demo``: one bounded queue, upload size capped, a share link only when asked for."""
    demo.queue(max_size=settings.queue_size, default_concurrency_limit=1)
    return demo.launch(
        server_name=settings.host,
        server_port=settings.port,
        share=settings.share,
        max_file_size=config.MAX_UPLOAD_SIZE,
        theme=theme(),
        css=CSS_PATH.read_text(),
        allowed_paths=[str(EXAMPLES_DIR)],
        footer_links=["api", "gradio"],
        **kwargs,
    )


def theme() -> gr.themes.Base:
    return gr.themes.Soft(
        primary_hue="orange",
        secondary_hue="stone",
        neutral_hue="stone",
        font=["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"],
        font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"],
    )


def main(argv: list[str] | None = None) -> None:
    keep_freed_memory()  # before any thread: CPU steps stop page-faulting their activations in (sd_img2img.cpu_memory)
    settings = parse_settings(argv)
    quiet_libraries()
    models = models_from(settings)
    status = ModelStatus(models).start()  # the page comes up at once; the first model loads behind it
    demo = build_demo(models, settings, status)
    launch(demo, settings)


if __name__ == "__main__":
    main(sys.argv[1:])
