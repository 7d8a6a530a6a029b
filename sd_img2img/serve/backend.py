"""``RayBackend``: the page's ``Backend`` (``engine.backend``) with the models on Ray Serve workers.

The page, its queue and its sessions stay in this process; each run goes to a worker through a Serve handle. A request
is prepared here once (checks, the init image opened and fitted, the steps planned, for the model's family) and sent
as plain data (``wire``); its steps stream back as they are computed. ``capacity`` is what the workers take at once
(per model: replicas, or autoscaling's maximum, × runs per replica), so the page's queue lets that many run together.

Stop: the page's flag is read while waiting for the next step and handed to the run board, which stops the run on its
worker between steps; the (stopped) result still comes back, as in-process. Closing the stream (the page cancelling its
handler) cancels the Serve request, which stops the run on its worker too. A worker that dies mid-run is one message
to that visitor; Serve starts another, and the next run goes to a worker that is up.
"""

from __future__ import annotations

import collections
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from sd_img2img.config import RAY_STATUS_SECONDS, RAY_STOP_POLL_SECONDS
from sd_img2img.engine.backend import ModelStatus
from sd_img2img.engine.model_set import ModelSet
from sd_img2img.engine.result import GenerationResult
from sd_img2img.engine.step_recorder import StepFrame
from sd_img2img.errors import ModelLoadError, check_choice
from sd_img2img.models.families import Family
from sd_img2img.plan.images import ImageCache
from sd_img2img.plan.prepare import PreparedRequest, prepare_request
from sd_img2img.plan.request import GenerationRequest
from sd_img2img.serve import cluster, wire
from sd_img2img.serve.errors import page_error
from sd_img2img.serve.options import RayOptions
from sd_img2img.serve.timing import RemoteTiming
from sd_img2img.serve.worker import BOARD, BOARD_APP


class RayBackend:
    """The listed models, each served by Ray Serve replicas of ``worker.ModelWorker``.

    Args:
        models: the models (a ``ModelSet``: its names, sources, options and LoRAs; nothing is loaded here).
        layout: where Ray is and how the workers are laid out (``RayOptions``).
    """

    def __init__(self, models: ModelSet, layout: RayOptions | None = None):
        self.models = models
        self.layout = layout or RayOptions()
        self.names = models.names
        self.capacity = self.layout.capacity(len(self.names))
        self.gpus = self.layout.gpus_per_replica
        self.on_cpu = not self.gpus and models.options.device in ("auto", "cpu")
        self.images = ImageCache()
        self.timing = RemoteTiming()
        self.served: collections.Counter[str] = collections.Counter()  # runs finished per replica
        self.runs: dict[str, str | None] = {}  # runs in progress: run id → the replica running it (once known)
        self.handles: dict[str, Any] = {}
        self._apps = {name: cluster.app_name(i) for i, name in enumerate(self.names)}
        self._info: dict[str, dict] = {}  # model → its worker's info, once one is up
        self._status, self._status_at = None, 0.0
        self._connected = ""  # what start did to reach Ray (cluster.connect), undone by close
        self._deployed = time.monotonic()
        self._lock = threading.Lock()

    # -- the workers ---------------------------------------------------------------------------------------

    def start(self) -> RayBackend:
        """Reach Ray (``cluster.ClusterError`` naming the address when it cannot) and deploy the workers; their
        models load in the background."""
        if self.handles:
            return self
        self._connected = cluster.connect(self.layout)
        if self.gpus is None:
            self.gpus = 1.0 if cluster.cluster_gpus() > 0 and self.models.options.device != "cpu" else 0.0
        self.on_cpu = not self.gpus
        options = {name: self.models.options_of(name) for name in self.names}
        self._deployed = time.monotonic()
        self.handles = cluster.deploy(self.models.sources, options, self.layout, self.gpus, self.models.cache)
        return self

    def close(self) -> None:
        """Remove the workers (with the local Ray instance, if ``start`` started it: all of it at once)."""
        if self._connected != "started":
            from ray import serve

            for app in (*self._apps.values(), BOARD_APP):
                try:
                    serve.delete(app, _blocking=False)
                except Exception:  # gone already
                    pass
        self.handles = {}
        cluster.disconnect(self._connected)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every model has a worker up (or ``timeout`` seconds pass); True if they all have."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not all(self.describe(name).state in ("ready", "failed") for name in self.names):
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return all(self.describe(name).state == "ready" for name in self.names)

    def _serve_status(self):
        """``serve.status()``, reused for ``RAY_STATUS_SECONDS`` (the page asks every second while loading)."""
        with self._lock:
            if self._status is None or time.monotonic() - self._status_at > RAY_STATUS_SECONDS:
                from ray import serve

                self._status, self._status_at = serve.status(), time.monotonic()
            return self._status

    def replicas(self, name: str) -> dict[str, int]:
        """``name``'s replicas by state (``RUNNING``, ``STARTING``, …), as Serve counts them now."""
        from ray import serve

        app = serve.status().applications.get(self._apps[name])
        deployment = app.deployments.get(cluster.WORKER) if app is not None else None
        return {str(state): count for state, count in (deployment.replica_states if deployment else {}).items()}

    def describe(self, name: str) -> ModelStatus:
        check_choice("model", name, self.names)
        status = dict(name=name, family=self._known_family(name), loras=tuple(self.models.loras.get(name, ())))
        app = self._serve_status().applications.get(self._apps[name]) if self.handles else None
        deployment = app.deployments.get(cluster.WORKER) if app is not None else None
        running = (deployment.replica_states.get("RUNNING", 0) if deployment else 0) > 0
        if running:
            info = self._worker_info(name)
            status["family"] = info["family"]
            return ModelStatus(state="ready", load_seconds=info["load_seconds"], **status)
        if deployment is not None and str(deployment.status) in ("DEPLOY_FAILED", "DeploymentStatus.DEPLOY_FAILED"):
            return ModelStatus(state="failed", error=load_failure(deployment.message), **status)
        if not self.handles:
            return ModelStatus(state="idle", **status)
        return ModelStatus(state="loading", loading_seconds=time.monotonic() - self._deployed, **status)

    def _worker_info(self, name: str) -> dict:
        """What a worker of ``name`` says of its model (asked once, when one is up)."""
        if name not in self._info:
            self._info[name] = self.handles[name].info.remote().result()
        return self._info[name]

    def _known_family(self, name: str) -> Family | None:
        """``name``'s family as a worker told it, else as its files tell here without loading (None: not known)."""
        if name in self._info:
            return self._info[name]["family"]
        try:
            return self.models.family(name)
        except Exception:  # the files are not on this machine (the workers have them): a worker will tell
            return None

    # -- runs ----------------------------------------------------------------------------------------------

    def prepare(self, request: GenerationRequest, name: str) -> PreparedRequest:
        check_choice("model", name, self.names)
        family = self._known_family(name)
        if family is None:  # a worker tells once it is up
            family = self._worker_info(name)["family"]
        return prepare_request(request, family, self.models.loras.get(name, ()), self.images)

    def estimate(self, prepared: PreparedRequest, name: str) -> float | None:
        family = self._known_family(name)
        return self.timing.estimate(name, prepared, family) if family is not None else None

    def stream(self, prepared: PreparedRequest, name: str, should_stop: Callable[[], bool] | None = None) -> RemoteRun:
        check_choice("model", name, self.names)
        if not self.handles:
            raise ModelLoadError("the Ray backend was not started (RayBackend.start)")
        return RemoteRun(self, prepared, name, should_stop)

    def stop(self, run_id: str) -> None:
        """Ask the worker running ``run_id`` to stop it between steps (through the run board)."""
        from ray import serve

        serve.get_deployment_handle(BOARD, app_name=BOARD_APP).stop.remote(run_id).result()

    def report(self, run_id: str) -> dict | None:
        """How ``run_id`` ended on its worker (steps taken, stopped, cancelled, the replica), once it has."""
        from ray import serve

        return serve.get_deployment_handle(BOARD, app_name=BOARD_APP).report.remote(run_id).result()

    def decoder(self, name: str, preview: str) -> Callable:
        """Latents of a view not decoded during a run → its picture, decoded by one of ``name``'s workers."""
        handle = self.handles[name]

        def decode(latents) -> Any:
            try:
                return wire.picture(handle.decode.remote(wire.tensor_message(latents), preview).result())
            except Exception as e:
                raise page_error(e, "decoding a step's picture") from None

        return decode


def load_failure(message: str) -> str:
    """The line that says why a worker could not load its model, out of Serve's deployment message (which quotes
    the constructor's traceback): the last line, without the exception's module path."""
    lines = [line.strip() for line in (message or "").splitlines() if line.strip()]
    if not lines:
        return "the model workers failed to start (see Ray's logs)"
    last = lines[-1]
    head, sep, rest = last.partition(": ")
    return rest if sep and "." in head and " " not in head else last


class RemoteRun(Iterator):
    """One run on a worker, as the page iterates it: each ``StepFrame`` as it arrives, then the ``GenerationResult``.

    ``close()`` (the page cancelling its handler) cancels the Serve request; ``should_stop`` turning True stops the run
    on its worker between steps and the stopped result still arrives.
    """

    def __init__(self, backend: RayBackend, prepared: PreparedRequest, name: str, should_stop=None):
        self.backend, self.name, self.prepared = backend, name, prepared
        self.run_id = uuid.uuid4().hex
        self.replica: str | None = None
        self.frames: list[StepFrame] = []
        self._decode = backend.decoder(name, prepared.request.preview)
        self._done = threading.Event()
        backend.runs[self.run_id] = None
        handle = backend.handles[name].options(stream=True)
        self._response = handle.run.remote(wire.prepared_message(prepared), self.run_id)
        self._messages = iter(self._response)
        if should_stop is not None:
            threading.Thread(target=self._watch, args=(should_stop,), name="sd-img2img-stop", daemon=True).start()

    def _watch(self, should_stop: Callable[[], bool]) -> None:
        """Hand the page's Stop to the run board once it is pressed (read every ``RAY_STOP_POLL_SECONDS``)."""
        while not self._done.wait(RAY_STOP_POLL_SECONDS):
            if should_stop():
                try:
                    self.backend.stop(self.run_id)
                except Exception:  # the run ended meanwhile, or the board is gone: the run's own end follows
                    pass
                return

    def __next__(self) -> StepFrame | GenerationResult:
        if self._done.is_set():
            raise StopIteration
        try:
            message = next(self._messages)
        except StopIteration:
            self._finish()
            raise
        except BaseException as e:
            self._finish()
            raise page_error(e, "this run") from None
        if self.replica is None:
            self.replica = self.backend.runs[self.run_id] = message["replica"]
        if "frame" in message:
            frame = wire.frame_from(message["frame"], self._decode)
            self.frames.append(frame)
            return frame
        result = wire.result_from(message["result"], self.frames)
        self._drain()
        self.backend.served[message["replica"]] += 1
        family = self.backend._known_family(self.name)
        if family is not None:
            self.backend.timing.observe(self.name, self.prepared, result, family)
        self._finish()
        return result

    def _drain(self) -> None:
        """Read the stream's end, which follows the result at once: Serve counts the request as in progress on its
        worker until its caller has seen the end (a worker taking one run at a time would turn the next one away
        and make it back off, up to half a second a try, meanwhile)."""
        try:
            for _ in self._messages:
                pass
        except Exception:  # the run is over either way
            pass

    def _finish(self) -> None:
        self._done.set()
        self.backend.runs.pop(self.run_id, None)

    def close(self) -> None:
        """Cancel the run on its worker (it stops between steps) unless it has ended."""
        if not self._done.is_set():
            self._response.cancel()
        self._finish()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
