"""The demo launched in-process on 127.0.0.1 (a free port) with the tiny random checkpoint, for the app tests."""

from __future__ import annotations

import socket
import sys
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(models, **settings):
    """Build the page around ``models`` (an ``Engine``, a ``ModelSet`` or a backend) and serve it; yields the URL."""
    with serve_demo(models, **settings) as (url, _):
        yield url


@contextmanager
def serve_demo(models, **settings):
    """As ``serve``, yielding the URL and the page (``demo.handlers`` reach its events without a browser)."""
    from sd_img2img.settings import AppSettings
    from sd_img2img.ui import app

    backend = app.as_backend(models)
    if hasattr(backend, "start"):
        backend.start()
    names = backend.names
    s = AppSettings(model=names[0], more_models=names[1:], host="127.0.0.1", port=free_port(), **settings)
    demo = app.build_demo(backend, s)
    _, url, _ = app.launch(demo, s, prevent_thread_lock=True, quiet=True)
    try:
        yield url, demo
    finally:
        demo.close()
