"""A hub model's download, said as it goes: its size before it starts, then the bytes so far of the total and the
speed, for the model badge and the CLI's stderr instead of a bare "loading".

    fetch("stabilityai/sd-turbo")            # what loading it needs, into the hub cache (nothing when cached)
    progress_of("stabilityai/sd-turbo")      # DownloadProgress(done=…, total=…, speed=…) while it downloads, else None
    progress.describe()                      # "1.2 GB of 5.2 GB (23 %) · 38.0 MB/s"

The files are huggingface_hub's ``snapshot_download`` of the folders a diffusers pipeline loads (its configs, tokenizers
and safetensors weights, no fp16/bf16 variants, as ``from_pretrained(..., use_safetensors=True)`` takes them), sized
first by a dry run of the same call; diffusers then finds them in the cache. The progress is the bytes arriving in
the repository's cache folder (``DownloadWatch``), whichever transfer huggingface_hub uses (plain HTTP or Xet).
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sd_img2img.config import HUB_PROBE_SECONDS

# what a diffusers pipeline's from_pretrained(use_safetensors=True) reads from a hub repository
WANTED = ["model_index.json", "*/*.json", "*/*.txt", "*/*.model", "*/*.safetensors"]
SKIPPED = ["*.fp16.*", "*.bf16.*", "*.fp32.*", "*.fp16-*", "*.bf16-*", "*.non_ema.*", "*.ema.*", "*.onnx*"]
SPEED_WINDOW_SECONDS = 5.0  # the speed is the bytes of about this long, over that time …
SPEED_MIN_SECONDS = 0.2  # … and none is said before this long has passed (a first burst is not a speed)

_ACTIVE: dict[str, DownloadWatch] = {}  # repository → its download in progress
_LOCK = threading.Lock()


def format_bytes(n: float) -> str:
    """``5.2 GB``, ``335 MB``, ``12 KB`` (decimal units, as the hub shows sizes)."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= size:
            value = n / size
            return f"{value:.1f} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return f"{int(n)} B"


@dataclass(frozen=True)
class DownloadProgress:
    """Where a download is: bytes done, of the total (None when unknown), at a speed in bytes a second."""

    done: int
    total: int | None
    speed: float | None

    def describe(self) -> str:
        """``1.2 GB of 5.2 GB (23 %) · 38.0 MB/s``; without a total ``1.2 GB``, without a speed no ``· …/s``."""
        text = format_bytes(self.done)
        if self.total:
            done = min(self.done, self.total)
            text = f"{format_bytes(done)} of {format_bytes(self.total)} ({100 * done / self.total:.0f} %)"
        return text + (f" · {format_bytes(self.speed)}/s" if self.speed else "")


def folder_bytes(folder: Path) -> int:
    """The bytes the files under ``folder`` hold on disk (a file being written counts what is written so far:
    allocated blocks where the system says them, so a pre-sized file does not count as done)."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                st = os.stat(os.path.join(root, name))
            except OSError:  # renamed away as it finished
                continue
            blocks = getattr(st, "st_blocks", None)
            total += min(st.st_size, blocks * 512) if blocks is not None else st.st_size
    return total


class DownloadWatch:
    """The bytes arriving under ``folder`` since the watch began, and how fast.

    Args:
        folder: where the download writes (the hub cache's folder of one repository).
        total: the bytes it will write (None: unknown).
        clock: seconds, for the speed (``time.monotonic``).
    """

    def __init__(self, folder: Path, total: int | None, clock: Callable[[], float] = time.monotonic):
        self.folder = Path(folder)
        self.total = total
        self.clock = clock
        self.start_bytes = folder_bytes(self.folder) if self.folder.exists() else 0
        self._samples: deque[tuple[float, int]] = deque([(clock(), 0)])
        self._lock = threading.Lock()

    def progress(self) -> DownloadProgress:
        """The bytes written since the watch began (of ``total``) and the speed over the last few seconds."""
        now = self.clock()
        done = max(0, (folder_bytes(self.folder) if self.folder.exists() else 0) - self.start_bytes)
        with self._lock:
            self._samples.append((now, done))
            while len(self._samples) > 2 and now - self._samples[1][0] >= SPEED_WINDOW_SECONDS:
                self._samples.popleft()
            then, before = self._samples[0]
        speed = (done - before) / (now - then) if now - then >= SPEED_MIN_SECONDS else None
        return DownloadProgress(done, self.total, speed)


def repo_folder(repo: str) -> Path:
    """The hub cache's folder of the model repository ``repo`` (``…/hub/models--owner--name``)."""
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    return Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=repo, repo_type="model")


def _silent_bars():
    """huggingface_hub's progress bars, drawn nowhere: the page and the CLI say the progress their own way."""
    from huggingface_hub.utils import tqdm as hf_tqdm

    class Silent(hf_tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return Silent


def download_size(repo: str, timeout: float | None = None) -> int:
    """The bytes loading ``repo`` still has to download (0: all cached); raises what the hub raises when it cannot be
    asked (offline, unreachable, not found), after ``timeout`` seconds at most for its first answer."""
    from huggingface_hub import HfApi, snapshot_download

    HfApi().model_info(repo, timeout=timeout)  # answers quickly, or says why not
    plan = snapshot_download(repo, allow_patterns=WANTED, ignore_patterns=SKIPPED, dry_run=True)
    return sum(f.file_size or 0 for f in plan if f.will_download)


def fetch(repo: str, say: Callable[[str], None] | None = None) -> None:
    """Download what loading the hub model ``repo`` needs into the hub cache, watched (``progress_of``) while it
    runs. Nothing happens when it is cached, or when the hub cannot be asked: diffusers' own load then uses the cache
    or says what is wrong.

    Args:
        repo: a hub id (``owner/name``).
        say: told one line before a download starts (``stabilityai/sd-turbo: downloading 5.2 GB …``).
    """
    from huggingface_hub import snapshot_download

    try:
        total = download_size(repo, timeout=HUB_PROBE_SECONDS)
    except Exception:  # offline, unreachable, gated, not a diffusers repo: from_pretrained says it better
        return
    if total == 0:
        return
    if say is not None:
        say(f"{repo}: downloading {format_bytes(total)} from the Hugging Face hub (once; then it loads from the cache)")
    watching(repo, DownloadWatch(repo_folder(repo), total))
    try:
        snapshot_download(repo, allow_patterns=WANTED, ignore_patterns=SKIPPED, tqdm_class=_silent_bars())
    except Exception:  # a broken download: from_pretrained tries again and says why it cannot
        return
    finally:
        watching(repo, None)


def report(repos, write: Callable[[str], None], stop: threading.Event, every: float = 2.0) -> threading.Thread:
    """A thread that writes one line per ``every`` seconds for each of ``repos`` downloading
    (``sd-img2img: downloading stabilityai/sd-turbo: 1.2 GB of 5.2 GB (23 %) · 38.0 MB/s``) until ``stop`` is set."""

    def run():
        while not stop.wait(every):
            for repo in repos:
                progress = progress_of(repo)
                if progress is not None:
                    write(f"sd-img2img: downloading {repo}: {progress.describe()}")

    thread = threading.Thread(target=run, name="sd-img2img-download-report", daemon=True)
    thread.start()
    return thread


def watching(repo: str, watch: DownloadWatch | None) -> None:
    """Make ``watch`` the download of ``repo`` that ``progress_of`` reports (None: none)."""
    with _LOCK:
        if watch is None:
            _ACTIVE.pop(repo, None)
        else:
            _ACTIVE[repo] = watch


def progress_of(repo: str) -> DownloadProgress | None:
    """How the download of ``repo`` is going, while one runs (None otherwise)."""
    with _LOCK:
        watch = _ACTIVE.get(repo)
    return watch.progress() if watch is not None else None
