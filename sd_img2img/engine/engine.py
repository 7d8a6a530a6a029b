"""The engine: one model, loaded once, running img2img and prompt2img on diffusers' own pipelines with every step
captured.

    engine = Engine("stable-diffusion-v1-5/stable-diffusion-v1-5")
    result = engine.generate(GenerationRequest(prompt="fire", init_image="fireplace.png", strength=0.7, steps=10))
    result.steps_taken  # 7, counted from the run
    for item in engine.stream(request):  # StepFrame … as each step is computed, then the GenerationResult
        ...

Each request gets its own shallow copy of the loaded pipeline and its own scheduler (``denoise``), so requests never
share scheduler state; runs on one device take turns on that device's lock. Noise comes from a CPU
``torch.Generator`` seeded with the request's seed, so a seed gives the same image on cpu, cuda and mps, and the
same image as diffusers' own pipelines called with ``torch.Generator("cpu").manual_seed(seed)``.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any, Callable, Iterator

from sd_img2img.config import DEFAULT_MODEL, DEFAULT_PREVIEW
from sd_img2img.engine import denoise as run
from sd_img2img.engine.streaming import stream
from sd_img2img.models import loras as lora_support
from sd_img2img.models.devices import free_memory
from sd_img2img.models.families import Family
from sd_img2img.models.loading import LoadedModel, configure_vae, load_model, load_taesd
from sd_img2img.models.options import EngineOptions
from sd_img2img.run.checks import check_preview
from sd_img2img.run.plan import StepPlan
from sd_img2img.run.prepare import PreparedRequest, prepare_request, truncation_warning
from sd_img2img.run.previews import PreviewDecoder
from sd_img2img.run.prompt_cache import PromptCache, cacheable, guidance_on
from sd_img2img.run.request import GenerationRequest
from sd_img2img.run.result import GenerationResult
from sd_img2img.run.steps import StepFrame
from sd_img2img.run.timing import RunTimes, TimingModel, model_calls


class Engine:
    """Loads a checkpoint once (lazily, thread-safe) and runs img2img / prompt2img with step capture.

    Args:
        model: hub id, local diffusers folder or single ``.safetensors`` file (a family of ``families.FAMILIES``).
        options: how it loads and runs (``EngineOptions``: device, dtype, offload, safety checker, tiny autoencoder,
            compile, single-file config, VAE, LoRAs); without it, ``option_fields`` make one
            (``Engine(model, device="cpu", dtype="float32")``).
        prompt_cache: prompt embeddings kept for repeated prompts (0: none); outputs are unchanged by it.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        options: EngineOptions | None = None,
        *,
        prompt_cache: int | None = None,
        **option_fields,
    ):
        self.model = model
        self.options = options or EngineOptions(**option_fields)
        self.prompt_cache = PromptCache() if prompt_cache is None else PromptCache(prompt_cache)
        self.timing = TimingModel()  # learns this server's seconds from finished runs (estimate_seconds)
        self._loaded: LoadedModel | None = None
        self._taesd = None
        self._peeked: Family | None = None
        self._load_lock = threading.Lock()
        self.load_error: Exception | None = None
        self.load_seconds: float | None = None
        self._model_hash: str | None = None

    # -- the model -----------------------------------------------------------------------------------------

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
            self._taesd = None
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

    def decoder(self, preview: str) -> PreviewDecoder:
        """How step latents become pictures for ``preview`` (``approx``, ``taesd`` or ``full``) on this model."""
        check_preview(preview)
        lm = self.loaded
        taesd = None
        if preview == "taesd":
            if self._taesd is None:  # the pipelines' own VAE where it is that TAESD (--vae tiny), else loaded once
                if lm.vae_kind == "tiny" and lm.taesd == self.taesd_id:
                    self._taesd = lm.vae
                else:
                    hint = "use preview 'approx' or 'full'"
                    self._taesd = load_taesd(self.taesd_id, lm.dtype, "the taesd preview", hint).to(lm.execution_device)
            taesd = self._taesd
        family = lm.family
        return PreviewDecoder(
            preview,
            vae=lm.vae,
            taesd=taesd,
            device=lm.execution_device,
            lock=lm.lock,
            factors=family.approx_factors,
            bias=family.approx_bias,
        )

    # -- runs ----------------------------------------------------------------------------------------------

    def prepare(self, request: GenerationRequest) -> PreparedRequest:
        """``prepare_request`` for the loaded model: its family's defaults and checks, its listed LoRAs, and where
        its text encoder cuts a long prompt."""
        family = self.loaded.family
        prepared = prepare_request(request, family, self.lora_specs)
        return self._with_model_warnings(prepared)

    def _with_model_warnings(self, prepared: PreparedRequest) -> PreparedRequest:
        tokenizer, limit = self.loaded.prompt_tokenizer
        texts = [("prompt", prepared.prompt)]
        if self.loaded.family.negative_prompt:
            texts.append(("negative prompt", prepared.negative_prompt))
        found = [w for name, text in texts if (w := truncation_warning(tokenizer, text, name, limit))]
        return dataclasses.replace(
            prepared, warnings=prepared.warnings + [w for w in found if w not in prepared.warnings]
        )

    def generate(
        self,
        request: GenerationRequest | PreparedRequest,
        on_step: Callable[[StepFrame], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> GenerationResult:
        """Run a request to the end (or until ``should_stop()`` turns True between steps).

        Args:
            request: the settings, or a request already prepared (``prepare``, or a backend's ``prepare`` for this
                model's family), which then runs as it is.
            on_step: called with each ``StepFrame`` as soon as it is computed (step 0 first).
            should_stop: polled after each step; True ends the run, keeping the steps computed so far
                (the output is then the partial latents, decoded).
        """
        t_start = time.perf_counter()
        # 1. Check and prepare the request (once), before waiting for the device
        prepared = self._prepared(request)
        lm = self.loaded
        # 2. Take the device: runs on one device take turns
        with lm.lock:
            t_locked = time.perf_counter()
            configure_vae(lm, prepared.width, prepared.height)  # tiling above a size threshold, GPU only
            if self.lora_specs:
                lora_support.apply(lm.img2img, prepared.loras)  # the adapters live in the shared modules
            # 3. A request-scoped pipeline: shared weights, its own scheduler, the step recorder attached
            pipe, recorder = run.request_pipeline(
                lm, prepared, self.decoder(prepared.request.preview), on_step, should_stop
            )
            # 4. The prompts' embeddings, from the prompt cache when the same prompts came before
            prompts, text_seconds = self.prompt_cache.embeddings(
                self._cache_model_key(prepared),
                lm.family,
                pipe,
                prepared.prompt,
                prepared.negative_prompt,
                float(prepared.request.guidance_scale),
            )
            # 5. Denoise with diffusers' own loop
            done = run.denoise(lm, pipe, recorder, prepared, prompts)
            t_done = time.perf_counter()
        # 6. Check the output: NaN/inf, the safety checker, a stop
        warnings = run.output_warnings(lm, done, prepared)
        # 7. The result, with the steps counted and the parts of the run timed (the timing model learns them)
        seconds = run.timed_seconds(t_start, t_locked, t_done, run.run_parts(recorder, text_seconds, t_done))
        result = run.make_result(lm, prepared, done, warnings, seconds, self._model_hash)
        self._learn_times(prepared, recorder.model_calls, text_seconds, seconds)
        return result

    def _prepared(self, request: GenerationRequest | PreparedRequest) -> PreparedRequest:
        """``request`` prepared for this model; a prepared one as it is, unless made for another family."""
        if isinstance(request, PreparedRequest):
            if request.family == self.loaded.family.name:
                return self._with_model_warnings(request)
            request = request.asked
        return self.prepare(request)

    def _cache_model_key(self, prepared: PreparedRequest) -> str:
        """The prompt cache's model key: the model, and the LoRAs that are on (one on the text encoder changes the
        embeddings)."""
        return self.model + (f"|{lora_support.format_scales(prepared.loras)}" if prepared.loras else "")

    def stream(
        self, request: GenerationRequest | PreparedRequest, should_stop: Callable[[], bool] | None = None
    ) -> Iterator[StepFrame | GenerationResult]:
        """Yield each ``StepFrame`` as soon as it is computed, then the ``GenerationResult``.

        Closing the iterator early (``.close()``, or a UI cancelling it) stops the run between steps.
        ``should_stop`` (optional) is polled between steps too; when it turns True the run ends gracefully
        and the iterator still yields the (stopped) ``GenerationResult``. Errors of the run are raised
        from the iterator.
        """
        return stream(lambda on_step, stop: self.generate(request, on_step=on_step, should_stop=stop), should_stop)

    # -- this server's time --------------------------------------------------------------------------------

    def _learn_times(self, prepared: PreparedRequest, calls: int, text_seconds: float | None, seconds: dict) -> None:
        if "steps" not in seconds:
            return
        r, lm = prepared.request, self.loaded
        self.timing.observe(
            RunTimes(
                model=self.model,
                pixels=prepared.width * prepared.height,
                guidance=guidance_on(lm.family, lm.img2img, float(r.guidance_scale)),
                mode=prepared.mode,
                preview=r.preview,
                text_encode=text_seconds,
                before_steps=seconds["before_steps"],
                step_calls=calls,
                steps_seconds=seconds["steps"],
                after_steps=seconds["after_steps"],
            )
        )

    def estimate_seconds(
        self,
        prepared_or_plan: PreparedRequest | StepPlan,
        width: int | None = None,
        height: int | None = None,
        guidance: float | None = None,
        *,
        sampler: str | None = None,
        preview: str | None = None,
        mode: str | None = None,
    ) -> float | None:
        """Seconds a planned run will take on this server, from the runs it has done; ``None`` before any.

        Args:
            prepared_or_plan: a ``PreparedRequest`` (size, guidance, sampler, preview and prompts come from it) or a
                ``StepPlan`` (then give width, height and guidance).
            width, height, guidance: override the prepared request's, or complete a plan.
            sampler, preview, mode: as for the run (defaults: the request's, else the family's sampler, approx, and
                img2img when the plan has a strength).
        Not counted: time waiting for the device (runs ahead in the queue: add their estimates).
        """
        prompts = None
        if isinstance(prepared_or_plan, PreparedRequest):
            p, r = prepared_or_plan, prepared_or_plan.request
            plan, prompts = p.plan, (p.prompt, p.negative_prompt)
            width, height = width or p.width, height or p.height
            guidance = r.guidance_scale if guidance is None else guidance
            sampler, preview, mode = sampler or r.sampler, preview or r.preview, mode or p.mode
        else:
            plan = prepared_or_plan
            if width is None or height is None or guidance is None:
                raise ValueError("with a StepPlan, give width, height and guidance")
            sampler, preview = sampler or self.family.sampler, preview or DEFAULT_PREVIEW
            mode = mode or ("txt2img" if plan.strength is None else "img2img")
        on, text_cached = float(guidance) > 1, False
        if self.is_loaded:
            lm = self.loaded
            on = guidance_on(lm.family, lm.img2img, float(guidance))
            if prompts is not None and cacheable(lm.family, lm.img2img):
                text_cached = PromptCache.key(self.model, lm.img2img, *prompts, on) in self.prompt_cache
        return self.timing.estimate(
            self.model,
            pixels=int(width) * int(height),
            guidance=on,
            calls=model_calls(sampler, plan.steps_to_run),
            mode=mode,
            preview=preview,
            text_cached=text_cached,
        )
