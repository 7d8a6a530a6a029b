"""The page's layout: one function per panel or tab, each returning its components by name (the form's fields by
``plan.request.FORM_FIELDS`` names, so the wiring finds each endpoint's inputs by its parameters). The controls' ranges
and defaults come from ``config``, the same numbers validation uses."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import gradio as gr
from PIL import Image as PILImage

from sd_img2img import config
from sd_img2img.errors import UserInputError
from sd_img2img.models.families import default_family
from sd_img2img.models.loras import format_scales
from sd_img2img.plan.images import open_image
from sd_img2img.plan.request import RANGES
from sd_img2img.series.batch import OPTIONS as BATCH
from sd_img2img.series.compare import default_values
from sd_img2img.ui.controls import labels, limits
from sd_img2img.ui.diverge import OPTIONS as DIVERGE_OPTIONS
from sd_img2img.ui.diverge import default_values as default_diverge_values
from sd_img2img.ui.diverge import diverge_chart
from sd_img2img.ui.diverge import empty_html as empty_diverge_html
from sd_img2img.ui.exact_numbers import exact_json, seed_box
from sd_img2img.ui.examples import EXAMPLES
from sd_img2img.ui.explain import compare_html
from sd_img2img.ui.form import page_defaults
from sd_img2img.ui.grid import COLUMN_AXES, ROW_AXES, default_axis_values, empty_grid_html
from sd_img2img.ui.handlers import Handlers
from sd_img2img.ui.html import plan_line, status_html
from sd_img2img.ui.model_picker import sampler_choices
from sd_img2img.ui.page import user_error
from sd_img2img.ui.png_import import SETTINGS_FILE_TYPES
from sd_img2img.ui.strength_chart import strength_chart

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"  # package data: in a clone and an installed package
VIEW_CHOICES = [("Noisy latents", "latents"), ("Predicted image", "x0")]

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

DIVERGE = """
**Where do they part?** Two runs of the same image, prompt and seed that differ in one setting, step by step. The
guide this page follows ends on it: *img2img is very sensitive to the step count … something got interpreted
differently enough on the third or fourth step*. Each step of one run is shown next to the other run's step at the
nearest noise level, with the difference between their predicted pictures under them.
"""
DIVERGE_CHOICES = [
    ("Steps", "steps"),
    ("Seed", "seed"),
    ("Strength", "strength"),
    ("Sampler", "sampler"),
    ("Guidance", "guidance_scale"),
    ("LoRA scale", "loras"),
    ("Model", "model"),
]


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
        with gr.Tab("Inpaint", id="inpaint") as inpaint_tab:
            inpaint = inpaint_panel()
    # what the run endpoints take as the mask: the click puts the Inpaint tab's into them (the API gives its own)
    with gr.Row(visible=False):
        mask = gr.Image(label="mask", type="filepath", image_mode=None, elem_id="mask")
        mask_from_alpha = gr.Checkbox(False, label="mask_from_alpha")
    return SimpleNamespace(
        image_tab=image_tab,
        init_image=init_image,
        sketch_tab=sketch_tab,
        sketch=sketch,
        inpaint_tab=inpaint_tab,
        mask=mask,
        mask_from_alpha=mask_from_alpha,
        **vars(inpaint),
    )


def inpaint_panel() -> SimpleNamespace:
    """The Inpaint tab: the initial image under a brush (the strokes are the mask), or an uploaded black-and-white
    mask, or the image's transparency; and how the mask is used."""
    ui = SimpleNamespace()
    ui.inpaint = gr.ImageEditor(
        label="Paint what to redraw",
        type="filepath",
        format="png",
        sources=("upload", "clipboard"),
        height=360,
        elem_id="inpaint-editor",
        layers=gr.LayerOptions(allow_additional_layers=False, layers=["Mask"]),
        transforms=(),
        brush=gr.Brush(colors=[("#ff2e88", 0.6)], default_size=24, color_mode="fixed"),
        eraser=gr.Eraser(default_size=24),
    )
    gr.Markdown(
        "Your image from the Image tab is under the brush: paint what to redraw. While this tab is open, Generate "
        "inpaints, and every step shows the mask's outline.",
        elem_classes="hint",
    )
    mask_settings(ui)
    return ui


def mask_settings(ui: SimpleNamespace) -> None:
    """The Inpaint tab's folded settings: an uploaded mask, the transparency, invert, blur, padding, masked content,
    the inpaint area."""
    with gr.Accordion(
        "Mask settings: upload a mask, blur, masked content, only masked", open=False, elem_classes="more"
    ):
        with gr.Row(elem_classes="mask-row"):
            ui.mask_upload = readable_uploads(
                gr.Image(
                    label="Or upload a mask (white = redraw)",
                    type="filepath",
                    image_mode=None,
                    sources=["upload", "clipboard"],
                    height=200,
                    elem_id="mask-upload",
                    placeholder="A black-and-white picture: white is redrawn",
                )
            )
            with gr.Column(min_width=200):
                ui.use_alpha = gr.Checkbox(
                    False, label="Redraw where the image is transparent", elem_id="use-alpha", info="its alpha channel"
                )
                ui.invert_mask = gr.Checkbox(False, elem_id="invert-mask", **labels("invert_mask"))
        with gr.Row(elem_classes="mask-row"):
            ui.mask_blur = gr.Slider(
                *limits("mask_blur"),
                value=config.DEFAULT_MASK_BLUR,
                step=1,
                precision=0,
                elem_id="mask-blur",
                **labels("mask_blur"),
            )
            ui.padding = gr.Slider(
                *limits("padding"),
                value=config.DEFAULT_PADDING,
                step=1,
                precision=0,
                elem_id="padding",
                **labels("padding"),
            )
        with gr.Row(elem_classes="mask-row"):
            ui.masked_content = gr.Radio(
                list(config.MASKED_CONTENT),
                value=config.MASKED_CONTENT[0],
                elem_id="masked-content",
                **labels("masked_content"),
            )
            ui.inpaint_area = gr.Radio(
                [("Whole picture", "whole"), ("Only masked", "masked")],
                value="whole",
                elem_id="inpaint-area",
                **labels("inpaint_area"),
            )


def settings_panel(h: Handlers) -> SimpleNamespace:
    """The model (when several are served), prompt, strength and steps with the live plan line, the buttons, the
    seed and the rarer settings. The first model's family gives the starting values and the samplers offered."""
    ui = SimpleNamespace()
    family = h.page.family(None) or default_family()
    names = h.page.backend.names
    ui.model = gr.Dropdown(
        h.models.choices(),
        value=names[0],
        label="Model",
        elem_id="model",
        visible=len(names) > 1,
        info="each family counts img2img steps its own way",
    )
    ui.prompt = gr.Textbox(
        "",
        **labels("prompt"),
        lines=2,
        placeholder="a cozy fireplace with a roaring fire, oil painting",
        elem_id="prompt",
    )
    ui.negative_prompt = gr.Textbox(
        "", **labels("negative_prompt"), lines=1, placeholder="blurry, low quality", elem_id="negative-prompt"
    )
    strength_and_steps(h, family, ui)
    with gr.Row(elem_classes="actions"):
        ui.run_btn = gr.Button("Generate", variant="primary", size="lg", elem_id="run", scale=3)
        ui.stop_btn = gr.Button("Stop", variant="secondary", size="lg", elem_id="stop", scale=1)
    with gr.Row(elem_classes="seed-row"):
        ui.seed = seed_box(value=str(config.RANDOM_SEED), max_lines=1, elem_id="seed", scale=4, **labels("seed"))
        ui.dice = gr.Button("🎲 Random", elem_id="seed-random", scale=0, min_width=96, size="md")
        ui.reuse = gr.Button("↺ Last seed", elem_id="seed-reuse", scale=0, min_width=110, size="md")
    ui.batch_count = gr.Slider(
        *limits("batch_count", BATCH),
        value=1,
        step=1,
        precision=0,
        elem_id="batch-count",
        **labels("batch_count", BATCH),
    )
    more_settings(h, family, ui)
    return ui


def strength_and_steps(h: Handlers, family, ui: SimpleNamespace) -> None:
    """Strength (not for an edit model, whose image is a reference), steps and real steps, and the plan line under
    them (on a CPU server, with a note on where the page starts slow models)."""
    start_steps, start_strength, _ = page_defaults(family, h.page.on_cpu)
    low, high = limits("strength", low=config.STRENGTH_STEP)
    ui.strength = gr.Slider(
        low,
        high,
        value=start_strength,
        step=config.STRENGTH_STEP,
        elem_id="strength",
        visible=family.takes_strength,
        **labels("strength"),
    )
    with gr.Row(elem_classes="steps-row"):
        ui.steps = gr.Slider(
            *limits("steps"), value=start_steps, step=1, precision=0, elem_id="steps", scale=3, **labels("steps")
        )  # precision 0: the API types it as an int
        ui.real_steps = gr.Checkbox(value=False, elem_id="real-steps", scale=1, **labels("real_steps"))
    ui.plan = gr.HTML(plan_line(False, start_strength, start_steps, False, family), elem_id="plan-line")
    if h.page.on_cpu:
        gr.HTML(
            f'<div class="cpu-note">This server runs on a CPU, so the page starts models that are not few-step at '
            f"{config.CPU_PAGE_STEPS} steps and pictures at most {config.CPU_PAGE_MAX_SIDE} px wide, for a first "
            "run of about a minute; few-step models (Turbo, LCM, schnell) keep their own settings. More steps or a "
            "larger size take longer: after a first run the line above says how long.</div>",
            elem_id="cpu-note",
        )


def more_settings(h: Handlers, family, ui: SimpleNamespace) -> None:
    """The rarer settings, folded away: sampler, guidance, size, previews; the listed LoRAs; settings from an image."""
    start_guidance = page_defaults(family, h.page.on_cpu)[2]
    with gr.Accordion("More settings", open=False, elem_classes="more"):
        ui.sampler = gr.Dropdown(sampler_choices(family), value="", elem_id="sampler", **labels("sampler"))
        ui.guidance_scale = gr.Slider(
            *limits("guidance_scale"), value=start_guidance, step=config.GUIDANCE_STEP, **labels("guidance_scale")
        )
        with gr.Row():
            ui.width = gr.Number(
                value=None, precision=0, step=8, placeholder="auto", min_width=100, elem_id="width", **labels("width")
            )
            ui.height = gr.Number(
                value=None, precision=0, step=8, placeholder="auto", min_width=100, elem_id="height", **labels("height")
            )
        ui.resize_mode = gr.Radio(list(config.RESIZE_MODES), value=config.DEFAULT_RESIZE_MODE, **labels("resize_mode"))
        ui.preview = gr.Radio(list(config.PREVIEWS), value=h.page.settings.preview, **labels("preview"))
    specs, slots = h.models.lora_specs(None), h.models.lora_slots
    with gr.Accordion("LoRAs", open=False, elem_classes="more", visible=slots > 0):
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
            for i in range(slots)
        ]
        ui.loras = gr.Textbox(
            format_scales({spec.name: spec.scale for spec in specs}), visible=False, label="LoRAs", elem_id="loras"
        )
    with gr.Accordion("Settings from an image", open=False, elem_classes="more"):
        gr.Markdown(
            "A PNG, JPEG or WebP made by this app, AUTOMATIC1111, InvokeAI, ComfyUI, Fooocus, NovelAI or SwarmUI: "
            "its settings fill the form, and a note says what did not carry over.",
            elem_classes="hint",
        )
        ui.png = gr.File(
            label="Drop an image", file_types=SETTINGS_FILE_TYPES, type="filepath", height=90, elem_id="png-settings"
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
    with gr.Row(elem_classes="result-row"):
        ui.output = gr.Image(
            label="Result",
            type="filepath",
            format="png",
            interactive=False,
            height=360,
            elem_id="output",
            buttons=["download", "fullscreen"],
            scale=3,
        )
        ui.animation_preview = animation_preview()
    ui.batch = batch_strip()
    steps_panel(ui)
    with gr.Row():
        ui.download = gr.DownloadButton("Download PNG (with settings)", elem_id="download", size="md")
        ui.animation = gr.DownloadButton("Download animation (WebP)", elem_id="download-animation", size="md")
    ui.batch_files = gr.File(
        label="Each image's PNG (settings embedded)", file_count="multiple", interactive=False, visible=False
    )
    with gr.Accordion("Run info", open=False, elem_classes="more"):
        ui.info = exact_json(label="Run info", elem_id="run-info")
    return ui


def steps_panel(ui: SimpleNamespace) -> None:
    """Every step as it comes (the noisy latents or the predicted image), and the strip of them all."""
    with gr.Row(elem_classes="steps-head"):
        gr.HTML('<div class="section-title">Every step <span>step 0 is what SD starts from</span></div>')
        ui.view = gr.Radio(
            VIEW_CHOICES,
            value="latents",
            label="View",
            show_label=False,
            container=False,
            elem_id="view",
            min_width=220,
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


def batch_strip() -> gr.Gallery:
    """A batch's images side by side (shown after a batch): the one picked is the one the page shows."""
    return gr.Gallery(
        label="Batch: pick one to see its steps",
        visible=False,
        columns=4,
        height=240,
        object_fit="contain",
        allow_preview=False,
        elem_id="batch-strip",
    )


def animation_preview() -> gr.Image:
    """The last run's steps as an animation (the file ``/img2img`` returns last), playing beside the result."""
    return gr.Image(
        label="Steps as an animation",
        type="filepath",
        interactive=False,
        height=360,
        elem_id="animation",
        buttons=["download", "fullscreen"],
        scale=2,
        min_width=160,
    )


def generate_tab(h: Handlers) -> SimpleNamespace:
    """The Generate tab: inputs on the left, every step on the right, the examples below."""
    with gr.Row(equal_height=False, elem_classes="workspace"):
        with gr.Column(scale=5, min_width=300, elem_classes="panel inputs"):
            source = source_panel()
            form = settings_panel(h)
        with gr.Column(scale=7, min_width=300, elem_classes="panel outputs"):
            out = output_panel()
    loop = loopback_panel(h)
    gr.Examples(
        examples=[[str(EXAMPLES_DIR / name), prompt_text] for name, _, prompt_text in EXAMPLES],
        inputs=[source.init_image, form.prompt],
        example_labels=[short for _, short, _ in EXAMPLES],
        label="Examples (drawn by the project itself)",
        cache_examples=False,
        elem_id="examples",
    )
    return SimpleNamespace(**vars(source), **vars(form), **vars(out), loopback=loop)


def explain_tab(h: Handlers) -> SimpleNamespace:
    """The Explain tab: the guide's table, built live (across the served models too, when there are several)."""
    ui = SimpleNamespace()
    gr.Markdown(EXPLAIN, elem_classes="explain-intro")
    ui.chart = strength_chart(h.page)
    choices = [("Compare strengths", "strength"), ("Compare step counts", "steps")]
    if len(h.page.backend.names) > 1:
        choices.append(("Compare models", "model"))
    with gr.Row(elem_classes="explain-controls"):
        ui.compare_by = gr.Radio(choices, value="strength", label="Compare", elem_id="compare-by", scale=2)
        ui.values = gr.Textbox(
            default_values("strength"), label="Values (one column each)", elem_id="compare-values", scale=2
        )
        ui.steps = gr.Slider(
            RANGES["steps"].low,
            RANGES["steps"].high,
            value=config.COMPARE_STEPS,
            step=1,
            precision=0,
            label="Steps of every column",
            elem_id="compare-steps",
            scale=2,
        )
        ui.strength = gr.Slider(
            config.STRENGTH_STEP,
            RANGES["strength"].high,
            value=config.COMPARE_STRENGTH,
            step=config.STRENGTH_STEP,
            label="Strength of every column",
            visible=False,
            elem_id="compare-strength",
            scale=2,
        )
    with gr.Row(elem_classes="actions"):
        ui.run_btn = gr.Button("Build the table", variant="primary", elem_id="compare-run", scale=3)
        ui.stop_btn = gr.Button("Stop", elem_id="compare-stop", scale=1)
    ui.table = gr.HTML(compare_html(None, "strength"), label="Table", elem_id="explain-table")
    with gr.Accordion("Column info", open=False, elem_classes="more"):
        ui.info = exact_json(label="Columns")
    return ui


def loopback_panel(h: Handlers) -> SimpleNamespace:
    """Loopback, below the workspace: each output becomes the next initial image (the Generate tab's image, prompt,
    strength and settings start it); the strength curve as numbers before it runs, then each loop in a strip."""
    ui = SimpleNamespace()
    start = page_defaults(h.page.family(None) or default_family(), h.page.on_cpu)
    with gr.Accordion("Loopback: feed each output back in", open=False, elem_id="loopback", elem_classes="more"):
        gr.Markdown(
            "Each loop's output becomes the next loop's initial image, seed + 1 each loop, strength moving from the "
            "Strength above to a final strength (AUTOMATIC1111's loopback curves).",
            elem_classes="hint",
        )
        with gr.Row(elem_classes="loop-controls"):
            ui.loops = gr.Slider(
                1, config.MAX_LOOPS, value=config.DEFAULT_LOOPS, step=1, precision=0, label="Loops", elem_id="loops"
            )
            ui.final_strength = gr.Slider(
                config.STRENGTH_STEP,
                RANGES["strength"].high,
                value=config.DEFAULT_FINAL_STRENGTH,
                step=config.STRENGTH_STEP,
                label="Final strength",
                elem_id="final-strength",
            )
            ui.curve = gr.Radio(list(config.LOOP_CURVES), value="linear", label="Strength curve", elem_id="curve")
            ui.colour_match = gr.Checkbox(
                label="Match colours to the initial image",
                value=False,
                info="per-channel histogram matching",
                elem_id="colour-match",
            )
        first_line = h.loopback.curve_line(strength=start[1], steps=start[0])
        ui.curve_line = gr.HTML(first_line, elem_id="loop-curve")
        with gr.Row(elem_classes="actions"):
            ui.run_btn = gr.Button("Run the loops", variant="primary", elem_id="loop-run", scale=3)
            ui.stop_btn = gr.Button("Stop", elem_id="loop-stop", scale=1)
        ui.strip = gr.HTML("", label="Loops strip", elem_id="loop-strip")
        with gr.Row(equal_height=False):
            ui.animation = gr.Image(
                label="The loops as an animation",
                type="filepath",
                interactive=False,
                height=260,
                elem_id="loop-animation",
                buttons=["download", "fullscreen"],
            )
            with gr.Column():
                ui.files = gr.File(
                    label="Each loop's PNG (settings embedded)",
                    file_count="multiple",
                    interactive=False,
                    elem_id="loop-files",
                )
                with gr.Accordion("Loop info", open=False, elem_classes="more"):
                    ui.info = exact_json(label="Loops")
    return ui


def grid_panel(h: Handlers) -> SimpleNamespace:
    """The strength × steps grid, on the Explain tab: strengths down, step counts across (or either the models), its
    cost before it runs, the cells as they finish."""
    ui = SimpleNamespace()
    gr.Markdown(
        "**Strength × steps grid.** The same image, prompt and seed from the Generate tab, once per cell: strengths "
        "down, step counts across. Each cell shows its output and the steps that actually ran.",
        elem_classes=["explain-intro", "grid-intro"],
    )
    with gr.Row(elem_classes="explain-controls"):  # models: the served ones (one: a single row, for edit models)
        ui.rows = gr.Radio(ROW_AXES, value="strength", label="Rows", elem_id="grid-rows")
        ui.row_values = gr.Textbox(default_axis_values("strength"), label="Row values", elem_id="grid-row-values")
        ui.columns = gr.Radio(COLUMN_AXES, value="steps", label="Columns", elem_id="grid-columns")
        ui.column_values = gr.Textbox(default_axis_values("steps"), label="Column values", elem_id="grid-column-values")
    ui.cost = gr.HTML(
        '<div class="plan grid-cost">pick an initial image on the Generate tab</div>', elem_id="grid-cost"
    )
    with gr.Row(elem_classes="actions"):
        ui.run_btn = gr.Button("Build the grid", variant="primary", elem_id="grid-run", scale=3)
        ui.stop_btn = gr.Button("Stop", elem_id="grid-stop", scale=1)
    ui.table = gr.HTML(empty_grid_html(), label="Grid", elem_id="grid-table")
    with gr.Accordion("Cell PNGs and info", open=False, elem_classes="more"):
        ui.files = gr.File(
            label="Each cell's PNG (settings embedded)", file_count="multiple", interactive=False, elem_id="grid-files"
        )
        ui.info = exact_json(label="Cells")
    return ui


def diverge_panel(h: Handlers) -> SimpleNamespace:
    """The Explain tab's "Where do they part?": two runs that differ in one setting (the guide's 30 vs 29 steps at
    strength 0.7 to start), both runs' steps aligned by noise level, their difference maps, a chart and one sentence."""
    ui = SimpleNamespace()
    gr.Markdown(DIVERGE, elem_classes=["explain-intro", "grid-intro"])
    choices = [(label, key) for label, key in DIVERGE_CHOICES if key != "model" or len(h.page.backend.names) > 1]
    choices = [(label, key) for label, key in choices if key != "loras" or h.models.lora_slots > 0]
    ui.vary = gr.Radio(choices, value=config.DIVERGE_VARY, elem_id="diverge-vary", **labels("vary", DIVERGE_OPTIONS))
    with gr.Row(elem_classes="explain-controls"):
        a, b = default_diverge_values(config.DIVERGE_VARY)
        ui.value_a = gr.Textbox(a, elem_id="diverge-a", min_width=120, **labels("value_a", DIVERGE_OPTIONS))
        ui.value_b = gr.Textbox(b, elem_id="diverge-b", min_width=120, **labels("value_b", DIVERGE_OPTIONS))
    with gr.Row(elem_classes="diverge-presets"):
        ui.guide = gr.Button("The guide: 30 vs 29 steps at 0.7", size="sm", elem_id="diverge-guide")
        ui.strengths = gr.Button("Strength 0.4 vs 0.7, 20 steps that run", size="sm", elem_id="diverge-strengths")
    diverge_shared(h, ui)
    ui.cost = gr.HTML(h.diverge.cost(), elem_id="diverge-cost")  # the guide's comparison, before anything changes
    with gr.Row(elem_classes="actions"):
        ui.run_btn = gr.Button("Compare the two runs", variant="primary", elem_id="diverge-run", scale=3)
        ui.stop_btn = gr.Button("Stop", elem_id="diverge-stop", scale=1)
    ui.view = gr.HTML(empty_diverge_html(), label="Where the runs part", elem_id="diverge-view")
    ui.chart = diverge_chart()
    with gr.Accordion("PNGs and info", open=False, elem_classes="more"):
        ui.files = gr.File(
            label="Both runs' PNGs, then each pair's pictures and map",
            file_count="multiple",
            interactive=False,
            elem_id="diverge-files",
        )
        ui.info = gr.JSON(label="Comparison", elem_id="diverge-info")
    return ui


def diverge_shared(h: Handlers, ui: SimpleNamespace) -> None:
    """What both runs of "Where do they part?" share, the guide's settings to start (the varied one hidden)."""
    family = h.page.family(None) or default_family()
    sampler = config.DIVERGE_SAMPLER if config.DIVERGE_SAMPLER in family.samplers else ""
    with gr.Accordion("What both runs share", open=True, elem_classes="more", elem_id="diverge-shared"):
        ui.prompt = gr.Textbox(
            config.DIVERGE_PROMPT, lines=1, elem_id="diverge-prompt", **labels("prompt", DIVERGE_OPTIONS)
        )
        with gr.Row():
            ui.strength = gr.Slider(
                config.STRENGTH_STEP,
                RANGES["strength"].high,
                value=config.DIVERGE_STRENGTH,
                step=config.STRENGTH_STEP,
                visible=config.DIVERGE_VARY != "strength",
                elem_id="diverge-strength",
                **labels("strength", DIVERGE_OPTIONS),
            )
            ui.steps = gr.Slider(
                *limits("steps"),
                value=config.DIVERGE_VALUES[0],
                step=1,
                precision=0,  # the API types it as an int
                visible=config.DIVERGE_VARY != "steps",
                elem_id="diverge-steps",
                **labels("steps", DIVERGE_OPTIONS),
            )
            ui.real_steps = gr.Checkbox(value=False, elem_id="diverge-real-steps", **labels("real_steps"))
        with gr.Row():
            ui.seed = seed_box(
                value=str(config.DIVERGE_SEED), max_lines=1, elem_id="diverge-seed", **labels("seed", DIVERGE_OPTIONS)
            )
            ui.sampler = gr.Dropdown(
                sampler_choices(family), value=sampler, elem_id="diverge-sampler", **labels("sampler", DIVERGE_OPTIONS)
            )
            size = dict(precision=0, step=8, min_width=90)
            ui.width, ui.height = (
                gr.Number(config.DIVERGE_SIZE, elem_id=f"diverge-{side}", **size, **labels(side, DIVERGE_OPTIONS))
                for side in ("width", "height")
            )
            ui.threshold = gr.Number(
                config.DIVERGE_THRESHOLD,
                minimum=0,
                maximum=255,
                step=0.5,
                elem_id="diverge-threshold",
                **labels("threshold", DIVERGE_OPTIONS),
            )
        gr.Markdown(
            "Negative prompt, guidance, resize mode, previews, model and LoRAs are the Generate tab's; so is the initial "
            "image (the guide's fireplace drawing when it has none).",
            elem_classes="hint",
        )
