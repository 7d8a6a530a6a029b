"""The page as it starts: no --model and the hub off (random weights, one line saying why, on stderr and on the page),
and a model being downloaded (its bytes of the total and speed in the badge, not just "loading")."""

from __future__ import annotations

import threading

from helpers import copy_slowly


def intro_html(demo) -> str:
    return next(
        c["props"]["value"] for c in demo.config["components"] if "intro" in (c["props"].get("elem_classes") or [])
    )


def test_no_model_and_the_hub_off_serves_random_weights_saying_why(capsys, engine, monkeypatch):
    from sd_img2img.settings import parse_settings
    from sd_img2img.ui import app

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    settings = app.with_demo_model(parse_settings([], {}), "sd-img2img serve")
    assert settings.models == ("random",)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("sd-img2img serve: no --model given and the hub is off")
    assert "serving random weights" in settings.note
    page = intro_html(app.build_demo(engine, settings))
    assert '<div class="model-note" role="note">no --model given and the hub is off' in page
    given = app.with_demo_model(parse_settings(["--model", "random-sdxl"], {}), "x")
    assert given.models == ("random-sdxl",) and given.note is None and capsys.readouterr().err == ""


def test_the_badge_says_a_download_s_progress(tiny_checkpoint, tmp_path):
    from sd_img2img.engine import Engine
    from sd_img2img.engine.backend import LocalBackend
    from sd_img2img.models import download
    from sd_img2img.settings import AppSettings
    from sd_img2img.ui import app

    engine = Engine(str(tiny_checkpoint), device="cpu", dtype="float32")
    backend = LocalBackend(engine)
    folder = tmp_path / "models--owner--tiny" / "blobs"
    folder.mkdir(parents=True)
    data = b"\0\1" * 400_000
    watch = download.DownloadWatch(folder.parent, total=len(data))
    download.watching(engine.model, watch)  # what fetch() does while huggingface_hub writes the files
    try:
        with engine._load_lock:  # the background load waits here: the model "downloads" as long as the test says
            demo = app.build_demo(backend.start(), AppSettings())
            copier = threading.Thread(target=copy_slowly, args=(data, folder / "x.incomplete", 4, 0.05))
            copier.start()
            copier.join()
            badge, timer = demo.handlers.models.model_badge()
            assert timer.active is True
            assert f"Downloading the model · {tiny_checkpoint.name} · SD · 800 KB of 800 KB (100 %) · " in badge
            assert "/s" in badge  # and how fast
    finally:
        download.watching(engine.model, None)
    assert backend.wait(60)
    assert "Model ready" in demo.handlers.models.model_badge()[0]
