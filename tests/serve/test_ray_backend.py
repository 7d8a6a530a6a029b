"""The Ray Serve backend on a real local Ray instance (loopback, no dashboard, 2 CPUs) with the tiny checkpoint: two
model workers (replicas) of one CPU each, the page in front of them through gradio_client.

One instance serves the module (starting Ray, Serve and two workers costs ~10 s on 2 cores). In-process references
run with torch on one thread, as each worker does (its one CPU): float sums over a different thread count can differ
in the last bit, and the comparisons here are pixel for pixel.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import pytest
from appserver import ROOT, free_port, serve
from helpers import max_diff

pytest.importorskip("ray.serve", reason="the Ray backend's tests need ray[serve] (pip install -e '.[ray]')")

FIREPLACE = str(ROOT / "examples" / "fireplace.png")
NAME = "tiny-sd15"  # the checkpoint folder's name: what the in-process engine's results call it too
SLOW = dict(strength=1.0, steps=40, width=512, height=512)  # ~60 ms a step on one CPU thread: 40 steps ≈ 2.5 s


@contextmanager
def torch_threads(n: int):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def backend(tiny_checkpoint, tiny_taesd):
    """Two workers of the tiny checkpoint on a local Ray instance (cpu, float32: as the ``engine`` fixture)."""
    from sd_img2img.engine.model_set import ModelSet
    from sd_img2img.models.options import EngineOptions
    from sd_img2img.serve.backend import RayBackend
    from sd_img2img.serve.options import RayOptions

    options = EngineOptions(device="cpu", dtype="float32", taesd=str(tiny_taesd))
    b = RayBackend(ModelSet({NAME: str(tiny_checkpoint)}, options), RayOptions(replicas=2, num_cpus=2))
    b.start()
    b.state_at_start = b.describe(NAME).state  # the page right after start-up, while the workers load
    assert b.wait(240), b.describe(NAME)
    wait_for_replicas(b, 2)
    yield b
    b.close()


@pytest.fixture(scope="module")
def url(backend):
    with serve(backend) as u:
        yield u


@pytest.fixture()
def client(url):
    from gradio_client import Client

    return Client(url, verbose=False, download_files=False)


def request(**kw):
    from sd_img2img.engine import GenerationRequest

    args = dict(prompt="fire", init_image=FIREPLACE, strength=0.7, steps=10, seed=7, width=128, height=128)
    return GenerationRequest(**{**args, **kw})


def wait_for_replicas(backend, n: int, timeout: float = 180.0) -> None:
    """Until ``n`` workers are up (Serve starts them, or one in a killed one's place)."""
    deadline = time.monotonic() + timeout
    while backend.replicas(NAME).get("RUNNING") != n:
        assert time.monotonic() < deadline, backend.replicas(NAME)
        time.sleep(0.2)


def run_on(backend, req, should_stop=None):
    from sd_img2img.engine.backend import run_to_end

    return run_to_end(backend, backend.prepare(req, NAME), NAME, should_stop)


def in_process(engine, req):
    from sd_img2img.engine.backend import LocalBackend

    local = LocalBackend(engine, name=NAME)
    engine.model_hash()  # as LocalBackend.start reads it (the workers read it at load)
    with torch_threads(1):
        return run_on(local, req)


def without_seconds(info: dict) -> dict:
    return {k: v for k, v in info.items() if k != "seconds"}


def assert_same_run(remote, local):
    """The same output, steps, frames (each view) and run info, pixel for pixel."""
    from sd_img2img.config import VIEWS

    assert max_diff(remote.output, local.output) == 0
    assert remote.steps_taken == local.steps_taken and len(remote.frames) == len(local.frames)
    for a, b in zip(remote.frames, local.frames):
        assert (a.index, a.total, a.timestep, a.sigma) == (b.index, b.total, b.timestep, b.sigma)
        for view in VIEWS:
            assert max_diff(a.image(view), b.image(view)) == 0, (a.index, view)
    assert without_seconds(remote.info()) == without_seconds(local.info())


# -- start-up -------------------------------------------------------------------------------------------------


def test_the_default_backend_imports_no_ray():
    code = (
        "import sys, app; from sd_img2img.ui.app import make_backend; from sd_img2img.settings import parse_settings;"
        " b = make_backend(parse_settings(['--model', 'random']));"
        " print(type(b).__name__, 'ray' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert out.stdout.strip() == "LocalBackend False", out.stderr[-2000:]


def test_ray_flags_and_their_variables(capsys):
    from sd_img2img.settings import parse_settings

    s = parse_settings(["--backend", "ray", "--ray-max-replicas", "4", "--ray-cpus-per-replica", "2"], environ={})
    assert s.backend == "ray" and s.ray.autoscaling and s.ray.replicas_at_most == 4 and s.ray.capacity(2) == 8
    env = {"SD_IMG2IMG_BACKEND": "ray", "SD_IMG2IMG_RAY_ADDRESS": "10.0.0.5:6379", "SD_IMG2IMG_RAY_REPLICAS": "3"}
    s = parse_settings([], environ=env)
    assert s.backend == "ray" and s.ray.address == "10.0.0.5:6379" and s.ray.capacity(1) == 3
    assert parse_settings(["--ray-replicas", "2"], environ=env).ray.replicas == 2  # the flag beats its variable
    assert parse_settings([], environ={}).backend == "local"
    bad = [
        (["--backend", "rays"], {}, "--backend"),
        ([], {"SD_IMG2IMG_RAY_REPLICAS": "two"}, "SD_IMG2IMG_RAY_REPLICAS"),
        ([], {"SD_IMG2IMG_RAY_REPLICAS": "0"}, "--ray-replicas"),
        (["--ray-min-replicas", "3", "--ray-max-replicas", "2"], {}, "--ray-max-replicas"),
        ([], {"SD_IMG2IMG_RAY_GPUS_PER_REPLICA": "-1"}, "--ray-gpus-per-replica"),
    ]
    for argv, environ, named in bad:
        with pytest.raises(SystemExit) as e:
            parse_settings(argv, environ=environ)
        err = capsys.readouterr().err
        assert e.value.code == 2 and named in err and len(err.strip().splitlines()) == 1, (argv, environ, err)


def test_an_unreachable_cluster_is_one_line_naming_the_address():
    port = free_port()  # nothing listens there
    address = f"127.0.0.1:{port}"
    out = subprocess.run(
        [sys.executable, "app.py", "--backend", "ray", "--ray-address", address, "--model", "random"],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 1 and len(lines) == 1, out.stderr[-2000:]
    assert address in lines[0] and "cannot reach the Ray cluster" in lines[0] and "ray start --head" in lines[0]


def test_workers_show_as_loading_then_ready(backend):
    assert backend.state_at_start == "loading"
    status = backend.describe(NAME)
    assert status.state == "ready" and status.family.name == "sd" and status.load_seconds > 0
    assert backend.replicas(NAME).get("RUNNING") == 2
    assert backend.capacity == 2 and backend.on_cpu is True


def test_the_local_instance_listens_on_loopback_only(backend):
    import ipaddress

    import psutil

    listening: dict[str, list[str]] = {}
    for process in [psutil.Process(), *psutil.Process().children(recursive=True)]:
        try:
            name = f"{process.pid} {process.name()} {' '.join(process.cmdline())[-60:]}"
            sockets = [c.laddr for c in process.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
        except psutil.NoSuchProcess:
            continue
        for laddr in sockets:
            listening.setdefault(name, []).append(laddr.ip)
    replicas = [name for name in listening if "ServeReplica" in name]
    assert len(replicas) >= 3 and any("gcs_server" in name for name in listening), listening  # 2 workers, the board

    def loopback(ip: str) -> bool:
        address = ipaddress.ip_address(ip.split("%")[0])
        mapped = getattr(address, "ipv4_mapped", None)
        return (mapped or address).is_loopback

    outside = {name: ips for name, ips in listening.items() if not all(map(loopback, ips))}
    assert not outside, f"listening beyond loopback: {outside}"


# -- runs -----------------------------------------------------------------------------------------------------


def test_a_run_on_a_worker_equals_the_in_process_run(backend, engine, tmp_path):
    from sd_img2img.formats.metadata import save_png

    req = request(seed=18446744073709551557)  # a 64-bit seed (ComfyUI's reach 2⁶⁴ − 1) crosses to the worker whole
    remote, local = run_on(backend, req), in_process(engine, req)
    assert remote.steps_taken == 7 and len(remote.frames) == 8 and remote.model_hash
    assert remote.seed == local.seed == 18446744073709551557
    assert_same_run(remote, local)
    a = save_png(remote.output, tmp_path / "remote.png", remote.settings())
    b = save_png(local.output, tmp_path / "local.png", local.settings())
    assert a.read_bytes() == b.read_bytes()  # the PNG, its metadata included, byte for byte


def test_a_view_not_decoded_during_the_run_is_decoded_by_a_worker(backend, engine):
    """With the taesd preview a run decodes the view asked for; the other is decoded when first asked (a switch of
    view on the page): by a worker, from the latents the frame brought, as in-process from the frame's latents."""
    req = request(preview="taesd", view="latents", seed=11, steps=6, strength=0.5)
    remote = run_on(backend, req)
    assert all(set(f.images) == {"latents"} for f in remote.frames)  # only the view asked came with the frames
    local = in_process(engine, req)
    assert_same_run(remote, local)  # x0 pictures: decoded on a worker now
    assert all("x0" in f.images for f in remote.frames)  # … and kept


def test_stop_ends_the_run_within_two_steps_on_its_worker(backend):
    flag, seen = threading.Event(), []
    stream = backend.stream(backend.prepare(request(**SLOW), NAME), NAME, should_stop=flag.is_set)
    result = None
    for item in stream:
        if hasattr(item, "output"):
            result = item
            break
        seen.append(item.index)
        if item.index == 3:
            flag.set()  # the page's Stop, as the visitor sees step 3
    assert result is not None and result.stopped and "stopped after" in " ".join(result.warnings)
    assert 3 <= result.steps_taken <= 5, result.steps_taken  # steps the worker ran, counted by its recorder
    assert seen == list(range(result.steps_taken + 1)) and len(result.frames) == result.steps_taken + 1
    report = wait_for_report(backend, stream.run_id)
    assert report["steps_taken"] == result.steps_taken and report["stopped"] and not report["cancelled"]
    assert run_on(backend, request(seed=8)).steps_taken == 7  # the next request succeeds


def test_closing_the_stream_cancels_the_run_on_its_worker(backend):
    stream = backend.stream(backend.prepare(request(**SLOW), NAME), NAME)
    for item in stream:
        if item.index == 3:
            break
    stream.close()  # what the page does when gradio cancels its handler
    report = wait_for_report(backend, stream.run_id)
    assert report["cancelled"] and 3 <= report["steps_taken"] <= 5, report
    assert run_on(backend, request(seed=9)).steps_taken == 7


def wait_for_report(backend, run_id: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while (report := backend.report(run_id)) is None:
        assert time.monotonic() < deadline, "the worker never told the board how the run ended"
        time.sleep(0.05)
    return report


# -- visitors -------------------------------------------------------------------------------------------------


def visit(client, seed: int, **kw):
    from gradio_client import handle_file

    args = dict(image=handle_file(FIREPLACE), prompt=f"fire {seed}", negative_prompt="", strength=0.7, steps=10,
                seed=seed, width=128, height=128)  # fmt: skip
    return client.submit(**{**args, **kw}, api_name="/img2img")


def picture_and_info(output) -> tuple:
    from PIL import Image

    png, gallery, info, *_ = output
    return Image.open(png["path"] if isinstance(png, dict) else png), len(gallery), without_seconds(info)


def test_four_visitors_on_two_workers_each_get_what_they_get_alone(backend, url, client):
    from gradio_client import Client

    before = dict(backend.served)
    visitors = [Client(url, verbose=False, download_files=False) for _ in range(4)]  # a session each
    jobs = [visit(visitor, seed) for visitor, seed in zip(visitors, (1, 2, 3, 4))]
    together = [picture_and_info(job.result()) for job in jobs]
    served = {replica: n - before.get(replica, 0) for replica, n in backend.served.items()}
    assert sum(served.values()) == 4 and len([n for n in served.values() if n]) == 2, served  # both workers served
    for seed, (picture, frames, info) in zip((1, 2, 3, 4), together):
        alone, alone_frames, alone_info = picture_and_info(visit(client, seed).result())
        assert max_diff(picture, alone) == 0 and frames == alone_frames == 8 and info == alone_info
        assert info["seed"] == seed and info["prompt"] == f"fire {seed}"


def test_a_worker_killed_mid_run_is_one_message_and_the_next_run_succeeds(backend, url, client):
    import ray
    from gradio_client import Client

    job = visit(client, 5, **SLOW)
    deadline = time.monotonic() + 60
    while not any(backend.runs.values()) or steps_so_far(job) < 2:
        assert time.monotonic() < deadline and not job.done(), "the run never started"
        time.sleep(0.02)
    killed = next(replica for replica in backend.runs.values() if replica)
    ray.kill(ray.get_actor(killed, namespace="serve"))
    with pytest.raises(Exception) as e:
        job.result()
    assert "stopped before it finished" in str(e.value) and "run it again" in str(e.value), str(e.value)
    assert picture_and_info(visit(client, 6).result())[1] == 8  # the next visitor's run succeeds at once
    deadline = time.monotonic() + 60
    while backend.replicas(NAME) == {"RUNNING": 2}:  # until Serve notices (its health check, every 2 s)
        assert time.monotonic() < deadline, "Serve never noticed the killed worker"
        time.sleep(0.1)
    wait_for_replicas(backend, 2)  # … and starts a worker in the killed one's place
    up = set(backend.served)
    visitors = [client, Client(url, verbose=False, download_files=False)]  # two sessions: one run in flight each
    for _ in range(20):  # two at once, one on each worker, once the page's handle has heard of the new one
        before = dict(backend.served)
        jobs = [visit(visitor, seed, steps=30) for visitor, seed in zip(visitors, (7, 8))]
        assert [picture_and_info(job.result())[1] for job in jobs] == [22, 22]
        if any(replica not in up for replica in backend.served):
            break
        time.sleep(0.2)
    served_now = {replica for replica, n in backend.served.items() if n > before.get(replica, 0)}
    restarted = set(backend.served) - up
    assert restarted and killed not in served_now and restarted <= served_now, (served_now, up)


def steps_so_far(job) -> int:
    outputs = job.outputs()
    gallery = outputs[-1][1] if outputs else None
    return len(gallery) if isinstance(gallery, list) else 0


def test_the_page_runs_as_many_at_once_as_the_workers_take(backend):
    from sd_img2img.settings import AppSettings
    from sd_img2img.ui import app

    demo = app.build_demo(backend, AppSettings(model=NAME))
    fns = demo.fns.values() if isinstance(demo.fns, dict) else demo.fns
    limits = {f.api_name: f.concurrency_limit for f in fns if f.api_name in ("img2img", "txt2img", "compare")}
    waiting = AppSettings().queue_size * 2  # every event starts; each run waits for one of the 2 workers' turns
    assert limits == dict(img2img=waiting, txt2img=waiting, compare=waiting) and backend.capacity == 2
    assert demo.handlers.page.turns.capacity == 2  # 2 workers × 1 run each
    html = "".join(str(getattr(b, "value", "")) for b in demo.blocks.values())
    assert "Up to 2 runs go at once" in html and "one at a time" not in html  # the page says so too


def test_wire_keeps_tensors_and_requests_exactly(fireplace):
    import torch

    from sd_img2img.engine import GenerationRequest, prepare_request
    from sd_img2img.serve import wire

    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        t = torch.randn(1, 4, 8, 8).to(dtype)
        assert torch.equal(wire.tensor_from(wire.tensor_message(t)), t)
    seed = 2**64 - 1
    prepared = prepare_request(
        GenerationRequest(prompt="fire\x00", init_image=fireplace, steps=10, strength=0.7, seed=seed)
    )
    back = wire.prepared_from(wire.prepared_message(prepared))
    assert back.plan == prepared.plan and back.warnings == prepared.warnings and back.seed == seed == back.request.seed
    assert max_diff(back.image, prepared.image) == 0 and back.request.init_image is back.image


def test_grid_loopback_and_animation_run_on_the_workers_as_in_process(backend, engine, tmp_path):
    """The grid's cells and loopback's loops are normal requests through the backend: on Ray workers they equal the
    in-process ones pixel for pixel, and the steps' animation is made from the frames the workers streamed."""
    from sd_img2img.engine.backend import LocalBackend
    from sd_img2img.formats.animation import step_animation
    from sd_img2img.series.grid import grid_axis, plan_grid
    from sd_img2img.series.loopback import LoopbackOptions, plan_loopback
    from sd_img2img.series.series import run_series

    local = LocalBackend(engine, name=NAME)
    base = request(seed=21, width=64, height=64)

    def grid_on(b):
        axes = grid_axis("strength", "0.4 0.7"), grid_axis("steps", "5")
        grid = plan_grid(base, axes, NAME, b.prepare, lambda name: b.describe(name).family)
        return [cell.result for cell in run_series(grid.series, b)]

    def loops_on(b):
        first = b.prepare(request(seed=21, width=64, height=64, strength=0.5), NAME)
        loopback = plan_loopback(first, NAME, LoopbackOptions(loops=2, final_strength=0.3), b.describe(NAME).family)
        return [x.output for x in run_series(loopback.series, b)]

    remote_cells, remote_loops = grid_on(backend), loops_on(backend)
    with torch_threads(1):
        local_cells, local_loops = grid_on(local), loops_on(local)
    assert [r.steps_taken for r in remote_cells] == [2, 3]
    for a, b in zip(remote_cells + remote_loops, local_cells + local_loops):
        assert max_diff(getattr(a, "output", a), getattr(b, "output", b)) == 0
    assert step_animation(remote_cells[1], tmp_path / "remote.webp", "x0").frames == 4  # the x0 view too


def test_a_four_cell_grid_on_two_workers_runs_two_cells_at_once(backend, client):
    """Through the page: a 4-cell grid's cells spread over the 2 workers, 2 at a time, as the workers report which of
    them runs each (the backend's runs in progress), and each worker serves 2 of them."""
    from gradio_client import handle_file

    before, at_once, done = dict(backend.served), [], threading.Event()

    def watch():
        while not done.is_set():
            at_once.append(len({replica for replica in list(backend.runs.values()) if replica is not None}))
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        html, info, files = client.predict(image=handle_file(FIREPLACE), prompt="fire", seed=5, strength=1.0,
                                           steps=40, width=256, height=256, rows="strength", row_values="1.0, 0.9",
                                           columns="steps", column_values="40, 41", api_name="/grid")  # fmt: skip
    finally:
        done.set()
        watcher.join()
    served = {replica: n - before.get(replica, 0) for replica, n in backend.served.items()}
    assert len(info["cells"]) == 4 and max(at_once) == 2, max(at_once)
    assert sorted(n for n in served.values() if n) == [2, 2], served
