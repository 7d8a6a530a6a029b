"""Whole numbers past 2⁵³ on the page: a browser holds a number as a JavaScript double, exact only up to
``Number.MAX_SAFE_INTEGER`` (2⁵³ − 1), and seeds go up to 2⁶⁴ − 1 (ComfyUI's). So the seed box is text (``SeedBox``),
and the JSON the page shows (``ExactJSON``: the run info, the series' info, ``/read_settings``) carries such a number
as its digits: every seed keeps every digit, in the browser and through the API.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from sd_img2img.config import MAX_SEED, RANDOM_SEED

MAX_SAFE_INTEGER = 2**53 - 1  # the largest whole number a JavaScript number holds exactly (and every one below it)


def exact_in_browser(value: Any) -> Any:
    """``value`` (JSON-like) with every whole number a JavaScript number cannot hold exactly as its digits (text);
    everything else as it is.

    Args:
        value: a dict, list or value, as a JSON output returns it.
    """
    if isinstance(value, dict):
        return {key: exact_in_browser(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [exact_in_browser(item) for item in value]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_SAFE_INTEGER:
        return str(value)
    return value


class SeedBox(gr.Textbox):
    """The seed as text, so that a seed up to 2⁶⁴ − 1 keeps its digits in the browser (a ``gr.Number`` would round
    it); the handler's form conversion (``plan.request.seed_value``) turns the digits into the int. Through the API it
    takes a whole number or its digits."""

    is_template = True  # drawn by gradio's own Textbox

    def preprocess(self, payload: Any) -> Any:
        """A number sent through the API stays a number; text (the page's) stays text."""
        if isinstance(payload, (int, float)) and not isinstance(payload, bool):
            return payload
        return super().preprocess(payload)

    def api_info(self) -> dict[str, Any]:
        return {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "description": f"a whole number from 0 to {MAX_SEED - 1}, or its digits; {RANDOM_SEED} or empty: random",
        }

    def example_payload(self) -> Any:
        return RANDOM_SEED

    def example_value(self) -> Any:
        return RANDOM_SEED


class ExactJSON(gr.JSON):
    """``gr.JSON`` whose whole numbers past 2⁵³ − 1 reach the browser (and the API) as their digits
    (``exact_in_browser``)."""

    is_template = True  # drawn by gradio's own JSON

    def postprocess(self, value: Any) -> Any:
        return super().postprocess(exact_in_browser(value))
