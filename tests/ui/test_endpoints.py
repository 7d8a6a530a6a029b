"""The web demo through gradio_client, against the app served in-process on 127.0.0.1 with the tiny random
checkpoint: every endpoint, streaming, Stop, errors; plus the demo's settings, status and the live plan line."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from appserver import ROOT, free_port, serve
from PIL import Image as PILImage

FIREPLACE = str(ROOT / "examples" / "fireplace.png")


MCP = importlib.util.find_spec("mcp") is not None  # the mcp extra (gradio[mcp])


@pytest.fixture(scope="module")
def url(engine):
    with serve(engine, mcp=MCP) as u:  # as `--mcp` serves it, where the extra is installed
        yield u


@pytest.fixture()
def client(url):
    from gradio_client import Client

    return Client(url, verbose=False)


def img2img(client, **kw):
    from gradio_client import handle_file

    args = dict(
        image=handle_file(FIREPLACE),
        prompt="fire",
        negative_prompt="",
        strength=0.7,
        steps=10,
        seed=7,
        width=128,
        height=128,
    )
    args.update(kw)
    return client.submit(**args, api_name="/img2img")


def gallery_len(output) -> int | None:
    gallery = output[1]
    return len(gallery) if isinstance(gallery, list) else None


def test_named_endpoints_and_parameters(client):
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert {"/img2img", "/txt2img", "/compare", "/stop", "/read_settings"} <= set(api)
    names = [p["parameter_name"] for p in api["/img2img"]["parameters"]]
    assert names[:11] == [
        "image",
        "prompt",
        "negative_prompt",
        "strength",
        "steps",
        "real_steps",
        "seed",
        "sampler",
        "guidance_scale",
        "width",
        "height",
    ]
    t2i = [p["parameter_name"] for p in api["/txt2img"]["parameters"]]
    assert "image" not in t2i and "strength" not in t2i and "prompt" in t2i
    assert not any(name.startswith(("/use_sketch", "/plan")) for name in api)  # UI plumbing stays private


def test_img2img_strength_07_ten_steps(client):
    from sd_img2img.formats.metadata import read_settings

    output, gallery, info, strip, status, download, animation = img2img(client).result()
    assert info["steps"] == 10 and info["steps_taken"] == 7 and info["seed"] == 7 and info["sampler"] == "k_lms"
    assert info["schedule_steps"] == 10 and info["strength"] == 0.7 and info["mode"] == "img2img"
    assert len(gallery) == 8
    assert gallery[0]["caption"] == "step 0 · start"
    assert [g["caption"].split(" · ")[0] for g in gallery] == [f"step {i}" for i in range(8)]
    assert all(g["caption"].split(" · t=")[1].isdigit() for g in gallery[1:])
    assert all(Path(g["image"]).suffix == ".webp" for g in gallery)  # steps travel as small WebP
    settings = read_settings(output)  # the result is the PNG with its settings
    assert settings["steps_taken"] == 7 and settings["seed"] == 7 and settings["prompt"] == "fire"
    assert Path(download).read_bytes() == Path(output).read_bytes()
    assert Path(strip).exists()
    assert "7 taken" in status
    with PILImage.open(animation) as anim:  # the API's last output: the steps as an animation, one frame a step
        assert anim.format == "WEBP" and anim.n_frames == 8 == info["animation"]["frames"]
    assert Path(animation).stat().st_size == info["animation"]["bytes"] and "animation WebP · 8 frames" in status


def test_no_server_path_in_the_api_or_the_run_info(client, tiny_checkpoint):
    """The served model (a folder at /tmp/…/tiny-sd15) is named by its folder's name: the API's model default and
    choices, the run info, the PNG's settings and its AUTOMATIC1111 ``Model:``; integer settings are typed as ints and
    every output has a label."""
    from sd_img2img.formats.metadata import png_text, read_settings

    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    model = next(p for p in api["/img2img"]["parameters"] if p["parameter_name"] == "model")
    assert model["parameter_default"] == tiny_checkpoint.name and model["type"]["enum"] == [tiny_checkpoint.name]
    for name, endpoint in api.items():
        types = {p["parameter_name"]: p["python_type"]["type"] for p in endpoint["parameters"]}
        whole = ("steps", "loops", "batch_count", "mask_blur", "padding")
        assert all(types[k] == "int" for k in whole if k in types), (name, {k: types.get(k) for k in whole})
        assert all(not r["label"].startswith("value_") for r in endpoint["returns"]), (name, endpoint["returns"])
    output, _, info, *_ = client.predict(prompt="fire", steps=2, seed=1, width=64, height=64, api_name="/txt2img")
    assert info["model"] == tiny_checkpoint.name
    server_path = str(tiny_checkpoint.parent)
    assert server_path not in str(info) and server_path not in str(read_settings(output))
    assert f"Model: {tiny_checkpoint.name}" in png_text(output)[0]["parameters"]


@pytest.mark.skipif(not MCP, reason="the mcp extra is not installed (pip install 'sd-img2img[mcp]')")
def test_mcp_tools_say_what_their_settings_mean(url):
    """``--mcp``: gradio's MCP server lists the endpoints as tools, each described by its docstring and each
    parameter by its declared help (units, limits, what strength and steps do)."""
    tools = {t["name"]: t for t in json.load(urllib.request.urlopen(url + "gradio_api/mcp/schema", timeout=30))}
    assert {"img2img", "txt2img", "read_settings", "compare", "grid"} <= set(tools)
    img2img = tools["img2img"]
    assert "steps × strength" in img2img["description"] or "int(steps × strength)" in img2img["description"]
    props = img2img["inputSchema"]["properties"]
    assert props["steps"]["type"] == "integer" and "from 1 to 150" in props["steps"]["description"]
    assert (
        "at most 1" in props["strength"]["description"] and "10 steps at 0.7 run 7" in props["strength"]["description"]
    )
    assert "pixels" in props["width"]["description"] and props["model"]["enum"] == ["tiny-sd15"]
    assert all(p.get("description") for p in props.values()), [k for k, p in props.items() if not p.get("description")]
    assert tools["read_settings"]["inputSchema"]["properties"]["png"]["description"].startswith("a PNG, JPEG or WebP")


def test_steps_arrive_one_by_one(client):
    job = img2img(client, steps=12, strength=0.5, seed=1)  # 6 steps
    seen = []
    while not job.done() or len(seen) < len(job.outputs()):
        seen += job.outputs()[len(seen) :]
        time.sleep(0.01)
    lengths = [n for n in map(gallery_len, seen) if n]
    assert lengths[:7] == [1, 2, 3, 4, 5, 6, 7], lengths  # one message per step, step 0 first
    assert job.result()[2]["steps_taken"] == 6


def test_real_steps_and_txt2img(client):
    _, gallery, info, *_ = img2img(client, steps=5, strength=0.5, real_steps=True).result()
    assert info["steps_taken"] == 5 and info["schedule_steps"] == 10 and len(gallery) == 6
    output, gallery, info, *_ = client.predict(
        prompt="fire", negative_prompt="", steps=4, seed=3, width=64, height=64, api_name="/txt2img"
    )
    assert info["mode"] == "txt2img" and info["strength"] is None
    assert info["steps_taken"] == 4 and len(gallery) == 5 and info["seed"] == 3


@pytest.fixture()
def light_client(url):
    """A client that leaves the files on the server (long runs stream many)."""
    from gradio_client import Client

    return Client(url, verbose=False, download_files=False)


def steps_so_far(job) -> int:
    outputs = job.outputs()
    return (gallery_len(outputs[-1]) or 0) if outputs else 0


def test_stop_mid_run_keeps_what_was_computed(light_client):
    client = light_client
    job = img2img(client, steps=150, strength=1.0, width=64, height=64)
    while steps_so_far(job) < 4:
        assert not job.done(), "the run ended before it could be stopped"
        time.sleep(0.02)
    client.predict(api_name="/stop")  # the page's Stop button: same session
    output, gallery, info, strip, status, *_ = job.result()
    assert info["stopped"] is True
    assert 3 <= info["steps_taken"] < 150
    assert len(gallery) == info["steps_taken"] + 1
    assert output["path"].endswith(".png") and "Stopped" in status


def test_cancel_mid_run_frees_the_model(light_client, engine, monkeypatch):
    client = light_client
    runs = []  # the served engine's results (the server runs in this process)
    generate = engine.generate

    def recorded(*args, **kwargs):
        result = generate(*args, **kwargs)
        runs.append(result)
        return result

    monkeypatch.setattr(engine, "generate", recorded)
    job = img2img(client, steps=150, strength=1.0, width=64, height=64)
    while steps_so_far(job) < 3:
        assert not job.done()
        time.sleep(0.02)
    job.cancel()  # gradio closes the generator; the engine stops between steps
    info = img2img(client, steps=4, strength=1.0).result()[2]
    assert info["steps_taken"] == 4
    cancelled = runs[0]
    assert cancelled.stopped and cancelled.steps_taken < 100  # it did not hold the device for its other ~140 steps
    assert len(runs) == 2 and runs[1].steps_taken == 4


def test_bad_input_is_a_message_and_the_server_goes_on(client, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=r"runs no step at all.*use strength ≥ 0\.1"):
        img2img(client, strength=0.05).result()
    fake = tmp_path / "notes.png"
    fake.write_text("not a picture")
    with pytest.raises(AppError, match="not an image"):
        img2img(client, image=handle_file(str(fake))).result()
    with pytest.raises(AppError, match="multiple of 8"):
        img2img(client, width=100).result()
    # gradio's Dropdown checks a value against its choices before the handler runs: gradio's own refusal
    with pytest.raises(AppError, match=r"^Value: nope is not in the list of choices: \['', 'k_lms', 'ddim', "):
        img2img(client, sampler="nope").result()
    assert img2img(client, steps=3, strength=1.0).result()[2]["steps_taken"] == 3


def test_the_pages_handlers_check_the_sampler_themselves(engine):
    """Behind gradio's Dropdown, the run's own check (``plan/checks.py``) names the samplers that fit: what an
    embedding, or a Dropdown that lists another model's samplers, would reach."""
    from gradio import Error

    from sd_img2img.settings import AppSettings
    from sd_img2img.ui import app

    runs = app.build_demo(engine, AppSettings()).handlers.runs
    run = runs.img2img(image=FIREPLACE, prompt="fire", steps=3, width=64, height=64, sampler="nope")
    with pytest.raises(Error) as refused:
        next(run)  # refused before the run starts: nothing is streamed, no "Starting…"
    # the samplers of this model (make_scheduler's last-ditch check would list every sampler it knows)
    assert refused.value.message == f"unknown sampler 'nope'; choose one of: {', '.join(engine.samplers)}"
    *_, last = runs.img2img(image=FIREPLACE, prompt="fire", steps=3, strength=1.0, width=64, height=64, sampler="ddim")
    assert last[2]["sampler"] == "ddim" and last[2]["steps_taken"] == 3


def test_compare_strengths_and_step_counts(client):
    from gradio_client import handle_file

    html, columns = client.predict(
        image=handle_file(FIREPLACE),
        prompt="fire",
        negative_prompt="",
        compare_by="strength",
        values="0.4, 0.7",
        steps=10,
        seed=5,
        width=128,
        height=128,
        api_name="/compare",
    )
    assert [(c["value"], c["steps"], c["steps_taken"]) for c in columns] == [(0.4, 10, 4), (0.7, 10, 7)]
    assert len({c["seed"] for c in columns}) == 1
    for row in (
        "initial image SD sees",
        "steps argument",
        "steps actually taken",
        "latent space at each step",
        "output",
    ):
        assert row in html
    assert html.count('<th scope="col">') == 2 and "strength 0.4" in html and "strength 0.7" in html
    _, columns = client.predict(
        image=handle_file(FIREPLACE),
        prompt="fire",
        negative_prompt="",
        compare_by="steps",
        values="29 30",
        strength=0.4,
        seed=5,
        width=64,
        height=64,
        api_name="/compare",
    )
    assert [(c["steps"], c["steps_taken"]) for c in columns] == [(29, 11), (30, 12)]


def test_compare_needs_an_image_and_sane_values(client):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="needs an initial image"):
        client.predict(image=None, prompt="fire", negative_prompt="", api_name="/compare")
    with pytest.raises(AppError, match="not a number"):
        client.predict(
            image=handle_file(FIREPLACE), prompt="fire", negative_prompt="", values="0.4, lots", api_name="/compare"
        )


def test_plan_line_says_what_the_engine_does():
    from sd_img2img.ui.html import plan_line

    assert "10 steps × strength 0.7 → 7 steps will run (3 skipped)" in plan_line(True, 0.7, 10, False)
    assert "a schedule of 29 steps" in plan_line(True, 0.7, 20, True) and "20 will run" in plan_line(
        True, 0.7, 20, True
    )
    assert "prompt2img" in plan_line(False, 0.7, 10, False) and "strength does not apply" in plan_line(
        False, 0.7, 10, False
    )
    assert "use strength ≥" in plan_line(True, 0.05, 10, False)


def test_read_settings_endpoint_reads_our_own_and_automatic1111_pngs(client, tmp_path):
    from gradio_client import handle_file
    from PIL import Image, PngImagePlugin

    output, *_ = img2img(client, steps=8, strength=0.6, seed=99, sampler="ddim").result()
    ours = client.predict(png=handle_file(output), api_name="/read_settings")
    assert ours["tool"] == "sd-img2img" and ours["notes"] == []
    assert (ours["seed"], ours["steps"], ours["strength"], ours["sampler"]) == (99, 8, 0.6, "ddim")
    assert ours["prompt"] == "fire" and ours["width"] == 128

    info = PngImagePlugin.PngInfo()
    info.add_text(
        "parameters",
        "a lighthouse at dusk, oil painting\nNegative prompt: blurry, fog\nSteps: 20, "
        "Sampler: Euler a, CFG scale: 6, Seed: 123, Size: 512x768, Denoising strength: 0.45, Clip skip: 2",
    )
    a1111 = tmp_path / "a1111.png"
    Image.new("RGB", (64, 96)).save(a1111, pnginfo=info)
    got = client.predict(png=handle_file(str(a1111)), api_name="/read_settings")
    assert got["tool"] == "AUTOMATIC1111"
    assert (
        got["sampler"],
        got["steps"],
        got["guidance_scale"],
        got["seed"],
        got["width"],
        got["height"],
        got["strength"],
    ) == ("k_euler_a", 20, 6, 123, 512, 768, 0.45)
    assert got["prompt"] == "a lighthouse at dusk, oil painting" and got["negative_prompt"] == "blurry, fog"
    assert any("Clip skip" in note for note in got["notes"])  # what did not carry over is said

    Image.new("RGB", (8, 8)).save(tmp_path / "plain.png")
    with pytest.raises(Exception, match="'plain.png' carries no generation settings") as refused:
        client.predict(png=handle_file(str(tmp_path / "plain.png")), api_name="/read_settings")
    assert "/tmp" not in str(refused.value)  # named by its own name, not by the server's upload folder


def test_a_64_bit_seed_keeps_every_digit_through_the_api(client, tmp_path):
    """ComfyUI's seeds reach 2⁶⁴ − 1: the API takes one as a number or as its digits, the run uses it, and the run
    info (like every JSON the page shows) gives it back as its digits, which no JSON reader rounds (a browser's
    numbers are exact only to 2⁵³ − 1); the PNG records it as it is."""
    from sd_img2img.formats.metadata import read_settings

    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/img2img"]["parameters"]
    assert next(p for p in api if p["parameter_name"] == "seed")["python_type"]["type"] == "int | str"
    seed = 18446744073709551557
    outputs = [
        img2img(client, seed=given, steps=4, strength=0.5, width=64, height=64).result() for given in (seed, str(seed))
    ]
    for output, _, info, *_ in outputs:
        assert info["seed"] == str(seed) and read_settings(output)["seed"] == seed
    assert open(outputs[0][0], "rb").read() == open(outputs[1][0], "rb").read()  # the same picture, the same PNG
    with pytest.raises(Exception, match=r"seed=18446744073709551616 is out of range \[0, 18446744073709551615\]"):
        img2img(client, seed=str(2**64), steps=4, strength=0.5, width=64, height=64).result()


def test_read_settings_takes_jpegs_webps_and_comfyui_seeds(client, tmp_path):
    from gradio_client import handle_file
    from tool_images import USER_COMMENT, exif_block, jpeg_with_exif, png_with_text, webp_with_exif

    text = "a harbour at night\nNegative prompt: fog\nSteps: 12, Sampler: Euler, CFG scale: 5, Seed: 42, Size: 64x64"
    exif = exif_block({USER_COMMENT: b"UNICODE\0" + text.encode("utf-16-be")})
    for path in (jpeg_with_exif(tmp_path / "a1111.jpg", exif), webp_with_exif(tmp_path / "a1111.webp", exif)):
        got = client.predict(png=handle_file(str(path)), api_name="/read_settings")
        assert (got["tool"], got["prompt"], got["negative_prompt"], got["seed"], got["steps"]) == (
            "AUTOMATIC1111",
            "a harbour at night",
            "fog",
            42,
            12,
        )
        assert got["found_in"] == f"the {'JPEG' if path.suffix == '.jpg' else 'WebP'} EXIF UserComment"
    graph = {
        "3": {
            "class_type": "KSampler",
            "inputs": {
                "seed": 280823642470253,
                "steps": 9,
                "cfg": 6,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 1,
                "positive": ["6", 0],
                "negative": ["6", 0],
                "latent_image": ["5", 0],
            },
        },
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a harbour"}},
    }
    got = client.predict(
        png=handle_file(str(png_with_text(tmp_path / "comfy.png", {"prompt": graph}))), api_name="/read_settings"
    )
    assert (got["tool"], got["seed"], got["steps"]) == ("ComfyUI", 280823642470253, 9)  # a 15-digit seed, kept


def test_settings_from_flags_and_environment():
    from sd_img2img.settings import parse_settings

    env = {
        "SD_IMG2IMG_MODEL": "some/model",
        "SD_IMG2IMG_PORT": "9000",
        "SD_IMG2IMG_PREVIEW": "taesd",
        "SD_IMG2IMG_SHARE": "1",
    }
    s = parse_settings([], env)
    assert (s.model, s.port, s.preview, s.share, s.host) == ("some/model", 9000, "taesd", True, None)
    s = parse_settings(["--model", "random", "--port", "7000", "--max-side", "512", "--offload", "model"], env)
    assert (s.model, s.port, s.max_side, s.options.offload) == ("random", 7000, 512, "model")
    assert parse_settings([], {}).share is False  # share links only on request
    assert parse_settings([], {}).options.compile is False and parse_settings(["--compile"], {}).options.compile
    assert parse_settings([], {"SD_IMG2IMG_COMPILE": "1"}).options.compile is True
    flag_beats_variable = parse_settings(["--device", "auto"], {"SD_IMG2IMG_DEVICE": "cpu"})
    assert flag_beats_variable.options.device == "auto"


def test_model_status_reports_failure(tmp_path):
    from sd_img2img.engine import Engine
    from sd_img2img.engine.backend import LocalBackend
    from sd_img2img.ui.html import model_badge

    backend = LocalBackend(Engine(str(tmp_path / "missing"), device="cpu", dtype="float32"), name="missing").start()
    backend.wait(60)
    status = backend.describe("missing")
    assert status.state == "failed"
    assert "failed to load" in model_badge(status) and "missing" in model_badge(status)


def test_the_badge_polls_only_while_the_first_model_loads(tiny_checkpoint):
    """The page asks for the model's state every second while it loads, then stops (a ready badge stays put)."""
    from sd_img2img.engine import Engine
    from sd_img2img.engine.backend import LocalBackend
    from sd_img2img.settings import AppSettings
    from sd_img2img.ui import app

    engine = Engine(str(tiny_checkpoint), device="cpu", dtype="float32")
    backend = LocalBackend(engine, name="tiny")
    with engine._load_lock:  # the background load waits here: the model is loading for as long as the test says
        demo = app.build_demo(backend.start(), AppSettings())
        badge, timer = demo.handlers.models.model_badge()
        assert "Loading the model" in badge and timer.active is True
    assert backend.wait(60)
    badge, timer = demo.handlers.models.model_badge()
    assert "Model ready" in badge and timer.active is False


def test_python_app_py_serves_offline(tiny_checkpoint, tiny_taesd, tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "SD_IMG2IMG_TAESD": str(tiny_taesd),
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "app.py",
            "--model",
            str(tiny_checkpoint),
            "--device",
            "cpu",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 90
        page = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode()
                break
            except OSError:
                time.sleep(0.3)
        assert page is not None, proc.stderr.read().decode()[-2000:] if proc.poll() is not None else "no page"
        assert "img2img, step by step" in page
        from gradio_client import Client, handle_file

        info = Client(f"http://127.0.0.1:{port}/", verbose=False).predict(
            image=handle_file(FIREPLACE),
            prompt="fire",
            negative_prompt="",
            strength=0.7,
            steps=10,
            seed=1,
            width=64,
            height=64,
            api_name="/img2img",
        )[2]
        assert info["steps_taken"] == 7
    finally:
        proc.terminate()
        proc.wait(20)


def test_stop_flags_keep_a_stop_for_a_queued_run_but_not_for_the_next_click():
    from sd_img2img.ui.state import StopFlags

    flags = StopFlags(keep_seconds=600)
    assert flags.stop("a") is False  # nothing running yet: kept for the run waiting in the queue
    assert flags.begin("a").is_set()  # … which then ends at once
    flags.stop("b")
    flags.clear_pending("b")  # a new Generate click forgets a Stop pressed before it
    assert not flags.begin("b").is_set()
    running = flags.begin("c")
    assert flags.stop("c") is True and running.is_set()
    flags.end("c", running)
    stale = StopFlags(keep_seconds=0)
    stale.stop("d")
    time.sleep(0.01)
    stale.stop("e")  # visitors who pressed Stop with nothing running and left are not kept for ever
    assert "d" not in stale._pending and "e" in stale._pending
