"""The engine interface the page uses, and nothing more: describe the served models, plan a request (``prepare``),
estimate it, stream it (closing the stream, or ``should_stop`` turning True, stops it between steps).

``Backend`` is that interface; ``LocalBackend`` serves a ``ModelSet`` in this process (the first model loads in the
background at ``start``, the others on first use). A remote backend (model workers elsewhere) implements the same
few methods, so the page does not change with it. A request is prepared once, in the page's process (checks, the
init image opened and fitted, the steps planned), and the ``PreparedRequest`` is what runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from sd_img2img.engine.engine import Engine
from sd_img2img.engine.model_set import ModelSet
from sd_img2img.engine.result import GenerationResult
from sd_img2img.engine.step_recorder import StepFrame
from sd_img2img.errors import check_choice
from sd_img2img.models.devices import resolve_device
from sd_img2img.models.download import progress_of
from sd_img2img.models.families import Family
from sd_img2img.models.loras import LoraSpec
from sd_img2img.plan.images import ImageCache
from sd_img2img.plan.prepare import PreparedRequest, prepare_request
from sd_img2img.plan.request import GenerationRequest

STATES = ("idle", "loading", "ready", "failed")  # listed and not loaded yet / loading / loaded / its load failed


@dataclass(frozen=True)
class ModelStatus:
    """One served model, as a page shows it."""

    name: str  # what visitors choose
    family: Family | None  # once it can be told (without loading where the files say)
    state: str  # one of STATES
    loras: tuple[LoraSpec, ...] = ()  # the LoRAs listed for it (name, start-up scale, …)
    load_seconds: float | None = None  # how long its load took, once ready
    loading_seconds: float | None = None  # how long it has been loading, while loading
    error: str | None = None  # why its load failed, when failed
    download: str | None = None  # while its weights download: bytes of the total and speed ("1.2 GB of 5.2 GB …")


class Backend(Protocol):
    """Where the page's runs go. Names are the served models' (visitors choose among them only)."""

    names: tuple[str, ...]  # the served models, the first one first (what a request that names none runs on)
    on_cpu: bool  # the models run on a CPU (the page starts slow models small)
    capacity: int  # runs it takes at once (the page's queue lets this many run together)

    def start(self) -> Backend:
        """Begin loading the first model in the background; the page comes up at once."""

    def describe(self, name: str) -> ModelStatus:
        """``name``'s family, load state and LoRAs (loads nothing)."""

    def prepare(self, request: GenerationRequest, name: str) -> PreparedRequest:
        """``request`` checked and settled for ``name``'s family; ``UserInputError`` saying what to change."""

    def estimate(self, prepared: PreparedRequest, name: str) -> float | None:
        """Seconds it will take once the model has run here; None before (or when it cannot tell)."""

    def stream(
        self, prepared: PreparedRequest, name: str, should_stop: Callable[[], bool] | None = None
    ) -> Iterator[StepFrame | GenerationResult]:
        """Each step as it is computed, then the result; loads the model first if it must."""


class LocalBackend:
    """A ``ModelSet`` served in this process.

    Args:
        models: the models (a ``ModelSet``; one ``Engine``: served under the name given, else its own ``name``).
        name: the name of a lone ``Engine``.
    """

    def __init__(self, models: ModelSet | Engine, name: str | None = None):
        if isinstance(models, Engine):
            models = ModelSet.of({name or models.name: models})
        self.models = models
        self.names = models.names
        self.on_cpu = resolve_device(models.options.device) == "cpu"
        self.capacity = 1  # one process, one device: runs take turns on its lock
        self.images = ImageCache()  # the plan line and the click prepare the same request: the image opens once
        self.started = time.monotonic()
        self._thread: threading.Thread | None = None

    # -- the models ----------------------------------------------------------------------------------------

    def start(self) -> LocalBackend:
        first = self.models.existing(self.models.first)
        if self._thread is None and not (first is not None and first.is_loaded):
            import diffusers  # noqa: F401  before the load thread: the page's own threads (the plan line, the strength

            # chart) look its schedulers up while the load imports it, and may otherwise find it half-made
            self._thread = threading.Thread(target=self._load_first, name="sd-img2img-load", daemon=True)
            self._thread.start()
        return self

    def _load_first(self) -> None:
        try:
            engine = self.models.engine(self.models.first)
        except Exception:  # kept on engine.load_error and shown on the page
            return
        engine.model_hash()  # for the PNGs' "Model hash", read once here rather than in a visitor's run

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the first model's background load; True if it is loaded."""
        if self._thread is not None:
            self._thread.join(timeout)
        engine = self.models.existing(self.models.first)
        return engine is not None and engine.is_loaded

    def describe(self, name: str) -> ModelStatus:
        check_choice("model", name, self.names)
        engine = self.models.existing(name)
        loading = name == self.models.first and self._thread is not None and self._thread.is_alive()
        specs = engine.lora_specs if engine is not None else self.models.loras.get(name, ())
        status = dict(name=name, family=self.models.family(name), loras=tuple(specs))
        if engine is not None and engine.is_loaded:
            return ModelStatus(state="ready", load_seconds=engine.load_seconds, **status)
        if engine is not None and engine.load_error is not None and not loading:
            error = (str(engine.load_error) or type(engine.load_error).__name__).replace(engine.model, name)
            return ModelStatus(state="failed", error=error, **status)  # the model by its name, not its path
        if loading:
            progress = progress_of(engine.model if engine is not None else self.models.sources[name])
            return ModelStatus(
                state="loading",
                loading_seconds=time.monotonic() - self.started,
                download=progress.describe() if progress is not None else None,
                **status,
            )
        return ModelStatus(state="idle", **status)

    # -- runs ----------------------------------------------------------------------------------------------

    def _family(self, name: str) -> Family:
        """``name``'s family, without loading where its files tell, else by loading it."""
        family = self.models.family(name)
        return family if family is not None else self.models.engine(name).family

    def prepare(self, request: GenerationRequest, name: str) -> PreparedRequest:
        check_choice("model", name, self.names)
        specs = self.models.loras.get(name, ())
        return prepare_request(request, self._family(name), specs, self.images)

    def estimate(self, prepared: PreparedRequest, name: str) -> float | None:
        engine = self.models.existing(name)
        if engine is None or not engine.is_loaded:
            return None
        return engine.estimate_seconds(prepared)

    def stream(
        self, prepared: PreparedRequest, name: str, should_stop: Callable[[], bool] | None = None
    ) -> Iterator[StepFrame | GenerationResult]:
        return self.models.engine(name).stream(prepared, should_stop=should_stop)


def run_to_end(
    backend: Backend, prepared: PreparedRequest, name: str, should_stop: Callable[[], bool] | None = None
) -> GenerationResult:
    """Stream ``prepared`` on ``name`` to its result (the explain table's columns)."""
    stream = backend.stream(prepared, name, should_stop)
    try:
        for item in stream:
            if isinstance(item, GenerationResult):
                return item
    finally:
        stream.close()
    raise RuntimeError("the run ended without a result")
