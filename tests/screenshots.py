"""Screenshots of the real page, desktop (1280 px) and phone (390 px), light and dark, for a before/after look at a UI
change, and the README's picture of the page.

    python tests/screenshots.py OUT_DIR [--model random --model random-sdxl …] [--theme light|dark|both]
    python tests/screenshots.py OUT_DIR --model random --theme light --card docs/page.png

Starts ``python app.py`` itself (offline, random weights, cpu, float32) on a free loopback port, drives Debian's
Chromium with Playwright through one run, the Explain table and (with several models) Compare models, and writes
``{desktop,phone}-{idle,run,explain,models}.png`` (light) and ``…-dark.png`` (``?__theme=dark``) into OUT_DIR.
``--card PATH`` also writes the desktop page after its run, first screen only, at half size: the README's picture.
It uses only the command line and the page, so the same script photographs any version of the app. Not a test
(pytest does not collect it).
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from chromium import browser_context, set_number

ROOT = Path(__file__).resolve().parents[1]
FIREPLACE = str(ROOT / "examples" / "fireplace.png")
VIEWPORTS = {"desktop": (1280, 800), "phone": (390, 844)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, seconds: float = 120) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            urllib.request.urlopen(url, timeout=2).read(1)
            return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"the app did not come up at {url}")


def full_page(page, path: Path) -> None:
    """A full-page screenshot with every picture loaded: gradio's images load lazily, when scrolled near, and a
    full-page shot does not scroll, so the page is scrolled to its end first (as a visitor reading it does)."""
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    page.wait_for_timeout(600)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(path), full_page=True)


THEMES = {"light": ("", ""), "dark": ("?__theme=dark", "-dark")}  # the page's query, the files' suffix


def shoot(url: str, out: Path, several: bool, themes: list[str]) -> None:
    with browser_context() as context:
        for theme in themes:
            query, suffix = THEMES[theme]
            for name, (width, height) in VIEWPORTS.items():
                shoot_one(context, url + query, out, f"{name}{{}}{suffix}.png", (width, height), several)


def shoot_one(context, url: str, out: Path, pattern: str, size: tuple[int, int], several: bool) -> None:
    """One viewport in one theme: idle, after a run (and its first screen, for the README), the Explain table (and
    Compare models); ``pattern`` names the files (``desktop{}-dark.png`` → ``desktop-run-dark.png``)."""
    from playwright.sync_api import expect

    def shot(state: str) -> Path:
        return out / pattern.format(f"-{state}")

    page = context.new_page()
    page.set_viewport_size({"width": size[0], "height": size[1]})
    page.goto(url)
    expect(page.locator(".model-status.ready, .model-status.idle")).to_be_visible(timeout=120_000)
    page.wait_for_timeout(500)
    full_page(page, shot("idle"))
    page.locator("#init-image input[type=file]").set_input_files(FIREPLACE)
    expect(page.locator("#init-image img").first).to_be_visible(timeout=15_000)
    page.locator("#prompt textarea").fill("a cozy fireplace with a roaring fire, oil painting")
    set_number(page, "strength", 0.7)
    set_number(page, "steps", 10)
    expect(page.locator("#plan-line")).to_contain_text("7 steps will run", timeout=10_000)
    page.locator("#run").click()
    expect(page.locator("#run-status")).to_contain_text("7 taken", timeout=120_000)
    page.wait_for_timeout(800)
    page.evaluate("window.scrollTo(0, 0)")
    page.wait_for_timeout(300)
    page.screenshot(path=str(shot("first-screen")))  # what a visitor sees first, after a run
    full_page(page, shot("run"))
    page.get_by_role("tab", name=re.compile("Explain")).click()
    page.locator("#compare-run").click()
    table = page.locator("#explain-table table.explain-table")
    expect(table.locator("tr.row-out td img")).to_have_count(2, timeout=120_000)
    page.wait_for_timeout(500)
    full_page(page, shot("explain"))
    if several:
        page.locator("#compare-by label", has_text="Compare models").click()
        page.wait_for_timeout(500)
        page.locator("#compare-run").click()
        count = len(page.locator("#compare-values textarea, #compare-values input").first.input_value().split(","))
        expect(table.locator("tr.row-out td img")).to_have_count(count, timeout=300_000)
        page.wait_for_timeout(500)
        full_page(page, shot("models"))
    page.close()


def write_card(out: Path, card: Path) -> Path:
    """The README's picture: the desktop page's first screen after its run, at half size (PNG, palette-reduced)."""
    from PIL import Image

    with Image.open(out / "desktop-first-screen.png") as shot:
        small = shot.convert("RGB").resize((shot.width // 2, shot.height // 2), Image.Resampling.LANCZOS)
    card.parent.mkdir(parents=True, exist_ok=True)
    small.quantize(colors=192, method=Image.Quantize.MEDIANCUT).save(card, optimize=True)
    return card


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument(
        "--model", action="append", default=None, help="as app.py's (default: random, random-sdxl, random-flux)"
    )
    p.add_argument("--theme", choices=("light", "dark", "both"), default="both", help="which themes (default both)")
    p.add_argument("--card", type=Path, default=None, help="also write the README's picture there (needs light)")
    args = p.parse_args(argv)
    models = args.model or ["random", "random-sdxl", "random-flux"]
    themes = ["light", "dark"] if args.theme == "both" else [args.theme]
    args.out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")
    env.setdefault("SD_IMG2IMG_CACHE", tempfile.mkdtemp(prefix="sd-img2img-shots-"))
    cmd = [sys.executable, str(ROOT / "app.py"), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]
    cmd += ["--dtype", "float32"] + [a for m in models for a in ("--model", m)]
    server = subprocess.Popen(cmd, cwd=ROOT, env=env)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_for(url)
        shoot(url, args.out, len(models) > 1, themes)
        if args.card is not None and "light" in themes:
            print(write_card(args.out, args.card))
    finally:
        server.terminate()
        server.wait(30)
    print("\n".join(sorted(str(f) for f in args.out.glob("*.png"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
