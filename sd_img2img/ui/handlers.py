"""What each event of the page does, apart from the layout, in one place to reach them by (``demo.handlers``: the
page's logic without a browser, for tests and embedding)."""

from __future__ import annotations

from dataclasses import dataclass

from sd_img2img.ui.diverge import DivergePage
from sd_img2img.ui.explain import Explain
from sd_img2img.ui.grid import GridPage
from sd_img2img.ui.loopback import LoopbackPage
from sd_img2img.ui.model_picker import ModelPicker
from sd_img2img.ui.page import Page
from sd_img2img.ui.png_import import PngImport
from sd_img2img.ui.runs import Runs


@dataclass
class Handlers:
    """The page's events, by what they are about."""

    page: Page  # the backend, the settings, the run-time state
    models: ModelPicker  # the picker, the badge, the LoRA sliders
    runs: Runs  # the plan line, the click, /img2img and /txt2img, the view switch, Stop
    explain: Explain  # the explain table, /compare
    png: PngImport  # settings from an image, /read_settings
    grid: GridPage  # the strength × steps grid, /grid
    loopback: LoopbackPage  # loopback, /loopback
    diverge: DivergePage  # where two runs part ways, /diverge

    @classmethod
    def of(cls, page: Page) -> Handlers:
        runs = Runs(page)
        return cls(
            page,
            ModelPicker(page),
            runs,
            Explain(page, runs),
            PngImport(page),
            GridPage(page, runs),
            LoopbackPage(page, runs),
            DivergePage(page, runs),
        )
