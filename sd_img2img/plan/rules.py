"""How many steps run: img2img skips the first ``1 - strength`` of the schedule. The arithmetic only; what a run
will do is ``plan.plan_steps``, and the values it refuses are ``checks``'.

diffusers' ``StableDiffusionImg2ImgPipeline.get_timesteps`` runs ``min(int(N * strength), N)`` of an N-step
schedule (10 steps at 0.7 → 7; 50 at 0.4 → 20). The engine counts the steps that actually ran and reports those
(the tests check the two agree).

"Real steps" turns it around: the user says how many steps must run and the schedule is the shortest one that runs
exactly that many. Naive ``int(N / strength)`` loses steps to rounding (20 at 0.7 → 28 → 19).

Model families count differently (``families.Family.rule``): SD/SDXL/Turbo ``int(N × s)``; LCM runs all N, strength
moving the first timestep LCMScheduler picks (computed from the checkpoint's scheduler config, not hard-coded); flow
matching (SD3, FLUX, Z-Image, Qwen-Image, Chroma) ``N − int(N − N × s)``, which rounds up; edit models (``reference``:
Kontext, Klein, Qwen-Image-Edit) run all N from pure noise, strength meaning nothing.
"""

from __future__ import annotations

import math


def steps_that_run(schedule_steps: int, strength: float, rule: str = "int") -> int:
    """Steps an img2img run takes of a ``schedule_steps`` schedule under a family's rule.

    ``int``: diffusers' SD/SDXL ``get_timesteps``, ``min(int(N × s), N)``; ``flow``: SD3/FLUX's
    ``N − int(N − N × s)`` (rounds up); ``lcm`` and ``reference``: all N.
    """
    if rule in ("lcm", "reference"):
        return schedule_steps
    if rule == "flow":
        return schedule_steps - max(int(schedule_steps - schedule_steps * strength), 0)
    return min(int(schedule_steps * strength), schedule_steps)


def rule_formula(schedule_steps: int, strength: float, rule: str = "int") -> str:
    """The rule's arithmetic with the numbers, as a person checks it: ``int(10 × 0.4) = 4``,
    ``4 − int(4 − 4 × 0.3) = 2`` (flow), ``all 4`` (LCM)."""
    n, s, taken = schedule_steps, strength, steps_that_run(schedule_steps, strength, rule)
    if rule in ("lcm", "reference"):
        return f"all {n}"
    if rule == "flow":
        return f"{n} − int({n} − {n} × {s:g}) = {taken}"
    return f"int({n} × {s:g}) = {taken}"


def schedule_for_real_steps(real_steps: int, strength: float, rule: str = "int") -> int:
    """The shortest schedule of which exactly ``real_steps`` (≥ 1) steps run at ``strength`` (0 < strength ≤ 1).

    ``int(M * strength)`` (and flow's round-up count) grows by at most 1 as M grows by 1 (strength ≤ 1), so
    the first M that reaches ``real_steps`` hits it exactly.
    """
    if rule in ("lcm", "reference"):
        return real_steps
    m = max(1, math.floor(real_steps / strength) - 2)
    while steps_that_run(m, strength, rule) > real_steps and m > 1:
        m -= 1
    while steps_that_run(m, strength, rule) < real_steps:
        m += 1
    assert steps_that_run(m, strength, rule) == real_steps
    return m


def smallest_working_strength(schedule_steps: int, rule: str = "int") -> float:
    """The smallest strength, in hundredths, at which at least one of ``schedule_steps`` steps runs."""
    s = math.ceil(100 / schedule_steps) / 100 if rule == "int" else 0.01
    while steps_that_run(schedule_steps, s, rule) < 1:
        s = round(s + 0.01, 2)
    return s


def smallest_working_steps(strength: float, rule: str = "int") -> int:
    """The fewest schedule steps of which at least one runs at ``strength``."""
    n = max(1, math.floor(1 / strength) - 1)
    while steps_that_run(n, strength, rule) < 1:
        n += 1
    return n


def lcm_scheduler(scheduler_config: dict | None = None):
    """diffusers' ``LCMScheduler`` from a checkpoint's scheduler config (its defaults without one)."""
    from sd_img2img.imports import diffusers_class

    LCMScheduler = diffusers_class("LCMScheduler")
    return LCMScheduler.from_config(scheduler_config) if scheduler_config else LCMScheduler()


def lcm_timesteps(steps: int, strength: float | None, scheduler_config: dict | None = None) -> list[int] | None:
    """The timesteps LCMScheduler runs for ``steps`` at ``strength`` (None: prompt2img), from the checkpoint's
    scheduler config; None when LCM cannot run that combination (``checks.check_steps`` says why)."""
    scheduler = lcm_scheduler(scheduler_config)
    try:
        scheduler.set_timesteps(steps, strength=1.0 if strength is None else float(strength))
    except ValueError:
        return None
    timesteps = [int(t) for t in scheduler.timesteps]
    return timesteps if len(timesteps) == steps else None
