"""What a run will do, before it runs: ``plan_steps(10, 0.7).describe()`` → ``10 steps × strength 0.7 → 7 steps
will run (3 skipped)``, by the model family's step rule (``schedule``), after ``checks.check_steps``; with the noise
level the image enters at (``noise.entry_noise``, which needs the run's sampler and size: ``prepare_request`` adds it),
``… · strength 0.7 → the image enters at σ = 0.86 (14 % of it kept)``."""

from __future__ import annotations

from dataclasses import dataclass

from sd_img2img.plan import rules as schedule
from sd_img2img.plan.checks import check_steps
from sd_img2img.plan.noise import NoiseLevel


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
    reference: bool = False  # an edit model given an image: a reference, every step runs from pure noise
    noise: NoiseLevel | None = None  # where the image enters the schedule (prepare_request adds it)

    @property
    def skipped(self) -> int:
        return self.schedule_steps - self.steps_to_run

    def describe(self) -> str:
        """One line a person can read: ``10 steps × strength 0.7 → 7 steps will run (3 skipped)``; with a
        family, prefixed by it (``SDXL: …``), and LCM's own rule: ``LCM: all 4 steps run, starting at t = 299
        of 1000``."""
        prefix = f"{self.family}: " if self.family else ""
        text = prefix + self._describe()
        if self.noise is not None and not self.reference:
            text += f" · strength {self.strength:g} → {self.noise.describe()}"
        return text

    def _describe(self) -> str:
        if self.reference:
            return (
                f"your image is a reference, not a starting point — all {self.steps_to_run} steps run from pure noise"
            )
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

    def taken_note(self, steps_taken: int, stopped: bool = False) -> str:
        """How ``steps_taken`` came about by the family's own rule, with the run's numbers (the explain table's
        "steps actually taken" row): ``SD: int(10 × 0.4) = 4, 6 skipped``."""
        label = f"{self.family}: " if self.family else ""
        skipped = self.schedule_steps - steps_taken
        if self.reference:
            note = f"{label}all {self.schedule_steps} from pure noise (the image is a reference)"
        elif self.strength is None:
            note = f"{label}prompt2img: every step of {self.schedule_steps} runs"
        elif self.rule == "lcm":
            start = f", from t = {self.start_timestep}" if self.start_timestep is not None else ""
            note = f"{label}all {self.schedule_steps} run{start} (strength sets where they start)"
        elif self.real_steps:
            note = f"{label}of a {self.schedule_steps}-step schedule" + (f", {skipped} skipped" if skipped > 0 else "")
        else:
            note = label + schedule.rule_formula(self.schedule_steps, self.strength, self.rule)
            if self.rule == "flow":
                note += ", rounds up"
            elif skipped > 0:
                note += f", {skipped} skipped"
        return note + (", stopped" if stopped else "")


def plan_steps(steps: int, strength: float | None, real_steps: bool = False, family=None) -> StepPlan:
    """Plan a run; raises ``UserInputError`` when the numbers can't work, saying what to change.

    Args:
        steps: the steps argument, or with ``real_steps`` the number of steps that must run.
        strength: img2img strength in (0, 1]; ``None`` for prompt2img. An edit model (``Family.image_is_reference``)
            given any strength plans a run on a reference image: all steps from pure noise, strength ignored.
        real_steps: pick the schedule length so that exactly ``steps`` steps run.
        family: the loaded model's ``families.Family`` (its rule, label and scheduler config); None: SD's
            ``int(N × s)`` rule with no label.
    """
    check_steps(steps, strength, real_steps, family)
    rule = family.rule if family is not None else "int"
    label = family.label if family is not None else ""
    if family is not None and family.image_is_reference and strength is not None:
        return StepPlan(steps, None, False, steps, steps, label, rule, reference=True)
    if rule == "lcm":
        config = family.scheduler_config if family is not None else None
        timesteps = schedule.lcm_timesteps(steps, strength, config)
        train = int((config or {}).get("num_train_timesteps", 1000))
        return StepPlan(steps, strength, real_steps, steps, steps, label, rule, timesteps[0], train)
    if strength is None:
        return StepPlan(steps, None, real_steps, steps, steps, label, rule)
    if real_steps:
        return StepPlan(
            steps, strength, True, schedule.schedule_for_real_steps(steps, strength, rule), steps, label, rule
        )
    return StepPlan(steps, strength, False, steps, schedule.steps_that_run(steps, strength, rule), label, rule)
