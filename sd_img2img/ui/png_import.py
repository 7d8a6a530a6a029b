"""Settings from a PNG: the form filled on the page (``load_png``), the same as JSON through ``/read_settings``."""

from __future__ import annotations

import gradio as gr

from sd_img2img.formats.png_settings import read_png_settings
from sd_img2img.plan.request import RECORDED_FIELDS
from sd_img2img.plan.samplers import ALL_SAMPLER_NAMES
from sd_img2img.ui.form import fit_form
from sd_img2img.ui.html import png_note
from sd_img2img.ui.page import Page, shown_to_user, user_error


class PngImport:
    """What "Settings from a PNG" and ``/read_settings`` do."""

    def __init__(self, page: Page):
        self.page = page

    def read_settings(self, png: str | None, model: str | None = None) -> dict:
        """A PNG's generation settings, written by this project, AUTOMATIC1111, InvokeAI or ComfyUI, as the form's
        values.

        Returns {field: value} for each form field it fills (``prompt``, ``sampler``, ``steps``, …), plus ``tool``
        (who wrote the settings), ``model`` (what they were made with, for information) and ``notes`` (what did not
        carry over, and why); img2img takes the fields back to reproduce the picture.

        Args:
            png: a PNG file with generation settings in its text chunks (this app's, AUTOMATIC1111's "parameters",
                InvokeAI's or ComfyUI's).
        """
        if not png:
            raise user_error("give a PNG to read the settings of")
        with shown_to_user():
            found = read_png_settings(png)
        family = self.page.family(model)
        listed = tuple(spec.name for spec in self.page.status(model).loras)
        values, skipped = fit_form(found.request_kwargs(), family.samplers if family else ALL_SAMPLER_NAMES, listed)
        return {**values, "tool": found.tool, "model": found.model, "notes": found.notes + skipped}

    def load_png(self, path, model: str | None = None):
        """ "Settings from a PNG": one value per recorded field (``request.RECORDED_FIELDS``, skipped where the PNG
        has none), then a note saying what was filled and what was not."""
        if not path:
            return [gr.skip()] * (len(RECORDED_FIELDS) + 1)
        found = self.read_settings(path, model)
        return [found[name] if name in found else gr.skip() for name in RECORDED_FIELDS] + [png_note(found)]
