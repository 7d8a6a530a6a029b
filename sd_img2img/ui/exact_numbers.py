"""Whole numbers past 2⁵³ on the page: a browser holds a number as a JavaScript double, exact only up to
``Number.MAX_SAFE_INTEGER`` (2⁵³ − 1), and seeds go up to 2⁶⁴ − 1 (ComfyUI's). So the seed box is text (``seed_box``),
and the JSON the page shows (``exact_json``: the run info, the series' info, ``/read_settings``) carries such a number
as its digits: every seed keeps every digit, in the browser and through the API.

Both are gradio's own components with one method replaced on the instance (as ``layout.readable_uploads`` does): a
subclass of a gradio component makes gradio write a ``.pyi`` stub beside the module defining it.
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


def seed_box(**options) -> gr.Textbox:
    """The seed as text, so that a seed up to 2⁶⁴ − 1 keeps its digits in the browser (a ``gr.Number`` would round
    it); the handler's form conversion (``plan.request.seed_value``) turns the digits into the int. Through the API it
    takes a whole number (kept a number) or its digits.

    Args:
        options: ``gr.Textbox``'s (value, label, info, elem_id, …).
    """
    box = gr.Textbox(**options)
    as_text = box.preprocess

    def preprocess(payload: Any) -> Any:
        if isinstance(payload, (int, float)) and not isinstance(payload, bool):
            return payload
        return as_text(payload)

    box.preprocess = preprocess
    box.api_info = lambda: {
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "description": f"a whole number from 0 to {MAX_SEED - 1}, or its digits; {RANDOM_SEED} or empty: random",
    }
    box.example_payload = box.example_value = lambda: RANDOM_SEED
    return box


def exact_json(**options) -> gr.JSON:
    """``gr.JSON`` whose whole numbers past 2⁵³ − 1 reach the browser (and the API) as their digits
    (``exact_in_browser``).

    Args:
        options: ``gr.JSON``'s (label, elem_id, …).
    """
    component = gr.JSON(**options)
    as_json = component.postprocess
    component.postprocess = lambda value: as_json(exact_in_browser(value))
    return component
