"""Defaults and limits, in one place: the engine's validation, the CLI and the UI all read them from here."""

from __future__ import annotations

DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
DEFAULT_TAESD = "madebyollin/taesd"

DEFAULT_PROMPT = ""
DEFAULT_STRENGTH = 0.75
DEFAULT_STEPS = 30
DEFAULT_GUIDANCE = 7.5
DEFAULT_SAMPLER = "k_lms"
DEFAULT_RESIZE_MODE = "resize"
DEFAULT_PREVIEW = "approx"
DEFAULT_TXT2IMG_SIZE = 512

RESIZE_MODES = ("resize", "crop", "fill")
PREVIEWS = ("approx", "taesd", "full")
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
MAX_SEED = 2**32  # seeds are in [0, 2**32)
MAX_PROMPT_CHARS = 4000

# Init images: checked from the header, before any pixel is decoded.
MAX_INPUT_SIDE = 12000
MAX_INPUT_PIXELS = 50_000_000
MAX_INPUT_BYTES = 30 * 1024 * 1024

STRIP_MAX_FRAME_HEIGHT = 256  # the steps strip scales larger step images down to this height
