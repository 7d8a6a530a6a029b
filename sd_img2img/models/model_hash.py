"""The short model hash that AUTOMATIC1111-style ``Model hash:`` fields carry.

AUTOMATIC1111's short hash is the first 10 hex digits of the sha256 of the checkpoint file. A diffusers
folder has no single checkpoint file, so here the hash of a folder is defined as the first 10 hex digits of
the sha256 of the UNet weights it loads — ``unet/diffusion_pytorch_model.safetensors``, or the shards named in
``unet/diffusion_pytorch_model.safetensors.index.json`` read one after the other in name order. A single
``.safetensors`` file hashes exactly as AUTOMATIC1111 hashes it.

A file in the Hugging Face hub cache is not read at all: its snapshot entry links to ``blobs/<name>``, and
huggingface_hub names the blob of an LFS file (every weights file) by the sha256 of its content, the ETag the hub
serves (its ``REGEX_SHA256`` check: a 64-hex ETag is an LFS file's sha256). So a UNet reached through a hub id, or a
snapshot folder given as a path, hashes by that name. Only a single weights file does (the hash of shards is
the sha256 of their concatenation, which their names do not give), and only a link into a ``models--*/blobs/``
folder named by 64 hex digits (small files' blobs carry git's 40-digit sha1; a cache without symlinks, as on
Windows without developer mode, holds copies): anything else is read. The name is trusted as huggingface_hub
trusts it.

Hashing reads gigabytes, so it is done only when asked for and remembered per file (path, size and
modification time): in the process, and on disk in ``<cache>/model-hashes.json`` (``cache.cache_dir``), as
AUTOMATIC1111 keeps its ``cache.json``, so that a command run again does not read the weights again. The PNG
writer (``metadata.save_png``) never calls this: whoever has the model at hand puts the result in the settings
as ``model_hash``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from pathlib import Path

HASH_CHARS = 10
UNET_WEIGHTS = "unet/diffusion_pytorch_model.safetensors"
UNET_INDEX = "unet/diffusion_pytorch_model.safetensors.index.json"
_CHUNK = 1 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")


def weight_files(model: str | os.PathLike) -> list[Path]:
    """The files whose bytes make up ``model``'s hash, in hashing order; empty if there are none.

    Args:
        model: a local diffusers folder, a single ``.safetensors`` file, or a Hugging Face hub id already in
            the local cache (nothing is downloaded).
    """
    path = Path(model).expanduser()
    if path.is_file():
        return [path] if path.suffix == ".safetensors" else []
    if not path.is_dir():
        path = _cached_snapshot(str(model))
        if path is None:
            return []
    single = path / UNET_WEIGHTS
    if single.is_file():
        return [single]
    index = path / UNET_INDEX
    if not index.is_file():
        return []
    try:
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return []
    files = [index.parent / name for name in shards if isinstance(name, str)]
    return files if files and all(f.is_file() and f.parent == index.parent for f in files) else []


def model_hash(model: str | os.PathLike) -> str | None:
    """AUTOMATIC1111-style short hash of ``model`` (10 hex digits), or ``None`` if its weights are not at hand.

    Args:
        model: a local diffusers folder, a single ``.safetensors`` file, or a hub id in the local cache.
    """
    files = weight_files(model)
    if not files:
        return None
    named = hub_blob_sha256(files)
    if named is not None:
        return named[:HASH_CHARS]
    try:
        stamps = tuple((str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
        return _hash_files(stamps)
    except OSError:
        return None


def hub_blob_sha256(files: list[Path]) -> str | None:
    """The sha256 of a single weights file in the hub cache, from the name of the blob it links to; None for
    anything else (shards, a file outside the cache, a blob not named by a sha256).

    Args:
        files: what ``weight_files`` returned.
    """
    if len(files) != 1 or not files[0].is_symlink():
        return None
    try:
        blob = files[0].resolve(strict=True)
    except OSError:
        return None
    in_cache = blob.parent.name == "blobs" and blob.parent.parent.name.startswith("models--")
    return blob.name if in_cache and _SHA256.fullmatch(blob.name) else None


@functools.lru_cache(maxsize=16)
def _hash_files(stamps: tuple[tuple[str, int, int], ...]) -> str:
    key = json.dumps(stamps)
    known = _disk_cache()
    if isinstance(known.get(key), str):
        return known[key][:HASH_CHARS]
    digest = hashlib.sha256()
    for name, _, _ in stamps:
        with open(name, "rb") as f:
            while block := f.read(_CHUNK):
                digest.update(block)
    _remember(key, digest.hexdigest())
    return digest.hexdigest()[:HASH_CHARS]


def _cache_file() -> Path:
    from sd_img2img.cache import cache_dir

    return cache_dir() / "model-hashes.json"


def _disk_cache() -> dict:
    try:
        known = json.loads(_cache_file().read_text())
    except (OSError, ValueError):
        return {}
    return known if isinstance(known, dict) else {}


def _remember(key: str, full_hash: str) -> None:
    """Add a hash to the disk cache (written whole to a temporary file, then renamed over the old one)."""
    path = _cache_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        known = _disk_cache()
        known[key] = full_hash
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(known))
        tmp.replace(path)
    except OSError:  # a read-only cache only costs the next process a re-hash
        pass


def _cached_snapshot(repo_id: str) -> Path | None:
    """The local snapshot folder of a hub id whose UNet weights are already cached, without any download."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        found = try_to_load_from_cache(repo_id, UNET_WEIGHTS)
    except Exception:  # an id the hub library rejects is simply not in the cache
        return None
    return Path(found).parent.parent if isinstance(found, str) else None
