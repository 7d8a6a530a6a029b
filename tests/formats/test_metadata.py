"""PNG metadata: written with the settings, read back, and enough to reproduce the run."""

import numpy as np
import pytest
from PIL import Image

from sd_img2img.engine import GenerationRequest
from sd_img2img.errors import UserInputError
from sd_img2img.formats.metadata import read_settings, request_kwargs, save_png


def test_round_trip_reproduces_the_run(engine, tiny_checkpoint, fireplace, tmp_path):
    first = engine.generate(
        GenerationRequest(
            prompt="fire",
            negative_prompt="smoke",
            init_image=fireplace,
            strength=0.65,
            steps=9,
            seed=77,
            sampler="k_euler",
            width=128,
            height=96,
            resize_mode="crop",
        )
    )
    path = save_png(first.output, tmp_path / "out.png", first.settings())
    settings = read_settings(path)
    assert settings["steps_taken"] == first.steps_taken == 5
    assert settings["seed"] == 77 and settings["sampler"] == "k_euler" and settings["strength"] == 0.65
    again = engine.generate(GenerationRequest(init_image=fireplace, **request_kwargs(settings)))
    assert np.array_equal(np.asarray(again.output), np.asarray(first.output))
    text = Image.open(path).text["parameters"]
    assert "Steps: 9" in text and "Denoising strength: 0.65" in text and "Steps taken: 5" in text
    assert "Sampler: Euler," in text and f"Model: {tiny_checkpoint.name}," in text  # AUTOMATIC1111's names
    assert text.splitlines()[1] == "Negative prompt: smoke"


def test_unicode_prompt_survives(tmp_path):
    settings = {"prompt": "feu 🔥 نار\u200f", "seed": 1}
    save_png(Image.new("RGB", (8, 8)), tmp_path / "u.png", settings)
    assert read_settings(tmp_path / "u.png")["prompt"] == settings["prompt"]


def test_foreign_pngs_and_non_images(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "plain.png")
    with pytest.raises(UserInputError, match="carries no sd-img2img settings"):
        read_settings(tmp_path / "plain.png")
    (tmp_path / "x.png").write_text("hello")
    with pytest.raises(UserInputError, match="is not an image"):
        read_settings(tmp_path / "x.png")
