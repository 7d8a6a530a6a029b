"""Tiny random-weight checkpoints of every family: the offline demo's models and the tests' fixtures.

No weights can be downloaded where this project is tested, and ``--model random`` (``random-sdxl``,
``random-turbo`` …: ``RANDOM_MODELS``, served by ``models/model_set.py`` and ``settings.py``) must run with no
network, so the offline demo and the tests build checkpoints here (``random_model`` builds one once into the
demo's cache folder) and load them through the same ``from_pretrained`` code a user's checkpoint goes through.
Each is laid out as its family's hub repository: ``model_index.json`` naming the pipeline, one folder a
component, weights as safetensors, tokenizers written here from a handful of words.

Architectures (``ARCHITECTURES``: name → ``Architecture``, the models' shapes as data), a few hundred thousand
parameters each (a 384×384 image runs 10 steps in well under a second), the VAEs keeping SD's four blocks and 8×
downscale so latents have the real shape:

- ``tiny``: like stable-diffusion-v1-5 (``StableDiffusionPipeline``, PNDM, ``safety_checker/`` and
  ``feature_extractor/``).
- ``tiny-turbo``: like stabilityai/sd-turbo (EulerDiscreteScheduler with ``timestep_spacing="trailing"``, no safety
  checker, the OpenCLIP tokenizer's ``!`` padding).
- ``tiny-sdxl``: like stabilityai/stable-diffusion-xl-base-1.0 (``StableDiffusionXLPipeline``, two text encoders,
  EulerDiscreteScheduler, a ``force_upcast`` VAE, no safety checker).
- ``tiny-sdxl-turbo``: SDXL with sdxl-turbo's trailing EulerAncestralDiscreteScheduler.
- ``tiny-sdxl-refiner``: like the SDXL refiner (``StableDiffusionXLImg2ImgPipeline``, only ``text_encoder_2``,
  ``requires_aesthetics_score``).
- ``tiny-lcm``: like SimianLuo/LCM_Dreamshaper_v7 (``LatentConsistencyModelPipeline``, LCMScheduler, a UNet with
  ``time_cond_proj_dim``).
- ``tiny-sd3``: like stabilityai/stable-diffusion-3.5 (``StableDiffusion3Pipeline``: an MMDiT ``transformer/``, a
  16-channel VAE, two CLIP text encoders with projection and a T5 encoder, FlowMatchEulerDiscreteScheduler).
- ``tiny-flux`` / ``tiny-flux-schnell``: like black-forest-labs/FLUX.1-dev / -schnell (``FluxPipeline``: the FLUX
  transformer with / without the guidance embedding, CLIP + T5, dynamic shifting for dev).
- ``tiny-zimage``: like Tongyi-MAI/Z-Image-Turbo (``ZImagePipeline``: the Z-Image transformer, a Qwen3 text encoder,
  FLUX's 16-channel VAE, shift 3 without dynamic shifting).
- ``tiny-qwenimage``: like Qwen/Qwen-Image (``QwenImagePipeline``: the Qwen-Image transformer, a Qwen2.5-VL text
  encoder, the Wan-style video VAE ``AutoencoderKLQwenImage``).
- ``tiny-chroma``: like lodestones/Chroma1-HD (``ChromaPipeline``: the Chroma transformer, T5 only).
- ``tiny-inpaint``: like stable-diffusion-v1-5/stable-diffusion-inpainting (``StableDiffusionInpaintPipeline``, a
  9-channel UNet: latents, the mask, the masked image's latents).
- ``tiny-flux-fill``: like black-forest-labs/FLUX.1-Fill-dev (``FluxFillPipeline``, a 384-channel transformer).
- ``tiny-kontext``: like black-forest-labs/FLUX.1-Kontext-dev (``FluxKontextPipeline``, FLUX.1-dev's parts).
- ``tiny-flux2-klein``: like black-forest-labs/FLUX.2-klein-4B (``Flux2KleinPipeline``, ``is_distilled``: the FLUX.2
  transformer on 128 patchified channels, a Qwen3 causal LM whose layers 9, 18 and 27 it reads, the batch-normalized
  32-channel ``AutoencoderKLFlux2`` with random statistics).
- ``tiny-qwen-edit``: like Qwen/Qwen-Image-Edit (``QwenImageEditPipeline``: Qwen-Image's parts and a ``processor/``
  for the reference image, loaded image-only where torchvision is missing: ``models/processors.py``).

Their Qwen tokenizers and text encoders come from ``testing/tiny_llm.py``.

The builders take an ``Architecture`` wherever they take a name: ``benchmarks/architectures.py`` passes the real
SD1.5, SD-Turbo and SDXL shapes through this same code for speed and memory measurements.

    python -m sd_img2img.testing.tiny DIR [--arch NAME] [--taesd DIR2]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path

import torch

from sd_img2img import config

# Scheduler configs of the real repositories (scheduler/scheduler_config.json)
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
ZIMAGE_SCHEDULER = dict(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=False)
QWEN_SCHEDULER = dict(
    base_image_seq_len=256,
    base_shift=0.5,
    max_image_seq_len=8192,
    max_shift=0.9,
    num_train_timesteps=1000,
    shift=1.0,
    shift_terminal=0.02,
    time_shift_type="exponential",
    use_dynamic_shifting=True,
)
FLUX2_SCHEDULER = dict(FLUX_DEV_SCHEDULER, time_shift_type="exponential")
# a TAESD (AutoencoderTiny) of a few thousand parameters
TINY_TAESD = dict(channels=(8, 8, 8, 8), blocks=(1, 1, 1, 1))


@dataclasses.dataclass(frozen=True)
class Architecture:
    """The shapes of one checkpoint's models, as data the builders read (nothing here is built until asked).

    Args:
        name: what it is called (``tiny``, ``tiny-sdxl`` …; ``sd15`` … in ``benchmarks/architectures.py``).
        family: its ``families.FAMILIES`` name, which picks the layout and the builder (``sd``, ``sd-turbo``,
            ``sdxl``, ``sdxl-turbo``, ``sdxl-refiner``, ``lcm``, ``sd3``, ``flux``, ``flux-schnell``).
        scheduler: the diffusers scheduler class's name and its config.
        vae: the ``AutoencoderKL`` config.
        text: ``CLIPTextConfig`` fields of ``text_encoder`` (and of the safety checker's text tower).
        unet: the ``UNet2DConditionModel`` config (SD, SD-Turbo, LCM, SDXL: there its ``cross_attention_dim`` and
            ``projection_class_embeddings_input_dim`` follow from the text encoders).
        transformer: the ``SD3Transformer2DModel`` / ``FluxTransformer2DModel`` config (SD3, FLUX).
        text_2: ``CLIPTextConfig`` fields of the second CLIP text encoder (SDXL, SD3).
        t5: ``T5Config`` fields of the T5 encoder (SD3, FLUX; its vocabulary is the tokenizer's).
        vision: the safety checker's CLIP vision tower; None: no safety checker.
        pad_token: the (first) CLIP tokenizer's padding token; None: ``<|endoftext|>``, as CLIP's.
        vocab_size: the CLIP text encoders' embedding rows; None: the small tokenizer's own (CLIP's: 49408).
        taesd: block widths and counts of a matching TAESD (``AutoencoderTiny``): ``channels``, ``blocks``.
        create_in_dtype: create the weights in the dtype they are saved in (a real SDXL in bfloat16 then peaks
            at 7 GB, not 14), not in float32 first.
        llm: the Qwen language model that reads the prompt (Z-Image, Klein: ``Qwen3Config`` fields; Qwen-Image:
            ``text`` and ``vision`` of ``Qwen2_5_VLConfig``).
        vae_class: the VAE's diffusers class (``AutoencoderKLQwenImage``, ``AutoencoderKLFlux2`` …).
    """

    name: str
    family: str
    scheduler: tuple[str, dict]
    vae: dict
    text: dict
    unet: dict | None = None
    transformer: dict | None = None
    text_2: dict | None = None
    t5: dict | None = None
    vision: dict | None = None
    pad_token: str | None = None
    vocab_size: int | None = None
    taesd: dict = dataclasses.field(default_factory=lambda: dict(TINY_TAESD))
    create_in_dtype: bool = False
    llm: dict | None = None
    vae_class: str = "AutoencoderKL"


TINY_TEXT = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    max_position_embeddings=77,
    projection_dim=32,
    hidden_act="quick_gelu",
)
TINY_VISION = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    image_size=32,
    patch_size=8,
    projection_dim=32,
    hidden_act="quick_gelu",
)
TINY_UNET = dict(
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
)
TINY_VAE = dict(
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
)
TINY_SDXL_UNET = dict(
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
TINY_T5 = dict(
    d_model=64,
    d_ff=128,
    d_kv=16,
    num_layers=2,
    num_heads=4,
    relative_attention_num_buckets=8,
    feed_forward_proj="gated-gelu",
)
# SD3's and FLUX's VAE: 16 latent channels, no quant convs
_FLOW_VAE = dict(TINY_VAE, latent_channels=16, use_quant_conv=False, use_post_quant_conv=False)
_TINY_SDXL = Architecture(
    name="tiny-sdxl",
    family="sdxl",
    scheduler=("EulerDiscreteScheduler", EULER_SCHEDULER),
    vae=dict(TINY_VAE, scaling_factor=0.13025, force_upcast=True),
    text=TINY_TEXT,
    unet=TINY_SDXL_UNET,
    text_2=TINY_TEXT,
)
_TINY_FLUX = Architecture(
    name="tiny-flux",
    family="flux",
    scheduler=("FlowMatchEulerDiscreteScheduler", FLUX_DEV_SCHEDULER),
    vae=dict(_FLOW_VAE, scaling_factor=0.3611, shift_factor=0.1159),
    text=TINY_TEXT,
    t5=TINY_T5,
    transformer=dict(
        patch_size=1,
        in_channels=64,
        out_channels=None,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=TINY_T5["d_model"],
        pooled_projection_dim=TINY_TEXT["hidden_size"],
        guidance_embeds=True,
        axes_dims_rope=(4, 6, 6),
    ),
)
_TINY = (
    Architecture(
        name="tiny",
        family="sd",
        scheduler=("PNDMScheduler", SD15_SCHEDULER),
        vae=TINY_VAE,
        text=TINY_TEXT,
        unet=TINY_UNET,
        vision=TINY_VISION,
    ),
    Architecture(
        name="tiny-turbo",
        family="sd-turbo",
        scheduler=("EulerDiscreteScheduler", dict(EULER_SCHEDULER, timestep_spacing="trailing")),
        vae=TINY_VAE,
        text=TINY_TEXT,
        unet=TINY_UNET,
        pad_token="!",
    ),
    _TINY_SDXL,
    dataclasses.replace(
        _TINY_SDXL,
        name="tiny-sdxl-turbo",
        family="sdxl-turbo",
        scheduler=("EulerAncestralDiscreteScheduler", dict(EULER_SCHEDULER, timestep_spacing="trailing")),
    ),
    dataclasses.replace(_TINY_SDXL, name="tiny-sdxl-refiner", family="sdxl-refiner"),
    Architecture(
        name="tiny-lcm",
        family="lcm",
        scheduler=("LCMScheduler", LCM_SCHEDULER),
        vae=TINY_VAE,
        text=TINY_TEXT,
        unet=dict(TINY_UNET, time_cond_proj_dim=32),  # the guidance embedding
        vision=TINY_VISION,
    ),
    Architecture(
        name="tiny-sd3",
        family="sd3",
        scheduler=("FlowMatchEulerDiscreteScheduler", SD3_SCHEDULER),
        vae=dict(_FLOW_VAE, scaling_factor=1.5305, shift_factor=0.0609),
        text=TINY_TEXT,
        text_2=TINY_TEXT,
        t5=TINY_T5,
        transformer=dict(
            sample_size=32,
            patch_size=2,
            in_channels=16,
            out_channels=16,
            num_layers=2,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=TINY_T5["d_model"],
            caption_projection_dim=32,
            pooled_projection_dim=2 * TINY_TEXT["projection_dim"],
            pos_embed_max_size=96,
        ),
    ),
    _TINY_FLUX,
    dataclasses.replace(
        _TINY_FLUX,
        name="tiny-flux-schnell",
        family="flux-schnell",
        scheduler=("FlowMatchEulerDiscreteScheduler", FLUX_SCHNELL_SCHEDULER),
        transformer=dict(_TINY_FLUX.transformer, guidance_embeds=False),
    ),
    # inpainting checkpoints: the denoiser also reads the mask and the masked image's latents
    Architecture(
        name="tiny-inpaint",
        family="sd-inpaint",
        scheduler=("PNDMScheduler", SD15_SCHEDULER),
        vae=TINY_VAE,
        text=TINY_TEXT,
        unet=dict(TINY_UNET, in_channels=9),  # 4 latent + 1 mask + 4 masked-image channels
        vision=TINY_VISION,
    ),
    dataclasses.replace(
        _TINY_FLUX,
        name="tiny-flux-fill",
        family="flux-fill",
        # 64 packed latent + 64 masked-image + 256 packed mask channels (the mask at 8 × 8 per latent pixel, 2 × 2)
        transformer=dict(_TINY_FLUX.transformer, in_channels=384, out_channels=64),
    ),
)
TINY_QWEN3 = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=2,
    head_dim=16,
    max_position_embeddings=2048,
)
TINY_QWEN_VL = dict(
    text=dict(
        TINY_QWEN3,
        rope_scaling={"mrope_section": [2, 3, 3], "rope_type": "default", "type": "default"},  # 8 = head_dim / 2
        rope_theta=1000000.0,
    ),
    vision=dict(
        depth=2,
        hidden_size=32,
        intermediate_size=32,
        num_heads=2,
        out_hidden_size=32,
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
        window_size=112,
        fullatt_block_indexes=[1],
    ),
)
_QWEN_IMAGE = Architecture(
    name="tiny-qwenimage",
    family="qwen-image",
    scheduler=("FlowMatchEulerDiscreteScheduler", QWEN_SCHEDULER),
    vae=dict(base_dim=8, z_dim=16, dim_mult=[1, 2, 2, 2], num_res_blocks=1, temperal_downsample=[False, True, True]),
    vae_class="AutoencoderKLQwenImage",
    text=TINY_TEXT,
    llm=TINY_QWEN_VL,
    transformer=dict(
        patch_size=2,
        in_channels=64,
        out_channels=16,
        num_layers=2,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=TINY_QWEN_VL["text"]["hidden_size"],
        guidance_embeds=False,
        axes_dims_rope=(4, 6, 6),
    ),
)
_TINY += (
    Architecture(
        name="tiny-zimage",
        family="zimage",
        scheduler=("FlowMatchEulerDiscreteScheduler", ZIMAGE_SCHEDULER),
        vae=dict(_FLOW_VAE, scaling_factor=0.3611, shift_factor=0.1159),
        text=TINY_TEXT,
        llm=TINY_QWEN3,
        transformer=dict(
            all_patch_size=(2,),
            all_f_patch_size=(1,),
            in_channels=16,
            dim=32,
            n_layers=2,
            n_refiner_layers=1,
            n_heads=2,
            n_kv_heads=2,
            norm_eps=1e-5,
            qk_norm=True,
            cap_feat_dim=TINY_QWEN3["hidden_size"],
            rope_theta=256.0,
            t_scale=1000.0,
            axes_dims=[8, 4, 4],
            axes_lens=[1024, 64, 64],
        ),
    ),
    _QWEN_IMAGE,
    dataclasses.replace(_QWEN_IMAGE, name="tiny-qwen-edit", family="qwen-image-edit"),
    Architecture(
        name="tiny-chroma",
        family="chroma",
        scheduler=("FlowMatchEulerDiscreteScheduler", FLUX_DEV_SCHEDULER),
        vae=dict(_FLOW_VAE, scaling_factor=0.3611, shift_factor=0.1159),
        text=TINY_TEXT,
        t5=TINY_T5,
        transformer=dict(
            patch_size=1,
            in_channels=64,
            num_layers=1,
            num_single_layers=1,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=TINY_T5["d_model"],
            axes_dims_rope=(4, 6, 6),
            approximator_num_channels=8,
            approximator_hidden_dim=32,
            approximator_layers=1,
        ),
    ),
    dataclasses.replace(_TINY_FLUX, name="tiny-kontext", family="flux-kontext"),
    Architecture(
        name="tiny-flux2-klein",
        family="flux2-klein",
        scheduler=("FlowMatchEulerDiscreteScheduler", FLUX2_SCHEDULER),
        vae=dict(
            block_out_channels=(8, 8, 16, 16),
            layers_per_block=1,
            latent_channels=32,
            norm_num_groups=4,
            sample_size=256,
        ),
        vae_class="AutoencoderKLFlux2",
        text=TINY_TEXT,
        # 28 layers: the pipeline reads hidden states 9, 18 and 27, stacked (3 × 16 wide)
        llm=dict(TINY_QWEN3, hidden_size=16, intermediate_size=32, head_dim=8, num_hidden_layers=28),
        transformer=dict(
            patch_size=1,
            in_channels=128,
            num_layers=1,
            num_single_layers=1,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=3 * 16,
            timestep_guidance_channels=256,
            axes_dims_rope=(4, 4, 4, 4),
            guidance_embeds=False,
        ),
    ),
)
ARCHITECTURES: dict[str, Architecture] = {arch.name: arch for arch in _TINY}
# each architecture's family (families.FAMILIES), known before it is built
ARCH_FAMILIES = {name: arch.family for name, arch in ARCHITECTURES.items()}
RANDOM_MODELS = config.RANDOM_MODELS  # the offline demo's model names → the tiny architecture behind each

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
    from transformers.convert_slow_tokenizer import bytes_to_unicode  # CLIP's byte → printable unicode table

    chars = list(bytes_to_unicode().values())
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


def _clip_tokenizer(path: Path, pad_token: str | None = None):
    from transformers import CLIPTokenizer

    _write_tokenizer(path)
    extra = {"pad_token": pad_token} if pad_token else {}
    return CLIPTokenizer(vocab=str(path / "vocab.json"), merges=str(path / "merges.txt"), model_max_length=77, **extra)


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


def _clip_text(tokenizer, cfg: dict, vocab_size: int | None, projection: bool = False):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    n = len(tokenizer)
    text_config = CLIPTextConfig(
        vocab_size=vocab_size or n,
        bos_token_id=n - 2,
        eos_token_id=n - 1,
        pad_token_id=tokenizer.pad_token_id,
        **cfg,
    )
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(text_config)


def _t5_encoder(tokenizer, cfg: dict):
    from transformers import T5Config, T5EncoderModel

    config = T5Config(vocab_size=len(tokenizer), pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, **cfg)
    return T5EncoderModel(config)


def _scheduler(arch: Architecture):
    import diffusers

    name, config = arch.scheduler
    return getattr(diffusers, name).from_config(config)


def _vae(arch: Architecture):
    import diffusers

    return getattr(diffusers, arch.vae_class)(**arch.vae)


@contextlib.contextmanager
def _created_in(dtype: torch.dtype):
    """Create parameters directly in ``dtype`` (``Architecture.create_in_dtype``)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def _sd(path: Path, arch: Architecture, safety_checker: bool):
    """SD 1.x, SD-Turbo and LCM: one CLIP text encoder, a UNet, the safety checker where the family has one."""
    from diffusers import LatentConsistencyModelPipeline, StableDiffusionPipeline, UNet2DConditionModel
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPImageProcessor

    safety_checker = safety_checker and arch.vision is not None
    tokenizer = _clip_tokenizer(path / "tokenizer", pad_token=arch.pad_token)
    text_encoder = _clip_text(tokenizer, arch.text, arch.vocab_size)
    unet = UNet2DConditionModel(**arch.unet)
    vae = _vae(arch)
    checker = extractor = None
    if safety_checker:
        vision = arch.vision
        clip = CLIPConfig(text_config=arch.text, vision_config=vision, projection_dim=vision["projection_dim"])
        checker = StableDiffusionSafetyChecker(clip)
        size = vision["image_size"]
        extractor = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    pipeline = LatentConsistencyModelPipeline if arch.family == "lcm" else StableDiffusionPipeline
    pipe = pipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=_scheduler(arch),
        safety_checker=checker,
        feature_extractor=extractor,
        requires_safety_checker=safety_checker,
    )
    # the real repositories name the feature extractor CLIPImageProcessor
    return pipe, ("image_encoder",), ({"feature_extractor": ["transformers", "CLIPImageProcessor"]} if checker else {})


def _sdxl_unet(arch: Architecture) -> dict:
    """The SDXL UNet's config, its context and added-embedding widths worked out from the text encoders."""
    refiner = arch.family == "sdxl-refiner"
    time_ids = 5 if refiner else 6  # the refiner's time ids carry the aesthetic score instead of the target size
    derived = dict(
        cross_attention_dim=arch.text_2["hidden_size"] + (0 if refiner else arch.text["hidden_size"]),
        projection_class_embeddings_input_dim=time_ids * arch.unet["addition_time_embed_dim"]
        + arch.text_2["projection_dim"],
    )
    for key, value in derived.items():
        if arch.unet.get(key, value) != value:
            raise ValueError(f"{arch.name}: unet {key}={arch.unet[key]} does not match its text encoders' {value}")
    return {**arch.unet, **derived}


def _sdxl(path: Path, arch: Architecture, safety_checker: bool):
    """SDXL base, Turbo and refiner (no safety checker: ``safety_checker`` is ignored)."""
    from diffusers import StableDiffusionXLImg2ImgPipeline, StableDiffusionXLPipeline, UNet2DConditionModel

    refiner = arch.family == "sdxl-refiner"
    tokenizer = None if refiner else _clip_tokenizer(path / "tokenizer")
    tokenizer_2 = _clip_tokenizer(path / "tokenizer_2", pad_token="!")
    text_encoder = None if refiner else _clip_text(tokenizer, arch.text, arch.vocab_size)
    text_encoder_2 = _clip_text(tokenizer_2, arch.text_2, arch.vocab_size, projection=True)
    unet = UNet2DConditionModel(**_sdxl_unet(arch))
    parts = dict(
        vae=_vae(arch),
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=unet,
        scheduler=_scheduler(arch),
    )
    if refiner:
        pipe = StableDiffusionXLImg2ImgPipeline(
            **parts, requires_aesthetics_score=True, force_zeros_for_empty_prompt=False
        )
    else:
        pipe = StableDiffusionXLPipeline(**parts)
    return pipe, ("image_encoder", "feature_extractor"), {}


def _sd3(path: Path, arch: Architecture, safety_checker: bool):
    """SD3/3.5: two CLIP text encoders with projection, T5, the MMDiT transformer (no safety checker)."""
    from diffusers import SD3Transformer2DModel, StableDiffusion3Pipeline

    tokenizer = _clip_tokenizer(path / "tokenizer")
    tokenizer_2 = _clip_tokenizer(path / "tokenizer_2", pad_token="!")
    tokenizer_3 = _t5_tokenizer(path / "tokenizer_3")
    text_encoder = _clip_text(tokenizer, arch.text, arch.vocab_size, projection=True)
    text_encoder_2 = _clip_text(tokenizer_2, arch.text_2, arch.vocab_size, projection=True)
    text_encoder_3 = _t5_encoder(tokenizer_3, arch.t5)
    transformer = SD3Transformer2DModel(**arch.transformer)
    pipe = StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=_scheduler(arch),
        vae=_vae(arch),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer_2,
        text_encoder_3=text_encoder_3,
        tokenizer_3=tokenizer_3,
    )
    # as the hub repositories name it
    return pipe, ("image_encoder", "feature_extractor"), {"tokenizer_3": ["transformers", "T5TokenizerFast"]}


def _flux(path: Path, arch: Architecture, safety_checker: bool):
    """FLUX.1-dev / -schnell: CLIP and T5 text encoders, the FLUX transformer (no safety checker)."""
    from diffusers import FluxPipeline, FluxTransformer2DModel

    tokenizer = _clip_tokenizer(path / "tokenizer")
    tokenizer_2 = _t5_tokenizer(path / "tokenizer_2")
    text_encoder = _clip_text(tokenizer, arch.text, arch.vocab_size)
    text_encoder_2 = _t5_encoder(tokenizer_2, arch.t5)
    transformer = FluxTransformer2DModel(**arch.transformer)
    pipe = FluxPipeline(
        transformer=transformer,
        scheduler=_scheduler(arch),
        vae=_vae(arch),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer_2,
    )
    return pipe, ("image_encoder", "feature_extractor"), {"tokenizer_2": ["transformers", "T5TokenizerFast"]}


def _zimage(path: Path, arch: Architecture, safety_checker: bool):
    """Z-Image: a Qwen3 text encoder (its hidden states), the Z-Image transformer, FLUX's VAE."""
    from diffusers import ZImagePipeline, ZImageTransformer2DModel

    from sd_img2img.testing import tiny_llm

    tokenizer = tiny_llm.qwen_tokenizer(path / "tokenizer", _WORDS)
    return (
        ZImagePipeline(
            scheduler=_scheduler(arch),
            vae=_vae(arch),
            text_encoder=tiny_llm.qwen3(tokenizer, arch.llm),
            tokenizer=tokenizer,
            transformer=ZImageTransformer2DModel(**arch.transformer),
        ),
        (),
        {},
    )


def _qwen_image(path: Path, arch: Architecture, safety_checker: bool):
    """Qwen-Image: a Qwen2.5-VL text encoder, the Qwen-Image transformer, the video VAE; Qwen-Image-Edit adds the
    ``processor/`` that shows the reference image to the text encoder (written as files: see ``tiny_llm``)."""
    from diffusers import QwenImagePipeline, QwenImageTransformer2DModel

    from sd_img2img.testing import tiny_llm

    tokenizer = tiny_llm.qwen_tokenizer(path / "tokenizer", _WORDS)
    pipe = QwenImagePipeline(
        scheduler=_scheduler(arch),
        vae=_vae(arch),
        text_encoder=tiny_llm.qwen25_vl(tokenizer, arch.llm["text"], arch.llm["vision"]),
        tokenizer=tokenizer,
        transformer=QwenImageTransformer2DModel(**arch.transformer),
    )
    if arch.family != "qwen-image-edit":
        return pipe, (), {}
    tiny_llm.write_processor(path / "processor", tokenizer, arch.llm["vision"])
    return pipe, (), {"_class_name": "QwenImageEditPipeline", "processor": ["transformers", "Qwen2VLProcessor"]}


def _chroma(path: Path, arch: Architecture, safety_checker: bool):
    """Chroma: T5 alone, the Chroma transformer, FLUX's VAE."""
    from diffusers import ChromaPipeline, ChromaTransformer2DModel

    tokenizer = _t5_tokenizer(path / "tokenizer")
    pipe = ChromaPipeline(
        scheduler=_scheduler(arch),
        vae=_vae(arch),
        text_encoder=_t5_encoder(tokenizer, arch.t5),
        tokenizer=tokenizer,
        transformer=ChromaTransformer2DModel(**arch.transformer),
    )
    return pipe, ("image_encoder", "feature_extractor"), {"tokenizer": ["transformers", "T5TokenizerFast"]}


def _sd_inpaint(path: Path, arch: Architecture, safety_checker: bool):
    """An SD inpainting checkpoint (stable-diffusion-v1-5/stable-diffusion-inpainting): SD's parts, a 9-channel UNet,
    saved as a ``StableDiffusionInpaintPipeline``."""
    pipe, drop, changes = _sd(path, arch, safety_checker)
    return pipe, drop, {**changes, "_class_name": "StableDiffusionInpaintPipeline"}


def _flux_fill(path: Path, arch: Architecture, safety_checker: bool):
    """FLUX.1 Fill (black-forest-labs/FLUX.1-Fill-dev): FLUX.1-dev's parts, a 384-channel transformer, saved as a
    ``FluxFillPipeline``."""
    pipe, drop, changes = _flux(path, arch, safety_checker)
    return pipe, drop, {**changes, "_class_name": "FluxFillPipeline"}


def _kontext(path: Path, arch: Architecture, safety_checker: bool):
    """FLUX.1 Kontext: FLUX.1-dev's parts in a ``FluxKontextPipeline``."""
    from diffusers import FluxKontextPipeline

    pipe, drop, changes = _flux(path, arch, safety_checker)
    return FluxKontextPipeline(**{k: v for k, v in pipe.components.items() if k not in drop}), drop, changes


def _klein(path: Path, arch: Architecture, safety_checker: bool):
    """FLUX.2 Klein: a Qwen3 causal LM, the FLUX.2 transformer, the batch-normalized VAE (random statistics, so a
    preview that skipped them would not match the output)."""
    from diffusers import Flux2KleinPipeline, Flux2Transformer2DModel

    from sd_img2img.testing import tiny_llm

    tokenizer = tiny_llm.qwen_tokenizer(path / "tokenizer", _WORDS)
    vae = _vae(arch)
    with torch.no_grad():
        vae.bn.running_mean.normal_(0.0, 0.3)
        vae.bn.running_var.uniform_(0.5, 2.0)
    pipe = Flux2KleinPipeline(
        scheduler=_scheduler(arch),
        vae=vae,
        text_encoder=tiny_llm.qwen3(tokenizer, arch.llm, causal_lm=True),
        tokenizer=tokenizer,
        transformer=Flux2Transformer2DModel(**arch.transformer),
        is_distilled=arch.family == "flux2-klein",
    )
    return pipe, (), {}


# config keys the real repositories carry beyond what the model classes take: lodestones/Chroma1-HD's transformer says
# it has no guidance embedding, which ChromaInpaintPipeline reads
CONFIG_EXTRAS = {"chroma": {"transformer": {"guidance_embeds": False}}}

# family → the function making its pipeline: (pipe, model_index keys to drop, model_index entries to set)
_LAYOUTS = {
    "sd": _sd,
    "sd-inpaint": _sd_inpaint,
    "sd-turbo": _sd,
    "lcm": _sd,
    "sdxl": _sdxl,
    "sdxl-turbo": _sdxl,
    "sdxl-refiner": _sdxl,
    "sd3": _sd3,
    "flux": _flux,
    "flux-schnell": _flux,
    "flux-fill": _flux_fill,
    "zimage": _zimage,
    "qwen-image": _qwen_image,
    "qwen-image-edit": _qwen_image,
    "chroma": _chroma,
    "flux-kontext": _kontext,
    "flux2-klein": _klein,
    "flux2-klein-base": _klein,
}


def _resolve(arch: str | Architecture, families: tuple[str, ...] = tuple(_LAYOUTS)) -> Architecture:
    """``arch`` as an ``Architecture`` (a name of ``ARCHITECTURES``), checked to be of one of ``families``."""
    if isinstance(arch, str):
        if arch not in ARCHITECTURES:
            raise ValueError(f"arch must be one of {tuple(ARCHITECTURES)} or an Architecture, got {arch!r}")
        arch = ARCHITECTURES[arch]
    if arch.family not in families:
        raise ValueError(f"arch {arch.name!r} is of family {arch.family!r}; this builder makes {families}")
    return arch


def build_checkpoint(
    path: str | Path,
    arch: str | Architecture = "tiny",
    *,
    safety_checker: bool = True,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Build a random-weight checkpoint of ``arch`` in its family's diffusers layout at ``path``; return the path.

    Args:
        path: folder to write (created; an existing checkpoint there is overwritten).
        arch: a name of ``ARCHITECTURES`` (``tiny``, ``tiny-sdxl``, ``tiny-flux`` …) or an ``Architecture``
            (``benchmarks/architectures.py`` passes the real ones).
        safety_checker: include ``safety_checker/`` and ``feature_extractor/`` as the real repository does, where
            the family has one (SD 1.x and LCM; never SD-Turbo, SDXL, SD3 or FLUX).
        seed: seed of the random weights.
        dtype: dtype the weights are saved in.
    """
    arch = _resolve(arch)
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    with _created_in(dtype if arch.create_in_dtype else torch.float32):
        pipe, drop, index_changes = _LAYOUTS[arch.family](path, arch, safety_checker)
    pipe.to(dtype=dtype)
    pipe.save_pretrained(path, safe_serialization=True)
    # make model_index.json read as the real repository's does
    index_path = path / "model_index.json"
    index = json.loads(index_path.read_text())
    for key in drop:
        index.pop(key, None)
    index.update(index_changes)
    index_path.write_text(json.dumps(index, indent=2) + "\n")
    for folder, keys in CONFIG_EXTRAS.get(arch.family, {}).items():
        config_path = path / folder / "config.json"
        config_path.write_text(json.dumps({**json.loads(config_path.read_text()), **keys}, indent=2) + "\n")
    return path


def build_sdxl(
    path: str | Path,
    arch: str | Architecture = "tiny-sdxl",
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    text_2: dict | None = None,
) -> Path:
    """A random-weight SDXL base, SDXL-Turbo or refiner checkpoint laid out as stabilityai's repositories.

    ``text_2`` overrides fields of ``text_encoder_2``'s config (e.g. a width other than ``text_encoder``'s, which
    diffusers' single-file loader needs to tell the two apart, as it can for the real 768 and 1280); the UNet's
    widths follow."""
    arch = _resolve(arch, ("sdxl", "sdxl-turbo", "sdxl-refiner"))
    if text_2:
        arch = dataclasses.replace(arch, text_2={**arch.text_2, **text_2})
    return build_checkpoint(path, arch, seed=seed, dtype=dtype)


def build_sd_turbo(
    path: str | Path, arch: str | Architecture = "tiny-turbo", *, seed: int = 0, dtype: torch.dtype = torch.float32
) -> Path:
    """A random-weight SD-Turbo checkpoint laid out as stabilityai/sd-turbo."""
    return build_checkpoint(path, _resolve(arch, ("sd-turbo",)), seed=seed, dtype=dtype)


def build_lcm(
    path: str | Path, arch: str | Architecture = "tiny-lcm", *, seed: int = 0, dtype: torch.dtype = torch.float32
) -> Path:
    """A random-weight LCM checkpoint laid out as SimianLuo/LCM_Dreamshaper_v7."""
    return build_checkpoint(path, _resolve(arch, ("lcm",)), seed=seed, dtype=dtype)


def build_sd3(
    path: str | Path, arch: str | Architecture = "tiny-sd3", *, seed: int = 0, dtype: torch.dtype = torch.float32
) -> Path:
    """A random-weight SD3/3.5 checkpoint laid out as stabilityai's repositories."""
    return build_checkpoint(path, _resolve(arch, ("sd3",)), seed=seed, dtype=dtype)


def build_flux(
    path: str | Path, arch: str | Architecture = "tiny-flux", *, seed: int = 0, dtype: torch.dtype = torch.float32
) -> Path:
    """A random-weight FLUX.1-dev (guidance embedding) or -schnell checkpoint laid out as black-forest-labs'."""
    return build_checkpoint(path, _resolve(arch, ("flux", "flux-schnell")), seed=seed, dtype=dtype)


def build_taesd(
    path: str | Path,
    arch: str | Architecture = "tiny",
    seed: int = 0,
    latent_channels: int = 4,
    scaling_factor: float = 1.0,
    shift_factor: float = 0.0,
) -> Path:
    """Build a random-weight TAESD (diffusers ``AutoencoderTiny``) folder of ``arch``'s TAESD shape
    (``Architecture.taesd``), like ``madebyollin/taesd`` (16 latent channels and the family's scaling/shift: like
    ``taesd3`` / ``taef1``)."""
    from diffusers import AutoencoderTiny

    shape = _resolve(arch).taesd
    torch.manual_seed(seed)
    model = AutoencoderTiny(
        encoder_block_out_channels=shape["channels"],
        decoder_block_out_channels=shape["channels"],
        num_encoder_blocks=shape["blocks"],
        num_decoder_blocks=shape["blocks"],
        latent_channels=latent_channels,
        scaling_factor=scaling_factor,
        shift_factor=shift_factor,
    )
    model.save_pretrained(path, safe_serialization=True)
    return Path(path)


def build_taesd_for(checkpoint: str | Path, path: str | Path, arch: str | Architecture = "tiny") -> Path:
    """A random TAESD matching ``checkpoint``'s VAE: 4 latent channels (``taesd``/``taesdxl``, which take the
    scaled latents as they are), or 16 with the VAE's scaling and shift (``taesd3``/``taef1``)."""
    vae = json.loads((Path(checkpoint) / "vae" / "config.json").read_text())
    channels = vae.get("latent_channels") or vae["z_dim"]  # Qwen-Image's video VAE names them z_dim
    return build_taesd(
        path,
        arch,
        latent_channels=channels,
        scaling_factor=vae.get("scaling_factor") or 1.0 if channels == 16 else 1.0,
        shift_factor=(vae.get("shift_factor") or 0.0) if channels == 16 else 0.0,
    )


def random_model(name: str, root: str | Path | None = None) -> tuple[Path, Path]:
    """The tiny random checkpoint behind an offline demo name (``random``, ``random-sdxl``, ``random-turbo``,
    ``random-lcm``, ``random-sdxl-turbo``, ``random-sdxl-refiner``, ``random-sd3``, ``random-flux`` …) and a tiny
    TAESD for it, built on first use into ``root`` (default: the demo's cache folder, ``$SD_IMG2IMG_CACHE`` …) and
    reused after.

    Returns ``(checkpoint folder, taesd folder)``.
    """
    if name not in RANDOM_MODELS:
        raise ValueError(f"unknown random model {name!r}; choose one of: {', '.join(RANDOM_MODELS)}")
    if root is None:
        from sd_img2img.cache import cache_dir

        root = cache_dir()
    arch = RANDOM_MODELS[name]
    folder = Path(root) / name
    model, taesd, done = folder / "model", folder / "taesd", folder / ".complete"
    if not done.exists():
        folder.mkdir(parents=True, exist_ok=True)
        build_checkpoint(model, arch)
        build_taesd_for(model, taesd, arch)
        done.write_text(f"built by sd_img2img.testing.tiny.random_model({name!r})\n")
    return model, taesd


def main(argv: list[str] | None = None, architectures: Mapping[str, Architecture] = ARCHITECTURES) -> None:
    """``DIR [--arch NAME] [--taesd DIR2]``: build a checkpoint of one of ``architectures`` (and a TAESD for it)."""
    parser = argparse.ArgumentParser(description="Build a random-weight checkpoint (and a TAESD) in diffusers layout.")
    parser.add_argument("path", help="folder to write")
    parser.add_argument("--arch", choices=tuple(architectures), default=next(iter(architectures)))
    parser.add_argument("--no-safety-checker", action="store_true", help="leave out safety_checker/")
    parser.add_argument("--taesd", metavar="DIR", help="also build a random TAESD decoder in DIR")
    parser.add_argument(
        "--dtype",
        choices=("float32", "float16", "bfloat16"),
        default="float32",
        help="dtype the weights are saved in (16-bit halves the size)",
    )
    args = parser.parse_args(argv)
    arch = architectures[args.arch]
    build_checkpoint(args.path, arch, safety_checker=not args.no_safety_checker, dtype=getattr(torch, args.dtype))
    if args.taesd:
        build_taesd_for(args.path, args.taesd, arch)
    print(args.path)


if __name__ == "__main__":
    main()
