"""Random-weight Stable Diffusion checkpoints in the real diffusers layout.

No weights can be downloaded where this project is tested, so tests, benchmarks and the offline demo
build checkpoints here and load them through the same ``from_pretrained`` code a user's checkpoint goes
through. The folder looks like the ``stable-diffusion-v1-5/stable-diffusion-v1-5`` repository:
``model_index.json`` naming ``StableDiffusionPipeline``, ``unet/``, ``vae/``, ``text_encoder/``,
``tokenizer/``, ``scheduler/``, ``safety_checker/`` and ``feature_extractor/``, weights as safetensors.

Architectures (``ARCHITECTURES``), each laid out as its family's hub repository:

- ``tiny``: a few hundred thousand parameters, for tests (a 384×384 image runs 10 steps in well under a second);
  the VAE keeps SD's four blocks and 8× downscale so latents have the real shape.
- ``sd15``: the real SD1.5 architecture (UNet 860M, VAE 84M, CLIP ViT-L/14 text encoder 123M, and the
  safety checker's CLIP ViT-L/14 vision tower); speed and memory do not depend on weight values, so this
  measures them honestly.
- ``tiny-turbo`` / ``sd-turbo``: like stabilityai/sd-turbo (SD2.1 shapes: UNet 865M, OpenCLIP ViT-H text
  encoder with 23 layers; EulerDiscreteScheduler with ``timestep_spacing="trailing"``, no safety checker).
- ``tiny-sdxl`` / ``sdxl``: like stabilityai/stable-diffusion-xl-base-1.0 (``StableDiffusionXLPipeline``, CLIP
  ViT-L + OpenCLIP bigG text encoders, EulerDiscreteScheduler, a ``force_upcast`` VAE, no safety checker).
- ``tiny-sdxl-turbo``: SDXL with sdxl-turbo's trailing EulerAncestralDiscreteScheduler.
- ``tiny-sdxl-refiner``: like the SDXL refiner (``StableDiffusionXLImg2ImgPipeline``, only ``text_encoder_2``,
  ``requires_aesthetics_score``).
- ``tiny-lcm``: like SimianLuo/LCM_Dreamshaper_v7 (``LatentConsistencyModelPipeline``, LCMScheduler, a UNet
  with ``time_cond_proj_dim``).
- ``tiny-sd3``: like stabilityai/stable-diffusion-3.5 (``StableDiffusion3Pipeline``: an MMDiT ``transformer/``,
  a 16-channel VAE, two CLIP text encoders with projection and a T5 encoder, FlowMatchEulerDiscreteScheduler).
- ``tiny-flux`` / ``tiny-flux-schnell``: like black-forest-labs/FLUX.1-dev / -schnell (``FluxPipeline``: the
  FLUX transformer with / without the guidance embedding, CLIP + T5, dynamic shifting for dev).
  Their T5 tokenizers are made here from a handful of words (a unigram ``tokenizer.json``; nothing downloaded).

Run ``python -m sd_img2img.random_checkpoint DIR [--arch NAME]`` to build one;
``python -m sd_img2img.random_checkpoint OUT.safetensors --single-file-from DIR`` writes a diffusers SD 1.x or SDXL
folder as one original-layout single file (``original_layout.write_single_file``). ``build_lora`` writes random LoRAs for
a tiny checkpoint in diffusers/peft or kohya format. ``random_model(name)`` builds
(once, into a cache folder) the tiny checkpoint behind the offline demo's ``random``, ``random-sdxl``,
``random-turbo``, ``random-lcm`` … names.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path

import torch

ARCHITECTURES = (
    "tiny",
    "sd15",
    "tiny-turbo",
    "sd-turbo",
    "tiny-sdxl",
    "sdxl",
    "tiny-sdxl-turbo",
    "tiny-sdxl-refiner",
    "tiny-lcm",
    "tiny-sd3",
    "tiny-flux",
    "tiny-flux-schnell",
)
# the offline demo's model names → the tiny architecture behind each
RANDOM_MODELS = {
    "random": "tiny",
    "random-sdxl": "tiny-sdxl",
    "random-turbo": "tiny-turbo",
    "random-sdxl-turbo": "tiny-sdxl-turbo",
    "random-sdxl-refiner": "tiny-sdxl-refiner",
    "random-lcm": "tiny-lcm",
    "random-sd3": "tiny-sd3",
    "random-flux": "tiny-flux",
    "random-flux-schnell": "tiny-flux-schnell",
}
# each architecture's family (families.FAMILIES), known before it is built
ARCH_FAMILIES = {
    "tiny": "sd",
    "sd15": "sd",
    "tiny-turbo": "sd-turbo",
    "sd-turbo": "sd-turbo",
    "tiny-sdxl": "sdxl",
    "sdxl": "sdxl",
    "tiny-sdxl-turbo": "sdxl-turbo",
    "tiny-sdxl-refiner": "sdxl-refiner",
    "tiny-lcm": "lcm",
    "tiny-sd3": "sd3",
    "tiny-flux": "flux",
    "tiny-flux-schnell": "flux-schnell",
}

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
_WORDS = (
    "fire",
    "fireplace",
    "a",
    "the",
    "of",
    "and",
    "photo",
    "painting",
    "landscape",
    "mountain",
    "lake",
    "house",
    "cozy",
    "room",
    "sky",
    "tree",
    "trees",
    "sunset",
    "river",
    "city",
    "night",
    "cat",
    "dog",
)


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


def _configs(arch: str) -> dict:
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
            text=dict(
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=4,
                max_position_embeddings=77,
                projection_dim=32,
                hidden_act="quick_gelu",
            ),
            vision=dict(
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=4,
                image_size=32,
                patch_size=8,
                projection_dim=32,
                hidden_act="quick_gelu",
            ),
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
                down_block_types=(
                    "CrossAttnDownBlock2D",
                    "CrossAttnDownBlock2D",
                    "CrossAttnDownBlock2D",
                    "DownBlock2D",
                ),
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
            text=dict(
                hidden_size=768,
                intermediate_size=3072,
                num_hidden_layers=12,
                num_attention_heads=12,
                max_position_embeddings=77,
                projection_dim=768,
                hidden_act="quick_gelu",
            ),
            vision=dict(
                hidden_size=1024,
                intermediate_size=4096,
                num_hidden_layers=24,
                num_attention_heads=16,
                image_size=224,
                patch_size=14,
                projection_dim=768,
                hidden_act="quick_gelu",
            ),
            projection_dim=768,
            image_size=224,
        )
    raise ValueError(f"arch must be one of {ARCHITECTURES}, got {arch!r}")


# Scheduler configs of the real repositories (scheduler/scheduler_config.json)
EULER_SCHEDULER = dict(
    SD15_SCHEDULER,
    interpolation_type="linear",
    prediction_type="epsilon",
    sample_max_value=1.0,
    timestep_spacing="leading",
    use_karras_sigmas=False,
)
LCM_SCHEDULER = dict(
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    clip_sample=False,
    clip_sample_range=1.0,
    dynamic_thresholding_ratio=0.995,
    num_train_timesteps=1000,
    original_inference_steps=50,
    prediction_type="epsilon",
    rescale_betas_zero_snr=False,
    sample_max_value=1.0,
    set_alpha_to_one=True,
    steps_offset=1,
    thresholding=False,
    timestep_scaling=10.0,
    timestep_spacing="leading",
    trained_betas=None,
)

_TINY_SDXL_UNET = dict(
    sample_size=32,
    in_channels=4,
    out_channels=4,
    block_out_channels=(16, 32),
    layers_per_block=1,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    attention_head_dim=4,
    norm_num_groups=8,
    use_linear_projection=True,
    addition_embed_type="text_time",
    addition_time_embed_dim=8,
)
_SDXL_UNET = dict(
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
    cross_attention_dim=2048,
    projection_class_embeddings_input_dim=2816,
)
_SDXL_TEXT = dict(
    hidden_size=768,
    intermediate_size=3072,
    num_hidden_layers=12,
    num_attention_heads=12,
    max_position_embeddings=77,
    projection_dim=768,
    hidden_act="quick_gelu",
)
_SDXL_TEXT_2 = dict(
    hidden_size=1280,
    intermediate_size=5120,
    num_hidden_layers=32,
    num_attention_heads=20,
    max_position_embeddings=77,
    projection_dim=1280,
    hidden_act="gelu",
)
_TINY_TEXT = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    max_position_embeddings=77,
    projection_dim=32,
    hidden_act="quick_gelu",
)
_SD_TURBO_UNET = dict(
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
_SD_TURBO_TEXT = dict(
    hidden_size=1024,
    intermediate_size=4096,
    num_hidden_layers=23,
    num_attention_heads=16,
    max_position_embeddings=77,
    projection_dim=512,
    hidden_act="gelu",
)


def _clip_tokenizer(path: Path, pad_token: str | None = None):
    from transformers import CLIPTokenizer

    _write_tokenizer(path)
    extra = {"pad_token": pad_token} if pad_token else {}
    return CLIPTokenizer(vocab=str(path / "vocab.json"), merges=str(path / "merges.txt"), model_max_length=77, **extra)


def _clip_text(tokenizer, cfg: dict, real: bool, projection: bool = False):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    n = len(tokenizer)
    text_config = CLIPTextConfig(
        vocab_size=49408 if real else n,
        bos_token_id=n - 2,
        eos_token_id=n - 1,
        pad_token_id=tokenizer.pad_token_id,
        **cfg,
    )
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(text_config)


def _save(pipe, path: Path, dtype: torch.dtype, drop: tuple[str, ...] = ("image_encoder",), **index_changes) -> Path:
    """Save ``pipe`` as safetensors and make ``model_index.json`` read as the real repository's does."""
    pipe.to(dtype=dtype)
    pipe.save_pretrained(path, safe_serialization=True)
    index_path = path / "model_index.json"
    index = json.loads(index_path.read_text())
    for key in drop:
        index.pop(key, None)
    index.update(index_changes)
    index_path.write_text(json.dumps(index, indent=2) + "\n")
    return path


@contextlib.contextmanager
def _created_in(dtype: torch.dtype):
    """Create parameters directly in ``dtype``: building ``sdxl`` in float16 then peaks at 7 GB, not 14."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def _sd_vae(arch_cfg: dict, **changes):
    from diffusers import AutoencoderKL

    return AutoencoderKL(**{**arch_cfg, **changes})


def build_sdxl(
    path: str | Path,
    arch: str = "tiny-sdxl",
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    text_2: dict | None = None,
) -> Path:
    """A random-weight SDXL base, SDXL-Turbo or refiner checkpoint laid out as stabilityai's repositories
    (the real ``sdxl`` architecture's weights are created in ``dtype`` directly).

    ``text_2`` overrides the tiny ``text_encoder_2`` config (e.g. a width other than ``text_encoder``'s, which
    diffusers' single-file loader needs to tell the two apart, as it can for the real 768 and 1280)."""
    with _created_in(dtype if arch == "sdxl" else torch.float32):
        return _build_sdxl(path, arch, seed, dtype, text_2)


def _build_sdxl(path: str | Path, arch: str, seed: int, dtype: torch.dtype, text_2: dict | None = None) -> Path:
    from diffusers import (
        EulerAncestralDiscreteScheduler,
        EulerDiscreteScheduler,
        StableDiffusionXLImg2ImgPipeline,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )

    real = arch == "sdxl"
    refiner = arch == "tiny-sdxl-refiner"
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    text_cfg, text_2_cfg = (_SDXL_TEXT, _SDXL_TEXT_2) if real else (_TINY_TEXT, dict(_TINY_TEXT, **(text_2 or {})))
    tokenizer = None if refiner else _clip_tokenizer(path / "tokenizer")
    tokenizer_2 = _clip_tokenizer(path / "tokenizer_2", pad_token="!")
    text_encoder = None if refiner else _clip_text(tokenizer, text_cfg, real)
    text_encoder_2 = _clip_text(tokenizer_2, text_2_cfg, real, projection=True)
    if real:
        unet_cfg = _SDXL_UNET
    else:
        time_ids = 5 if refiner else 6  # the refiner's time ids carry the aesthetic score instead of the target size
        context = text_2_cfg["hidden_size"] + (0 if refiner else text_cfg["hidden_size"])
        unet_cfg = dict(
            _TINY_SDXL_UNET,
            cross_attention_dim=context,
            projection_class_embeddings_input_dim=(
                time_ids * _TINY_SDXL_UNET["addition_time_embed_dim"] + text_2_cfg["projection_dim"]
            ),
        )
    unet = UNet2DConditionModel(**unet_cfg)
    vae = _sd_vae(
        _configs("sd15" if real else "tiny")["vae"],
        scaling_factor=0.13025,
        force_upcast=True,
        sample_size=1024 if real else 256,
    )
    if arch == "tiny-sdxl-turbo":
        scheduler = EulerAncestralDiscreteScheduler.from_config(dict(EULER_SCHEDULER, timestep_spacing="trailing"))
    else:
        scheduler = EulerDiscreteScheduler.from_config(EULER_SCHEDULER)
    if refiner:
        pipe = StableDiffusionXLImg2ImgPipeline(
            vae=vae,
            text_encoder=None,
            text_encoder_2=text_encoder_2,
            tokenizer=None,
            tokenizer_2=tokenizer_2,
            unet=unet,
            scheduler=scheduler,
            requires_aesthetics_score=True,
            force_zeros_for_empty_prompt=False,
        )
        return _save(pipe, path, dtype, drop=("image_encoder", "feature_extractor"))
    pipe = StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=unet,
        scheduler=scheduler,
    )
    return _save(pipe, path, dtype, drop=("image_encoder", "feature_extractor"))


def build_sd_turbo(
    path: str | Path, arch: str = "tiny-turbo", *, seed: int = 0, dtype: torch.dtype = torch.float32
) -> Path:
    """A random-weight SD-Turbo checkpoint laid out as stabilityai/sd-turbo (SD2.1 shapes for ``sd-turbo``,
    whose weights are created in ``dtype`` directly)."""
    with _created_in(dtype if arch == "sd-turbo" else torch.float32):
        return _build_sd_turbo(path, arch, seed, dtype)


def _build_sd_turbo(path: str | Path, arch: str, seed: int, dtype: torch.dtype) -> Path:
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel

    real = arch == "sd-turbo"
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    cfg = _configs("sd15" if real else "tiny")
    tokenizer = _clip_tokenizer(path / "tokenizer", pad_token="!")
    text_encoder = _clip_text(tokenizer, _SD_TURBO_TEXT if real else cfg["text"], real)
    unet = UNet2DConditionModel(**(_SD_TURBO_UNET if real else cfg["unet"]))
    vae = _sd_vae(cfg["vae"])
    scheduler = EulerDiscreteScheduler.from_config(dict(EULER_SCHEDULER, timestep_spacing="trailing"))
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    return _save(pipe, path, dtype, drop=("image_encoder",))


def build_lcm(path: str | Path, arch: str = "tiny-lcm", *, seed: int = 0, dtype: torch.dtype = torch.float32) -> Path:
    """A random-weight LCM checkpoint laid out as SimianLuo/LCM_Dreamshaper_v7 (tiny)."""
    from diffusers import LatentConsistencyModelPipeline, LCMScheduler, UNet2DConditionModel
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPImageProcessor

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    cfg = _configs("tiny")
    tokenizer = _clip_tokenizer(path / "tokenizer")
    text_encoder = _clip_text(tokenizer, cfg["text"], False)
    unet = UNet2DConditionModel(**cfg["unet"], time_cond_proj_dim=32)  # the guidance embedding
    vae = _sd_vae(cfg["vae"])
    checker = StableDiffusionSafetyChecker(
        CLIPConfig(text_config=cfg["text"], vision_config=cfg["vision"], projection_dim=cfg["projection_dim"])
    )
    size = cfg["image_size"]
    extractor = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    pipe = LatentConsistencyModelPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=LCMScheduler.from_config(LCM_SCHEDULER),
        safety_checker=checker,
        feature_extractor=extractor,
        requires_safety_checker=True,
    )
    return _save(pipe, path, dtype, feature_extractor=["transformers", "CLIPImageProcessor"])


SD3_SCHEDULER = dict(num_train_timesteps=1000, shift=3.0)
FLUX_DEV_SCHEDULER = dict(
    base_image_seq_len=256,
    base_shift=0.5,
    max_image_seq_len=4096,
    max_shift=1.15,
    num_train_timesteps=1000,
    shift=3.0,
    use_dynamic_shifting=True,
)
FLUX_SCHNELL_SCHEDULER = dict(FLUX_DEV_SCHEDULER, shift=1.0, use_dynamic_shifting=False)


def _t5_tokenizer(path: Path, model_max_length: int = 512):
    """A T5 tokenizer (sentencepiece-style unigram, ``▁`` word starts, ``</s>`` appended) over a handful of
    words, saved as the hub repositories store T5TokenizerFast (``tokenizer.json`` + config). Nothing is
    downloaded; letters and digits keep every other word encodable."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import T5TokenizerFast

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -3.0)]
    pieces += [("▁" + w, -5.0) for w in _WORDS]
    pieces += [(c, -10.0) for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;:!?'\"-()"]
    tok = Tokenizer(models.Unigram(pieces, unk_id=2))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)]
    )
    path.mkdir(parents=True, exist_ok=True)
    tok.save(str(path / "tokenizer.json"))
    tokenizer = T5TokenizerFast(
        tokenizer_file=str(path / "tokenizer.json"),
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        extra_ids=0,
        model_max_length=model_max_length,
    )
    tokenizer.save_pretrained(path)
    return tokenizer


def _t5_encoder(tokenizer, d_model: int):
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(
        T5Config(
            vocab_size=len(tokenizer),
            d_model=d_model,
            d_ff=2 * d_model,
            d_kv=16,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            feed_forward_proj="gated-gelu",
            pad_token_id=0,
            eos_token_id=1,
            decoder_start_token_id=0,
        )
    )


def _flow_vae(scaling_factor: float, shift_factor: float):
    """A tiny 16-channel VAE with SD's four blocks (8× down), as SD3's and FLUX's (no quant convs)."""
    return _sd_vae(
        _configs("tiny")["vae"],
        latent_channels=16,
        scaling_factor=scaling_factor,
        shift_factor=shift_factor,
        use_quant_conv=False,
        use_post_quant_conv=False,
    )


def build_sd3(path: str | Path, arch: str = "tiny-sd3", *, seed: int = 0, dtype: torch.dtype = torch.float32) -> Path:
    """A tiny random SD3/3.5 checkpoint laid out as stabilityai's repositories."""
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    tokenizer = _clip_tokenizer(path / "tokenizer")
    tokenizer_2 = _clip_tokenizer(path / "tokenizer_2", pad_token="!")
    tokenizer_3 = _t5_tokenizer(path / "tokenizer_3")
    text_encoder = _clip_text(tokenizer, _TINY_TEXT, False, projection=True)
    text_encoder_2 = _clip_text(tokenizer_2, _TINY_TEXT, False, projection=True)
    text_encoder_3 = _t5_encoder(tokenizer_3, 64)
    transformer = SD3Transformer2DModel(
        sample_size=32,
        patch_size=2,
        in_channels=16,
        out_channels=16,
        num_layers=2,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=64,
        caption_projection_dim=32,
        pooled_projection_dim=2 * _TINY_TEXT["projection_dim"],
        pos_embed_max_size=96,
    )
    pipe = StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler.from_config(SD3_SCHEDULER),
        vae=_flow_vae(1.5305, 0.0609),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer_2,
        text_encoder_3=text_encoder_3,
        tokenizer_3=tokenizer_3,
    )
    return _save(
        pipe, path, dtype, drop=("image_encoder", "feature_extractor"), tokenizer_3=["transformers", "T5TokenizerFast"]
    )  # as the hub repositories name it


def build_flux(path: str | Path, arch: str = "tiny-flux", *, seed: int = 0, dtype: torch.dtype = torch.float32) -> Path:
    """A tiny random FLUX.1-dev (guidance embedding) or -schnell checkpoint laid out as black-forest-labs'."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    dev = arch == "tiny-flux"
    tokenizer = _clip_tokenizer(path / "tokenizer")
    tokenizer_2 = _t5_tokenizer(path / "tokenizer_2")
    text_encoder = _clip_text(tokenizer, _TINY_TEXT, False)
    text_encoder_2 = _t5_encoder(tokenizer_2, 64)
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=64,
        out_channels=None,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=64,
        pooled_projection_dim=_TINY_TEXT["hidden_size"],
        guidance_embeds=dev,
        axes_dims_rope=(4, 6, 6),
    )
    scheduler = FlowMatchEulerDiscreteScheduler.from_config(FLUX_DEV_SCHEDULER if dev else FLUX_SCHNELL_SCHEDULER)
    pipe = FluxPipeline(
        transformer=transformer,
        scheduler=scheduler,
        vae=_flow_vae(0.3611, 0.1159),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer_2,
    )
    return _save(
        pipe, path, dtype, drop=("image_encoder", "feature_extractor"), tokenizer_2=["transformers", "T5TokenizerFast"]
    )


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

    The other architectures (``tiny-sdxl``, ``sdxl``, ``tiny-turbo``, ``sd-turbo``, ``tiny-lcm`` …) go to
    ``build_sdxl``, ``build_sd_turbo`` and ``build_lcm`` (their own layouts; ``safety_checker`` applies to SD only).
    """
    if "sdxl" in arch:
        return build_sdxl(path, arch, seed=seed, dtype=dtype)
    if arch in ("tiny-turbo", "sd-turbo"):
        return build_sd_turbo(path, arch, seed=seed, dtype=dtype)
    if arch == "tiny-lcm":
        return build_lcm(path, arch, seed=seed, dtype=dtype)
    if arch == "tiny-sd3":
        return build_sd3(path, arch, seed=seed, dtype=dtype)
    if arch.startswith("tiny-flux"):
        return build_flux(path, arch, seed=seed, dtype=dtype)
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
    tokenizer = CLIPTokenizer(
        vocab=str(tok_dir / "vocab.json"), merges=str(tok_dir / "merges.txt"), model_max_length=77
    )
    vocab_size = len(tokenizer) if arch == "tiny" else 49408
    text_config = CLIPTextConfig(
        vocab_size=vocab_size,
        bos_token_id=len(tokenizer) - 2,
        eos_token_id=len(tokenizer) - 1,
        pad_token_id=len(tokenizer) - 1,
        **cfg["text"],
    )
    text_encoder = CLIPTextModel(text_config)
    unet = UNet2DConditionModel(**cfg["unet"])
    vae = AutoencoderKL(**cfg["vae"])
    scheduler = PNDMScheduler.from_config(SD15_SCHEDULER)

    checker = extractor = None
    if safety_checker:
        clip_config = CLIPConfig(
            text_config=cfg["text"], vision_config=cfg["vision"], projection_dim=cfg["projection_dim"]
        )
        checker = StableDiffusionSafetyChecker(clip_config)
        if flag_everything:
            with torch.no_grad():
                checker.concept_embeds_weights.fill_(-2.0)  # cosine similarity is always above -2
        size = cfg["image_size"]
        extractor = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})

    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=checker,
        feature_extractor=extractor,
        requires_safety_checker=safety_checker,
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


def build_taesd(
    path: str | Path,
    arch: str = "tiny",
    seed: int = 0,
    latent_channels: int = 4,
    scaling_factor: float = 1.0,
    shift_factor: float = 0.0,
) -> Path:
    """Build a random-weight TAESD (diffusers ``AutoencoderTiny``) folder, shaped like ``madebyollin/taesd``
    (16 latent channels and the family's scaling/shift: like ``taesd3`` / ``taef1``)."""
    from diffusers import AutoencoderTiny

    torch.manual_seed(seed)
    channels = (8, 8, 8, 8) if arch == "tiny" else (64, 64, 64, 64)
    blocks = (1, 1, 1, 1) if arch == "tiny" else (1, 3, 3, 3)
    model = AutoencoderTiny(
        encoder_block_out_channels=channels,
        decoder_block_out_channels=channels,
        num_encoder_blocks=blocks,
        num_decoder_blocks=blocks,
        latent_channels=latent_channels,
        scaling_factor=scaling_factor,
        shift_factor=shift_factor,
    )
    model.save_pretrained(path, safe_serialization=True)
    return Path(path)


def build_taesd_for(checkpoint: str | Path, path: str | Path, arch: str = "tiny") -> Path:
    """A random TAESD matching ``checkpoint``'s VAE: 4 latent channels (``taesd``/``taesdxl``, which take the
    scaled latents as they are), or 16 with the VAE's scaling and shift (``taesd3``/``taef1``)."""
    vae = json.loads((Path(checkpoint) / "vae" / "config.json").read_text())
    channels = vae["latent_channels"]
    return build_taesd(
        path,
        arch,
        latent_channels=channels,
        scaling_factor=vae["scaling_factor"] if channels == 16 else 1.0,
        shift_factor=(vae.get("shift_factor") or 0.0) if channels == 16 else 0.0,
    )


def random_model(name: str, root: str | Path | None = None) -> tuple[Path, Path]:
    """The tiny random checkpoint behind an offline demo name (``random``, ``random-sdxl``, ``random-turbo``,
    ``random-lcm``, ``random-sdxl-turbo``, ``random-sdxl-refiner``) and a tiny TAESD for it, built on first use
    into ``root`` (default: the demo's cache folder, ``$SD_IMG2IMG_CACHE`` …) and reused after.

    Returns ``(checkpoint folder, taesd folder)``.
    """
    if name not in RANDOM_MODELS:
        raise ValueError(f"unknown random model {name!r}; choose one of: {', '.join(RANDOM_MODELS)}")
    if root is None:
        from sd_img2img.cache import cache_dir

        root = cache_dir()
    arch = RANDOM_MODELS[name]
    folder = Path(root) / name  # not server.random_checkpoint's "random-tiny"
    model, taesd, done = folder / "model", folder / "taesd", folder / ".complete"
    if not done.exists():
        folder.mkdir(parents=True, exist_ok=True)
        build_checkpoint(model, arch)
        build_taesd_for(model, taesd, "tiny")
        done.write_text(f"built by sd_img2img.random_checkpoint.random_model({name!r})\n")
    return model, taesd


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", help="folder to write")
    parser.add_argument("--arch", choices=ARCHITECTURES, default="tiny")
    parser.add_argument("--no-safety-checker", action="store_true", help="leave out safety_checker/")
    parser.add_argument("--taesd", metavar="DIR", help="also build a random TAESD decoder in DIR")
    parser.add_argument(
        "--dtype",
        choices=("float32", "float16", "bfloat16"),
        default="float32",
        help="dtype the weights are saved in (float16 halves sdxl's 14 GB)",
    )
    parser.add_argument(
        "--single-file-from",
        metavar="DIR",
        default=None,
        help="write PATH as one original-layout .safetensors made from the diffusers SD 1.x or SDXL "
        "folder DIR (model.diffusion_model.*, first_stage_model.*, cond_stage_model.* or "
        "conditioner.embedders.*)",
    )
    args = parser.parse_args(argv)
    if args.single_file_from:
        from original_layout import write_single_file

        print(write_single_file(args.single_file_from, args.path))
        return
    build_checkpoint(args.path, args.arch, safety_checker=not args.no_safety_checker, dtype=getattr(torch, args.dtype))
    if args.taesd:
        build_taesd_for(args.path, args.taesd, "tiny" if args.arch.startswith("tiny") else "sd15")
    print(args.path)


if __name__ == "__main__":
    main()


def build_lora(
    checkpoint: str | Path,
    out: str | Path,
    fmt: str = "peft",
    *,
    rank: int = 4,
    seed: int = 1,
    strength: float = 0.5,
    text_encoder: bool = True,
) -> Path:
    """A random LoRA for the SD 1.x checkpoint folder ``checkpoint``, written to the ``.safetensors`` file ``out``.

    ``fmt="peft"``: diffusers' own keys (``unet.<module>.lora_A.weight`` / ``lora_B.weight``,
    ``text_encoder.text_model.<module>…``); ``fmt="kohya"``: kohya / AUTOMATIC1111 keys
    (``lora_unet_<module_with_underscores>.lora_down.weight`` / ``lora_up.weight`` / ``alpha``, ``lora_te_…``);
    ``fmt="kohya-sgm"``: kohya's SDXL keys, named after the original UNet's blocks
    (``lora_unet_input_blocks_2_1_transformer_blocks_0_attn1_to_q…``, ``lora_te1_…``).
    Every attention projection of the UNet (and of the text encoder) gets one; ``strength`` sets how much the
    output changes.
    """
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file

    if fmt not in ("peft", "kohya", "kohya-sgm"):
        raise ValueError(f"fmt must be 'peft', 'kohya' or 'kohya-sgm', got {fmt!r}")
    checkpoint = Path(checkpoint)
    unet = UNet2DConditionModel.from_pretrained(checkpoint / "unet")
    targets = [
        ("unet", name, m)
        for name, m in unet.named_modules()
        if name.rsplit(".", 1)[-1] in ("to_q", "to_k", "to_v") or name.endswith("to_out.0")
    ]
    if text_encoder:
        from transformers import CLIPTextModel

        te = CLIPTextModel.from_pretrained(checkpoint / "text_encoder")
        for name, m in te.named_modules():
            if name.rsplit(".", 1)[-1] in ("q_proj", "k_proj", "v_proj", "out_proj"):
                name = name if name.startswith("text_model.") else "text_model." + name  # the keys LoRAs carry
                targets.append(("text_encoder", name, m))
    if fmt == "kohya-sgm":
        from original_layout import unet_key_map

        blocks = sorted(unet_key_map(dict(unet.config)).items(), key=lambda item: -len(item[0]))
        targets = [
            (
                part,
                next((old + name[len(new) :] for new, old in blocks if name.startswith(new + ".")), name)
                if part == "unet"
                else name,
                m,
            )
            for part, name, m in targets
        ]
    g = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for part, name, module in targets:
        down = torch.randn(rank, module.in_features, generator=g) * strength / module.in_features**0.5
        up = torch.randn(module.out_features, rank, generator=g) * strength / rank**0.5
        if fmt == "peft":
            state[f"{part}.{name}.lora_A.weight"] = down
            state[f"{part}.{name}.lora_B.weight"] = up
        else:
            te = "lora_te1_" if fmt == "kohya-sgm" else "lora_te_"
            key = ("lora_unet_" if part == "unet" else te) + name.replace(".", "_")
            alpha = rank / 2  # kohya scales by alpha / rank
            state[f"{key}.lora_down.weight"] = down
            state[f"{key}.lora_up.weight"] = up * 2  # … so the change matches the peft file's
            state[f"{key}.alpha"] = torch.tensor(float(alpha))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(out))
    return out
