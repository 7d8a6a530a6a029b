"""/diverge through the page's API (gradio_client against the app served in-process on the tiny checkpoint): the guide's
comparison by default, its files and info, each side's PNG reproducing its run, the cost line, the wait line and
what it escapes."""

from __future__ import annotations

import pytest
from appserver import ROOT, serve_demo
from helpers import max_diff, pixels
from PIL import Image

from sd_img2img.engine import GenerationRequest
from sd_img2img.formats.metadata import read_settings, request_kwargs

FIREPLACE = str(ROOT / "examples" / "fireplace.png")
SMALL = dict(width=64, height=64)


@pytest.fixture(scope="module")
def served(engine):
    with serve_demo(engine) as (u, demo):
        yield u, demo


@pytest.fixture()
def client(served):
    from gradio_client import Client

    return Client(served[0], verbose=False)


def test_diverge_endpoint_the_guides_comparison(client, engine):
    """The defaults are the guide's (strength 0.7, 30 vs 29 steps, k_lms, seed 1592514025, prompt "fire"): one pair per
    step of the 29-step run and step 0, each side reproducible from its PNG, every difference its pictures'."""
    from gradio_client import handle_file

    html, chart, info, files = client.predict(image=handle_file(FIREPLACE), **SMALL, api_name="/diverge")
    assert (info["vary"], info["values"], info["threshold"]) == ("steps", [30, 29], 2.0)
    a, b = info["a"], info["b"]
    assert (a["steps"], a["steps_taken"], b["steps"], b["steps_taken"]) == (30, 21, 29, 20)
    assert {a["seed"], b["seed"], a["strength"], a["sampler"], a["prompt"]} == {1592514025, 0.7, "k_lms", "fire"}
    aligned = info["aligned"]
    assert len(aligned) == 21 and [e["b_step"] for e in aligned] == list(range(21))
    assert len(files) == 2 + 3 * 21 and "part at step" in html and html.count("<img") == 3 * 21
    by_name = {f.rsplit("/", 1)[-1]: f for f in files}
    for entry in aligned:
        pa, pb = (Image.open(by_name[entry[k]]) for k in ("a_image", "b_image"))
        assert entry["difference"] == float(abs(pixels(pa) - pixels(pb)).mean())
    for side, png in zip((a, b), files[:2]):
        assert read_settings(png)["diverge"]["side"] in ("a", "b") and side["output"] == png.rsplit("/", 1)[-1]
        again = engine.generate(GenerationRequest(**request_kwargs(read_settings(png)), init_image=FIREPLACE))
        assert max_diff(again.output, Image.open(png)) == 0  # the PNG says how to make its side again
    parts = info["parts_at"]
    assert parts == next((e for e in aligned if e["difference"] > 2.0), None) and info["sentence"] in html.replace(
        "&#x27;", "'"
    )
    assert chart["visible"] and chart["x_title"].startswith("noise level σ")  # shown once it has points
    points = chart["value"]["data"]
    drawn = [row for row in points if row[2] == "difference"]  # the chart: each pair at run B's σ
    assert [(x, y) for x, y, _ in drawn] == [
        (pytest.approx(e["sigma_b"]), pytest.approx(e["difference"])) for e in aligned
    ]
    if parts is not None:
        marked = [row[0] for row in points if row[2] == "parting step"]
        assert marked == [pytest.approx(parts["sigma_b"])] * 2  # an upright line at the parting step's σ


def test_diverge_refuses_bad_values_with_a_message(client):
    with pytest.raises(Exception, match="steps must be from 1 to 150, got 200"):
        client.predict(value_b="200", **SMALL, api_name="/diverge")
    with pytest.raises(Exception, match="'model' .* is not in the list of choices"):  # one model served here
        client.predict(vary="model", **SMALL, api_name="/diverge")
    with pytest.raises(Exception, match="'x' is not a number; write the strengths like 0.4 and 0.7"):
        client.predict(vary="strength", value_a="x", value_b="0.7", **SMALL, api_name="/diverge")


def test_diverge_parameters_and_cost_line(client, served):
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    names = [p["parameter_name"] for p in api["/diverge"]["parameters"]]
    assert names[:5] == ["image", "vary", "value_a", "value_b", "prompt"] and "threshold" in names
    assert not any("diverge_cost" in n or "queue_diverge" in n for n in api)
    _, demo = served
    cost = demo.handlers.diverge.cost(**SMALL)
    assert "two runs, 21 + 20 = 41 steps · " in cost and "fireplace drawing" in cost
    strengths = demo.handlers.diverge.preset_strengths()
    line = demo.handlers.diverge.cost(vary="strength", value_a="0.4", value_b="0.7", steps=20, real_steps=True, **SMALL)
    assert strengths[:3] == ("strength", "0.4", "0.7") and "two runs, 20 + 20 = 40 steps" in line
    bad = demo.handlers.diverge.cost(value_a="<img src=x onerror=alert(1)>", **SMALL)
    assert "<img" not in bad and "&lt;img src=x onerror=alert(1)&gt;" in bad


def test_diverge_html_escapes_what_it_shows(engine, fireplace):
    from sd_img2img.engine.backend import LocalBackend
    from sd_img2img.series.diverge import plan_diverge
    from sd_img2img.series.series import run_series
    from sd_img2img.ui.diverge import diverge_html

    name = '<img src=x onerror="alert(1)">'
    backend = LocalBackend(engine, name=name)
    request = GenerationRequest("fire", fireplace, strength=0.5, steps=4, seed=3, width=64, height=64)
    diverge = plan_diverge(request, "model", (name, name), name, backend.prepare, lambda _: None)
    list(run_series(diverge.series, backend))
    html = diverge_html(diverge, diverge.compare(), running=False)
    assert name not in html and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html
    assert "never part: every step&#x27;s pictures are identical" in html


def test_a_comparison_is_in_the_wait_line_of_a_visitor_behind_it(served, client):
    import time
    from types import SimpleNamespace

    from gradio_client import handle_file

    _, demo = served
    job = client.submit(
        image=handle_file(FIREPLACE), steps=40, value_a="40", value_b="41", strength=1.0, **SMALL, api_name="/diverge"
    )
    while not job.outputs():  # its first redraw: the series has started
        assert not job.done(), job.result()
        time.sleep(0.02)
    visitor = SimpleNamespace(session_hash="queued-behind-a-comparison")
    try:
        _, status, *_ = demo.handlers.runs.queue_run(
            image=FIREPLACE, prompt="fire", steps=10, strength=0.7, request=visitor
        )
    finally:
        demo.handlers.page.queue.leave(visitor.session_hash)
        client.predict(api_name="/stop")
        html, chart, info, files = job.result()
    assert "Queued" in status and "a comparison of 2 sides" in status and "ahead" in status, status
    assert info["stopped"] and len(files) <= 1 + 3 * 41
