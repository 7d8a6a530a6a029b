"""A finished run on the Generate tab: its PNG (settings embedded), every step in the gallery, the strip, the steps as
an animation, the summary; and the same redrawn in the other view (decoded on first use)."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from sd_img2img.engine.result import GenerationResult
from sd_img2img.formats.animation import step_animation
from sd_img2img.formats.metadata import save_png
from sd_img2img.plan.prepare import PreparedRequest
from sd_img2img.ui.html import caption, status_html, summary_html
from sd_img2img.ui.page import shown_to_user
from sd_img2img.ui.state import save_step_image


def reference_item(prepared: PreparedRequest, folder: Path) -> list[tuple[str, str]]:
    """The gallery's first picture for an edit model: the image it was given, as a reference (step 0 beside it is
    pure noise); nothing for any other run."""
    if not prepared.plan.reference or prepared.image is None:
        return []
    return [(save_step_image(prepared.image, folder / "reference.webp"), "your image · the reference")]


def animate(result: GenerationResult, folder: Path, view: str, reference=None):
    """The run's steps as an animated WebP in ``folder`` (an edit model's ``reference`` image first, as in the
    gallery); None for a run without frames."""
    path = folder / f"sd-img2img-{result.seed}-steps-{view}.webp"
    return step_animation(result, path, view, reference=reference) if result.frames else None


def finished(
    result: GenerationResult, folder: Path, steps: list, view: str, before: list = (), reference=None
) -> tuple:
    """The page after a run: the PNG (settings embedded), every step (after ``before``: an edit model's reference
    image, ``reference``), the info, the strip, the summary, the steps as an animation."""
    png = save_png(result.output, folder / f"sd-img2img-{result.seed}.png", result.settings())
    mask = save_mask(result, folder)
    strip = save_step_image(result.strip(view), folder / "steps.webp")
    animation = animate(result, folder, view, reference)
    path = str(animation.path) if animation is not None else None
    last = {
        "result": result,
        "folder": folder,
        "seed": result.seed,
        "before": list(before),
        "animation": path,
        "reference": reference,
    }
    info = {**result.info(), "animation": animation.info() if animation is not None else None}
    if mask is not None:
        info["mask_file"] = mask.name
    return str(png), steps, info, strip, summary_html(result, animation), str(png), last, path


def save_mask(result: GenerationResult, folder: Path) -> Path | None:
    """An inpainting run's mask, saved beside its PNG (the PNG records its hash); None for any other run."""
    if result.mask_image is None:
        return None
    return save_png(result.mask_image, folder / f"sd-img2img-{result.seed}-mask.png", result.settings())


def switch_view(last, view):
    """Redraw the gallery, strip and animation of the last run in the other view (decoded on first use)."""
    if not last:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip()
    result, folder = last["result"], last["folder"]
    folder.mkdir(parents=True, exist_ok=True)  # swept away meanwhile if the run is old
    with shown_to_user():
        reference = result.plan is not None and result.plan.reference
        gallery = last.get("before", []) + [
            (
                save_step_image(f.image(view), folder / f"{view}{f.index:03d}.webp"),
                caption(f, reference, result.mask is not None),
            )
            for f in result.frames
        ]
        strip = save_step_image(result.strip(view), folder / f"steps-{view}.webp")
        animation = animate(result, folder, view, last.get("reference"))
    path = str(animation.path) if animation is not None else None
    return gallery, strip, path, path


def stream_steps(stream, prepared: PreparedRequest, view: str, folder, steps: list):
    """Yield the page as each step of ``stream`` arrives (into ``steps``); return the result."""
    # Plain values while streaming, not gr.skip(): gradio keeps every component a prop update creates for a
    # session (tens of KB per run, for as long as the session lives); clearing the last result is cheap.
    yield None, [], None, None, status_html("running", "Starting…", 0.0), None, gr.skip(), None
    try:
        with shown_to_user():
            for item in stream:
                if isinstance(item, GenerationResult):
                    return item
                path = save_step_image(item.image(view), folder / f"step{item.index:03d}.webp")
                steps.append((path, caption(item, prepared.plan.reference, prepared.mask is not None)))
                text = "the initial image SD sees" if item.index == 0 else f"step {item.index} of {item.total}"
                if item.index == 0 and prepared.mask is not None:
                    text = "step 0: the masked region noised, the rest as kept"
                if item.index == 0 and prepared.plan.reference:
                    text = "step 0: pure noise (your image is the reference)"
                running = status_html("running", text, item.index / max(1, item.total))
                yield None, list(steps), None, None, running, None, gr.skip(), None
    except gr.Error as e:  # the status line says it too (the steps computed stay), not only the message
        failed = status_html("failed", f"<b>Failed</b> · {e.message}")  # user_error escaped the message
        yield None, list(steps), None, None, failed, None, gr.skip(), None
        raise
    return None
