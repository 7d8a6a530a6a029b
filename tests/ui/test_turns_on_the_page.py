"""Fair turns through the real page (the tiny checkpoint on loopback, gradio_client visitors): each run of a series
takes its own turn, so single runs clicked meanwhile go in between; one thing in flight per session; a request
estimated over the server's limit is refused with its numbers; a failed cell is shown failed while the rest go on.
The tests assert the order of turns (recorded as the engine starts each run), never a wall-clock time."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from appserver import ROOT, serve_demo
from PIL import Image

from sd_img2img.engine import GenerationRequest

FIREPLACE = str(ROOT / "examples" / "fireplace.png")
SMALL = dict(prompt="fire", negative_prompt="", width=64, height=64)
BIG = {**SMALL, "strength": 1.0, "width": 128, "height": 128}  # a cell long enough for others to click during it


@pytest.fixture()
def turns_of(engine, monkeypatch):
    """The runs the engine starts, in order: each as (seed, steps, strength) of its request."""
    started, lock = [], threading.Lock()
    generate = engine.generate

    def recorded(request, *args, **kwargs):
        r = getattr(request, "request", request)
        with lock:
            started.append((r.seed, r.steps, r.strength))
        return generate(request, *args, **kwargs)

    monkeypatch.setattr(engine, "generate", recorded)
    return started


def pixels(file) -> np.ndarray:
    """A picture the app handed back (a path, or the FileData of a client that does not download: the server runs
    in this process, so its path is here)."""
    path = file["path"] if isinstance(file, dict) else file
    return np.asarray(Image.open(path).convert("RGB"))


def client_for(url):
    from gradio_client import Client

    return Client(url, verbose=False, download_files=False)


def image_arg():
    from gradio_client import handle_file

    return handle_file(FIREPLACE)


def started_running(job, timeout: float = 60) -> None:
    """Wait for the job's first redraw (its first run has its turn, or a single run's first step)."""
    deadline = time.monotonic() + timeout
    while not job.outputs():
        assert not job.done(), job.result()
        assert time.monotonic() < deadline, "it never started"
        time.sleep(0.01)


def wait_for(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_a_single_run_clicked_behind_a_started_grid_runs_before_the_grids_next_cell(engine, turns_of):
    with serve_demo(engine) as (url, demo):
        other = client_for(url)  # connected before the grid starts
        grid = client_for(url).submit(image=image_arg(), **BIG, seed=5, steps=60, rows="strength",
                                      row_values="1.0", columns="steps", column_values="60, 4",
                                      api_name="/grid")  # fmt: skip
        wait_for(lambda: len(turns_of) == 1)  # its first cell has the model
        single = other.submit(image=image_arg(), **SMALL, seed=99, steps=4, strength=0.5, api_name="/img2img")
        output, _, info, *_ = single.result(timeout=120)
        html, grid_info, files = grid.result(timeout=120)
    seeds = [seed for seed, _, _ in turns_of]
    assert seeds == [5, 99, 5], turns_of  # cell 1, the single run, then cell 2
    assert info["steps_taken"] == 2 and len(grid_info["cells"]) == 2 and not grid_info["stopped"]
    assert "1 other visitor&#x27;s run went in between" in html  # the grid's own visitor sees what went in between


def test_a_crowd_of_ten_single_runs_go_between_two_grids_and_a_loopback(engine, turns_of):
    """10 visitors: 2 grids and a loopback, then 7 single runs. Every single run ends before either grid does, each
    result equals the same request run alone, pixel for pixel, and nobody hangs."""
    with serve_demo(engine) as (url, demo):
        visitors = [client_for(url) for _ in range(10)]  # connected before anyone clicks
        cells = {21: [100, 4], 22: [4, 3]}  # the first grid's first cell long enough for all the others to click

        def grid(visitor, seed):
            return visitor.submit(image=image_arg(), **BIG, seed=seed, steps=60, rows="strength", row_values="1.0",
                                  columns="steps", column_values=", ".join(map(str, cells[seed])), api_name="/grid")  # fmt: skip

        series = [grid(visitors[0], 21)]
        wait_for(lambda: len(turns_of) == 1)  # its first cell has the model
        series.append(grid(visitors[1], 22))
        series.append(visitors[2].submit(image=image_arg(), **SMALL, seed=23, strength=0.6, steps=6, loops=2,
                                         final_strength=0.5, api_name="/loopback"))  # fmt: skip
        singles = {seed: visitor.submit(image=image_arg(), **SMALL, seed=seed, steps=4, strength=0.5,
                                        api_name="/img2img") for visitor, seed in zip(visitors[3:], range(100, 107))}  # fmt: skip
        ended = {}
        for seed, job in singles.items():
            ended[seed] = (job.result(timeout=180), time.monotonic())
        grids = [job.result(timeout=180) for job in series[:2]]
        grids_ended = time.monotonic()
        loop = series[2].result(timeout=180)
        order = [seed for seed, _, _ in turns_of]
        assert max(at for _, at in ended.values()) <= grids_ended
        last_single = max(order.index(s) for s in singles)
        last_cells = [len(order) - 1 - order[::-1].index(s) for s in (21, 22)]
        assert all(last_single < i for i in last_cells), order  # every single run's turn came before either grid's end
        for seed, ((output, *_), _) in ended.items():  # each equals the same request alone
            alone = engine.generate(GenerationRequest(init_image=FIREPLACE, **SMALL, seed=seed, steps=4, strength=0.5))
            assert np.array_equal(pixels(output), np.asarray(alone.output)), seed
        for (_, info, files), seed in zip(grids, (21, 22)):
            assert [c["steps_taken"] for c in info["cells"]] == cells[seed]
            for cell, png in zip(info["cells"], files):
                alone = engine.generate(GenerationRequest(init_image=FIREPLACE, **BIG, seed=seed, steps=cell["steps"]))
                assert np.array_equal(pixels(png), np.asarray(alone.output)), cell
        assert len(loop[-1]["loops"]) == 2 and demo.handlers.page.turns.holding() == []  # both loops; no turn kept


def test_a_second_click_in_one_session_is_answered_and_stop_is_offered(engine):
    from gradio_client.exceptions import AppError

    with serve_demo(engine) as (url, demo):
        client = client_for(url)
        long = client.submit(image=image_arg(), **BIG, seed=5, steps=150, api_name="/img2img")
        started_running(long)
        with pytest.raises(AppError, match=r"You have a run going already: one at a time for each visitor\. "
                                           r"Press Stop to end it"):  # fmt: skip
            client.predict(image=image_arg(), **SMALL, seed=6, steps=2, strength=0.5, api_name="/img2img")
        client.predict(api_name="/stop")  # Stop, as the message says
        info = long.result(timeout=60)[2]
        again = client.predict(image=image_arg(), **SMALL, seed=6, steps=2, strength=0.5, api_name="/img2img")
    assert info["stopped"] and again[2]["steps_taken"] == 1  # once it stopped, the same visitor is served


def test_a_grid_estimated_over_the_limit_is_refused_with_its_numbers(tiny_checkpoint):
    from gradio_client.exceptions import AppError

    from sd_img2img.engine import Engine

    fresh = Engine(str(tiny_checkpoint), device="cpu", dtype="float32")  # nothing measured on this server yet
    with serve_demo(fresh, max_request_seconds=1) as (url, demo):
        client = client_for(url)
        grid = dict(image=image_arg(), **BIG, seed=5, steps=60, rows="strength", row_values="1.0, 0.9",
                    columns="steps", column_values="60, 59", api_name="/grid")  # fmt: skip
        first = {**grid, "row_values": "1.0", "column_values": "8, 6"}
        html, info, files = client.predict(**first)  # before any measurement only the step limits apply: it runs
        assert len(info["cells"]) == 2
        with pytest.raises(AppError) as refused:
            client.predict(**grid)
    message = str(refused.value)
    assert "this grid of 4 cells would take about" in message and "above this server's limit of 1 s" in message
    assert "run fewer cells, or fewer steps or smaller pictures in each" in message, message


def test_a_failed_cell_is_shown_failed_and_the_rest_go_on(engine, tiny_checkpoint):
    import torch

    from sd_img2img.engine import Engine
    from sd_img2img.engine.model_set import ModelSet

    broken = Engine(str(tiny_checkpoint), device="cpu", dtype="float32")
    with torch.no_grad():
        broken.loaded.img2img.unet.conv_out.bias.fill_(float("nan"))  # its runs raise: NaN latents
    models = ModelSet.of({"tiny": engine, "broken": broken})
    with serve_demo(models) as (url, demo):
        html, info, files = client_for(url).predict(image=image_arg(), **SMALL, seed=5, strength=0.5, steps=4,
                                                    rows="model", row_values="broken, tiny", columns="steps",
                                                    column_values="4, 6", api_name="/grid")  # fmt: skip
    assert [c["row"] for c in info["cells"]] == [2, 2] and len(files) == 2  # the tiny row ran after the broken one
    assert [f["row"] for f in info["failed"]] == [1, 1] and "NaN" in info["failed"][0]["error"]
    assert html.count('class="failed"') == 2 and "2 failed" in html and not info["stopped"]
