"""Two runs' steps side by side: each step of the shorter run paired with the longer run's step at the nearest noise
level, and each pair's pictures compared.

Two schedules rarely share timesteps (30 steps at strength 0.7 run 21, 29 run 20, at other σ), so steps are paired by
the noise level their latents are at: σ (``StepFrame.sigma``) for k-diffusion samplers and flow models, the timestep
for DDPM-style ones (DDIM, PLMS, DPM-Solver, LCM: no σ), and by the timestep too when only one side has a σ. Step 0
goes with step 0 (each run's starting point); every later step of the shorter run takes the longer run's step whose
level is nearest, never an earlier one than its neighbour took (the pairs keep the steps' order).

Each pair's pictures are the predicted final image (the ``x0`` view; step 0, which has no prediction yet, shows what
the run starts from), compared as 0–255 RGB: their mean absolute difference, the mean absolute difference of the
latents behind them, and a heat map of |a − b|.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from sd_img2img.config import DIVERGE_MAP_FULL
from sd_img2img.engine.step_recorder import StepFrame

VIEW = "x0"  # the pictures compared: the predicted final image
# a heat map's colours, from "the same" to "far apart" (black, purple, red, orange, pale yellow: inferno's stops)
HEAT = np.array([(0, 0, 4), (87, 16, 110), (188, 55, 84), (249, 142, 9), (252, 255, 164)], dtype=np.float64)


@dataclass
class AlignedStep:
    """One pair: a step of each run at (nearly) one noise level, and how far apart their pictures are.

    Args:
        a_step, b_step: the step of each run (0: its starting point).
        sigma_a, sigma_b: the noise level σ of each step's latents (None where the sampler has no σ).
        timestep_a, timestep_b: the timestep each step ran at (None for step 0).
        a_image, b_image: the pictures compared (the x0 view).
        difference: their mean absolute difference, 0–255 RGB.
        latent_difference: the mean absolute difference of the latents behind them (None where a run's latents were
            not kept, as a remote worker may not send them).
        map: |a − b| as a heat image (``heat_map``).
    """

    a_step: int
    b_step: int
    sigma_a: float | None
    sigma_b: float | None
    timestep_a: int | None
    timestep_b: int | None
    a_image: Image.Image
    b_image: Image.Image
    difference: float
    latent_difference: float | None
    map: Image.Image

    def level(self, shorter: str) -> float | None:
        """The shorter run's noise level at this pair: its σ, else its timestep (None for a step 0 without σ)."""
        sigma, timestep = (self.sigma_a, self.timestep_a) if shorter == "a" else (self.sigma_b, self.timestep_b)
        return sigma if sigma is not None else timestep


def aligned_by(a: Sequence[StepFrame], b: Sequence[StepFrame]) -> str:
    """``sigma`` when both runs have a σ at every step taken, else ``timestep``."""
    taken = [*a[1:], *b[1:]]
    return "sigma" if all(f.sigma is not None for f in taken) else "timestep"


def pair_steps(a: Sequence[StepFrame], b: Sequence[StepFrame]) -> list[tuple[int, int]]:
    """(step of a, step of b) for each step of the shorter run (``a`` when they are as long), step 0 with step 0,
    each later one with the longer run's step at the nearest noise level, in order."""
    if not a or not b:
        return []
    by = aligned_by(a, b)
    swap = len(b) < len(a)
    short, long = (b, a) if swap else (a, b)
    pairs, j = [(0, 0)], 1
    for frame in short[1:]:
        if len(long) < 2:
            break
        level = getattr(frame, by)
        candidates = range(j, len(long))
        j = min(candidates, key=lambda k: (abs(getattr(long[k], by) - level), k))
        pairs.append((frame.index, long[j].index))
    return [(q, p) for p, q in pairs] if swap else pairs


def picture_difference(a: Image.Image, b: Image.Image) -> float:
    """The mean absolute difference of two pictures of one size, over every pixel's R, G and B (0–255)."""
    if a.size != b.size:
        raise ValueError(f"pictures of different sizes cannot be compared: {a.size} and {b.size}")
    return float(np.abs(_rgb(a) - _rgb(b)).mean())


def heat_map(a: Image.Image, b: Image.Image, full: float = DIVERGE_MAP_FULL) -> Image.Image:
    """|a − b| as a heat image: each pixel's mean difference over R, G and B, black where they agree, through purple,
    red and orange to pale yellow at ``full`` levels apart (of 255) or more."""
    distance = np.abs(_rgb(a) - _rgb(b)).mean(axis=2)
    position = np.clip(distance / full, 0.0, 1.0) * (len(HEAT) - 1)
    low = np.minimum(position.astype(int), len(HEAT) - 2)
    share = (position - low)[..., None]
    colours = HEAT[low] * (1 - share) + HEAT[low + 1] * share
    return Image.fromarray(np.rint(colours).astype(np.uint8), "RGB")


def latent_difference(a: StepFrame, b: StepFrame) -> float | None:
    """The mean absolute difference of the latents behind two steps' compared pictures (x0; step 0's own latents)."""
    la, lb = _compared_latents(a), _compared_latents(b)
    if la is None or lb is None or la.shape != lb.shape:
        return None
    return float((la.float() - lb.float()).abs().mean())


def align(a: Sequence[StepFrame], b: Sequence[StepFrame]) -> list[AlignedStep]:
    """Every pair of ``pair_steps``, compared (``a``, ``b``: each run's frames, step 0 first)."""
    out = []
    for i, j in pair_steps(a, b):
        fa, fb = a[i], b[j]
        pa, pb = fa.image(VIEW), fb.image(VIEW)
        out.append(
            AlignedStep(
                a_step=fa.index,
                b_step=fb.index,
                sigma_a=fa.sigma,
                sigma_b=fb.sigma,
                timestep_a=fa.timestep,
                timestep_b=fb.timestep,
                a_image=pa,
                b_image=pb,
                difference=picture_difference(pa, pb),
                latent_difference=latent_difference(fa, fb),
                map=heat_map(pa, pb),
            )
        )
    return out


def _rgb(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def _compared_latents(frame: StepFrame):
    return frame.x0 if frame.x0 is not None else frame.latents
