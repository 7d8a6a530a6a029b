"""Random-weight Stable Diffusion checkpoints in the real diffusers layout.

No weights can be downloaded where this project is tested, so tests, benchmarks and the offline demo
build checkpoints here and load them through the same ``from_pretrained`` code a user's checkpoint goes
through. The folder looks like the ``stable-diffusion-v1-5/stable-diffusion-v1-5`` repository:
``model_index.json`` naming ``StableDiffusionPipeline``, ``unet/``, ``vae/``, ``text_encoder/``,
``tokenizer/``, ``scheduler/``, ``safety_checker/`` and ``feature_extractor/``, weights as safetensors.

Three sizes:

- ``tiny``: a few hundred thousand parameters, for tests (a 384×384 image runs 10 steps in well under a second);
  the VAE keeps SD's four blocks and 8× downscale so latents have the real shape.
- ``sd15``: the real SD1.5 architecture (UNet 860M, VAE 84M, CLIP ViT-L/14 text encoder 123M, and the
  safety checker's CLIP ViT-L/14 vision tower); speed and memory do not depend on weight values, so this
  measures them honestly.
- ``sd-turbo``: the real SD-Turbo (SD2.1) architecture: UNet ~865M (linear projections, head dims 5/10/20/20,
  cross-attention 1024), the OpenCLIP ViT-H text encoder (1024 wide, 23 layers), SD's VAE, an Euler scheduler
  with ``trailing`` timesteps, and no safety checker, as ``stabilityai/sd-turbo`` ships it.

Run ``python -m sd_img2img.random_checkpoint DIR [--arch tiny|sd15|sd-turbo]`` to build one.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

ARCHITECTURES = ("tiny", "sd15", "sd-turbo")

# SD1.5's own scheduler config (scheduler/scheduler_config.json of the real repository).
SD15_SCHEDULER = dict(
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    clip_sample=False,
    num_train_timesteps=1000,
    set_alpha_to_one=False,
    skip_prk_steps=True,
    steps_offset=1,
    trained_betas=None,
)


def _bytes_to_unicode() -> dict[int, str]:
    """CLIP's byte → printable unicode table (the alphabet of its byte-level BPE)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


# A few merges so common prompt words are single tokens, as they are in CLIP's real vocabulary.
_WORDS = ("fire", "fireplace", "a", "the", "of", "and", "photo", "painting", "landscape", "mountain", "lake",
          "house", "cozy", "room", "sky", "tree", "trees", "sunset", "river", "city", "night", "cat", "dog")


def _write_tokenizer(path: Path) -> None:
    """Write a small CLIP byte-level BPE tokenizer (vocab.json, merges.txt) with CLIP's special tokens."""
    chars = list(_bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for c in chars:
        vocab[c] = len(vocab)
    for c in chars:
        vocab[c + "</w>"] = len(vocab)
    merges: list[str] = []
    for word in _WORDS:
        # left-to-right merges building the word, the last one carrying the end-of-word marker
        current = word[0]
        for i, ch in enumerate(word[1:], start=1):
            right = ch + ("</w>" if i == len(word) - 1 else "")
            merge = f"{current} {right}"
            current = current + right
            if merge not in merges:
                merges.append(merge)
            vocab.setdefault(current, len(vocab))
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (path / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")


# stabilityai/sd-turbo's scheduler/scheduler_config.json (the class is EulerDiscreteScheduler).
SD_TURBO_SCHEDULER = dict(
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    clip_sample=False,
    interpolation_type="linear",
    num_train_timesteps=1000,
    prediction_type="epsilon",
    set_alpha_to_one=False,
    skip_prk_steps=True,
    steps_offset=1,
    timestep_spacing="trailing",
    trained_betas=None,
    use_karras_sigmas=False,
)


def _sd_turbo_configs() -> dict:
    """SD-Turbo (SD2.1 architecture at 512×512): the shapes of ``stabilityai/sd-turbo``'s configs."""
    sd15 = _configs("sd15")
    unet = dict(sd15["unet"], cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20), use_linear_projection=True)
    return dict(
        unet=unet,
        vae=sd15["vae"],
        text=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=23, num_attention_heads=16,
                  max_position_embeddings=77, projection_dim=1024, hidden_act="gelu"),
        scheduler=("EulerDiscreteScheduler", SD_TURBO_SCHEDULER),
        safety_checker=False,  # sd-turbo ships none
    )


def _configs(arch: str) -> dict:
    if arch == "sd-turbo":
        return _sd_turbo_configs()
    if arch == "tiny":
        return dict(
            unet=dict(
                sample_size=32,
                in_channels=4,
                out_channels=4,
                block_out_channels=(16, 32),
                layers_per_block=1,
                # attention only at the lower resolution keeps a 384×384 step to a few milliseconds
                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                cross_attention_dim=32,
                attention_head_dim=4,
                norm_num_groups=8,
            ),
            vae=dict(
                in_channels=3,
                out_channels=3,
                latent_channels=4,
                block_out_channels=(8, 8, 16, 16),
                layers_per_block=1,
                down_block_types=("DownEncoderBlock2D",) * 4,
                up_block_types=("UpDecoderBlock2D",) * 4,
                norm_num_groups=4,
                sample_size=256,
                scaling_factor=0.18215,
            ),
            text=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      max_position_embeddings=77, projection_dim=32, hidden_act="quick_gelu"),
            vision=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                        image_size=32, patch_size=8, projection_dim=32, hidden_act="quick_gelu"),
            projection_dim=32,
            image_size=32,
        )
    if arch == "sd15":
        return dict(
            unet=dict(
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
            ),
            vae=dict(
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
            ),
            text=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                      max_position_embeddings=77, projection_dim=768, hidden_act="quick_gelu"),
            vision=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                        image_size=224, patch_size=14, projection_dim=768, hidden_act="quick_gelu"),
            projection_dim=768,
            image_size=224,
        )
    raise ValueError(f"arch must be one of {ARCHITECTURES}, got {arch!r}")


def build_checkpoint(
    path: str | Path,
    arch: str = "tiny",
    *,
    safety_checker: bool = True,
    flag_everything: bool = False,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Build a random-weight SD1.x checkpoint in diffusers layout at ``path`` and return the path.

    Args:
        path: folder to write (created; an existing checkpoint there is overwritten).
        arch: ``"tiny"`` (tests), ``"sd15"`` or ``"sd-turbo"`` (the real architectures, for speed and memory).
        safety_checker: include ``safety_checker/`` and ``feature_extractor/`` as the real repository does
            (never for ``sd-turbo``, which has none).
        flag_everything: make the safety checker flag every image (to test how flagged images are reported).
        seed: seed of the random weights.
        dtype: dtype the weights are saved in.
    """
    import diffusers
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    cfg = _configs(arch)
    safety_checker = safety_checker and cfg.get("safety_checker", True)
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)

    tok_dir = path / "tokenizer"
    _write_tokenizer(tok_dir)
    tokenizer = CLIPTokenizer(vocab=str(tok_dir / "vocab.json"), merges=str(tok_dir / "merges.txt"),
                              model_max_length=77)
    vocab_size = len(tokenizer) if arch == "tiny" else 49408
    text_config = CLIPTextConfig(vocab_size=vocab_size, bos_token_id=len(tokenizer) - 2,
                                 eos_token_id=len(tokenizer) - 1, pad_token_id=len(tokenizer) - 1, **cfg["text"])
    text_encoder = CLIPTextModel(text_config)
    unet = UNet2DConditionModel(**cfg["unet"])
    vae = AutoencoderKL(**cfg["vae"])
    scheduler_cls, scheduler_config = cfg.get("scheduler", ("PNDMScheduler", SD15_SCHEDULER))
    scheduler = (PNDMScheduler if scheduler_cls == "PNDMScheduler" else getattr(diffusers, scheduler_cls)).from_config(
        scheduler_config)

    checker = extractor = None
    if safety_checker:
        clip_config = CLIPConfig(text_config=cfg["text"], vision_config=cfg["vision"], projection_dim=cfg["projection_dim"])
        checker = StableDiffusionSafetyChecker(clip_config)
        if flag_everything:
            with torch.no_grad():
                checker.concept_embeds_weights.fill_(-2.0)  # cosine similarity is always above -2
        size = cfg["image_size"]
        extractor = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})

    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=checker, feature_extractor=extractor, requires_safety_checker=safety_checker,
    )
    pipe.to(dtype=dtype)
    pipe.save_pretrained(path, safe_serialization=True)
    # Name the classes as the real SD1.5 repository's model_index.json does.
    index_path = path / "model_index.json"
    index = json.loads(index_path.read_text())
    index.pop("image_encoder", None)
    if safety_checker:
        index["feature_extractor"] = ["transformers", "CLIPImageProcessor"]
    index_path.write_text(json.dumps(index, indent=2) + "\n")
    return path


def build_taesd(path: str | Path, arch: str = "tiny", seed: int = 0) -> Path:
    """Build a random-weight TAESD (diffusers ``AutoencoderTiny``) folder.

    ``arch="tiny"``: 8 channels a block, for tests; any other arch: the real ``madebyollin/taesd`` shape
    (64 channels, 1/3/3/3 blocks, ~1.2M parameters in each half), for speed.
    """
    from diffusers import AutoencoderTiny

    torch.manual_seed(seed)
    channels = (8, 8, 8, 8) if arch == "tiny" else (64, 64, 64, 64)
    blocks = (1, 1, 1, 1) if arch == "tiny" else (1, 3, 3, 3)
    model = AutoencoderTiny(encoder_block_out_channels=channels, decoder_block_out_channels=channels,
                            num_encoder_blocks=blocks, num_decoder_blocks=blocks, latent_channels=4)
    model.save_pretrained(path, safe_serialization=True)
    return Path(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", help="folder to write")
    parser.add_argument("--arch", choices=ARCHITECTURES, default="tiny")
    parser.add_argument("--no-safety-checker", action="store_true", help="leave out safety_checker/")
    parser.add_argument("--taesd", metavar="DIR", help="also build a random TAESD decoder in DIR")
    args = parser.parse_args(argv)
    build_checkpoint(args.path, args.arch, safety_checker=not args.no_safety_checker)
    if args.taesd:
        build_taesd(args.taesd, args.arch)
    print(args.path)


if __name__ == "__main__":
    main()
