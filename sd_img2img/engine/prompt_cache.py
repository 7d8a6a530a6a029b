"""The prompts' embeddings, kept for the next run with the same prompts (demo visitors repeat prompts).

A Stable Diffusion run starts by putting the prompt (and, with guidance, the negative prompt) through the
text encoder: CLIP ViT-L for SD1.x, OpenCLIP ViT-H (23 layers, 1024 wide) for SD2.x / SD-Turbo. On a 2-vCPU
CPU that is a measurable part of a one-step SD-Turbo run (docs/performance.md, "CPU: what helps"). The
embeddings depend only on the model, the prompts, guidance on/off and the CLIP settings, so an LRU cache of
``encode_prompt``'s results, handed to the pipeline as ``prompt_embeds`` / ``negative_prompt_embeds``, gives
exactly the tensors the pipeline would have computed: the output is unchanged, pixel for pixel.

Only diffusers' own SD pipelines (``StableDiffusionPipeline``, ``StableDiffusionImg2ImgPipeline``) go through
the cache; any other pipeline gets its prompts as text, as before.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

import torch

from sd_img2img.models.loras import format_scales

MAX_ENTRIES = 32  # SD2 embeddings are 77×1024 floats per prompt: 32 pairs are ~20 MB in float32


def cacheable(family, pipe) -> bool:
    """Whether ``pipe`` is one whose ``encode_prompt`` the cache knows: its family's are (``Family.cached_prompts``:
    diffusers' SD pipelines)."""
    return family.cached_prompts and hasattr(pipe, "encode_prompt")


def guidance_on(family, pipe, guidance_scale: float) -> bool:
    """``family.guided`` with what the loaded pipeline adds: an LCM UNet's guidance embedding (``time_cond_proj_dim``)."""
    denoiser = getattr(pipe, family.denoiser, None)
    embedded = getattr(getattr(denoiser, "config", None), "time_cond_proj_dim", None) is not None
    return family.guided(guidance_scale, embedded)


class PromptCache:
    """LRU of ``encode_prompt`` results, keyed by model, dtype, prompt, negative prompt, guidance, clip skip.

    Args:
        max_entries: entries kept; 0 turns the cache off (every run encodes its prompts).
    """

    def __init__(self, max_entries: int = MAX_ENTRIES):
        self.max_entries = max_entries
        self._items: OrderedDict[tuple, tuple[torch.Tensor, torch.Tensor | None]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def model_key(model: str, loras: dict[str, float]) -> str:
        """The model part of a key: the model and the LoRAs that are on (one on the text encoder changes the
        embeddings)."""
        return model + (f"|{format_scales(loras)}" if loras else "")

    @staticmethod
    def key(model: str, pipe, prompt: str, negative_prompt: str, guidance: bool, clip_skip: int | None = None) -> tuple:
        dtype = str(getattr(pipe.text_encoder, "dtype", ""))
        return (model, dtype, prompt, negative_prompt if guidance else "", guidance, clip_skip)

    def __contains__(self, key: tuple) -> bool:
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def embeddings(
        self,
        model: str,
        family,
        pipe,
        prompt: str,
        negative_prompt: str,
        guidance_scale: float,
        clip_skip: int | None = None,
    ) -> tuple[dict[str, Any], float | None]:
        """The pipeline keyword arguments for these prompts, and the seconds spent encoding (None: cached).

        Returns ``prompt_embeds`` / ``negative_prompt_embeds`` for a cacheable pipeline, else ``prompt`` /
        ``negative_prompt`` as text (the pipeline encodes them itself; the seconds are then None).
        """
        if not cacheable(family, pipe) or self.max_entries <= 0:
            return dict(prompt=prompt, negative_prompt=negative_prompt or None), None
        guidance = guidance_on(family, pipe, guidance_scale)
        key = self.key(model, pipe, prompt, negative_prompt, guidance, clip_skip)
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                self.hits += 1
        seconds = None
        if found is None:
            t = time.perf_counter()
            with torch.inference_mode():
                found = pipe.encode_prompt(
                    prompt,
                    pipe._execution_device,
                    1,
                    guidance,
                    negative_prompt=negative_prompt or None,
                    clip_skip=clip_skip,
                )
            seconds = time.perf_counter() - t
            with self._lock:
                self.misses += 1
                self._items[key] = found
                self._items.move_to_end(key)
                while len(self._items) > self.max_entries:
                    self._items.popitem(last=False)
        prompt_embeds, negative_embeds = found
        kwargs: dict[str, Any] = dict(prompt_embeds=prompt_embeds)
        if negative_embeds is not None:
            kwargs["negative_prompt_embeds"] = negative_embeds
        return kwargs, seconds

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
