"""The engine: faithful img2img and prompt2img on diffusers' own pipelines, with every step captured.

    engine = Engine("stable-diffusion-v1-5/stable-diffusion-v1-5")
    result = engine.generate(GenerationRequest(prompt="fire", init_image="fireplace.png", strength=0.7, steps=10))
    result.steps_taken  # 7, counted from the run
    for item in engine.stream(request):  # StepFrame … as each step is computed, then the GenerationResult
        ...

Each request gets its own shallow copy of the loaded pipeline and its own scheduler, so requests never
share scheduler state; runs on one device take turns on that device's lock. Noise comes from a CPU
``torch.Generator`` seeded with the request's seed, so a seed gives the same image on cpu, cuda and mps,
and the same image as diffusers' own pipelines called with ``torch.Generator("cpu").manual_seed(seed)``.
"""

from __future__ import annotations

import copy
import dataclasses
import queue
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
from PIL import Image

from sd_img2img import __version__
from sd_img2img.config import (
    DEFAULT_MODEL,
    DEFAULT_PREVIEW,
    DEFAULT_RESIZE_MODE,
    DEFAULT_VAE,
    MAX_DIMENSION,
    MAX_GUIDANCE,
    MAX_PROMPT_CHARS,
    MAX_SEED,
    MAX_SIDE,
    MIN_DIMENSION,
    RESIZE_MODES,
    VIEWS,
)
from sd_img2img.errors import GenerationError, UserInputError, check_choice
from sd_img2img.models import loras as lora_support
from sd_img2img.models.devices import free_memory
from sd_img2img.models.families import Family, default_family
from sd_img2img.models.loading import LoadedModel, configure_vae, load_model, load_taesd
from sd_img2img.run.images import default_size, fit_image, open_image
from sd_img2img.run.previews import PreviewDecoder, check_preview, make_strip
from sd_img2img.run.prompt_cache import PromptCache, cacheable, guidance_on
from sd_img2img.run.samplers import check_sampler, check_schedule_length, make_scheduler
from sd_img2img.run.schedule import StepPlan, plan_steps
from sd_img2img.run.steps import StepFrame, StepRecorder
from sd_img2img.run.timing import RunTimes, TimingModel, model_calls


@dataclass
class GenerationRequest:
    """One run's settings. ``init_image=None`` means prompt2img (strength does not apply).

    Args:
        prompt: what to make.
        init_image: a path, bytes or PIL image; ``None`` for prompt2img.
        negative_prompt: what to steer away from (LCM takes none: a warning says it was ignored).
        strength: 0 < strength ≤ 1; how much of the schedule runs, and how far the init image may change.
        steps: schedule length, or with ``real_steps`` the number of steps that must run.
        real_steps: pick the schedule length so that exactly ``steps`` steps run.
        seed: 0 ≤ seed < 2**32; ``None`` picks one at random (the result reports it).
        sampler: a name from ``samplers.ALL_SAMPLER_NAMES`` that fits the model's family (``Engine.samplers``).
        guidance_scale: classifier-free guidance; 1 turns it off (LCM: the guidance embedding's scale).
        strength, steps, sampler, guidance_scale: ``None`` (the default) takes the loaded model's family's
            default (``Engine.defaults``; SD 1.x/2.x: 0.75, 30, k_lms, 7.5).
        width, height: multiples of 8; ``None`` takes the init image's own size (longest side ≤ ``max_side``),
            for prompt2img the family's size (512; SDXL 1024).
        resize_mode: how the init image is fitted to width×height: ``resize``, ``crop`` or ``fill``.
        preview: how step latents become pictures: ``approx``, ``taesd`` or ``full``.
        view: the view decoded while the run goes (``latents`` or ``x0``); with ``taesd``/``full`` the
            other view is decoded when first asked for, so the run pays for one decode a step. ``approx``
            decodes both (it is nearly free).
        max_side: cap on the longest side of the default size.
        loras: LoRA name → scale for this run (names from ``Engine.loras``; absent or 0 = off); ``None``: each
            listed LoRA at its start-up scale.
    """

    prompt: str
    init_image: Any = None
    negative_prompt: str = ""
    strength: float | None = None
    steps: int | None = None
    real_steps: bool = False
    seed: int | None = None
    sampler: str | None = None
    guidance_scale: float | None = None
    width: int | None = None
    height: int | None = None
    resize_mode: str = DEFAULT_RESIZE_MODE
    preview: str = DEFAULT_PREVIEW
    view: str = "latents"
    max_side: int = MAX_SIDE
    loras: dict[str, float] | None = None


_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")


def clean_prompt(text: str) -> tuple[str, int]:
    """Drop control characters (NUL and friends, but not tab/newline) and lone surrogates; return the count."""
    cleaned, count = _CONTROL_CHARS.subn("", text)
    return cleaned, count


@dataclass
class PreparedRequest:
    """A checked request: prompts cleaned, image opened and fitted, size and seed settled, steps planned."""

    request: GenerationRequest
    prompt: str
    negative_prompt: str
    image: Image.Image | None
    width: int
    height: int
    seed: int
    plan: StepPlan
    warnings: list[str] = field(default_factory=list)
    loras: dict[str, float] = field(default_factory=dict)  # the LoRAs this run switches on (name → scale)

    @property
    def mode(self) -> str:
        return "txt2img" if self.image is None else "img2img"


@dataclass
class GenerationResult:
    """What a run made and how: the output, every step, and the settings that reproduce it."""

    output: Image.Image
    frames: list[StepFrame]
    mode: str  # "img2img" or "txt2img"
    prompt: str
    negative_prompt: str
    seed: int
    steps: int  # as asked
    real_steps: bool
    schedule_steps: int  # length of the schedule handed to the scheduler
    steps_taken: int  # counted from the run
    model_calls: int  # UNet evaluations (Heun and DPM2 take two a step, PLMS two on its first)
    strength: float | None
    sampler: str
    guidance_scale: float
    width: int
    height: int
    resize_mode: str
    preview: str
    model: str
    seconds: dict[str, float]
    family: str = ""  # the model's family (families.FAMILIES), e.g. "sdxl-turbo"
    nsfw_flagged: bool = False
    stopped: bool = False
    warnings: list[str] = field(default_factory=list)
    model_hash: str | None = None  # AUTOMATIC1111-style short hash of the weights, once the engine has it
    plan: StepPlan | None = field(default=None, repr=False)  # what was planned: the family's label and step rule
    loras: dict[str, float] = field(default_factory=dict)  # the LoRAs that were on (name → scale)
    dtype: str = ""  # the dtype the run computed in (float32, bfloat16, float16)
    vae: str = "full"  # the autoencoder that encoded and decoded: the checkpoint's ("full") or TAESD ("tiny")

    def step_images(self, view: str = "latents") -> list[Image.Image]:
        """Step images, step 0 first; ``view`` is ``latents`` (noisy, as the UNet sees them) or ``x0``."""
        check_choice("view", view, VIEWS)
        return [f.image(view) for f in self.frames]

    def strip(self, view: str = "latents") -> Image.Image:
        """All step images side by side in one picture."""
        return make_strip(self.step_images(view))

    def settings(self) -> dict[str, Any]:
        """The settings that reproduce this run (what PNG metadata records)."""
        return dict(
            generator=f"sd-img2img {__version__}",
            mode=self.mode,
            model=self.model,
            prompt=self.prompt,
            negative_prompt=self.negative_prompt,
            seed=self.seed,
            steps=self.steps,
            real_steps=self.real_steps,
            schedule_steps=self.schedule_steps,
            steps_taken=self.steps_taken,
            model_calls=self.model_calls,
            strength=self.strength,
            sampler=self.sampler,
            guidance_scale=self.guidance_scale,
            width=self.width,
            height=self.height,
            resize_mode=self.resize_mode,
            stopped=self.stopped,
            **({"model_hash": self.model_hash} if self.model_hash else {}),
            **({"loras": dict(self.loras)} if self.loras else {}),
        )

    def info(self) -> dict[str, Any]:
        """Settings plus how the run went: timings, flags, warnings (JSON-ready)."""
        return {
            **self.settings(),
            "family": self.family,
            "preview": self.preview,
            "dtype": self.dtype,
            "vae": self.vae,
            "seconds": self.seconds,
            "nsfw_flagged": self.nsfw_flagged,
            "warnings": list(self.warnings),
        }


def _check_int(name: str, value, low: int, high: int, hint: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise UserInputError(f"{name} must be a whole number, got {value!r}")
    if not low <= value <= high:
        raise UserInputError(f"{name}={value} is out of range [{low}, {high}]; {hint}")
    return value


def with_defaults(request: GenerationRequest, family: Family | None = None) -> GenerationRequest:
    """``request`` with the settings it leaves unset (``None``) taken from ``family``'s defaults."""
    family = family or default_family()
    changes = {
        name: family.defaults[name]
        for name in ("steps", "strength", "guidance_scale", "sampler")
        if getattr(request, name) is None
    }
    return dataclasses.replace(request, **changes) if changes else request


def check_inputs(request: GenerationRequest, family: Family | None = None) -> None:
    """Check every setting of ``request`` that needs neither the loaded model nor the image's pixels.

    ``family`` (the model's, e.g. ``Engine.family``; None: SD 1.x/2.x) fills unset settings and says which
    samplers fit and how steps are counted. Raises ``UserInputError`` naming the bad value and saying what to
    change. Flat, like diffusers' own ``check_inputs``: it opens nothing and changes nothing
    (``prepare_request`` does that).
    """
    family = family or default_family()
    r = with_defaults(request, family)
    for name, text in (("prompt", r.prompt), ("negative prompt", r.negative_prompt)):
        if not isinstance(text, str):
            raise UserInputError(f"{name} must be text, got {type(text).__name__}")
        if len(text) > MAX_PROMPT_CHARS:
            raise UserInputError(
                f"the {name} is {len(text)} characters, above the limit of {MAX_PROMPT_CHARS}; "
                "shorten it (the text encoder reads about 75 tokens anyway)"
            )
    check_sampler(r.sampler, family)
    check_preview(r.preview)
    check_choice("view", r.view, VIEWS)
    check_choice("resize mode", r.resize_mode, RESIZE_MODES)
    if (
        isinstance(r.guidance_scale, bool)
        or not isinstance(r.guidance_scale, (int, float))
        or not 0 <= r.guidance_scale <= MAX_GUIDANCE
        or r.guidance_scale != r.guidance_scale
    ):
        raise UserInputError(f"guidance scale must be between 0 and {MAX_GUIDANCE}, got {r.guidance_scale!r}")
    if r.seed is not None:
        _check_int("seed", r.seed, 0, MAX_SEED - 1, "use a seed from 0 to 4294967295, or none for a random one")
    for name in ("width", "height"):
        value = getattr(r, name)
        if value is not None:
            value = _check_int(
                name, value, MIN_DIMENSION, MAX_DIMENSION, f"use {MIN_DIMENSION} to {MAX_DIMENSION} pixels"
            )
            m = family.size_multiple
            if value % m:
                raise UserInputError(
                    f"{name}={value} is not a multiple of {m}"
                    + (f" ({family.label} works on 2×2 latent patches)" if m != 8 else "")
                    + f"; use {value // m * m} or {value // m * m + m}"
                )
    if r.init_image is None:
        if not family.can_txt2img:
            raise UserInputError(
                f"the {family.label} cannot start from pure noise (prompt2img); give it an initial "
                "image to refine, e.g. an SDXL base model's output"
            )
        plan_steps(r.steps, None, family=family)
    else:
        plan_steps(r.steps, r.strength, r.real_steps, family=family)


def output_size(request: GenerationRequest, image: Image.Image | None, family: Family | None = None) -> tuple[int, int]:
    """Width and height of the run: as asked, else from the init image (one side given: keep its aspect),
    else the family's size for prompt2img (512; SDXL 1024)."""
    r = request
    family = family or default_family()
    m = family.size_multiple
    if image is None:
        return (
            int(r.width) if r.width is not None else family.size,
            int(r.height) if r.height is not None else family.size,
        )
    if r.width is not None and r.height is not None:
        return int(r.width), int(r.height)
    if r.width is not None:
        return int(r.width), max(MIN_DIMENSION, min(MAX_DIMENSION, round(r.width * image.height / image.width / m) * m))
    if r.height is not None:
        return max(MIN_DIMENSION, min(MAX_DIMENSION, round(r.height * image.width / image.height / m) * m)), int(
            r.height
        )
    width, height = default_size(*image.size, max_side=r.max_side)
    return width // m * m, height // m * m


def prepare_request(request: GenerationRequest, family: Family | None = None) -> PreparedRequest:
    """Check ``request``, then settle everything a run needs short of the model.

    1. ``check_inputs`` (unset settings take ``family``'s defaults; None: SD 1.x/2.x); 2. prompts cleaned of
    control characters (with a warning); 3. the seed (a random one when none is given); 4. the init image
    opened (size checked before decoding), made upright RGB and fitted to the run's size; 5. the steps
    planned; 6. warnings for settings the family runs but was not made for.
    """
    family = family or default_family()
    check_inputs(request, family)
    r = with_defaults(request, family)
    # 2. prompts
    prompts, warnings = [], []
    for name, text in (("prompt", r.prompt), ("negative prompt", r.negative_prompt)):
        text, removed = clean_prompt(text)
        if removed:
            warnings.append(f"removed {removed} control character{'s' * (removed > 1)} from the {name}")
        prompts.append(text)
    # 3. seed
    seed = secrets.randbelow(MAX_SEED) if r.seed is None else _check_int("seed", r.seed, 0, MAX_SEED - 1, "")
    # 4. image and size
    image = open_image(r.init_image) if r.init_image is not None else None
    width, height = output_size(r, image, family)
    if image is not None:
        image = fit_image(image, width, height, r.resize_mode)
    # 5. steps
    plan = (
        plan_steps(r.steps, r.strength, r.real_steps, family=family)
        if image is not None
        else plan_steps(r.steps, None, family=family)
    )
    # 6. settings that run but the family was not made for
    warnings.extend(family_warnings(family, r, prompts[1], width, height))
    return PreparedRequest(
        request=r,
        prompt=prompts[0],
        negative_prompt=prompts[1],
        image=image,
        width=width,
        height=height,
        seed=seed,
        plan=plan,
        warnings=warnings,
    )


def family_warnings(
    family: Family, request: GenerationRequest, negative_prompt: str, width: int, height: int
) -> list[str]:
    """What runs but not as the family was made to: small SDXL sizes, guided Turbo, LCM's negative prompt."""
    out = []
    if family.min_size and min(width, height) < family.min_size:
        out.append(
            f"{family.label} was trained at {family.size}×{family.size}; {width}×{height} is below "
            f"{family.min_size} px, expect poor pictures"
        )
    if family.guidance_ignored and request.guidance_scale:
        out.append(f"{family.label} has no guidance; guidance {request.guidance_scale:g} was ignored")
    if family.trained_without_guidance and request.guidance_scale > 1:
        out.append(
            f"{family.label} was trained without guidance (guidance 0); guidance {request.guidance_scale:g} "
            "runs, doubles each step's work and often looks worse"
        )
    if not family.negative_prompt and negative_prompt:
        out.append(f"{family.label} takes no negative prompt (its guidance is built into the model); it was ignored")
    return out


def truncation_warning(tokenizer, text: str, name: str, limit: int | None = None) -> str | None:
    """Say where the text encoder cuts a prompt longer than its 77 tokens (``limit`` tokens: T5's
    ``max_sequence_length`` less its end token), or None if it fits."""
    if not text or tokenizer is None:
        return None
    if limit is None:
        limit = tokenizer.model_max_length - 2  # without the start and end tokens
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, truncation=False)
    ids = enc["input_ids"]
    if len(ids) <= limit:
        return None
    cut = enc["offset_mapping"][limit][0]
    dropped = text[cut:].strip()
    shown = dropped if len(dropped) <= 40 else dropped[:40] + "…"
    return (
        f"the {name} is {len(ids)} tokens and the text encoder reads {limit}: it was cut at character {cut}, "
        f"so “{shown}” was ignored"
    )


class Engine:
    """Loads a checkpoint once (lazily, thread-safe) and runs img2img / prompt2img with step capture.

    Args:
        model: hub id or local diffusers folder, safetensors (a family of ``families.FAMILIES``).
        device: ``auto``, ``cpu``, ``cuda`` or ``mps``.
        dtype: ``auto``, ``float16``, ``bfloat16`` or ``float32``.
        offload: ``none``, ``model`` or ``sequential`` (accelerate).
        safety_checker: keep the checkpoint's safety checker if it has one.
        taesd: hub id or folder of the TAESD decoder used by ``preview="taesd"``; None: the family's
            (``madebyollin/taesd``; SDXL ``taesdxl``, SD3 ``taesd3``, FLUX ``taef1``).
        compile: ``torch.compile`` the UNet at load and warm it up there (GPU; see docs/performance.md).
        config: for a single-file ``model``, a local diffusers folder describing it (None: the shipped configs).
        vae: ``full`` (the checkpoint's VAE) or ``tiny`` (the family's tiny autoencoder, or ``taesd``, encodes and
            decodes; see docs/performance.md).
        prompt_cache: prompt embeddings kept for repeated prompts (0: none); outputs are unchanged by it.
        loras: LoRA files as ``FILE[:SCALE]`` strings or ``loras.LoraSpec``s, loaded with the model; requests
            switch them on and off and scale them (``GenerationRequest.loras``; see ``Engine.loras``).
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        device: str = "auto",
        dtype: str = "auto",
        offload: str = "none",
        safety_checker: bool = True,
        taesd: str | None = None,
        compile: bool = False,
        config: str | None = None,
        loras=None,
        vae: str = DEFAULT_VAE,
        prompt_cache: int | None = None,
    ):
        self.model = model
        self.config = config
        self.lora_specs = lora_support.as_specs(loras)
        if compile and self.lora_specs:
            raise UserInputError(
                "--compile with --lora is not supported: LoRA adapters are switched per run, which "
                "the compiled UNet would recompile for; leave one of them out"
            )
        self.device = device
        self.dtype = dtype
        self.offload = offload
        self.safety_checker = safety_checker
        self.taesd = taesd  # None: the family's tiny autoencoder
        self.compile = compile  # torch.compile the UNet at load (warmed up there); see loading.compile_unet
        self.vae = vae
        self.prompt_cache = PromptCache() if prompt_cache is None else PromptCache(prompt_cache)
        self.timing = TimingModel()  # learns this server's seconds from finished runs (estimate_seconds)
        self._loaded: LoadedModel | None = None
        self._taesd = None
        self._peeked: Family | None = None
        self._load_lock = threading.Lock()
        self.load_error: Exception | None = None
        self.load_seconds: float | None = None
        self._model_hash: str | None = None

    # -- loading -------------------------------------------------------------------------------------------

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
        if self._loaded is not None:
            return self._loaded.family
        if self._peeked is None:
            self._peeked = self._peek()
        return self._peeked if self._peeked is not None else self.loaded.family

    def peek_family(self) -> Family | None:
        """The family if it can be told without loading any weights, else None."""
        if self._loaded is not None:
            return self._loaded.family
        if self._peeked is None:
            self._peeked = self._peek()
        return self._peeked

    def _peek(self) -> Family | None:
        from sd_img2img.models.single_file import peek_model

        return lora_support.with_lcm_sampler(peek_model(self.model, self.config), self.lora_specs)

    @property
    def loras(self) -> dict[str, float]:
        """The LoRAs listed at start-up (name → start-up scale), in order: what a page may offer to switch on,
        off and scale (``GenerationRequest.loras``)."""
        return {spec.name: spec.scale for spec in self.lora_specs}

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
        return self.taesd or self.family.taesd

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

    def load(self) -> LoadedModel:
        """Load the checkpoint once; later calls return it. A failed load is remembered and re-raised."""
        with self._load_lock:
            if self._loaded is None:
                t = time.perf_counter()
                try:
                    loaded = load_model(
                        self.model,
                        self.device,
                        self.dtype,
                        self.offload,
                        self.safety_checker,
                        compile=self.compile,
                        config=self.config,
                        vae=self.vae,
                        taesd=self.taesd,
                    )
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

    def model_hash(self) -> str | None:
        """The weights' AUTOMATIC1111-style short hash (``model_hash.model_hash``): computed on first call (it reads
        the UNet's weights once), then written into every result's settings and PNG."""
        if self._model_hash is None:
            from sd_img2img.models.model_hash import model_hash

            self._model_hash = model_hash(self.model)
        return self._model_hash

    def _taesd_decoder(self):
        if self._taesd is None:
            lm = self.loaded
            if lm.vae_kind == "tiny" and lm.taesd == self.taesd_id:  # the pipelines' own VAE is that TAESD
                self._taesd = lm.vae
            else:
                taesd = load_taesd(
                    self.taesd_id, lm.dtype, purpose="the taesd preview", hint="use preview 'approx' or 'full'"
                )
                self._taesd = taesd.to(lm.execution_device)
        return self._taesd

    def decoder(self, preview: str) -> PreviewDecoder:
        check_preview(preview)
        lm = self.loaded
        return PreviewDecoder(
            preview,
            vae=lm.vae,
            taesd=self._taesd_decoder() if preview == "taesd" else None,
            device=lm.execution_device,
            lock=lm.lock,
            factors=lm.family.approx_factors,
            bias=lm.family.approx_bias,
        )

    # -- generation ----------------------------------------------------------------------------------------

    def prepare(self, request: GenerationRequest) -> PreparedRequest:
        """``prepare_request`` for the model's family, plus the checks that need the loaded model (schedule
        length, prompt length)."""
        prepared = prepare_request(request, self.loaded.family)
        check_schedule_length(
            prepared.request.sampler, prepared.plan.schedule_steps, self.loaded.img2img.scheduler.config
        )
        tokenizer, limit = self.loaded.prompt_tokenizer
        texts = [("prompt", prepared.prompt)]
        if self.loaded.family.negative_prompt:
            texts.append(("negative prompt", prepared.negative_prompt))
        for name, text in texts:
            warning = truncation_warning(tokenizer, text, name, limit)
            if warning:
                prepared.warnings.append(warning)
        prepared.loras = lora_support.resolve(request.loras, self.loras)
        family = self.loaded.family
        if (
            prepared.request.sampler == "lcm"
            and family.name != "lcm"
            and not any(s.lcm and s.name in prepared.loras for s in self.lora_specs)
        ):
            prepared.warnings.append(
                "sampler lcm needs an LCM-LoRA switched on ("
                + ", ".join(s.name for s in self.lora_specs if s.lcm)
                + "); without it expect a poor picture"
            )
        elif prepared.request.sampler == "lcm" and family.name != "lcm" and prepared.request.guidance_scale > 2:
            prepared.warnings.append(
                f"an LCM-LoRA works at guidance 1 to 2; {prepared.request.guidance_scale:g} "
                "runs but usually burns the picture"
            )
        return prepared

    def generate(
        self,
        request: GenerationRequest,
        on_step: Callable[[StepFrame], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> GenerationResult:
        """Run a request to the end (or until ``should_stop()`` turns True between steps).

        Args:
            request: the settings.
            on_step: called with each ``StepFrame`` as soon as it is computed (step 0 first).
            should_stop: polled after each step; True ends the run, keeping the steps computed so far
                (the output is then the partial latents, decoded).
        """
        t_start = time.perf_counter()
        # 1. Check and prepare the request, before waiting for the device
        prepared = self.prepare(request)
        lm = self.loaded
        # 2. Take the device: runs on one device take turns
        with lm.lock:
            t_locked = time.perf_counter()
            configure_vae(lm, prepared.width, prepared.height)  # tiling above a size threshold, GPU only
            if self.lora_specs:
                lora_support.apply(lm.img2img, prepared.loras)  # the adapters live in the shared modules
            # 3. A request-scoped pipeline: shared weights, its own scheduler, the step recorder attached
            pipe, recorder = self._request_pipeline(prepared, on_step, should_stop)
            # 4. The prompts' embeddings, from the prompt cache when the same prompts came before
            # (keyed by the LoRAs that are on too: a LoRA on the text encoder changes the embeddings)
            prompts, text_seconds = self.prompt_cache.embeddings(
                self.model + (f"|{lora_support.format_scales(prepared.loras)}" if prepared.loras else ""),
                pipe,
                prepared.prompt,
                prepared.negative_prompt,
                float(prepared.request.guidance_scale),
            )
            # 5. Denoise with diffusers' own loop
            out = self._denoise(pipe, recorder, prepared, prompts)
            t_done = time.perf_counter()
        # 6. Check the output: NaN/inf, the safety checker, a stop
        warnings = self._check_output(out, recorder, prepared)
        # 7. The result, with the steps counted and the parts of the run timed (the timing model learns them)
        seconds = dict(
            total=time.perf_counter() - t_start,
            queued=t_locked - t_start,
            run=t_done - t_locked,
            **self._run_parts(recorder, text_seconds, t_done),
        )
        result = self._result(prepared, out, recorder, warnings, seconds=seconds)
        self._learn_times(prepared, recorder, text_seconds, seconds)
        return result

    @staticmethod
    def _run_parts(recorder: StepRecorder, text_seconds: float | None, t_done: float) -> dict[str, float]:
        """The run's time in parts: text encoding, up to the first step (VAE encode), the steps, the decode."""
        frames = recorder.frames
        if not frames:
            return {}
        text = text_seconds or 0.0
        return dict(
            text_encode=text,
            before_steps=max(0.0, frames[0].seconds - text),
            steps=frames[-1].seconds - frames[0].seconds,
            after_steps=max(0.0, t_done - recorder.started - frames[-1].seconds),
        )

    def _learn_times(
        self, prepared: PreparedRequest, recorder: StepRecorder, text_seconds: float | None, seconds: dict[str, float]
    ) -> None:
        if "steps" not in seconds:
            return
        r = prepared.request
        self.timing.observe(
            RunTimes(
                model=self.model,
                pixels=prepared.width * prepared.height,
                guidance=guidance_on(self.loaded.img2img, float(r.guidance_scale)),
                mode=prepared.mode,
                preview=r.preview,
                text_encode=text_seconds,
                before_steps=seconds["before_steps"],
                step_calls=recorder.model_calls,
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
            prepared_or_plan: a ``PreparedRequest`` (``engine.prepare(request)``: size, guidance, sampler,
                preview and prompts come from it) or a ``StepPlan`` (then give width, height and guidance).
            width, height, guidance: override the prepared request's, or complete a plan.
            sampler, preview, mode: as for the run (defaults: the request's, else k_lms, approx, and img2img
                when the plan has a strength).
        Not counted: time waiting for the device (runs ahead in the queue: add their estimates).
        """
        if isinstance(prepared_or_plan, PreparedRequest):
            p, r = prepared_or_plan, prepared_or_plan.request
            plan = p.plan
            width, height = width or p.width, height or p.height
            guidance = r.guidance_scale if guidance is None else guidance
            sampler, preview, mode = sampler or r.sampler, preview or r.preview, mode or p.mode
            prompts = (p.prompt, p.negative_prompt)
        else:
            plan, prompts = prepared_or_plan, None
            if width is None or height is None or guidance is None:
                raise ValueError("with a StepPlan, give width, height and guidance")
            sampler, preview = sampler or self.family.sampler, preview or DEFAULT_PREVIEW
            mode = mode or ("txt2img" if plan.strength is None else "img2img")
        text_cached = False
        if prompts is not None and self.is_loaded and cacheable(self.loaded.img2img):
            on = guidance_on(self.loaded.img2img, float(guidance))
            text_cached = PromptCache.key(self.model, self.loaded.img2img, *prompts, on) in self.prompt_cache
        on = guidance_on(self.loaded.img2img, float(guidance)) if self.is_loaded else float(guidance) > 1
        return self.timing.estimate(
            self.model,
            pixels=int(width) * int(height),
            guidance=on,
            calls=model_calls(sampler, plan.steps_to_run),
            mode=mode,
            preview=preview,
            text_cached=text_cached,
        )

    def _request_pipeline(self, prepared: PreparedRequest, on_step, should_stop) -> tuple[Any, StepRecorder]:
        """A shallow copy of the loaded pipeline with its own scheduler, and a ``StepRecorder`` on it."""
        r, lm = prepared.request, self.loaded
        base = lm.img2img if prepared.image is not None else lm.txt2img
        assert base is not None, "prepare_request refuses prompt2img for a family without a prompt2img pipeline"
        pipe = copy.copy(base)
        pipe.scheduler = make_scheduler(r.sampler, base.scheduler.config)
        views = VIEWS if r.preview == "approx" else (r.view,)
        unpack = None
        if lm.family.packed:  # FLUX: pictures need the latents unpacked to (1, 16, h, w)

            def unpack(x, w=prepared.width, h=prepared.height):
                return pipe._unpack_latents(x, h, w, pipe.vae_scale_factor)

        recorder = StepRecorder(
            pipe,
            self.decoder(r.preview),
            prepared.plan.steps_to_run,
            on_step,
            should_stop,
            views,
            flow=lm.family.rule == "flow",
            unpack=unpack,
        )
        return pipe, recorder

    def _denoise(self, pipe, recorder: StepRecorder, prepared: PreparedRequest, prompts: dict | None = None):
        """Call the pipeline; out of memory becomes a ``GenerationError`` saying what to lower.

        ``prompts``: the prompts as the pipeline takes them (text, or ``prompt_embeds`` from the prompt cache).
        """
        r, lm = prepared.request, self.loaded
        if prompts is None:
            prompts = dict(prompt=prepared.prompt)
            if lm.family.negative_prompt:
                prompts["negative_prompt"] = prepared.negative_prompt or None
        kwargs = dict(
            **prompts,
            num_inference_steps=prepared.plan.schedule_steps,
            guidance_scale=float(r.guidance_scale),
            generator=torch.Generator("cpu").manual_seed(prepared.seed),
            callback_on_step_end=recorder.callback_on_step_end,
        )
        if prepared.image is not None:
            kwargs.update(image=prepared.image, strength=float(r.strength))
        if prepared.image is None or lm.family.rule == "flow":  # FLUX img2img would otherwise work at 1024×1024
            kwargs.update(width=prepared.width, height=prepared.height)
        out = None
        try:
            with torch.inference_mode():
                out = pipe(**kwargs)
        except torch.OutOfMemoryError:
            pass  # handled below, once the exception (and the tensors its traceback holds) is gone
        if out is None:
            del pipe, recorder, kwargs
            free_memory(lm.device)
            raise GenerationError(
                f"out of memory on {lm.device} at {prepared.width}×{prepared.height}; lower width/height or "
                "steps, use preview 'approx', or start with --offload model (or sequential)"
            )
        return out

    def _check_output(self, out, recorder: StepRecorder, prepared: PreparedRequest) -> list[str]:
        """Raise on NaN/inf; return the run's warnings (the request's, a flagged output, a stop)."""
        if recorder.nonfinite_at is not None or not recorder.decoded_finite:
            at = recorder.nonfinite_at
            raise GenerationError(
                "the run produced NaN/inf values"
                + (f" at step {at}" if at is not None else " in the VAE decode")
                + f" (dtype {str(self.loaded.dtype).removeprefix('torch.')}); try --dtype float32 or another seed"
            )
        warnings = list(self.loaded.warnings) + list(prepared.warnings)  # at load (a flow model on the cpu) …
        if flagged(out):
            warnings.append("the safety checker flagged the output, so it was withheld (blacked out)")
        if recorder.stopped:
            warnings.append(f"stopped after {len(recorder.frames) - 1} of {prepared.plan.steps_to_run} steps")
        return warnings

    def _result(
        self, prepared: PreparedRequest, out, recorder: StepRecorder, warnings: list[str], seconds: dict[str, float]
    ) -> GenerationResult:
        r, plan, frames = prepared.request, prepared.plan, recorder.frames
        unet_seconds = sorted(b.seconds - a.seconds for a, b in zip(frames, frames[1:]))
        seconds = {k: round(v, 4) for k, v in seconds.items()}
        seconds["per_step"] = round(unet_seconds[len(unet_seconds) // 2], 4) if unet_seconds else 0.0
        return GenerationResult(
            output=out.images[0],
            frames=frames,
            mode=prepared.mode,
            prompt=prepared.prompt,
            negative_prompt=prepared.negative_prompt,
            seed=prepared.seed,
            steps=r.steps,
            real_steps=bool(r.real_steps),
            schedule_steps=plan.schedule_steps,
            steps_taken=len(frames) - 1,
            model_calls=recorder.model_calls,
            strength=float(r.strength) if prepared.image is not None else None,
            sampler=r.sampler,
            guidance_scale=float(r.guidance_scale),
            width=prepared.width,
            height=prepared.height,
            resize_mode=r.resize_mode,
            preview=r.preview,
            model=self.model,
            seconds=seconds,
            family=self.loaded.family.name,
            nsfw_flagged=flagged(out),
            stopped=recorder.stopped,
            warnings=warnings,
            model_hash=self._model_hash,
            plan=plan,
            loras=dict(prepared.loras),
            dtype=str(self.loaded.denoiser.dtype).removeprefix("torch."),
            vae=self.loaded.vae_kind,
        )

    def stream(
        self, request: GenerationRequest, should_stop: Callable[[], bool] | None = None
    ) -> Iterator[StepFrame | GenerationResult]:
        """Yield each ``StepFrame`` as soon as it is computed, then the ``GenerationResult``.

        Closing the iterator early (``.close()``, or a UI cancelling it) stops the run between steps.
        ``should_stop`` (optional) is polled between steps too; when it turns True the run ends gracefully
        and the iterator still yields the (stopped) ``GenerationResult``. Errors of the run are raised
        from the iterator.
        """
        items: queue.Queue = queue.Queue()
        stop = threading.Event()
        done = object()

        def work():
            try:
                items.put(
                    self.generate(
                        request,
                        on_step=items.put,
                        should_stop=lambda: stop.is_set() or (should_stop is not None and bool(should_stop())),
                    )
                )
            except BaseException as e:  # handed to the consumer
                items.put(e)
            finally:
                items.put(done)

        worker = threading.Thread(target=work, name="sd-img2img-run", daemon=True)
        worker.start()
        try:
            while True:
                item = items.get()
                if item is done:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()


def flagged(out) -> bool:
    """Whether the safety checker flagged the output (pipelines without one, such as SDXL's, never do)."""
    nsfw = getattr(out, "nsfw_content_detected", None)
    return bool(nsfw and nsfw[0])


__all__ = [
    "Engine",
    "GenerationRequest",
    "GenerationResult",
    "PreparedRequest",
    "StepFrame",
    "check_inputs",
    "prepare_request",
]
