"""The page's pieces of HTML: the plan line, the status line and run summary, step captions, the PNG note and the
model badge. Every text a visitor, a PNG or a model can influence goes through ``esc`` before it reaches HTML."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import gradio as gr
from PIL import Image

from sd_img2img.engine.backend import ModelStatus
from sd_img2img.errors import UserInputError
from sd_img2img.plan.request import RECORDED_FIELDS
from sd_img2img.plan.step_plan import plan_steps
from sd_img2img.plan.timing import format_duration


def esc(text) -> str:
    """Text for HTML: every ``<``, ``>``, ``&`` and quote escaped."""
    return html.escape(str(text), quote=True)


def refused_plan(e: Exception) -> str:
    """The plan line, or a series' cost line, when its request is refused: a ``gr.Error``'s message (escaped where
    it was raised) or any other error's text, escaped here."""
    return f'<div class="plan bad">{e.message if isinstance(e, gr.Error) else esc(e)}</div>'


def plan_line(
    has_image: bool, strength, steps, real_steps, family=None, seconds: float | None = None, plan=None, note: str = ""
) -> str:
    """The live "what will happen" line, from the same ``plan_steps`` the engine runs, by the model family's rule;
    ``plan``: the request's own, prepared as the run will be (it also says the noise level the image enters at and,
    inpainting, how much of the picture is redrawn); with ``seconds`` (this server's estimate, once it has measured a
    run) how long it will take; ``note``: more text (a batch's images)."""
    tail = (f" · {esc(note)}" if note else "") + (
        f" · {esc(format_duration(seconds))} here" if seconds is not None else ""
    )
    try:
        steps_i = int(steps)
        if not has_image:
            plan = plan_steps(steps_i, None, family=family)
            if plan.start_timestep is None:  # every step runs from pure noise (LCM says where it starts)
                return (
                    f'<div class="plan t2i">No initial image → <b>prompt2img</b>: {steps_i} steps from pure noise '
                    f"(strength does not apply){tail}.</div>"
                )
            return f'<div class="plan t2i">No initial image → <b>prompt2img</b>: {esc(plan.describe())}{tail}.</div>'
        plan = plan if plan is not None else plan_steps(steps_i, float(strength), bool(real_steps), family)
        return f'<div class="plan">{esc(plan.describe())}{tail}</div>'
    except (UserInputError, TypeError, ValueError) as e:
        return refused_plan(e)


def image_tag(image: Image.Image, alt: str, cls: str = "", max_side: int | None = None) -> str:
    """An ``<img>`` holding ``image`` (scaled to at most ``max_side``) as a WebP data URI; ``alt`` is escaped."""
    if max_side and max(image.size) > max_side:
        scale = max_side / max(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    image.save(buf, format="WEBP", quality=85)
    uri = "data:image/webp;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img class="{esc(cls)}" src="{uri}" alt="{esc(alt)}" title="{esc(alt)}">'


def caption(frame, reference: bool = False, masked: bool = False) -> str:
    """A step's caption in the gallery: its number and timestep (step 0 is where the run starts: an edit model's is
    pure noise, its image a reference; inpainting, the masked region noised and the rest as kept)."""
    if frame.index == 0:
        if masked:
            return "step 0 · the masked region noised"
        return "step 0 · pure noise" if reference else "step 0 · start"
    return f"step {frame.index} · t={frame.timestep}"


def status_html(kind: str, text_html: str, fraction: float | None = None) -> str:
    """The status line; ``text_html`` is trusted markup (escape what goes into it)."""
    bar = ""
    if fraction is not None:
        bar = f'<div class="bar"><span style="width:{max(0.0, min(1.0, fraction)) * 100:.1f}%"></span></div>'
    return f'<div class="run-status {esc(kind)}">{bar}<div class="text">{text_html}</div></div>'


def summary_html(result, animation=None, head: str = "") -> str:
    """The status line after a run: what ran, how long, its animation (``formats.animation.Animation``) and its warnings
    (which may quote the prompt); ``head``: text before it (a batch's line)."""
    stopped = "Stopped" if result.stopped else "Done"
    asked = f"{result.steps} steps asked" + (" (real steps)" if result.real_steps else "")
    if result.mode == "txt2img":
        mode = "prompt2img"
    elif result.strength is None:  # an edit model: the image was a reference
        mode = "your image as a reference"
    else:
        mode = f"strength {result.strength:g}"
    text = esc(head) + (
        f"<b>{stopped}</b> in {result.seconds['total']:.1f} s · seed <code>{result.seed}</code> · {esc(asked)} · "
        f"<b>{result.steps_taken} taken</b> · {esc(mode)} · {esc(result.sampler)} · {result.width}×{result.height}"
    )
    if animation is not None:
        text += f' <span class="anim-note">· animation {esc(animation.describe())}</span>'
    warnings = "".join(f'<div class="warn">⚠ {esc(w)}</div>' for w in result.warnings)
    return status_html("stopped" if result.stopped else "done", text + warnings, None)


def png_note(found: dict) -> str:
    """What "Settings from an image" did: who wrote the settings and where in the file they were, what it filled,
    what did not carry over."""
    filled = [k for k in RECORDED_FIELDS if k in found]
    where = f" in {found['found_in']}" if found.get("found_in") else ""
    text = f"Filled in from the {found['tool']} settings{where}: {', '.join(filled) or 'nothing'}."
    if found.get("model"):
        text += f" Made with {found['model']}."
    notes = "".join(f"<li>{esc(n)}</li>" for n in found["notes"])
    return f'<div class="png-note">{esc(text)}' + (f"<ul>{notes}</ul>" if notes else "") + "</div>"


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


def model_choice_label(status: ModelStatus) -> str:
    """A model picker's entry: the short name and, once known, the family (``random · SD``)."""
    return model_label(status.name) + (f" · {status.family.label}" if status.family else "")


def describe_status(status: ModelStatus) -> str:
    """The model badge's text: ready (and how long it took), failed (and why), loading, or not loaded yet."""
    label = model_choice_label(status)
    if status.state == "ready":
        secs = status.load_seconds
        return f"Model ready · {label}" + (f" · loaded in {secs:.1f} s" if secs is not None else "")
    if status.state == "failed":
        return f"Model failed to load · {label} · {status.error}"
    if status.state == "idle":
        return f"Model not loaded yet · {label} · loads with the first run"
    if status.download:
        return f"Downloading the model · {label} · {status.download}"
    return f"Loading the model · {label} · {status.loading_seconds or 0:.0f} s"


def model_badge(status: ModelStatus) -> str:
    return (
        f'<div class="model-status {esc(status.state)}" role="status"><span class="dot"></span>'
        f"<span>{esc(describe_status(status))}</span></div>"
    )
