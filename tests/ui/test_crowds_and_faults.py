"""Many users, bad input, faults and hostile requests against the real app on loopback (tiny random checkpoint)."""

from __future__ import annotations

import io
import re
import struct
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from appserver import ROOT, serve
from PIL import Image

from sd_img2img.engine import GenerationRequest

FIREPLACE = str(ROOT / "examples" / "fireplace.png")


@pytest.fixture(scope="module")
def url(engine):
    with serve(engine) as u:
        yield u


def client_for(url):
    from gradio_client import Client

    # download_files=False: gradio_client would otherwise download the whole gallery again at every streamed step
    return Client(url, verbose=False, download_files=False)


def submit(client, image=FIREPLACE, **kw):
    from gradio_client import handle_file

    args = dict(
        image=handle_file(image) if image else None,
        prompt="fire",
        negative_prompt="",
        strength=0.7,
        steps=6,
        seed=7,
        width=64,
        height=64,
    )
    args.update(kw)
    return client.submit(**args, api_name="/img2img")


def fetch(url: str, file: dict) -> bytes:
    """The bytes of a file the app handed back (a FileData dict), fetched over HTTP as a browser would."""
    status, body = get(file["url"] if file.get("url") else url.rstrip("/") + "/gradio_api/file=" + file["path"])
    assert status == 200
    return body


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


# -- 1. concurrency ---------------------------------------------------------------------------------------

SETTINGS = [  # eight clients, each with its own strength, step count, sampler and seed
    dict(strength=0.3, steps=10, sampler="k_lms", seed=1),
    dict(strength=0.5, steps=8, sampler="k_euler_a", seed=2),
    dict(strength=0.7, steps=10, sampler="ddim", seed=3),
    dict(strength=1.0, steps=5, sampler="plms", seed=4),
    dict(strength=0.6, steps=7, sampler="dpmpp_2m", seed=5),
    dict(strength=0.9, steps=6, sampler="k_heun", seed=6),
    dict(strength=0.4, steps=12, sampler="k_dpm_2_a", seed=7),
    dict(strength=0.8, steps=9, sampler="k_euler", seed=8),
]


def test_eight_clients_at_once_get_what_they_get_alone(url, engine):
    alone = [
        engine.generate(GenerationRequest(prompt="fire", init_image=FIREPLACE, width=64, height=64, **s))
        for s in SETTINGS
    ]
    results: list = [None] * len(SETTINGS)
    start = threading.Barrier(len(SETTINGS))

    def one(k: int) -> None:
        client = client_for(url)
        start.wait()
        results[k] = submit(client, **SETTINGS[k]).result()

    threads = [threading.Thread(target=one, args=(k,)) for k in range(len(SETTINGS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    for k, (expected, got) in enumerate(zip(alone, results)):
        assert got is not None, f"client {k} got no answer"
        output, gallery, info = got[0], got[1], got[2]
        assert info["seed"] == SETTINGS[k]["seed"] and info["sampler"] == SETTINGS[k]["sampler"]
        assert info["steps_taken"] == expected.steps_taken and len(gallery) == expected.steps_taken + 1
        served = np.asarray(Image.open(io.BytesIO(fetch(url, output))).convert("RGB"))
        assert np.array_equal(served, np.asarray(expected.output)), f"client {k} got another image"


def test_a_full_queue_says_busy_try_again(engine):
    from gradio_client.exceptions import AppError

    with serve(engine, queue_size=1) as u:
        jobs = [submit(client_for(u), steps=20, strength=1.0, seed=k) for k in range(4)]
        outcomes = []
        for job in jobs:
            try:
                job.result()
                outcomes.append("served")
            except (AppError, Exception) as e:  # gradio_client raises QueueError for a full queue
                outcomes.append(str(e))
        busy = [o for o in outcomes if o != "served"]
        assert busy and all("Queue is full" in o and "try again" in o for o in busy), outcomes
        assert "served" in outcomes
        # and once it drains, the next visitor is served
        assert submit(client_for(u), steps=2, strength=1.0).result()[2]["steps_taken"] == 2


def leave_mid_run(url, engine, monkeypatch) -> tuple[dict, float, list]:
    """A visitor leaves during a long run while another waits behind it: the waiting visitor's run info, the seconds
    it waited once the first left, and the served engine's results (the server runs in this process)."""
    runs = []
    generate = engine.generate

    def recorded(*args, **kwargs):
        result = generate(*args, **kwargs)
        runs.append(result)
        return result

    monkeypatch.setattr(engine, "generate", recorded)
    leaver, stayer = client_for(url), client_for(url)
    long_job = submit(leaver, steps=150, strength=1.0)
    while not long_job.outputs() or len(long_job.outputs()[-1][1] or []) < 3:
        assert not long_job.done()
        time.sleep(0.02)
    waiting = submit(stayer, steps=4, strength=1.0, seed=99)  # queued behind the long run
    time.sleep(0.2)
    leaver.close()  # the visitor closes the tab: gradio cancels its job, the engine stops between steps
    long_job.cancel()
    t = time.perf_counter()
    info = waiting.result(timeout=120)[2]
    return info, time.perf_counter() - t, runs


def test_a_client_that_goes_away_frees_the_model_and_others_go_on(url, engine, monkeypatch):
    info, _, runs = leave_mid_run(url, engine, monkeypatch)
    assert info["steps_taken"] == 4 and info["seed"] == 99
    left, served = runs
    assert left.stopped and left.steps_taken < 100  # it did not hold the model for its other ~140 steps
    assert served.seed == 99 and served.steps_taken == 4


@pytest.mark.slow
def test_the_next_visitor_is_served_soon_after_one_leaves(url, engine, monkeypatch):
    _, waited, _ = leave_mid_run(url, engine, monkeypatch)
    assert waited < 20  # the long run alone takes about half a minute on 2 busy cores


# -- 2. faults ----------------------------------------------------------------------------------------------


def test_out_of_memory_in_a_step_is_explained_and_the_next_request_succeeds(url, engine):
    from gradio_client.exceptions import AppError

    calls = []

    def fail_on_second_step(module, args):
        calls.append(1)
        if len(calls) == 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    handle = engine.loaded.img2img.unet.register_forward_pre_hook(fail_on_second_step)
    try:
        client = client_for(url)
        with pytest.raises(
            AppError, match=r"out of memory on cpu at 64×64; lower width/height or steps, .*--offload model"
        ):
            submit(client, steps=6, strength=1.0).result()
        assert submit(client, steps=3, strength=1.0).result()[2]["steps_taken"] == 3
    finally:
        handle.remove()
    assert len(calls) == 2 + 3  # the failed run stopped at its failing step; the next ran all of its own


def test_nan_latents_are_a_message_not_a_black_image(tiny_checkpoint):
    from gradio_client.exceptions import AppError

    from sd_img2img.engine import Engine

    broken = Engine(str(tiny_checkpoint), device="cpu", dtype="float32")
    with torch.no_grad():
        broken.loaded.img2img.unet.conv_out.bias.fill_(float("nan"))
    with serve(broken) as u:
        client = client_for(u)
        message = r"the run produced NaN/inf values at step 1 \(dtype float32\); try --dtype float32 or another seed"
        with pytest.raises(AppError, match=message):
            submit(client, steps=4, strength=1.0).result()
        with pytest.raises(AppError, match=message):  # and again: the server keeps answering
            submit(client, steps=2, strength=1.0).result()


def test_a_model_that_fails_to_load_is_reported_without_a_crash_loop(tmp_path):
    from gradio_client.exceptions import AppError

    from sd_img2img.engine import Engine

    with serve(Engine(str(tmp_path), device="cpu", dtype="float32")) as u:
        client = client_for(u)
        for _ in range(2):
            with pytest.raises(AppError, match="has no model_index.json"):
                submit(client).result()
        status, page = get(u)
        assert status == 200 and b"sd-img2img" in page


# -- 3. bad input -------------------------------------------------------------------------------------------


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def decompression_bomb(path: Path, side: int = 20000) -> Path:
    """A real, valid 1-bit PNG of side×side pixels (400 megapixels) that is only tens of kB on disk."""
    row = b"\x00" + b"\x00" * (side // 8)
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(row * side, 9))
        + png_chunk(b"IEND", b"")
    )
    return path


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("notes.png", b"this is text, not pixels", "not an image"),
        ("drawing.svg", b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>", "not an image"),
        ("page.html", b"<html><script>fetch('/etc/passwd')</script></html>", "not an image"),
    ],
)
def test_files_that_are_not_images(url, tmp_path, name, content, message):
    from gradio_client.exceptions import AppError

    path = tmp_path / name
    path.write_bytes(content)
    client = client_for(url)
    with pytest.raises(AppError, match=message) as refused:
        submit(client, image=str(path)).result()
    # the file is named as the visitor named it, not by the server's upload folder (/tmp/gradio/<hash>/…)
    assert f"'{name}'" in str(refused.value) and "/tmp" not in str(refused.value) and "gradio" not in str(refused.value)
    assert submit(client, steps=2, strength=1.0).result()[2]["steps_taken"] == 2


def test_decompression_bomb(url, tmp_path):
    from gradio_client.exceptions import AppError

    bomb = decompression_bomb(tmp_path / "bomb.png")
    assert bomb.stat().st_size < 200_000
    client = client_for(url)
    with pytest.raises(AppError, match=r"(decode to 400 megapixels|20000×20000).*above the limit") as refused:
        submit(client, image=str(bomb)).result()
    assert "'bomb.png'" in str(refused.value) and "/tmp" not in str(refused.value)
    assert submit(client, steps=2, strength=1.0).result()[2]["steps_taken"] == 2


def test_uploads_over_the_size_cap_are_refused(url):
    body = b"\x89PNG" + b"\x00" * (31 * 2**20)
    boundary = "sdimg2imgboundary"
    payload = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="big.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + body
        + f"\r\n--{boundary}--\r\n".encode()
    )
    req = urllib.request.Request(
        url.rstrip("/") + "/gradio_api/upload",
        data=payload,
        method="POST",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            status = r.status
    except urllib.error.HTTPError as e:
        status = e.code
    assert status == 413
    assert submit(client_for(url), steps=2, strength=1.0).result()[2]["steps_taken"] == 2


@pytest.mark.parametrize(
    "prompt,cleaned",
    [
        ("x" * 100_000, None),  # a 100 kB prompt
        # emoji, right-to-left text, null bytes and other control characters (the cleaning itself, and a lone
        # surrogate, which gradio_client cannot send: test_engine.py::test_awkward_prompts_run)
        ("feu 🔥 \u200fنار\u200e and 火\x00\x00 in\x07 a room", "feu 🔥 \u200fنار\u200e and 火 in a room"),
    ],
    ids=["100kB", "unicode-and-control"],
)
def test_awkward_prompts(url, prompt, cleaned):
    """What a visitor's prompt becomes on the way through the page: the run's own cleaned text, or a message."""
    from gradio_client.exceptions import AppError

    client = client_for(url)
    if cleaned is not None:
        info = submit(client, prompt=prompt, negative_prompt=prompt, steps=2, strength=1.0).result()[2]
        assert info["steps_taken"] == 2 and info["prompt"] == cleaned == info["negative_prompt"]
    else:
        with pytest.raises(
            AppError, match="the prompt is 100000 characters, above the limit of 4000; shorten it"
        ) as refused:
            submit(client, prompt=prompt).result()
        assert "xxxxxxxxxx" not in str(refused.value)  # the message does not quote the prompt back
    assert submit(client, steps=2, strength=1.0).result()[2]["steps_taken"] == 2


# -- 4. security --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "route",
    [
        "/gradio_api/file=/etc/passwd",
        "/gradio_api/file=../../../../etc/passwd",
        "/gradio_api/file=..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "/gradio_api/file=%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/file=/etc/passwd",
        "/gradio_api/file=" + str(ROOT / "app.py"),
        "/gradio_api/file=" + str(ROOT / "pyproject.toml"),
        "/gradio_api/file=/proc/self/environ",
        "/static/../../../../etc/passwd",
        "/assets/..%2f..%2f..%2f..%2fetc%2fpasswd",
    ],
)
def test_no_file_outside_the_apps_folders_is_served(url, route):
    status, body = get(url.rstrip("/") + route)
    assert status in (400, 403, 404, 405), (route, status)
    assert b"root:" not in body and b"[project]" not in body and b"build_demo" not in body


def test_the_apps_own_files_are_served(url):
    """The traversal test above is not vacuous: the same route does serve the run's own output."""
    output = submit(client_for(url), steps=2, strength=1.0).result()[0]
    status, body = get(url.rstrip("/") + "/gradio_api/file=" + urllib.parse.quote(output["path"]))
    assert status == 200 and body.startswith(b"\x89PNG")


UNLISTED = ("/etc/passwd", "stabilityai/sdxl-turbo", "../tiny", "random-sdxl")


def test_visitors_choose_only_among_the_operators_models(url):
    """The allow-list is the operator's: ``model`` takes only a listed name, and no endpoint takes a path, hub id,
    decoder or device to load."""
    from gradio_client.exceptions import AppError

    client = client_for(url)
    api = client.view_api(print_info=False, return_format="dict")
    names = {p["parameter_name"] for e in api["named_endpoints"].values() for p in e["parameters"]}
    assert not names & {"model_id", "checkpoint", "repo", "path", "taesd", "device", "offload", "lora_path"}
    assert {"image", "prompt", "strength", "steps", "seed", "model"} <= names
    for model in UNLISTED:
        # gradio's Dropdown checks a value against its choices before any handler runs: the API refuses with
        # gradio's own words (the page's own check is below)
        with pytest.raises(AppError, match=re.escape(f"Value: {model} is not in the list of choices: ['tiny-sd15']")):
            submit(client, steps=3, model=model).result()


def test_the_pages_handlers_refuse_unlisted_models_themselves(engine):
    """Behind gradio's Dropdown, the page's own allow-list (``Page.model_name``): what an embedding or a future
    control that skips the Dropdown would reach."""
    from gradio import Error

    from sd_img2img.settings import AppSettings
    from sd_img2img.ui import app

    h = app.build_demo(engine, AppSettings()).handlers
    assert h.page.model_name(None) == h.page.model_name("") == "tiny-sd15"  # none chosen: the first listed
    for model in UNLISTED:
        refused = re.escape(f"unknown model '{model}'; choose one of: tiny-sd15")
        with pytest.raises(Error, match=refused):
            h.page.model_name(model)
        with pytest.raises(Error, match=refused):  # a run asked for it is refused before it starts
            next(h.runs.img2img(image=FIREPLACE, prompt="fire", steps=3, width=64, height=64, model=model))


def test_a_sessions_runs_keep_no_objects_behind(url):
    """Memory stays flat over many runs: nothing the server keeps grows with each run of a session.

    (gradio keeps every component a streamed gr.skip() creates for the session; the app streams plain values.)"""
    import gc

    from gradio.components import Component

    def alive() -> int:
        gc.collect()
        return sum(isinstance(o, Component) for o in gc.get_objects())

    client = client_for(url)
    for k in range(3):  # the session's first runs create what it keeps for good
        submit(client, steps=3, seed=k).result()
    before = alive()
    for k in range(8):
        submit(client, steps=3, seed=10 + k).result()
    assert alive() - before < 4, f"{alive() - before} gradio components more after 8 runs of one session"


def test_generated_files_are_capped(engine, tmp_path):
    from sd_img2img.ui.state import RunFiles

    runs = RunFiles(tmp_path / "runs", max_runs=5)
    for _ in range(12):
        folder = runs.new()
        (folder / "step000.webp").write_bytes(b"x" * 1000)
        time.sleep(0.01)
    kept = list((tmp_path / "runs").iterdir())
    assert len(kept) == 5 and folder in kept  # the newest stay
    old = runs.new()
    import os

    os.utime(old, (time.time() - 7200, time.time() - 7200))  # two hours old
    runs.new()
    assert not old.exists()


def test_swept_runs_leave_no_records_in_gradios_file_lists(tmp_path):
    """gradio records every file it serves; records of runs the app swept away must go with them."""
    import gradio as gr

    from sd_img2img.ui.state import RunFiles, forget_paths

    demo = gr.Blocks()
    served = demo.temp_file_sets[0]  # as gradio's own: a set of the paths it handed out
    runs = RunFiles(tmp_path / "runs", max_runs=3, on_remove=lambda folders: forget_paths(demo.temp_file_sets, folders))
    for _ in range(10):
        folder = runs.new()
        for name in ("step000.webp", "out.png"):
            (folder / name).write_bytes(b"x")
            served.add(str(folder / name))
        time.sleep(0.01)
    served.add("/somewhere/else/upload.png")  # not the app's: untouched
    kept = {str(p) for p in (tmp_path / "runs").glob("*/*")}
    assert len(kept) == 6 and served == kept | {"/somewhere/else/upload.png"}


def test_every_install_gets_a_gradio_with_the_security_fixes():
    """pip installs pyproject.toml's dependencies, a Space requirements.txt's, with the gradio of the README's
    ``sdk_version``: the same packages and bounds, and no gradio before 6.20 (the release with the security fixes)."""
    from packaging.requirements import Requirement

    tomllib = pytest.importorskip("tomllib", reason="Python 3.11+")

    def normal(lines):
        return {str(Requirement(line)): Requirement(line) for line in lines}

    declared = normal(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    assert normal(line for line in lines if line.strip() and not line.startswith("#")).keys() == declared.keys()
    (gradio,) = [r for r in declared.values() if r.name == "gradio"]
    assert not any(gradio.specifier.contains(v) for v in ("5.50", "6.0", "6.19.99")), gradio  # none before 6.20
    front = (ROOT / "README.md").read_text().split("---")[1]  # the Space's settings
    (sdk,) = [line.split(":", 1)[1].strip() for line in front.splitlines() if line.startswith("sdk_version:")]
    assert gradio.specifier.contains(sdk), f"the Space runs gradio {sdk}, outside {gradio}"
