"""The grid, loopback and the steps' animation through the page's API (gradio_client against the app served
in-process on the tiny checkpoint): the files they return, their PNGs reproducing each cell and loop, the cost line."""

from __future__ import annotations

import pytest
from appserver import ROOT, serve_demo
from helpers import max_diff
from PIL import Image

from sd_img2img.engine import GenerationRequest
from sd_img2img.formats.metadata import read_settings, request_kwargs

FIREPLACE = str(ROOT / "examples" / "fireplace.png")
COMMON = dict(prompt="fire", negative_prompt="", seed=5, width=64, height=64)


@pytest.fixture(scope="module")
def served(engine):
    with serve_demo(engine) as (u, demo):
        yield u, demo


@pytest.fixture(scope="module")
def url(served):
    return served[0]


@pytest.fixture()
def client(url):
    from gradio_client import Client

    return Client(url, verbose=False)


def reproduce(engine, png, init_image):
    """The run a PNG's settings describe, from ``init_image``."""
    return engine.generate(GenerationRequest(**request_kwargs(read_settings(png)), init_image=init_image)).output


def test_grid_endpoint_cells_reproduce_and_cost_line(client, engine):
    from gradio_client import handle_file

    html, info, files = client.predict(image=handle_file(FIREPLACE), rows="strength", row_values="0.4, 0.7",
                                       columns="steps", column_values="4, 8, 12", **COMMON, api_name="/grid")  # fmt: skip
    assert len(files) == 6 and [(c["row"], c["column"]) for c in info["cells"]] == [
        (r, c) for r in (1, 2) for c in (1, 2, 3)
    ]
    assert [(c["strength"], c["steps"]) for c in info["cells"]] == [(s, n) for s in (0.4, 0.7) for n in (4, 8, 12)]
    assert html.count("<img") == 6 and "<b>8</b> taken" in html and "SD: int(N × 0.4) of N run" in html
    for cell, png in zip(info["cells"], files):
        settings = read_settings(png)
        assert settings["grid"]["row"] == cell["row"] and settings["grid"]["column"] == cell["column"]
        assert settings["steps_taken"] == cell["steps_taken"] and "Grid cell" in Image.open(png).info["parameters"]
        assert max_diff(reproduce(engine, png, FIREPLACE), Image.open(png)) == 0  # the PNG says how to make it again
    taken = sum(c["steps_taken"] for c in info["cells"])
    assert info["total_steps"] == taken == (1 + 3 + 4) + (2 + 5 + 8)  # int(N × s) of 4, 8, 12 at 0.4 and 0.7

    from sd_img2img.engine import Engine
    from sd_img2img.engine.backend import LocalBackend
    from sd_img2img.ui.app import build_demo

    args = (FIREPLACE, "image", "fire", None, None, False, 5, None, None, 64, 64, "resize", None, "")
    axes = ("strength", "0.4, 0.7", "steps", "4, 8, 12")
    measured = build_demo(LocalBackend(engine, name="tiny")).handlers.grid.cost(*args, *axes)
    assert f"this grid runs {taken} steps in 6 cells · about " in measured and " s here" in measured
    fresh = build_demo(LocalBackend(Engine(engine.model, device="cpu"), name="tiny")).handlers.grid.cost(*args, *axes)
    assert f"this grid runs {taken} steps in 6 cells</div>" in fresh  # no run measured here yet: steps, no time


def test_loopback_endpoint_three_linear_loops(client, engine):
    from gradio_client import handle_file

    strip, animation, files, info = client.predict(image=handle_file(FIREPLACE), strength=0.5, steps=10, loops=3,
                                                   final_strength=0.3, curve="linear", colour_match=False, **COMMON,
                                                   api_name="/loopback")  # fmt: skip
    assert info["strengths"] == [0.5, 0.4, 0.3] and [x["seed"] for x in info["loops"]] == [5, 6, 7]
    assert [x["steps_taken"] for x in info["loops"]] == [5, 4, 3] and len(files) == 3
    assert "Done: 3 loops · 12 steps taken" in strip and "loop 3 · strength 0.3 · seed 7" in strip
    for i, png in enumerate(files):
        settings = read_settings(png)
        assert settings["loopback"]["loop"] == i + 1 and settings["seed"] == 5 + i
        assert "Loopback: loop" in Image.open(png).info["parameters"]
    assert max_diff(reproduce(engine, files[1], files[0]), Image.open(files[1])) == 0  # loop 2 = a run from loop 1
    with Image.open(animation) as anim:
        assert anim.format == "WEBP" and anim.n_frames == 4  # the initial image, then each loop's output


def test_grid_and_loopback_refuse_bad_input_with_a_message(client):
    from gradio_client import handle_file

    with pytest.raises(Exception, match="strength 1.5 is out of range"):
        client.predict(image=handle_file(FIREPLACE), row_values="0.4, 1.5", **COMMON, api_name="/grid")
    with pytest.raises(Exception, match="loop 3 of 3 \\(strength 0.05\\).* runs no step"):
        client.predict(image=handle_file(FIREPLACE), steps=10, final_strength=0.05, **COMMON, api_name="/loopback")


def test_grid_html_escapes_what_it_shows():
    from sd_img2img.plan.prepare import PreparedRequest
    from sd_img2img.plan.step_plan import plan_steps
    from sd_img2img.series.axes import Axis
    from sd_img2img.series.grid import Grid
    from sd_img2img.series.series import Series, SeriesRun
    from sd_img2img.ui.grid import grid_html

    name = '<img src=x onerror="alert(1)">'
    prepared = PreparedRequest(GenerationRequest(), GenerationRequest(), "sd", "", "", None, 64, 64, 1,
                               plan_steps(10, 0.5))  # fmt: skip
    cells = [SeriesRun(f"{name} · 10 steps", name, prepared, (0, 0))]
    html = grid_html(Grid(Axis("model", (name,)), Axis("steps", (10,)), Series("grid", "cell", cells)), {},
                     lambda _: None)  # fmt: skip
    assert name not in html and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html


def test_stop_keeps_the_finished_cells_and_loops(client):
    """The grid's and loopback's Stop (the page's, same session): what finished is kept and returned."""
    import time

    from gradio_client import handle_file

    def stopped(api_name, **kw):
        job = client.submit(image=handle_file(FIREPLACE), **COMMON, **kw, api_name=api_name)
        while not (job.outputs() and job.outputs()[-1][-1 if api_name == "/grid" else 2]):
            assert not job.done(), "it ended before it could be stopped"
            time.sleep(0.02)
        client.predict(api_name="/stop")
        return job.result()

    html, info, files = stopped("/grid", strength=1.0, row_values="1.0", column_values="2 149 149")  # a quick first
    assert info["stopped"] and 1 <= len(files) < 3 and len(info["cells"]) == len(files) and "not run (stopped)" in html
    assert [c["stopped"] for c in info["cells"]][:-1] == [False] * (len(files) - 1)  # only the last can be cut short
    strip, animation, files, info = stopped("/loopback", strength=0.02, steps=100, loops=3, final_strength=1.0)
    assert info["stopped"] and 1 <= len(files) < 3 and "Stopped after" in strip and animation is not None


def test_endpoints_and_their_parameters(client):
    """/grid and /loopback are named endpoints; /img2img and /txt2img keep their parameters and return the animation
    last; the page's own events stay private."""
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    grid = [p["parameter_name"] for p in api["/grid"]["parameters"]]
    assert grid[:7] == ["image", "prompt", "negative_prompt", "rows", "row_values", "columns", "column_values"]
    loop = [p["parameter_name"] for p in api["/loopback"]["parameters"]]
    assert loop[:3] == ["image", "prompt", "negative_prompt"] and loop[-4:] == ["loops", "final_strength", "curve",
                                                                                 "colour_match"]  # fmt: skip
    for name in ("/img2img", "/txt2img"):
        assert len(api[name]["returns"]) == 7 and api[name]["returns"][-1]["label"] == "Download animation (WebP)"
    assert not any(("cost" in n or "curve" in n or "use_sketch" in n or "animation" in n) for n in api)


@pytest.mark.parametrize(
    "api_name, kw, named",
    [
        ("/grid", dict(strength=1.0, row_values="1.0, 0.9", column_values="40 41"), "a grid of 4 cells"),
        ("/loopback", dict(strength=1.0, steps=40, loops=3, final_strength=0.9), "a loopback of 3 loops"),
        ("/compare", dict(compare_by="steps", values="40 41 42", strength=1.0), "a table of 3 columns"),
    ],
)
def test_a_series_is_in_the_wait_line_of_a_visitor_behind_it(served, client, api_name, kw, named):
    """Done-when (the design issue): a visitor who clicks Generate while another visitor's grid, loopback or compare
    runs is told it is ahead, by name, with what it has done so far."""
    import time
    from types import SimpleNamespace

    from gradio_client import handle_file

    _, demo = served
    job = client.submit(image=handle_file(FIREPLACE), **COMMON, **kw, api_name=api_name)
    while not job.outputs():  # its first redraw: the series has started
        assert not job.done(), job.result()
        time.sleep(0.02)
    visitor = SimpleNamespace(session_hash="queued-behind-a-series")
    try:
        _, status, *_ = demo.handlers.runs.queue_run(image=FIREPLACE, prompt="fire", steps=10, strength=0.7,
                                                    request=visitor)  # fmt: skip
    finally:
        demo.handlers.page.queue.leave(visitor.session_hash)
        client.predict(api_name="/stop")
        job.result()
    assert "Queued" in status and named in status and "ahead" in status, status
