"""The sd-img2img web demo: Stable Diffusion img2img with every denoising step on show.

``build_demo(backend, settings)`` makes the page (``layout`` lays it out, ``handlers`` say what each event does,
``wiring`` connects the two) and ``launch(demo, settings)`` serves it; ``main`` is ``python app.py``. The page reaches
the models only through the backend (``engine.backend``). ``import sd_img2img.ui.app`` loads no model.

Every text a visitor, a PNG or a model can influence is escaped (``html.esc``) before it reaches HTML.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

try:  # ZeroGPU: its spaces package must be imported before gradio, and before torch is asked about CUDA
    import spaces  # type: ignore[import-not-found]  # noqa: F401
except ImportError:
    pass

import gradio as gr  # noqa: E402

from sd_img2img import config
from sd_img2img.engine.backend import Backend, LocalBackend
from sd_img2img.engine.cpu_memory import keep_freed_memory
from sd_img2img.engine.engine import Engine
from sd_img2img.engine.zero_gpu import on_zero_gpu
from sd_img2img.errors import BackendError
from sd_img2img.models import download
from sd_img2img.settings import AppSettings, models_from, quiet_libraries
from sd_img2img.ui.exact_numbers import exact_json
from sd_img2img.ui.handlers import Handlers
from sd_img2img.ui.html import esc, model_badge
from sd_img2img.ui.layout import EXAMPLES_DIR, INTRO, diverge_panel, explain_tab, generate_tab, grid_panel
from sd_img2img.ui.page import Page
from sd_img2img.ui.png_import import SETTINGS_FILE_TYPES
from sd_img2img.ui.state import RunFiles, forget_paths
from sd_img2img.ui.wiring import (
    PRIVATE,
    wire_diverge,
    wire_explain,
    wire_form,
    wire_grid,
    wire_loopback,
    wire_png,
    wire_run,
)

CSS_PATH = Path(__file__).resolve().parent / "app.css"
# Ctrl+Enter (⌘+Enter on a Mac) in the prompt or the negative prompt runs Generate, as in AUTOMATIC1111 and ComfyUI:
# the button's own click, so the run queues and plans exactly as a click does (launch(js=...) runs it once loaded)
SHORTCUTS_JS = """
() => {
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey) || event.isComposing) return;
    if (!event.target.closest || !event.target.closest("#prompt, #negative-prompt")) return;
    const run = document.querySelector("#run");
    if (!run || run.disabled) return;
    event.preventDefault();
    run.click();
  }, true);
}
"""


def as_backend(models) -> Backend:
    """A ``Backend`` as it is; a ``ModelSet`` or one ``Engine`` (served under its display name) in this process."""
    if isinstance(models, Engine):
        return LocalBackend(models)
    return models if hasattr(models, "stream") and hasattr(models, "describe") else LocalBackend(models)


def build_demo(models, settings: AppSettings | None = None) -> gr.Blocks:
    """The page, serving ``models``: a ``Backend`` (``LocalBackend(...).start()`` loads the first model in the
    background, and the badge shows how that goes), a ``ModelSet`` or one ``Engine`` (served as they are)."""
    settings = settings or AppSettings()
    backend = on_zero_gpu(as_backend(models))  # on ZeroGPU each run is its own GPU call (engine.zero_gpu)
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
        h = Handlers.of(Page(backend, settings, files))
        top = SimpleNamespace(
            last_run=gr.State(None, time_to_live=3600),
            prepared=gr.State(None, time_to_live=3600),  # the click's prepared request, handed to its run
            source=gr.State("image"),
            inpaint_from=gr.State(None),  # the fingerprint of the picture the Inpaint tab paints on
        )
        with gr.Row(elem_classes="topbar"):
            # with the line on how the model was chosen, where there is one (no --model, the hub unreachable …)
            note = f'<div class="model-note" role="note">{esc(settings.note)}</div>' if settings.note else ""
            gr.HTML(INTRO + note, elem_classes="intro")
            top.model_badge = gr.HTML(model_badge(h.page.status(None)), elem_classes="badge-wrap")
        top.timer = gr.Timer(1.0, active=h.models.loading)
        with gr.Tabs(elem_classes="main-tabs", overflow_behavior="wrap"):  # a phone shows both tabs, never a ⋯ menu
            with gr.Tab("Generate", id="generate"):
                g = generate_tab(h)
            with gr.Tab("Explain: strength & steps", id="explain"):
                e = explain_tab(h)
                grid = grid_panel(h)
                diverge = diverge_panel(h)
        with gr.Row(visible=False):  # API endpoints only: on the page, Generate without an image is /txt2img, and
            top.txt2img_btn = gr.Button("txt2img")  # "Settings from an image" reads what /read_settings returns
            top.settings_png = gr.File(label="Image with settings", type="filepath", file_types=SETTINGS_FILE_TYPES)
            top.settings_out = exact_json(label="Settings")
            top.read_btn = gr.Button("read_settings")
        gr.HTML(footer_note(backend.capacity))
        badge = [top.model_badge, top.timer]
        top.timer.tick(h.models.model_badge, g.model, badge, api_name="model_status", queue=False, **PRIVATE)
        demo.load(h.models.model_badge, g.model, badge, api_name="page_load", queue=False, **PRIVATE)
        wire_form(h, g, top)
        wire_run(h, g, top)
        wire_png(h, g, top)
        wire_explain(h, e, g, top)
        wire_grid(h, grid, g, top)
        wire_loopback(h, g.loopback, g, top)
        wire_diverge(h, diverge, g, top)
        demo.unload(h.runs.leave)  # a closed tab: its run stops (between steps, or before its turn comes)
    demo.handlers = h  # for tests and embedding: the page's logic without a browser
    return demo


def footer_note(capacity: int) -> str:
    """The line under the page: how runs are served, where the settings are, the API."""
    served = "Runs take turns: others' go between a grid's cells."
    if capacity > 1:
        served = f"Up to {capacity} runs go at once; the rest take turns, a grid's cells with others' runs."
    return (
        f'<div class="footer-note">{served} Settings are embedded in every PNG — drop one back in to reproduce it. '
        "Use the API link below for gradio_client.</div>"
    )


def launch(demo: gr.Blocks, settings: AppSettings, **kwargs):
    """Serve ``demo``: one bounded queue (``settings.queue_size`` waiting per run the backend takes at once), upload
    size capped, a share link only when asked for."""
    capacity = demo.handlers.page.backend.capacity
    demo.queue(max_size=settings.queue_size * capacity, default_concurrency_limit=1)
    return demo.launch(
        mcp_server=settings.mcp,
        server_name=settings.host,
        server_port=settings.port,
        share=settings.share,
        max_file_size=config.MAX_UPLOAD_SIZE,
        theme=theme(),
        css=CSS_PATH.read_text(),
        js=SHORTCUTS_JS,
        allowed_paths=[str(EXAMPLES_DIR)],
        footer_links=["api", "gradio"],
        **kwargs,
    )


def theme() -> gr.themes.Base:
    """gradio's Soft theme in orange and stone, its subdued text one shade darker in the light theme (stone-400 on
    stone-50 is 2.4:1; stone-600 is 7:1) so that notes, captions and the status line's tail can be read."""
    return gr.themes.Soft(
        primary_hue="orange",
        secondary_hue="stone",
        neutral_hue="stone",
        font=["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"],
        font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"],
    ).set(body_text_color_subdued="*neutral_600", body_text_color_subdued_dark="*neutral_400")


def make_backend(settings: AppSettings) -> Backend:
    """The backend ``settings.backend`` names, not started: the models in this process (``LocalBackend``), or on
    Ray Serve workers (``serve.backend.RayBackend``; only then is Ray imported)."""
    if settings.backend == "ray":
        from sd_img2img.serve.backend import RayBackend

        return RayBackend(models_from(settings), settings.ray)
    return LocalBackend(models_from(settings))


def start_backend(backend: Backend, prog: str = "python app.py") -> Backend:
    """``backend.start()``: the page comes up at once, the models load behind it. A Ray cluster that cannot be reached
    is one line on stderr and exit status 1."""
    try:
        return backend.start()
    except BackendError as e:
        raise SystemExit(f"{prog}: error: {e}") from None


def serve(settings: AppSettings, prog: str = "python app.py") -> None:
    """Serve the demo as ``settings`` (parsed from the flags and ``SD_IMG2IMG_*`` variables before this module and
    its libraries were imported, so a bad flag is answered at once) asks: ``python app.py`` (the Space's entry) and
    ``sd-img2img serve`` (an installed package) both run this."""
    keep_freed_memory()  # before any thread: CPU steps stop page-faulting their activations in (run/cpu_memory.py)
    settings = with_demo_model(settings, prog)
    quiet_libraries()
    download.report(settings.models, lambda line: print(line, file=sys.stderr, flush=True), threading.Event())
    backend = start_backend(make_backend(settings), prog)
    launch(build_demo(backend, settings), settings)


def with_demo_model(settings: AppSettings, prog: str) -> AppSettings:
    """``settings`` with the demo's model where no ``--model`` was given (``models.demo_model``: SD-Turbo where the
    hub answers, else the random model), the line saying why on stderr and on the page."""
    if settings.model_given:
        return settings
    from sd_img2img.models.demo_model import choose_demo_model

    choice = choose_demo_model()
    if choice.note:
        print(f"{prog}: {choice.note}", file=sys.stderr, flush=True)
    return dataclasses.replace(settings, model=choice.model, more_models=(), note=choice.note)
