"""The language-model parts of the tiny checkpoints of Z-Image, Qwen-Image(-Edit) and FLUX.2 Klein, made locally.

Those families read prompts with a Qwen language model (Qwen3 for Z-Image and Klein, Qwen2.5-VL for Qwen-Image),
through Qwen's byte-level BPE tokenizer and its chat template; diffusers' own tests fetch both from
``hf-internal-testing``, which cannot be reached here. ``qwen_tokenizer`` writes one over a handful of words, with
Qwen's special tokens and a chat template that renders what the pipelines ask of it (a user turn, the assistant's
opening, Qwen3's empty ``<think>`` block when thinking is off, an image placeholder for Qwen-Image-Edit), saved as the
hub repositories store ``Qwen2Tokenizer``. ``qwen3`` and ``qwen25_vl`` make the text encoders on that vocabulary;
``write_processor`` lays out Qwen-Image-Edit's ``processor/`` folder (tokenizer, image and video processor configs)
as the hub repository does, without building transformers' ``Qwen2VLProcessor``, which needs torchvision.
"""

from __future__ import annotations

import json
from pathlib import Path

# Qwen's special tokens (names as in Qwen2.5 / Qwen3's tokenizer), in the order they are added after the vocabulary
SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<think>",
    "</think>",
)
# what the pipelines render: a user turn (text, or an image placeholder and text), then the assistant's opening;
# enable_thinking=False (FLUX.2 Klein) adds Qwen3's empty thinking block, as Qwen3's own template does
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string %}{{- message['content'] }}"
    "{%- else %}{%- for part in message['content'] %}"
    "{%- if part['type'] == 'image' %}{{- '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{%- elif part['type'] == 'text' %}{{- part['text'] }}{%- endif %}"
    "{%- endfor %}{%- endif %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- endif %}"
)


def qwen_tokenizer(path: Path, words: tuple[str, ...]):
    """A Qwen2-style byte-level BPE tokenizer over every byte plus ``words`` (each one token after a space, ``Ġ``), with
    Qwen's special tokens and ``CHAT_TEMPLATE``, saved at ``path`` as ``Qwen2Tokenizer`` (``tokenizer.json``)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import Qwen2TokenizerFast
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    vocab = {c: i for i, c in enumerate(bytes_to_unicode().values())}
    merges: list[tuple[str, str]] = []
    for word in words:
        current, rest = "Ġ", word  # Ġ: the byte-level space
        for ch in rest:
            if (current, ch) not in merges:
                merges.append((current, ch))
            current += ch
            vocab.setdefault(current, len(vocab))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    tokenizer = Qwen2TokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        bos_token=None,
        model_max_length=32768,
        chat_template=CHAT_TEMPLATE,
    )
    path.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(path)
    return tokenizer


def qwen3(tokenizer, cfg: dict, causal_lm: bool = False):
    """A Qwen3 text encoder (``Qwen3Model``; Klein's ``Qwen3ForCausalLM``) on ``tokenizer``'s vocabulary."""
    from transformers import Qwen3Config, Qwen3ForCausalLM, Qwen3Model

    config = Qwen3Config(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **cfg)
    return (Qwen3ForCausalLM if causal_lm else Qwen3Model)(config)


def vision_token_ids(tokenizer) -> dict[str, int]:
    """The ids Qwen2.5-VL's config names its vision tokens by, in ``tokenizer``'s vocabulary."""
    ids = tokenizer.convert_tokens_to_ids
    return dict(
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
    )


def qwen25_vl(tokenizer, text: dict, vision: dict):
    """Qwen-Image's text encoder, ``Qwen2_5_VLForConditionalGeneration``, on ``tokenizer``'s vocabulary."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    text = dict(text, vocab_size=len(tokenizer))
    config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, **vision_token_ids(tokenizer))
    return Qwen2_5_VLForConditionalGeneration(config)


def write_processor(path: Path, tokenizer, vision: dict) -> None:
    """Qwen-Image-Edit's ``processor/`` folder as the hub repository lays it out: the tokenizer with its chat template,
    ``preprocessor_config.json`` (``Qwen2VLImageProcessor``) and ``video_preprocessor_config.json``, for
    ``Qwen2VLProcessor.from_pretrained``."""
    tokenizer.save_pretrained(path)
    patch, merge, temporal = vision["patch_size"], vision["spatial_merge_size"], vision["temporal_patch_size"]
    common = dict(
        do_convert_rgb=True,
        do_normalize=True,
        do_rescale=True,
        do_resize=True,
        image_mean=[0.48145466, 0.4578275, 0.40821073],
        image_std=[0.26862954, 0.26130258, 0.27577711],
        rescale_factor=1 / 255,
        patch_size=patch,
        merge_size=merge,
        temporal_patch_size=temporal,
        min_pixels=3136,
        max_pixels=12845056,
    )
    (path / "preprocessor_config.json").write_text(
        json.dumps(dict(common, image_processor_type="Qwen2VLImageProcessor", processor_class="Qwen2VLProcessor"))
    )
    (path / "video_preprocessor_config.json").write_text(
        json.dumps(dict(common, video_processor_type="Qwen2VLVideoProcessor", processor_class="Qwen2VLProcessor"))
    )
