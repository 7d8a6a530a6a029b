"""A checkpoint loaded once, on first use, thread-safe: what it is (its family, told without loading where its files
say), its LoRAs, its load state and error, its weights' hash. ``engine.Engine`` runs requests on one."""

from __future__ import annotations

import threading
import time
from typing import Any

from sd_img2img.models import loras as lora_support
from sd_img2img.models.devices import free_memory
from sd_img2img.models.families import Family
from sd_img2img.models.loading import LoadedModel, load_model
from sd_img2img.models.names import display_name
from sd_img2img.models.options import EngineOptions


class LazyModel:
    """A checkpoint loaded once, on first use.

    Args:
        model: hub id, local diffusers folder or single ``.safetensors`` file.
        options: how it loads (``EngineOptions``); its LoRAs are loaded with it.
        name: what visitors see it called (results, PNGs, the page); default: its display name
            (``names.display_name``: a hub id as it is, a folder or file by its own name, never the server's path).
    """

    def __init__(self, model: str, options: EngineOptions, name: str | None = None):
        self.model = model
        self.name = name or display_name(model)
        self.options = options
        self._loaded: LoadedModel | None = None
        self._peeked: Family | None = None
        self._load_lock = threading.Lock()
        self.load_error: Exception | None = None
        self.load_seconds: float | None = None
        self._model_hash: str | None = None

    # -- what it is -----------------------------------------------------------------------------------------

    @property
    def lora_specs(self) -> tuple[lora_support.LoraSpec, ...]:
        return self.options.loras

    @property
    def loras(self) -> dict[str, float]:
        """The LoRAs listed at start-up (name → start-up scale), in order: what a page may offer to switch on,
        off and scale (``GenerationRequest.loras``)."""
        return {spec.name: spec.scale for spec in self.lora_specs}

    @property
    def loaded(self) -> LoadedModel:
        """The loaded checkpoint, loading it on first use."""
        if self._loaded is None:
            self.load()
        return self._loaded  # type: ignore[return-value]

    @property
    def is_loaded(self) -> bool:
        return self._loaded is not None

    @property
    def family(self) -> Family:
        """The model's family: the loaded one's, else read from its JSON files without loading weights, else
        (a hub id not in the cache) loaded to find out."""
        peeked = self.peek_family()
        return peeked if peeked is not None else self.loaded.family

    def peek_family(self) -> Family | None:
        """The family if it can be told without loading any weights, else None."""
        if self._loaded is not None:
            return self._loaded.family
        if self._peeked is None:
            from sd_img2img.models.single_file import peek_model

            self._peeked = lora_support.with_lcm_sampler(peek_model(self.model, self.options.config), self.lora_specs)
        return self._peeked

    @property
    def samplers(self) -> tuple[str, ...]:
        """The sampler names that fit the model (what a UI or CLI should offer)."""
        return self.family.samplers

    @property
    def defaults(self) -> dict[str, Any]:
        """What a request's unset settings become for this model: steps, strength, guidance_scale, sampler,
        size (prompt2img's width and height)."""
        return self.family.defaults

    @property
    def taesd_id(self) -> str:
        """The tiny autoencoder ``preview="taesd"`` uses: the one given, else the family's."""
        return self.options.taesd or self.family.taesd

    def load(self) -> LoadedModel:
        """Load the checkpoint once; later calls return it. A failed load is remembered and re-raised."""
        with self._load_lock:
            if self._loaded is None:
                t = time.perf_counter()
                try:
                    loaded = load_model(self.model, self.options)
                    if self.lora_specs:
                        lora_support.load_into(loaded.img2img, self.lora_specs)
                        loaded.family = lora_support.with_lcm_sampler(loaded.family, self.lora_specs)
                    self._loaded = loaded
                except Exception as e:
                    self.load_error = e
                    raise
                self.load_error = None
                self.load_seconds = time.perf_counter() - t
            return self._loaded

    def unload(self) -> bool:
        """Drop the loaded model (a run in progress keeps what it holds until it ends); True if one was loaded."""
        with self._load_lock:
            had = self._loaded is not None
            device = self._loaded.device if had else "cpu"
            self._loaded = None
        if had:
            free_memory(device)
        return had

    def model_hash(self) -> str | None:
        """The weights' AUTOMATIC1111-style short hash (``model_hash.model_hash``): computed on first call (it reads
        the UNet's weights once), then written into every result's settings and PNG."""
        if self._model_hash is None:
            from sd_img2img.models.model_hash import model_hash

            self._model_hash = model_hash(self.model)
        return self._model_hash
