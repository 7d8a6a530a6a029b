"""Single-file checkpoints: the original layout made from the tiny diffusers folder runs exactly as the folder does
(engine and CLI), the shipped configs and CLIP tokenizer are the real ones, and what is not a checkpoint is refused
with a message that says what was found."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from helpers import max_diff

from sd_img2img.engine import Engine, GenerationRequest
from sd_img2img.errors import ModelLoadError
from sd_img2img.models.single_file import CONFIG_ROOT, clip_tokenizer, detect_layout, family_of, shipped_config


@pytest.fixture(scope="module")
def single_file(tiny_checkpoint, tmp_path_factory):
    from original_layout import main

    out = tmp_path_factory.mktemp("single") / "tiny-sd15.safetensors"
    main([str(tiny_checkpoint), str(out)])  # python tests/original_layout.py DIR OUT.safetensors
    return out


def _keys(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return [k for k in json.loads(f.read(n)) if k != "__metadata__"]


def test_the_file_has_the_original_layout(single_file):
    keys = _keys(single_file)
    assert {k.split(".")[0] for k in keys} == {"model", "first_stage_model", "cond_stage_model"}
    assert "model.diffusion_model.input_blocks.0.0.weight" in keys
    assert "model.diffusion_model.middle_block.1.transformer_blocks.0.attn2.to_k.weight" in keys
    assert "first_stage_model.decoder.mid.attn_1.q.weight" in keys
    assert any(k.startswith("cond_stage_model.transformer.text_model.encoder.layers.0.") for k in keys)
    layout = detect_layout(single_file)
    assert (layout.kind, layout.config) == ("sd1", "sd15")
    from sd_img2img.models.memory import model_memory, safetensors_parameters

    assert model_memory(single_file) == {"single_file": safetensors_parameters(single_file)[1]}


def _run(engine, fireplace, **kw):
    request = GenerationRequest(
        prompt="a cozy fireplace", init_image=fireplace, strength=0.6, steps=5, seed=7, width=128, height=128, **kw
    )
    return engine.generate(request)


def test_single_file_gives_the_folders_output(single_file, tiny_checkpoint, tiny_taesd, fireplace):
    folder = Engine(str(tiny_checkpoint), device="cpu", dtype="float32", safety_checker=False, taesd=str(tiny_taesd))
    single = Engine(str(single_file), device="cpu", dtype="float32", config=str(tiny_checkpoint), taesd=str(tiny_taesd))
    assert single.peek_family().name == "sd" and not single.is_loaded  # told from the JSON files, no weights
    a, b = _run(folder, fireplace), _run(single, fireplace)
    assert type(single.loaded.img2img).__name__ == "StableDiffusionImg2ImgPipeline"
    assert not single.loaded.has_safety_checker  # a single file carries none
    assert b.steps_taken == a.steps_taken == 3
    assert np.array_equal(np.asarray(a.output), np.asarray(b.output))
    for fa, fb in zip(a.frames, b.frames):
        assert np.array_equal(np.asarray(fa.image("latents")), np.asarray(fb.image("latents")))
    txt_a = folder.generate(GenerationRequest(prompt="fire", steps=3, seed=1, width=64, height=64))
    txt_b = single.generate(GenerationRequest(prompt="fire", steps=3, seed=1, width=64, height=64))
    assert np.array_equal(np.asarray(txt_a.output), np.asarray(txt_b.output))


def test_cli_takes_a_single_file(single_file, tiny_checkpoint, tmp_path, capsys):
    from PIL import Image

    from sd_img2img.cli import main
    from sd_img2img.ui.examples import draw_fireplace

    init = tmp_path / "init.png"
    draw_fireplace(128, 128).save(init)
    common = [
        str(init),
        "--prompt",
        "fire",
        "--steps",
        "4",
        "--strength",
        "0.5",
        "--seed",
        "3",
        "--device",
        "cpu",
        "--dtype",
        "float32",
        "--no-safety-checker",
    ]
    assert main(common + ["--model", str(tiny_checkpoint), "--out", str(tmp_path / "a")]) == 0
    a = json.loads(capsys.readouterr().out)
    assert (
        main(common + ["--model", str(single_file), "--config", str(tiny_checkpoint), "--out", str(tmp_path / "b")])
        == 0
    )
    b = json.loads(capsys.readouterr().out)
    assert a["steps_taken"] == b["steps_taken"] == 2 and b["model"] == single_file.stem  # its name, not its path
    assert np.array_equal(np.asarray(Image.open(a["output"])), np.asarray(Image.open(b["output"])))
    import hashlib

    file_hash = hashlib.sha256(single_file.read_bytes()).hexdigest()[:10]  # AUTOMATIC1111's short hash of the file
    with Image.open(b["output"]) as png:
        assert f"Model hash: {file_hash}, Model: tiny-sd15," in png.info["parameters"]


def test_shipped_sd15_config_and_clip_tokenizer(single_file):
    family = family_of(single_file)  # the shipped sd15 config: no --config
    assert family.name == "sd" and family.scheduler_config["_class_name"] == "PNDMScheduler"
    tokenizer = clip_tokenizer(shipped_config("sd15") / "tokenizer")
    assert len(tokenizer) == 49408 and tokenizer.model_max_length == 77
    assert tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert tokenizer.pad_token == "<|endoftext|>" and tokenizer.pad_token_id == 49407
    assert tokenizer("A Photo of a CAT!").input_ids == [49406, 320, 1125, 539, 320, 2368, 256, 49407]
    # OpenCLIP's tokenizers (SD 2.x, SDXL's second) share the vocabulary and pad with "!" (id 0)
    for name, folder in (("sd21", "tokenizer"), ("sdxl-base", "tokenizer_2"), ("sdxl-refiner", "tokenizer_2")):
        t = clip_tokenizer(shipped_config(name) / folder)
        assert t.pad_token == "!" and t.pad_token_id == 0
        assert t("a photo of a cat", padding="max_length", max_length=9).input_ids == [
            49406,
            320,
            1125,
            539,
            320,
            2368,
            49407,
            0,
            0,
        ]


def test_shipped_configs_describe_the_real_architectures():
    from accelerate import init_empty_weights
    from diffusers import UNet2DConditionModel

    from sd_img2img.models.families import detect, read_configs

    expected = {
        "sd15": ("sd", 859_520_964),
        "sd21": ("sd", 865_910_724),
        "sdxl-base": ("sdxl", 2_567_463_684),
        "sdxl-refiner": ("sdxl-refiner", 2_259_526_660),
    }
    for name, (family, unet_parameters) in expected.items():
        folder = shipped_config(name)
        assert detect(*read_configs(folder)).name == family
        with init_empty_weights():
            unet = UNet2DConditionModel.from_config(json.loads((folder / "unet" / "config.json").read_text()))
        assert sum(p.numel() for p in unet.parameters()) == unet_parameters, name
    assert (
        json.loads((CONFIG_ROOT / "sd21/scheduler/scheduler_config.json").read_text())["prediction_type"]
        == "v_prediction"
    )


def test_a_config_for_another_family_is_refused(single_file):
    with pytest.raises(ModelLoadError, match=r"holds an SD 1.x .* describes a SDXL model; give a matching --config"):
        family_of(single_file, CONFIG_ROOT / "sdxl-base")


def test_what_is_not_a_checkpoint_is_refused(tmp_path, tiny_checkpoint):
    import torch
    from builders import build_lora
    from safetensors.torch import save_file

    from sd_img2img.models.loading import load_model

    lora = build_lora(tiny_checkpoint, tmp_path / "style.safetensors", "kohya", text_encoder=False)
    with pytest.raises(
        ModelLoadError,
        match=r"not a single-file SD 1.x/2.x or SDXL checkpoint: found keys "
        r"lora_unet_down_blocks_1_attentions_0_.*A LoRA goes to --lora",
    ):
        load_model(str(lora), device="cpu")
    other = tmp_path / "other.safetensors"
    save_file({"encoder.layer.0.weight": torch.zeros(2), "head.bias": torch.zeros(2)}, str(other))
    with pytest.raises(ModelLoadError, match=r"found keys encoder.layer, head.bias …"):
        load_model(str(other), device="cpu")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\xff" * 64)
    with pytest.raises(ModelLoadError, match="cannot be read as a .safetensors file"):
        load_model(str(garbage), device="cpu")
    with pytest.raises(ModelLoadError, match="checkpoint file '.*missing.safetensors' does not exist"):
        load_model(str(tmp_path / "missing.safetensors"), device="cpu")
    (tmp_path / "model.ckpt").write_bytes(b"never unpickled")
    with pytest.raises(ModelLoadError, match="pickle checkpoint; .* never opened"):
        load_model(str(tmp_path / "model.ckpt"), device="cpu")


def test_the_header_is_read_through_safe_open_without_reading_weights(single_file, tmp_path):
    import resource

    from sd_img2img.models.single_file import read_header

    with open(single_file, "rb") as f:  # the header as the file has it
        (n,) = struct.unpack("<Q", f.read(8))
        raw = {k: v for k, v in json.loads(f.read(n)).items() if k != "__metadata__"}
    assert read_header(single_file) == {k: {"dtype": v["dtype"], "shape": v["shape"]} for k, v in raw.items()}

    big = tmp_path / "big.safetensors"  # 512 MiB of weights, sparse: nothing on disk, and nothing may be read
    size = 512 * 2**20
    header = json.dumps({"model.diffusion_model.x": {"dtype": "F32", "shape": [size // 4], "data_offsets": [0, size]}})
    header = header.encode().ljust(-(-len(header) // 8) * 8)
    with open(big, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header)
        f.truncate(8 + len(header) + size)
    faults = lambda: (lambda r: r.ru_minflt + r.ru_majflt)(resource.getrusage(resource.RUSAGE_SELF))  # noqa: E731
    before = faults()
    assert read_header(big) == {"model.diffusion_model.x": {"dtype": "F32", "shape": [size // 4]}}
    assert faults() - before < 2000  # reading the weights would fault in 131,072 pages of 4 kB
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(struct.pack("<Q", len(header)) + header + bytes(16))  # the header's weights cut short
    with pytest.raises(ModelLoadError, match="cannot be read as a .safetensors file: .*not fully covered"):
        read_header(truncated)


def test_modelset_lists_a_single_file(single_file, tiny_checkpoint):
    from sd_img2img.engine.model_set import ModelSet

    models = ModelSet({"mine": str(single_file)}, device="cpu", dtype="float32", config=str(tiny_checkpoint))
    info = models.info("mine")
    assert (info.family, info.loaded) == ("sd", False)


@pytest.mark.parametrize(
    "keys, kind, config",
    [
        (["cond_stage_model.transformer.text_model.embeddings.position_embedding.weight"], "sd1", "sd15"),
        (["cond_stage_model.model.token_embedding.weight"], "sd2", "sd21"),
        (
            [
                "conditioner.embedders.0.transformer.text_model.embeddings.position_embedding.weight",
                "conditioner.embedders.1.model.positional_embedding",
            ],
            "sdxl",
            "sdxl-base",
        ),
        (["conditioner.embedders.0.model.text_projection"], "sdxl-refiner", "sdxl-refiner"),
    ],
)
def test_layouts_are_told_from_the_keys(tmp_path, keys, kind, config):
    import torch
    from safetensors.torch import save_file

    path = tmp_path / f"{kind}.safetensors"
    save_file(
        {"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(1, 4, 1, 1), **{k: torch.zeros(1) for k in keys}},
        str(path),
    )
    layout = detect_layout(path)
    assert (layout.kind, layout.config) == (kind, config)
    assert family_of(path).name == {"sd1": "sd", "sd2": "sd"}.get(kind, kind)


def test_inpainting_files_are_refused(tmp_path):
    import torch
    from safetensors.torch import save_file

    path = tmp_path / "inpaint.safetensors"
    save_file(
        {
            "model.diffusion_model.input_blocks.0.0.weight": torch.zeros(1, 9, 1, 1),
            "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight": torch.zeros(1),
        },
        str(path),
    )
    with pytest.raises(ModelLoadError, match=r"diffusers reads it as an 'inpainting' checkpoint"):
        detect_layout(path)


@pytest.mark.parametrize("arch, kind", [("tiny-sdxl", "sdxl"), ("tiny-sdxl-refiner", "sdxl-refiner")])
def test_sdxl_single_files_give_the_folders_output(arch, kind, tmp_path, tiny_taesd, fireplace):
    from original_layout import write_single_file

    from sd_img2img.testing.tiny import build_sdxl

    # text_encoder_2 narrower than text_encoder: diffusers tells SDXL's two encoders apart by their widths
    folder = build_sdxl(tmp_path / arch, arch, text_2=dict(hidden_size=48, intermediate_size=96, projection_dim=48))
    single = write_single_file(folder, tmp_path / f"{arch}.safetensors")
    keys = _keys(single)
    assert detect_layout(single).kind == kind
    if kind == "sdxl":
        assert "conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight" in keys
        assert "model.diffusion_model.label_emb.0.0.weight" in keys
    else:
        assert not any(k.startswith("conditioner.embedders.1.") for k in keys)
    import torch

    reference = Engine(str(folder), device="cpu", dtype="float32", taesd=str(tiny_taesd))
    engine = Engine(str(single), device="cpu", dtype="float32", config=str(folder), taesd=str(tiny_taesd))
    a, b = _run(reference, fireplace), _run(engine, fireplace)
    assert engine.loaded.family.name == kind
    for part in ("unet", "vae", "text_encoder", "text_encoder_2"):  # every weight comes back exactly
        mine, theirs = getattr(engine.loaded.img2img, part), getattr(reference.loaded.img2img, part)
        assert (mine is None) == (theirs is None) == (part == "text_encoder" and kind == "sdxl-refiner")
        if mine is not None:
            sa, sb = theirs.state_dict(), mine.state_dict()
            assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa), part
    # identical weights, yet OpenCLIP's pooled projection comes out ~5e-7 apart (float rounding): nearly the same picture
    assert b.steps_taken == a.steps_taken
    assert max_diff(a.output, b.output) <= 2


def test_loras_on_a_single_file(single_file, tiny_checkpoint, tiny_taesd, fireplace, tmp_path):
    from builders import build_lora

    lora = build_lora(tiny_checkpoint, tmp_path / "detail.safetensors", "kohya")
    engine = Engine(
        str(single_file),
        device="cpu",
        dtype="float32",
        config=str(tiny_checkpoint),
        taesd=str(tiny_taesd),
        loras=[str(lora)],
    )
    plain = Engine(str(single_file), device="cpu", dtype="float32", config=str(tiny_checkpoint), taesd=str(tiny_taesd))
    base = np.asarray(_run(plain, fireplace).output)
    assert not np.array_equal(np.asarray(_run(engine, fireplace).output), base)
    assert np.array_equal(np.asarray(_run(engine, fireplace, loras={"detail": 0}).output), base)


def test_a_config_without_vocabulary_gets_the_shipped_tokenizer(single_file, tiny_checkpoint, tmp_path):
    import shutil

    from sd_img2img.models.loading import load_model

    config = shutil.copytree(tiny_checkpoint, tmp_path / "config", ignore=shutil.ignore_patterns("*.safetensors"))
    for name in ("vocab.json", "merges.txt", "tokenizer.json"):
        (config / "tokenizer" / name).unlink(missing_ok=True)
    # the JSON files are all a config needs (the tiny weights come from the single file)
    lm = load_model(str(single_file), device="cpu", config=str(config))
    assert len(lm.tokenizer) == 49408
    assert lm.tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]


def _stripped(single_file, out, keep=lambda key: True, rename=lambda key: key):
    """The tiny single file re-written with only the keys ``keep`` takes, renamed by ``rename``."""
    from safetensors.torch import load_file, save_file

    state = load_file(str(single_file))
    save_file({rename(k): v for k, v in state.items() if keep(k)}, str(out))
    return out


_MISSING = {
    "no-vae": (
        dict(keep=lambda k: not k.startswith("first_stage_model.")),
        r"has no weights for the VAE \(AutoencoderKL; the original layout keeps it under first_stage_model\.\*\): "
        r"give a complete checkpoint, or run with --vae tiny",
    ),
    "clip-without-text_model": (
        dict(rename=lambda k: k.replace("cond_stage_model.transformer.text_model.", "cond_stage_model.transformer.")),
        r"has no weights for the text encoder \(CLIPTextModel; .*\): its keys are cond_stage_model\.transformer\.\* "
        r"without the text_model\. part .*cond_stage_model\.transformer\.text_model\.embeddings",
    ),
    "unet-and-vae-only": (
        dict(keep=lambda k: not k.startswith("cond_stage_model.")),
        r"holds a UNet \(model\.diffusion_model\.\*\) but no text encoder \(cond_stage_model\.\* or "
        r"conditioner\.embedders\.\*\): give a complete checkpoint",
    ),
}


@pytest.mark.parametrize("case", list(_MISSING))
def test_a_file_without_a_component_says_which_and_what_to_give(
    case, single_file, tiny_checkpoint, tiny_taesd, tmp_path, capsys
):
    import re

    from sd_img2img.cli import main
    from sd_img2img.ui.examples import draw_fireplace

    strip, expected = _MISSING[case]
    model = _stripped(single_file, tmp_path / f"{case}.safetensors", **strip)
    init = tmp_path / "init.png"
    draw_fireplace(64, 64).save(init)
    argv = [str(init), "--prompt", "fire", "--steps", "2", "--device", "cpu", "--dtype", "float32"]
    argv += ["--model", str(model), "--config", str(tiny_checkpoint), "--out", str(tmp_path / "out")]
    assert main(argv) == 1  # an error message, not a traceback
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("sd-img2img: error:")]
    assert len(err) == 1 and re.search(expected, err[0]), err
    assert str(model) in err[0] and "Traceback" not in err[0]
    if case == "no-vae":  # the advice works: the family's tiny autoencoder stands in for the missing VAE
        assert main(argv + ["--vae", "tiny", "--taesd", str(tiny_taesd), "--preview", "approx"]) == 0
