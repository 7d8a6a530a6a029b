"""What the demo serves without a model (SD-Turbo where the hub answers, else random weights with one line saying why),
the names visitors see models by, and a download's progress as the model badge and the CLI say it."""

from __future__ import annotations

import threading
import time

import pytest
from helpers import copy_slowly

from sd_img2img.config import DEMO_MODEL
from sd_img2img.models.demo_model import choose_demo_model, decide
from sd_img2img.models.download import SPEED_MIN_SECONDS, DownloadProgress, DownloadWatch, format_bytes
from sd_img2img.models.names import display_name, display_names

SD_TURBO_BYTES = 5_208_000_000


def never(repo: str) -> bool:
    return False


def hub_says(size: int):
    def ask(repo: str) -> int:
        assert repo == DEMO_MODEL
        return size

    return ask


def unreachable(repo: str) -> int:
    raise OSError("[Errno -3] Temporary failure in name resolution")


def test_the_hub_reachable_serves_sd_turbo_and_says_the_download():
    choice = decide(DEMO_MODEL, {}, never, hub_says(SD_TURBO_BYTES))
    assert choice.model == "stabilityai/sd-turbo"
    assert choice.note == "no --model given: serving stabilityai/sd-turbo, 5.2 GB to download once"
    assert decide(DEMO_MODEL, {}, never, hub_says(0)) == (type(choice))(DEMO_MODEL, None)  # in the cache already


def test_the_hub_unreachable_or_off_serves_random_weights_saying_why():
    off = decide(DEMO_MODEL, {"HF_HUB_OFFLINE": "1"}, never, hub_says(SD_TURBO_BYTES))
    assert off.model == "random" and "\n" not in off.note
    assert off.note.startswith("no --model given and the hub is off (HF_HUB_OFFLINE=1): serving random weights")
    down = decide(DEMO_MODEL, {}, never, unreachable)
    assert down.model == "random" and "\n" not in down.note
    assert "the hub cannot be reached ([Errno -3] Temporary failure in name resolution)" in down.note
    cached = decide(DEMO_MODEL, {"HF_HUB_OFFLINE": "1"}, lambda repo: True, unreachable)
    assert cached.model == DEMO_MODEL and cached.note is None  # what the cache holds is served offline too


def test_this_machine_offline_chooses_random(monkeypatch):
    """The real cache and the real hub (asked nothing: HF_HUB_OFFLINE is set for the tests)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert choose_demo_model().model == "random"


@pytest.mark.parametrize(
    "source,name",
    [
        ("stabilityai/sd-turbo", "stabilityai/sd-turbo"),
        ("/srv/models/dreamshaper_8.safetensors", "dreamshaper_8"),
        ("/tmp/pytest-1/ckpt0/tiny-sd15/", "tiny-sd15"),
        ("./models/sd15", "sd15"),
        ("~/models/sdxl", "sdxl"),
        ("/home/me/.cache/sd-img2img/random-sdxl/model", "random-sdxl"),
        ("random-flux", "random-flux"),
    ],
)
def test_display_names(source, name):
    assert display_name(source) == name


def test_display_names_stay_apart():
    assert display_names(["/a/model", "/b/model", "owner/x", "/a/model"]) == {
        "model": "/a/model",
        "model-2": "/b/model",
        "owner/x": "owner/x",
    }


def test_progress_says_bytes_of_the_total_and_speed():
    assert format_bytes(5_208_000_000) == "5.2 GB" and format_bytes(335_000_000) == "335 MB"
    assert format_bytes(12_300) == "12.3 KB" and format_bytes(12) == "12 B"
    progress = DownloadProgress(done=1_250_000_000, total=5_208_000_000, speed=38_000_000)
    assert progress.describe() == "1.2 GB of 5.2 GB (24 %) · 38.0 MB/s"
    assert DownloadProgress(done=10, total=None, speed=None).describe() == "10 B"


def test_a_watch_sees_a_real_copy_arrive(tmp_path):
    """A file copied into a hub-cache-like folder in 8 chunks: the watch's bytes grow to the total, its speed is
    the bytes over the time they took, and what was there before the watch does not count."""
    blobs = tmp_path / "models--owner--name" / "blobs"
    blobs.mkdir(parents=True)
    (blobs / "old").write_bytes(b"x" * 100_000)  # cached before: not part of this download
    data = bytes(range(256)) * 4096  # 1 MiB
    watch = DownloadWatch(tmp_path / "models--owner--name", total=len(data))
    copier = threading.Thread(target=copy_slowly, args=(data, blobs / "abc.incomplete", 8, 0.05))
    copier.start()
    seen = []
    while copier.is_alive():
        seen.append(watch.progress())
        time.sleep(0.02)
    copier.join()
    last = watch.progress()
    assert last.done == len(data) and last.total == len(data)
    assert last.describe().startswith("1.0 MB of 1.0 MB (100 %)")
    done = [p.done for p in seen]
    assert done == sorted(done) and 0 < done[len(done) // 2] < len(data)  # it grew as the chunks came
    speeds = [p.speed for p in seen if p.speed]
    # bytes over the time they took (8 chunks 50 ms apart), and none said over less than SPEED_MIN_SECONDS
    assert speeds and max(speeds) <= len(data) / SPEED_MIN_SECONDS and seen[0].speed is None
