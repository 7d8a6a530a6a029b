"""Reaching Ray: join a running cluster (``RayOptions.address``), or start a local instance that nothing off this
machine can reach; then deploy the model workers on it.

Ray's own APIs are unauthenticated by design (the 2023 "ShadowRay" attacks through the jobs API, CVE-2023-48022;
Ray 2.60 adds a token, on by default), so the local instance binds to loopback: its node's address is 127.0.0.1
(``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, the single-machine mode Ray uses on macOS and Windows, makes Ray's
processes bind their ports there), the dashboard and with it the jobs API are off, Serve's HTTP proxy is off (the
page calls the workers through handles), and each replica's inter-deployment gRPC port is moved to loopback
(``worker.keep_grpc_on_loopback``). Only the page's port faces visitors. A cluster's ports are the operator's to keep
on a private network (docs/crowd.md).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from urllib.parse import urlsplit

from sd_img2img.config import RAY_CONNECT_SECONDS
from sd_img2img.errors import BackendError
from sd_img2img.models.options import EngineOptions
from sd_img2img.serve.options import RayOptions

LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": Ray's single-machine mode: its node address is loopback
APP_PREFIX = "sd-img2img-model-"  # one Serve application per listed model: sd-img2img-model-0, -1, …
WORKER = "ModelWorker"  # each application's one deployment


class ClusterError(BackendError):
    """Ray cannot be reached or started; the message names the address and says what to do."""


def app_name(index: int) -> str:
    """The Serve application serving the ``index``-th listed model (names may hold '/' or ':'; these do not)."""
    return f"{APP_PREFIX}{index}"


def check_reachable(address: str, timeout: float = RAY_CONNECT_SECONDS) -> None:
    """``ClusterError`` unless ``address`` (``host:port`` or ``ray://host:port``; ``auto`` is not checked) takes a TCP
    connection within ``timeout`` seconds: said in one line at start-up rather than after Ray's own minute of
    retries."""
    if address == "auto":
        return
    parts = urlsplit(address if "://" in address else f"//{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host = port = None
    if not host or not port:
        raise ClusterError(f"the Ray address {address!r} is not host:port (or ray://host:port, or auto)")
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise ClusterError(
            f"cannot reach the Ray cluster at {address} ({reason}); start one there with `ray start --head`, "
            "or leave --ray-address out to start a local one"
        ) from None


def connect(options: RayOptions) -> str:
    """Join ``options.address`` or start a local instance on loopback (unless this process is connected already),
    then start Serve without its HTTP proxy. Returns what it did, for ``disconnect``: ``"started"`` (the local
    instance), ``"joined"`` (the cluster at the address) or ``"connected"`` (nothing: Ray was up in this process).
    ``ClusterError`` when the address does not answer or Ray fails to start."""
    done = "connected"
    try:
        if options.address:
            check_reachable(options.address)
            import ray

            if not ray.is_initialized():
                ray.init(address=options.address, log_to_driver=False)
                done = "joined"
        elif start_local(options.num_cpus):
            done = "started"
        from ray import serve

        serve.start(proxy_location="Disabled")
    except ClusterError:
        raise
    except Exception as e:
        where = f"the Ray cluster at {options.address}" if options.address else "a local Ray instance"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ClusterError(f"cannot use {where}: {first}") from None
    return done


def start_local(num_cpus: int | None = None, num_gpus: int | None = None) -> bool:
    """A Ray instance for this machine only (loopback, no dashboard), unless this process is connected already;
    True if it started one."""
    os.environ[LOOPBACK_ENV] = "0"  # read when ray is imported: set before
    import ray

    if ray.is_initialized():
        return False
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False  # in case ray was imported before the variable was set
    ray.init(
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        include_dashboard=False,  # no dashboard, so no jobs API either
        dashboard_host="127.0.0.1",
        log_to_driver=False,  # the workers' logs stay in Ray's session folder (/tmp/ray/session_latest/logs)
        configure_logging=False,
    )
    return True


def disconnect(done: str) -> None:
    """Undo what ``connect`` did (``done``): stop Serve and the local instance it started, or leave the cluster it
    joined; a Ray this process was connected to before is left as it was."""
    import ray
    from ray import serve

    if done == "started":
        serve.shutdown()
    if done in ("started", "joined"):
        ray.shutdown()


def cluster_gpus() -> float:
    """The GPUs the cluster has (0 on CPU machines)."""
    import ray

    return float(ray.cluster_resources().get("GPU", 0))


def deploy(
    sources: Mapping[str, str],
    options: Mapping[str, EngineOptions],
    layout: RayOptions,
    gpus: float,
    cache: str | None = None,
) -> dict:
    """One Serve application per model (``app_name``), each a ``ModelWorker`` deployment laid out by ``layout``
    holding ``gpus`` GPUs a replica, plus the run board; returns each model's handle at once (the replicas load their
    models in the background: ``serve.status()`` says when they are up).

    Args:
        sources: model name → what its workers load.
        options: model name → its ``EngineOptions`` (its LoRAs included).
        layout: replicas, autoscaling, CPUs and runs at once per replica.
        gpus: GPUs per replica (0 on a CPU cluster).
        cache: where the workers build ``random*`` checkpoints (None: their default cache folder).
    """
    from ray import serve

    from sd_img2img.serve.worker import BOARD, BOARD_APP, ModelWorker, RunBoard

    threads = max(1, int(layout.cpus_per_replica)) if not gpus else None
    board = serve.deployment(RunBoard, name=BOARD, num_replicas=1, max_ongoing_requests=10_000)
    board = board.options(ray_actor_options={"num_cpus": 0}, graceful_shutdown_timeout_s=1)  # its waits hold nothing
    targets = [serve.RunTarget(board.bind(), name=BOARD_APP, route_prefix=None)]
    worker = serve.deployment(ModelWorker, name=WORKER).options(**layout.deployment_options(gpus))
    for index, (name, source) in enumerate(sources.items()):
        app = worker.bind(name, source, options[name], cache, threads)
        targets.append(serve.RunTarget(app, name=app_name(index), route_prefix=None))
    handles = serve.run_many(targets, wait_for_applications_running=False)
    return dict(zip(sources, handles[1:]))
