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

import time
from typing import Callable, Iterator

from sd_img2img.config import DEFAULT_MODEL
from sd_img2img.engine.decoders import TinyDecoder, preview_decoder
from sd_img2img.engine.pipeline_call import call_pipeline, request_pipeline
from sd_img2img.engine.previews import PreviewDecoder
from sd_img2img.engine.prompt_cache import PromptCache, cacheable, guidance_on
from sd_img2img.engine.result import GenerationResult
from sd_img2img.engine.run_outcome import make_result, output_warnings, run_parts, timed_seconds
from sd_img2img.engine.step_recorder import StepFrame
from sd_img2img.engine.streaming import stream
from sd_img2img.models import loras as lora_support
from sd_img2img.models.lazy_model import LazyModel
from sd_img2img.models.loading import configure_vae
from sd_img2img.models.options import EngineOptions
from sd_img2img.plan.prepare import PreparedRequest, prepare_request, with_truncation_warnings
from sd_img2img.plan.request import GenerationRequest
from sd_img2img.plan.step_plan import StepPlan
from sd_img2img.plan.timing import TimingModel, model_calls, planned_run, run_times


class Engine(LazyModel):
    """A checkpoint loaded once (lazily, thread-safe: ``LazyModel``) running img2img / prompt2img with step capture.

    Args:
        model: hub id, local diffusers folder or single ``.safetensors`` file (a family of ``families.FAMILIES``).
        options: how it loads and runs (``EngineOptions``: device, dtype, offload, safety checker, tiny autoencoder,
            compile, single-file config, VAE, LoRAs); without it, ``option_fields`` make one
            (``Engine(model, device="cpu", dtype="float32")``).
        prompt_cache: prompt embeddings kept for repeated prompts (0: none); outputs are unchanged by it.
        name: what results and PNGs call the model (default: its display name, ``models.names.display_name``).
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        options: EngineOptions | None = None,
        *,
        prompt_cache: int | None = None,
        name: str | None = None,
        **option_fields,
    ):
        super().__init__(model, options or EngineOptions(**option_fields), name)
        self.prompt_cache = PromptCache() if prompt_cache is None else PromptCache(prompt_cache)
        self.timing = TimingModel()  # learns this server's seconds from finished runs (estimate_seconds)
        self._taesd: TinyDecoder | None = None  # the taesd preview's autoencoder, loaded once per load

    def unload(self) -> bool:
        self._taesd = None
        return super().unload()

    def decoder(self, preview: str) -> PreviewDecoder:
        """How step latents become pictures for ``preview`` (``approx``, ``taesd`` or ``full``) on this model."""
        if self._taesd is None or self._taesd.loaded is not self.loaded:
            self._taesd = TinyDecoder(self.loaded, self.taesd_id)
        return preview_decoder(self.loaded, preview, self._taesd)

    # -- runs ----------------------------------------------------------------------------------------------

    def prepare(self, request: GenerationRequest) -> PreparedRequest:
        """``prepare_request`` for the loaded model: its family's defaults and checks, its listed LoRAs, and where
        its text encoder cuts a long prompt."""
        family = self.loaded.family
        prepared = prepare_request(request, family, self.lora_specs)
        return self._with_model_warnings(prepared)

    def _with_model_warnings(self, prepared: PreparedRequest) -> PreparedRequest:
        tokenizer, limit = self.loaded.prompt_tokenizer
        return with_truncation_warnings(prepared, tokenizer, limit, self.loaded.family.negative_prompt)

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
            pipe, recorder = request_pipeline(
                lm, prepared, self.decoder(prepared.request.preview), on_step, should_stop
            )
            # 4. The prompts' embeddings, from the prompt cache when the same prompts came before
            prompts, text_seconds = self.prompt_cache.embeddings(
                PromptCache.model_key(self.model, prepared.loras),
                lm.family,
                pipe,
                prepared.prompt,
                prepared.negative_prompt,
                float(prepared.request.guidance_scale),
            )
            # 5. Denoise with diffusers' own loop
            done = call_pipeline(lm, pipe, recorder, prepared, prompts)
            t_done = time.perf_counter()
        # 6. Check the output: NaN/inf, the safety checker, a stop
        warnings = output_warnings(lm, done, prepared)
        # 7. The result, with the steps counted and the parts of the run timed (the timing model learns them)
        seconds = timed_seconds(t_start, t_locked, t_done, run_parts(recorder, text_seconds, t_done))
        result = make_result(lm, prepared, done, warnings, seconds, self._model_hash, model=self.name)
        self._learn_times(prepared, recorder.model_calls, text_seconds, seconds)
        return result

    def _prepared(self, request: GenerationRequest | PreparedRequest) -> PreparedRequest:
        """``request`` prepared for this model; a prepared one as it is, unless made for another family."""
        if isinstance(request, PreparedRequest):
            if request.family == self.loaded.family.name:
                return self._with_model_warnings(request)
            request = request.asked
        return self.prepare(request)

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
        lm = self.loaded
        guided = guidance_on(lm.family, lm.img2img, float(prepared.request.guidance_scale))
        observed = run_times(self.model, prepared, guided, calls, text_seconds, seconds)
        if observed is not None:
            self.timing.observe(observed)

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
        asked = planned_run(prepared_or_plan, width, height, guidance, sampler, preview, mode, self.family.sampler)
        on, text_cached = asked.guidance > 1, False
        if self.is_loaded:
            lm = self.loaded
            on = guidance_on(lm.family, lm.img2img, asked.guidance)
            if asked.prompts is not None and cacheable(lm.family, lm.img2img):
                text_cached = PromptCache.key(self.model, lm.img2img, *asked.prompts, on) in self.prompt_cache
        return self.timing.estimate(
            self.model,
            pixels=asked.width * asked.height,
            guidance=on,
            calls=model_calls(asked.sampler, asked.plan.steps_to_run),
            mode=asked.mode,
            preview=asked.preview,
            text_cached=text_cached,
        )
