"""The page's wiring: which component feeds which event. An event's inputs are its handler's parameters, looked up
by name among the layout's components (``inputs_of``), so no list of fields is written twice; the endpoints' names
(``api_name``) and parameters are the public API."""

from __future__ import annotations

import inspect
from types import SimpleNamespace

import gradio as gr

from sd_img2img.plan.request import RECORDED_FIELDS
from sd_img2img.ui.endpoints import PARAM_FIELDS
from sd_img2img.ui.grid import default_axis_values
from sd_img2img.ui.handlers import Handlers
from sd_img2img.ui.sources import open_inpaint
from sd_img2img.ui.state import gpu

MODEL_QUEUE = "model"  # the one concurrency group of every event that uses the model
PRIVATE = dict(api_visibility="private", show_progress="hidden")  # page-only events


def model_event(h: Handlers) -> dict:
    """Every event that uses the models: one queue whose events all start (up to the queue's size for each run the
    backend takes at once), each of their runs then waiting for its own turn on the models (``engine.turns``), so a
    series never holds the others for longer than one run."""
    return dict(concurrency_id=MODEL_QUEUE, concurrency_limit=h.page.settings.queue_size * h.page.backend.capacity)


def fields(names, *spaces: SimpleNamespace) -> list:
    """The components named, looked up in the given namespaces in turn (``image`` is the form's ``init_image``)."""
    found = []
    for name in names:
        for candidate in (name, PARAM_FIELDS.get(name, name)):
            component = next((getattr(ns, candidate) for ns in spaces if hasattr(ns, candidate)), None)
            if component is not None:
                found.append(component)
                break
        else:
            raise KeyError(f"no component named {name!r} for the page's wiring")
    return found


def inputs_of(handler, *spaces: SimpleNamespace) -> list:
    """The components an event's handler takes, in the order of its parameters (``request`` is gradio's own)."""
    names = [p for p in inspect.signature(handler).parameters if p != "request"]
    return fields(names, *spaces)


def source_outputs(g: SimpleNamespace) -> list:
    """What a click sets from the source tab in use: the initial image, the mask, whether the transparency is it."""
    return [g.init_image, g.mask, g.mask_from_alpha]


def wire_series_run(
    h: Handlers,
    name: str,
    ui: SimpleNamespace,
    g: SimpleNamespace,
    top: SimpleNamespace,
    *,
    queue,
    run,
    outputs,
    queued=None,
):
    """A series' Stop and its click: the click takes its place in the wait line at once (``queue``: the initial
    image and the mask, ``queued`` its outputs), then ``run`` (/``name``) streams in the model queue, each of its runs
    in its own turn. Returns the run's event."""
    ui.stop_btn.click(h.runs.stop, None, None, api_name=f"stop_{name}", queue=False, **PRIVATE)
    click = ui.run_btn.click(
        queue,
        inputs_of(queue, ui, g, top),
        queued if queued is not None else source_outputs(g),
        queue=False,
        api_name=f"queue_{name}",
        **PRIVATE,
    )
    event = click.success(run, inputs_of(run, ui, g), outputs, api_name=name, show_progress="hidden", **model_event(h))
    after_run(h, g, top, event, name)
    return event


def after_run(h: Handlers, g: SimpleNamespace, top: SimpleNamespace, event, name: str) -> None:
    """Once a run (or a series) ends: the badge says its model is loaded (another may have been freed), and the plan
    line gives the time this server has now measured. Chained to the run itself (a ``gr.State``'s change event is not
    sent to the page)."""
    badge = [top.model_badge, top.timer]
    event.then(h.models.model_badge, g.model, badge, api_name=f"badge_after_{name}", queue=False, **PRIVATE)
    plan = inputs_of(h.runs.plan, g, top)
    event.then(h.runs.plan, plan, g.plan, api_name=f"plan_after_{name}", queue=False, **PRIVATE)


def wire_form(h: Handlers, g: SimpleNamespace, top: SimpleNamespace) -> None:
    """The form's own events: which source tab is open, the plan line, a model picked, the LoRA sliders."""
    plan_inputs = inputs_of(h.runs.plan, g, top)
    plan = dict(fn=h.runs.plan, inputs=plan_inputs, outputs=g.plan, queue=False, **PRIVATE)
    # a tab selected says which source is in use, then the plan line follows (a State's change is not an event here)
    g.image_tab.select(lambda: "image", None, top.source, api_name="source_image", queue=False, **PRIVATE).then(**plan)
    g.sketch_tab.select(lambda: "sketch", None, top.source, api_name="source_sketch", queue=False, **PRIVATE).then(
        **plan
    )
    g.inpaint_tab.select(
        open_inpaint,
        [g.init_image, g.inpaint, top.inpaint_from],
        [top.source, g.inpaint, top.inpaint_from],
        api_name="source_inpaint",
        queue=False,
        **PRIVATE,
    ).then(**plan)
    # an editor's strokes are its input events (its change events come only when it is set)
    triggers = [
        c.input if isinstance(c, gr.ImageEditor) else c.change
        for c in plan_inputs
        if c is not g.init_image and c is not top.source
    ]
    gr.on(
        [g.init_image.change, *triggers],
        h.runs.plan,
        plan_inputs,
        g.plan,
        api_name="plan",
        queue=False,
        trigger_mode="always_last",
        **PRIVATE,
    )
    model_outputs = [g.sampler, g.steps, g.strength, g.guidance_scale, top.model_badge, *g.lora_sliders, g.loras]
    g.model.change(h.models.choose_model, g.model, model_outputs, api_name="choose_model", queue=False, **PRIVATE)
    if g.lora_sliders:  # a slider moved by the visitor → the loras text; the text set otherwise (a PNG) → the sliders
        gr.on(
            [slider.input for slider in g.lora_sliders],
            h.models.compose_loras,
            [g.model, *g.lora_sliders],
            g.loras,
            api_name="compose_loras",
            queue=False,
            **PRIVATE,
        )
        g.loras.change(
            h.models.show_loras, [g.model, g.loras], g.lora_sliders, api_name="show_loras", queue=False, **PRIVATE
        )


def wire_run(h: Handlers, g: SimpleNamespace, top: SimpleNamespace) -> None:
    """Generate (and /txt2img), Stop, the view switch and the seed buttons."""
    run_outputs = [g.output, g.gallery, g.info, g.strip, g.run_status, g.download, top.last_run, g.animation]
    click = g.run_btn.click(
        h.runs.queue_run,
        inputs_of(h.runs.queue_run, g, top),
        [g.init_image, g.run_status, top.prepared, g.mask, g.mask_from_alpha, top.inpaint_from],
        queue=False,
        api_name="queue_run",
        **PRIVATE,
    )
    run = click.success(
        h.runs.img2img,
        inputs_of(h.runs.img2img, g, top),
        run_outputs,
        api_name="img2img",
        show_progress="hidden",
        **model_event(h),
    )
    after_run(h, g, top, run, "run")
    wire_batch(h, g, top, run)
    run.success(
        lambda last: last["animation"] if last else None,
        top.last_run,
        g.animation_preview,
        api_name="show_animation",
        queue=False,
        **PRIVATE,
    )
    top.txt2img_btn.click(
        h.runs.txt2img,
        inputs_of(h.runs.txt2img, g),
        run_outputs,
        api_name="txt2img",
        show_progress="hidden",
        **model_event(h),
    )
    g.stop_btn.click(h.runs.stop, None, None, api_name="stop", queue=False, show_progress="hidden")
    g.view.change(
        gpu(h.runs.switch_view),
        [top.last_run, g.view],
        [g.gallery, g.strip, g.animation, g.animation_preview],
        api_name="switch_view",
        **PRIVATE,
        **model_event(h),
    )
    g.dice.click(lambda: -1, None, g.seed, api_name="random_seed", queue=False, **PRIVATE)
    g.reuse.click(
        lambda last: last["seed"] if last else gr.skip(),
        top.last_run,
        g.seed,
        api_name="reuse_seed",
        queue=False,
        **PRIVATE,
    )


def wire_batch(h: Handlers, g: SimpleNamespace, top: SimpleNamespace, run) -> None:
    """After a run, the batch strip (a batch's images; hidden after one image); a picture picked in it is shown."""
    run.then(
        h.runs.batches.strip, top.last_run, [g.batch, g.batch_files], api_name="batch_strip", queue=False, **PRIVATE
    )
    g.batch.select(
        h.runs.batches.pick,
        [top.last_run, g.view],
        [
            g.output,
            g.gallery,
            g.info,
            g.strip,
            g.run_status,
            g.download,
            top.last_run,
            g.animation,
            g.animation_preview,
        ],
        api_name="pick_batch_image",
        **PRIVATE,
        **model_event(h),
    )


def wire_png(h: Handlers, g: SimpleNamespace, top: SimpleNamespace) -> None:
    """Settings from an image: the form filled on the page, the same as JSON through /read_settings."""
    g.png.upload(
        h.png.load_png, [g.png, g.model], [*fields(RECORDED_FIELDS, g), g.png_note], api_name="png_settings", **PRIVATE
    )
    top.read_btn.click(
        h.png.read_settings,
        top.settings_png,
        top.settings_out,
        api_name="read_settings",
        queue=False,
        show_progress="hidden",
    )


def wire_explain(h: Handlers, e: SimpleNamespace, g: SimpleNamespace, top: SimpleNamespace) -> None:
    """The Explain tab's events: the table runs with the Generate tab's image, prompt, seed and settings."""
    e.compare_by.change(
        h.explain.compare_by,
        e.compare_by,
        [e.values, e.steps, e.strength],
        api_name="compare_by",
        queue=False,
        **PRIVATE,
    )
    wire_series_run(h, "compare", e, g, top, queue=h.explain.queue, run=h.explain.compare, outputs=[e.table, e.info])


def wire_grid(h: Handlers, grid: SimpleNamespace, g: SimpleNamespace, top: SimpleNamespace) -> None:
    """The grid's events: its cost line as the axes or the Generate tab's settings change (and after each run, once
    there are times to tell), the axis choices, /grid with the Generate tab's image, prompt, seed and settings."""
    cost_inputs = inputs_of(h.grid.cost, grid, g, top)
    # the Generate tab's settings reach it through its plan line (which follows all of them; more listeners on the model
    # picker's change make gradio fire that change again and again)
    triggers = [g.plan.change, *(c.change for c in (grid.rows, grid.row_values, grid.columns, grid.column_values))]
    gr.on(
        triggers,
        h.grid.cost,
        cost_inputs,
        grid.cost,
        api_name="grid_cost",
        queue=False,
        trigger_mode="always_last",
        **PRIVATE,
    )
    names = h.page.backend.names
    for axis, values in ((grid.rows, grid.row_values), (grid.columns, grid.column_values)):
        axis.change(lambda by: default_axis_values(by, names), axis, values, queue=False, **PRIVATE)
    outputs = [grid.table, grid.info, grid.files]
    run = wire_series_run(h, "grid", grid, g, top, queue=h.grid.queue, run=h.grid.grid, outputs=outputs)
    run.then(h.grid.cost, cost_inputs, grid.cost, api_name="grid_cost_after", queue=False, **PRIVATE)


def wire_loopback(h: Handlers, lb: SimpleNamespace, g: SimpleNamespace, top: SimpleNamespace) -> None:
    """Loopback's events: the curve line as its settings or the Generate tab's change, /loopback."""
    curve_inputs = inputs_of(h.loopback.curve_line, lb, g, top)
    triggers = [g.plan.change, lb.loops.change, lb.final_strength.change, lb.curve.change]  # (as wire_grid's)
    gr.on(
        triggers,
        h.loopback.curve_line,
        curve_inputs,
        lb.curve_line,
        api_name="loop_curve",
        queue=False,
        trigger_mode="always_last",
        **PRIVATE,
    )
    outputs = [lb.strip, lb.animation, lb.files, lb.info]
    run = wire_series_run(h, "loopback", lb, g, top, queue=h.loopback.queue, run=h.loopback.loopback, outputs=outputs)
    run.then(h.loopback.curve_line, curve_inputs, lb.curve_line, api_name="loop_curve_after", queue=False, **PRIVATE)


def wire_diverge(h: Handlers, d: SimpleNamespace, g: SimpleNamespace, top: SimpleNamespace) -> None:
    """ "Where do they part?": the setting picked and the presets fill in its values, the cost line follows the
    section's and the Generate tab's settings (and each run, once there are times to tell), /diverge."""
    shared = [d.strength, d.steps, d.seed, d.sampler]
    d.vary.input(h.diverge.pick, [d.vary, g.model], [d.value_a, d.value_b, *shared], queue=False, **PRIVATE)
    preset = [d.vary, d.value_a, d.value_b, d.strength, d.steps, d.real_steps, d.seed, d.sampler]
    d.guide.click(h.diverge.preset_guide, None, preset, api_name="diverge_guide", queue=False, **PRIVATE)
    d.strengths.click(h.diverge.preset_strengths, None, preset, api_name="diverge_strengths", queue=False, **PRIVATE)
    cost_inputs = inputs_of(h.diverge.cost, d, g, top)
    own = [d.vary, d.value_a, d.value_b, d.prompt, *shared, d.real_steps, d.width, d.height, d.threshold]
    gr.on(
        [g.plan.change, *(c.change for c in own)],  # the Generate tab's settings reach it through its plan line
        h.diverge.cost,
        cost_inputs,
        d.cost,
        api_name="diverge_cost",
        queue=False,
        trigger_mode="always_last",
        **PRIVATE,
    )
    outputs = [d.view, d.chart, d.info, d.files]
    queued = [g.init_image]
    run = wire_series_run(
        h, "diverge", d, g, top, queue=h.diverge.queue, run=h.diverge.diverge, outputs=outputs, queued=queued
    )
    run.then(h.diverge.cost, cost_inputs, d.cost, api_name="diverge_cost_after", queue=False, **PRIVATE)
