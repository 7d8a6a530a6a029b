"""Defaults and limits, in one place: the engine's validation, the CLI and the UI all read them from here."""

from __future__ import annotations

DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"  # the library's and the CLI's
DEMO_MODEL = "stabilityai/sd-turbo"  # the demo's with no --model, where the hub answers (else "random": offline)
HUB_PROBE_SECONDS = 5.0  # how long the demo waits for the hub to answer before serving the random model instead
# the offline demo's model names → the tiny architecture behind each (built by sd_img2img.testing.tiny on first use)
RANDOM_MODELS = {
    "random": "tiny",
    "random-sdxl": "tiny-sdxl",
    "random-turbo": "tiny-turbo",
    "random-sdxl-turbo": "tiny-sdxl-turbo",
    "random-sdxl-refiner": "tiny-sdxl-refiner",
    "random-lcm": "tiny-lcm",
    "random-sd3": "tiny-sd3",
    "random-flux": "tiny-flux",
    "random-flux-schnell": "tiny-flux-schnell",
    "random-zimage": "tiny-zimage",
    "random-qwenimage": "tiny-qwenimage",
    "random-chroma": "tiny-chroma",
    "random-kontext": "tiny-kontext",
    "random-flux2-klein": "tiny-flux2-klein",
    "random-qwen-edit": "tiny-qwen-edit",
    "random-inpaint": "tiny-inpaint",
    "random-flux-fill": "tiny-flux-fill",
}
DEFAULT_TAESD = "madebyollin/taesd"

DEFAULT_STRENGTH = 0.75
DEFAULT_STEPS = 30
DEFAULT_GUIDANCE = 7.5
DEFAULT_SAMPLER = "k_lms"
DEFAULT_RESIZE_MODE = "resize"
DEFAULT_PREVIEW = "approx"
DEFAULT_VAE = "full"  # the autoencoder that encodes the init image and decodes the output (docs/performance.md)
DEFAULT_TXT2IMG_SIZE = 512

RESIZE_MODES = ("resize", "crop", "fill")
PREVIEWS = ("approx", "taesd", "full")
VAES = ("full", "tiny")  # the checkpoint's own VAE, or the family's TAESD (AutoencoderTiny) in its place
DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "float16", "bfloat16", "float32")
OFFLOADS = ("none", "model", "sequential")
VIEWS = ("latents", "x0")  # the noisy latents as the UNet sees them / the model's current prediction of the final image

MAX_STEPS = 150  # steps that actually run
MAX_SCHEDULE_STEPS = 3000  # schedule length "real steps" may ask for at low strength
MAX_SIDE = 1024  # longest side of the default size taken from the init image
MAX_DIMENSION = 2048  # width/height a user may ask for
MIN_DIMENSION = 64
MAX_GUIDANCE = 30.0
MAX_SEED = 2**64  # seeds are in [0, 2**64), as ComfyUI's (torch's CPU generator draws from a seed's low 32 bits)
RANDOM_SEED_BELOW = 2**32  # a new random seed is below this: as AUTOMATIC1111's, short, and exact in any JSON reader
MAX_PROMPT_CHARS = 4000


# Each numeric setting's range is declared with the setting itself (plan/request.py: RANGES).
STRENGTH_STEP = 0.01  # the page's strength slider: its smallest value and its step
GUIDANCE_STEP = 0.5  # the page's guidance slider step
RANDOM_SEED = -1  # the page's seed field: -1 (or empty) asks for a new random seed

# Init images: checked from the header, before any pixel is decoded.
MAX_INPUT_SIDE = 12000
MAX_INPUT_PIXELS = 50_000_000
MAX_INPUT_BYTES = 30 * 1024 * 1024
# Settings hidden in an image's pixels (AUTOMATIC1111's stealth PNG info) are looked for in images up to this size.
STEALTH_MAX_PIXELS = 4096 * 4096

STRIP_MAX_FRAME_HEIGHT = 256  # the steps strip scales larger step images down to this height

# GPU performance (none of these change what runs on the cpu).
VAE_TILING_ABOVE_PIXELS = 1024 * 1024  # on a GPU, width×height above this decodes/encodes the VAE in tiles (and slices)
COMPILE_MODE = "max-autotune-no-cudagraphs"  # torch.compile mode of the UNet with --compile (see docs/performance.md)
COMPILE_WARMUP_SIZE = 512  # --compile warms the UNet up at load with a run of this size, so no visitor pays for it
COMPILE_WARMUP_STEPS = 2

# The web demo (app.py).
QUEUE_MAX_SIZE = 16  # requests waiting in the one queue every model event shares; more are turned away
MAX_UPLOAD_SIZE = "30mb"  # gradio's launch(max_file_size=...), in line with MAX_INPUT_BYTES
COMPARE_STRENGTHS = (0.4, 0.7)  # the explain tab's default columns when comparing strengths
COMPARE_STEP_COUNTS = (29, 30)  # … and when comparing step counts
COMPARE_STEPS = 10  # steps of each column when comparing strengths
COMPARE_STRENGTH = 0.4  # strength of each column when comparing step counts
COMPARE_MAX_COLUMNS = 6
COMPARE_FRAME_HEIGHT = 96  # height of one step in the explain table's strips
COMPARE_FRAMES_PER_ROW = 6  # … which wrap after this many steps, so every step fits the column
GPU_SECONDS = 120  # ZeroGPU: the GPU time asked for a run before this server has measured one
GPU_SECONDS_MARGIN = 1.5  # ZeroGPU: a run asks for its estimate × this (+ GPU_SECONDS_FLOOR), so a slow one finishes
GPU_SECONDS_FLOOR = 10  # … seconds on top (the model moving to the GPU)
VIEW_GPU_SECONDS = 30  # ZeroGPU: redrawing a finished run's steps in the other view (decoded on first use)
# The longest one request (a run, a grid, a loopback, …) may be estimated to take; 0: no limit. 5 minutes: a visitor
# waits about that long at most, and it still admits one full SD1.5 run at 512² on a 2-vCPU Space (30 steps × 0.75 ≈
# 2–4 min), while a grid of several such is refused with its numbers. Runs take turns, so the limit is about the
# visitor's own wait and the server's share, not about the others' (they go in between).
MAX_REQUEST_SECONDS = 300
MAX_KEPT_RUNS = 64  # the demo keeps the files of at most this many recent runs (output PNG, steps, strip) …
KEEP_RUN_SECONDS = 3600  # … and none older than this; gradio's own cache (uploads) is swept on the same age
CACHE_SWEEP_SECONDS = 600  # how often gradio sweeps its cache

# Several models in one process (sd_img2img.models.ModelSet).
MAX_LOADED_MODELS_CPU = 1  # on the cpu (and mps) at most this many models stay loaded; the least recently used goes
GPU_MEMORY_HEADROOM = 1.25  # on a GPU a model needs its weights × this free (activations, the VAE decode) to load

# A CPU server (a free 2-vCPU Space): a first run of a model that is not few-step should take about a minute.
CPU_PAGE_STEPS = 10  # the page starts such a model at this many steps (few-step models keep their own defaults) …
CPU_PAGE_MAX_SIDE = 512  # … and sizes the init image to at most this side (a visitor can still ask for more)
FEW_STEPS = 8  # a family whose default steps are at most this is few-step (Turbo, LCM, FLUX.1-schnell)
QUEUE_FORGET_SECONDS = 1800  # a queued run nobody started or finished within this long is forgotten by the wait line

# Model workers on Ray Serve (python app.py --backend ray; sd_img2img.serve).
RAY_MAX_REPLICAS = 256  # replicas one model may have (the flags refuse more)
RAY_STATUS_SECONDS = 1.0  # how long the page reuses Serve's status (the model badge asks every second while loading)
RAY_STOP_POLL_SECONDS = 0.01  # how often a run's Stop flag is read while the page waits for a worker's next step
RAY_CONNECT_SECONDS = 5.0  # how long joining a cluster waits for its address to answer before saying it cannot
RAY_HEALTH_CHECK_SECONDS = 2.0  # how often Serve checks a worker is alive (a dead one is replaced once noticed)
RAY_KEPT_REPORTS = 256  # how many finished runs the run board remembers (how each ended, on which worker)

# Seeing more of a run (formats/animation.py, series/grid.py, series/loopback.py).
ANIMATION_FORMATS = ("webp", "gif")  # the steps as an animation: animated WebP (the page's) or GIF, made with Pillow
ANIMATION_MAX_SIDE = 512  # frames are scaled to at most this side
ANIMATION_SECONDS = 2.4  # the frames before the last take about this long together …
ANIMATION_FRAME_MS = (60, 400)  # … each at least and at most this long
ANIMATION_HOLD_MS = 1500  # the last frame (the output) is held this long before the animation loops
ANIMATION_QUALITY = 80  # lossy WebP quality of the frames
GRID_MAX_VALUES = 6  # values on one axis of the strength × steps grid
GRID_MAX_CELLS = 36  # cells of one grid …
GRID_MAX_STEPS = 300  # … and the steps they run in all (by the family's rule), so one grid cannot hold the queue long
GRID_STRENGTHS = (0.4, 0.7)  # the page's default rows …
GRID_STEP_COUNTS = (10, 20)  # … and columns
GRID_THUMB_SIDE = 192  # a grid cell's picture on the page
LOOP_CURVES = ("linear", "aggressive", "lazy")  # loopback's strength curves, as AUTOMATIC1111's scripts/loopback.py
MAX_LOOPS = 32  # loopback runs 1 to this many loops (AUTOMATIC1111: 1–32) …
MAX_LOOPBACK_STEPS = 300  # … and at most this many steps in all
DEFAULT_LOOPS = 3
DEFAULT_FINAL_STRENGTH = 0.3
LOOP_STRENGTH_DIGITS = 4  # each loop's strength is rounded to this many decimals (what runs is what the PNG says)

# Where two runs part ways (series/diverge.py, ui/diverge.py, sd-img2img diverge): the guide's own comparison by default
DIVERGE_PROMPT = "fire"
DIVERGE_SEED = 1592514025
DIVERGE_STRENGTH = 0.7
DIVERGE_SAMPLER = "k_lms"
DIVERGE_SIZE = 384  # width and height
DIVERGE_VARY = "steps"  # the setting the two sides differ in …
DIVERGE_VALUES = (30, 29)  # … and its two values
DIVERGE_PRESET_STRENGTHS = (0.4, 0.7)  # the guide's other comparison: two strengths …
DIVERGE_PRESET_REAL_STEPS = 20  # … each running this many steps (real steps)
DIVERGE_THRESHOLD = 2.0  # two pictures part where their mean absolute difference exceeds this (levels of 0–255 RGB)
DIVERGE_MAP_FULL = 32  # a difference map's brightest colour: pixels this many levels apart (of 255) or more
DIVERGE_THUMB_SIDE = 72  # one step's picture in the page's aligned strips

# Inpainting (plan/request.py declares the mask's settings with these; plan/mask.py settles a mask).
DEFAULT_MASK_BLUR = 4  # pixels of Gaussian blur on the mask's edge (AUTOMATIC1111's default)
MAX_MASK_BLUR = 64
MASKED_CONTENT = ("original", "fill", "latent noise", "latent nothing")  # what the masked region starts from
INPAINT_AREAS = ("whole", "masked")  # the whole picture, or only the masked region (and padding) at full size
DEFAULT_PADDING = 32  # pixels around the masked region in "only masked" (AUTOMATIC1111's default)
MAX_PADDING = 256
MASK_OUTLINE = ((255, 255, 255), (20, 20, 20))  # every step's mask outline: a light ring outside, a dark one inside
MAX_BATCH_COUNT = 8  # Generate makes 1 to this many images in one click, seeds seed, seed + 1, … (series/batch.py)
