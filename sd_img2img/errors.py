"""The errors the engine raises on purpose. Each message says what went wrong and what to change."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path


class UserInputError(ValueError):
    """A request setting or an input file that cannot be used as given."""


class ModelLoadError(RuntimeError):
    """The checkpoint could not be loaded (unknown id, wrong folder, pickle-only weights, …)."""


class GenerationError(RuntimeError):
    """A run failed for a reason the user can act on: out of memory, NaN latents, …"""


class BackendError(RuntimeError):
    """Where the models run cannot be reached or started (a Ray cluster's address that does not answer, …)."""


def check_choice(what: str, value, choices: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise ``UserInputError`` listing them.

    The one wording of "unknown X; choose one of: …" for every setting with a fixed list of values.
    """
    choices = tuple(choices)
    if value not in choices:
        raise UserInputError(f"unknown {what} {value!r}; choose one of: {', '.join(choices)}")
    return value


def file_name(path: str | os.PathLike) -> str:
    """How a message names a file that exists: by its own name (the user knows which file they gave; a server's
    upload folder, such as gradio's ``/tmp/gradio/<hash>/``, is not theirs to see)."""
    return f"'{Path(path).name}'"
