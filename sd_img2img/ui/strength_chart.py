"""The Explain tab's strength chart: what strength means on each listed model.

Strength on x, how much of the image survives the noise it enters at on y, one line a model, each point from the
model's own schedule (``plan.noise.entry_noise``: σ at the first step that runs for flow models and k-samplers, √ᾱ for
DDPM-style ones) at the steps this page starts it at and the size its family is made for. What users report ("FLUX
barely changes below 0.8", "SDXL 0.25 ≈ SD1.5 0.05") shows at a glance; an edit model lies flat at 0: its image is a
reference, never mixed into the noise. Models whose family cannot be told without loading them are left out.
"""

from __future__ import annotations

import gradio as gr

from sd_img2img.errors import UserInputError
from sd_img2img.plan.noise import entry_noise
from sd_img2img.plan.step_plan import plan_steps
from sd_img2img.ui.form import page_defaults
from sd_img2img.ui.html import esc
from sd_img2img.ui.page import Page

STRENGTHS = tuple(round(0.05 * k, 2) for k in range(1, 21))
NOTE = (
    "How much of your image is still in the latents when the first step runs, at each strength: one line per model, "
    "from its own schedule ({models}). Flow models (FLUX, SD3, Z-Image …) keep 1 − σ of it; SD and SDXL √ᾱ of its "
    "signal. Edit models take your image as a reference: none of it is mixed in, whatever the strength."
)


def strength_curve(family, steps: int) -> list[tuple[float, float]]:
    """(strength, % of the image kept) at each of ``STRENGTHS`` where a step runs; empty when the family's schedule is
    not known."""
    points = []
    for strength in STRENGTHS:
        try:
            plan = plan_steps(steps, strength, family=family)
        except UserInputError:  # no step runs at this strength
            continue
        noise = entry_noise(family, family.sampler, plan, family.size, family.size)
        if noise is None:
            return []
        points.append((strength, round(noise.kept * 100, 1)))
    return points


def chart_rows(page: Page) -> tuple[list[dict], list[str]]:
    """One row per point (the model by its family's label, and its name where two share one; the strength; the share
    of the image kept), and for each model what its line was computed at."""
    families = {name: page.family(name) for name in page.backend.names}
    families = {name: f for name, f in families.items() if f is not None}
    labels = [f.label for f in families.values()]
    rows, settings = [], []
    for name, family in families.items():
        steps = page_defaults(family, page.on_cpu)[0]
        model = family.label if labels.count(family.label) == 1 else f"{family.label} · {name}"
        settings.append(f"{model}: {family.sampler}, {steps} steps, {family.size}×{family.size}")
        rows += [dict(model=model, strength=s, kept=kept) for s, kept in strength_curve(family, steps)]
    return rows, settings


def strength_chart(page: Page) -> gr.LinePlot:
    """The chart, drawn by gradio's own line plot, and a note under it saying what it shows."""
    import pandas as pd

    rows, settings = chart_rows(page)
    plot = gr.LinePlot(
        pd.DataFrame(rows, columns=["model", "strength", "kept"]),
        x="strength",
        y="kept",
        color="model",
        title="What strength means",
        x_title="strength",
        y_title="% of the image kept",
        color_title="model",
        x_lim=[0, 1],
        y_lim=[0, 100],
        height=300,
        elem_id="strength-chart",
    )
    gr.HTML(f'<div class="strength-chart-note">{esc(NOTE.format(models="; ".join(settings)))}</div>')
    return plot
