"""The package as pip builds and installs it: the wheel holds the example pictures, the license its metadata names and
the ``sd-img2img`` command; installed on its own (no clone beside it), ``sd-img2img serve`` serves the page with its
examples (slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """This checkout built as pip builds it (with the setuptools pyproject.toml asks for, already installed here)."""
    out = tmp_path_factory.mktemp("wheel")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    (built,) = out.glob("sd_img2img-*.whl")
    return built


def test_the_wheel_ships_the_examples_the_license_and_the_command(wheel):
    from sd_img2img.ui.examples import EXAMPLES

    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        metadata = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        entry_points = z.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
        (license_file,) = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
        license_text = z.read(license_file).decode()
    assert {f"sd_img2img/examples/{name}" for name, _, _ in EXAMPLES} <= names
    assert "sd_img2img/ui/app.css" in names and "sd_img2img/testing/tiny.py" in names  # the offline demo too
    assert "License-Expression: Apache-2.0" in metadata and "Apache License" in license_text
    assert "Version 2.0, January 2004" in license_text and license_text == (ROOT / "LICENSE").read_text()
    assert "Classifier: Programming Language :: Python :: 3" in metadata and "Project-URL: Homepage" in metadata
    assert "Provides-Extra: mcp" in metadata and "sd-img2img = sd_img2img.cli:main" in entry_points


def example_urls(config: dict) -> list[str]:
    """The example pictures' URLs in the page's config (gr.Examples' samples)."""
    urls = []
    for component in config["components"]:
        for sample in component.get("props", {}).get("samples") or []:
            urls += [cell["url"] for cell in sample if isinstance(cell, dict) and cell.get("url")]
    return urls


@pytest.mark.slow
def test_the_installed_wheel_serves_its_examples(wheel, tmp_path):
    """pip installs the wheel alone into a folder (its dependencies are this environment's: no torch download), and
    ``sd-img2img serve`` from there, in a folder with no clone, serves the page and the example pictures."""
    target = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)]
    subprocess.run(pip, check=True, capture_output=True, timeout=300)
    from appserver import free_port

    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(target), "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    code = "import sys; from sd_img2img.cli import main; sys.exit(main())"  # what target/bin/sd-img2img runs
    args = ["serve", "--model", "random", "--device", "cpu", "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen([sys.executable, "-c", code, *args], cwd=tmp_path, env=env, stderr=subprocess.PIPE)
    try:
        url, config = f"http://127.0.0.1:{port}/", None
        deadline = time.monotonic() + 120
        while config is None and time.monotonic() < deadline and server.poll() is None:
            try:
                config = json.load(urllib.request.urlopen(url + "config", timeout=5))
            except OSError:
                time.sleep(0.5)
        assert config is not None, server.stderr.read().decode()[-2000:] if server.poll() is not None else "no page"
        urls = example_urls(config)
        assert len(urls) == 3 and all(str(target) in u or "/file=" in u for u in urls), urls
        for example in urls:
            picture = urllib.request.urlopen(example, timeout=10).read()
            assert picture[:8] == b"\x89PNG\r\n\x1a\n"  # the shipped picture, from the installed package
    finally:
        server.terminate()
        server.wait(30)
    where = [sys.executable, "-c", "import sd_img2img; print(sd_img2img.__file__)"]
    found = subprocess.run(where, env=env, cwd=tmp_path, text=True, capture_output=True)
    assert found.stdout.startswith(str(target))  # the installed package ran, not this checkout
