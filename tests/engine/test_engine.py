"""The engine on a tiny random checkpoint loaded through the user's own code path."""

import pytest
import torch
from helpers import max_diff
from PIL import Image

from sd_img2img.engine import Engine, GenerationRequest, prepare_request
from sd_img2img.errors import UserInputError
from sd_img2img.models.families import DIFFUSION_SAMPLERS
from sd_img2img.plan.images import fit_image
from sd_img2img.plan.samplers import make_scheduler


@pytest.fixture(scope="module")
def reference(tiny_checkpoint):
    """diffusers' own pipelines, loaded independently of the engine."""
    from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionPipeline

    img2img = StableDiffusionImg2ImgPipeline.from_pretrained(tiny_checkpoint, use_safetensors=True)
    txt2img = StableDiffusionPipeline.from_pretrained(tiny_checkpoint, use_safetensors=True)
    for p in (img2img, txt2img):
        p.set_progress_bar_config(disable=True)
    return img2img, txt2img


@pytest.mark.parametrize("sampler", ["k_lms", "k_euler_a", "dpmpp_2m"])
def test_img2img_matches_diffusers(engine, reference, fireplace, sampler):
    img2img, _ = reference
    seed = 1592514025
    result = engine.generate(
        GenerationRequest(
            prompt="fire",
            init_image=fireplace,
            strength=0.7,
            steps=10,
            seed=seed,
            sampler=sampler,
            width=256,
            height=256,
        )
    )
    img2img.scheduler = make_scheduler(sampler, img2img.scheduler.config)
    expected = img2img(
        prompt="fire",
        image=fit_image(fireplace, 256, 256),
        strength=0.7,
        num_inference_steps=10,
        guidance_scale=7.5,
        generator=torch.Generator("cpu").manual_seed(seed),
    ).images[0]
    assert result.output.size == expected.size == (256, 256)
    assert max_diff(result.output, expected) <= 2
    assert result.seed == seed and result.steps_taken == 7


def test_txt2img_matches_diffusers(engine, reference):
    _, txt2img = reference
    result = engine.generate(GenerationRequest(prompt="a cozy room", steps=6, seed=42, width=128, height=192))
    txt2img.scheduler = make_scheduler("k_lms", txt2img.scheduler.config)
    expected = txt2img(
        prompt="a cozy room",
        num_inference_steps=6,
        width=128,
        height=192,
        guidance_scale=7.5,
        generator=torch.Generator("cpu").manual_seed(42),
    ).images[0]
    assert max_diff(result.output, expected) <= 2
    assert result.mode == "txt2img" and result.strength is None
    assert result.steps_taken == 6 and len(result.frames) == 7


@pytest.mark.parametrize("strength,taken", [(0.7, 7), (0.4, 4)])
def test_steps_taken_are_counted_from_the_run(engine, fireplace, strength, taken):
    result = engine.generate(
        GenerationRequest(prompt="fire", init_image=fireplace, strength=strength, steps=10, seed=1592514025)
    )
    assert result.steps_taken == taken
    assert [f.index for f in result.frames] == list(range(taken + 1))
    assert result.frames[0].timestep is None and all(f.timestep is not None for f in result.frames[1:])
    timesteps = [f.timestep for f in result.frames[1:]]
    assert timesteps == sorted(timesteps, reverse=True)  # denoising goes down the schedule


@pytest.mark.parametrize("strength", [0.4, 0.7])
def test_real_steps_run_exactly_that_many(engine, fireplace, strength):
    result = engine.generate(
        GenerationRequest(
            prompt="fire",
            init_image=fireplace,
            strength=strength,
            steps=20,
            real_steps=True,
            seed=3,
            width=128,
            height=128,
        )
    )
    assert result.steps_taken == 20 and len(result.frames) == 21
    assert result.schedule_steps == {0.4: 50, 0.7: 29}[strength]


@pytest.mark.parametrize("sampler", DIFFUSION_SAMPLERS)
def test_every_sampler_runs_the_planned_steps_and_the_last_full_frame_is_the_output(engine, fireplace, sampler):
    result = engine.generate(
        GenerationRequest(
            prompt="fire",
            init_image=fireplace,
            strength=0.7,
            steps=10,
            seed=5,
            sampler=sampler,
            preview="full",
            width=128,
            height=128,
        )
    )
    assert result.steps_taken == 7 and len(result.frames) == 8
    assert result.model_calls >= 7  # Heun and DPM2 take two per step, PLMS two on its first
    assert max_diff(result.frames[-1].image("latents"), result.output) == 0
    assert result.frames[-1].image("x0").size == (128, 128)  # the other view, decoded on demand


@pytest.mark.parametrize("sampler", ["k_lms", "k_euler_a", "k_dpm_2_a"])  # ancestral ones draw noise every step
def test_same_settings_same_image_and_another_seed_differs(engine, fireplace, sampler):
    req = dict(prompt="fire", init_image=fireplace, strength=0.6, steps=8, width=128, height=128, sampler=sampler)
    a = engine.generate(GenerationRequest(seed=11, **req))
    b = engine.generate(GenerationRequest(seed=11, **req))
    c = engine.generate(GenerationRequest(seed=12, **req))
    assert max_diff(a.output, b.output) == 0
    assert all(max_diff(x.image(), y.image()) == 0 for x, y in zip(a.frames, b.frames))
    assert max_diff(a.output, c.output) > 0


def test_step_counts_29_and_30_differ(engine, fireplace):
    req = dict(prompt="fire", init_image=fireplace, strength=0.7, seed=1, width=64, height=64)
    a = engine.generate(GenerationRequest(steps=29, **req))
    b = engine.generate(GenerationRequest(steps=30, **req))
    assert (a.steps_taken, b.steps_taken) == (20, 21)
    assert max_diff(a.output, b.output) > 0


def test_a_64_bit_seed_reproduces_its_picture(engine, reference, fireplace, tmp_path):
    """ComfyUI's seeds reach 2⁶⁴ − 1: such a seed runs as it is (the same picture as diffusers' pipeline given
    torch.Generator("cpu").manual_seed(seed)), again the same picture, and the PNG records every digit."""
    from sd_img2img.formats.image_settings import read_image_settings
    from sd_img2img.formats.metadata import save_png

    img2img, _ = reference
    seed = 18446744073709551557  # the largest prime below 2⁶⁴
    req = dict(prompt="fire", init_image=fireplace, strength=0.5, steps=4, width=64, height=64)
    a = engine.generate(GenerationRequest(seed=seed, **req))
    b = engine.generate(GenerationRequest(seed=seed, **req))
    assert a.seed == seed and max_diff(a.output, b.output) == 0
    img2img.scheduler = make_scheduler("k_lms", img2img.scheduler.config)
    expected = img2img(
        prompt="fire",
        image=fit_image(fireplace, 64, 64),
        strength=0.5,
        num_inference_steps=4,
        guidance_scale=7.5,
        generator=torch.Generator("cpu").manual_seed(seed),
    ).images[0]
    assert max_diff(a.output, expected) <= 2
    path = save_png(a.output, tmp_path / "seed.png", a.settings())
    assert read_image_settings(path).settings["seed"] == seed
    assert f"Seed: {seed}," in Image.open(path).text["parameters"]
    # torch's CPU generator (Mersenne Twister), as diffusers' and ComfyUI's noise, is seeded from the low 32 bits:
    # seeds that differ only above them draw the same noise there (docs/app.md says so)
    low = engine.generate(GenerationRequest(seed=seed % 2**32, **req))
    assert max_diff(a.output, low.output) == 0


def test_random_seed_is_reported_and_reproduces(engine, fireplace):
    req = dict(prompt="fire", init_image=fireplace, strength=0.5, steps=4, width=64, height=64)
    a = engine.generate(GenerationRequest(**req))
    assert 0 <= a.seed < 2**32
    b = engine.generate(GenerationRequest(seed=a.seed, **req))
    assert max_diff(a.output, b.output) == 0


@pytest.mark.parametrize("preview,size", [("approx", (32, 32)), ("taesd", (256, 256)), ("full", (256, 256))])
def test_preview_decoders(engine, fireplace, preview, size):
    result = engine.generate(
        GenerationRequest(
            prompt="fire", init_image=fireplace, strength=0.5, steps=4, seed=1, preview=preview, width=256, height=256
        )
    )
    assert {f.image("latents").size for f in result.frames} == {size}
    assert {f.image("x0").size for f in result.frames} == {size}
    strip = result.strip()
    assert strip.height == min(256, size[1]) and strip.width >= len(result.frames) * strip.height
    assert result.step_images("x0")[0].size == size


def test_step_zero_is_the_noised_init_image(engine):
    """At low strength the entry point is late in the schedule: step 0 still looks like the init image."""
    red = Image.new("RGB", (128, 128), (220, 30, 30))
    low = engine.generate(GenerationRequest(prompt="", init_image=red, strength=0.1, steps=20, seed=1))
    high = engine.generate(GenerationRequest(prompt="", init_image=red, strength=1.0, steps=20, seed=1))
    assert low.frames[0].sigma < high.frames[0].sigma  # less noise mixed in at a later entry point
    # the UNet's view of the noised latents: nearly the clean latents at 0.1, mostly noise at 1.0
    clean = engine.generate(GenerationRequest(prompt="", init_image=red, strength=0.05, steps=20, seed=1))
    d_low = (low.frames[0].latents - clean.frames[0].latents).abs().mean()
    d_high = (high.frames[0].latents - clean.frames[0].latents).abs().mean()
    assert d_low < d_high / 3


def test_streaming_hands_over_each_step_then_the_result(engine, fireplace):
    items = list(
        engine.stream(
            GenerationRequest(prompt="fire", init_image=fireplace, strength=0.7, steps=10, seed=1, width=64, height=64)
        )
    )
    *frames, result = items
    assert [f.index for f in frames] == list(range(8))
    assert result.steps_taken == 7 and result.frames == frames


def test_stop_between_steps_keeps_what_was_computed(engine, fireplace):
    seen = []
    result = engine.generate(
        GenerationRequest(prompt="fire", init_image=fireplace, strength=1.0, steps=12, seed=1, width=64, height=64),
        on_step=seen.append,
        should_stop=lambda: len(seen) >= 4,
    )
    assert result.stopped and result.steps_taken == 3 and len(result.frames) == 4
    assert "stopped after 3 of 12 steps" in result.warnings[0]


def test_closing_the_stream_stops_the_run(engine, fireplace):
    stream = engine.stream(
        GenerationRequest(prompt="fire", init_image=fireplace, strength=1.0, steps=40, seed=1, width=64, height=64)
    )
    first = [next(stream) for _ in range(3)]
    stream.close()
    assert [f.index for f in first] == [0, 1, 2]
    # the engine is free again right away: the next run goes through
    again = engine.generate(GenerationRequest(prompt="x", steps=2, seed=1, width=64, height=64))
    assert again.steps_taken == 2


def test_long_prompt_runs_and_says_where_it_was_cut(engine):
    prompt = "a cozy room " + "with a fireplace " * 20
    result = engine.generate(GenerationRequest(prompt=prompt, steps=2, seed=1, width=64, height=64))
    assert result.steps_taken == 2
    (warning,) = result.warnings
    assert "the prompt is" in warning and "text encoder reads 75" in warning
    cut = int(warning.split("cut at character ")[1].split(",")[0])
    assert 0 < cut < len(prompt) and prompt[cut:].strip()[:20] in warning


def test_default_size_follows_the_init_image(engine):
    wide = Image.new("RGB", (1500, 700), "white")
    prepared = prepare_request(GenerationRequest(prompt="x", init_image=wide))
    assert (prepared.width, prepared.height) == (1024, 472)
    prepared = prepare_request(GenerationRequest(prompt="x", init_image=Image.new("RGB", (203, 150))))
    assert (prepared.width, prepared.height) == (200, 144)


@pytest.mark.parametrize("mode", ["resize", "crop", "fill"])
def test_resize_modes_fit_the_size(mode):
    im = Image.new("RGB", (300, 100), (10, 200, 10))
    out = fit_image(im, 128, 128, mode)
    assert out.size == (128, 128)
    centre = out.getpixel((64, 64))
    assert centre[1] > 150  # the picture itself is in the middle in every mode


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("seed", -1, r"seed=-1 is out of range \[0, 18446744073709551615\]; use a seed from 0 to 18446744073709551615"),
        ("seed", 2**64, r"seed=18446744073709551616 is out of range"),
        ("seed", "7x", r"seed must be a whole number, got '7x'"),
        ("width", 100, r"width=100 is not a multiple of 8; use 96 or 104"),
        ("height", 4096, r"height=4096 is out of range \[64, 2048\]"),
        ("sampler", "euler_magic", r"unknown sampler 'euler_magic'; choose one of: k_lms, ddim"),
        ("strength", 0.0, r"strength must be above 0 and at most 1, got 0.0"),
        ("strength", 1.5, r"got 1.5"),
        ("steps", 0, r"steps must be a whole number ≥ 1, got 0"),
        ("steps", 200, r"steps=200 is above the limit of 150"),
        ("guidance_scale", float("nan"), r"guidance scale must be from 0 to 30, got nan"),
        ("preview", "vae", r"unknown preview decoder 'vae'"),
        ("resize_mode", "zoom", r"unknown resize mode 'zoom'"),
    ],
)
def test_bad_settings_are_named(engine, fireplace, field, value, match):
    req = GenerationRequest(prompt="fire", init_image=fireplace, steps=10, strength=0.5)
    setattr(req, field, value)
    with pytest.raises(UserInputError, match=match):
        engine.generate(req)


def test_strength_too_small_to_run_a_step(engine, fireplace):
    with pytest.raises(UserInputError, match=r"runs no step at all.*use strength ≥ 0.1"):
        engine.generate(GenerationRequest(prompt="fire", init_image=fireplace, steps=10, strength=0.05))


def test_ddim_schedule_longer_than_training_is_refused(engine, fireplace):
    with pytest.raises(UserInputError, match="cannot run a schedule of 1200 steps"):
        engine.generate(
            GenerationRequest(
                prompt="fire", init_image=fireplace, steps=60, strength=0.05, real_steps=True, sampler="ddim"
            )
        )


def test_flagged_output_is_reported(tmp_path, fireplace):
    from builders import build_flagging_checkpoint

    engine = Engine(str(build_flagging_checkpoint(tmp_path / "flagging")), device="cpu")
    result = engine.generate(
        GenerationRequest(prompt="fire", init_image=fireplace, steps=4, strength=0.5, seed=1, width=64, height=64)
    )
    assert result.nsfw_flagged
    assert any("safety checker flagged" in w for w in result.warnings)
    off = Engine(str(tmp_path / "flagging"), device="cpu", dtype="float32", safety_checker=False)
    assert not off.generate(
        GenerationRequest(prompt="fire", init_image=fireplace, steps=4, strength=0.5, seed=1, width=64, height=64)
    ).nsfw_flagged


@pytest.mark.parametrize(
    "prompt,expected,removed",
    [
        ("feu 🔥 نار \u200f", "feu 🔥 نار \u200f", None),  # emoji and right-to-left text are kept as they are
        ("fire\x00\x00 in\x07 a room", "fire in a room", "3 control characters"),  # null bytes and the like
        ("lone \ud800 surrogate", "lone  surrogate", "1 control character"),  # (gradio_client cannot even send it)
        ("tab\tand\nnewline", "tab\tand\nnewline", None),
    ],
)
def test_awkward_prompts_run(engine, prompt, expected, removed):
    """The prompts are cleaned as the engine gets them, from the CLI, the library or the page (the page's side, and
    the prompt length limit, are in test_reliability.py::test_awkward_prompts)."""
    result = engine.generate(
        GenerationRequest(prompt=prompt, negative_prompt=prompt, steps=2, seed=1, width=64, height=64)
    )
    assert result.steps_taken == 2 and result.prompt == expected == result.negative_prompt
    said = [w for w in result.warnings if "control character" in w]
    cleaned = ("prompt", "negative prompt") if removed else ()
    assert said == [f"removed {removed} from the {name}" for name in cleaned]


def test_strip_wraps_into_rows_with_every_step_in_order():
    """The explain table's contact sheet: every frame, in order, wrapped into rows of equal scale."""
    from sd_img2img.engine.previews import make_strip

    colours = [(i * 30, 255 - i * 30, (i * 70) % 256) for i in range(8)]
    frames = [Image.new("RGB", (10, 10), c) for c in colours]
    sheet = make_strip(frames, per_row=6, gap=2)
    assert sheet.size == (6 * 10 + 5 * 2, 2 * 10 + 2)
    for i, c in enumerate(colours):
        row, col = divmod(i, 6)
        assert sheet.getpixel((col * 12 + 5, row * 12 + 5)) == c
    short = make_strip(frames[:5], per_row=6, gap=2)
    assert short.size == (6 * 10 + 5 * 2, 10)  # as wide as a full row: frames keep their scale beside longer sheets
    assert make_strip(frames, gap=2).size == (8 * 10 + 7 * 2, 10)  # no per_row: one row, as the CLI writes it
    clear = make_strip(frames, per_row=6, background=None)  # the explain table's: empty cells show the page
    assert clear.mode == "RGBA" and clear.getpixel((clear.width - 1, clear.height - 1))[3] == 0
