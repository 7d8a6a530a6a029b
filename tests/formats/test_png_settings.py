"""Settings read from other tools' PNGs (AUTOMATIC1111, InvokeAI, ComfyUI), sampler names both ways, model hash.

Every PNG here is built with PIL's PngInfo, carrying the metadata the way each tool writes it. No model is needed.
"""

import gzip
import hashlib
import json
import os
import time
import zlib

import pytest
from PIL import Image, PngImagePlugin
from tool_images import USER_COMMENT, exif_block, jpeg_with_exif, stealth_pixels, webp_with_exif

from sd_img2img.errors import UserInputError
from sd_img2img.formats.a1111_text import parse_a1111_parameters
from sd_img2img.formats.image_settings import read_image_settings
from sd_img2img.formats.metadata import a1111_parameters, read_settings, save_png, short_model_name
from sd_img2img.formats.sampler_names import SAMPLER_TABLE, a1111_sampler, our_sampler
from sd_img2img.models.families import DIFFUSION_SAMPLERS
from sd_img2img.models.model_hash import model_hash
from sd_img2img.plan.samplers import ALL_SAMPLER_NAMES


def png(tmp_path, chunks, name="in.png"):
    """A small PNG with ``chunks`` as text chunks (dicts and lists are written as JSON)."""
    info = PngImagePlugin.PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value if isinstance(value, str) else json.dumps(value))
    path = tmp_path / name
    Image.new("RGB", (16, 16), "gray").save(path, pnginfo=info)
    return path


# -- AUTOMATIC1111 -------------------------------------------------------------------------------------------

A1111_EXAMPLE = (
    "a cat on a windowsill, golden hour\n"
    "Negative prompt: blurry, lowres\n"
    "Steps: 20, Sampler: Euler a, CFG scale: 6, Seed: 123, Size: 512x768, Denoising strength: 0.45"
)

A1111_BUSY = (
    "a photo of a cat, (masterpiece:1.2), <lora:add_detail:0.8>\n"
    "sitting on a windowsill\n"
    "Negative prompt: blurry,\n"
    "lowres\n"
    "Steps: 30, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7.5, Seed: 4242, Size: 512x768, "
    "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Denoising strength: 0.7, Clip skip: 2, Hires upscale: 2, "
    'Hires steps: 10, Hires upscaler: Latent, Lora hashes: "add_detail: 7c6bad76eb54", '
    'ADetailer prompt: "detailed face, Seed: 9", ENSD: 31337, Version: v1.9.4\n'
    "Template: a photo of a {cat|dog}"
)


def test_a1111_example(tmp_path):
    got = read_image_settings(png(tmp_path, {"parameters": A1111_EXAMPLE}))
    assert got.tool == "AUTOMATIC1111"
    assert got.settings == {
        "prompt": "a cat on a windowsill, golden hour",
        "negative_prompt": "blurry, lowres",
        "steps": 20,
        "sampler": "k_euler_a",
        "guidance_scale": 6.0,
        "seed": 123,
        "width": 512,
        "height": 768,
        "strength": 0.45,
    }
    assert got.notes == []
    assert got.request_kwargs() == got.settings


def test_a1111_quoted_values_multiline_prompt_and_notes(tmp_path):
    got = read_image_settings(png(tmp_path, {"parameters": A1111_BUSY}))
    s = got.settings
    assert s["prompt"] == "a photo of a cat, (masterpiece:1.2), <lora:add_detail:0.8>\nsitting on a windowsill"
    assert s["negative_prompt"] == "blurry,\nlowres"
    # the quoted "…, Seed: 9" stays inside its value
    assert (s["seed"], s["steps"], s["guidance_scale"]) == (4242, 30, 7.5)
    assert s["sampler"] == "dpmpp_2m_karras"
    assert (s["model"], s["model_hash"]) == ("v1-5-pruned-emaonly", "6ce0161689")
    # with hires fix, "Denoising strength" is the hires pass's: not an img2img strength
    assert "strength" not in s
    notes = " | ".join(got.notes)
    assert "hires fix settings ignored" in notes and "Hires upscale: 2" in notes
    assert "Clip skip: 2 is not supported" in notes
    assert "LoRAs are not supported here" in notes and "add_detail" in notes
    assert "ENSD: 31337" in notes and "ADetailer prompt: detailed face, Seed: 9" in notes
    assert "Version" not in notes


def test_parse_a1111_parameters_without_settings_line():
    prompt, negative, settings = parse_a1111_parameters("just a prompt\nNegative prompt: ugly")
    assert (prompt, negative, settings) == ("just a prompt", "ugly", {})


@pytest.mark.parametrize(
    ("sampler", "schedule", "expected"),
    [
        ("DPM++ 2M Karras", None, "dpmpp_2m_karras"),  # before AUTOMATIC1111 1.8
        ("DPM++ 2M", "Karras", "dpmpp_2m_karras"),
        ("DPM++ 2M", "Automatic", "dpmpp_2m_karras"),  # 1.8+: DPM++ 2M's automatic schedule is Karras
        ("DPM++ 2M", None, "dpmpp_2m"),
        ("DPM++ 2M", "Uniform", "dpmpp_2m"),
        ("LMS", None, "k_lms"),
        ("Heun", None, "k_heun"),
        ("DPM2 a", None, "k_dpm_2_a"),
        ("DDIM", None, "ddim"),
        ("PLMS", None, "plms"),
    ],
)
def test_a1111_sampler_names(tmp_path, sampler, schedule, expected):
    line = f"Steps: 20, Sampler: {sampler}, " + (f"Schedule type: {schedule}, " if schedule else "") + "Seed: 1"
    got = read_image_settings(png(tmp_path, {"parameters": f"a cat\n{line}"}))
    assert got.settings["sampler"] == expected


def test_a1111_unmapped_sampler_and_lost_schedule_are_noted(tmp_path):
    got = read_image_settings(png(tmp_path, {"parameters": "a\nSteps: 20, Sampler: DPM++ SDE, Seed: 5"}))
    assert "sampler" not in got.settings and got.settings["seed"] == 5
    assert any("'DPM++ SDE'" in n and "no equivalent here" in n for n in got.notes)
    got = read_image_settings(png(tmp_path, {"parameters": "a\nSteps: 20, Sampler: Euler, Schedule type: Karras"}))
    assert got.settings["sampler"] == "k_euler"
    assert any("k_euler has no Karras schedule" in n for n in got.notes)


def test_a1111_bad_values_are_left_out_with_notes(tmp_path):
    text = "a\nSteps: 900, Sampler: Euler, CFG scale: nan, Seed: -4, Size: 20000x516, Denoising strength: 0"
    got = read_image_settings(png(tmp_path, {"parameters": text}))
    assert got.settings == {"prompt": "a", "negative_prompt": "", "sampler": "k_euler", "height": 512}
    notes = " | ".join(got.notes)
    for part in (
        "Steps '900'",
        "CFG scale 'nan'",
        "Seed '-4'",
        "width 20000",
        "height 516 is not a multiple of 8",
        "Denoising strength '0'",
    ):
        assert part in notes


# -- InvokeAI -----------------------------------------------------------------------------------------------

INVOKEAI_3 = {
    "generation_mode": "img2img", "positive_prompt": "a cat", "negative_prompt": "blurry", "width": 512,
    "height": 768, "seed": 123, "cfg_scale": 6.0, "steps": 20, "scheduler": "euler_a", "clip_skip": 0,
    "model": {"model_name": "stable-diffusion-v1-5", "base_model": "sd-1", "model_type": "main"},
    "strength": 0.45, "app_version": "3.6.0",
    "loras": [{"lora": {"model_name": "add_detail", "base_model": "sd-1"}, "weight": 0.7}],
}  # fmt: skip
INVOKEAI_5 = {
    "generation_mode": "sd-1_img2img", "positive_prompt": "a dog", "negative_prompt": "", "width": 640,
    "height": 512, "seed": 7, "cfg_scale": 8, "steps": 25, "scheduler": "dpmpp_2m_k", "strength": 0.6,
    "model": {"key": "abc", "hash": "blake3:ff00", "name": "Dreamshaper 8", "base": "sd-1", "type": "main"},
    "app_version": "5.0.0",
}  # fmt: skip


def test_invokeai_metadata_3(tmp_path):
    got = read_image_settings(png(tmp_path, {"invokeai_metadata": INVOKEAI_3}))
    assert got.tool == "InvokeAI"
    assert got.settings == {
        "prompt": "a cat", "negative_prompt": "blurry", "steps": 20, "sampler": "k_euler_a",
        "guidance_scale": 6.0, "seed": 123, "width": 512, "height": 768, "strength": 0.45,
        "model": "stable-diffusion-v1-5",
    }  # fmt: skip
    assert any("add_detail" in n for n in got.notes)


def test_invokeai_metadata_5_model_name_and_karras(tmp_path):
    got = read_image_settings(png(tmp_path, {"invokeai_metadata": INVOKEAI_5}))
    s = got.settings
    assert (s["sampler"], s["seed"], s["steps"], s["guidance_scale"]) == ("dpmpp_2m_karras", 7, 25, 8.0)
    assert (s["width"], s["height"], s["strength"], s["prompt"]) == (640, 512, 0.6, "a dog")
    assert s["model"] == "Dreamshaper 8"  # sd-parsers alone misses InvokeAI 4+'s model name


@pytest.mark.parametrize(
    "chunks",
    [
        {"Dream": '"a cat [blurry, lowres]" -s 20 -S 123 -W 512 -H 768 -C 6.0 -A k_euler_a -f 0.45'},
        {"sd-metadata": {
            "model_weights": "stable-diffusion-1.5", "app_id": "invoke-ai/InvokeAI", "app_version": "2.2.5",
            "image": {"prompt": [{"prompt": "a cat [blurry, lowres]", "weight": 1.0}], "steps": 20, "cfg_scale": 6.0,
                      "height": 768, "width": 512, "seed": 123, "type": "img2img", "sampler": "k_euler_a",
                      "strength": 0.45},
        }},
    ],
    ids=["dream", "sd-metadata"],
)  # fmt: skip
def test_invokeai_legacy_layouts(tmp_path, chunks):
    got = read_image_settings(png(tmp_path, chunks))
    assert got.tool == "InvokeAI"
    s = got.settings
    assert (s["prompt"], s["negative_prompt"]) == ("a cat", "blurry, lowres")
    assert (s["steps"], s["seed"], s["guidance_scale"], s["sampler"]) == (20, 123, 6.0, "k_euler_a")
    assert (s["width"], s["height"], s["strength"]) == (512, 768, 0.45)


# -- ComfyUI ------------------------------------------------------------------------------------------------


def comfy_img2img():
    """ComfyUI's API graph of an img2img run: LoadImage → ImageScale → VAEEncode → KSampler, with a LoRA."""
    return {
        "3": {"class_type": "KSampler", "inputs": {
            "seed": 987654, "steps": 30, "cfg": 5.5, "sampler_name": "dpmpp_2m", "scheduler": "karras",
            "denoise": 0.55, "model": ["10", 0], "positive": ["6", 0], "negative": ["7", 0],
            "latent_image": ["12", 0]}},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15/dreamshaper_8.safetensors"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a watercolor fox", "clip": ["10", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "photo, blurry", "clip": ["10", 1]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}},
        "10": {"class_type": "LoraLoader", "inputs": {"lora_name": "watercolor.safetensors", "strength_model": 0.8,
                                                      "strength_clip": 0.8, "model": ["4", 0], "clip": ["4", 1]}},
        "11": {"class_type": "LoadImage", "inputs": {"image": "fox.png", "upload": "image"}},
        "13": {"class_type": "ImageScale", "inputs": {"upscale_method": "lanczos", "width": 640, "height": 448,
                                                      "crop": "center", "image": ["11", 0]}},
        "12": {"class_type": "VAEEncode", "inputs": {"pixels": ["13", 0], "vae": ["4", 2]}},
    }  # fmt: skip


def test_comfyui_img2img_graph(tmp_path):
    workflow = {"nodes": [{"id": 3, "type": "KSampler"}], "links": []}  # the editor's copy, beside the graph
    got = read_image_settings(png(tmp_path, {"prompt": comfy_img2img(), "workflow": workflow}))
    assert got.tool == "ComfyUI"
    assert got.settings == {
        "steps": 30, "sampler": "dpmpp_2m_karras", "guidance_scale": 5.5, "seed": 987654,
        "prompt": "a watercolor fox", "negative_prompt": "photo, blurry", "width": 640, "height": 448,
        "strength": 0.55, "model": "dreamshaper_8",
    }  # fmt: skip
    assert any("watercolor.safetensors" in n for n in got.notes)


@pytest.mark.parametrize("seed", [280823642470253, 335608130539327, 2**64 - 1])
def test_comfyui_64_bit_seeds_are_kept(tmp_path, seed):
    """ComfyUI's seeds span 0 to 2⁶⁴ − 1 (its KSampler's seed widget): a 15-digit one, or the largest, is kept."""
    graph = comfy_img2img()
    graph["3"]["inputs"]["seed"] = seed
    got = read_image_settings(png(tmp_path, {"prompt": graph}))
    assert got.settings["seed"] == seed and not any("seed" in note for note in got.notes)


def test_a_seed_past_2_to_the_64_is_left_out_with_the_range(tmp_path):
    graph = comfy_img2img()
    graph["3"]["inputs"]["seed"] = 2**64
    got = read_image_settings(png(tmp_path, {"prompt": graph}))
    assert "seed" not in got.settings
    assert "seed 18446744073709551616 is outside this program's range (from 0 to 18446744073709551615)" in got.notes[0]


def test_comfyui_txt2img_with_hires_pass_reads_the_first_stage(tmp_path):
    graph = {
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 768, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a castle", "clip": ["4", 1]}},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}},
        "21": {"class_type": "KSampler", "inputs": {  # the hires pass, listed first and with a lower-looking seed
            "seed": 1, "steps": 10, "cfg": 7, "sampler_name": "euler", "scheduler": "normal", "denoise": 0.5,
            "model": ["4", 0], "positive": ["6", 0], "negative": ["6", 0], "latent_image": ["20", 0]}},
        "20": {"class_type": "LatentUpscale", "inputs": {"upscale_method": "nearest-exact", "width": 1024,
                                                         "height": 1536, "crop": "disabled", "samples": ["3", 0]}},
        "3": {"class_type": "KSamplerAdvanced", "inputs": {
            "add_noise": "enable", "noise_seed": 31337, "steps": 25, "cfg": 7.0, "sampler_name": "euler_ancestral",
            "scheduler": "normal", "start_at_step": 0, "end_at_step": 10000, "return_with_leftover_noise": "disable",
            "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
    }  # fmt: skip
    got = read_image_settings(png(tmp_path, {"prompt": graph}))
    s = got.settings
    assert (s["seed"], s["steps"], s["sampler"], s["prompt"]) == (31337, 25, "k_euler_a", "a castle")
    assert s["negative_prompt"] == ""
    assert (s["width"], s["height"], s["model"]) == (512, 768, "v1-5-pruned-emaonly")
    assert "strength" not in s  # txt2img
    assert any("2 sampler nodes; read #3" in n for n in got.notes)


def test_comfyui_cycles_and_wrong_types_return_what_can_be_read(tmp_path):
    graph = {
        "1": {"class_type": "KSampler", "inputs": {
            "seed": "abc", "steps": 12, "cfg": [1, 2, 3], "sampler_name": "euler", "scheduler": "sgm_uniform",
            "denoise": 1.0, "model": ["2", 0], "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["2", 0]}},
        "2": {"class_type": "Loop", "inputs": {"a": ["1", 0], "b": ["2", 0], "c": ["9", 0], "d": [None, "x"]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": 12, "clip": ["3", 0]}},
        "4": "not a node",
        "5": {"class_type": "KSampler", "inputs": "not inputs"},
    }  # fmt: skip
    got = read_image_settings(png(tmp_path, {"prompt": graph}))
    assert got.settings == {"steps": 12, "sampler": "k_euler"}
    notes = " | ".join(got.notes)
    assert "seed 'abc' is not a whole number" in notes and "sgm_uniform" in notes
    assert "no text was found for the positive prompt" in notes


# -- hostile files ------------------------------------------------------------------------------------------


HOSTILE_CHUNKS = {  # id: (the PNG's text chunks, what the message must say)
    "garbage-json": ({"prompt": "{not json", "workflow": "{}"}, "ComfyUI 'prompt' graph is not valid JSON"),
    "list": ({"prompt": "[1, 2]"}, "wrong shape"),
    "deep": ({"prompt": "[" * 50_000 + "]" * 50_000}, "not valid JSON"),
    "no-sampler": ({"prompt": {"1": {"class_type": "CLIPTextEncode", "inputs": {"text": "x"}}}}, "no KSampler"),
    "workflow-only": ({"workflow": {"nodes": []}}, "only ComfyUI's editor 'workflow'"),
    "invoke-list": ({"invokeai_metadata": "[1, 2, 3]"}, "InvokeAI metadata could not be read"),
    "invoke-model": ({"invokeai_metadata": '{"scheduler": "euler", "model": "x"}'}, "InvokeAI metadata could not"),
    "sd-meta": ({"sd-metadata": '{"image": 5}'}, "InvokeAI metadata could not be read"),
    "unknown-json": ({"parameters": '{"prompt": "x", "fooocus_scheme": "a1111"}'}, "holds JSON that neither Fooocus"),
    "huge": ({"parameters": "x" * 5_000_000}, "5,000,000 characters"),
    "long-a1111": ({"parameters": "a: b, " * 30_000}, "characters long"),
    "long-dream": ({"Dream": '"a"' + " " * 200_000 + "-"}, "'Dream' text is"),
    "fooocus-deep": ({"parameters": '{"prompt": ' + "[" * 50_000 + "]" * 50_000 + "}"}, "JSON, as Fooocus"),
    "fooocus-types": (
        {"parameters": {"full_prompt": [1], "resolution": [9], "seed": {"a": 1}, "steps": "9" * 60, "sampler": 3}},
        "seed {'a': 1} is not a whole number",
    ),
    "fooocus-many-keys": ({"parameters": "{" + '"k": 1, ' * 100_000 + '"z": 2}'}, "keys: 'k', 'z'"),
    "swarm-shape": ({"parameters": '{"sui_image_params": "just text"}'}, "'sui_image_params' is str, not an object"),
    "swarm-deep": ({"parameters": '{"sui_image_params": ' + "{" * 50_000 + "}" * 50_000 + "}"}, "not valid JSON"),
    "novelai-deep": ({"Software": "NovelAI", "Comment": "[" * 50_000 + "]" * 50_000}, "'Comment' is not valid JSON"),
    "novelai-list": ({"Software": "NovelAI", "Comment": "[1, 2]"}, "NovelAI 'Comment' is JSON of the wrong shape"),
    "novelai-huge": ({"Software": "NovelAI", "Comment": "{" * 2_000_000}, "'Comment' text chunk is 2,000,000"),
    "novelai-odd": ({"Software": "NovelAI", "Comment": '{"seed": "\\ud800", "uc": 5, "steps": 1e999}'}, "seed"),
}


@pytest.mark.parametrize(("chunks", "message"), HOSTILE_CHUNKS.values(), ids=HOSTILE_CHUNKS)
def test_hostile_pngs_raise_user_input_error(tmp_path, chunks, message):
    with pytest.raises(UserInputError, match="no settings could be read") as e:
        read_image_settings(png(tmp_path, chunks))
    assert message in str(e.value)


def _user_comment_jpeg(comment: bytes):
    return lambda tmp_path: jpeg_with_exif(tmp_path / "x.jpg", exif_block({USER_COMMENT: comment}))


def _user_comment_webp(comment: bytes):
    return lambda tmp_path: webp_with_exif(tmp_path / "x.webp", exif_block({USER_COMMENT: comment}))


def _stealth(data: bytes, signature: bytes = b"stealth_pngcomp", length: int | None = None, size=(64, 64)):
    def build(tmp_path):
        path = tmp_path / "x.png"
        stealth_pixels(data, "alpha", signature, size, length).save(path)
        return path

    return build


def _damaged_exif(tmp_path):
    path = jpeg_with_exif(tmp_path / "x.jpg", b"MM\0*\xff\xff\xff\xf0" + b"\xee" * 40)
    return path


HOSTILE_FILES = {  # id: (how the file is built, what the message must say)
    "jpeg-utf16-surrogates": (_user_comment_jpeg(b"UNICODE\0" + b"\xd8\xd8" * 300), "UNICODE-prefixed, 608 bytes"),
    "jpeg-jis": (_user_comment_jpeg(b"JIS\0\0\0\0\0" + b"\x81\x20" * 50), "not valid Shift JIS"),
    "jpeg-not-utf8": (_user_comment_jpeg(b"\xff\xfe\xfa" * 100), "without a prefix, 300 bytes, not valid UTF-8"),
    "jpeg-deep-json": (_user_comment_jpeg(b'{"prompt": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"), "holds Fooocus"),
    "jpeg-damaged-exif": (_damaged_exif, "carries no generation settings"),
    "webp-huge-comment": (_user_comment_webp(b"ASCII\0\0\0" + b"x" * 3_000_000), "3,000,008 bytes long"),
    "webp-long-a1111": (
        _user_comment_webp(b"ASCII\0\0\0" + b"a, " * 60_000),
        "the WebP EXIF UserComment holds AUTOMATIC1111 text, but the AUTOMATIC1111 text is 180,000 characters",
    ),
    "stealth-too-long": (_stealth(b"x", b"stealth_pnginfo", length=2**32 - 1), "says it holds 4,294,967,295 bits"),
    "stealth-bad-gzip": (_stealth(b"\x1f\x8b" + b"garbage" * 20), "not valid gzip data"),
    "stealth-cut-gzip": (_stealth(gzip.compress(A1111_EXAMPLE.encode())[:40]), "ends before its gzip data does"),
    "stealth-gzip-bomb": (_stealth(gzip.compress(b"\0" * 5_000_000), size=(256, 256)), "unpacks to more than"),
    "stealth-not-utf8": (_stealth(b"\xff\xfe" * 100, b"stealth_pnginfo"), "not UTF-8 text"),
    "stealth-huge-text": (
        _stealth(gzip.compress(b"y" * 2_000_000), size=(256, 256)),
        "stealth_pngcomp, in the alpha channel's low bits) is 2,000,000 characters long",
    ),
}


@pytest.mark.parametrize(("build", "message"), HOSTILE_FILES.values(), ids=HOSTILE_FILES)
def test_hostile_jpegs_webps_and_stealth_info_raise_user_input_error(tmp_path, build, message):
    with pytest.raises(UserInputError) as e:
        read_image_settings(build(tmp_path))
    assert message in str(e.value) and ("no settings could be read" in str(e.value) or "carries no" in str(e.value))


@pytest.mark.slow
def test_every_hostile_image_is_answered_in_under_a_second(tmp_path):
    """Each hostile image above, and the largest image whose pixels are searched for stealth info (noise, so that its
    PNG decodes as slowly as a picture's; no stealth header), answers in under a second. Run with -s for the times
    (docs/app.md)."""
    import numpy as np

    from sd_img2img.config import STEALTH_MAX_PIXELS

    side = int(STEALTH_MAX_PIXELS**0.5)
    big = tmp_path / "largest-searched.png"
    noise = np.random.default_rng(0).integers(0, 256, (side, side, 4), dtype=np.uint8)
    Image.fromarray(noise, "RGBA").save(big, compress_level=1)
    cases = {key: lambda t, c=chunks: png(t, c) for key, (chunks, _) in HOSTILE_CHUNKS.items()}
    cases |= {key: build for key, (build, _) in HOSTILE_FILES.items()} | {f"noise-{side}x{side}": lambda t: big}
    seconds = {}
    for key, build in cases.items():
        folder = tmp_path / key
        folder.mkdir()
        path = build(folder)
        start = time.perf_counter()
        with pytest.raises(UserInputError):
            read_image_settings(path)
        seconds[key] = time.perf_counter() - start
    slowest = sorted(seconds.items(), key=lambda item: -item[1])
    print("slowest:", ", ".join(f"{key} {s * 1000:.0f} ms" for key, s in slowest[:4]))
    assert slowest[0][1] < 1, slowest[:4]


def dream_with_a_whitespace_run(tmp_path):
    return png(tmp_path, {"Dream": '"a cat" -s 20 -S 5 -A k_lms -C 7' + " " * 90_000 + "x"})


def test_a_dream_line_with_a_whitespace_run_is_read(tmp_path):
    got = read_image_settings(dream_with_a_whitespace_run(tmp_path))
    assert (got.settings["steps"], got.settings["seed"], got.settings["sampler"]) == (20, 5, "k_lms")


@pytest.mark.slow
def test_whitespace_runs_in_a_dream_line_do_not_hang(tmp_path):
    # left as it is, sd-parsers' pattern backtracks over the run from each of its characters (about 10 s here)
    path = dream_with_a_whitespace_run(tmp_path)
    start = time.perf_counter()
    read_image_settings(path)
    assert time.perf_counter() - start < 3


def test_a_huge_chunk_beside_a_good_one_is_skipped_with_a_note(tmp_path):
    got = read_image_settings(png(tmp_path, {"parameters": A1111_EXAMPLE, "prompt": "x" * 2_000_000}))
    assert got.tool == "AUTOMATIC1111" and got.settings["seed"] == 123
    got = read_image_settings(png(tmp_path, {"parameters": "y" * 2_000_000, "invokeai_metadata": INVOKEAI_5}))
    assert got.tool == "InvokeAI" and got.settings["seed"] == 7
    assert any("'parameters' text chunk is 2,000,000 characters" in n for n in got.notes)


def test_plain_pngs_and_non_images(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "plain.png")
    with pytest.raises(UserInputError, match="carries no generation settings"):
        read_image_settings(tmp_path / "plain.png")
    (tmp_path / "x.png").write_text("hello")
    with pytest.raises(UserInputError, match="is not an image"):
        read_image_settings(tmp_path / "x.png")
    with pytest.raises(UserInputError, match="does not exist"):
        read_image_settings(tmp_path / "missing.png")


def _late_chunk(path, kind, key, data):
    """``path`` (a PNG) with one more text chunk just before IEND, after the pixel data."""
    body = kind + key.encode("latin-1") + b"\0" + data
    chunk = (len(body) - 4).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")
    raw = path.read_bytes()
    path.write_bytes(raw[:-12] + chunk + raw[-12:])
    return path


def _too_much_text(tmp_path, where):
    """A PNG whose embedded text is more than Pillow unpacks: one 2 MB chunk, or 70 chunks of 1 MB (over 64 MiB in all)."""
    path = tmp_path / f"{where}.png"
    info = PngImagePlugin.PngInfo()
    if where == "one-chunk":
        info.add_text("parameters", A1111_EXAMPLE + "x" * 2_000_000, zip=True)
    elif where == "all-chunks":
        for i in range(70):
            info.add_text(f"comment{i}", "y" * 1_000_000, zip=True)
    Image.new("RGB", (16, 16), "gray").save(path, pnginfo=info)
    if where == "after-pixels":
        _late_chunk(path, b"zTXt", "parameters", b"\0" + zlib.compress(b"z" * 2_000_000))
    return path


@pytest.mark.parametrize(
    "where, limit",
    [("one-chunk", "a compressed text chunk unpacks to more than 1 MB"),
     ("all-chunks", "its text chunks hold more than 64 MB in all"),
     ("after-pixels", "a compressed text chunk unpacks to more than 1 MB")],
)  # fmt: skip
def test_text_too_large_for_pillow_is_said_in_words(tmp_path, where, limit):
    from sd_img2img.plan.images import open_image

    path = _too_much_text(tmp_path, where)
    for read in (read_image_settings, read_settings):  # the page's PNG upload, and this project's own reader
        with pytest.raises(UserInputError) as e:
            read(path)
        message = str(e.value)
        assert message.startswith(f"'{path.name}' carries embedded text too large to read ({limit}"), message
        assert "re-save it without its metadata" in message and "MAX_TEXT" not in message
    assert "cannot be opened as an init image either" in message
    with pytest.raises(UserInputError, match="cannot be decoded"):  # what the message says of the init image
        open_image(path)


# -- this project's own PNGs --------------------------------------------------------------------------------

OURS = dict(
    generator="sd-img2img 0.1.0", mode="img2img", model="/models/checkpoints/tiny-sd15/", prompt="fire, embers",
    negative_prompt="smoke", seed=77, steps=9, real_steps=False, steps_taken=5, strength=0.65,
    sampler="dpmpp_2m_karras", guidance_scale=7.5, width=128, height=96, resize_mode="crop",
    model_hash="0123456789",
)  # fmt: skip


def test_own_png_round_trip(tmp_path):
    path = save_png(Image.new("RGB", (8, 8)), tmp_path / "ours.png", OURS)
    got = read_image_settings(path)
    assert got.tool == "sd-img2img" and got.notes == []
    assert got.settings == read_settings(path) == OURS
    assert got.request_kwargs()["sampler"] == "dpmpp_2m_karras" and "model" not in got.request_kwargs()
    text = Image.open(path).text["parameters"]
    assert text.splitlines()[-1] == (
        "Steps: 9, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7.5, Seed: 77, Size: 128x96, "
        "Model hash: 0123456789, Model: tiny-sd15, Denoising strength: 0.65, Steps taken: 5"
    )


def test_own_png_with_damaged_json_falls_back_to_its_parameters(tmp_path):
    chunks = {"sd-img2img": "{oops", "parameters": a1111_parameters(OURS)}
    got = read_image_settings(png(tmp_path, chunks))
    assert got.tool == "AUTOMATIC1111"
    assert (got.settings["sampler"], got.settings["seed"], got.settings["strength"]) == ("dpmpp_2m_karras", 77, 0.65)
    assert (got.settings["model"], got.settings["model_hash"]) == ("tiny-sd15", "0123456789")
    assert any("damaged" in n for n in got.notes)


def test_parameters_quote_values_with_commas_and_read_back(tmp_path):
    settings = {**OURS, "model": "C:\\models\\my, odd: model.safetensors", "sampler": "k_lms"}
    text = a1111_parameters(settings)
    assert 'Model: "my, odd: model"' in text and "Sampler: LMS," in text and "Schedule type" not in text
    got = read_image_settings(png(tmp_path, {"parameters": text}))
    assert got.settings["model"] == "my, odd: model" and got.settings["sampler"] == "k_lms"


def test_sd_parsers_reads_our_png(tmp_path):
    sd_parsers = pytest.importorskip("sd_parsers")
    path = save_png(Image.new("RGB", (8, 8)), tmp_path / "ours.png", {**OURS, "sampler": "k_euler_a"})
    info = sd_parsers.ParserManager().parse(str(path))
    assert info is not None and info.generator.value == "AUTOMATIC1111"
    sampler = info.samplers[0]
    assert sampler.name == "Euler a"
    assert sampler.parameters == {"steps": "9", "seed": "77", "cfg_scale": "7.5"}
    assert (info.metadata["Size"], info.metadata["Denoising strength"]) == ("128x96", "0.65")
    assert (sampler.model.name, sampler.model.hash) == ("tiny-sd15", "0123456789")
    assert (info.full_prompt, info.full_negative_prompt) == ("fire, embers", "smoke")


@pytest.mark.parametrize(
    ("model", "short"),
    [
        ("stable-diffusion-v1-5/stable-diffusion-v1-5", "stable-diffusion-v1-5/stable-diffusion-v1-5"),
        ("/home/me/models/tiny-sd15/", "tiny-sd15"),
        ("./ckpt/dreamshaper_8.safetensors", "dreamshaper_8"),
        ("C:\\models\\sd15", "sd15"),
    ],
)
def test_short_model_name(model, short):
    assert short_model_name(model) == short


# -- sampler names ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ours", DIFFUSION_SAMPLERS)
def test_every_sampler_maps_both_ways(ours):
    row = next(r for r in SAMPLER_TABLE if r.ours == ours)
    assert our_sampler("AUTOMATIC1111", *a1111_sampler(ours)) == (ours, [])
    invoke = row.invokeai[0] + ("_k" if row.karras else "")
    assert our_sampler("InvokeAI", invoke) == (ours, [])
    if row.comfyui:
        assert our_sampler("ComfyUI", row.comfyui, "karras" if row.karras else "normal") == (ours, [])


def test_sampler_table_names_only_known_samplers():
    assert {r.ours for r in SAMPLER_TABLE} <= set(ALL_SAMPLER_NAMES)
    assert set(DIFFUSION_SAMPLERS) | {"lcm"} <= {r.ours for r in SAMPLER_TABLE}
    assert our_sampler("AUTOMATIC1111", "LCM")[0] == "lcm"
    assert a1111_sampler("flow_euler") == ("flow_euler", None)  # not in the table yet: written as is


# -- model hash ---------------------------------------------------------------------------------------------


def test_model_hash_of_a_folder_a_file_and_shards(tmp_path):
    unet = tmp_path / "ckpt" / "unet"
    unet.mkdir(parents=True)
    weights = unet / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(b"unet weights")
    expected = hashlib.sha256(b"unet weights").hexdigest()[:10]
    assert model_hash(tmp_path / "ckpt") == expected
    assert model_hash(weights) == expected  # a single file hashes as AUTOMATIC1111 hashes it
    weights.write_bytes(b"other weights")
    os.utime(weights, ns=(1, 1))  # a different file: size and time change, so the cached hash is not reused
    assert model_hash(tmp_path / "ckpt") == hashlib.sha256(b"other weights").hexdigest()[:10]

    weights.unlink()
    (unet / "b.safetensors").write_bytes(b"22")
    (unet / "a.safetensors").write_bytes(b"1")
    index = {"weight_map": {"x": "b.safetensors", "y": "a.safetensors", "z": "b.safetensors"}}
    (unet / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps(index))
    assert model_hash(tmp_path / "ckpt") == hashlib.sha256(b"122").hexdigest()[:10]

    index["weight_map"]["w"] = "../escape.safetensors"
    (unet / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps(index))
    assert model_hash(tmp_path / "ckpt") is None
    assert model_hash(tmp_path / "nowhere") is None
    assert model_hash("no-such-owner/no-such-model") is None


def test_chunks_after_the_pixel_data_are_read(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "late.png")
    data = (tmp_path / "late.png").read_bytes()
    body = b"tEXt" + b"parameters\0" + A1111_EXAMPLE.encode("latin-1")
    chunk = (len(body) - 4).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")
    (tmp_path / "late.png").write_bytes(data[:-12] + chunk + data[-12:])  # just before IEND
    assert "parameters" not in Image.open(tmp_path / "late.png").info
    assert read_image_settings(tmp_path / "late.png").settings["sampler"] == "k_euler_a"


def test_comfyui_combined_conditioning_and_a_seed_node(tmp_path):
    graph = {
        "3": {"class_type": "KSampler", "inputs": {
            "seed": ["9", 0], "steps": 20, "cfg": 7, "sampler_name": "heun", "scheduler": "normal", "denoise": 1,
            "model": ["4", 0], "positive": ["8", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
        "8": {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["6", 0], "conditioning_2": ["7", 0]}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red door", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "ivy", "clip": ["4", 1]}},
        "9": {"class_type": "Seed (rgthree)", "inputs": {"seed": 5150}},
    }  # fmt: skip
    got = read_image_settings(png(tmp_path, {"prompt": graph}))
    assert got.settings == {
        "steps": 20, "sampler": "k_heun", "guidance_scale": 7.0, "seed": 5150, "prompt": "a red door, ivy",
        "negative_prompt": "ivy",
    }  # fmt: skip
    assert any("combines 2 texts" in n for n in got.notes)


def test_model_hash_is_kept_on_disk_for_the_next_process(tmp_path, monkeypatch):
    from sd_img2img.models import model_hash as mh

    monkeypatch.setenv("SD_IMG2IMG_CACHE", str(tmp_path / "cache"))
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"first weights")
    stamp = weights.stat().st_mtime_ns
    assert model_hash(weights) == hashlib.sha256(b"first weights").hexdigest()[:10]
    assert (tmp_path / "cache" / "model-hashes.json").is_file()
    mh._hash_files.cache_clear()  # as a new process
    weights.write_bytes(b"other weights")  # same size and time: the stored hash is used, the bytes are not read
    os.utime(weights, ns=(stamp, stamp))
    assert model_hash(weights) == hashlib.sha256(b"first weights").hexdigest()[:10]


def _hub_cache(root, repo_id, files):
    """A Hugging Face hub cache under ``root`` as huggingface_hub lays it out: ``blobs/<name>``, and
    ``snapshots/<revision>/<path>`` links to them; ``files`` maps a path to (blob name, content)."""
    repo = root / f"models--{repo_id.replace('/', '--')}"
    revision = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    (repo / "blobs").mkdir()
    for path, (blob, content) in files.items():
        (repo / "blobs" / blob).write_bytes(content)
        link = repo / "snapshots" / revision / path
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(repo / "blobs" / blob, link.parent))
    return repo / "snapshots" / revision


def test_a_hub_cache_file_is_hashed_by_its_blob_name_without_reading_it(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))  # read at import
    monkeypatch.setenv("SD_IMG2IMG_CACHE", str(tmp_path / "cache"))
    named = hashlib.sha256(b"the weights the hub hashed").hexdigest()
    # the blob holds other bytes than its name says: a hash that read the file would come out different
    snapshot = _hub_cache(
        tmp_path / "hub",
        "owner/model",
        {"unet/diffusion_pytorch_model.safetensors": (named, b"other bytes"), "model_index.json": ("a" * 40, b"{}")},
    )
    assert model_hash("owner/model") == named[:10]
    assert model_hash(snapshot) == named[:10]  # the snapshot folder given as a path: the same file
    assert not (tmp_path / "cache" / "model-hashes.json").exists()  # nothing read, nothing to remember
    # a blob not named by a sha256 (git's sha1 names small files) is read and hashed
    other = _hub_cache(tmp_path / "hub", "owner/small", {"unet/diffusion_pytorch_model.safetensors": ("b" * 40, b"w")})
    assert model_hash(other) == hashlib.sha256(b"w").hexdigest()[:10]
