"""Qwen-Image-Edit's reference-image processor without torchvision.

The pipeline's ``processor/`` is transformers' ``Qwen2VLProcessor``: an image processor, the tokenizer, and a video
processor. transformers 5.x builds the video processor (and the default image processor) on torchvision, so where
torchvision is not installed — a CPU-only torch, whose PyPI torchvision wheels do not load beside it — the pipeline
cannot even be constructed, although it never processes a video. ``image_only_processor`` builds the same processor
from the checkpoint's own ``processor/`` files with transformers' PIL image processor (``Qwen2VLImageProcessorPil``,
the fallback transformers itself uses for its other image processors) and no video processor; diffusers' pipeline
takes it as its ``processor`` component. Where torchvision is installed, the checkpoint's own processor loads as is.
"""

from __future__ import annotations

import importlib.util
from typing import Any


def has_torchvision() -> bool:
    return importlib.util.find_spec("torchvision") is not None


def image_only_processor(source: str, subfolder: str = "processor") -> Any:
    """The checkpoint's ``Qwen2VLProcessor`` for images only, from ``source`` (a folder or hub id) ``/processor``."""
    from transformers import AutoTokenizer, Qwen2VLProcessor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
    from transformers.processing_utils import ProcessorMixin

    class ImageOnlyQwen2VLProcessor(Qwen2VLProcessor):
        """``Qwen2VLProcessor`` with an image processor and a tokenizer, and no video processor."""

        def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
            self.image_token = getattr(tokenizer, "image_token", "<|image_pad|>")
            self.video_token = getattr(tokenizer, "video_token", "<|video_pad|>")
            self.image_token_id = getattr(tokenizer, "image_token_id", None) or tokenizer.convert_tokens_to_ids(
                self.image_token
            )
            self.video_token_id = getattr(tokenizer, "video_token_id", None) or tokenizer.convert_tokens_to_ids(
                self.video_token
            )
            ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)

    images = Qwen2VLImageProcessorPil.from_pretrained(source, subfolder=subfolder)
    tokenizer = AutoTokenizer.from_pretrained(source, subfolder=subfolder)
    return ImageOnlyQwen2VLProcessor(image_processor=images, tokenizer=tokenizer)
