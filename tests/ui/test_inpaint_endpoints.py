"""Inpainting and batches through the page's API (gradio_client against the app served in-process on the tiny
checkpoint) and its handlers: /img2img's mask and batch_count, the grid taking the mask along, the Inpaint tab's
strokes becoming the click's mask and the plan line's share."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from appserver import serve_demo
from PIL import Image, ImageDraw

from sd_img2img.formats.metadata import read_settings

COMMON = dict(prompt="fire", negative_prompt="", seed=5, width=64, height=64, steps=4, strength=0.5)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("inpaint-ui")
    Image.new("RGB", (64, 64), (196, 84, 40)).save(root / "init.png")
    mask = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(mask).rectangle((16, 16, 47, 39), fill=255)
    mask.save(root / "mask.png")
    strokes = Image.new("RGBA", (64, 64), (0, 0, 0, 0))  # a painted layer: strokes on a transparent sheet
    ImageDraw.Draw(strokes).ellipse((8, 8, 40, 40), fill=(255, 46, 136, 153))
    strokes.save(root / "layer.png")
    return root


@pytest.fixture(scope="module")
def served(engine):
    with serve_demo(engine) as (url, demo):
        yield url, demo


@pytest.fixture()
def client(served):
    from gradio_client import Client

    return Client(served[0], verbose=False)


def test_img2img_takes_a_mask_and_a_batch_count(client, files):
    from gradio_client import handle_file

    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    names = [p["parameter_name"] for p in api["/img2img"]["parameters"]]
    assert {"mask", "mask_from_alpha", "invert_mask", "mask_blur", "masked_content", "inpaint_area", "padding"} <= set(
        names
    )
    assert names[-1] == "batch_count" and "mask" not in [p["parameter_name"] for p in api["/txt2img"]["parameters"]]
    image, mask = handle_file(str(files / "init.png")), handle_file(str(files / "mask.png"))
    output, gallery, info, *_ = client.predict(image=image, mask=mask, **COMMON, api_name="/img2img")
    assert info["mask_share"] > 0.15 and info["mask_file"].endswith("-mask.png") and info["steps_taken"] == 2
    assert gallery[0]["caption"] == "step 0 · the masked region noised" and len(gallery) == 3
    assert read_settings(output)["mask_hash"] == info["mask_hash"]
    output, gallery, info, strip, status, *_ = client.predict(
        image=image, mask=mask, batch_count=3, **COMMON, api_name="/img2img"
    )
    assert [b["seed"] for b in info["batch"]] == [5, 6, 7] and info["batch_steps_taken"] == 6
    assert info["seed"] == 5 and info["steps_taken"] == 2  # the shown image's own
    assert read_settings(output)["seed"] == 5 and len(gallery) == 3  # the first image shown
    assert "Done: 3 images · 6 steps taken" in status and "image 1 of 3" in status


def test_the_grid_takes_the_mask_along(client, files):
    from gradio_client import handle_file

    image, mask = handle_file(str(files / "init.png")), handle_file(str(files / "mask.png"))
    common = {**COMMON, "steps": 4}
    html, info, pngs = client.predict(
        image=image,
        mask=mask,
        rows="strength",
        row_values="0.5",
        columns="steps",
        column_values="4, 6",
        **common,
        api_name="/grid",
    )
    hashes = {read_settings(png)["mask_hash"] for png in pngs}
    assert len(pngs) == 2 and len(hashes) == 1 and None not in hashes


def test_the_inpaint_tabs_strokes_are_the_clicks_mask(served, files):
    _, demo = served
    runs = demo.handlers.runs
    editor = {"background": str(files / "init.png"), "layers": [str(files / "layer.png")], "composite": None}
    values = dict(source="inpaint", inpaint=editor, prompt="fire", steps=10, strength=0.7, real_steps=False)
    line = runs.plan(image=None, **{k: v for k, v in values.items() if k != "prompt"})
    assert "the masked" in line and "% is redrawn in 7 steps; the rest is kept" in line
    visitor = SimpleNamespace(session_hash="inpaint-tab")
    try:
        image, status, prepared, mask, alpha, _ = runs.queue_run(image=None, **values, request=visitor)
    finally:
        demo.handlers.page.queue.leave(visitor.session_hash)
    assert image == editor["background"] and mask.endswith("painted-mask.png") and alpha is False
    assert prepared.mask is not None and 0.15 < prepared.mask.plan.share < 0.3  # the painted circle
    with Image.open(mask) as painted:
        assert painted.getpixel((24, 24)) == 255 and painted.getpixel((60, 60)) == 0
    # the Image tab in use: no mask, whatever the Inpaint tab holds
    image, _, _, mask, *_ = runs.queue_run(
        image=str(files / "init.png"), **{**values, "source": "image"}, request=visitor
    )
    demo.handlers.page.queue.leave(visitor.session_hash)
    assert mask is None
