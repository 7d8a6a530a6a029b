"""Settings from Fooocus', NovelAI's and SwarmUI's images, each built to the layout the tool documents or writes (its
PNG text chunks, or the EXIF of its JPEGs), read field for field, with notes for what does not carry over."""

from __future__ import annotations

import gzip
import json

import pytest
from tool_images import MAKER_NOTE, USER_COMMENT, exif_block, jpeg_with_exif, png_with_text, stealth_pixels

from sd_img2img.formats.image_settings import read_image_settings
from sd_img2img.formats.sampler_names import our_sampler

# -- Fooocus ------------------------------------------------------------------------------------------------

FOOOCUS = {  # Fooocus 2.5's "fooocus" scheme: its metadata list as JSON, keys sorted
    "adaptive_cfg": 7,
    "adm_guidance": "(1.5, 0.8, 0.3)",
    "base_model": "juggernautXL_v8Rundiffusion",
    "base_model_hash": "aeb7e9e689",
    "clip_skip": 2,
    "full_negative_prompt": ["blurry", "(worst quality:1.2)"],
    "full_prompt": ["a lighthouse at dusk", "a lighthouse at dusk, cinematic, dramatic light"],
    "guidance_scale": 4.5,
    "loras": [["sd_xl_offset_example-lora_1.0", 0.1, "4852686128"]],
    "metadata_scheme": "fooocus",
    "negative_prompt": "blurry",
    "performance": "Speed",
    "prompt": "a lighthouse at dusk",
    "prompt_expansion": "a lighthouse at dusk, cinematic, dramatic light",
    "refiner_model": "None",
    "refiner_switch": 0.8,
    "resolution": "(1152, 896)",
    "sampler": "dpmpp_2m",
    "scheduler": "karras",
    "seed": "8794165237610386537",
    "sharpness": 2,
    "steps": 30,
    "styles": "['Fooocus V2', 'Fooocus Enhance']",
    "vae": "Default (model)",
    "version": "Fooocus v2.5.5",
}


def test_fooocus_png(tmp_path):
    path = png_with_text(tmp_path / "fooocus.png", {"parameters": FOOOCUS, "fooocus_scheme": "fooocus"})
    got = read_image_settings(path)
    assert (got.tool, got.found_in) == ("Fooocus", "the PNG text chunks")
    assert got.settings == {
        "prompt": "a lighthouse at dusk, a lighthouse at dusk, cinematic, dramatic light",  # as it ran, styles applied
        "negative_prompt": "blurry, (worst quality:1.2)",
        "steps": 30,
        "guidance_scale": 4.5,
        "seed": 8794165237610386537,
        "sampler": "dpmpp_2m_karras",
        "width": 1152,
        "height": 896,
        "model": "juggernautXL_v8Rundiffusion",
        "model_hash": "aeb7e9e689",
    }
    notes = " | ".join(got.notes)
    assert "as typed it was 'a lighthouse at dusk'" in notes and "no strength" in notes
    assert "sd_xl_offset_example-lora_1.0" in notes and "sharpness: 2" in notes and "clip_skip: 2" in notes
    assert "styles:" not in notes and "version" not in notes and "vae" not in notes  # the styles are in the prompt read


def test_fooocus_jpeg_and_its_default_sampler(tmp_path):
    """Fooocus' JPEGs: the JSON in the first IFD's UserComment (Pillow's Image.Exif), the scheme in MakerNote."""
    meta = {**FOOOCUS, "sampler": "dpmpp_2m_sde_gpu", "seed": "12"}
    del meta["full_prompt"], meta["full_negative_prompt"]
    exif = exif_block(ifd0={USER_COMMENT: json.dumps(meta).encode(), MAKER_NOTE: b"fooocus"}, order="<")
    got = read_image_settings(jpeg_with_exif(tmp_path / "fooocus.jpg", exif))
    assert (got.tool, got.found_in) == ("Fooocus", "the JPEG EXIF UserComment")
    s = got.settings
    assert (s["prompt"], s["negative_prompt"], s["seed"], s["steps"]) == ("a lighthouse at dusk", "blurry", 12, 30)
    assert "sampler" not in s and any("'dpmpp_2m_sde_gpu, schedule karras' (Fooocus)" in n for n in got.notes)
    assert any("styles: " in n for n in got.notes)  # without its full prompt, the styles were not applied


# -- NovelAI ------------------------------------------------------------------------------------------------

NOVELAI_COMMENT = {  # NovelAI Diffusion V3, img2img (its Comment chunk)
    "prompt": "1girl, lighthouse, dusk, best quality",
    "steps": 28,
    "height": 1216,
    "width": 832,
    "scale": 5.0,
    "uncond_scale": 1.0,
    "cfg_rescale": 0.0,
    "seed": 3816166865,
    "n_samples": 1,
    "hide_debug_overlay": False,
    "noise_schedule": "karras",
    "sampler": "k_dpmpp_2m",
    "controlnet_strength": 1.0,
    "controlnet_model": None,
    "dynamic_thresholding": False,
    "sm": True,
    "sm_dyn": False,
    "skip_cfg_below_sigma": 0.0,
    "strength": 0.62,
    "noise": 0.1,
    "extra_noise_seed": 3816166865,
    "uc": "lowres, bad anatomy",
    "request_type": "Img2ImgRequest",
}
NOVELAI_CHUNKS = {
    "Title": "AI generated image",
    "Description": "1girl, lighthouse, dusk, best quality",
    "Software": "NovelAI",
    "Source": "Stable Diffusion XL C1E1DE52",
    "Generation time": "6.2",
    "Comment": json.dumps(NOVELAI_COMMENT),
}


def test_novelai_png(tmp_path):
    got = read_image_settings(png_with_text(tmp_path / "nai.png", NOVELAI_CHUNKS))
    assert got.tool == "NovelAI"
    assert got.settings == {
        "prompt": "1girl, lighthouse, dusk, best quality",
        "negative_prompt": "lowres, bad anatomy",
        "steps": 28,
        "guidance_scale": 5.0,
        "seed": 3816166865,
        "sampler": "dpmpp_2m_karras",
        "width": 832,
        "height": 1216,
        "strength": 0.62,
    }
    notes = " | ".join(got.notes)
    assert "noise 0.1" in notes and "sm: True" in notes and "cfg_rescale" not in notes  # defaults are quiet


def test_novelai_v4_txt2img_in_the_alpha_channel(tmp_path):
    """A NovelAI V4 image whose text chunks an editor dropped: the same chunks, as JSON, gzip'd into the alpha
    channel's low bits; its prompts are V4 captions, and a txt2img Comment's default strength is not read."""
    comment = {
        "v4_prompt": {"caption": {"base_caption": "a harbour", "char_captions": [{"char_caption": "a sailor"}]}},
        "v4_negative_prompt": {"caption": {"base_caption": "blurry", "char_captions": []}},
        "steps": 23,
        "scale": 6,
        "seed": 77,
        "sampler": "k_euler_ancestral",
        "noise_schedule": "native",
        "width": 640,
        "height": 512,
        "strength": 0.7,
        "noise": 0.0,
        "request_type": "PromptGenerateRequest",
    }
    hidden = json.dumps({"Software": "NovelAI", "Comment": json.dumps(comment), "Description": "a harbour"})
    path = tmp_path / "nai-v4.png"
    stealth_pixels(gzip.compress(hidden.encode()), "alpha", b"stealth_pngcomp", size=(96, 80)).save(path)
    got = read_image_settings(path)
    assert got.tool == "NovelAI" and got.found_in.startswith("the stealth PNG info (stealth_pngcomp")
    assert got.settings == {
        "prompt": "a harbour",
        "negative_prompt": "blurry",
        "steps": 23,
        "guidance_scale": 6.0,
        "seed": 77,
        "sampler": "k_euler_a",
        "width": 640,
        "height": 512,
    }
    assert any("1 NovelAI character prompts" in n for n in got.notes) and any("not an img2img" in n for n in got.notes)


def test_a_comment_chunk_of_another_program_is_not_taken_for_novelai(tmp_path):
    with pytest.raises(Exception, match="carries no generation settings"):
        read_image_settings(png_with_text(tmp_path / "gimp.png", {"Comment": "Created with GIMP"}))


# -- SwarmUI ------------------------------------------------------------------------------------------------

SWARMUI = {  # SwarmUI's "Image Metadata Format"; values may be numbers or their text
    "sui_image_params": {
        "prompt": "a lighthouse at dusk",
        "negativeprompt": "blurry",
        "model": "OfficialStableDiffusion/sd_xl_base_1.0",
        "seed": "9007199254740993",
        "steps": 20,
        "cfgscale": "7.0",
        "aspectratio": "Custom",
        "width": 1024,
        "height": 768,
        "sampler": "euler_ancestral",
        "scheduler": "normal",
        "initimagecreativity": 0.45,
        "loras": "detail-tweaker,film-grain",
        "loraweights": "0.5,0.3",
        "refinercontrolpercentage": 0.2,
        "swarm_version": "0.9.3.1",
    },
    "sui_extra_data": {"date": "2024-11-13", "generation_time": "6.11 (prep) and 4.84 (gen) seconds"},
}


@pytest.mark.parametrize("where", ["png", "jpeg"])
def test_swarmui(tmp_path, where):
    text = json.dumps(SWARMUI, indent=2)
    if where == "png":
        path = png_with_text(tmp_path / "swarm.png", {"parameters": text})
    else:  # SwarmUI's JPEGs: the same JSON in the EXIF UserComment
        path = jpeg_with_exif(
            tmp_path / "swarm.jpg", exif_block({USER_COMMENT: b"UNICODE\0" + text.encode("utf-16-be")})
        )
    got = read_image_settings(path)
    assert got.tool == "SwarmUI"
    assert got.settings == {
        "prompt": "a lighthouse at dusk",
        "negative_prompt": "blurry",
        "steps": 20,
        "guidance_scale": 7.0,
        "seed": 9007199254740993,  # 2⁵³ + 1: read from its digits, not through a float
        "width": 1024,
        "height": 768,
        "sampler": "k_euler_a",
        "model": "OfficialStableDiffusion/sd_xl_base_1.0",
        "strength": 0.45,
    }
    notes = " | ".join(got.notes)
    assert "detail-tweaker, film-grain" in notes and "refinercontrolpercentage: 0.2" in notes
    assert "swarm_version" not in notes


# -- sampler names ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tool", "name", "schedule", "ours"),
    [
        ("ComfyUI", "sample_dpmpp_2m", "karras", "dpmpp_2m_karras"),  # ComfyUI's 2023 names
        ("ComfyUI", "sample_euler_ancestral", "normal", "k_euler_a"),
        ("ComfyUI", "sample_lms", None, "k_lms"),
        ("Fooocus", "dpmpp_2m", "karras", "dpmpp_2m_karras"),
        ("Fooocus", "euler_ancestral", "normal", "k_euler_a"),
        ("SwarmUI", "heun", "normal", "k_heun"),
        ("NovelAI", "k_euler_ancestral", "native", "k_euler_a"),
        ("NovelAI", "k_euler", "native", "k_euler"),
        ("NovelAI", "k_dpmpp_2m", "karras", "dpmpp_2m_karras"),
        ("NovelAI", "ddim_v3", "native", "ddim"),
    ],
)
def test_fooocus_swarmui_novelai_and_old_comfyui_sampler_names(tool, name, schedule, ours):
    assert our_sampler(tool, name, schedule) == (ours, [])


def test_samplers_without_an_equivalent_are_said_by_tool():
    assert our_sampler("NovelAI", "k_dpmpp_2s_ancestral", "native")[1] == [
        "sampler 'k_dpmpp_2s_ancestral, schedule native' (NovelAI) has no equivalent here; the sampler is left as it was"
    ]
    ours, notes = our_sampler("NovelAI", "k_euler", "exponential")
    assert ours == "k_euler" and "NovelAI sampler 'k_euler, schedule exponential': k_euler has no" in notes[0]
