"""The parameter counts of the real models of families III, from their architectures built on the meta device.

No weights are downloaded or allocated: each component is made with its published configuration on PyTorch's meta
device (shapes only; tied weights, T5's shared embedding and Qwen3-4B's LM head, counted once) (the diffusers classes' defaults are the released models' for the Z-Image, Qwen-Image, Chroma
and FLUX.1 transformers and the Qwen-Image and FLUX.2 VAEs; the language models' configs are the released
Qwen3-4B's and Qwen2.5-VL-7B's; FLUX.2 Klein 4B's transformer has 5 double and 20 single blocks of 24 heads, read from
its published config). The docs' "Which models fit where" table for these families comes from this output:

    python benchmarks/family_sizes.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

QWEN3_4B = dict(
    hidden_size=2560,
    intermediate_size=9728,
    num_hidden_layers=36,
    num_attention_heads=32,
    num_key_value_heads=8,
    head_dim=128,
    vocab_size=151936,
    tie_word_embeddings=True,
)
QWEN25_VL_7B = dict(
    text_config=dict(
        hidden_size=3584,
        intermediate_size=18944,
        num_hidden_layers=28,
        num_attention_heads=28,
        num_key_value_heads=4,
        vocab_size=152064,
        rope_scaling={"mrope_section": [16, 24, 24], "rope_type": "default", "type": "default"},
    ),
    vision_config=dict(
        depth=32,
        hidden_size=1280,
        intermediate_size=3420,
        num_heads=16,
        out_hidden_size=3584,
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
        window_size=112,
        fullatt_block_indexes=[7, 15, 23, 31],
    ),
    vocab_size=152064,
    tie_word_embeddings=False,
)
T5_XXL = dict(d_model=4096, d_ff=10240, d_kv=64, num_heads=64, num_layers=24, vocab_size=32128,
              feed_forward_proj="gated-gelu")  # fmt: skip
CLIP_L = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, vocab_size=49408,
              max_position_embeddings=77)  # fmt: skip
FLUX_VAE = dict(latent_channels=16, block_out_channels=(128, 256, 512, 512), layers_per_block=2, use_quant_conv=False,
                use_post_quant_conv=False, down_block_types=("DownEncoderBlock2D",) * 4,
                up_block_types=("UpDecoderBlock2D",) * 4)  # fmt: skip
KLEIN_4B = dict(in_channels=128, num_layers=5, num_single_layers=20, attention_head_dim=128, num_attention_heads=24,
                joint_attention_dim=3 * 2560, guidance_embeds=False)  # fmt: skip


def _components() -> dict[str, dict[str, tuple[str, str, dict]]]:
    """model → component → (library, class, config)."""
    qwen_image = {
        "transformer": ("diffusers", "QwenImageTransformer2DModel", {}),
        "text_encoder": ("transformers", "Qwen2_5_VLForConditionalGeneration", QWEN25_VL_7B),
        "vae": ("diffusers", "AutoencoderKLQwenImage", {}),
    }
    flux_vae = ("diffusers", "AutoencoderKL", FLUX_VAE)
    return {
        "Z-Image-Turbo": {
            "transformer": ("diffusers", "ZImageTransformer2DModel", {}),
            "text_encoder": ("transformers", "Qwen3Model", QWEN3_4B),
            "vae": flux_vae,
        },
        "Qwen-Image": qwen_image,
        "Qwen-Image-Edit": qwen_image,
        "Chroma1-HD": {
            "transformer": ("diffusers", "ChromaTransformer2DModel", {}),
            "text_encoder": ("transformers", "T5EncoderModel", T5_XXL),
            "vae": flux_vae,
        },
        "FLUX.1 Kontext [dev]": {
            "transformer": ("diffusers", "FluxTransformer2DModel", {"guidance_embeds": True}),
            "text_encoder": ("transformers", "CLIPTextModel", CLIP_L),
            "text_encoder_2": ("transformers", "T5EncoderModel", T5_XXL),
            "vae": flux_vae,
        },
        "FLUX.2 [klein] 4B": {
            "transformer": ("diffusers", "Flux2Transformer2DModel", KLEIN_4B),
            "text_encoder": ("transformers", "Qwen3ForCausalLM", QWEN3_4B),
            "vae": ("diffusers", "AutoencoderKLFlux2", {}),
        },
    }


def count(library: str, name: str, config: dict) -> int:
    """Parameters of one component, built on the meta device (no memory taken)."""
    import diffusers
    import torch
    import transformers

    with torch.device("meta"):
        if library == "diffusers":
            model = getattr(diffusers, name)(**config)
        else:
            config_class = getattr(transformers, name).config_class
            model = getattr(transformers, name)(config_class(**config))
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())  # tied weights once


def main() -> None:
    print("| model | component | class | parameters |")
    print("|---|---|---|---:|")
    for model, parts in _components().items():
        total = 0
        for part, (library, name, config) in parts.items():
            n = count(library, name, config)
            total += n
            print(f"| {model} | {part} | {name} | {n / 1e9:.2f} B |")
        print(f"| {model} | **total** | | **{total / 1e9:.2f} B** ({total * 2 / 1e9:.1f} GB in 16-bit) |")


if __name__ == "__main__":
    main()
