"""Shared fixtures: tiny random-weight checkpoints in the real SD1.5 layout, built once per test session.

Tests run offline: the Hugging Face hub is never contacted.
"""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# what the program caches (random checkpoints, model hashes) goes to a folder of this test run, not the user's home
os.environ.setdefault("SD_IMG2IMG_CACHE", tempfile.mkdtemp(prefix="sd-img2img-test-cache-"))
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):  # pytest-xdist: the cores shared out, not each worker on all of them
    share = (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, share)))  # torch's threads, here and in the tests' subprocesses

import pytest  # noqa: E402

# the layers' folders, longest first: pytest-xdist hands whole files to its workers in this order, so the short
# files at the end fill the workers' last minutes instead of one long file running alone
LONGEST_FIRST = ("ui", "serve", "cli", "models", "engine", "series", "project", "formats", "plan")


def pytest_collection_modifyitems(config, items):
    def folder(item) -> int:
        name = item.path.parent.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=folder)  # stable: each file's tests keep their order


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A tiny random SD1.5-layout checkpoint folder (model_index.json names StableDiffusionPipeline)."""
    from sd_img2img.testing.tiny import build_checkpoint

    return build_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny-sd15")


@pytest.fixture(scope="session")
def tiny_taesd(tmp_path_factory):
    from sd_img2img.testing.tiny import build_taesd

    return build_taesd(tmp_path_factory.mktemp("taesd") / "tiny-taesd")


@pytest.fixture(scope="session")
def engine(tiny_checkpoint, tiny_taesd):
    """One engine on the tiny checkpoint (cpu, float32), shared by the tests that don't change its settings."""
    from sd_img2img.engine import Engine

    e = Engine(str(tiny_checkpoint), device="cpu", dtype="float32", taesd=str(tiny_taesd))
    e.load()
    return e


@pytest.fixture(scope="session")
def fireplace():
    """A hand-drawn-style fireplace, like the InvokeAI img2img guide's init image."""
    from sd_img2img.ui.examples import draw_fireplace

    return draw_fireplace(384, 384)
