"""diffusers' classes by name, looked up one thread at a time.

diffusers and transformers import their modules lazily, on the first use of a name. Two threads doing that at once
(the page's first model loading in the background while the page works out its plan line or strength chart) can meet
a half-imported module: ``AttributeError: module 'diffusers' has no attribute 'LMSDiscreteScheduler'``,
``ImportError: cannot import name 'CLIPImageProcessor' from 'transformers'``. Every class the program looks up by
name (pipelines, schedulers) goes through ``diffusers_class``, under one lock, so that its module is imported whole
before another thread asks for another.
"""

from __future__ import annotations

import threading

_LOCK = threading.RLock()


def diffusers_class(name: str):
    """``diffusers.<name>`` (a pipeline, model or scheduler class), its module imported under the lock."""
    import diffusers

    with _LOCK:
        return getattr(diffusers, name)
