"""Several models in one process: a fixed list chosen by whoever starts the server or CLI, each loaded lazily.

    models = ModelSet(["stabilityai/sdxl-turbo", "random", "random-lcm"], device="cpu")
    models.describe()                    # [ModelInfo(name="stabilityai/sdxl-turbo", family="sdxl-turbo", loaded=False), …]
    engine = models.engine("random-lcm")  # loads it on first use (and frees another one when both do not fit)
    engine.generate(GenerationRequest(prompt="fire", init_image=picture))

Visitors choose among the listed names only, never a free path. The offline demo's names (``random``,
``random-sdxl``, ``random-turbo``, ``random-lcm``, …) are tiny random checkpoints built into a cache folder on
first use (``models.tiny.random_model``). Switching models frees the least recently used one when both
do not fit: on the cpu (and mps) at most ``config.MAX_LOADED_MODELS_CPU`` stay loaded; on a GPU a model loads
once the device has its weights (``loading.model_memory``) × ``config.GPU_MEMORY_HEADROOM`` free (with
``offload="model"`` its largest component, with ``"sequential"`` next to nothing), unloading others until it
does; a GPU model whose size cannot be told (a hub id) falls back to the count.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from sd_img2img.config import GPU_MEMORY_HEADROOM, MAX_LOADED_MODELS_CPU, RANDOM_MODELS
from sd_img2img.engine.engine import Engine
from sd_img2img.errors import check_choice
from sd_img2img.models.devices import resolve_device, resolve_dtype
from sd_img2img.models.families import FAMILIES, Family
from sd_img2img.models.memory import model_memory
from sd_img2img.models.options import EngineOptions


@dataclass(frozen=True)
class ModelInfo:
    """One listed model, as a picker shows it."""

    name: str  # what visitors choose
    label: str  # what a picker shows: the name, with the family once known ("random-sdxl · SDXL")
    source: str  # hub id, folder, or the offline demo's random name
    family: str | None  # e.g. "sdxl-turbo", once known (read from model_index.json, no weights loaded)
    family_label: str | None  # e.g. "SDXL-Turbo"
    loaded: bool


class ModelSet:
    """A fixed set of models, each an ``Engine`` loaded on first use.

    Args:
        sources: model sources (hub ids, folders, single ``.safetensors`` files, ``random*`` names), or a mapping
            name → source when the names shown should differ from the sources.
        options: how every model loads and runs (``EngineOptions``; ``taesd`` None: each family's own tiny
            autoencoder; its ``loras`` go into every model, each must fit them); without it, ``option_fields``
            make one.
        loras: instead of ``options.loras``, a mapping model name → its LoRAs (models not named get none); a
            sequence: the same LoRAs for every model.
        max_loaded: on the cpu/mps, how many models stay loaded at once (default ``config.MAX_LOADED_MODELS_CPU``).
        cache: where the ``random*`` checkpoints are built (default: the demo's cache folder).
    """

    def __init__(
        self,
        sources: Iterable[str] | Mapping[str, str],
        options: EngineOptions | None = None,
        *,
        loras=None,
        max_loaded: int | None = None,
        cache: str | Path | None = None,
        **option_fields,
    ):
        self.sources = dict(sources) if isinstance(sources, Mapping) else {s: s for s in sources}
        if not self.sources:
            raise ValueError("a ModelSet needs at least one model")
        self.options = options or EngineOptions(**option_fields)
        if loras is None:
            loras = self.options.loras
        self.loras = (
            {name: tuple(specs or ()) for name, specs in loras.items()}
            if isinstance(loras, Mapping)
            else {name: tuple(loras) for name in self.sources}
        )
        unknown = [name for name in self.loras if name not in self.sources]
        if unknown:
            raise ValueError(f"LoRAs for models that are not listed: {', '.join(unknown)}")
        self.max_loaded = MAX_LOADED_MODELS_CPU if max_loaded is None else max(1, max_loaded)
        self.cache = cache
        self._engines: dict[str, Engine] = {}
        self._used: list[str] = []  # loaded models, least recently used first
        self._lock = threading.RLock()

    @classmethod
    def of(cls, engines: Mapping[str, Engine]) -> ModelSet:
        """A set serving engines made elsewhere (loaded or not), under the given names."""
        models = cls({name: engine.model for name, engine in engines.items()}, next(iter(engines.values())).options)
        models.loras = {name: engine.lora_specs for name, engine in engines.items()}
        models._engines.update(engines)
        models._used.extend(name for name, engine in engines.items() if engine.is_loaded)
        return models

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.sources)

    @property
    def first(self) -> str:
        """The model a request that names none runs on."""
        return self.names[0]

    def existing(self, name: str) -> Engine | None:
        """``name``'s engine if one was made (loaded or not), without making or loading anything."""
        return self._engines.get(name)

    def options_of(self, name: str) -> EngineOptions:
        """How ``name`` loads: the set's options with its own LoRAs."""
        return self.options.replace(loras=self.loras.get(name, ()))

    def family(self, name: str) -> Family | None:
        """``name``'s ``families.Family`` without loading weights (None when that cannot be told: a hub id that is
        not in the local cache)."""
        check_choice("model", name, self.names)
        engine, source = self._engines.get(name), self.sources[name]
        if engine is not None:
            return engine.peek_family()
        if source in RANDOM_MODELS:  # not built yet: its architecture says the family and the scheduler it will have
            from sd_img2img.testing.tiny import ARCHITECTURES

            arch = ARCHITECTURES[RANDOM_MODELS[source]]
            kind, scheduler = arch.scheduler
            return dataclasses.replace(FAMILIES[arch.family], scheduler_config={"_class_name": kind, **scheduler})
        from sd_img2img.models.loras import with_lcm_sampler
        from sd_img2img.models.single_file import peek_model

        return with_lcm_sampler(peek_model(source, self.options.config), self.loras.get(name, ()))

    def _engine(self, name: str) -> Engine:
        """The (not necessarily loaded) engine of ``name``; a ``random*`` checkpoint is built here first."""
        if name not in self._engines:
            source, options = self.sources[name], self.options_of(name)
            if source in RANDOM_MODELS:
                from sd_img2img.testing.tiny import random_model

                model, taesd = random_model(source, self.cache)
                source = str(model)
                options = options.replace(taesd=options.taesd or str(taesd))
            # a mapping's name is what visitors see; a bare source is shown by its display name
            self._engines[name] = Engine(source, options, name=name if name != self.sources[name] else None)
        return self._engines[name]

    def engine(self, name: str) -> Engine:
        """The loaded engine of ``name`` (one of ``names``), loading it now if needed and freeing others first
        when both would not fit."""
        check_choice("model", name, self.names)
        with self._lock:
            engine = self._engine(name)
            if not engine.is_loaded:
                self._make_room(name, engine)
                engine.load()
            if name in self._used:
                self._used.remove(name)
            self._used.append(name)
            return engine

    def _make_room(self, name: str, engine: Engine) -> None:
        loaded = [n for n in self._used if n != name and self._engines[n].is_loaded]
        need = self._gpu_bytes(engine) if resolve_device(self.options.device) == "cuda" else 0
        if not need:  # the cpu/mps, or a GPU model whose size cannot be told (a hub id): count them
            while len(loaded) >= self.max_loaded:
                self.unload(loaded.pop(0))
            return
        import torch

        while loaded and torch.cuda.mem_get_info()[0] < need * GPU_MEMORY_HEADROOM:
            self.unload(loaded.pop(0))

    def _gpu_bytes(self, engine: Engine) -> int:
        """What ``engine``'s model will hold on the GPU once loaded (0 when it cannot be told)."""
        parts = model_memory(engine.model, resolve_dtype(engine.options.dtype, "cuda"))
        if not parts:
            return 0
        if engine.options.offload == "sequential":  # layer by layer: next to nothing stays on the GPU
            return 1
        return max(parts.values()) if engine.options.offload == "model" else sum(parts.values())

    def unload(self, name: str) -> bool:
        """Free ``name``'s model once no run is using the device; True if it was loaded."""
        with self._lock:
            engine = self._engines.get(name)
            if name in self._used:
                self._used.remove(name)
            if engine is None or not engine.is_loaded:
                return False
            with engine.loaded.lock:  # runs on a device take turns on its lock: none is in progress now
                return engine.unload()

    def info(self, name: str) -> ModelInfo:
        family = self.family(name)
        engine = self._engines.get(name)
        return ModelInfo(
            name=name,
            label=f"{name} · {family.label}" if family else name,
            source=self.sources[name],
            family=family.name if family else None,
            family_label=family.label if family else None,
            loaded=bool(engine and engine.is_loaded),
        )

    def describe(self) -> list[ModelInfo]:
        """Every listed model: its name, source, family (once known) and whether it is loaded."""
        return [self.info(name) for name in self.names]
