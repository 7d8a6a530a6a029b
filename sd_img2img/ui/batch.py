"""A batch on the Generate tab (batch count above 1): the images made one after another as a series (``series.batch``,
run by ``ui.series.SeriesEvents``: the wait line, Stop, each image's PNG), the first image's steps in the gallery as
soon as it is done, the others' pictures in the status line as they come; after it, the batch strip, where the
visitor picks the image whose steps, strip, animation, PNG and info the page shows."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from sd_img2img.engine.result import GenerationResult
from sd_img2img.plan.prepare import PreparedRequest
from sd_img2img.series.batch import batch_count, batch_info, batch_seeds, plan_batch
from sd_img2img.series.series import Series, SeriesRun
from sd_img2img.ui import run_view
from sd_img2img.ui.html import caption, esc, status_html, summary_html
from sd_img2img.ui.page import Page, shown_to_user
from sd_img2img.ui.series import SeriesEvents, strip_html
from sd_img2img.ui.state import save_step_image


def steps_of(result: GenerationResult, folder: Path, view: str, before: list) -> list[tuple[str, str]]:
    """``result``'s steps as the gallery shows them (after ``before``: an edit model's reference), saved into
    ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    reference = result.plan is not None and result.plan.reference
    return list(before) + [
        (
            save_step_image(f.image(view), folder / f"{view}{f.index:03d}.webp"),
            caption(f, reference, result.mask is not None),
        )
        for f in result.frames
    ]


class BatchRuns:
    """The Generate tab's batches."""

    def __init__(self, page: Page):
        self.page = page
        self.series = SeriesEvents(page)

    @staticmethod
    def plan_note(values: dict) -> str:
        """What the plan line adds for a batch: ``3 images, seeds 7 to 9`` (nothing for one image)."""
        try:
            count = batch_count(values)
        except (gr.Error, ValueError):
            return ""
        if count == 1:
            return ""
        seed = values.get("seed")
        if seed is None or seed == "" or seed == -1:
            return f"{count} images, seeds from a random one up"
        seeds = batch_seeds(int(seed), count)
        return f"{count} images, seeds {seeds[0]} to {seeds[-1]}, each its own run"

    def run(self, first: PreparedRequest, name: str, count: int, request):
        """Run the batch of ``first`` on ``name``, yielding the Generate tab's outputs after each image."""
        series = plan_batch(first, name, count)
        steps_folder = self.page.files.new()
        shown: dict = {}

        def draw(series: Series, files: list[str], folder: Path | None) -> tuple:
            return self.draw(series, files, folder is not None, steps_folder, shown)

        with shown_to_user():
            yield from self.series.stream(series, request, draw)

    def draw(self, series: Series, files: list[str], ended: bool, folder: Path, shown: dict) -> tuple:
        """The Generate tab's outputs for ``series`` so far: the first finished image shown (its steps saved once)."""
        done = series.finished
        progress = esc(series.progress(not ended))
        strip = strip_html(series, not ended)
        if not done:
            status = status_html("stopped" if ended else "running", progress + strip, None if ended else 0.0)
            return None, [], None, None, status, None, gr.skip(), None
        run, view = done[0], done[0].prepared.request.view
        if "steps" not in shown:
            before = run_view.reference_item(run.prepared, folder / "image1")
            shown["before"] = before
            shown["steps"] = steps_of(run.result, folder / "image1", view, before)
            shown["strip"] = save_step_image(run.result.strip(view), folder / "image1" / "steps.webp")
        info = image_info(run.result, batch_info(series, files))
        if not ended:
            status = status_html("running", progress + strip, len(done) / len(series.runs))
            return files[0], shown["steps"], info, shown["strip"], status, files[0], gr.skip(), None
        last = batch_last(series, files, folder, shown["before"])
        return self.chosen(last, 0, view, f"{series.progress(False)} · ")

    @staticmethod
    def chosen(last: dict, index: int, view: str, head: str = "") -> tuple:
        """The page's outputs for image ``index`` of the batch in ``last``: its PNG, steps, info, strip, summary, the
        download, the session's last run (now showing it) and its animation."""
        entry = last["batch"][index]
        result, folder = entry["result"], last["root"] / f"image{index + 1}"
        before = entry["before"]
        steps = steps_of(result, folder, view, before)
        strip = save_step_image(result.strip(view), folder / f"steps-{view}.webp")
        reference = entry["reference"]
        animation = run_view.animate(result, folder, view, reference)
        path = str(animation.path) if animation is not None else None
        now = {**last, "result": result, "folder": folder, "seed": result.seed, "before": before}
        now.update(animation=path, reference=reference, shown=index)
        info = {**image_info(result, last["info"]), "animation": animation.info() if animation is not None else None}
        head += f"image {index + 1} of {len(last['batch'])} · "
        return entry["png"], steps, info, strip, summary_html(result, animation, head), entry["png"], now, path

    def pick(self, last, view, event: gr.SelectData):
        """The batch strip clicked: the page shows that image (its steps, strip, animation, PNG and info)."""
        if not last or not last.get("batch") or event is None:
            return (gr.skip(),) * 9
        with shown_to_user():
            outputs = self.chosen(last, int(event.index), view)
        return (*outputs, outputs[-1])

    @staticmethod
    def strip(last):
        """After a run: the batch strip and each image's PNG (hidden after a single run)."""
        batch = (last or {}).get("batch") or []
        if len(batch) < 2:
            return gr.Gallery(value=None, visible=False), gr.File(value=None, visible=False)
        pictures = [(e["png"], f"seed {e['result'].seed} · {e['result'].steps_taken} taken") for e in batch]
        return gr.Gallery(value=pictures, visible=True), gr.File(value=[e["png"] for e in batch], visible=True)


def batch_last(series: Series, files: list[str], folder: Path, before: list) -> dict:
    """The session's last run after a batch: each finished image (its result, PNG, an edit model's reference) and the
    batch's info."""
    entries = []
    for i, run in enumerate(series.finished):
        entries.append(
            dict(
                result=run.result,
                png=files[i],
                before=before if i == 0 else reference_of(run, folder / f"image{i + 1}"),
                reference=run.prepared.image if run.prepared.plan.reference else None,
            )
        )
    return {"batch": entries, "root": folder, "info": batch_info(series, files)}


def image_info(result: GenerationResult, batch: dict) -> dict:
    """One image's run info, with the batch it is of: each image under ``batch``, the batch's steps and whether it was
    stopped."""
    return {
        **result.info(),
        "batch": batch["batch"],
        "batch_steps_taken": batch["steps_taken"],
        "batch_stopped": batch["stopped"],
    }


def reference_of(run: SeriesRun, folder: Path) -> list:
    """An edit model's reference picture, the gallery's first (nothing for any other run)."""
    folder.mkdir(parents=True, exist_ok=True)
    return run_view.reference_item(run.prepared, folder)
