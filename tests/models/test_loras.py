"""LoRAs: kohya and diffusers (peft) files change the output, scale 0 / off gives back the model's own output pixel
for pixel, only listed LoRAs may be asked for, the PNG records them, and an LCM-LoRA brings the lcm sampler."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from helpers import max_diff

from sd_img2img.engine import Engine, GenerationRequest
from sd_img2img.errors import UserInputError


@pytest.fixture(scope="module")
def lora_files(tiny_checkpoint, tmp_path_factory):
    from builders import build_lora

    root = tmp_path_factory.mktemp("loras")
    peft = build_lora(tiny_checkpoint, root / "peft-style.safetensors", "peft")
    kohya = build_lora(tiny_checkpoint, root / "kohya.style.safetensors", "kohya")  # the same change, kohya's keys
    return peft, kohya


@pytest.fixture(scope="module")
def plain(tiny_checkpoint, tiny_taesd):
    return Engine(str(tiny_checkpoint), device="cpu", dtype="float32", safety_checker=False, taesd=str(tiny_taesd))


@pytest.fixture(scope="module")
def with_loras(tiny_checkpoint, tiny_taesd, lora_files):
    peft, kohya = lora_files
    return Engine(
        str(tiny_checkpoint),
        device="cpu",
        dtype="float32",
        safety_checker=False,
        taesd=str(tiny_taesd),
        loras=[f"{peft}:0.8", str(kohya)],
    )


def _pixels(engine, fireplace, **kw):
    request = GenerationRequest(
        prompt="a cozy fireplace", init_image=fireplace, strength=0.5, steps=4, seed=11, width=64, height=64, **kw
    )
    return engine.generate(request)


def test_listed_loras_and_names(with_loras):
    assert with_loras.loras == {"peft-style": 0.8, "kohya_style": 1.0}  # "." is not allowed in adapter names
    with_loras.load()
    adapters = with_loras.loaded.img2img.get_list_adapters()
    assert set(adapters["unet"]) == set(adapters["text_encoder"]) == {"peft-style", "kohya_style"}


def test_loras_change_the_output_and_off_gives_it_back(plain, with_loras, fireplace):
    base = np.asarray(_pixels(plain, fireplace).output)
    peft = _pixels(with_loras, fireplace, loras={"peft-style": 1.0})
    kohya = _pixels(with_loras, fireplace, loras={"kohya_style": 1.0})
    assert not np.array_equal(np.asarray(peft.output), base)
    # the kohya file holds the same change as the peft one (alpha / rank scaling): same picture
    assert max_diff(kohya.output, peft.output) <= 1
    off = _pixels(with_loras, fireplace, loras={})
    zero = _pixels(with_loras, fireplace, loras={"peft-style": 0.0, "kohya_style": 0})
    assert np.array_equal(np.asarray(off.output), base) and np.array_equal(np.asarray(zero.output), base)
    assert off.loras == {} and "loras" not in off.settings()
    half = _pixels(with_loras, fireplace, loras={"peft-style": 0.5})
    assert not np.array_equal(np.asarray(half.output), np.asarray(peft.output))
    again = _pixels(with_loras, fireplace, loras={"peft-style": 1.0})  # switching is stateless between runs
    assert np.array_equal(np.asarray(again.output), np.asarray(peft.output))


def test_default_is_each_at_its_start_up_scale(with_loras, fireplace):
    default = _pixels(with_loras, fireplace)
    assert default.loras == {"peft-style": 0.8, "kohya_style": 1.0}
    same = _pixels(with_loras, fireplace, loras={"peft-style": 0.8, "kohya_style": 1.0})
    assert np.array_equal(np.asarray(default.output), np.asarray(same.output))


def test_unlisted_lora_is_refused(with_loras, plain, fireplace):
    with pytest.raises(UserInputError, match=r"unknown LoRA 'other'; the listed LoRAs are: peft-style, kohya_style"):
        _pixels(with_loras, fireplace, loras={"other": 1.0})
    with pytest.raises(UserInputError, match=r"unknown LoRA 'x'; .*none were listed"):
        _pixels(plain, fireplace, loras={"x": 1.0})
    with pytest.raises(UserInputError, match=r"scale of LoRA 'peft-style' must be a number from -4 to 4"):
        _pixels(with_loras, fireplace, loras={"peft-style": float("nan")})


def test_png_records_the_loras(with_loras, fireplace, tmp_path):
    from sd_img2img.cli import write_outputs
    from sd_img2img.formats.metadata import read_settings

    result = _pixels(with_loras, fireplace, loras={"peft-style": 0.5})
    summary = write_outputs(result, tmp_path)
    assert read_settings(summary["output"])["loras"] == {"peft-style": 0.5}
    from PIL import Image

    with Image.open(summary["output"]) as png:
        assert png.info["parameters"].splitlines()[0] == "a cozy fireplace <lora:peft-style:0.5>"


def test_lcm_lora_brings_the_lcm_sampler(tiny_checkpoint, tiny_taesd, lora_files, fireplace, tmp_path, plain):
    lcm = shutil.copy(lora_files[0], tmp_path / "lcm-lora-tiny.safetensors")  # "lcm" in the name marks it
    engine = Engine(
        str(tiny_checkpoint),
        device="cpu",
        dtype="float32",
        safety_checker=False,
        taesd=str(tiny_taesd),
        loras=[str(lcm)],
    )
    assert "lcm" in engine.samplers and "lcm" not in plain.samplers
    request = GenerationRequest(
        prompt="fire",
        init_image=fireplace,
        strength=0.5,
        steps=4,
        seed=1,
        sampler="lcm",
        guidance_scale=1.0,
        width=64,
        height=64,
    )
    plan = engine.prepare(request).plan
    assert plan.describe() == (  # SD's rule; LCMScheduler's third timestep is where the image enters
        "SD: 4 steps × strength 0.5 → 2 steps will run (2 skipped) · strength 0.5 → the image enters at t = 499 "
        "(√ᾱ = 0.53: 53 % of its signal kept)"
    )
    result = engine.generate(request)
    assert result.steps_taken == plan.steps_to_run == 2 and result.sampler == "lcm"
    assert not result.warnings
    off = engine.generate(GenerationRequest(**{**request.__dict__, "loras": {}}))
    assert any("sampler lcm needs an LCM-LoRA switched on (lcm-lora-tiny)" in w for w in off.warnings)
    with pytest.raises(UserInputError, match="sampler 'lcm' does not fit SD checkpoints"):
        plain.prepare(request)


def test_cli_and_environment_take_loras(tiny_checkpoint, lora_files, tmp_path, capsys):
    from sd_img2img.cli import build_parser, main
    from sd_img2img.ui.examples import draw_fireplace

    peft, kohya = lora_files
    args = build_parser(environ={"SD_IMG2IMG_LORA": f"{peft}:0.25,\n{kohya}"}).parse_args(["--prompt", "x"])
    assert [(s.name, s.scale) for s in args.lora] == [("peft-style", 0.25), ("kohya_style", 1.0)]
    init = tmp_path / "init.png"
    draw_fireplace(64, 64).save(init)
    assert (
        main(
            [
                str(init),
                "--prompt",
                "fire",
                "--steps",
                "2",
                "--seed",
                "1",
                "--device",
                "cpu",
                "--dtype",
                "float32",
                "--model",
                str(tiny_checkpoint),
                "--lora",
                f"{peft}:0.5",
                "--out",
                str(tmp_path / "out"),
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["loras"] == {"peft-style": 0.5}
    pickle = tmp_path / "style.pt"
    pickle.write_bytes(b"never unpickled")
    with pytest.raises(SystemExit) as exit_:
        main([str(init), "--prompt", "fire", "--lora", str(pickle)])
    assert exit_.value.code == 2
    assert "is not .safetensors; pickle files" in capsys.readouterr().err


def test_lora_specs():
    from sd_img2img.models.loras import adapter_name, parse_spec

    assert parse_spec("C:\\loras\\a.safetensors", check_file=False).scale == 1.0
    spec = parse_spec("/x/detail.v2.safetensors:-0.5", check_file=False)
    assert (spec.path, spec.scale, spec.name, spec.lcm) == ("/x/detail.v2.safetensors", -0.5, "detail_v2", False)
    assert adapter_name("/hub/lcm-lora-sdv1-5/pytorch_lora_weights.safetensors") == "lcm-lora-sdv1-5"
    assert parse_spec("/hub/lcm-lora-sdxl/pytorch_lora_weights.safetensors", check_file=False).lcm


def test_sdxl_loras_in_kohyas_sgm_names(tmp_path, tiny_taesd, fireplace):
    from builders import build_lora

    from sd_img2img.testing.tiny import build_checkpoint

    folder = build_checkpoint(tmp_path / "xl", "tiny-sdxl")
    peft = build_lora(folder, tmp_path / "xl-peft.safetensors", "peft")
    sgm = build_lora(folder, tmp_path / "xl-kohya.safetensors", "kohya-sgm")  # lora_unet_input_blocks_2_1_…, lora_te1_…
    engine = Engine(str(folder), device="cpu", dtype="float32", taesd=str(tiny_taesd), loras=[str(peft), str(sgm)])
    off, a, b = (_pixels(engine, fireplace, loras=loras).output for loras in ({}, {"xl-peft": 1.0}, {"xl-kohya": 1.0}))
    assert max_diff(a, off) > 0 and max_diff(a, b) <= 1


def test_modelset_gives_each_model_its_loras(tiny_checkpoint, lora_files):
    from sd_img2img.engine.model_set import ModelSet

    peft, _ = lora_files
    models = ModelSet(
        {"styled": str(tiny_checkpoint), "plain": str(tiny_checkpoint)},
        device="cpu",
        dtype="float32",
        loras={"styled": [f"{peft}:0.3"]},
    )
    assert models._engine("styled").loras == {"peft-style": 0.3} and models._engine("plain").loras == {}
    assert ModelSet([str(tiny_checkpoint)], loras=[str(peft)])._engine(str(tiny_checkpoint)).loras == {
        "peft-style": 1.0
    }
    with pytest.raises(ValueError, match="LoRAs for models that are not listed: other"):
        ModelSet([str(tiny_checkpoint)], loras={"other": [str(peft)]})
