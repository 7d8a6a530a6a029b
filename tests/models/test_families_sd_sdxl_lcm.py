"""Model families on tiny random checkpoints laid out as their hub repositories: through the real
``sd-img2img`` command, and against diffusers' own pipeline of each family with the same CPU generator."""

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import max_diff
from PIL import Image

from sd_img2img.cli import main
from sd_img2img.engine import Engine, GenerationRequest, prepare_request
from sd_img2img.errors import ModelLoadError, UserInputError
from sd_img2img.models.families import FAMILIES, detect, peek
from sd_img2img.plan.images import fit_image
from sd_img2img.plan.samplers import make_scheduler
from sd_img2img.plan.step_plan import plan_steps

ROOT = Path(__file__).resolve().parents[2]

SEED = 1592514025
SIZE = 256


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    from sd_img2img.testing.tiny import build_checkpoint

    root = tmp_path_factory.mktemp("families")
    return {
        arch: build_checkpoint(root / arch, arch)
        for arch in ("tiny-sdxl", "tiny-turbo", "tiny-lcm", "tiny-sdxl-refiner", "tiny-sdxl-turbo")
    }


@pytest.fixture(scope="module")
def init_png(tmp_path_factory, fireplace):
    path = tmp_path_factory.mktemp("init") / "fireplace.png"
    fireplace.save(path)
    return path


def run_cli(capsys, tmp_path, model, init_png, *args) -> dict:
    code = main(
        [
            str(init_png),
            "--prompt",
            "fire",
            "--seed",
            str(SEED),
            "--width",
            str(SIZE),
            "--height",
            str(SIZE),
            "--model",
            str(model),
            "--device",
            "cpu",
            "--dtype",
            "float32",
            "--out",
            str(tmp_path / "out"),
            *args,
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def diffusers_img2img(cls_name: str, model, fireplace, sampler: str | None, **kwargs) -> Image.Image:
    import diffusers

    pipe = getattr(diffusers, cls_name).from_pretrained(model, use_safetensors=True)
    pipe.set_progress_bar_config(disable=True)
    if sampler is not None:
        pipe.scheduler = make_scheduler(sampler, pipe.scheduler.config)
    return pipe(
        prompt="fire",
        image=fit_image(fireplace, SIZE, SIZE),
        generator=torch.Generator("cpu").manual_seed(SEED),
        **kwargs,
    ).images[0]


def test_families_are_detected_from_the_json_files(checkpoints):
    names = {arch: peek(path).name for arch, path in checkpoints.items()}
    assert names == {
        "tiny-sdxl": "sdxl",
        "tiny-turbo": "sd-turbo",
        "tiny-lcm": "lcm",
        "tiny-sdxl-refiner": "sdxl-refiner",
        "tiny-sdxl-turbo": "sdxl-turbo",
    }
    index = json.loads((checkpoints["tiny-sdxl"] / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionXLPipeline" and "safety_checker" not in index
    assert json.loads((checkpoints["tiny-sdxl"] / "vae" / "config.json").read_text())["force_upcast"] is True
    # an LCM-distilled UNet in a StableDiffusionPipeline folder is LCM too; Turbo is the trailing scheduler
    assert detect({"_class_name": "StableDiffusionPipeline"}, {}, {"time_cond_proj_dim": 256}).name == "lcm"
    assert detect({"_class_name": "StableDiffusionPipeline"}, {"timestep_spacing": "trailing"}, {}).name == "sd-turbo"
    with pytest.raises(ModelLoadError, match=r"holds a KandinskyPipeline; this program runs SD, SD-Turbo, SDXL"):
        detect({"_class_name": "KandinskyPipeline"})


def test_sdxl_through_the_cli_equals_diffusers(capsys, tmp_path, checkpoints, init_png, fireplace):
    summary = run_cli(
        capsys,
        tmp_path,
        checkpoints["tiny-sdxl"],
        init_png,
        "--steps",
        "10",
        "--strength",
        "0.7",
        "--sampler",
        "k_euler",
    )
    assert summary["steps_taken"] == 7 and len(summary["step_images"]) == 8 and summary["family"] == "sdxl"
    assert any("below 512 px" in w for w in summary["warnings"])  # SDXL under 512: runs, with a warning
    expected = diffusers_img2img(
        "StableDiffusionXLImg2ImgPipeline",
        checkpoints["tiny-sdxl"],
        fireplace,
        "k_euler",
        strength=0.7,
        num_inference_steps=10,
        guidance_scale=5.0,
    )
    assert max_diff(Image.open(summary["output"]), expected) <= 2


def test_sd_turbo_through_the_cli_equals_diffusers(capsys, tmp_path, checkpoints, init_png, fireplace):
    summary = run_cli(
        capsys, tmp_path, checkpoints["tiny-turbo"], init_png, "--steps", "2", "--strength", "0.5", "--guidance", "0"
    )
    assert summary["steps_taken"] == 1 and len(summary["step_images"]) == 2 and summary["sampler"] == "k_euler"
    # the checkpoint's own trailing Euler scheduler, untouched
    expected = diffusers_img2img(
        "StableDiffusionImg2ImgPipeline",
        checkpoints["tiny-turbo"],
        fireplace,
        None,
        strength=0.5,
        num_inference_steps=2,
        guidance_scale=0.0,
    )
    assert max_diff(Image.open(summary["output"]), expected) <= 2


def test_lcm_through_the_cli_equals_diffusers(capsys, tmp_path, checkpoints, init_png, fireplace):
    summary = run_cli(
        capsys,
        tmp_path,
        checkpoints["tiny-lcm"],
        init_png,
        "--steps",
        "4",
        "--strength",
        "0.3",
        "--sampler",
        "lcm",
        "--guidance",
        "8",
    )
    assert summary["steps_taken"] == 4 and len(summary["step_images"]) == 5
    timesteps = [json.loads(Image.open(p).text["sd-img2img"])["timestep"] for p in summary["step_images"][1:]]
    assert timesteps == [299, 239, 159, 79]
    expected = diffusers_img2img(
        "LatentConsistencyModelImg2ImgPipeline",
        checkpoints["tiny-lcm"],
        fireplace,
        None,
        strength=0.3,
        num_inference_steps=4,
        guidance_scale=8.0,
    )
    assert max_diff(Image.open(summary["output"]), expected) <= 2


def test_refiner_img2img_equals_diffusers_and_prompt2img_is_refused(checkpoints, fireplace):
    engine = Engine(str(checkpoints["tiny-sdxl-refiner"]), device="cpu", dtype="float32")
    assert engine.family.name == "sdxl-refiner"
    result = engine.generate(
        GenerationRequest(
            prompt="fire", init_image=fireplace, steps=10, strength=0.3, seed=SEED, width=SIZE, height=SIZE
        )
    )
    assert result.steps_taken == 3 and len(result.frames) == 4
    assert result.sampler == "k_euler" and result.guidance_scale == 5.0  # the family's defaults
    expected = diffusers_img2img(
        "StableDiffusionXLImg2ImgPipeline",
        checkpoints["tiny-sdxl-refiner"],
        fireplace,
        "k_euler",
        strength=0.3,
        num_inference_steps=10,
        guidance_scale=5.0,
    )
    assert max_diff(result.output, expected) <= 2
    with pytest.raises(UserInputError, match="SDXL refiner cannot start from pure noise"):
        engine.generate(GenerationRequest(prompt="fire", steps=4, seed=1, width=SIZE, height=SIZE))


def test_sdxl_prompt2img_equals_diffusers(checkpoints):
    from diffusers import StableDiffusionXLPipeline

    engine = Engine(str(checkpoints["tiny-sdxl"]), device="cpu", dtype="float32")
    result = engine.generate(GenerationRequest(prompt="a cozy room", steps=5, seed=7, width=192, height=128))
    pipe = StableDiffusionXLPipeline.from_pretrained(checkpoints["tiny-sdxl"], use_safetensors=True)
    pipe.set_progress_bar_config(disable=True)
    expected = pipe(
        prompt="a cozy room",
        num_inference_steps=5,
        width=192,
        height=128,
        guidance_scale=5.0,
        generator=torch.Generator("cpu").manual_seed(7),
    ).images[0]
    assert result.steps_taken == 5 and len(result.frames) == 6
    assert max_diff(result.output, expected) <= 2


ARCH_REQUESTS = [  # (arch, steps, strength, sampler or None)
    ("tiny-sdxl", 10, 0.7, "k_euler_a"),
    ("tiny-sdxl", 7, 0.45, "dpmpp_2m"),
    ("tiny-sdxl-turbo", 4, 0.5, None),
    ("tiny-turbo", 3, 0.7, "k_euler_a"),
    ("tiny-lcm", 4, 0.5, None),
    ("tiny-lcm", 6, 0.9, None),
    ("tiny-sdxl-refiner", 9, 0.3, "ddim"),
]


@pytest.mark.parametrize("arch,steps,strength,sampler", ARCH_REQUESTS)
def test_plan_equals_the_run_and_real_steps_are_exact(checkpoints, fireplace, arch, steps, strength, sampler):
    engine = Engine(str(checkpoints[arch]), device="cpu", dtype="float32")
    base = dict(
        prompt="fire", init_image=fireplace, strength=strength, seed=3, width=64 * 2, height=64 * 2, sampler=sampler
    )
    plan = prepare_request(GenerationRequest(steps=steps, **base), engine.family).plan
    result = engine.generate(GenerationRequest(steps=steps, **base))
    assert result.steps_taken == plan.steps_to_run == len(result.frames) - 1
    assert all(f.x0 is not None for f in result.frames[1:])  # every step's predicted final image
    real = engine.generate(GenerationRequest(steps=3, real_steps=True, **base))
    assert real.steps_taken == 3 and len(real.frames) == 4


def test_lcm_plan_states_its_rule_with_the_scheduler_s_numbers(checkpoints):
    family = peek(checkpoints["tiny-lcm"])
    assert (
        plan_steps(4, 0.3, family=family).describe()
        == "LCM: all 4 steps run, starting at t = 299 of 1000 (strength 0.3 sets where they start)"
    )
    assert plan_steps(4, 0.5, family=family).start_timestep == 499
    assert (
        plan_steps(10, 0.7, family=FAMILIES["sdxl"]).describe()
        == "SDXL: 10 steps × strength 0.7 → 7 steps will run (3 skipped)"
    )
    with pytest.raises(UserInputError, match=r"LCM runs at most 15 steps at strength 0.3"):
        plan_steps(20, 0.3, family=family)


@pytest.mark.parametrize(
    "arch,sampler,fits",
    [
        ("tiny-lcm", "k_euler", "lcm"),
        ("tiny-sdxl", "lcm", "k_lms, ddim, plms"),
        ("tiny-turbo", "k_heun", "k_euler_a, k_euler, k_lms, ddim, dpmpp_2m"),
    ],
)
def test_a_sampler_that_does_not_fit_the_family_is_named_with_those_that_do(
    checkpoints, fireplace, arch, sampler, fits
):
    engine = Engine(str(checkpoints[arch]), device="cpu", dtype="float32")
    assert sampler not in engine.samplers
    with pytest.raises(
        UserInputError, match=rf"sampler '{sampler}' does not fit .* checkpoints; choose one of: {fits}"
    ):
        prepare_request(GenerationRequest(prompt="x", init_image=fireplace, sampler=sampler), engine.family)
    assert not engine.is_loaded  # told from the JSON files, before any weights load


def test_cli_rejects_a_misfit_sampler_in_one_line(capsys, tmp_path, checkpoints, init_png):
    code = main(
        [
            str(init_png),
            "--prompt",
            "fire",
            "--model",
            str(checkpoints["tiny-lcm"]),
            "--device",
            "cpu",
            "--sampler",
            "k_lms",
            "--out",
            str(tmp_path),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "sampler 'k_lms' does not fit LCM checkpoints; choose one of: lcm" in err


def test_turbo_with_too_few_steps_says_what_works(checkpoints, fireplace):
    family = peek(checkpoints["tiny-turbo"])
    with pytest.raises(UserInputError, match=r"int\(2 × 0.3\) = 0\); use strength ≥ 0.5, steps ≥ 4"):
        prepare_request(GenerationRequest(prompt="x", init_image=fireplace, steps=2, strength=0.3), family)


def test_family_defaults_fill_unset_settings(checkpoints, fireplace):
    turbo = Engine(str(checkpoints["tiny-turbo"]), device="cpu", dtype="float32")
    assert turbo.defaults == dict(steps=2, strength=0.5, guidance_scale=0.0, sampler="k_euler", size=512)
    assert (
        Engine(str(checkpoints["tiny-sdxl-turbo"]), device="cpu", dtype="float32").defaults["sampler"] == "k_euler_a"
    )  # its own
    sdxl = Engine(str(checkpoints["tiny-sdxl"]), device="cpu", dtype="float32")
    assert sdxl.defaults["size"] == 1024 and sdxl.defaults["guidance_scale"] == 5.0
    prepared = prepare_request(GenerationRequest(prompt="x"), sdxl.family)
    assert (prepared.width, prepared.height) == (1024, 1024)
    prepared = prepare_request(GenerationRequest(prompt="x", init_image=fireplace, guidance_scale=3.0), turbo.family)
    assert prepared.request.steps == 2 and prepared.request.strength == 0.5 and prepared.plan.steps_to_run == 1
    assert any("trained without guidance" in w for w in prepared.warnings)
    lcm = prepare_request(
        GenerationRequest(prompt="x", negative_prompt="blur", init_image=fireplace), peek(checkpoints["tiny-lcm"])
    )
    assert lcm.request.sampler == "lcm" and lcm.request.guidance_scale == 8.5
    assert any("takes no negative prompt" in w for w in lcm.warnings)


@pytest.mark.parametrize("preview", ["approx", "taesd", "full"])
def test_sdxl_previews(checkpoints, tiny_taesd, fireplace, preview):
    engine = Engine(str(checkpoints["tiny-sdxl"]), device="cpu", dtype="float32", taesd=str(tiny_taesd))
    assert Engine(str(checkpoints["tiny-sdxl"]), device="cpu", dtype="float32").taesd_id == "madebyollin/taesdxl"
    result = engine.generate(
        GenerationRequest(
            prompt="fire", init_image=fireplace, steps=4, strength=0.5, seed=1, preview=preview, width=128, height=128
        )
    )
    size = (16, 16) if preview == "approx" else (128, 128)
    assert {f.image("latents").size for f in result.frames} == {size}
    if preview == "full":
        assert max_diff(result.frames[-1].image("latents"), result.output) == 0


def test_approx_uses_the_family_s_factors_and_bias():
    from sd_img2img.engine.previews import PreviewDecoder
    from sd_img2img.models.families import SDXL_BIAS

    zeros = torch.zeros(1, 4, 2, 2)
    sd = np.asarray(PreviewDecoder("approx").decode(zeros))
    xl = np.asarray(
        PreviewDecoder("approx", factors=FAMILIES["sdxl"].approx_factors, bias=FAMILIES["sdxl"].approx_bias).decode(
            zeros
        )
    )
    assert (sd == 128).all()  # SD1.x: no bias, zero latents are mid-grey
    assert tuple(xl[0, 0]) == tuple(round((b / 2 + 0.5) * 255) for b in SDXL_BIAS)


def test_full_preview_of_an_fp16_force_upcast_vae_decodes_in_float32():
    from diffusers import AutoencoderKL

    from sd_img2img.engine.previews import PreviewDecoder

    vae = AutoencoderKL(
        block_out_channels=(8,),
        down_block_types=("DownEncoderBlock2D",),
        up_block_types=("UpDecoderBlock2D",),
        norm_num_groups=4,
        latent_channels=4,
        force_upcast=True,
    ).to(torch.float16)
    seen = []
    vae.register_forward_pre_hook(lambda m, a: seen.append(m.dtype))
    original = vae.decode
    vae.decode = lambda z, **kw: (seen.append(vae.dtype), original(z, **kw))[1]
    PreviewDecoder("full", vae=vae).decode(torch.zeros(1, 4, 4, 4, dtype=torch.float16))
    assert seen[0] == torch.float32 and vae.dtype == torch.float16  # decoded in float32, put back after


def test_real_architectures_have_the_real_sizes():
    """``benchmarks/architectures.py``'s ``sd15``, ``sd-turbo`` and ``sdxl`` (what the benchmarks build with the
    product's builders) have the published shapes: counted on the meta device."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from sd_img2img.testing import tiny

    if str(ROOT) not in sys.path:  # benchmarks/ is no package of the product: import it from the repository
        sys.path.insert(0, str(ROOT))
    from benchmarks import architectures as real

    def millions(model):
        return round(sum(p.numel() for p in model.parameters()) / 1e6)

    assert set(real.ARCHITECTURES) == {"sd15", "sd-turbo", "sdxl"}
    assert not set(real.ARCHITECTURES) & set(tiny.ARCHITECTURES)  # the product has none of them
    with init_empty_weights():
        assert millions(UNet2DConditionModel(**real.SD15.unet)) == 860
        assert millions(AutoencoderKL(**real.SD15.vae)) == 84
        assert millions(CLIPTextModel(CLIPTextConfig(vocab_size=49408, **real.SD15.text))) == 123
        assert millions(UNet2DConditionModel(**real.SDXL.unet)) == 2567
        assert millions(CLIPTextModelWithProjection(CLIPTextConfig(vocab_size=49408, **real.SDXL.text_2))) == 695
        assert millions(UNet2DConditionModel(**real.SD_TURBO.unet)) == 866
        turbo_text = CLIPTextModel(CLIPTextConfig(vocab_size=49408, **real.SD_TURBO.text))
        assert millions(turbo_text) == 340 and turbo_text.config.num_hidden_layers == 23
    # the SDXL builder works the UNet's context widths out from the text encoders: the real ones agree
    assert tiny._sdxl_unet(real.SDXL) == real.SDXL_UNET
    wrong = dataclasses.replace(real.SDXL, text_2=dict(real.SDXL_TEXT_2, hidden_size=1024))
    with pytest.raises(ValueError, match="cross_attention_dim=2048 does not match its text encoders' 1792"):
        tiny._sdxl_unet(wrong)
    assert real.architecture("tiny-sdxl") is tiny.ARCHITECTURES["tiny-sdxl"]
    with pytest.raises(ValueError, match="arch must be one of"):
        real.architecture("sd21")


def test_stop_between_steps_where_the_pipeline_can(checkpoints, fireplace):
    req = dict(prompt="fire", init_image=fireplace, steps=8, strength=1.0, seed=1, width=64, height=64)
    seen = []
    xl = Engine(str(checkpoints["tiny-sdxl"]), device="cpu", dtype="float32").generate(
        GenerationRequest(**req), on_step=seen.append, should_stop=lambda: len(seen) >= 3
    )
    assert xl.stopped and xl.steps_taken == 2
    seen.clear()  # LCM's diffusers pipelines cannot be interrupted: its (few) steps all run, and it says so
    lcm = Engine(str(checkpoints["tiny-lcm"]), device="cpu", dtype="float32").generate(
        GenerationRequest(**dict(req, steps=4)), on_step=seen.append, should_stop=lambda: len(seen) >= 3
    )
    assert not lcm.stopped and lcm.steps_taken == 4
