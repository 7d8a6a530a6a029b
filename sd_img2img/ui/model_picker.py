"""The model picker's events: a model chosen (the form takes its family's samplers, defaults and LoRAs), the model
badge (loading / ready / failed), and the LoRA sliders kept in step with the ``loras`` text the runs take."""

from __future__ import annotations

import gradio as gr

from sd_img2img.errors import UserInputError
from sd_img2img.models.loras import format_scales, parse_scales
from sd_img2img.ui.form import page_defaults
from sd_img2img.ui.html import model_badge, model_choice_label
from sd_img2img.ui.page import Page


def sampler_choices(family) -> list[tuple[str, str]]:
    """The samplers that fit the model's family, after "the model's default" (empty: what an API call that names no
    sampler gets, whichever model it picks)."""
    return [(f"model default ({family.sampler})", "")] + [(name, name) for name in family.samplers]


class ModelPicker:
    """What the model picker, the badge and the LoRA sliders do."""

    def __init__(self, page: Page):
        self.page = page

    def choices(self) -> list[tuple[str, str]]:
        """The picker's entries: each served model's short name and family."""
        return [(model_choice_label(self.page.backend.describe(name)), name) for name in self.page.backend.names]

    @property
    def loading(self) -> bool:
        """The first model is still loading (the page keeps polling the badge)."""
        return self.page.status(None).state == "loading"

    def model_badge(self, model: str | None = None):
        return model_badge(self.page.status(model)), gr.Timer(active=self.loading)  # polls while the first loads

    def choose_model(self, model: str):
        """A visitor picked another model: the form takes its family's samplers and defaults (no strength slider for an
        edit model), its LoRAs; the badge its state."""
        family = self.page.family(model)
        loras = self.lora_updates(model)
        badge = model_badge(self.page.status(model))
        if family is None:
            return [gr.skip()] * 4 + [badge] + loras
        steps, strength, guidance = page_defaults(family, self.page.on_cpu)
        return [
            gr.update(choices=sampler_choices(family), value=""),
            steps,
            gr.update(value=strength, visible=family.takes_strength),  # an edit model's image is a reference
            guidance,
            badge,
        ] + loras

    # -- LoRAs ---------------------------------------------------------------------------------------------

    def lora_specs(self, model: str | None) -> tuple:
        """The LoRAs the starter listed for the model (``loras.LoraSpec``: name, start-up scale, …)."""
        return self.page.status(model).loras

    @property
    def lora_slots(self) -> int:
        """Sliders the page needs: the most LoRAs any served model has."""
        return max((len(self.lora_specs(name)) for name in self.page.backend.names), default=0)

    def lora_updates(self, model: str | None) -> list:
        """One update per LoRA slider for the model's LoRAs (named, at their start-up scale), the rest hidden;
        then the ``loras`` text they make."""
        specs = self.lora_specs(model)
        sliders = [
            gr.update(visible=True, label=spec.name, value=spec.scale)
            if i < len(specs)
            else gr.update(visible=False, value=0)
            for i, spec in enumerate(specs + (None,) * self.lora_slots)
        ]
        return sliders[: self.lora_slots] + [format_scales({spec.name: spec.scale for spec in specs})]

    def compose_loras(self, model: str | None, *scales) -> str:
        """The sliders' values as the ``loras`` text (``name:scale, …``; 0 is off)."""
        return format_scales({spec.name: scale for spec, scale in zip(self.lora_specs(model), scales)})

    def show_loras(self, model: str | None, text: str):
        """The ``loras`` text (filled from a PNG, say) shown on the sliders; names not listed are left out."""
        try:
            asked = parse_scales(text) or {}
        except UserInputError:
            asked = None
        specs = self.lora_specs(model)
        updates = [
            gr.update(value=asked.get(specs[i].name, 0.0)) if asked is not None and i < len(specs) else gr.skip()
            for i in range(self.lora_slots)
        ]
        return updates[0] if len(updates) == 1 else updates  # gradio takes one output's value as it is
