"""A run as an iterator: each step frame as soon as it is computed, then the result.

The run goes on in a worker thread and hands its frames over a queue; closing the iterator early (``.close()``, or a
page cancelling it) stops the run between steps, and the run's own errors are raised from the iterator.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable, Iterator, TypeVar

Frame = TypeVar("Frame")
Result = TypeVar("Result")


def stream(
    run: Callable[[Callable[[Frame], None], Callable[[], bool]], Result],
    should_stop: Callable[[], bool] | None = None,
) -> Iterator[Frame | Result]:
    """Yield what ``run(on_step, should_stop)`` hands ``on_step``, then what it returns.

    Args:
        run: the run; it calls ``on_step`` with each frame and polls the ``should_stop`` it is given between steps.
        should_stop: polled between steps too; when it turns True the run ends gracefully and the iterator still
            yields its (stopped) result.
    """
    items: queue.Queue = queue.Queue()
    stop = threading.Event()
    done = object()

    def work():
        try:
            items.put(run(items.put, lambda: stop.is_set() or (should_stop is not None and bool(should_stop()))))
        except BaseException as e:  # handed to the consumer
            items.put(e)
        finally:
            items.put(done)

    threading.Thread(target=work, name="sd-img2img-run", daemon=True).start()
    try:
        while True:
            item = items.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
