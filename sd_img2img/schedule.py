"""How many steps run: img2img skips the first ``1 - strength`` of the schedule.

diffusers' ``StableDiffusionImg2ImgPipeline.get_timesteps`` runs ``min(int(N * strength), N)`` of an
N-step schedule (10 steps at 0.7 → 7; 50 at 0.4 → 20). ``plan_steps`` predicts that number before a run;
the engine then counts the steps that actually ran and reports those (the tests check the two agree).

"Real steps" turns it around: the user says how many steps must run and the schedule is the shortest one
that runs exactly that many. Naive ``int(N / strength)`` loses steps to rounding (20 at 0.7 → 28 → 19).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .config import MAX_SCHEDULE_STEPS, MAX_STEPS
from .errors import UserInputError


def steps_that_run(schedule_steps: int, strength: float) -> int:
    """Steps an img2img run takes of a ``schedule_steps`` schedule: diffusers' ``get_timesteps`` rule."""
    return min(int(schedule_steps * strength), schedule_steps)


def schedule_for_real_steps(real_steps: int, strength: float) -> int:
    """The shortest schedule of which exactly ``real_steps`` steps run at ``strength``.

    ``int(M * strength)`` grows by at most 1 as M grows by 1 (strength ≤ 1), so the first M that reaches
    ``real_steps`` hits it exactly.
    """
    if real_steps <= 0 or not 0 < strength <= 1:
        raise UserInputError(f"real steps need steps ≥ 1 and 0 < strength ≤ 1, got steps={real_steps}, strength={strength}")
    m = max(1, math.floor(real_steps / strength) - 2)
    while steps_that_run(m, strength) < real_steps:
        m += 1
    assert steps_that_run(m, strength) == real_steps
    return m


def smallest_working_strength(schedule_steps: int) -> float:
    """The smallest strength, in hundredths, at which at least one of ``schedule_steps`` steps runs."""
    s = math.ceil(100 / schedule_steps) / 100
    while steps_that_run(schedule_steps, s) < 1:
        s = round(s + 0.01, 2)
    return s


@dataclass(frozen=True)
class StepPlan:
    """What a run will do, before it runs."""

    steps: int  # the steps argument as the user gave it
    strength: float | None  # None for prompt2img
    real_steps: bool
    schedule_steps: int  # length of the schedule handed to the scheduler
    steps_to_run: int

    @property
    def skipped(self) -> int:
        return self.schedule_steps - self.steps_to_run

    def describe(self) -> str:
        """One line a person can read: ``10 steps × strength 0.7 → 7 steps will run (3 skipped)``."""
        if self.strength is None:
            return f"{self.steps} steps from pure noise → {self.steps_to_run} steps will run (prompt2img: strength does not apply)"
        if self.real_steps:
            return (f"a schedule of {self.schedule_steps} steps × strength {self.strength:g}, "
                    f"{self.steps_to_run} will run ({self.skipped} skipped)")
        return (f"{self.steps} steps × strength {self.strength:g} → {self.steps_to_run} steps will run "
                f"({self.skipped} skipped)")


def plan_steps(steps: int, strength: float | None, real_steps: bool = False) -> StepPlan:
    """Plan a run; raises ``UserInputError`` when the numbers can't work, saying what to change.

    Args:
        steps: the steps argument, or with ``real_steps`` the number of steps that must run.
        strength: img2img strength in (0, 1]; ``None`` for prompt2img.
        real_steps: pick the schedule length so that exactly ``steps`` steps run.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise UserInputError(f"steps must be a whole number ≥ 1, got {steps!r}")
    if steps > MAX_STEPS:
        raise UserInputError(f"steps={steps} is above the limit of {MAX_STEPS}; lower steps")
    if strength is None:
        return StepPlan(steps, None, real_steps, steps, steps)
    if not isinstance(strength, (int, float)) or isinstance(strength, bool) or not 0 < strength <= 1:
        raise UserInputError(f"strength must be above 0 and at most 1, got {strength!r}")
    if real_steps:
        schedule = schedule_for_real_steps(steps, strength)
        if schedule > MAX_SCHEDULE_STEPS:
            raise UserInputError(
                f"{steps} real steps at strength {strength:g} need a schedule of {schedule} steps, above the "
                f"limit of {MAX_SCHEDULE_STEPS}; raise strength or lower steps")
        return StepPlan(steps, strength, True, schedule, steps)
    run = steps_that_run(steps, strength)
    if run < 1:
        raise UserInputError(
            f"strength {strength:g} with {steps} steps runs no step at all (int({steps} × {strength:g}) = 0); "
            f"use strength ≥ {smallest_working_strength(steps):g}, more steps, or real steps")
    return StepPlan(steps, strength, False, steps, run)
