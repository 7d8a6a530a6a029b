"""Model families III on tiny random checkpoints laid out as their hub repositories: Z-Image, Qwen-Image and Chroma
(strength and the flow rule) and the edit models FLUX.1 Kontext, FLUX.2 Klein and Qwen-Image-Edit (the image a
reference, every step from pure noise), through the real ``sd-img2img`` command and against each family's own
diffusers pipeline with the same CPU generator; and what strength means on each: the noise level the image enters at,
from the run's own schedule."""

import importlib.util
import json

import pytest
import torch
from helpers import max_diff
from original_layout import write_zimage_transformer
from PIL import Image

from sd_img2img.cli import main
from sd_img2img.engine import Engine, GenerationRequest, prepare_request
from sd_img2img.errors import ModelLoadError, UserInputError
from sd_img2img.models.families import FAMILIES, detect, peek
from sd_img2img.plan.rules import FLOW_RULE, RULES
from sd_img2img.plan.step_plan import plan_steps

SEED = 1592514025
SIZE = 128
ARCHS = ("tiny-zimage", "tiny-qwenimage", "tiny-chroma", "tiny-kontext", "tiny-flux2-klein", "tiny-qwen-edit")
STRENGTH_ARCHS = ARCHS[:3]
# transformers 5.x builds Qwen-Image-Edit's Qwen2VLProcessor on torchvision; without it (here: a CPU torch) the product
# loads it image-only (models/processors.py), and diffusers' own pipeline below is given that same processor
TORCHVISION = importlib.util.find_spec("torchvision") is not None


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    from sd_img2img.testing.tiny import build_checkpoint

    root = tmp_path_factory.mktemp("families3")
    return {arch: build_checkpoint(root / arch, arch) for arch in ARCHS}


@pytest.fixture(scope="module")
def init_png(tmp_path_factory, fireplace):
    path = tmp_path_factory.mktemp("init") / "fireplace.png"
    fireplace.resize((SIZE, SIZE)).save(path)
    return path


@pytest.fixture(scope="module")
def engines(checkpoints):
    return {arch: Engine(str(checkpoints[arch]), device="cpu", dtype="float32") for arch in ARCHS}


def own_pipeline(path, family, image, steps, strength, **extra):
    """The family's own diffusers pipeline, called as its documentation does; returns the picture and the steps its
    loop ran (counted by its own callback)."""
    import diffusers

    from sd_img2img.models.processors import image_only_processor

    components = {"processor": image_only_processor(str(path))} if family.vision_processor and not TORCHVISION else {}
    pipe = getattr(diffusers, family.img2img).from_pretrained(path, use_safetensors=True, **components)
    pipe.set_progress_bar_config(disable=True)
    ran = []
    kwargs = dict(prompt="fire", image=image, num_inference_steps=steps, width=SIZE, height=SIZE, **extra)
    kwargs.setdefault(family.guidance_kwarg, family.guidance)
    if strength is not None:
        kwargs["strength"] = strength
    if family.max_area:
        kwargs["max_area"] = SIZE * SIZE  # Kontext otherwise scales the output to a megapixel
    out = pipe(
        **kwargs,
        generator=torch.Generator("cpu").manual_seed(SEED),
        callback_on_step_end=lambda p, i, t, k: ran.append(i) or {},
    ).images[0]
    return out, len(ran)


CASES = [
    ("tiny-zimage", 4, 0.3, {}),
    ("tiny-zimage", 10, 0.7, {"guidance_scale": 3.0, "negative_prompt": "blurry"}),  # Z-Image guides above 0
    ("tiny-qwenimage", 4, 0.3, {}),
    ("tiny-qwenimage", 10, 0.7, {"negative_prompt": "blurry"}),  # true CFG needs a negative prompt
    ("tiny-chroma", 4, 0.3, {}),
    ("tiny-chroma", 10, 0.7, {}),
    ("tiny-kontext", 4, None, {}),
    ("tiny-flux2-klein", 4, None, {}),
    ("tiny-qwen-edit", 4, None, {"negative_prompt": "blurry"}),
]
FLAGS = {"guidance_scale": "--guidance", "negative_prompt": "--negative-prompt"}


@pytest.mark.parametrize("arch,steps,strength,extra", CASES)
def test_cli_counts_and_output_equal_the_familys_own_pipeline(
    capsys, tmp_path, checkpoints, init_png, arch, steps, strength, extra
):
    family = peek(checkpoints[arch])
    args = [str(init_png), "--prompt", "fire", "--seed", str(SEED), "--steps", str(steps)]
    args += ["--strength", str(strength)] if strength is not None else []
    args += [x for key, value in extra.items() for x in (FLAGS[key], str(value))]
    args += ["--model", str(checkpoints[arch]), "--device", "cpu", "--dtype", "float32", "--out", str(tmp_path)]
    code = main(args)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    expected, counted = own_pipeline(checkpoints[arch], family, Image.open(init_png).convert("RGB"), steps, strength,
                                     **extra)  # fmt: skip
    assert summary["steps_taken"] == counted == len(summary["step_images"]) - 1
    assert counted == (FLOW_RULE.steps_that_run(steps, strength) if strength is not None else steps)
    assert max_diff(Image.open(summary["output"]), expected) <= 2
    assert (summary["width"], summary["height"]) == (SIZE, SIZE) and summary["family"] == family.name
    assert f"{family.label} on the cpu needs about" in captured.err  # said before the weights load
    noise = summary["noise_level"]
    assert noise["kind"] == ("flow" if strength is not None else "reference")
    assert summary["strength"] == strength  # an edit model's run records none


@pytest.mark.parametrize("arch", ARCHS)
def test_the_plans_noise_level_is_the_sigma_the_run_used(engines, fireplace, arch):
    engine = engines[arch]
    request = GenerationRequest(prompt="fire", init_image=fireplace, steps=6, strength=0.5, seed=3, width=SIZE,
                                height=SIZE)  # fmt: skip
    prepared = engine.prepare(request)
    result = engine.generate(prepared)
    noise, first = prepared.plan.noise, result.frames[0]
    assert noise.sigma == pytest.approx(first.sigma, abs=1e-6)
    assert noise.timestep == pytest.approx(float(result.frames[1].timestep), abs=1)  # the first step's own
    if prepared.plan.reference:  # every step from pure noise: step 0 is the generator's noise, none of the image
        assert (noise.sigma, noise.kept, result.steps_taken) == (1.0, 0.0, 6)
        assert "your image is a reference, not a starting point — all 6 steps run from pure noise" in (
            prepared.plan.describe()
        )
    else:
        assert noise.kept == pytest.approx(1 - first.sigma) and 0 < noise.kept < 1
        assert f"the image enters at σ = {first.sigma:.2f} ({noise.kept * 100:.0f} % of it kept)" in (
            prepared.plan.describe()
        )


def test_edit_models_step_zero_is_the_generators_noise(engines, fireplace):
    from diffusers import Flux2KleinPipeline

    request = GenerationRequest(prompt="fire", init_image=fireplace, steps=2, seed=5, width=SIZE, height=SIZE)
    kontext = engines["tiny-kontext"].generate(request).frames[0].latents
    noise = torch.randn((1, 16, SIZE // 8, SIZE // 8), generator=torch.Generator("cpu").manual_seed(5))
    assert torch.equal(kontext, noise)
    klein = engines["tiny-flux2-klein"].generate(request).frames[0].latents  # 128 patchified channels, unpatchified
    patches = torch.randn((1, 128, SIZE // 16, SIZE // 16), generator=torch.Generator("cpu").manual_seed(5))
    assert torch.equal(klein, Flux2KleinPipeline._unpatchify_latents(patches))


@pytest.mark.parametrize("sampler", ["k_lms", "ddim"])
def test_ddpm_style_noise_level_is_the_runs_own(engine, fireplace, sampler):
    request = GenerationRequest(prompt="fire", init_image=fireplace, steps=10, strength=0.5, seed=1, sampler=sampler)
    prepared = engine.prepare(request)
    result = engine.generate(prepared)
    noise = prepared.plan.noise
    alpha = float(engine.loaded.img2img.scheduler.alphas_cumprod[result.frames[1].timestep])
    if sampler == "k_lms":  # k-diffusion: σ, and 1/√(σ² + 1) = √ᾱ of the image's signal
        assert noise.kind == "k" and noise.sigma == pytest.approx(result.frames[0].sigma, abs=1e-6)
        assert noise.kept == pytest.approx(alpha**0.5, abs=1e-3)
    else:
        assert noise.kind == "ddpm" and noise.timestep == result.frames[1].timestep
        assert noise.kept == pytest.approx(alpha**0.5)
        assert f"the image enters at t = {noise.timestep:.0f} (√ᾱ = {noise.kept:.2f}" in prepared.plan.describe()


@pytest.mark.parametrize("cls", ["ZImageImg2ImgPipeline", "QwenImageImg2ImgPipeline", "ChromaImg2ImgPipeline"])
def test_the_flow_rule_is_each_pipelines_own_get_timesteps(cls):
    import diffusers
    from diffusers import FlowMatchEulerDiscreteScheduler

    pipeline = getattr(diffusers, cls)
    family = next(f for f in FAMILIES.values() if f.img2img == cls)

    class Probe:
        scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)

    for strength in [round(0.05 * k, 2) for k in range(1, 21)]:
        for n in range(1, 31):
            Probe.scheduler.set_timesteps(n)
            _, count = pipeline.get_timesteps(Probe, n, strength, "cpu")
            assert RULES[family.rule].steps_that_run(n, strength) == count, (cls, n, strength)
            plan = plan_steps(n, strength, real_steps=True, family=family)
            Probe.scheduler.set_timesteps(plan.schedule_steps)
            assert pipeline.get_timesteps(Probe, plan.schedule_steps, strength, "cpu")[1] == n


def test_hub_layouts_and_families(checkpoints):
    folders = {arch: {p.name for p in path.iterdir() if p.is_dir()} for arch, path in checkpoints.items()}
    assert folders["tiny-zimage"] == {"transformer", "vae", "text_encoder", "tokenizer", "scheduler"}
    assert folders["tiny-qwen-edit"] == folders["tiny-qwenimage"] | {"processor"}
    assert folders["tiny-kontext"] == {"transformer", "vae", "text_encoder", "text_encoder_2", "tokenizer",
                                       "tokenizer_2", "scheduler"}  # fmt: skip
    assert {arch: peek(path).name for arch, path in checkpoints.items()} == {
        "tiny-zimage": "zimage",
        "tiny-qwenimage": "qwen-image",
        "tiny-chroma": "chroma",
        "tiny-kontext": "flux-kontext",
        "tiny-flux2-klein": "flux2-klein",
        "tiny-qwen-edit": "qwen-image-edit",
    }
    index = json.loads((checkpoints["tiny-qwen-edit"] / "model_index.json").read_text())
    assert index["processor"] == ["transformers", "Qwen2VLProcessor"] and index["tokenizer"][1] == "Qwen2Tokenizer"
    assert detect({"_class_name": "Flux2KleinPipeline"}).name == "flux2-klein-base"  # not distilled: 50 guided steps
    from transformers import AutoTokenizer

    qwen = AutoTokenizer.from_pretrained(checkpoints["tiny-flux2-klein"] / "tokenizer")
    text = qwen.apply_chat_template([{"role": "user", "content": "a cozy fireplace"}], tokenize=False,
                                    add_generation_prompt=True, enable_thinking=False)  # fmt: skip
    assert text == "<|im_start|>user\na cozy fireplace<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    assert qwen.decode(qwen(text).input_ids) == text


def test_edit_models_take_no_strength_and_say_so(checkpoints, fireplace):
    kontext = peek(checkpoints["tiny-kontext"])
    prepared = prepare_request(GenerationRequest(prompt="x", init_image=fireplace, strength=0.7), kontext)
    assert prepared.plan.reference and prepared.plan.strength is None and prepared.plan.steps_to_run == 28
    assert prepared.plan.describe() == (
        "FLUX.1 Kontext: your image is a reference, not a starting point — all 28 steps run from pure noise"
    )
    (warning,) = [w for w in prepared.warnings if "strength" in w]
    assert warning == (
        "FLUX.1 Kontext takes no strength: your image is a reference and all 28 steps run from pure noise; "
        "strength 0.7 was ignored"
    )
    quiet = prepare_request(GenerationRequest(prompt="x", init_image=fireplace), kontext)  # its own default: 1
    assert not [w for w in quiet.warnings if "strength" in w] and quiet.plan.taken_note(28) == (
        "FLUX.1 Kontext: all 28 from pure noise (the image is a reference)"
    )
    odd = prepare_request(GenerationRequest(prompt="x", init_image=fireplace, strength=5, real_steps=True), kontext)
    assert odd.plan.steps_to_run == 28 and any("real steps do not apply" in w for w in odd.warnings)


def test_edit_models_without_an_image(engines, checkpoints):
    for arch in ("tiny-kontext", "tiny-flux2-klein"):  # their pipelines make a picture from the prompt alone
        result = engines[arch].generate(GenerationRequest(prompt="a cozy room", steps=2, seed=1, width=64, height=64))
        assert (result.mode, result.steps_taken, result.output.size) == ("txt2img", 2, (64, 64))
    with pytest.raises(UserInputError, match="Qwen-Image-Edit edits the image you give it and cannot make one from a "
                                             "prompt alone; give it an image"):  # fmt: skip
        prepare_request(GenerationRequest(prompt="x"), peek(checkpoints["tiny-qwen-edit"]))


@pytest.mark.skipif(TORCHVISION, reason="torchvision is installed: the checkpoint's own processor loads")
def test_qwen_edit_loads_without_torchvision(engines, checkpoints):
    """transformers cannot build the checkpoint's Qwen2VLProcessor here (its video processor needs torchvision):
    diffusers' own loading fails, and the engine loads it with the image-only processor instead."""
    import diffusers

    with pytest.raises(ImportError, match="requires the Torchvision library"):
        diffusers.QwenImageEditPipeline.from_pretrained(checkpoints["tiny-qwen-edit"], use_safetensors=True)
    processor = engines["tiny-qwen-edit"].loaded.img2img.processor
    assert getattr(processor, "video_processor", None) is None
    assert type(processor.image_processor).__name__ == "Qwen2VLImageProcessorPil"


def test_zimage_single_file_takes_the_rest_from_config(checkpoints, fireplace, tmp_path):
    folder = checkpoints["tiny-zimage"]
    single = write_zimage_transformer(folder, tmp_path / "z_image_turbo_bf16.safetensors")
    with pytest.raises(ModelLoadError, match="holds a Z-Image transformer .*give the model's diffusers folder with "
                                             "--config DIR"):  # fmt: skip
        Engine(str(single), device="cpu", dtype="float32").load()
    request = GenerationRequest(prompt="fire", init_image=fireplace, steps=4, strength=0.3, seed=2, width=SIZE,
                                height=SIZE)  # fmt: skip
    from_file = Engine(str(single), device="cpu", dtype="float32", config=str(folder)).generate(request)
    from_folder = Engine(str(folder), device="cpu", dtype="float32").generate(request)
    assert from_file.family == "zimage" and from_file.steps_taken == 2
    assert max_diff(from_file.output, from_folder.output) == 0
    assert any("Z-Image on the cpu needs about 1.7" in w for w in from_file.warnings)  # the folder's parts counted


@pytest.mark.parametrize("arch", ["tiny-zimage", "tiny-qwenimage", "tiny-flux2-klein"])
def test_previews_of_plain_video_and_patchified_latents(engines, fireplace, arch):
    engine = engines[arch]
    base = dict(prompt="fire", init_image=fireplace, steps=4, strength=0.5, seed=1, width=SIZE, height=SIZE)
    full = engine.generate(GenerationRequest(preview="full", **base))
    channels = engine.family.latent_channels
    assert {tuple(f.latents.shape) for f in full.frames} == {(1, channels, SIZE // 8, SIZE // 8)}
    assert max_diff(full.frames[-1].image("latents"), full.output) == 0  # the full VAE, with its own de-normalizing
    assert torch.allclose(full.frames[-1].latents, full.frames[-1].x0, atol=1e-4)  # x0 = x − σ·v lands at σ = 0
    approx = engine.generate(GenerationRequest(preview="approx", **base))
    assert {f.image("x0").size for f in approx.frames} == {(SIZE // 8, SIZE // 8)}
    if engine.family.taesd is None:
        with pytest.raises(UserInputError, match=f"no tiny autoencoder .* is known for {engine.family.label}"):
            engine.generate(GenerationRequest(preview="taesd", **base))
        with pytest.raises(ModelLoadError, match="--vae tiny: no tiny autoencoder"):
            Engine(engine.model, device="cpu", dtype="float32", vae="tiny").load()


def test_the_shift_formulas_are_diffusers_own():
    import numpy as np
    from diffusers.pipelines.flux.pipeline_flux import calculate_shift
    from diffusers.pipelines.flux2.pipeline_flux2_klein import compute_empirical_mu
    from diffusers.pipelines.z_image.pipeline_z_image_img2img import get_default_z_image_sigmas

    from sd_img2img.plan import noise

    for seq in (16, 64, 256, 1024, 4096, 4301, 8192, 16384):
        assert noise.calculate_shift(seq, 256, 8192, 0.5, 0.9) == calculate_shift(seq, 256, 8192, 0.5, 0.9)
        for steps in (1, 4, 28, 50):
            assert noise.compute_empirical_mu(seq, steps) == compute_empirical_mu(seq, steps)
    for steps in (1, 3, 8, 50):
        assert noise.pipeline_sigmas(FAMILIES["zimage"], steps) == get_default_z_image_sigmas(steps)
        assert np.array_equal(noise.pipeline_sigmas(FAMILIES["flux"], steps), np.linspace(1.0, 1 / steps, steps))
