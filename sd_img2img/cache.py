"""Where the program keeps what it makes once and reuses: the offline demo's checkpoints, the model hashes."""

from __future__ import annotations

import os
from pathlib import Path

ENV = "SD_IMG2IMG_CACHE"


def cache_dir(environ: dict[str, str] | None = None) -> Path:
    """``$SD_IMG2IMG_CACHE``, else ``$XDG_CACHE_HOME/sd-img2img``, else ``~/.cache/sd-img2img``."""
    environ = os.environ if environ is None else environ
    if environ.get(ENV):
        return Path(environ[ENV])
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sd-img2img"
