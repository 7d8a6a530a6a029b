"""Step pictures are turned into PIL images by diffusers' own ``pt_to_pil``: the ``full`` decoder's last frame is the
pipeline's output pixel for pixel in every dtype, as the pipeline rounds it (``VaeImageProcessor.postprocess``)."""

import numpy as np
import pytest
import torch

from sd_img2img.engine import Engine, GenerationRequest


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_pictures_are_rounded_as_the_pipeline_rounds_them(dtype):
    from diffusers.image_processor import VaeImageProcessor

    from sd_img2img.engine.previews import PreviewDecoder

    class Decoded:  # a VAE whose decode hands back a fixed picture, in the model's dtype
        config = type("Config", (), {"scaling_factor": 1.0, "force_upcast": False})()

        def __init__(self, image):
            self.image, self.dtype = image, image.dtype

        def decode(self, latents, return_dict=False):
            return (self.image,)

    image = (torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 0.8).to(dtype)
    got = PreviewDecoder("full", vae=Decoded(image)).decode(torch.zeros(1, 4, 8, 8))
    expected = VaeImageProcessor().postprocess(image, output_type="pil")[0]
    assert np.array_equal(np.asarray(got), np.asarray(expected))


def test_the_last_full_frame_is_the_output_in_bfloat16(tiny_checkpoint, fireplace):
    engine = Engine(str(tiny_checkpoint), device="cpu", dtype="bfloat16", safety_checker=False)
    result = engine.generate(
        GenerationRequest(
            prompt="fire", init_image=fireplace, strength=0.7, steps=4, seed=5, preview="full", width=64, height=64
        )
    )
    assert result.dtype == "bfloat16"
    assert np.array_equal(np.asarray(result.frames[-1].image("latents")), np.asarray(result.output))
