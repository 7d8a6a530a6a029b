"""Which model the demo serves when none is given: SD-Turbo from the hub where the hub answers (or it is in the
cache already), else the tiny random-weight model, with one line saying why.

    choice = choose_demo_model()
    choice.model   # "stabilityai/sd-turbo" or "random"
    choice.note    # e.g. "no --model given and the hub is off (HF_HUB_OFFLINE=1): serving random weights …"

The decision is ``decide`` (the environment, what the cache holds and what the hub answered, given), so it is
tested without a network; ``choose_demo_model`` asks the real cache and hub.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from sd_img2img.config import DEMO_MODEL, HUB_PROBE_SECONDS
from sd_img2img.models.download import download_size, format_bytes

RANDOM = "random"
TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True)
class ModelChoice:
    """The demo's model, and one line saying why (None: nothing to say)."""

    model: str
    note: str | None = None


def hub_off(environ: Mapping[str, str]) -> bool:
    """``HF_HUB_OFFLINE`` (huggingface_hub's switch) is set."""
    return environ.get("HF_HUB_OFFLINE", "").strip().lower() in TRUE


def in_cache(repo: str) -> bool:
    """``repo``'s pipeline is in the local hub cache (its ``model_index.json`` and its weights: nothing to fetch)."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, "model_index.json")
    return isinstance(found, str) and any(p.suffix == ".safetensors" for p in Path(found).parent.rglob("*"))


def ask_hub(repo: str) -> int:
    """The bytes serving ``repo`` will download; raises why the hub cannot be asked."""
    return download_size(repo, timeout=HUB_PROBE_SECONDS)


def decide(
    repo: str, environ: Mapping[str, str], cached: Callable[[str], bool], ask: Callable[[str], int]
) -> ModelChoice:
    """The demo's model when none is given.

    Args:
        repo: the real model it would serve (``config.DEMO_MODEL``).
        environ: where ``HF_HUB_OFFLINE`` is read.
        cached: whether ``repo`` is in the local cache (then it is served, the hub asked nothing).
        ask: the bytes ``repo`` will download, or an exception saying why the hub cannot be asked.
    """
    if cached(repo):
        return ModelChoice(repo)
    if hub_off(environ):
        return ModelChoice(
            RANDOM,
            f"no --model given and the hub is off (HF_HUB_OFFLINE={environ['HF_HUB_OFFLINE']}): serving random "
            f"weights (pictures are noise); unset it to fetch {repo}, or give --model",
        )
    try:
        size = ask(repo)
    except Exception as e:  # unreachable, a proxy refusing, a timeout: the page still comes up, offline
        why = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        return ModelChoice(
            RANDOM,
            f"no --model given and the hub cannot be reached ({why}): serving random weights (pictures are noise); "
            "give --model for a real one",
        )
    return ModelChoice(
        repo, f"no --model given: serving {repo}, {format_bytes(size)} to download once" if size else None
    )


def choose_demo_model(environ: Mapping[str, str] | None = None) -> ModelChoice:
    """``decide`` with this process's environment, the real hub cache and the real hub."""
    return decide(DEMO_MODEL, os.environ if environ is None else environ, in_cache, ask_hub)
