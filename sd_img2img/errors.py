"""The errors the engine raises on purpose. Each message says what went wrong and what to change."""

from __future__ import annotations


class UserInputError(ValueError):
    """A request setting or an input file that cannot be used as given."""


class ModelLoadError(RuntimeError):
    """The checkpoint could not be loaded (unknown id, wrong folder, pickle-only weights, …)."""


class GenerationError(RuntimeError):
    """A run failed for a reason the user can act on: out of memory, NaN latents, …"""
