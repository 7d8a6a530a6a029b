"""The real SD1.5, SD-Turbo and SDXL architectures with random weights, for the benchmarks.

Speed and memory do not depend on the weights' values, so random weights of the real shapes measure them
honestly. The shapes are data (``sd_img2img.testing.tiny.Architecture``) built by the product's own builders,
which make the tiny checkpoints of the tests and the offline demo the same way:

- ``sd15``: stable-diffusion-v1-5 (UNet 860M, VAE 84M, CLIP ViT-L/14 text encoder 123M, and the safety checker's
  CLIP ViT-L/14 vision tower).
- ``sd-turbo``: stabilityai/sd-turbo (SD2.1 shapes: UNet 866M, OpenCLIP ViT-H text encoder with 23 layers, 340M;
  no safety checker).
- ``sdxl``: stabilityai/stable-diffusion-xl-base-1.0 (UNet 2.57B, CLIP ViT-L + OpenCLIP bigG text encoders, a
  ``force_upcast`` VAE).

``architecture(name)``, ``build_checkpoint`` and ``build_taesd`` also take the tiny names (``tiny``,
``tiny-sdxl`` …: the benchmarks' short modes). Build one (bfloat16 halves ``sdxl``'s 14 GB):

    python benchmarks/architectures.py DIR --arch sd15 [--taesd DIR2] [--dtype bfloat16]
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sd_img2img.testing import tiny  # noqa: E402

SD15_UNET = dict(
    sample_size=64,
    in_channels=4,
    out_channels=4,
    block_out_channels=(320, 640, 1280, 1280),
    layers_per_block=2,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=768,
    attention_head_dim=8,
    norm_num_groups=32,
)
SD15_VAE = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=4,
    block_out_channels=(128, 256, 512, 512),
    layers_per_block=2,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    norm_num_groups=32,
    sample_size=512,
    scaling_factor=0.18215,
)
SD15_TEXT = dict(  # CLIP ViT-L/14's text tower
    hidden_size=768,
    intermediate_size=3072,
    num_hidden_layers=12,
    num_attention_heads=12,
    max_position_embeddings=77,
    projection_dim=768,
    hidden_act="quick_gelu",
)
SD15_VISION = dict(  # CLIP ViT-L/14's vision tower (the safety checker)
    hidden_size=1024,
    intermediate_size=4096,
    num_hidden_layers=24,
    num_attention_heads=16,
    image_size=224,
    patch_size=14,
    projection_dim=768,
    hidden_act="quick_gelu",
)
SD_TURBO_UNET = dict(
    sample_size=64,
    in_channels=4,
    out_channels=4,
    block_out_channels=(320, 640, 1280, 1280),
    layers_per_block=2,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=1024,
    attention_head_dim=(5, 10, 20, 20),
    use_linear_projection=True,
    norm_num_groups=32,
)
SD_TURBO_TEXT = dict(  # OpenCLIP ViT-H, its last layer dropped as SD2.x does
    hidden_size=1024,
    intermediate_size=4096,
    num_hidden_layers=23,
    num_attention_heads=16,
    max_position_embeddings=77,
    projection_dim=512,
    hidden_act="gelu",
)
SDXL_UNET = dict(
    sample_size=128,
    in_channels=4,
    out_channels=4,
    block_out_channels=(320, 640, 1280),
    layers_per_block=2,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    transformer_layers_per_block=(1, 2, 10),
    attention_head_dim=(5, 10, 20),
    norm_num_groups=32,
    use_linear_projection=True,
    addition_embed_type="text_time",
    addition_time_embed_dim=256,
    cross_attention_dim=2048,  # 768 + 1280: the two text encoders' hidden states side by side
    projection_class_embeddings_input_dim=2816,  # 6 time ids × 256 + bigG's 1280 pooled
)
SDXL_TEXT = SD15_TEXT  # CLIP ViT-L/14, as SD1.5's
SDXL_TEXT_2 = dict(  # OpenCLIP bigG
    hidden_size=1280,
    intermediate_size=5120,
    num_hidden_layers=32,
    num_attention_heads=20,
    max_position_embeddings=77,
    projection_dim=1280,
    hidden_act="gelu",
)
TAESD = dict(channels=(64, 64, 64, 64), blocks=(1, 3, 3, 3))  # madebyollin/taesd's

# each laid out as its tiny namesake (pipeline, scheduler, tokenizers), with the real shapes
_REAL = dict(vocab_size=49408, taesd=TAESD, create_in_dtype=True)
SD15 = dataclasses.replace(
    tiny.ARCHITECTURES["tiny"], name="sd15", unet=SD15_UNET, vae=SD15_VAE, text=SD15_TEXT, vision=SD15_VISION, **_REAL
)
SD_TURBO = dataclasses.replace(
    tiny.ARCHITECTURES["tiny-turbo"], name="sd-turbo", unet=SD_TURBO_UNET, vae=SD15_VAE, text=SD_TURBO_TEXT, **_REAL
)
SDXL = dataclasses.replace(
    tiny.ARCHITECTURES["tiny-sdxl"],
    name="sdxl",
    unet=SDXL_UNET,
    vae=dict(SD15_VAE, scaling_factor=0.13025, force_upcast=True, sample_size=1024),
    text=SDXL_TEXT,
    text_2=SDXL_TEXT_2,
    **_REAL,
)
ARCHITECTURES: dict[str, tiny.Architecture] = {arch.name: arch for arch in (SD15, SD_TURBO, SDXL)}
NAMES = (*ARCHITECTURES, *tiny.ARCHITECTURES)  # the real ones and the tiny ones (the benchmarks' short modes)


def architecture(name: str) -> tiny.Architecture:
    """The architecture called ``name``: a real one here (``sd15``, ``sd-turbo``, ``sdxl``) or a tiny one."""
    if name in ARCHITECTURES:
        return ARCHITECTURES[name]
    if name in tiny.ARCHITECTURES:
        return tiny.ARCHITECTURES[name]
    raise ValueError(f"arch must be one of {NAMES}, got {name!r}")


def build_checkpoint(path: str | Path, arch: str, **kwargs) -> Path:
    """``sd_img2img.testing.tiny.build_checkpoint`` of ``architecture(arch)`` (same keywords: ``dtype``, ``seed``,
    ``safety_checker``)."""
    return tiny.build_checkpoint(path, architecture(arch), **kwargs)


def build_taesd(path: str | Path, arch: str, **kwargs) -> Path:
    """``sd_img2img.testing.tiny.build_taesd`` of ``architecture(arch)``'s TAESD shape (the real ones: taesd's)."""
    return tiny.build_taesd(path, architecture(arch), **kwargs)


def main(argv: list[str] | None = None) -> None:
    tiny.main(argv, {name: architecture(name) for name in NAMES})


if __name__ == "__main__":
    main()
