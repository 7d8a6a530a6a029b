"""Loading a checkpoint once, for img2img and prompt2img alike.

Safetensors only: a pickle file (``.ckpt``, ``.bin``, ``.pt``) can run code when loaded, so it is never
opened. No ``trust_remote_code``, no custom pipelines. The family (``families.detect``: SD 1.x/2.x, SD-Turbo, SDXL,
SDXL-Turbo, the SDXL refiner, LCM, SD3/3.5, FLUX.1, Z-Image, Qwen-Image, Chroma and the edit models FLUX.1 Kontext,
FLUX.2 Klein and Qwen-Image-Edit) is read from ``model_index.json`` and the scheduler, UNet and transformer configs;
the family's diffusers img2img pipeline loads the weights and its prompt2img pipeline shares the components
(``from_pipe``). Before a flow-matching model (SD3, FLUX and the families after them) loads on the cpu,
``cpu_load_warning`` says how much memory it needs and that it will be very slow.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from sd_img2img.config import (
    COMPILE_MODE,
    COMPILE_WARMUP_SIZE,
    COMPILE_WARMUP_STEPS,
    VAE_TILING_ABOVE_PIXELS,
)
from sd_img2img.errors import ModelLoadError, UserInputError
from sd_img2img.imports import diffusers_class
from sd_img2img.models.devices import default_channels_last, device_lock, resolve_device, resolve_dtype
from sd_img2img.models.families import Family, default_family, detect, read_configs
from sd_img2img.models.memory import cpu_load_warning
from sd_img2img.models.options import EngineOptions

PICKLE_SUFFIXES = (".ckpt", ".bin", ".pt", ".pth", ".pkl")
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


def check_checkpoint_folder(path: Path) -> Family:
    """The family of a local checkpoint folder; raises ``ModelLoadError`` saying what is wrong with one that
    is not usable."""
    if path.is_file():
        if path.suffix in PICKLE_SUFFIXES:
            raise ModelLoadError(
                f"'{path}' is a pickle checkpoint; pickle files can run code when loaded and are never opened. "
                "Use a diffusers folder or a single .safetensors file"
            )
        raise ModelLoadError(
            f"'{path}' is a single file but not .safetensors; give a .safetensors checkpoint, a folder in diffusers "
            "layout (with model_index.json) or a Hugging Face hub id"
        )
    index = path / "model_index.json"
    if not index.is_file():
        raise ModelLoadError(f"'{path}' has no model_index.json, so it is not a diffusers checkpoint folder")
    try:
        meta = json.loads(index.read_text())
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"'{index}' cannot be read as JSON: {e}") from None
    configs = read_configs(path)
    family = detect(meta, *(configs[1:] if configs else (None, None)), where=f"'{path}'")
    for part in family.weights:
        folder = path / part
        if not folder.is_dir():
            raise ModelLoadError(f"'{path}' has no {part}/ folder; the checkpoint is incomplete")
        files = [f.name for f in folder.iterdir()]
        if not any(f.endswith(".safetensors") for f in files):
            pickles = [f for f in files if f.endswith(PICKLE_SUFFIXES)]
            if pickles:
                raise ModelLoadError(
                    f"'{folder}' has only pickle weights ({', '.join(pickles)}); they can run code when loaded and "
                    "are never opened. Convert the checkpoint to .safetensors"
                )
            raise ModelLoadError(f"'{folder}' has no .safetensors weights")
    return family


def model_family(model: str) -> Family:
    """The family of a hub id from its JSON files (the cache, or the hub when online); SD's when they cannot be
    read (loading then says why the model cannot be had)."""
    configs = read_configs(model)
    return detect(*configs, where=f"'{model}'") if configs else default_family()


@dataclass
class LoadedModel:
    """A checkpoint loaded once: the img2img pipeline and a prompt2img pipeline sharing its components."""

    model: str
    img2img: Any
    txt2img: Any  # None where the family cannot start from pure noise (the SDXL refiner)
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
    family: Family = field(default_factory=default_family)
    warnings: list[str] = field(default_factory=list)  # said at load (e.g. a flow-matching model on the cpu)
    inpaint: Any = None  # the family's inpaint pipeline sharing these components, once a run asked for one

    @property
    def denoiser(self):
        """The UNet, or the transformer of SD3/FLUX."""
        return getattr(self.img2img, self.family.denoiser)

    @property
    def vae(self):
        return self.img2img.vae

    @property
    def tokenizer(self):
        """The first tokenizer the pipeline has (the SDXL refiner has only ``tokenizer_2``)."""
        for name in ("tokenizer", "tokenizer_2"):
            tokenizer = getattr(self.img2img, name, None)
            if tokenizer is not None:
                return tokenizer
        return None

    @property
    def prompt_tokenizer(self) -> tuple[Any, int | None]:
        """The tokenizer whose limit cuts prompts and that limit in tokens (None: its own 77 less start/end):
        CLIP's for SD/SDXL/LCM, T5's (``max_sequence_length`` less its end token) for SD3/FLUX."""
        family = self.family
        if family.prompt_tokenizer is None:
            return self.tokenizer, None
        limit = family.max_sequence_length - 1 if family.max_sequence_length else None
        return getattr(self.img2img, family.prompt_tokenizer, None), limit

    @property
    def execution_device(self) -> torch.device:
        return self.img2img._execution_device


def load_model(
    model: str, options: EngineOptions | None = None, *, channels_last: bool | None = None, **option_fields
) -> LoadedModel:
    """Load a checkpoint by hub id, local folder or single file, for img2img and prompt2img alike.

    Args:
        model: a Hugging Face hub id (``owner/name``), a local folder in diffusers layout, or a single-file
            ``.safetensors`` checkpoint in the original layout (SD 1.x/2.x, SDXL; ``single_file``).
        options: device, dtype, offload, safety checker, compile, single-file config, VAE and tiny autoencoder
            (``EngineOptions``; its LoRAs are the engine's to load). Without it, ``option_fields`` make one.
        channels_last: UNet and VAE in channels_last memory format; ``None`` → ``default_channels_last``: on
            cuda, and on the cpu in bfloat16 (float32 on the cpu stays as diffusers runs it, pixel for pixel).

    ``vae="tiny"``: the tiny autoencoder (``taesd``, else the family's; diffusers' ``AutoencoderTiny``) encodes the
    init image and decodes every output in place of the full VAE, as diffusers' pipelines accept
    (``from_pretrained(..., vae=AutoencoderTiny)``); the full VAE is then not loaded. ``compile``: the UNet goes
    through ``torch.compile`` (``config.COMPILE_MODE``) and is warmed up here, so no request pays for compiling.
    """
    options = options or EngineOptions(**option_fields)
    dev = resolve_device(options.device)
    dtype = resolve_dtype(options.dtype, dev)
    if options.offload != "none" and dev == "cpu":
        raise UserInputError(
            f"offload {options.offload!r} moves models onto a GPU, and the device is cpu; use offload 'none'"
        )
    if dev == "cpu" and dtype == torch.float16:
        raise UserInputError("float16 is not supported on cpu; use --dtype float32 or bfloat16")
    source, family = find_checkpoint(model, options.config)
    warnings = []
    if dev == "cpu" and family.flow_matching:
        rest = options.config if source.kind == "single_file" and family.denoiser == "transformer" else None
        warnings.append(cpu_load_warning(source.path, family, dtype, rest))
        logging.getLogger("sd_img2img").warning(warnings[-1])
    img2img, txt2img = load_pipelines(model, source, family, options, dtype)
    denoiser, channels_last = place(img2img, family, options.offload, dev, dtype, channels_last)
    loaded = LoadedModel(
        model=model,
        img2img=img2img,
        txt2img=txt2img,
        device=dev,
        dtype=dtype,
        offload=options.offload,
        has_safety_checker=getattr(img2img, "safety_checker", None) is not None,
        lock=device_lock(dev),
        channels_last=channels_last,
        attention=attention_processors(denoiser),
        family=family,
        warnings=warnings,
        vae_kind=options.vae,
        taesd=(options.taesd or family.taesd) if options.vae == "tiny" else "",
    )
    if options.compile:
        compile_unet(loaded)
    return loaded


@dataclass(frozen=True)
class CheckpointSource:
    """Where a checkpoint's weights come from."""

    path: str  # the folder, the single file, or the hub id
    kind: str  # "folder", "single_file" or "hub"


def find_checkpoint(model: str, config: str | None = None) -> tuple[CheckpointSource, Family]:
    """Where ``model`` is and what family it is, from its JSON files or its header (no weights read); a
    ``ModelLoadError`` saying what is wrong with one that cannot be used."""
    from sd_img2img.models import single_file

    path = Path(model).expanduser()
    if single_file.is_single_file(path):
        return CheckpointSource(str(path), "single_file"), single_file.family_of(path, config)
    if path.exists():
        return CheckpointSource(str(path), "folder"), check_checkpoint_folder(path)
    if model.endswith((".safetensors",) + PICKLE_SUFFIXES):
        raise ModelLoadError(f"checkpoint file '{model}' does not exist")
    if model.startswith((".", "/", "~")) or not HUB_ID.match(model):
        raise ModelLoadError(f"model '{model}' is neither an existing folder nor a Hugging Face hub id (owner/name)")
    return CheckpointSource(model, "hub"), model_family(model)


def load_pipelines(model: str, source: CheckpointSource, family: Family, options: EngineOptions, dtype: torch.dtype):
    """The family's img2img pipeline with the weights, and its prompt2img pipeline sharing the components (None for
    a family that cannot start from pure noise)."""
    from sd_img2img.models import processors, single_file

    kwargs: dict[str, Any] = dict(torch_dtype=dtype, use_safetensors=True)
    if not options.safety_checker and family.safety_checker:
        kwargs.update(safety_checker=None, requires_safety_checker=False)
    if source.kind == "single_file" and family.safety_checker:
        kwargs.update(requires_safety_checker=False)  # a single file carries no safety checker
    if options.vae == "tiny":
        if family.taesd is None:  # Qwen-Image's video VAE, FLUX.2's batch-normalized one: no AutoencoderTiny stands in
            raise ModelLoadError(
                f"--vae tiny: no tiny autoencoder in diffusers' format stands in for {family.label}'s VAE; use --vae full"
            )
        kwargs["vae"] = load_taesd(options.taesd or family.taesd, dtype, purpose="--vae tiny", hint="use --vae full")
    try:
        if family.vision_processor and source.kind != "single_file" and not processors.has_torchvision():
            kwargs["processor"] = processors.image_only_processor(source.path)
        if source.kind == "single_file":
            img2img = single_file.load_pipeline(source.path, family, options.config, **kwargs)
        else:
            if source.kind == "hub":  # a download says its progress (download.progress_of) instead of a bare wait
                from sd_img2img.models.download import fetch

                fetch(source.path)
            img2img = diffusers_class(family.img2img).from_pretrained(source.path, **kwargs)
    except (OSError, ValueError) as e:
        raise load_error(model, source, e) from e
    except ImportError as e:  # a component whose library needs a package that is not installed
        missing = str(e).strip().split(". ")[0] or type(e).__name__
        raise ModelLoadError(f"could not load model '{model}': {missing}; install it") from e
    img2img.set_progress_bar_config(disable=True)
    if family.txt2img is None:
        return img2img, None
    # from_pipe casts the components it shares to its own dtype argument, float32 when none is given: without
    # dtype= every model ran float32 whatever --dtype said. It also leaves out a component whose class differs
    # from its annotation (AutoencoderTiny): hand that over.
    txt2img = diffusers_class(family.txt2img).from_pipe(
        img2img, dtype=dtype, **({"vae": img2img.vae} if options.vae == "tiny" else {})
    )
    txt2img.set_progress_bar_config(disable=True)
    return img2img, txt2img


def load_error(model: str, source: CheckpointSource, e: Exception) -> ModelLoadError:
    """What a failed ``from_pretrained`` of ``model`` says, in one line, with what to try instead."""
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if source.kind != "hub":
        return ModelLoadError(f"could not load model '{model}' from the folder: {first}")
    return ModelLoadError(
        f"could not load model '{model}' from the Hugging Face hub (or the local cache): {first}; without "
        "network access, give a local diffusers folder, or try the offline demo with --model random (random "
        "weights: noise pictures, every step and control works)"
    )


def place(img2img, family: Family, offload: str, device: str, dtype: torch.dtype, channels_last: bool | None):
    """Move the pipeline to ``device`` (or let accelerate offload it); channels_last where it helps. Returns the
    denoiser and whether channels_last is on."""
    if offload == "model":
        img2img.enable_model_cpu_offload(device=device)
    elif offload == "sequential":
        img2img.enable_sequential_cpu_offload(device=device)
    else:
        img2img.to(device)
    if channels_last is None:
        channels_last = default_channels_last(device, dtype)
    channels_last = channels_last and family.denoiser == "unet"
    denoiser = getattr(img2img, family.denoiser)
    if channels_last:
        denoiser.to(memory_format=torch.channels_last)
        img2img.vae.to(memory_format=torch.channels_last)
    return denoiser, channels_last


def load_taesd(taesd: str, dtype: torch.dtype, purpose: str, hint: str):
    """A TAESD (diffusers ``AutoencoderTiny``) from a hub id or folder; ``ModelLoadError`` saying ``hint`` if not."""
    from diffusers import AutoencoderTiny

    try:
        return AutoencoderTiny.from_pretrained(taesd, torch_dtype=dtype, use_safetensors=True).eval()
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelLoadError(f"could not load the TAESD '{taesd}' for {purpose}: {first}; {hint}") from e


def attention_processors(unet) -> str:
    """The names of the attention processor classes the UNet uses (``AttnProcessor2_0`` is PyTorch's SDPA); a
    denoiser without ``attn_processors`` (Z-Image's) by its attention modules' own ``processor``."""
    found = getattr(unet, "attn_processors", None)
    if found is None:
        found = {name: m.processor for name, m in unet.named_modules() if getattr(m, "processor", None) is not None}
    return ",".join(sorted({type(p).__name__ for p in found.values()}))


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
    name = loaded.family.denoiser
    unet = getattr(loaded.img2img, name)
    if hasattr(unet, "fuse_qkv_projections"):
        unet.fuse_qkv_projections()
    setattr(loaded.img2img, name, torch.compile(unet, mode=mode, fullgraph=False))
    if loaded.txt2img is not None:
        setattr(loaded.txt2img, name, getattr(loaded.img2img, name))  # prompt2img shares the components
    size = COMPILE_WARMUP_SIZE
    with loaded.lock, torch.inference_mode():
        for _ in range(2):  # the second run confirms no recompilation is left
            loaded.img2img(
                prompt="",
                image=Image.new("RGB", (size, size), (128, 128, 128)),
                **({"strength": 1.0} if loaded.family.takes_strength else {}),
                num_inference_steps=COMPILE_WARMUP_STEPS,
                generator=torch.Generator("cpu").manual_seed(0),
                output_type="latent",
            )
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
