"""What runs inside Ray Serve: ``ModelWorker``, one replica serving one listed model with its own ``Engine``, and
``RunBoard``, the one replica that carries a visitor's Stop to the worker running their run.

A worker loads its model when its replica starts (Serve sends it runs only once it is up, so a visitor never waits
behind a load another worker has finished) and streams each run: a message per step as it is computed (its numbers and
encoded pictures, ``wire``), then the result. The run goes on in a thread (diffusers' loop is not async); the replica's
event loop relays its messages, so Serve can cancel the stream at any time:

- the page's Stop: the page tells the board; the worker waiting on the board for that run sets its stop flag, the run
  ends between steps as in-process, and its (stopped) result still streams back;
- the stream cancelled (the visitor left, the page closed its handler): Serve cancels the replica's task, the worker
  sets the run's stop flag, the run ends between steps and its result is not sent.

Each run's end (steps taken, stopped, cancelled, which worker) is told to the board, which keeps the last few.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from typing import Any

from sd_img2img.config import RAY_KEPT_REPORTS
from sd_img2img.engine.result import GenerationResult
from sd_img2img.models.options import EngineOptions
from sd_img2img.serve import wire

BOARD_APP = "sd-img2img-runs"  # the Serve application of the run board
BOARD = "RunBoard"  # … and its deployment
BOARD_WAIT_SECONDS = 30.0  # a worker's wait for a run's Stop returns after this long (and the worker waits again)
_END = object()


def keep_grpc_on_loopback() -> bool:
    """On a node whose address is loopback (the local instance ``cluster.start_local`` starts), open this replica's
    inter-deployment gRPC port on loopback rather than every interface; True if it did.

    Ray Serve 2.60 opens that port on ``[::]`` in every replica (``ray/serve/_private/replica.py``,
    ``_on_initialized``), though nothing off the node reaches a node whose address is loopback, and handles call
    replicas through Ray's actor calls unless ``RAY_SERVE_USE_GRPC_BY_DEFAULT`` is set. It runs in the replica's
    constructor, before Serve opens the port. A private name of Serve's: if it moves, nothing is changed here and
    ``tests/serve/test_ray_backend.py`` (which checks that the local instance listens on loopback only) fails.
    """
    import ipaddress

    import ray
    from ray.serve._private import replica

    if not ipaddress.ip_address(ray.util.get_node_ip_address()).is_loopback:
        return False
    opened = getattr(replica, "add_port_to_grpc_server", None)
    if opened is None or getattr(opened, "on_loopback", False):
        return opened is not None

    def on_loopback(server, address: str):
        return opened(server, address.replace("[::]", "127.0.0.1", 1).replace("0.0.0.0", "127.0.0.1", 1))

    on_loopback.on_loopback = True
    replica.add_port_to_grpc_server = on_loopback
    return True


def replica_name() -> str:
    """This replica's Ray actor name (what ``ray.get_actor(name, namespace="serve")`` finds), or the process id's."""
    import os

    import ray

    return ray.get_runtime_context().get_actor_name() or f"pid {os.getpid()}"


class RunBoard:
    """Stops asked for and runs ended, shared by the page and every worker (one replica, no CPU held)."""

    def __init__(self):
        keep_grpc_on_loopback()
        self._stops: dict[str, asyncio.Event] = {}
        self._ended: collections.OrderedDict[str, dict] = collections.OrderedDict()

    def _event(self, run_id: str) -> asyncio.Event:
        return self._stops.setdefault(run_id, asyncio.Event())

    async def stop(self, run_id: str) -> bool:
        """Stop ``run_id`` between steps (also when its run has not reached a worker yet); False if it has ended."""
        if run_id in self._ended:
            return False
        self._event(run_id).set()
        return True

    async def wait(self, run_id: str, timeout: float = BOARD_WAIT_SECONDS) -> bool:
        """Return True once ``run_id`` is asked to stop, False after ``timeout`` seconds without (a worker asks again
        while its run goes: a worker that died waiting holds nothing here for long)."""
        try:
            await asyncio.wait_for(self._event(run_id).wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    async def ended(self, run_id: str, report: dict[str, Any]) -> None:
        """``run_id`` is over: how it ended (``ModelWorker`` reports it); its stop is forgotten."""
        self._stops.pop(run_id, None)
        self._ended[run_id] = report
        while len(self._ended) > RAY_KEPT_REPORTS:
            self._ended.popitem(last=False)

    async def report(self, run_id: str) -> dict[str, Any] | None:
        """How ``run_id`` ended (steps taken, stopped, cancelled, the worker), or None while it goes (or long gone)."""
        return self._ended.get(run_id)


class ModelWorker:
    """One Serve replica serving one model: loaded when the replica starts, its runs streamed step by step.

    Args:
        name: the model's name on the page.
        source: what ``ModelSet`` loads for it (a hub id, folder, file, or a ``random*`` name built here).
        options: how it loads and runs (``EngineOptions``, its LoRAs included).
        cache: where ``random*`` checkpoints are built (None: the default cache folder).
        threads: torch's CPU threads (the replica's CPUs; None: torch's default).
    """

    def __init__(self, name: str, source: str, options: EngineOptions, cache: str | None, threads: int | None):
        from sd_img2img.engine.model_set import ModelSet

        keep_grpc_on_loopback()
        if threads:
            import torch

            torch.set_num_threads(threads)
        self.name = name
        self.replica = replica_name()
        self.models = ModelSet({name: source}, options, cache=cache)
        self.engine = self.models.engine(name)  # loads now: Serve routes runs here only once this returns
        self.engine.model_hash()  # for the PNGs' "Model hash", read once here rather than in a visitor's run
        self._board = None

    @property
    def board(self):
        if self._board is None:
            from ray import serve

            self._board = serve.get_deployment_handle(BOARD, app_name=BOARD_APP)
        return self._board

    def info(self) -> dict[str, Any]:
        """The loaded model: its family (``families.Family``), load time, hash and this replica's name."""
        return dict(
            family=self.engine.family,
            load_seconds=self.engine.load_seconds,
            model_hash=self.engine.model_hash(),
            replica=self.replica,
        )

    async def run(self, message: dict[str, Any], run_id: str):
        """Stream the prepared request ``message`` (``wire.prepared_message``): ``{"frame": …}`` per step, then
        ``{"result": …}``. ``run_id`` is the name the page stops it by (``RunBoard.stop``)."""
        loop = asyncio.get_running_loop()
        items: asyncio.Queue = asyncio.Queue()
        stop, cancelled = threading.Event(), threading.Event()
        prepared = wire.prepared_from(message)

        def put(item) -> None:
            loop.call_soon_threadsafe(items.put_nowait, item)

        watch = asyncio.ensure_future(self._watch(run_id, stop))
        threading.Thread(
            target=self._relay, args=(prepared, run_id, stop, cancelled, put), name="sd-img2img-relay", daemon=True
        ).start()
        try:
            while (item := await items.get()) is not _END:
                if isinstance(item, BaseException):
                    raise item
                yield item
        except asyncio.CancelledError:
            cancelled.set()
            raise
        finally:
            stop.set()  # the run ends between steps, whether the stream ended or was cancelled
            watch.cancel()

    async def _watch(self, run_id: str, stop: threading.Event) -> None:
        """Set ``stop`` once the page asks the board to stop ``run_id``."""
        try:
            while not await self.board.wait.remote(run_id):
                pass
        except asyncio.CancelledError:
            raise
        except Exception:  # the board is gone (the page's process ended): the stream's own cancel still stops it
            return
        stop.set()

    def _relay(self, prepared, run_id: str, stop: threading.Event, cancelled: threading.Event, put) -> None:
        """The run (in this thread, through the engine's own stream): each item encoded and handed to the event loop;
        how it ended told to the board."""
        report: dict[str, Any] = dict(replica=self.replica, steps_taken=None, stopped=False, error=None)
        started = time.perf_counter()
        try:
            for item in self.engine.stream(prepared, should_stop=stop.is_set):
                if isinstance(item, GenerationResult):
                    report.update(steps_taken=item.steps_taken, stopped=item.stopped)
                    put(dict(result=wire.result_message(item), replica=self.replica))
                else:
                    put(dict(frame=wire.frame_message(item), replica=self.replica))
        except BaseException as e:  # raised to the page from the stream
            report["error"] = f"{type(e).__name__}: {e}"
            put(e)
        finally:
            put(_END)
            report.update(cancelled=cancelled.is_set(), seconds=round(time.perf_counter() - started, 4))
            try:
                self.board.ended.remote(run_id, report)
            except Exception:  # the board is gone: nobody asks any more
                pass

    async def decode(self, latents: dict[str, Any], preview: str) -> bytes:
        """A view not decoded during a run: ``latents`` (``wire.tensor_message``) as a PNG, with ``preview``'s
        decoder (the page asks when a visitor switches views)."""
        decoder = self.engine.decoder(preview)
        image = await asyncio.to_thread(decoder.decode_later, wire.tensor_from(latents))
        return wire.picture_bytes(image)
