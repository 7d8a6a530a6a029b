"""LoRAs: listed by whoever starts the program, loaded once with the model, switched on and scaled per run.

    engine = Engine("model.safetensors", loras=["details.safetensors:0.8", "lcm-lora-sdv1-5.safetensors"])
    engine.loras                         # {"details": 0.8, "lcm-lora-sdv1-5": 1.0}: names → start-up scales
    engine.generate(GenerationRequest(prompt="…", init_image=…, loras={"details": 0.5}))  # lcm-lora off

- A spec is ``FILE[:SCALE]`` (``--lora``, repeatable; ``SD_IMG2IMG_LORA`` holds several separated by commas or
  newlines). Only ``.safetensors`` files: pickle LoRAs are never opened.
- Formats: whatever diffusers' ``load_lora_weights`` reads — diffusers/peft (``unet.….lora_A.weight``), kohya /
  AUTOMATIC1111 (``lora_unet_…_to_q.lora_down.weight`` with ``alpha``, ``lora_te_…`` for the text encoder), and
  the other trainers it converts. Each file becomes one peft adapter named after the file's stem (its folder's
  name for the generic ``pytorch_lora_weights`` / ``adapter_model``), with characters other than letters,
  digits, ``_`` and ``-`` made ``_``.
- A request's ``loras`` maps names to scales: ``None`` runs each listed LoRA at its start-up scale; a dict runs
  exactly those with a non-zero scale (absent or 0 = off); a name that is not listed is refused. The engine
  calls ``set_adapters(names, scales)`` under the device lock before each run, or ``disable_lora()`` when
  none is on, so a run without LoRAs computes exactly what the model computes without them loaded.
- LCM-LoRA: a LoRA whose file or folder name contains ``lcm`` (``lcm-lora-sdv1-5``, ``lcm-lora-sdxl`` …) is one;
  with it the ``lcm`` sampler is offered for SD and SDXL checkpoints. The run stays on the family's own img2img
  pipeline with diffusers' ``LCMScheduler`` (as diffusers' LCM-LoRA guide does), so ``int(N × strength)`` of N
  steps run, and classifier-free guidance works as usual (LCM-LoRA wants guidance 1 to 2).
"""

from __future__ import annotations

import contextlib
import math
import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from sd_img2img.errors import ModelLoadError, UserInputError

LORA_SUFFIX = ".safetensors"
MAX_LORA_SCALE = 4.0  # |scale| above this is refused (AUTOMATIC1111 users rarely go past 2)
_GENERIC_STEMS = ("pytorch_lora_weights", "adapter_model", "lora", "model")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_SEPARATORS = re.compile(r"[,\n]")


@dataclass(frozen=True)
class LoraSpec:
    """One LoRA as the starter listed it."""

    path: str
    scale: float = 1.0
    name: str = ""
    lcm: bool = False  # an LCM-LoRA (name contains "lcm"): offers the lcm sampler

    @property
    def label(self) -> str:
        return f"{self.name} ({Path(self.path).name}, scale {self.scale:g})"


def adapter_name(path: str | Path) -> str:
    """The adapter name of a LoRA file: its stem (its folder's name for a generic stem), made safe for peft."""
    p = Path(path)
    stem = p.stem
    if stem.lower() in _GENERIC_STEMS and p.parent.name:
        stem = p.parent.name
    return _UNSAFE.sub("_", stem) or "lora"


def check_scale(scale, what: str) -> float:
    if (
        isinstance(scale, bool)
        or not isinstance(scale, (int, float))
        or not math.isfinite(scale)
        or abs(scale) > MAX_LORA_SCALE
    ):
        raise UserInputError(f"{what} must be a number from -{MAX_LORA_SCALE:g} to {MAX_LORA_SCALE:g}, got {scale!r}")
    return float(scale)


def parse_spec(text: str, check_file: bool = True) -> LoraSpec:
    """``FILE[:SCALE]`` → a ``LoraSpec``; ``UserInputError`` for a missing or non-safetensors file or a bad scale.

    The part after the last ``:`` is the scale only if it reads as a number (so ``C:\\loras\\x.safetensors`` is
    a path).
    """
    text = text.strip()
    path, scale = text, 1.0
    head, sep, tail = text.rpartition(":")
    if sep and head:
        try:
            scale = float(tail)
            path = head
        except ValueError:
            pass
    scale = check_scale(scale, f"the scale of LoRA '{path}'")
    p = Path(path).expanduser()
    if check_file:
        if not p.is_file():
            raise UserInputError(f"LoRA file '{path}' does not exist")
        if p.suffix != LORA_SUFFIX:
            raise UserInputError(
                f"LoRA file '{path}' is not .safetensors; pickle files (.pt, .ckpt, .bin) can run code "
                "when loaded and are never opened"
            )
    name = adapter_name(p)
    return LoraSpec(path=str(p), scale=scale, name=name, lcm="lcm" in f"{p.parent.name}/{p.stem}".lower())


def parse_specs(text: str, check_file: bool = True) -> list[LoraSpec]:
    """Several ``FILE[:SCALE]`` separated by commas or newlines (``SD_IMG2IMG_LORA``)."""
    return [parse_spec(part, check_file) for part in _SEPARATORS.split(text) if part.strip()]


def as_specs(loras: Iterable[LoraSpec | str] | None) -> tuple[LoraSpec, ...]:
    """Specs from specs or ``FILE[:SCALE]`` strings; ``UserInputError`` for two with the same name."""
    out: list[LoraSpec] = []
    for item in loras or ():
        out.extend([item] if isinstance(item, LoraSpec) else parse_specs(item))
    names = [s.name for s in out]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UserInputError(f"two LoRAs are named {', '.join(twice)} (names come from the file names); rename one")
    return tuple(out)


def with_lcm_sampler(family, specs: Iterable[LoraSpec]):
    """``family`` with the ``lcm`` sampler added when an LCM-LoRA is listed and the family takes one (SD, SDXL)."""
    import dataclasses

    if family is None or not family.takes_lcm_lora or not any(s.lcm for s in specs) or "lcm" in family.samplers:
        return family
    return dataclasses.replace(family, samplers=family.samplers + ("lcm",))


def load_into(pipe, specs: Iterable[LoraSpec]) -> None:
    """Load each LoRA into ``pipe`` as its own peft adapter (once, at model load), all switched off after."""
    specs = tuple(specs)
    if not specs:
        return
    if not hasattr(pipe, "load_lora_weights"):
        raise ModelLoadError(f"{type(pipe).__name__} takes no LoRAs")
    for spec in specs:
        try:
            with _quiet():
                pipe.load_lora_weights(spec.path, adapter_name=spec.name)
        except ImportError as e:
            raise ModelLoadError(f"LoRAs need the peft package (pip install peft): {e}") from e
        except Exception as e:  # a LoRA for another architecture, a damaged file …
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelLoadError(f"could not load LoRA {spec.label} into the {type(pipe).__name__}: {first}") from e
        if spec.name not in _adapters(pipe):
            raise ModelLoadError(
                f"LoRA {spec.label} has no weights that fit this model (none of its keys matched a "
                "layer); is it made for another model family?"
            )
    pipe.disable_lora()


@contextlib.contextmanager
def _quiet():
    """Without peft's "multiple adapters" warning and transformers' load report (which lists every base weight
    of the text encoder as "missing" from the LoRA, as it should be)."""
    from transformers.utils import logging as tlogging

    level = tlogging.get_verbosity()
    tlogging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*peft_config.*")
            yield
    finally:
        tlogging.set_verbosity(level)


def _adapters(pipe) -> set[str]:
    return {name for names in pipe.get_list_adapters().values() for name in names}


def resolve(asked: Mapping[str, float] | None, listed: Mapping[str, float]) -> dict[str, float]:
    """The LoRAs a run uses (name → non-zero scale): ``asked`` (None: each listed one at its start-up scale).

    ``asked`` must have passed ``checks.check_loras`` (names listed, scales usable).
    """
    chosen = listed if asked is None else asked
    return {name: float(scale) for name, scale in chosen.items() if scale}


def lcm_warnings(sampler: str, guidance: float, active: Mapping[str, float], specs: Iterable[LoraSpec]) -> list[str]:
    """What the ``lcm`` sampler on an SD/SDXL checkpoint needs: an LCM-LoRA switched on, and guidance 1 to 2."""
    specs = tuple(specs)
    if sampler != "lcm":
        return []
    if not any(s.lcm and s.name in active for s in specs):
        return [
            "sampler lcm needs an LCM-LoRA switched on ("
            + ", ".join(s.name for s in specs if s.lcm)
            + "); without it expect a poor picture"
        ]
    if guidance > 2:
        return [f"an LCM-LoRA works at guidance 1 to 2; {guidance:g} runs but usually burns the picture"]
    return []


def parse_scales(text: str | None) -> dict[str, float] | None:
    """``"detail:0.8, lcm:1"`` → ``{"detail": 0.8, "lcm": 1.0}`` (a run's LoRA switches as one line of text, as
    the web demo's API takes them; a name alone means scale 1); empty → ``None`` (each listed LoRA at its
    start-up scale). Names are checked against the listed ones by ``resolve``."""
    if text is None or not str(text).strip():
        return None
    out: dict[str, float] = {}
    for part in _SEPARATORS.split(str(text)):
        part = part.strip()
        if not part:
            continue
        name, _, scale = part.rpartition(":") if ":" in part else (part, "", "1")
        try:
            value = float(scale)
        except ValueError:
            raise UserInputError(
                f"LoRA scale {scale!r} of {name.strip()!r} is not a number; write name:scale, e.g. detail:0.8"
            ) from None
        out[name.strip()] = check_scale(value, f"the scale of LoRA {name.strip()!r}")
    return out


def format_scales(scales: Mapping[str, float]) -> str:
    """The reverse of ``parse_scales``: ``{"detail": 0.8}`` → ``"detail:0.8"``."""
    return ", ".join(f"{name}:{scale:g}" for name, scale in scales.items())


def apply(pipe, active: Mapping[str, float]) -> None:
    """Switch ``pipe``'s adapters to ``active`` (name → scale); all off when it is empty. Call under the
    device lock: the adapters live in the modules every request shares."""
    if not active:
        pipe.disable_lora()
        return
    pipe.enable_lora()
    pipe.set_adapters(list(active), list(active.values()))


def a1111_tags(loras: Mapping[str, float] | None) -> str:
    """``<lora:name:scale>`` for each LoRA, as AUTOMATIC1111 writes them in the prompt."""
    return " ".join(f"<lora:{name}:{scale:g}>" for name, scale in (loras or {}).items())
