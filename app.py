"""The sd-img2img web demo: Stable Diffusion img2img with every denoising step on show.

    python app.py --model random            # offline: a tiny random-weight checkpoint (pictures are noise)
    python app.py --model stable-diffusion-v1-5/stable-diffusion-v1-5 --host 0.0.0.0

Layout and wiring only: the model work is ``sd_img2img``'s (engine, compare, server). ``import app`` loads
no model; ``build_demo(engine)`` makes the page and ``launch(demo, settings)`` serves it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import gradio as gr
from PIL import Image as PILImage

from sd_img2img import config
from sd_img2img.compare import Column, compare_html, compare_info, default_values, parse_values, run_compare
from sd_img2img.cpu_memory import keep_freed_memory
from sd_img2img.errors import GenerationError, ModelLoadError, UserInputError
from sd_img2img.examples import EXAMPLES
from sd_img2img.images import open_image
from sd_img2img.samplers import SAMPLER_NAMES
from sd_img2img.schedule import plan_steps
from sd_img2img.server import (
    AppSettings, ModelStatus, RunFiles, StopFlags, forget_paths, form_values, gpu, make_engine, parse_settings, save_step_image,
    seed_value, size_value,
)

HERE = Path(__file__).resolve().parent
EXAMPLES_DIR = HERE / "examples"
CSS_PATH = HERE / "sd_img2img" / "app.css"
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


def plan_line(has_image: bool, strength, steps, real_steps) -> str:
    """The live "what will happen" line, from the same ``plan_steps`` the engine runs."""
    try:
        steps_i = int(steps)
        if not has_image:
            return (f'<div class="plan t2i">No initial image → <b>prompt2img</b>: {steps_i} steps from pure noise '
                    f"(strength does not apply).</div>")
        text = plan_steps(steps_i, float(strength), bool(real_steps)).describe()
        return f'<div class="plan">{text}</div>'
    except (UserInputError, TypeError, ValueError) as e:
        return f'<div class="plan bad">{e}</div>'


def caption(frame) -> str:
    """A step's caption in the gallery: its number and timestep (step 0 is where the run starts)."""
    return "step 0 · start" if frame.index == 0 else f"step {frame.index} · t={frame.timestep}"


def readable_uploads(component: gr.Image) -> gr.Image:
    """A file gradio cannot even open gets the engine's clear message instead of a bare exception."""
    preprocess = component.preprocess

    def checked(payload):
        try:
            return preprocess(payload)
        except (OSError, ValueError, SyntaxError, PILImage.DecompressionBombError):  # UnidentifiedImageError is an OSError
            name = f"'{getattr(payload, 'orig_name', None) or 'the uploaded file'}'"
            try:  # the engine's own check says precisely what is wrong (too many pixels, damaged, not an image)
                open_image(payload.path, name)
            except UserInputError as e:
                raise gr.Error(str(e)) from None
            raise gr.Error(f"{name} is not an image this program can read; use PNG, JPEG, WebP, BMP, GIF or TIFF") from None

    component.preprocess = checked
    return component


def status_html(kind: str, text: str, fraction: float | None = None) -> str:
    bar = ""
    if fraction is not None:
        bar = f'<div class="bar"><span style="width:{max(0.0, min(1.0, fraction)) * 100:.1f}%"></span></div>'
    return f'<div class="run-status {kind}">{bar}<div class="text">{text}</div></div>'


def summary_html(result) -> str:
    stopped = "Stopped" if result.stopped else "Done"
    asked = f"{result.steps} steps asked" + (" (real steps)" if result.real_steps else "")
    mode = "prompt2img" if result.mode == "txt2img" else f"strength {result.strength:g}"
    text = (f"<b>{stopped}</b> in {result.seconds['total']:.1f} s · seed <code>{result.seed}</code> · {asked} · "
            f"<b>{result.steps_taken} taken</b> · {mode} · {result.sampler} · {result.width}×{result.height}")
    warnings = "".join(f'<div class="warn">⚠ {w}</div>' for w in result.warnings)
    return status_html("stopped" if result.stopped else "done", text + warnings, None)


def build_demo(engine, settings: AppSettings | None = None, status: ModelStatus | None = None) -> gr.Blocks:
    """The page. ``engine`` is served as is; ``status`` (loading in the background) feeds the model badge."""
    settings = settings or AppSettings()
    status = status or ModelStatus(engine)
    stops = StopFlags()
    files = None  # set below: the runs' files live in gradio's own cache, so streaming them copies nothing

    def make_request(image, prompt, negative_prompt, strength, steps, real_steps, seed, sampler, guidance_scale,
                     width, height, resize_mode, preview, view):
        from sd_img2img.engine import GenerationRequest

        return GenerationRequest(
            prompt=prompt or "", init_image=image or None, negative_prompt=negative_prompt or "",
            strength=float(strength) if strength is not None else config.DEFAULT_STRENGTH,
            steps=int(steps) if isinstance(steps, float) and steps.is_integer() else steps,
            real_steps=bool(real_steps), seed=seed_value(seed), sampler=sampler, guidance_scale=guidance_scale,
            width=size_value(width), height=size_value(height), resize_mode=resize_mode or config.DEFAULT_RESIZE_MODE,
            preview=preview or settings.preview, view=view or "latents", max_side=settings.max_side)

    def stream_run(request, session):
        """Shared by /img2img and /txt2img: yield page updates as each step arrives, then the result."""
        from sd_img2img.engine import GenerationResult, prepare_request

        try:
            prepare_request(request)  # bad input is answered before waiting for the model
            if not engine.is_loaded:
                engine.load()
        except ERRORS as e:
            raise gr.Error(str(e)) from None
        folder = files.new()
        flag = stops.begin(session)
        stream = engine.stream(request, should_stop=flag.is_set)
        steps, total = [], None
        try:
            # Plain values while streaming, not gr.skip(): gradio keeps every component a prop update creates for a
            # session (tens of KB per run, for as long as the session lives); clearing the last result is cheap.
            yield (None, [], None, None, status_html("running", "Starting…", 0.0), None, gr.skip())
            for item in stream:
                if isinstance(item, GenerationResult):
                    result = item
                    break
                total = item.total
                path = save_step_image(item.image(request.view), folder / f"step{item.index:03d}.webp")
                steps.append((path, caption(item)))
                text = "the initial image SD sees" if item.index == 0 else f"step {item.index} of {total}"
                yield (None, list(steps), None, None, status_html("running", text, item.index / max(1, total)), None,
                       gr.skip())
            else:
                raise gr.Error("the run ended without a result; try again")
        except ERRORS as e:
            raise gr.Error(str(e)) from None
        finally:
            stream.close()
            stops.end(session, flag)
        from sd_img2img.metadata import save_png

        png = save_png(result.output, folder / f"sd-img2img-{result.seed}.png", result.settings())
        strip = save_step_image(result.strip(request.view), folder / "steps.webp")
        gallery = [(p, label) for (p, label) in steps]
        yield (str(png), gallery, result.info(), strip, summary_html(result),
               str(png), {"result": result, "folder": folder, "seed": result.seed})

    @gpu
    def img2img(image: str | None, prompt: str, negative_prompt: str = "", strength: float = config.DEFAULT_STRENGTH,
                steps: int = config.DEFAULT_STEPS, real_steps: bool = False, seed: int | None = None,
                sampler: str = config.DEFAULT_SAMPLER, guidance_scale: float = config.DEFAULT_GUIDANCE,
                width: int | None = None, height: int | None = None, resize_mode: str = config.DEFAULT_RESIZE_MODE,
                preview: str = config.DEFAULT_PREVIEW, view: str = "latents", request: gr.Request = None):
        """Stable Diffusion img2img (prompt2img when no image is given); streams every step.

        Returns the output PNG (settings embedded), the step gallery (step 0 first), the run info, the steps strip,
        a status line, the download and the session's last run."""
        req = make_request(image, prompt, negative_prompt, strength, steps, real_steps, seed, sampler,
                           guidance_scale, width, height, resize_mode, preview, view)
        yield from stream_run(req, request.session_hash if request else None)

    @gpu
    def txt2img(prompt: str, negative_prompt: str = "", steps: int = config.DEFAULT_STEPS, seed: int | None = None,
                sampler: str = config.DEFAULT_SAMPLER, guidance_scale: float = config.DEFAULT_GUIDANCE,
                width: int | None = None, height: int | None = None, preview: str = config.DEFAULT_PREVIEW,
                view: str = "latents", request: gr.Request = None):
        """Stable Diffusion prompt2img from pure noise; streams every step."""
        req = make_request(None, prompt, negative_prompt, None, steps, False, seed, sampler, guidance_scale,
                           width, height, None, preview, view)
        yield from stream_run(req, request.session_hash if request else None)

    @gpu
    def compare(image: str | None, prompt: str, negative_prompt: str = "", compare_by: str = "strength",
                values: str = default_values("strength"), steps: int = config.COMPARE_STEPS,
                strength: float = config.COMPARE_STRENGTH, real_steps: bool = False, seed: int | None = None,
                sampler: str = config.DEFAULT_SAMPLER, guidance_scale: float = config.DEFAULT_GUIDANCE,
                width: int | None = None, height: int | None = None, resize_mode: str = config.DEFAULT_RESIZE_MODE,
                preview: str = config.DEFAULT_PREVIEW, request: gr.Request = None):
        """The explain table: the same image, prompt and seed at several strengths or step counts.

        Returns the table (HTML) and one info object per column."""
        from sd_img2img.engine import prepare_request

        session = request.session_hash if request else None
        try:
            vals = parse_values(values, compare_by)
            base = make_request(image, prompt, negative_prompt, strength, steps, real_steps, seed, sampler,
                                guidance_scale, width, height, resize_mode, preview, "latents")
            prepare_request(base)
            if not engine.is_loaded:
                engine.load()
        except ERRORS as e:
            raise gr.Error(str(e)) from None
        flag = stops.begin(session)
        columns = [Column(v) for v in vals]
        yield compare_html(columns, compare_by), []
        try:
            for columns in run_compare(engine, base, compare_by, vals, should_stop=flag.is_set):
                yield compare_html(columns, compare_by), compare_info(columns, compare_by)
        except ERRORS as e:
            raise gr.Error(str(e)) from None
        finally:
            stops.end(session, flag)

    @gpu
    def switch_view(last, view):
        """Redraw the gallery and strip of the last run in the other view (decoded on first use)."""
        if not last:
            return gr.skip(), gr.skip()
        result, folder = last["result"], last["folder"]
        folder.mkdir(parents=True, exist_ok=True)  # swept away meanwhile if the run is old
        try:
            gallery = [(save_step_image(f.image(view), folder / f"{view}{f.index:03d}.webp"), caption(f))
                       for f in result.frames]
            strip = save_step_image(result.strip(view), folder / f"steps-{view}.webp")
        except ERRORS as e:
            raise gr.Error(str(e)) from None
        return gallery, strip

    def stop(request: gr.Request = None):
        stops.stop(request.session_hash if request else None)

    def use_sketch(source, sketch, image, request: gr.Request = None):
        """At the click, before the run queues: a Stop pressed earlier is forgotten (so it cannot end this run),
        and when the Sketch tab is the one in use, its drawing becomes the initial image."""
        stops.clear_pending(request.session_hash if request else None)
        if source == "sketch" and sketch and sketch.get("composite"):
            return sketch["composite"]
        return image

    def load_png(path):
        if not path:
            return [gr.skip()] * len(form) + [gr.skip()]
        try:
            values = form_values(path)
        except UserInputError as e:
            raise gr.Error(str(e)) from None
        updates = [values[name] if name in values else gr.skip() for name in form]
        filled = ", ".join(values) or "nothing"
        return updates + [f'<div class="png-note">Filled in from the PNG: {filled}.</div>']

    with gr.Blocks(title="sd-img2img · every step of img2img", fill_width=False,
                   delete_cache=(config.CACHE_SWEEP_SECONDS, config.KEEP_RUN_SECONDS)) as demo:
        files = RunFiles(Path(demo.GRADIO_CACHE) / "sd-img2img-runs",
                         on_remove=lambda folders: forget_paths(demo.temp_file_sets, folders))
        last_run = gr.State(None, time_to_live=3600)
        source = gr.State("image")
        with gr.Row(elem_classes="topbar"):
            gr.HTML(INTRO, elem_classes="intro")
            model_badge = gr.HTML(status.html(), elem_classes="badge-wrap")
        timer = gr.Timer(1.0, active=not status.done)

        with gr.Tabs(elem_classes="main-tabs") as tabs:
            with gr.Tab("Generate", id="generate"):
                with gr.Row(equal_height=False, elem_classes="workspace"):
                    with gr.Column(scale=5, min_width=300, elem_classes="panel inputs"):
                        with gr.Tabs(elem_classes="source-tabs"):
                            with gr.Tab("Image", id="image") as image_tab:
                                init_image = gr.Image(
                                    label="Initial image", type="filepath", sources=["upload", "clipboard", "webcam"],
                                    image_mode=None,  # the path as uploaded: sd_img2img opens it (size checked first)
                                    height=300, elem_id="init-image",
                                    placeholder="Drop an image, paste one, or use the webcam — or leave empty for prompt2img")
                                readable_uploads(init_image)
                            with gr.Tab("Sketch", id="sketch") as sketch_tab:
                                sketch = gr.ImageEditor(
                                    label="Draw your initial image", type="filepath", format="png", sources=(),
                                    canvas_size=(512, 512), height=360, elem_id="sketch", layers=False,
                                    brush=gr.Brush(colors=["#1f1f1f", "#a0412d", "#e8782a", "#f6d04d", "#3f7f3a",
                                                           "#3a6bb0", "#f6f2e8"], default_size=12, color_mode="defaults"),
                                )
                                gr.Markdown("Draw a rough scene (a fireplace: a brick frame, a dark opening, orange "
                                            "flames). While this tab is open, Generate uses the drawing.",
                                            elem_classes="hint")
                        prompt = gr.Textbox("", label="Prompt", lines=2, placeholder="a cozy fireplace with a roaring fire, oil painting",
                                            elem_id="prompt")
                        negative_prompt = gr.Textbox("", label="Negative prompt", lines=1, placeholder="blurry, low quality",
                                                     elem_id="negative-prompt")
                        strength = gr.Slider(0.01, 1.0, value=config.DEFAULT_STRENGTH, step=0.01, label="Strength",
                                             info="How far into the noise your image goes: low keeps it, high reimagines it",
                                             elem_id="strength")
                        with gr.Row(elem_classes="steps-row"):
                            steps = gr.Slider(1, config.MAX_STEPS, value=config.DEFAULT_STEPS, step=1, label="Steps",
                                              elem_id="steps", scale=3)
                            real_steps = gr.Checkbox(label="Real steps", value=False, elem_id="real-steps", scale=1,
                                                     info="run exactly this many")
                        plan = gr.HTML(plan_line(False, config.DEFAULT_STRENGTH, config.DEFAULT_STEPS, False),
                                       elem_id="plan-line")
                        with gr.Row(elem_classes="actions"):
                            run_btn = gr.Button("Generate", variant="primary", size="lg", elem_id="run", scale=3)
                            stop_btn = gr.Button("Stop", variant="secondary", size="lg", elem_id="stop", scale=1)
                        with gr.Row(elem_classes="seed-row"):
                            seed = gr.Number(label="Seed", value=-1, precision=0, info="-1 = a new random seed each run",
                                             elem_id="seed", scale=4, minimum=-1, maximum=config.MAX_SEED - 1)
                            dice = gr.Button("🎲 Random", elem_id="seed-random", scale=0, min_width=96, size="md")
                            reuse = gr.Button("↺ Last seed", elem_id="seed-reuse", scale=0, min_width=110, size="md")
                        with gr.Accordion("More settings", open=False, elem_classes="more"):
                            sampler = gr.Dropdown(list(SAMPLER_NAMES), value=config.DEFAULT_SAMPLER, label="Sampler",
                                                  elem_id="sampler")
                            guidance = gr.Slider(0, config.MAX_GUIDANCE, value=config.DEFAULT_GUIDANCE, step=0.5,
                                                 label="Guidance scale", info="How closely to follow the prompt (1 = off)")
                            with gr.Row():
                                width = gr.Number(label="Width", value=None, precision=0, step=8, placeholder="auto",
                                                  min_width=100)
                                height = gr.Number(label="Height", value=None, precision=0, step=8, placeholder="auto",
                                                   min_width=100)
                            resize_mode = gr.Radio(list(config.RESIZE_MODES), value=config.DEFAULT_RESIZE_MODE,
                                                   label="Resize mode", info="resize stretches, crop cuts, fill pads")
                            preview = gr.Radio(list(config.PREVIEWS), value=settings.preview, label="Step previews",
                                               info="approx: instant, 1/8 size · taesd: small decoder · full: exact, slow")
                        with gr.Accordion("Settings from a PNG", open=False, elem_classes="more"):
                            png = gr.File(label="Drop a PNG made by this app or the sd-img2img CLI", file_types=[".png"],
                                          type="filepath", height=90, elem_id="png-settings")
                            png_note = gr.HTML()

                    with gr.Column(scale=7, min_width=300, elem_classes="panel outputs"):
                        run_status = gr.HTML(label="Status", value=status_html("idle", "Ready when you are: pick an example below or upload an image."),
                                             elem_id="run-status")
                        output = gr.Image(label="Result", type="filepath", format="png", interactive=False, height=360,
                                          elem_id="output", buttons=["download", "fullscreen"])
                        with gr.Row(elem_classes="steps-head"):
                            gr.HTML('<div class="section-title">Every step <span>step 0 is what SD starts from</span></div>')
                            view = gr.Radio(VIEW_CHOICES, value="latents", show_label=False, container=False,
                                            elem_id="view", min_width=220)
                        gallery = gr.Gallery(label="Steps", show_label=False, columns=5, height="auto",
                                             object_fit="contain", format="webp", elem_id="steps-gallery",
                                             preview=False, allow_preview=True, buttons=["fullscreen"])
                        strip = gr.Image(label="Steps strip", type="filepath", interactive=False, height=96,
                                         elem_id="strip", buttons=["download"], elem_classes="strip-image")
                        with gr.Row():
                            download = gr.DownloadButton("Download PNG (with settings)",
                                                         elem_id="download", size="md")
                        with gr.Accordion("Run info", open=False, elem_classes="more"):
                            info = gr.JSON(label="Run info", elem_id="run-info")

                gr.Examples(
                    examples=[[str(EXAMPLES_DIR / name), prompt_text] for name, _, prompt_text in EXAMPLES],
                    inputs=[init_image, prompt], example_labels=[short for _, short, _ in EXAMPLES],
                    label="Examples (drawn by the project itself)", cache_examples=False, elem_id="examples",
                )

            with gr.Tab("Explain: strength & steps", id="explain"):
                gr.Markdown(EXPLAIN, elem_classes="explain-intro")
                with gr.Row(elem_classes="explain-controls"):
                    compare_by = gr.Radio([("Compare strengths", "strength"), ("Compare step counts", "steps")],
                                          value="strength", label="Compare", elem_id="compare-by", scale=2)
                    compare_values = gr.Textbox(default_values("strength"), label="Values (one column each)",
                                                elem_id="compare-values", scale=2)
                    compare_steps = gr.Slider(1, config.MAX_STEPS, value=config.COMPARE_STEPS, step=1,
                                              label="Steps of every column", elem_id="compare-steps", scale=2)
                    compare_strength = gr.Slider(0.01, 1.0, value=config.COMPARE_STRENGTH, step=0.01,
                                                 label="Strength of every column", visible=False,
                                                 elem_id="compare-strength", scale=2)
                with gr.Row(elem_classes="actions"):
                    compare_btn = gr.Button("Build the table", variant="primary", elem_id="compare-run", scale=3)
                    compare_stop = gr.Button("Stop", elem_id="compare-stop", scale=1)
                table = gr.HTML(compare_html([], "strength"), label="Table", elem_id="explain-table")
                with gr.Accordion("Column info", open=False, elem_classes="more"):
                    compare_json = gr.JSON(label="Columns")

        with gr.Row(visible=False):  # /txt2img is an API endpoint; on the page, Generate without an image does it
            txt2img_btn = gr.Button("txt2img")

        gr.HTML('<div class="footer-note">Runs are queued one at a time. Settings are embedded in every PNG — drop '
                "one back in to reproduce it. Use the API link below for gradio_client.</div>")

        # -- wiring ----------------------------------------------------------------------------------------
        form = {"prompt": prompt, "negative_prompt": negative_prompt, "strength": strength, "steps": steps,
                "real_steps": real_steps, "seed": seed, "sampler": sampler, "guidance_scale": guidance,
                "width": width, "height": height, "resize_mode": resize_mode}
        run_inputs = [init_image, prompt, negative_prompt, strength, steps, real_steps, seed, sampler, guidance,
                      width, height, resize_mode, preview, view]
        run_outputs = [output, gallery, info, strip, run_status, download, last_run]
        model_event = dict(concurrency_id=MODEL_QUEUE, concurrency_limit=1)

        timer.tick(lambda: (status.html(), gr.Timer(active=not status.done)), None, [model_badge, timer],
                   api_visibility="private", api_name="model_status", show_progress="hidden", queue=False)
        demo.load(lambda: (status.html(), gr.Timer(active=not status.done)), None, [model_badge, timer],
                  api_visibility="private", api_name="page_load", show_progress="hidden", queue=False)

        image_tab.select(lambda: "image", None, source, api_visibility="private", api_name="source_image", queue=False)
        sketch_tab.select(lambda: "sketch", None, source, api_visibility="private", api_name="source_sketch", queue=False)
        plan_inputs = [init_image, source, strength, steps, real_steps]
        gr.on([init_image.change, source.change, strength.change, steps.change, real_steps.change],
              lambda im, src, s, n, r: plan_line(bool(im) or src == "sketch", s, n, r), plan_inputs, plan,
              api_visibility="private", api_name="plan", show_progress="hidden", queue=False, trigger_mode="always_last")

        run_event = run_btn.click(
            use_sketch, [source, sketch, init_image], init_image, queue=False, api_visibility="private",
            api_name="use_sketch", show_progress="hidden",
        ).success(img2img, run_inputs, run_outputs, api_name="img2img", show_progress="hidden", **model_event)
        txt2img_btn.click(txt2img, [prompt, negative_prompt, steps, seed, sampler, guidance, width, height, preview,
                                    view], run_outputs, api_name="txt2img", show_progress="hidden", **model_event)
        stop_btn.click(stop, None, None, api_name="stop", queue=False, show_progress="hidden")
        compare_stop.click(stop, None, None, api_name="stop_compare", api_visibility="private", queue=False,
                           show_progress="hidden")
        view.change(switch_view, [last_run, view], [gallery, strip], api_name="switch_view",
                    api_visibility="private", show_progress="hidden", **model_event)

        dice.click(lambda: -1, None, seed, api_name="random_seed", api_visibility="private", queue=False)
        reuse.click(lambda last: last["seed"] if last else gr.skip(), last_run, seed, api_name="reuse_seed",
                    api_visibility="private", queue=False)
        png.upload(load_png, png, [*form.values(), png_note], api_name="png_settings", api_visibility="private")

        compare_by.change(
            lambda by: (default_values(by), gr.update(visible=by == "strength"), gr.update(visible=by == "steps")),
            compare_by, [compare_values, compare_steps, compare_strength], api_name="compare_by",
            api_visibility="private", queue=False)
        compare_btn.click(
            use_sketch, [source, sketch, init_image], init_image, queue=False, api_visibility="private",
            api_name="use_sketch_compare", show_progress="hidden",
        ).success(compare, [init_image, prompt, negative_prompt, compare_by, compare_values, compare_steps,
                            compare_strength, real_steps, seed, sampler, guidance, width, height, resize_mode, preview],
                  [table, compare_json], api_name="compare", show_progress="hidden", **model_event)
        del tabs, run_event
    return demo


def launch(demo: gr.Blocks, settings: AppSettings, **kwargs):
    """Serve ``demo``: one bounded queue, upload size capped, a share link only when asked for."""
    demo.queue(max_size=settings.queue_size, default_concurrency_limit=1)
    return demo.launch(
        server_name=settings.host, server_port=settings.port, share=settings.share,
        max_file_size=config.MAX_UPLOAD_SIZE, theme=theme(), css=CSS_PATH.read_text(),
        allowed_paths=[str(EXAMPLES_DIR)], footer_links=["api", "gradio"], **kwargs)


def theme() -> gr.themes.Base:
    return gr.themes.Soft(primary_hue="orange", secondary_hue="stone", neutral_hue="stone",
                          font=["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"],
                          font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"])


def main(argv: list[str] | None = None) -> None:
    keep_freed_memory()  # before any thread: CPU steps stop page-faulting their activations in (sd_img2img.cpu_memory)
    settings = parse_settings(argv)
    from sd_img2img.cli import _quiet_libraries

    _quiet_libraries()
    engine = make_engine(settings)
    status = ModelStatus(engine).start()  # the page comes up at once; the model loads behind it
    demo = build_demo(engine, settings, status)
    launch(demo, settings)


if __name__ == "__main__":
    main(sys.argv[1:])
