"""How many of a schedule's steps run: one object per rule a model family counts by (``Family.rule`` names it).

img2img skips the first ``1 − strength`` of the schedule, and each family's diffusers pipeline rounds that its own
way (diffusers 0.42):

- ``SD_RULE`` (``int``): ``min(int(N × s), N)`` run, as ``StableDiffusionImg2ImgPipeline.get_timesteps`` (SD, SD-Turbo,
  SDXL, SDXL-Turbo, the refiner): 10 steps at 0.7 → 7, 50 at 0.4 → 20;
- ``FLOW_RULE`` (``flow``): ``N − int(N − N × s)`` run, which rounds up (SD3, FLUX, Z-Image, Qwen-Image, Chroma: their
  pipelines write it ``init = min(N × s, N)``, ``t_start = int(max(N − init, 0))``): 4 at 0.3 → 2;
- ``LCM_RULE`` (``lcm``): all N run; strength moves the first timestep LCMScheduler picks from its training schedule
  (read from the checkpoint's scheduler config, not hard-coded): 4 at 0.3 → t = 299, 239, 159, 79;
- ``REFERENCE_RULE`` (``reference``): edit models (FLUX.1 Kontext, FLUX.2 Klein, Qwen-Image-Edit) run all N from pure
  noise; the image is a reference the model looks at, and strength means nothing.

Each rule holds its count of the steps that run, its formula as a person checks it, the inverse behind "real steps"
(the shortest schedule of which exactly R steps run; naive ``int(R / s)`` loses a step to rounding: 20 at 0.7 → 28 →
19), what it refuses, and how the plan line and the explain table say it. ``step_plan.plan_steps`` plans a run by
one; the grid's headers and the timing ask the same objects. Nothing here imports torch (LCM's timesteps import
diffusers' ``LCMScheduler`` when asked for).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sd_img2img.config import MAX_SCHEDULE_STEPS, MAX_STEPS
from sd_img2img.errors import UserInputError


def steps_text(n: int) -> str:
    """``1 step``, ``7 steps``."""
    return f"{n} step" if n == 1 else f"{n} steps"


@dataclass(frozen=True)
class StepRule:
    """SD's rule, ``min(int(N × s), N)``; the other rules override what differs.

    Args:
        name: the name a ``Family`` gives it (``int``, ``flow``, ``lcm``, ``reference``).
        takes_strength: strength means something (False: an edit model's image is a reference).
        takes_real_steps: "real steps" picks a longer schedule (a rule that runs all N needs none).
    """

    name: str = "int"
    takes_strength: bool = True
    takes_real_steps: bool = True

    # -- the count ---------------------------------------------------------------------------------------------

    def steps_that_run(self, schedule_steps: int, strength: float) -> int:
        """Steps an img2img run takes of a ``schedule_steps`` schedule at ``strength``."""
        return min(int(schedule_steps * strength), schedule_steps)

    def formula(self, schedule_steps: int, strength: float) -> str:
        """The arithmetic with the numbers, as a person checks it: ``int(10 × 0.4) = 4``."""
        return f"int({schedule_steps} × {strength:g}) = {self.steps_that_run(schedule_steps, strength)}"

    def general(self, strength: float | None = None) -> str:
        """The rule for any N, ``strength`` filled in when given: ``int(N × 0.4) of N run``."""
        return f"int(N × {_s(strength)}) of N run"

    def start_timestep(self, steps: int, strength: float | None, scheduler_config: dict | None) -> int | None:
        """The first timestep of the run where the rule sets it (LCM); None where the schedule does."""
        return None

    # -- the inverse: real steps ---------------------------------------------------------------------------

    def schedule_for_real_steps(self, real_steps: int, strength: float) -> int:
        """The shortest schedule of which exactly ``real_steps`` (≥ 1) steps run at ``strength`` (0 < s ≤ 1).

        The count grows by at most 1 as the schedule grows by 1 (strength ≤ 1), so the first length that reaches
        ``real_steps`` hits it exactly.
        """
        if not self.takes_real_steps:
            return real_steps
        m = max(1, math.floor(real_steps / strength) - 2)
        while self.steps_that_run(m, strength) > real_steps and m > 1:
            m -= 1
        while self.steps_that_run(m, strength) < real_steps:
            m += 1
        assert self.steps_that_run(m, strength) == real_steps
        return m

    def smallest_working_strength(self, schedule_steps: int) -> float:
        """The smallest strength, in hundredths, at which at least one of ``schedule_steps`` steps runs."""
        s = math.ceil(100 / schedule_steps) / 100
        while self.steps_that_run(schedule_steps, s) < 1:
            s = round(s + 0.01, 2)
        return s

    def smallest_working_steps(self, strength: float) -> int:
        """The fewest schedule steps of which at least one runs at ``strength``."""
        n = max(1, math.floor(1 / strength) - 1)
        while self.steps_that_run(n, strength) < 1:
            n += 1
        return n

    # -- what it refuses -----------------------------------------------------------------------------------

    def check(self, steps: int, strength: float | None, real_steps: bool, scheduler_config: dict | None) -> None:
        """``UserInputError`` saying what to change when ``steps`` at ``strength`` (None: prompt2img) give no run."""
        if strength is None:
            return
        if real_steps:
            schedule_steps = self.schedule_for_real_steps(steps, strength)
            if schedule_steps > MAX_SCHEDULE_STEPS:
                raise UserInputError(
                    f"{steps} real steps at strength {strength:g} need a schedule of {schedule_steps} steps, above "
                    f"the limit of {MAX_SCHEDULE_STEPS}; raise strength or lower steps"
                )
        elif self.steps_that_run(steps, strength) < 1:
            fewest = self.smallest_working_steps(strength)
            more = f"steps ≥ {fewest}" if fewest <= MAX_STEPS else "more steps"
            raise UserInputError(
                f"strength {strength:g} with {steps} steps runs no step at all ({self.formula(steps, strength)}); "
                f"use strength ≥ {self.smallest_working_strength(steps):g}, {more}, or real steps"
            )

    # -- how it is said ------------------------------------------------------------------------------------

    def rounding(self) -> str:
        """What the plan line adds about rounding (flow matching rounds up)."""
        return ""

    def describe(self, plan) -> str:
        """What ``plan`` (a ``step_plan.StepPlan`` by this rule) will run, as the plan line says it."""
        n, s, asked = plan.steps_to_run, plan.strength, steps_text(plan.steps)
        if s is None:
            return f"{asked} from pure noise → {steps_text(n)} will run (prompt2img: strength does not apply)"
        if plan.real_steps:
            return f"a schedule of {plan.schedule_steps} steps × strength {s:g}, {n} will run ({plan.skipped} skipped)"
        return f"{asked} × strength {s:g} → {steps_text(n)} will run ({plan.skipped} skipped{self.rounding()})"

    def taken_note(self, plan, steps_taken: int) -> str:
        """How ``steps_taken`` came about under ``plan`` (the explain table's "steps actually taken" row)."""
        skipped = plan.schedule_steps - steps_taken
        if plan.strength is None:
            return f"prompt2img: every step of {plan.schedule_steps} runs"
        if plan.real_steps:
            return f"of a {plan.schedule_steps}-step schedule" + (f", {skipped} skipped" if skipped > 0 else "")
        return self.formula(plan.schedule_steps, plan.strength) + (f", {skipped} skipped" if skipped > 0 else "")


@dataclass(frozen=True)
class FlowRule(StepRule):
    """Flow matching's ``N − int(N − N × s)``, which rounds up (SD3, FLUX, Z-Image, Qwen-Image, Chroma)."""

    name: str = "flow"

    def steps_that_run(self, schedule_steps: int, strength: float) -> int:
        return schedule_steps - max(int(schedule_steps - schedule_steps * strength), 0)

    def formula(self, schedule_steps: int, strength: float) -> str:
        n, taken = schedule_steps, self.steps_that_run(schedule_steps, strength)
        return f"{n} − int({n} − {n} × {strength:g}) = {taken}"

    def general(self, strength: float | None = None) -> str:
        return f"N − int(N − N × {_s(strength)}) run (rounds up)"

    def smallest_working_strength(self, schedule_steps: int) -> float:
        s = 0.01  # rounding up, the smallest strengths run a step
        while self.steps_that_run(schedule_steps, s) < 1:
            s = round(s + 0.01, 2)
        return s

    def rounding(self) -> str:
        return "; flow matching rounds up"

    def taken_note(self, plan, steps_taken: int) -> str:
        if plan.strength is None or plan.real_steps:
            return super().taken_note(plan, steps_taken)
        return self.formula(plan.schedule_steps, plan.strength) + ", rounds up"


@dataclass(frozen=True)
class AllStepsRule(StepRule):
    """Every one of N runs, whatever the strength (the base of LCM's and the edit models' rules)."""

    takes_real_steps: bool = False

    def steps_that_run(self, schedule_steps: int, strength: float) -> int:
        return schedule_steps

    def formula(self, schedule_steps: int, strength: float) -> str:
        return f"all {schedule_steps}"


@dataclass(frozen=True)
class LcmRule(AllStepsRule):
    """LCM: all N run, strength moving where they start on LCMScheduler's training schedule."""

    name: str = "lcm"

    def general(self, strength: float | None = None) -> str:
        return "all N run, strength sets where they start"

    def start_timestep(self, steps: int, strength: float | None, scheduler_config: dict | None) -> int | None:
        return lcm_timesteps(steps, strength, scheduler_config)[0]

    def check(self, steps: int, strength: float | None, real_steps: bool, scheduler_config: dict | None) -> None:
        """A step count LCMScheduler can run at ``strength`` (its training schedule × strength caps it)."""
        if lcm_timesteps(steps, strength, scheduler_config) is not None:
            return
        s = 1.0 if strength is None else float(strength)
        original = int(lcm_scheduler(scheduler_config).config.original_inference_steps)
        most = int(original * s)
        if steps > most:
            raise UserInputError(
                f"LCM runs at most {most} steps at strength {s:g} (its {original}-step training schedule × "
                f"strength); lower steps to {max(most, 1)} or raise strength"
            )
        raise UserInputError(f"LCM cannot run {steps} steps at strength {s:g}; lower steps or raise strength")

    def describe(self, plan) -> str:
        n = plan.steps_to_run
        start = (
            f", starting at t = {plan.start_timestep} of {plan.train_timesteps}"
            if plan.start_timestep is not None
            else ""
        )
        if plan.strength is None:
            return f"all {n} steps run from pure noise{start}"
        return f"all {n} steps run{start} (strength {plan.strength:g} sets where they start)"

    def taken_note(self, plan, steps_taken: int) -> str:
        if plan.strength is None:
            return super().taken_note(plan, steps_taken)
        start = f", from t = {plan.start_timestep}" if plan.start_timestep is not None else ""
        return f"all {plan.schedule_steps} run{start} (strength sets where they start)"


@dataclass(frozen=True)
class ReferenceRule(AllStepsRule):
    """Edit models: all N from pure noise, the image a reference (FLUX.1 Kontext, FLUX.2 Klein, Qwen-Image-Edit)."""

    name: str = "reference"
    takes_strength: bool = False

    def general(self, strength: float | None = None) -> str:
        return "all N run from pure noise (the image is a reference)"

    def check(self, steps: int, strength: float | None, real_steps: bool, scheduler_config: dict | None) -> None:
        return  # strength and real steps do not apply (prepare_request says so when given)

    def describe(self, plan) -> str:
        if not plan.reference:  # prompt2img
            return super().describe(plan)
        return f"your image is a reference, not a starting point — all {plan.steps_to_run} steps run from pure noise"

    def taken_note(self, plan, steps_taken: int) -> str:
        if not plan.reference:
            return super().taken_note(plan, steps_taken)
        return f"all {plan.schedule_steps} from pure noise (the image is a reference)"


SD_RULE = StepRule()
FLOW_RULE = FlowRule()
LCM_RULE = LcmRule()
REFERENCE_RULE = ReferenceRule()
RULES: dict[str, StepRule] = {rule.name: rule for rule in (SD_RULE, FLOW_RULE, LCM_RULE, REFERENCE_RULE)}


def rule_of(family) -> StepRule:
    """The rule ``family`` counts by (``Family.rule``; None: SD's)."""
    return RULES[family.rule] if family is not None else SD_RULE


def _s(strength: float | None) -> str:
    return f"{strength:g}" if strength is not None else "s"


# -- LCM: where strength puts the start --------------------------------------------------------------------


def lcm_scheduler(scheduler_config: dict | None = None):
    """diffusers' ``LCMScheduler`` from a checkpoint's scheduler config (its defaults without one)."""
    from sd_img2img.imports import diffusers_class

    LCMScheduler = diffusers_class("LCMScheduler")
    return LCMScheduler.from_config(scheduler_config) if scheduler_config else LCMScheduler()


def lcm_timesteps(steps: int, strength: float | None, scheduler_config: dict | None = None) -> list[int] | None:
    """The timesteps LCMScheduler runs for ``steps`` at ``strength`` (None: prompt2img), from the checkpoint's
    scheduler config; None when LCM cannot run that combination (``LcmRule.check`` says why)."""
    scheduler = lcm_scheduler(scheduler_config)
    try:
        scheduler.set_timesteps(steps, strength=1.0 if strength is None else float(strength))
    except ValueError:
        return None
    timesteps = [int(t) for t in scheduler.timesteps]
    return timesteps if len(timesteps) == steps else None
