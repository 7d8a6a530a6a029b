"""CPU speed: bf16 where it is native, the tiny autoencoder, the prompt cache, honest time estimates, SD-Turbo shapes."""

import io
import statistics
import sys

import pytest
import torch
from helpers import max_diff

from sd_img2img.engine import Engine, GenerationRequest
from sd_img2img.models import cpu_features
from sd_img2img.models.devices import resolve_dtype
from sd_img2img.plan.images import fit_image
from sd_img2img.plan.timing import TimingModel, format_duration, format_plan, format_wait, model_calls

# -- dtype auto -------------------------------------------------------------------------------------------------

EPYC = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 avx512_vnni\n"
SKYLAKE = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512bw avx512_vnni\n"
SAPPHIRE = "processor\t: 0\nflags\t\t: fpu avx512f amx_tile amx_bf16 amx_int8\n"
GRAVITON3 = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n"
GRAVITON2 = "processor\t: 0\nFeatures\t: fp asimd asimddp\n"


@pytest.mark.parametrize(
    "cpuinfo,machine,native",
    [
        (EPYC, "x86_64", True),
        (SKYLAKE, "x86_64", False),
        (SAPPHIRE, "x86_64", True),
        (GRAVITON3, "aarch64", True),
        (GRAVITON2, "aarch64", False),
        ("", "x86_64", False),
    ],
)
def test_native_bf16_is_read_from_the_cpu_flags(cpuinfo, machine, native):
    assert cpu_features.has_native_bf16(cpuinfo, machine) is native


@pytest.fixture
def this_cpu(monkeypatch):
    """Make this machine's /proc/cpuinfo (and its platform.machine()) read as given: ``this_cpu(text, machine)``;
    ``text=None``: /proc/cpuinfo cannot be read. The detection is read afresh each time."""
    monkeypatch.delenv(cpu_features.ENV, raising=False)

    def pretend(cpuinfo: str | None, machine: str = "x86_64") -> None:
        def fake_open(path, *args, **kwargs):
            if path != "/proc/cpuinfo":
                raise AssertionError(f"the detection opened {path}")
            if cpuinfo is None:
                raise PermissionError(path)
            return io.StringIO(cpuinfo)

        monkeypatch.setattr(cpu_features, "open", fake_open, raising=False)  # the module's own name for open
        monkeypatch.setattr(cpu_features.platform, "machine", lambda: machine)
        cpu_features._detected.cache_clear()

    yield pretend
    cpu_features._detected.cache_clear()


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS asks sysctl, not /proc/cpuinfo")
@pytest.mark.parametrize(
    "cpuinfo,machine,override,dtype",
    [
        (EPYC, "x86_64", None, torch.bfloat16),  # detected: bf16
        (SKYLAKE, "x86_64", None, torch.float32),  # AVX-512 without BF16: float32
        (GRAVITON3, "aarch64", None, torch.bfloat16),
        (None, "x86_64", None, torch.float32),  # /proc/cpuinfo unreadable: float32, no error
        (EPYC, "x86_64", "0", torch.float32),  # forced off: float32 whatever the CPU
        (EPYC, "x86_64", "off", torch.float32),
        (SKYLAKE, "x86_64", "1", torch.bfloat16),  # forced on
        (SKYLAKE, "x86_64", "yes", torch.bfloat16),
        (SKYLAKE, "x86_64", "maybe", torch.float32),  # not a yes or a no: the detection decides
        (EPYC, "x86_64", "", torch.bfloat16),
    ],
    ids=["epyc", "skylake", "graviton3", "unreadable", "epyc-0", "epyc-off", "skylake-1", "skylake-yes",
         "skylake-maybe", "epyc-empty"],
)  # fmt: skip
def test_auto_dtype_on_the_cpu_follows_the_cpu_flags_and_the_override(
    this_cpu, monkeypatch, cpuinfo, machine, override, dtype
):
    this_cpu(cpuinfo, machine)
    if override is not None:
        monkeypatch.setenv(cpu_features.ENV, override)
    assert resolve_dtype("auto", "cpu") == dtype
    assert cpu_features.native_bf16() is (dtype == torch.bfloat16)
    assert resolve_dtype("auto", "cuda") == torch.float16  # a GPU: float16 whatever the CPU
    assert resolve_dtype("float32", "cpu") == torch.float32 and resolve_dtype("bfloat16", "cpu") == torch.bfloat16


def test_the_run_says_which_dtype_ran(tiny_checkpoint, fireplace, monkeypatch):
    monkeypatch.setenv(cpu_features.ENV, "1")
    engine = Engine(str(tiny_checkpoint), device="cpu")  # dtype auto
    assert engine.loaded.dtype == torch.bfloat16 and engine.loaded.channels_last  # bf16 on the cpu: NHWC
    lm = engine.loaded  # every model really is in bf16 (from_pipe casts what it shares unless told the dtype)
    assert {m.dtype for m in (lm.img2img.unet, lm.img2img.vae, lm.img2img.text_encoder, lm.txt2img.unet)} == {
        torch.bfloat16
    }
    result = engine.generate(
        GenerationRequest(prompt="fire", init_image=fireplace, strength=0.5, steps=6, seed=3, width=64, height=64)
    )
    assert result.info()["dtype"] == "bfloat16" and result.info()["vae"] == "full"
    assert result.steps_taken == 3 and all(torch.isfinite(f.latents).all() for f in result.frames)


# -- the tiny autoencoder ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_vae_engine(tiny_checkpoint, tiny_taesd):
    e = Engine(str(tiny_checkpoint), device="cpu", dtype="float32", taesd=str(tiny_taesd), vae="tiny")
    e.load()
    return e


@pytest.fixture(scope="module")
def tiny_vae_reference(tiny_checkpoint, tiny_taesd):
    """diffusers' own pipelines with ``vae=AutoencoderTiny``, loaded on their own."""
    from diffusers import AutoencoderTiny, StableDiffusionImg2ImgPipeline, StableDiffusionPipeline

    vae = AutoencoderTiny.from_pretrained(tiny_taesd, use_safetensors=True)
    img2img = StableDiffusionImg2ImgPipeline.from_pretrained(tiny_checkpoint, vae=vae, use_safetensors=True)
    txt2img = StableDiffusionPipeline.from_pretrained(tiny_checkpoint, vae=vae, use_safetensors=True)
    for p in (img2img, txt2img):
        p.set_progress_bar_config(disable=True)
    return img2img, txt2img


def test_tiny_vae_img2img_equals_diffusers_with_autoencoder_tiny(tiny_vae_engine, tiny_vae_reference, fireplace):
    from diffusers import AutoencoderTiny

    from sd_img2img.plan.samplers import make_scheduler

    lm = tiny_vae_engine.loaded
    assert isinstance(lm.vae, AutoencoderTiny) and lm.txt2img.vae is lm.vae and lm.vae_kind == "tiny"
    result = tiny_vae_engine.generate(
        GenerationRequest(
            prompt="fire",
            init_image=fireplace,
            strength=0.7,
            steps=10,
            seed=11,
            sampler="k_euler",
            width=128,
            height=128,
        )
    )
    img2img, _ = tiny_vae_reference
    img2img.scheduler = make_scheduler("k_euler", img2img.scheduler.config)
    expected = img2img(
        prompt="fire",
        image=fit_image(fireplace, 128, 128),
        strength=0.7,
        num_inference_steps=10,
        guidance_scale=7.5,
        generator=torch.Generator("cpu").manual_seed(11),
    ).images[0]
    assert result.steps_taken == 7 and len(result.frames) == 8
    assert max_diff(result.output, expected) <= 2
    assert result.info()["vae"] == "tiny" and result.info()["dtype"] == "float32"


def test_tiny_vae_txt2img_equals_diffusers_and_the_taesd_preview_reuses_it(tiny_vae_engine, tiny_vae_reference):
    from sd_img2img.plan.samplers import make_scheduler

    result = tiny_vae_engine.generate(
        GenerationRequest(prompt="a cat", steps=5, seed=2, width=64, height=96, preview="taesd")
    )
    _, txt2img = tiny_vae_reference
    txt2img.scheduler = make_scheduler("k_lms", txt2img.scheduler.config)
    expected = txt2img(
        prompt="a cat",
        num_inference_steps=5,
        width=64,
        height=96,
        guidance_scale=7.5,
        generator=torch.Generator("cpu").manual_seed(2),
    ).images[0]
    assert result.steps_taken == 5 and len(result.frames) == 6
    assert max_diff(result.output, expected) <= 2
    assert tiny_vae_engine.decoder("taesd").taesd is tiny_vae_engine.loaded.vae  # one TAESD, not two


def test_vae_flag_reaches_the_engine(monkeypatch):
    from sd_img2img.settings import make_engine, parse_settings

    assert parse_settings([]).options.vae == "full"
    assert parse_settings(["--vae", "tiny"]).options.vae == "tiny"
    assert parse_settings([], environ={"SD_IMG2IMG_VAE": "tiny"}).options.vae == "tiny"
    with pytest.raises(SystemExit):
        parse_settings(["--vae", "small"])
    settings = parse_settings(["--model", "x/y", "--vae", "tiny"])
    assert make_engine(settings.model, settings.options).options.vae == "tiny"


# -- the prompt cache -------------------------------------------------------------------------------------------


def test_a_repeated_prompt_is_encoded_once_and_the_output_is_unchanged(tiny_checkpoint, fireplace):
    engine = Engine(str(tiny_checkpoint), device="cpu", dtype="float32")
    uncached = Engine(str(tiny_checkpoint), device="cpu", dtype="float32", prompt_cache=0)
    request = GenerationRequest(
        prompt="fire", negative_prompt="smoke", init_image=fireplace, strength=0.6, steps=5, seed=9, width=64, height=64
    )
    first, second = engine.generate(request), engine.generate(request)
    assert engine.prompt_cache.misses == 1 and engine.prompt_cache.hits == 1
    assert first.seconds["text_encode"] > 0 and second.seconds["text_encode"] == 0
    plain = uncached.generate(request)
    assert len(uncached.prompt_cache) == 0
    assert max_diff(first.output, second.output) == 0 and max_diff(first.output, plain.output) == 0
    # guidance off: the negative prompt is not encoded, and it is another entry
    engine.generate(
        GenerationRequest(
            prompt="fire",
            negative_prompt="smoke",
            init_image=fireplace,
            strength=0.6,
            steps=5,
            seed=9,
            width=64,
            height=64,
            guidance_scale=1.0,
        )
    )
    assert engine.prompt_cache.misses == 2 and len(engine.prompt_cache) == 2


# -- honest time ------------------------------------------------------------------------------------------------


def test_format_lines():
    assert format_plan(7, 41.0) == "7 steps will run · about 40 s here"
    assert format_plan(1, None) == "1 step will run"
    assert format_duration(3.4) == "about 3 s" and format_duration(80) == "about 1 min 20 s"
    assert format_duration(121) == "about 2 min"
    assert format_wait(80, 2) == "about 1 min 20 s before yours starts (2 runs ahead)"
    assert format_wait(None, 1) == "1 run ahead" and format_wait(0, 0) == "yours runs next"
    assert model_calls("k_heun", 4) == 7 and model_calls("plms", 4) == 5 and model_calls("k_lms", 4) == 4


@pytest.fixture
def one_thread():
    """One torch thread: two threads that must meet at every operator scatter by 3× when the other core is busy
    (docs/performance.md); one thread keeps the comparison about the estimate, not the neighbours."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_estimate_is_none_until_measured_then_follows_size_and_guidance(tiny_checkpoint, fireplace):
    engine = Engine(str(tiny_checkpoint), device="cpu", dtype="float32")
    request = GenerationRequest(
        prompt="a lake", init_image=fireplace, strength=0.8, steps=5, seed=4, width=64, height=64
    )
    prepared = engine.prepare(request)
    assert engine.estimate_seconds(prepared) is None  # nothing measured: no guess
    parts = engine.generate(request).seconds
    assert parts["steps"] > 0 and parts["before_steps"] > 0 and parts["after_steps"] > 0
    estimate = engine.estimate_seconds(engine.prepare(request))
    assert estimate is not None and estimate > 0
    # another size and guidance off are estimated from what was measured: 4× the pixels take longer, one model
    # call a step instead of two less long
    bigger = engine.estimate_seconds(prepared.plan, 128, 128, 7.5)
    unguided = engine.estimate_seconds(prepared.plan, 64, 64, 1.0)
    assert bigger is not None and unguided is not None and unguided < estimate < bigger


@pytest.mark.slow
def test_estimate_is_within_a_quarter_of_the_measured_time(tiny_checkpoint, fireplace, one_thread):
    engine = Engine(str(tiny_checkpoint), device="cpu", dtype="float32")
    request = GenerationRequest(
        prompt="a lake", init_image=fireplace, strength=0.8, steps=25, seed=4, width=192, height=192
    )
    # the process's first run at a size sets its kernels up (slower): another request, not counted below
    engine.generate(
        GenerationRequest(prompt="warm", init_image=fireplace, steps=4, strength=1.0, seed=1, width=192, height=192)
    )
    first = engine.generate(request)  # one run of the request
    estimate = engine.estimate_seconds(engine.prepare(request))
    runs = [engine.generate(request).seconds["run"] for _ in range(3)]  # the prompt is cached from here on
    measured = statistics.median(runs)
    assert abs(estimate - measured) <= 0.25 * measured, (estimate, runs, first.seconds)


def test_timing_model_scales_with_pixels_and_guidance():
    from sd_img2img.plan.timing import RunTimes

    t = TimingModel()
    assert t.estimate("m", pixels=512 * 512, guidance=True, calls=4) is None
    t.observe(
        RunTimes(
            model="m",
            pixels=256 * 256,
            guidance=True,
            mode="img2img",
            preview="approx",
            text_encode=0.5,
            before_steps=1.0,
            step_calls=4,
            steps_seconds=8.0,
            after_steps=2.0,
        )
    )
    same = t.estimate("m", pixels=256 * 256, guidance=True, calls=4)
    assert same == pytest.approx(0.5 + 1.0 + 8.0 + 2.0)
    assert t.estimate("m", pixels=512 * 512, guidance=True, calls=4, text_cached=True) == pytest.approx(4 * 11.0)
    assert t.estimate("m", pixels=256 * 256, guidance=False, calls=4, text_cached=True) == pytest.approx(1 + 4 + 2)
    # no guess from a size more than 4× away in pixels: a small run's fixed costs would be scaled up with it
    assert t.estimate("m", pixels=1024 * 1024, guidance=True, calls=4) is None
    assert t.estimate("m", pixels=64 * 64, guidance=False, calls=4) is None
