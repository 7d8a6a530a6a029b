"""Inpainting against diffusers' own inpaint pipeline of each family, on tiny random checkpoints laid out as their hub
repositories, with the same CPU generator: SD (a regular 4-channel checkpoint and a 9-channel inpainting one, told
apart by the UNet's in_channels), "only masked" (padding_mask_crop), and every other family; the steps taken are the
pipeline's callback count, with one frame more (step 0)."""

import pytest
import torch
from helpers import max_diff
from PIL import Image, ImageDraw

from sd_img2img.engine import Engine, GenerationRequest
from sd_img2img.errors import UserInputError
from sd_img2img.models.families import FAMILIES, peek
from sd_img2img.plan.images import fit_image
from sd_img2img.plan.samplers import make_scheduler

SEED = 1592514025
SIZE = 64


def init_image() -> Image.Image:
    image = Image.new("RGB", (SIZE, SIZE), (196, 84, 40))
    ImageDraw.Draw(image).rectangle((8, 6, 40, 52), fill=(30, 40, 190))
    return image


def mask_image() -> Image.Image:
    mask = Image.new("L", (SIZE, SIZE), 0)
    ImageDraw.Draw(mask).rectangle((20, 18, 50, 44), fill=255)
    return mask


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """The checkpoints, built once for the module on first use."""
    from sd_img2img.testing.tiny import build_checkpoint

    root, built = tmp_path_factory.mktemp("inpaint"), {}

    def get(arch: str):
        if arch not in built:
            built[arch] = build_checkpoint(root / arch, arch)
        return built[arch]

    return get


def diffusers_inpaint(pipe, steps: int, strength: float, size: int = SIZE, **extra):
    """diffusers' own inpaint pipeline called as its documentation does (``extra``: the guidance under the family's
    name, …); the picture and its callback count."""
    ran = []
    out = pipe(
        prompt="fire",
        image=fit_image(init_image(), size, size),
        mask_image=fit_image(mask_image(), size, size),
        num_inference_steps=steps,
        strength=strength,
        width=SIZE,
        height=SIZE,
        generator=torch.Generator("cpu").manual_seed(SEED),
        callback_on_step_end=lambda p, i, t, k: ran.append(i) or {},
        **extra,
    ).images[0]
    return out, len(ran)


def ours(engine: Engine, **settings):
    request = GenerationRequest(
        prompt="fire", init_image=init_image(), mask=mask_image(), mask_blur=0, seed=SEED, **settings
    )
    return engine.generate(request)


@pytest.mark.parametrize(
    "arch, family",
    [("tiny", "sd"), ("tiny-inpaint", "sd-inpaint")],
)
def test_sd_inpainting_equals_diffusers_pipeline(checkpoints, engine, arch, family):
    """Done-when: mask blur 0, masked content original, the whole picture: the output equals diffusers'
    StableDiffusionInpaintPipeline within 2/255, for a regular checkpoint and a 9-channel inpainting one, with the
    same seed, steps, strength, guidance and DDIM; the steps taken are its callback count, with one frame more."""
    import diffusers

    path = checkpoints(arch) if arch != "tiny" else engine.model
    ours_engine = engine if arch == "tiny" else Engine(str(path), device="cpu", dtype="float32")
    assert peek(path).name == family == ours_engine.family.name
    result = ours(ours_engine, steps=10, strength=0.7, guidance_scale=6.0, sampler="ddim")
    pipe = diffusers.StableDiffusionInpaintPipeline.from_pretrained(path, use_safetensors=True)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = make_scheduler("ddim", pipe.scheduler.config)
    expected, callbacks = diffusers_inpaint(pipe, 10, 0.7, guidance_scale=6.0)
    assert pipe.unet.config.in_channels == (9 if family == "sd-inpaint" else 4)
    assert max_diff(result.output, expected) <= 2
    assert result.steps_taken == callbacks == 7 and len(result.frames) == callbacks + 1
    assert result.settings()["mask_blur"] == 0 and result.settings()["inpaint_area"] == "whole"


def test_only_masked_equals_padding_mask_crop(engine):
    """Done-when: --inpaint-area masked --padding 32 equals the pipeline's padding_mask_crop=32."""
    import diffusers

    result = ours(engine, steps=8, strength=0.75, guidance_scale=7.5, sampler="ddim", inpaint_area="masked", padding=32)
    pipe = diffusers.StableDiffusionInpaintPipeline.from_pipe(engine.loaded.img2img)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = make_scheduler("ddim", pipe.scheduler.config)
    expected, callbacks = diffusers_inpaint(pipe, 8, 0.75, guidance_scale=7.5, padding_mask_crop=32)
    assert max_diff(result.output, expected) <= 2
    assert result.steps_taken == callbacks == 6
    plain = ours(engine, steps=8, strength=0.75, guidance_scale=7.5, sampler="ddim")
    assert max_diff(result.output, plain.output) > 2  # the crop changes the run


OTHERS = [
    ("tiny-turbo", 2),
    ("tiny-sdxl", 3),
    ("tiny-sdxl-refiner", 4),
    ("tiny-sd3", 3),
    ("tiny-flux", 3),
    ("tiny-flux-fill", 3),
    ("tiny-zimage", 3),
    ("tiny-qwenimage", 3),
    ("tiny-chroma", 3),
    ("tiny-kontext", 3),
    ("tiny-flux2-klein", 3),
]


@pytest.mark.parametrize("arch, steps", OTHERS)
def test_every_family_equals_its_own_inpaint_pipeline(checkpoints, arch, steps):
    """Done-when: every other family equals its own diffusers inpaint pipeline (on the same loaded components), with
    steps taken = its callback count; edit models (Kontext, Klein) keep their rule: strength 1, every step from noise
    in the mask."""
    import diffusers

    engine = Engine(str(checkpoints(arch)), device="cpu", dtype="float32")
    family = engine.family
    result = ours(engine, steps=steps)
    pipe = engine.loaded.img2img if family.mask_required else engine.loaded.inpaint
    assert type(pipe).__name__ == family.inpaint
    pipe = getattr(diffusers, family.inpaint).from_pipe(pipe)  # a fresh pipeline of diffusers' own, same weights
    pipe.set_progress_bar_config(disable=True)
    extra = {"max_area": SIZE * SIZE, "_auto_resize": False} if family.max_area else {}
    strength = family.strength if family.takes_strength else 1.0
    expected, callbacks = diffusers_inpaint(pipe, steps, strength, **{family.guidance_kwarg: family.guidance}, **extra)
    assert max_diff(result.output, expected) <= 2, arch
    assert result.steps_taken == callbacks == result.plan.steps_to_run and len(result.frames) == callbacks + 1


@pytest.mark.slow  # diffusers' Qwen-Image-Edit inpaint pipeline always runs at about a megapixel (~10 s here)
def test_qwen_image_edit_inpaint_runs_at_its_own_size(checkpoints):
    import diffusers

    from sd_img2img.models.processors import image_only_processor

    path = checkpoints("tiny-qwen-edit")
    engine = Engine(str(path), device="cpu", dtype="float32")
    result = ours(engine, steps=2)
    assert (result.width, result.height) == (1024, 1024) and any("megapixel" in w for w in result.warnings)
    pipe = diffusers.QwenImageEditInpaintPipeline.from_pretrained(path, processor=image_only_processor(str(path)))
    pipe.set_progress_bar_config(disable=True)
    expected, callbacks = diffusers_inpaint(pipe, 2, 1.0, size=1024, true_cfg_scale=4.0)
    assert max_diff(result.output, expected) <= 2 and result.steps_taken == callbacks == 2


def test_a_family_without_an_inpaint_pipeline_refuses_the_mask_by_name():
    from sd_img2img.plan.prepare import prepare_request

    with pytest.raises(UserInputError, match="LCM has no inpaint pipeline in diffusers, so it takes no mask"):
        prepare_request(GenerationRequest(prompt="x", init_image=init_image(), mask=mask_image()), FAMILIES["lcm"])
    with pytest.raises(UserInputError, match=r"Z-Image's inpaint pipeline \(ZImageInpaintPipeline\) redraws only"):
        prepare_request(
            GenerationRequest(prompt="x", init_image=init_image(), mask=mask_image(), inpaint_area="masked"),
            FAMILIES["zimage"],
        )
    with pytest.raises(UserInputError, match="cannot start from a prompt alone"):
        prepare_request(GenerationRequest(prompt="x"), FAMILIES["sd-inpaint"])
