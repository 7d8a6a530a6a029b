"""Flow matching (SD3/3.5, FLUX.1) on tiny random checkpoints laid out as their hub repositories: through the
real ``sd-img2img`` command and against diffusers' own img2img pipelines with the same CPU generator."""

import json

import pytest
import torch
from helpers import max_diff
from PIL import Image

from sd_img2img.cli import main
from sd_img2img.engine import Engine, GenerationRequest, prepare_request
from sd_img2img.errors import UserInputError
from sd_img2img.models.families import FAMILIES, peek
from sd_img2img.models.memory import estimate_memory
from sd_img2img.plan.rules import FLOW_RULE
from sd_img2img.plan.step_plan import plan_steps

SEED = 1592514025
SIZE = 128
PIPELINES = {
    "tiny-sd3": "StableDiffusion3Img2ImgPipeline",
    "tiny-flux": "FluxImg2ImgPipeline",
    "tiny-flux-schnell": "FluxImg2ImgPipeline",
}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    from sd_img2img.testing.tiny import build_checkpoint

    root = tmp_path_factory.mktemp("flow")
    return {arch: build_checkpoint(root / arch, arch) for arch in PIPELINES}


@pytest.fixture(scope="module")
def references(checkpoints):
    import diffusers

    pipes = {}
    for arch, cls in PIPELINES.items():
        pipes[arch] = getattr(diffusers, cls).from_pretrained(checkpoints[arch], use_safetensors=True)
        pipes[arch].set_progress_bar_config(disable=True)
    return pipes


@pytest.fixture(scope="module")
def init_png(tmp_path_factory, fireplace):
    path = tmp_path_factory.mktemp("init") / "fireplace.png"
    fireplace.resize((SIZE, SIZE)).save(path)
    return path


def test_hub_layouts_and_families(checkpoints):
    sd3, flux = checkpoints["tiny-sd3"], checkpoints["tiny-flux"]
    assert {p.name for p in sd3.iterdir() if p.is_dir()} == {
        "transformer",
        "vae",
        "text_encoder",
        "text_encoder_2",
        "text_encoder_3",
        "tokenizer",
        "tokenizer_2",
        "tokenizer_3",
        "scheduler",
    }
    assert {p.name for p in flux.iterdir() if p.is_dir()} == {
        "transformer",
        "vae",
        "text_encoder",
        "text_encoder_2",
        "tokenizer",
        "tokenizer_2",
        "scheduler",
    }
    assert json.loads((sd3 / "model_index.json").read_text())["tokenizer_3"] == ["transformers", "T5TokenizerFast"]
    assert (sd3 / "tokenizer_3" / "tokenizer.json").is_file()
    assert {arch: peek(path).name for arch, path in checkpoints.items()} == {
        "tiny-sd3": "sd3",
        "tiny-flux": "flux",
        "tiny-flux-schnell": "flux-schnell",
    }
    from transformers import T5TokenizerFast

    t5 = T5TokenizerFast.from_pretrained(sd3 / "tokenizer_3")
    assert (
        t5("a cozy fireplace").input_ids[-1] == t5.eos_token_id
        and t5.decode(t5("a cozy room").input_ids, skip_special_tokens=True) == "a cozy room"
    )


@pytest.mark.parametrize("arch", ["tiny-sd3", "tiny-flux"])
@pytest.mark.parametrize("steps,strength,taken", [(4, 0.3, 2), (10, 0.7, 7)])
def test_cli_steps_and_output_equal_diffusers(
    capsys, tmp_path, checkpoints, references, init_png, arch, steps, strength, taken
):
    code = main(
        [
            str(init_png),
            "--prompt",
            "fire",
            "--seed",
            str(SEED),
            "--steps",
            str(steps),
            "--strength",
            str(strength),
            "--model",
            str(checkpoints[arch]),
            "--device",
            "cpu",
            "--dtype",
            "float32",
            "--out",
            str(tmp_path),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    assert summary["steps_taken"] == taken and len(summary["step_images"]) == taken + 1
    assert summary["sampler"] == "flow_euler" and (summary["width"], summary["height"]) == (SIZE, SIZE)
    assert "on the cpu needs about" in captured.err  # the memory warning before a flow model loads on the cpu
    family = FAMILIES["sd3" if arch == "tiny-sd3" else "flux"]
    expected = references[arch](
        prompt="fire",
        image=Image.open(init_png).convert("RGB"),
        strength=strength,
        num_inference_steps=steps,
        guidance_scale=family.guidance,
        width=SIZE,
        height=SIZE,
        generator=torch.Generator("cpu").manual_seed(SEED),
    ).images[0]
    assert max_diff(Image.open(summary["output"]), expected) <= 2


@pytest.fixture(scope="module")
def engines(checkpoints):
    return {arch: Engine(str(path), device="cpu", dtype="float32") for arch, path in checkpoints.items()}


@pytest.mark.parametrize(
    "arch,sampler",
    [
        ("tiny-sd3", "flow_euler"),
        ("tiny-sd3", "flow_heun"),
        ("tiny-sd3", "flow_euler_karras"),
        ("tiny-flux", "flow_euler_beta"),
        ("tiny-flux-schnell", "flow_euler"),
    ],
)
def test_step_capture_plan_and_real_steps(engines, fireplace, arch, sampler):
    engine = engines[arch]
    base = dict(prompt="fire", init_image=fireplace, seed=3, width=SIZE, height=SIZE, sampler=sampler, preview="full")
    request = GenerationRequest(steps=7, strength=0.45, **base)
    plan = prepare_request(request, engine.family).plan
    result = engine.generate(request)
    assert result.steps_taken == plan.steps_to_run == 4 == len(result.frames) - 1  # 7 − int(7 − 3.15) rounds up
    latents = [f.latents for f in result.frames]
    assert {tuple(x.shape) for x in latents} == {(1, 16, SIZE // 8, SIZE // 8)}  # FLUX's packed latents unpacked
    # x0 = x − σ·v: the last Euler step lands on σ = 0, where the sample is its own prediction
    if sampler != "flow_heun":
        assert torch.allclose(result.frames[-1].latents, result.frames[-1].x0, atol=1e-4)
    assert 0 < result.frames[0].sigma < 1  # step 0: σ·noise + (1 − σ)·x0 at the first kept σ (after shift)
    assert max_diff(result.frames[-1].image("latents"), result.output) == 0  # the full VAE, its scale and shift
    real = engine.generate(GenerationRequest(steps=3, strength=0.3, real_steps=True, **base))
    assert real.steps_taken == 3 and len(real.frames) == 4


def test_step_zero_is_the_noised_init_image_at_the_first_kept_sigma(engines, fireplace):
    from diffusers import FlowMatchEulerDiscreteScheduler

    engine = engines["tiny-sd3"]
    result = engine.generate(
        GenerationRequest(prompt="fire", init_image=fireplace, steps=4, strength=0.3, seed=1, width=SIZE, height=SIZE)
    )
    scheduler = FlowMatchEulerDiscreteScheduler.from_config(engine.loaded.img2img.scheduler.config)
    scheduler.set_timesteps(4)
    assert result.frames[0].sigma == pytest.approx(float(scheduler.sigmas[2]))  # 2 of 4 skipped
    assert [f.timestep for f in result.frames[1:]] == [int(t) for t in scheduler.timesteps[2:]]


@pytest.mark.parametrize("strength", [round(0.05 * k, 2) for k in range(1, 21)])
def test_the_round_up_rule_is_diffusers_get_timesteps(strength):
    from diffusers import FlowMatchEulerDiscreteScheduler, StableDiffusion3Img2ImgPipeline

    class Probe:
        scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)

    for n in range(1, 41):
        Probe.scheduler.set_timesteps(n)
        _, count = StableDiffusion3Img2ImgPipeline.get_timesteps(Probe, n, strength, "cpu")
        assert FLOW_RULE.steps_that_run(n, strength) == count, (n, strength)
        plan = plan_steps(n, strength, real_steps=True, family=FAMILIES["sd3"])
        Probe.scheduler.set_timesteps(plan.schedule_steps)
        _, count = StableDiffusion3Img2ImgPipeline.get_timesteps(Probe, plan.schedule_steps, strength, "cpu")
        assert count == n


def test_plan_describes_the_round_up_rule():
    assert (
        plan_steps(4, 0.3, family=FAMILIES["sd3"]).describe()
        == "SD3: 4 steps × strength 0.3 → 2 steps will run (2 skipped; flow matching rounds up)"
    )
    assert plan_steps(10, 0.7, family=FAMILIES["flux"]).steps_to_run == 7


@pytest.mark.parametrize(
    "arch,sampler,fits",
    [
        ("tiny-sd3", "k_lms", "flow_euler, flow_euler_karras, flow_euler_exponential, flow_euler_beta, flow_heun"),
        ("tiny-flux", "flow_heun", "flow_euler, flow_euler_karras, flow_euler_exponential, flow_euler_beta"),
        ("tiny-flux", "lcm", "flow_euler"),
    ],
)
def test_samplers_that_do_not_fit_are_named(checkpoints, fireplace, arch, sampler, fits):
    with pytest.raises(
        UserInputError, match=rf"sampler '{sampler}' does not fit .* checkpoints; choose one of: {fits}"
    ):
        prepare_request(GenerationRequest(prompt="x", init_image=fireplace, sampler=sampler), peek(checkpoints[arch]))


def test_sizes_must_be_multiples_of_16(checkpoints, fireplace):
    family = peek(checkpoints["tiny-flux"])
    with pytest.raises(UserInputError, match=r"width=136 is not a multiple of 16 .*; use 128 or 144"):
        prepare_request(GenerationRequest(prompt="x", init_image=fireplace, width=136, height=128), family)
    prepared = prepare_request(GenerationRequest(prompt="x", init_image=Image.new("RGB", (200, 150))), family)
    assert (prepared.width, prepared.height) == (192, 144)


@pytest.mark.parametrize("arch,preview", [("tiny-sd3", "approx"), ("tiny-flux", "approx"), ("tiny-flux", "taesd")])
def test_previews(checkpoints, tmp_path, fireplace, arch, preview):
    from sd_img2img.testing.tiny import build_taesd

    taesd = build_taesd(tmp_path / "taef1", latent_channels=16, scaling_factor=0.3611, shift_factor=0.1159)
    engine = Engine(str(checkpoints[arch]), device="cpu", dtype="float32", taesd=str(taesd))
    assert (
        Engine(str(checkpoints[arch]), device="cpu", dtype="float32").taesd_id
        == {"tiny-sd3": "madebyollin/taesd3", "tiny-flux": "madebyollin/taef1"}[arch]
    )
    result = engine.generate(
        GenerationRequest(
            prompt="fire", init_image=fireplace, steps=4, strength=0.5, seed=1, preview=preview, width=SIZE, height=SIZE
        )
    )
    size = (SIZE // 8, SIZE // 8) if preview == "approx" else (SIZE, SIZE)
    assert {f.image("latents").size for f in result.frames} == {size} == {f.image("x0").size for f in result.frames}


def test_prompt2img_and_the_memory_estimate(engines, checkpoints):
    result = engines["tiny-flux"].generate(
        GenerationRequest(prompt="a cozy room", steps=3, seed=1, width=96, height=64)
    )
    assert result.steps_taken == 3 and result.output.size == (96, 64) and result.mode == "txt2img"
    engine = engines["tiny-sd3"]
    need = estimate_memory(checkpoints["tiny-sd3"], torch.float32)
    tensors = {
        t.data_ptr(): t.numel()
        for name in ("transformer", "vae", "text_encoder", "text_encoder_2", "text_encoder_3")
        for t in getattr(engine.loaded.img2img, name).state_dict().values()
    }  # weights and buffers, once
    assert need == sum(tensors.values()) * 4
    assert any("SD3 on the cpu needs about" in w and "very slow" in w for w in engine.loaded.warnings)


def test_flux_schnell_says_guidance_is_ignored(checkpoints, fireplace):
    prepared = prepare_request(
        GenerationRequest(prompt="x", init_image=fireplace, guidance_scale=3.5), peek(checkpoints["tiny-flux-schnell"])
    )
    assert prepared.request.steps == 4 and prepared.plan.steps_to_run == 3
    assert any("has no guidance; guidance 3.5 was ignored" in w for w in prepared.warnings)


def test_long_prompts_are_measured_against_t5(engines):
    engine = engines["tiny-sd3"]
    fits = engine.generate(GenerationRequest(prompt="a cozy room " * 30, steps=1, seed=1, width=64, height=64))
    assert not [w for w in fits.warnings if "tokens" in w]  # 90 words: past CLIP's 77, well within T5's 256
    long = engine.generate(GenerationRequest(prompt="a cozy room " * 100, steps=1, seed=1, width=64, height=64))
    (warning,) = [w for w in long.warnings if "tokens" in w]
    assert "the prompt is 300 tokens and the text encoder reads 255" in warning
