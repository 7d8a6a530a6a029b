"""How many steps run: img2img skips the first ``1 - strength`` of the schedule.

diffusers' ``StableDiffusionImg2ImgPipeline.get_timesteps`` runs ``min(int(N * strength), N)`` of an
N-step schedule (10 steps at 0.7 → 7; 50 at 0.4 → 20). ``plan_steps`` predicts that number before a run;
the engine then counts the steps that actually ran and reports those (the tests check the two agree).

"Real steps" turns it around: the user says how many steps must run and the schedule is the shortest one
that runs exactly that many. Naive ``int(N / strength)`` loses steps to rounding (20 at 0.7 → 28 → 19).

Model families count differently (``families.Family.rule``): SD/SDXL/Turbo ``int(N × s)``; LCM runs all N,
strength moving the first timestep LCMScheduler picks (computed from the checkpoint's scheduler config, not
hard-coded); flow matching (SD3, FLUX) ``N − int(N − N × s)``, which rounds up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sd_img2img.config import MAX_SCHEDULE_STEPS, MAX_STEPS
from sd_img2img.errors import UserInputError


def steps_that_run(schedule_steps: int, strength: float, rule: str = "int") -> int:
    """Steps an img2img run takes of a ``schedule_steps`` schedule under a family's rule.

    ``int``: diffusers' SD/SDXL ``get_timesteps``, ``min(int(N × s), N)``; ``flow``: SD3/FLUX's
    ``N − int(N − N × s)`` (rounds up); ``lcm``: all N.
    """
    if rule == "lcm":
        return schedule_steps
    if rule == "flow":
        return schedule_steps - max(int(schedule_steps - schedule_steps * strength), 0)
    return min(int(schedule_steps * strength), schedule_steps)


def schedule_for_real_steps(real_steps: int, strength: float, rule: str = "int") -> int:
    """The shortest schedule of which exactly ``real_steps`` steps run at ``strength``.

    ``int(M * strength)`` (and flow's round-up count) grows by at most 1 as M grows by 1 (strength ≤ 1), so
    the first M that reaches ``real_steps`` hits it exactly.
    """
    if real_steps <= 0 or not 0 < strength <= 1:
        raise UserInputError(
            f"real steps need steps ≥ 1 and 0 < strength ≤ 1, got steps={real_steps}, strength={strength}"
        )
    if rule == "lcm":
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


def lcm_timesteps(steps: int, strength: float | None, scheduler_config: dict | None = None) -> list[int]:
    """The timesteps LCMScheduler runs for ``steps`` at ``strength`` (None: prompt2img), from the checkpoint's
    scheduler config; raises ``UserInputError`` when LCM cannot run that combination."""
    from diffusers import LCMScheduler

    scheduler = LCMScheduler.from_config(scheduler_config) if scheduler_config else LCMScheduler()
    s = 1.0 if strength is None else float(strength)
    original = int(scheduler.config.original_inference_steps)
    try:
        scheduler.set_timesteps(steps, strength=s)
    except ValueError:
        most = int(original * s)
        raise UserInputError(
            f"LCM runs at most {most} steps at strength {s:g} (its {original}-step training schedule × strength); "
            f"lower steps to {max(most, 1)} or raise strength"
        ) from None
    timesteps = [int(t) for t in scheduler.timesteps]
    if len(timesteps) != steps:
        raise UserInputError(f"LCM cannot run {steps} steps at strength {s:g}; lower steps or raise strength")
    return timesteps


@dataclass(frozen=True)
class StepPlan:
    """What a run will do, before it runs."""

    steps: int  # the steps argument as the user gave it
    strength: float | None  # None for prompt2img
    real_steps: bool
    schedule_steps: int  # length of the schedule handed to the scheduler
    steps_to_run: int
    family: str = ""  # the family's label ("SDXL", "LCM", …) when the plan knows it
    rule: str = "int"
    start_timestep: int | None = None  # LCM: the first timestep of the run
    train_timesteps: int | None = None  # LCM: the scheduler's training timesteps (1000)

    @property
    def skipped(self) -> int:
        return self.schedule_steps - self.steps_to_run

    def describe(self) -> str:
        """One line a person can read: ``10 steps × strength 0.7 → 7 steps will run (3 skipped)``; with a
        family, prefixed by it (``SDXL: …``), and LCM's own rule: ``LCM: all 4 steps run, starting at t = 299
        of 1000``."""
        prefix = f"{self.family}: " if self.family else ""
        return prefix + self._describe()

    def _describe(self) -> str:
        if self.rule == "lcm":
            start = (
                f", starting at t = {self.start_timestep} of {self.train_timesteps}"
                if self.start_timestep is not None
                else ""
            )
            if self.strength is None:
                return f"all {self.steps_to_run} steps run from pure noise{start}"
            return f"all {self.steps_to_run} steps run{start} (strength {self.strength:g} sets where they start)"
        if self.strength is None:
            return f"{self.steps} steps from pure noise → {self.steps_to_run} steps will run (prompt2img: strength does not apply)"
        if self.real_steps:
            return (
                f"a schedule of {self.schedule_steps} steps × strength {self.strength:g}, "
                f"{self.steps_to_run} will run ({self.skipped} skipped)"
            )
        rounding = "; flow matching rounds up" if self.rule == "flow" else ""
        return (
            f"{self.steps} steps × strength {self.strength:g} → {self.steps_to_run} steps will run "
            f"({self.skipped} skipped{rounding})"
        )


def plan_steps(steps: int, strength: float | None, real_steps: bool = False, family=None) -> StepPlan:
    """Plan a run; raises ``UserInputError`` when the numbers can't work, saying what to change.

    Args:
        steps: the steps argument, or with ``real_steps`` the number of steps that must run.
        strength: img2img strength in (0, 1]; ``None`` for prompt2img.
        real_steps: pick the schedule length so that exactly ``steps`` steps run.
        family: the loaded model's ``families.Family`` (its rule, label and scheduler config); None: SD's
            ``int(N × s)`` rule with no label.
    """
    rule = family.rule if family is not None else "int"
    label = family.label if family is not None else ""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise UserInputError(f"steps must be a whole number ≥ 1, got {steps!r}")
    if steps > MAX_STEPS:
        raise UserInputError(f"steps={steps} is above the limit of {MAX_STEPS}; lower steps")
    if strength is not None and (
        not isinstance(strength, (int, float)) or isinstance(strength, bool) or not 0 < strength <= 1
    ):
        raise UserInputError(f"strength must be above 0 and at most 1, got {strength!r}")
    if rule == "lcm":
        timesteps = lcm_timesteps(steps, strength, family.scheduler_config if family is not None else None)
        train = int((family.scheduler_config or {}).get("num_train_timesteps", 1000)) if family is not None else 1000
        return StepPlan(steps, strength, real_steps, steps, steps, label, rule, timesteps[0], train)
    if strength is None:
        return StepPlan(steps, None, real_steps, steps, steps, label, rule)
    if real_steps:
        schedule = schedule_for_real_steps(steps, strength, rule)
        if schedule > MAX_SCHEDULE_STEPS:
            raise UserInputError(
                f"{steps} real steps at strength {strength:g} need a schedule of {schedule} steps, above the "
                f"limit of {MAX_SCHEDULE_STEPS}; raise strength or lower steps"
            )
        return StepPlan(steps, strength, True, schedule, steps, label, rule)
    run = steps_that_run(steps, strength, rule)
    if run < 1:
        fewest = smallest_working_steps(strength, rule)
        more = f"steps ≥ {fewest}" if fewest <= MAX_STEPS else "more steps"
        raise UserInputError(
            f"strength {strength:g} with {steps} steps runs no step at all (int({steps} × {strength:g}) = 0); "
            f"use strength ≥ {smallest_working_strength(steps, rule):g}, {more}, or real steps"
        )
    return StepPlan(steps, strength, False, steps, run, label, rule)
