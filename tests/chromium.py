"""Debian's Chromium driven by Playwright, as every browser test and the screenshot script launch it: the path, the
flags this machine's closed network needs, a persistent context in a throw-away profile, and typing into a number."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = Path(__file__).resolve().parents[1] / "screenshots"  # git-ignored
MISSING = f"{CHROMIUM} is missing (apt-get install chromium)"


def available() -> bool:
    return os.path.exists(CHROMIUM)


@contextmanager
def browser_context(**options):
    """A Chromium context in a new empty profile (``options``: Playwright's, e.g. ``viewport``)."""
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile, sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=ARGS, headless=True, **options
        )
        try:
            yield context
        finally:
            context.close()


def set_number(page, elem_id: str, value) -> None:
    """Type ``value`` into the number box of the component ``elem_id``, as a visitor does."""
    box = page.locator(f"#{elem_id} input[type=number]").first
    box.fill(str(value))
    box.press("Enter")
    box.blur()


# WCAG 2.x contrast of every text node under the page's own boxes, against the background drawn under it: the first
# opaque background among its ancestors, with the translucent ones above it blended in (and the text's own alpha).
CONTRAST_JS = """
(selectors) => {
  const parse = (c) => {
    const m = c.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const p = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const over = (top, bottom) => {  // top composited over an opaque bottom
    const a = top[3];
    return [0, 1, 2].map(i => top[i] * a + bottom[i] * (1 - a)).concat([1]);
  };
  const lum = (c) => {
    const lin = c.slice(0, 3).map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2];
  };
  const background = (el) => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c[3] > 0) { layers.push(c); if (c[3] >= 1) break; }
    }
    let base = [255, 255, 255, 1];
    if (layers.length && layers[layers.length - 1][3] >= 1) base = layers.pop();
    for (let i = layers.length - 1; i >= 0; i--) base = over(layers[i], base);
    return base;
  };
  const visible = (el) => {
    const s = getComputedStyle(el), r = el.getBoundingClientRect();
    return s.visibility !== "hidden" && s.display !== "none" && r.width > 0 && r.height > 0 && Number(s.opacity) > 0.05;
  };
  const found = [], seen = new Set();
  let measured = 0;
  for (const sel of selectors) {
    for (const root of document.querySelectorAll(sel)) {
      const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
      for (let n = walker.nextNode(); n; n = walker.nextNode()) {
        const text = n.textContent.trim(), el = n.parentElement;
        if (!text || !el || seen.has(n) || !visible(el)) continue;
        seen.add(n);
        const s = getComputedStyle(el);
        const isSvg = el instanceof SVGElement;
        let fg = parse(isSvg ? s.fill : s.color);
        if (!fg) continue;
        const bg = background(isSvg ? el.closest("div") || el : el);
        if (isSvg && s.fillOpacity) fg[3] *= Number(s.fillOpacity);
        fg = over(fg, bg);
        const l1 = lum(fg), l2 = lum(bg);
        const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
        measured++;
        if (ratio < 4.5) found.push({selector: sel, text: text.slice(0, 60), ratio: Math.round(ratio * 100) / 100,
          color: `rgb(${fg.slice(0, 3).map(Math.round)})`, background: `rgb(${bg.slice(0, 3).map(Math.round)})`,
          cls: el.className && el.className.baseVal !== undefined ? el.className.baseVal : el.className});
      }
    }
  }
  return {measured, failures: found};
}
"""


def contrast_failures(page, selectors) -> dict:
    """Every text node under ``selectors`` measured against the background drawn under it: how many, and those
    below 4.5:1 (WCAG AA for text) with their colours."""
    return page.evaluate(CONTRAST_JS, list(selectors))
