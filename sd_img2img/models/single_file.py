"""Single-file checkpoints: one ``.safetensors`` in the original (CompVis / Stability) layout, as AUTOMATIC1111,
ComfyUI and InvokeAI keep them, loaded offline through diffusers' ``from_single_file``.

What the file holds is read from its safetensors header alone (``safetensors.safe_open``: names, shapes and
dtypes; the file is memory-mapped and no weight is read, pickle never opened) with these key checks:

- ``conditioner.embedders.1.*`` (CLIP ViT-L + OpenCLIP bigG) → SDXL base;
- ``conditioner.embedders.0.model.*`` only (OpenCLIP bigG) → the SDXL refiner;
- ``cond_stage_model.model.*`` (OpenCLIP ViT-H) → SD 2.x;
- ``cond_stage_model.transformer.*`` (CLIP ViT-L) → SD 1.x;

each with the UNet under ``model.diffusion_model.*``. diffusers' own ``infer_diffusers_model_type`` is asked
too (on shape-only meta tensors), to refuse what this program does not run (inpainting's 9-channel UNet,
Playground, upscalers, ControlNets …). Anything else is refused naming the first top-level key prefixes found. A Z-Image transformer on its own, as ComfyUI
keeps it (``layers.0.adaLN_modulation.0.weight``, with or without ``model.diffusion_model.``; diffusers calls it
``z-image-turbo``), loads through ``ZImageTransformer2DModel.from_single_file`` with the rest of the pipeline (Qwen3 text
encoder, VAE, scheduler) from the Z-Image diffusers folder ``--config`` names.
A file that lacks a component's weights (no VAE, CLIP keys without the ``text_model.`` part diffusers reads) is
refused naming the component and what stands in for it: diffusers takes every weight from the file, ``--config``
gives only JSON files and tokenizers.

The small JSON files ``from_single_file`` needs (``model_index.json``, scheduler, UNet, VAE and text-encoder
configs, tokenizer settings) ship in ``sd_img2img/configs/<name>/``, laid out as the hub repositories
(``sd15``: stable-diffusion-v1-5; ``sd21``: stabilityai/stable-diffusion-2-1, 768 px v-prediction;
``sdxl-base``, ``sdxl-refiner``: stabilityai's SDXL 1.0 repositories), without the safety checker a single
file does not carry. CLIP's BPE vocabulary ships once, in ``configs/clip-bpe/`` (see its README), and every
tokenizer is built from it: SD 1.x and SDXL's first tokenizer pad with ``<|endoftext|>``, OpenCLIP's (SD 2.x,
SDXL's ``tokenizer_2``) with ``!``. ``config=DIR`` (``--config``) takes a local diffusers folder instead
(its own tokenizers when it has them): for a file the shipped configs do not describe (an SD 2.x 512 px
epsilon model, Turbo, a non-standard size), and for the tests' tiny checkpoints.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sd_img2img.errors import ModelLoadError
from sd_img2img.imports import diffusers_class

CONFIG_ROOT = Path(__file__).parent / "configs"
CLIP_BPE = CONFIG_ROOT / "clip-bpe"
SINGLE_FILE_SUFFIX = ".safetensors"

# what the tensors say → the shipped config folder and the family it is
LAYOUTS = {
    "sd1": ("sd15", "SD 1.x (CLIP ViT-L text encoder)"),
    "sd2": ("sd21", "SD 2.x (OpenCLIP ViT-H text encoder)"),
    "sdxl": ("sdxl-base", "SDXL base (CLIP ViT-L + OpenCLIP bigG)"),
    "sdxl-refiner": ("sdxl-refiner", "SDXL refiner (OpenCLIP bigG only)"),
    "zimage": ("", "Z-Image transformer (no text encoder or VAE: those come from --config)"),
}
# diffusers' model types (infer_diffusers_model_type) that are SD/SDXL checkpoints this program runs
_RUNS = {"v1", "v2", "xl_base", "xl_refiner"}
# families a --config folder may name for each layout
_FAMILIES = {
    "sd1": ("sd", "sd-turbo", "lcm"),
    "sd2": ("sd", "sd-turbo", "lcm"),
    "sdxl": ("sdxl", "sdxl-turbo"),
    "sdxl-refiner": ("sdxl-refiner",),
    "zimage": ("zimage",),
}
# diffusers' model type of a transformer-only file → the layout kind
_TRANSFORMER_ONLY = {"z-image-turbo": "zimage"}
# where the original layout keeps each pipeline component (by layout where they differ), for messages
_COMPONENT_KEYS = {
    "unet": ("the UNet", "model.diffusion_model.*"),
    "vae": ("the VAE", "first_stage_model.*"),
    "text_encoder": ("the text encoder", "cond_stage_model.*"),
    ("sd1", "text_encoder"): ("the text encoder", "cond_stage_model.transformer.text_model.*"),
    ("sd2", "text_encoder"): ("the text encoder", "cond_stage_model.model.*"),
    ("sdxl", "text_encoder"): ("the first text encoder", "conditioner.embedders.0.transformer.text_model.*"),
    ("sdxl", "text_encoder_2"): ("the second text encoder", "conditioner.embedders.1.model.*"),
    ("sdxl-refiner", "text_encoder_2"): ("the text encoder", "conditioner.embedders.0.model.*"),
}
# CLIP ViT-L's keys in the original layout; diffusers reads them only with transformers' ``text_model.`` part
_CLIP_PREFIXES = {"sd1": "cond_stage_model.transformer.", "sdxl": "conditioner.embedders.0.transformer."}


def is_single_file(model: str | Path) -> bool:
    """Whether ``model`` names an existing ``.safetensors`` file."""
    path = Path(str(model)).expanduser()
    return path.suffix == SINGLE_FILE_SUFFIX and path.is_file()


def read_header(path: str | Path) -> dict[str, dict[str, Any]]:
    """The tensor entries (``dtype``, ``shape``) of a ``.safetensors`` file, from its header only.

    ``safetensors.safe_open`` memory-maps the file and parses the header; no tensor is read. Raises
    ``ModelLoadError`` for a file that is not a readable safetensors file.
    """
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            entries = {}
            for name in f.keys():
                tensor = f.get_slice(name)
                entries[name] = {"dtype": tensor.get_dtype(), "shape": tensor.get_shape()}
    except (OSError, SafetensorError) as e:
        raise ModelLoadError(f"'{path}' cannot be read as a .safetensors file: {e}") from None
    return entries


def _prefixes(keys, depth: int = 2, count: int = 6) -> list[str]:
    seen: list[str] = []
    for key in keys:
        prefix = ".".join(key.split(".")[:depth])
        if prefix not in seen:
            seen.append(prefix)
    return seen[:count]


def diffusers_model_type(header: dict[str, dict[str, Any]]) -> str | None:
    """diffusers' ``infer_diffusers_model_type`` on shape-only (meta) tensors; None where it cannot tell."""
    import torch
    from diffusers.loaders.single_file_utils import infer_diffusers_model_type

    meta = {k: torch.empty(v.get("shape", []), device="meta") for k, v in header.items() if isinstance(v, dict)}
    try:
        return infer_diffusers_model_type(meta)
    except Exception:  # a layout diffusers does not know either
        return None


@dataclass(frozen=True)
class Layout:
    """What a single file holds."""

    kind: str  # sd1, sd2, sdxl, sdxl-refiner
    config: str  # the shipped config folder for it
    label: str  # for people
    diffusers_type: str | None  # diffusers' infer_diffusers_model_type, for messages


def detect_layout(path: str | Path) -> Layout:
    """The layout of the single-file checkpoint ``path`` (key checks on the header; see the module's doc).

    Raises ``ModelLoadError`` naming what was found for a file that is not an SD 1.x/2.x or SDXL checkpoint.
    """
    header = read_header(path)
    keys = list(header)
    has = lambda prefix: any(k.startswith(prefix) for k in keys)  # noqa: E731
    unet = has("model.diffusion_model.")
    kind = None
    if unet and has("conditioner.embedders.1."):
        kind = "sdxl"
    elif unet and has("conditioner.embedders.0.model."):
        kind = "sdxl-refiner"
    elif unet and has("cond_stage_model.model."):
        kind = "sd2"
    elif unet and has("cond_stage_model.transformer."):
        kind = "sd1"
    dtype = diffusers_model_type(header)
    if kind is None and dtype in _TRANSFORMER_ONLY:
        kind = _TRANSFORMER_ONLY[dtype]
        return Layout(kind=kind, config=LAYOUTS[kind][0], label=LAYOUTS[kind][1], diffusers_type=dtype)
    found = ", ".join(_prefixes(keys)) or "no tensors"
    if kind is None and unet and not has("cond_stage_model.") and not has("conditioner.embedders."):
        vae = "" if has("first_stage_model.") else " nor VAE (first_stage_model.*)"
        raise ModelLoadError(
            f"'{path}' holds a UNet (model.diffusion_model.*) but no text encoder (cond_stage_model.* or "
            f"conditioner.embedders.*){vae}: give a complete checkpoint, or the model's diffusers folder with "
            "--model DIR (a UNet-only file does not load on its own)"
        )
    if kind is None:
        what = f" (diffusers reads it as {dtype!r})" if dtype and dtype not in _RUNS else ""
        raise ModelLoadError(
            f"'{path}' is not a single-file SD 1.x/2.x or SDXL checkpoint{what}: found keys {found} …; expected "
            "model.diffusion_model.* with cond_stage_model.* (SD) or conditioner.embedders.* (SDXL). A LoRA goes "
            "to --lora, a diffusers folder to --model DIR"
        )
    if dtype is not None and dtype not in _RUNS:
        raise ModelLoadError(
            f"diffusers reads it as an {dtype!r} checkpoint: '{path}' is not one this program runs "
            "(SD 1.x/2.x and SDXL base/refiner single files)"
        )
    config, label = LAYOUTS[kind]
    return Layout(kind=kind, config=config, label=label, diffusers_type=dtype)


def shipped_config(name: str) -> Path:
    """The shipped config folder ``name`` (``sd15``, ``sd21``, ``sdxl-base``, ``sdxl-refiner``)."""
    folder = CONFIG_ROOT / name
    if not (folder / "model_index.json").is_file():
        raise ModelLoadError(f"the package's config folder '{folder}' is missing; reinstall sd-img2img")
    return folder


def clip_tokenizer(folder: str | Path):
    """A CLIP tokenizer from the shipped BPE vocabulary with ``folder``'s ``tokenizer_config.json`` settings
    (its pad token, 77 tokens)."""
    from transformers import CLIPTokenizer

    settings = {}
    cfg = Path(folder) / "tokenizer_config.json"
    if cfg.is_file():
        raw = json.loads(cfg.read_text())
        for key in ("bos_token", "eos_token", "pad_token", "unk_token", "model_max_length"):
            value = raw.get(key)
            if isinstance(value, dict):
                value = value.get("content")
            if value is not None:
                settings[key] = value
    settings.setdefault("model_max_length", 77)
    return CLIPTokenizer(vocab=str(CLIP_BPE / "vocab.json"), merges=str(CLIP_BPE / "merges.txt"), **settings)


def _has_vocabulary(folder: Path) -> bool:
    return any((folder / name).is_file() for name in ("vocab.json", "tokenizer.json"))


def config_folder(path: str | Path, config: str | Path | None = None) -> tuple[Layout, Path]:
    """The layout of ``path`` and the config folder it loads with (``config`` when given, else the shipped one)."""
    layout = detect_layout(path)
    if config is None and not layout.config:
        raise ModelLoadError(
            f"'{path}' holds a {layout.label}; give the model's diffusers folder with --config DIR (e.g. "
            "Tongyi-MAI/Z-Image-Turbo downloaded: its text_encoder/, vae/, tokenizer/ and scheduler/ are used)"
        )
    if config is None:
        return layout, shipped_config(layout.config)
    folder = Path(str(config)).expanduser()
    if not (folder / "model_index.json").is_file():
        raise ModelLoadError(f"--config '{config}' is not a diffusers folder (it has no model_index.json)")
    return layout, folder


def family_of(path: str | Path, config: str | Path | None = None):
    """The ``families.Family`` of a single file: from the config folder's JSON files, checked against what the
    tensors say (an SDXL config for an SD 1.x file is refused)."""
    from sd_img2img.models.families import detect, read_configs

    layout, folder = config_folder(path, config)
    configs = read_configs(folder)
    if configs is None:
        raise ModelLoadError(f"the config folder '{folder}' has no readable model_index.json")
    family = detect(*configs, where=f"the config folder '{folder}'")
    if family.name not in _FAMILIES[layout.kind]:
        raise ModelLoadError(
            f"'{path}' holds an {layout.label} checkpoint, but the config folder '{folder}' describes "
            f"a {family.label} model; give a matching --config"
        )
    return family


def peek_family(path: str | Path, config: str | Path | None = None):
    """``family_of``, or None when it cannot be told (the load then says why)."""
    try:
        return family_of(path, config)
    except ModelLoadError:
        return None


def load_pipeline(path: str | Path, family, config: str | Path | None = None, **kwargs):
    """``family``'s img2img pipeline from the single file ``path`` through diffusers' ``from_single_file``,
    offline, with the config folder's JSON files (``config`` or the shipped one) and its tokenizers (built
    from the shipped CLIP vocabulary where the folder has none). ``kwargs`` go to ``from_single_file``."""

    layout, folder = config_folder(path, config)
    if layout.kind in _TRANSFORMER_ONLY.values():
        return load_transformer_file(path, family, folder, **kwargs)
    index = json.loads((folder / "model_index.json").read_text())
    for name in ("tokenizer", "tokenizer_2"):
        entry = index.get(name)
        if entry and entry[0] is not None and not _has_vocabulary(folder / name):
            kwargs.setdefault(name, clip_tokenizer(folder / name))
    from diffusers.loaders.single_file_utils import SingleFileComponentError

    cls = diffusers_class(family.img2img)
    try:
        return cls.from_single_file(str(path), config=str(folder), local_files_only=True, **kwargs)
    except SingleFileComponentError as e:
        raise ModelLoadError(missing_component_message(path, layout, str(e))) from e
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelLoadError(
            f"could not load the {layout.label} single file '{path}' with the config folder '{folder}': {first}"
        ) from e


def load_transformer_file(path: str | Path, family, folder: Path, **kwargs):
    """``family``'s img2img pipeline with its transformer from the single file ``path`` (diffusers' own conversion,
    ``from_single_file`` with the folder's ``transformer/`` config) and every other component from ``folder``."""

    cls = diffusers_class(family.img2img)
    library, name = json.loads((folder / "model_index.json").read_text())["transformer"]  # its class, as the hub says
    transformer_cls = diffusers_class(name)
    try:
        transformer = transformer_cls.from_single_file(
            str(path),
            config=str(folder),
            subfolder="transformer",
            local_files_only=True,
            torch_dtype=kwargs.get("torch_dtype"),
        )
        return cls.from_pretrained(str(folder), transformer=transformer, **kwargs)
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelLoadError(
            f"could not load the {family.label} transformer file '{path}' with the folder '{folder}': {first}"
        ) from e


def missing_component_message(path: str | Path, layout: Layout, error: str) -> str:
    """What to tell someone whose single file lacks a component's weights (diffusers' ``SingleFileComponentError``).

    Args:
        path: the single file.
        layout: what ``detect_layout`` found in it.
        error: diffusers' message, which names the class (``Failed to load AutoencoderKL.``) and the pipeline's
            component (``from_single_file(<checkpoint path>, vae=vae)``).
    """
    name = re.search(r"from_single_file\(<checkpoint path>, (\w+)=", error)
    cls = re.search(r"Failed to load (\w+)", error)
    component = name.group(1) if name else None
    what, keys = _COMPONENT_KEYS.get((layout.kind, component)) or _COMPONENT_KEYS.get(component) or ("a component", "")
    found = f" ({cls.group(1) if cls else component}; the original layout keeps it under {keys})" if keys else ""
    advice = "give a complete checkpoint, or the model's diffusers folder with --model DIR"
    if component == "vae":
        advice = "give a complete checkpoint, or run with --vae tiny (the family's tiny autoencoder stands in; softer)"
    elif component == "text_encoder" and layout.kind in _CLIP_PREFIXES:
        prefix = _CLIP_PREFIXES[layout.kind]
        keys_found = [k for k in read_header(path) if k.startswith(prefix)]
        if keys_found and not any(k.startswith(f"{prefix}text_model.") for k in keys_found):
            advice = (
                f"its keys are {prefix}* without the text_model. part diffusers reads ({prefix}text_model.embeddings…, "
                f"not {prefix}embeddings…): rename each {prefix}X to {prefix}text_model.X, or {advice}"
            )
    return (
        f"'{path}' has no weights for {what}{found}: {advice}. (--config gives only JSON files and tokenizers; "
        "diffusers takes every weight from the file)"
    )


def peek_model(model: str | Path, config: str | Path | None = None):
    """The family of any model source without loading weights: a single file's (``peek_family``), else
    ``families.peek``'s; None when it cannot be told."""
    from sd_img2img.models.families import peek

    if is_single_file(model):
        return peek_family(model, config)
    return peek(model)
