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
    """Build the page around ``models`` (an ``Engine`` or a ``ModelSet``) and serve it; yields the URL."""
    from sd_img2img.settings import AppSettings
    from sd_img2img.ui import app
    from sd_img2img.ui.state import ModelStatus

    status = ModelStatus(models).start()
    names = status.models.names
    s = AppSettings(model=names[0], more_models=names[1:], host="127.0.0.1", port=free_port(), **settings)
    demo = app.build_demo(status.models, s, status)
    _, url, _ = app.launch(demo, s, prevent_thread_lock=True, quiet=True)
    try:
        yield url
    finally:
        demo.close()
