"""Loading a Stable Diffusion 1.x / 2.x checkpoint once, for img2img and prompt2img alike.

Safetensors only: a pickle file (``.ckpt``, ``.bin``, ``.pt``) can run code when loaded, so it is never
opened. No ``trust_remote_code``, no custom pipelines. A checkpoint whose ``model_index.json`` names
``StableDiffusionPipeline`` (as the real SD1.5 repository does) loads for img2img; prompt2img shares its
components.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .config import (
    COMPILE_MODE,
    COMPILE_WARMUP_SIZE,
    COMPILE_WARMUP_STEPS,
    DEVICES,
    DEFAULT_TAESD,
    DEFAULT_VAE,
    DTYPES,
    OFFLOADS,
    VAES,
    VAE_TILING_ABOVE_PIXELS,
)
from .errors import ModelLoadError, UserInputError, check_choice

PICKLE_SUFFIXES = (".ckpt", ".bin", ".pt", ".pth", ".pkl")
SD_PIPELINES = ("StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline")
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")

_DEVICE_LOCKS: dict[str, threading.RLock] = {}
_DEVICE_LOCKS_GUARD = threading.Lock()


def device_lock(device: str) -> threading.RLock:
    """One lock per device: runs on the same device take turns, whatever engine they come from.

    Re-entrant, so a step callback may decode a picture (which takes the lock) inside its own run.
    """
    with _DEVICE_LOCKS_GUARD:
        return _DEVICE_LOCKS.setdefault(device, threading.RLock())


def resolve_device(device: str = "auto") -> str:
    """``auto`` → cuda, then mps, then cpu; an explicit device must be present."""
    check_choice("device", device, DEVICES)
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise UserInputError("device 'cuda' was asked for but no CUDA GPU is available; use --device auto or cpu")
    if device == "mps" and not has_mps:
        raise UserInputError("device 'mps' was asked for but Apple's MPS is not available; use --device auto or cpu")
    return device


def resolve_dtype(dtype: str, device: str) -> torch.dtype:
    """``auto`` → float16 on cuda and mps; on the cpu bfloat16 where it computes bf16 natively (AVX-512 BF16,
    AMX, Arm BF16: ``cpu_features.native_bf16``), float32 elsewhere."""
    from .cpu_features import native_bf16

    check_choice("dtype", dtype, DTYPES)
    if dtype == "auto":
        if device in ("cuda", "mps"):
            return torch.float16
        return torch.bfloat16 if native_bf16() else torch.float32
    return getattr(torch, dtype)


def check_checkpoint_folder(path: Path) -> None:
    """Raise ``ModelLoadError`` saying what is wrong with a local folder that is not a usable checkpoint."""
    if path.is_file():
        if path.suffix in PICKLE_SUFFIXES:
            raise ModelLoadError(
                f"'{path}' is a pickle checkpoint; pickle files can run code when loaded and are never opened. "
                "Use a diffusers folder with .safetensors weights")
        raise ModelLoadError(
            f"'{path}' is a single file; give a checkpoint folder in diffusers layout (with model_index.json) "
            "or a Hugging Face hub id")
    index = path / "model_index.json"
    if not index.is_file():
        raise ModelLoadError(f"'{path}' has no model_index.json, so it is not a diffusers checkpoint folder")
    try:
        meta = json.loads(index.read_text())
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"'{index}' cannot be read as JSON: {e}") from None
    cls = meta.get("_class_name")
    if cls not in SD_PIPELINES:
        raise ModelLoadError(
            f"'{path}' holds a {cls}; this program runs Stable Diffusion 1.x/2.x checkpoints ({', '.join(SD_PIPELINES)})")
    for part in ("unet", "vae", "text_encoder"):
        folder = path / part
        if not folder.is_dir():
            raise ModelLoadError(f"'{path}' has no {part}/ folder; the checkpoint is incomplete")
        files = [f.name for f in folder.iterdir()]
        if not any(f.endswith(".safetensors") for f in files):
            pickles = [f for f in files if f.endswith(PICKLE_SUFFIXES)]
            if pickles:
                raise ModelLoadError(
                    f"'{folder}' has only pickle weights ({', '.join(pickles)}); they can run code when loaded and "
                    "are never opened. Convert the checkpoint to .safetensors")
            raise ModelLoadError(f"'{folder}' has no .safetensors weights")


@dataclass
class LoadedModel:
    """A checkpoint loaded once: the img2img pipeline and a prompt2img pipeline sharing its components."""

    model: str
    img2img: Any
    txt2img: Any
    device: str
    dtype: torch.dtype
    offload: str
    has_safety_checker: bool
    lock: threading.RLock = field(repr=False)
    compiled: bool = False  # the UNet went through torch.compile (and was warmed up)
    channels_last: bool = False  # UNet and VAE in channels_last memory format
    attention: str = ""  # the UNet's attention processor(s), e.g. AttnProcessor2_0 (PyTorch SDPA)
    warmup_seconds: float = 0.0  # spent warming the compiled UNet up at load
    vae_kind: str = "full"  # "full": the checkpoint's VAE; "tiny": TAESD encodes and decodes (see load_model)
    taesd: str = ""  # where the tiny VAE came from, when vae_kind is "tiny"

    @property
    def vae(self):
        return self.img2img.vae

    @property
    def tokenizer(self):
        return self.img2img.tokenizer

    @property
    def execution_device(self) -> torch.device:
        return self.img2img._execution_device


def load_model(
    model: str,
    device: str = "auto",
    dtype: str = "auto",
    offload: str = "none",
    safety_checker: bool = True,
    compile: bool = False,
    channels_last: bool | None = None,
    vae: str = DEFAULT_VAE,
    taesd: str = DEFAULT_TAESD,
) -> LoadedModel:
    """Load a checkpoint by hub id or local folder.

    Args:
        model: a Hugging Face hub id (``owner/name``) or a local folder in diffusers layout.
        device: ``auto``, ``cpu``, ``cuda`` or ``mps``.
        dtype: ``auto`` (float16 on GPUs; on the cpu bfloat16 where it is native, else float32), ``float16``,
            ``bfloat16`` or ``float32``.
        offload: ``none``; ``model`` (accelerate moves each whole model to the GPU while it runs);
            ``sequential`` (layer by layer: least memory, slowest).
        safety_checker: keep the checkpoint's safety checker if it has one.
        compile: ``torch.compile`` the UNet (mode ``config.COMPILE_MODE``) and warm it up here with a short
            dummy run at ``config.COMPILE_WARMUP_SIZE``, so the first request does not pay for compiling.
        channels_last: UNet and VAE in channels_last memory format; ``None`` → ``default_channels_last``: on
            cuda, and on the cpu in bfloat16 (float32 on the cpu stays as diffusers runs it, pixel for pixel).
        vae: ``full`` (the checkpoint's own VAE) or ``tiny``: the TAESD at ``taesd`` (diffusers'
            ``AutoencoderTiny``) encodes the init image and decodes every output in its place, as diffusers'
            pipelines accept (``from_pretrained(..., vae=AutoencoderTiny)``); the full VAE is then not loaded.
        taesd: hub id or folder of the TAESD used by ``vae="tiny"``.
    """
    from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionPipeline

    check_choice("offload", offload, OFFLOADS)
    check_choice("vae", vae, VAES)
    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    if offload != "none" and dev == "cpu":
        raise UserInputError(f"offload {offload!r} moves models onto a GPU, and the device is cpu; use offload 'none'")
    if dev == "cpu" and torch_dtype == torch.float16:
        raise UserInputError("float16 is not supported on cpu; use --dtype float32 or bfloat16")

    path = Path(model).expanduser()
    if path.exists():
        check_checkpoint_folder(path)
        source = str(path)
    elif model.startswith((".", "/", "~")) or model.endswith(PICKLE_SUFFIXES + (".safetensors",)) or not HUB_ID.match(model):
        raise ModelLoadError(f"model '{model}' is neither an existing folder nor a Hugging Face hub id (owner/name)")
    else:
        source = model

    kwargs: dict[str, Any] = dict(torch_dtype=torch_dtype, use_safetensors=True)
    if not safety_checker:
        kwargs.update(safety_checker=None, requires_safety_checker=False)
    if vae == "tiny":
        kwargs["vae"] = load_taesd(taesd, torch_dtype, purpose="--vae tiny", hint="use --vae full")
    try:
        img2img = StableDiffusionImg2ImgPipeline.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        where = "the folder" if source != model else "the Hugging Face hub (or the local cache)"
        raise ModelLoadError(f"could not load model '{model}' from {where}: {first}") from e

    img2img.set_progress_bar_config(disable=True)
    has_checker = img2img.safety_checker is not None
    # from_pipe casts the components it shares to its own dtype argument, float32 when none is given: without
    # dtype= every model ran float32 whatever --dtype said. It also leaves out a component whose class differs
    # from its annotation (AutoencoderTiny): hand that over.
    txt2img = StableDiffusionPipeline.from_pipe(img2img, dtype=torch_dtype,
                                                **({"vae": img2img.vae} if vae == "tiny" else {}))
    txt2img.set_progress_bar_config(disable=True)
    if offload == "model":
        img2img.enable_model_cpu_offload(device=dev)
    elif offload == "sequential":
        img2img.enable_sequential_cpu_offload(device=dev)
    else:
        img2img.to(dev)
    if channels_last is None:
        channels_last = default_channels_last(dev, torch_dtype)
    if channels_last:
        img2img.unet.to(memory_format=torch.channels_last)
        img2img.vae.to(memory_format=torch.channels_last)
    loaded = LoadedModel(model=model, img2img=img2img, txt2img=txt2img, device=dev, dtype=torch_dtype,
                         offload=offload, has_safety_checker=has_checker, lock=device_lock(dev),
                         channels_last=channels_last, attention=attention_processors(img2img.unet),
                         vae_kind=vae, taesd=taesd if vae == "tiny" else "")
    if compile:
        compile_unet(loaded)
    return loaded


def default_channels_last(device: str, dtype: torch.dtype) -> bool:
    """channels_last where it measurably helps: on cuda, and on the cpu in bfloat16, where oneDNN's bf16
    convolutions work in NHWC (a bf16 UNet step at 512×512: 3.0 s channels_last vs 6.5 s contiguous here,
    docs/performance.md "CPU: what helps"). The cpu's float32 path is left exactly as diffusers runs it."""
    return device == "cuda" or (device == "cpu" and dtype == torch.bfloat16)


def load_taesd(taesd: str, dtype: torch.dtype, purpose: str, hint: str):
    """A TAESD (diffusers ``AutoencoderTiny``) from a hub id or folder; ``ModelLoadError`` saying ``hint`` if not."""
    from diffusers import AutoencoderTiny

    try:
        return AutoencoderTiny.from_pretrained(taesd, torch_dtype=dtype, use_safetensors=True).eval()
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelLoadError(f"could not load the TAESD '{taesd}' for {purpose}: {first}; {hint}") from e


def attention_processors(unet) -> str:
    """The names of the attention processor classes the UNet uses (``AttnProcessor2_0`` is PyTorch's SDPA)."""
    return ",".join(sorted({type(p).__name__ for p in unet.attn_processors.values()}))


def compile_unet(loaded: LoadedModel, mode: str = COMPILE_MODE) -> None:
    """``torch.compile`` the UNet of ``loaded`` in place and warm it up with a short dummy run.

    ``max-autotune-no-cudagraphs`` by default: CUDA graphs (``reduce-overhead``) keep static output buffers
    per shape and are recorded per thread, while the demo serves each request from a worker thread and at
    varying sizes; the autotuned kernels are where the speed comes from. The QKV projections are fused and
    1×1 convolutions run as matmuls, as diffusers' own torch.compile guide does.
    """
    import time

    from PIL import Image

    t = time.perf_counter()
    if loaded.device == "cuda":
        import torch._inductor.config as inductor

        inductor.conv_1x1_as_mm = True
        inductor.coordinate_descent_tuning = True
        inductor.epilogue_fusion = False
        inductor.coordinate_descent_check_all_directions = True
    unet = loaded.img2img.unet
    unet.fuse_qkv_projections()
    loaded.img2img.unet = torch.compile(unet, mode=mode, fullgraph=False)
    loaded.txt2img.unet = loaded.img2img.unet  # prompt2img shares the components
    size = COMPILE_WARMUP_SIZE
    with loaded.lock, torch.inference_mode():
        for _ in range(2):  # the second run confirms no recompilation is left
            loaded.img2img(prompt="", image=Image.new("RGB", (size, size), (128, 128, 128)), strength=1.0,
                           num_inference_steps=COMPILE_WARMUP_STEPS, generator=torch.Generator("cpu").manual_seed(0),
                           output_type="latent")
    loaded.compiled = True
    loaded.attention = attention_processors(unet)
    loaded.warmup_seconds = time.perf_counter() - t


def configure_vae(loaded: LoadedModel, width: int, height: int) -> bool:
    """Turn VAE tiling and slicing on for a run above ``config.VAE_TILING_ABOVE_PIXELS`` on a GPU, off otherwise.

    Called under the device's lock before each run (the VAE is shared by all requests). On the cpu nothing
    changes. Returns whether tiling is on.
    """
    vae = loaded.vae
    tile = loaded.device != "cpu" and width * height > VAE_TILING_ABOVE_PIXELS
    if tile != bool(getattr(vae, "use_tiling", False)):
        if tile:
            vae.enable_tiling()
            vae.enable_slicing()
        else:
            vae.disable_tiling()
            vae.disable_slicing()
    return tile
