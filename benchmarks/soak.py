"""Soak test: N requests over M minutes against the demo on loopback; is anything growing?

Starts ``python app.py`` on 127.0.0.1 (a tiny random-weight checkpoint unless ``--model`` is given) with its
temporary folders inside one work folder, then sends img2img requests from ``--clients`` gradio_client
threads with varied strengths, step counts, samplers and seeds. It stops by itself after ``--requests``
requests or ``--minutes`` minutes, whichever comes first, and reports: requests served, errors, p50/p95
latency, the server's RSS (start, after warm-up, peak, end), open file descriptors and the temp-folder size
at start and end.

    python benchmarks/soak.py --requests 400 --minutes 10 --clients 4      # the figures in docs/reliability.md
    python benchmarks/soak.py --short                                      # CI: ~30 requests, < 1 minute

Only loopback is ever contacted.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
SAMPLERS = ("k_lms", "k_euler", "k_euler_a", "ddim", "dpmpp_2m", "plms")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def folder_bytes(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


def server_stats(proc: psutil.Process) -> tuple[int, int]:
    """(RSS bytes, open file descriptors) of the server and its children."""
    rss = fds = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            rss += p.memory_info().rss
            fds += p.num_fds()
        except psutil.Error:
            pass
    return rss, fds


def wait_for(url: str, proc: subprocess.Popen, timeout: float) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the app exited with status {proc.returncode} before serving")
        try:
            with urllib.request.urlopen(url + "/config", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"the app did not answer on {url} within {timeout:.0f} s")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="checkpoint folder (default: a tiny random one built for the run)")
    p.add_argument("--requests", type=int, default=200, help="stop after this many requests")
    p.add_argument("--minutes", type=float, default=5.0, help="stop after this many minutes")
    p.add_argument("--clients", type=int, default=4, help="concurrent clients")
    p.add_argument("--size", type=int, default=64, help="width and height of each request")
    p.add_argument("--short", action="store_true", help="CI mode: 30 requests or 1 minute, 3 clients")
    p.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    args = p.parse_args(argv)
    if args.short:
        args.requests, args.minutes, args.clients = min(args.requests, 30), min(args.minutes, 1.0), 3

    from gradio_client import Client, handle_file

    work = Path(tempfile.mkdtemp(prefix="sd-img2img-soak-"))
    tmp = work / "tmp"
    tmp.mkdir()
    model = args.model
    if model is None:
        from sd_img2img.testing.tiny import build_checkpoint

        model = str(build_checkpoint(work / "tiny"))
    init = work / "init.png"
    from sd_img2img.ui.examples import draw_fireplace

    draw_fireplace(256, 256).save(init)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TMPDIR": str(tmp),
        "GRADIO_TEMP_DIR": str(tmp / "gradio"),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "PYTHONUNBUFFERED": "1",
    }
    log = open(work / "app.log", "w")
    server = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "app.py"),
            "--model",
            model,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--device",
            "cpu",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(url, server, 120)
        proc = psutil.Process(server.pid)
        start_rss, start_fds = server_stats(proc)
        start_tmp = folder_bytes(tmp)
        latencies: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()
        sent = 0
        deadline = time.monotonic() + args.minutes * 60
        peak_rss = start_rss
        warm_rss = None

        def client_loop(k: int) -> None:
            nonlocal sent, warm_rss
            rng = random.Random(k)
            # as a browser does: files are fetched by URL when shown, not re-downloaded at every streamed step
            client = Client(url, verbose=False, download_files=False)
            while time.monotonic() < deadline:
                with lock:
                    if sent >= args.requests:
                        return
                    sent += 1
                    n = sent
                t = time.perf_counter()
                try:
                    client.predict(
                        image=handle_file(str(init)),
                        prompt=f"fire {n}",
                        negative_prompt="",
                        strength=rng.choice([0.3, 0.5, 0.7, 1.0]),
                        steps=rng.randint(4, 10),
                        real_steps=rng.random() < 0.3,
                        seed=rng.randrange(2**32),
                        sampler=rng.choice(SAMPLERS),
                        guidance_scale=7.5,
                        width=args.size,
                        height=args.size,
                        api_name="/img2img",
                    )
                    with lock:
                        latencies.append(time.perf_counter() - t)
                        if warm_rss is None and len(latencies) >= args.clients * 2:
                            warm_rss = server_stats(proc)[0]
                except Exception as e:  # counted and reported
                    with lock:
                        errors.append(f"{type(e).__name__}: {str(e)[:200]}")

        threads = [threading.Thread(target=client_loop, args=(k,), daemon=True) for k in range(args.clients)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        samples: list[tuple[int, int, int, int]] = []  # (served, rss, fds, temp bytes) over the run
        while any(t.is_alive() for t in threads):
            rss, fds = server_stats(proc)
            peak_rss = max(peak_rss, rss)
            samples.append((len(latencies), rss, fds, folder_bytes(tmp)))
            time.sleep(0.5)
        elapsed = time.monotonic() - t0
        time.sleep(1.0)
        end_rss, end_fds = server_stats(proc)
        end_tmp = folder_bytes(tmp)
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()

    lat = sorted(latencies)
    mb = 2**20
    report = {
        "requests": sent,
        "served": len(latencies),
        "errors": len(errors),
        "error_samples": errors[:5],
        "clients": args.clients,
        "minutes": round(elapsed / 60, 2),
        "latency_p50_s": round(statistics.median(lat), 3) if lat else None,
        "latency_p95_s": round(lat[min(len(lat) - 1, int(0.95 * len(lat)))], 3) if lat else None,
        "rss_start_mb": round(start_rss / mb, 1),
        "rss_warm_mb": round((warm_rss or start_rss) / mb, 1),
        "rss_peak_mb": round(peak_rss / mb, 1),
        "rss_end_mb": round(end_rss / mb, 1),
        "fds_start": start_fds,
        "fds_end": end_fds,
        "tmp_start_mb": round(start_tmp / mb, 2),
        "tmp_end_mb": round(end_tmp / mb, 2),
        # the same figures at each quarter of the requests served: flat or growing?
        "by_quarter": [
            {"served": n, "rss_mb": round(r / mb, 1), "fds": f, "tmp_mb": round(b / mb, 2)}
            for q in (1, 2, 3, 4)
            for n, r, f, b in [min(samples, key=lambda x: abs(x[0] - q * len(lat) / 4))]
            if samples
        ],
        "work_folder": str(work),
    }
    print(
        f"served {report['served']}/{report['requests']} requests in {report['minutes']} min "
        f"with {args.clients} clients, {report['errors']} errors"
    )
    print(f"latency p50 {report['latency_p50_s']} s, p95 {report['latency_p95_s']} s")
    print(
        f"RSS MB: start {report['rss_start_mb']}, after warm-up {report['rss_warm_mb']}, "
        f"peak {report['rss_peak_mb']}, end {report['rss_end_mb']}"
    )
    print(
        f"open fds: start {start_fds}, end {end_fds}; temp folder MB: start {report['tmp_start_mb']}, "
        f"end {report['tmp_end_mb']}"
    )
    for row in report["by_quarter"]:
        print(f"  after {row['served']:5d} served: RSS {row['rss_mb']} MB, {row['fds']} fds, temp {row['tmp_mb']} MB")
    print(json.dumps(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
