"""Settings from an image (a PNG, JPEG or WebP from any tool ``formats.image_settings`` reads): the form filled on the
page (``load_png``), the same as JSON through ``/read_settings``."""

from __future__ import annotations

import gradio as gr

from sd_img2img.formats.image_settings import read_image_settings
from sd_img2img.plan.request import RECORDED_FIELDS
from sd_img2img.plan.samplers import ALL_SAMPLER_NAMES
from sd_img2img.ui.form import fit_form
from sd_img2img.ui.html import png_note
from sd_img2img.ui.page import Page, shown_to_user, user_error

SETTINGS_FILE_TYPES = [".png", ".jpg", ".jpeg", ".webp"]  # what "Settings from an image" and /read_settings take


class PngImport:
    """What "Settings from an image" and ``/read_settings`` do."""

    def __init__(self, page: Page):
        self.page = page

    def read_settings(self, png: str | None, model: str | None = None) -> dict:
        """An image's generation settings (a PNG, JPEG or WebP written by this project, AUTOMATIC1111, InvokeAI,
        ComfyUI, Fooocus, NovelAI or SwarmUI), as the form's values.

        Returns {field: value} for each form field it fills (``prompt``, ``sampler``, ``steps``, …), plus ``tool``
        (who wrote the settings), ``found_in`` (where in the file they were: its text chunks, its EXIF UserComment,
        its stealth PNG info), ``model`` (what they were made with, for information) and ``notes`` (what did not
        carry over, and why); img2img takes the fields back to reproduce the picture. A seed above 2⁵³ − 1 comes back
        as its digits (text), which every JSON reader keeps.

        Args:
            png: a PNG, JPEG or WebP with generation settings: this app's, AUTOMATIC1111's (PNG text, JPEG/WebP EXIF
                UserComment, stealth PNG info), InvokeAI's, ComfyUI's, Fooocus's, NovelAI's or SwarmUI's.
        """
        if not png:
            raise user_error("give an image (PNG, JPEG or WebP) to read the settings of")
        with shown_to_user():
            found = read_image_settings(png)
        family = self.page.family(model)
        listed = tuple(spec.name for spec in self.page.status(model).loras)
        values, skipped = fit_form(found.request_kwargs(), family.samplers if family else ALL_SAMPLER_NAMES, listed)
        return {
            **values,
            "tool": found.tool,
            "found_in": found.found_in,
            "model": found.model,
            "notes": found.notes + skipped,
        }

    def load_png(self, path, model: str | None = None):
        """ "Settings from an image": one value per recorded field (``request.RECORDED_FIELDS``, skipped where the
        image has none), then a note saying what was filled and what was not."""
        if not path:
            return [gr.skip()] * (len(RECORDED_FIELDS) + 1)
        found = self.read_settings(path, model)
        return [found[name] if name in found else gr.skip() for name in RECORDED_FIELDS] + [png_note(found)]
