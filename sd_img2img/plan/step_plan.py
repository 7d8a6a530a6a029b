"""What a run will do, before it runs: ``plan_steps(10, 0.7).describe()`` → ``10 steps × strength 0.7 → 7 steps
will run (3 skipped)``, by the model family's step rule (``rules``), after ``checks.check_steps``; with the noise
level the image enters at (``noise.entry_noise``, which needs the run's sampler and size: ``prepare_request`` adds it),
``… · strength 0.7 → the image enters at σ = 0.86 (14 % of it kept)``."""

from __future__ import annotations

from dataclasses import dataclass

from sd_img2img.plan.checks import check_steps
from sd_img2img.plan.mask import MaskPlan
from sd_img2img.plan.noise import NoiseLevel
from sd_img2img.plan.rules import RULES, StepRule, rule_of


@dataclass(frozen=True)
class StepPlan:
    """What a run will do, before it runs."""

    steps: int  # the steps argument as the user gave it
    strength: float | None  # None for prompt2img
    real_steps: bool
    schedule_steps: int  # length of the schedule handed to the scheduler
    steps_to_run: int
    family: str = ""  # the family's label ("SDXL", "LCM", …) when the plan knows it
    rule: str = "int"  # the name of the step rule it was planned by (``rules.RULES``)
    start_timestep: int | None = None  # LCM: the first timestep of the run
    train_timesteps: int | None = None  # LCM: the scheduler's training timesteps (1000)
    reference: bool = False  # an edit model given an image: a reference, every step runs from pure noise
    noise: NoiseLevel | None = None  # where the image enters the schedule (prepare_request adds it)
    mask: MaskPlan | None = None  # inpainting: the share of the picture redrawn and how (prepare_request adds it)

    @property
    def step_rule(self) -> StepRule:
        return RULES[self.rule]

    @property
    def skipped(self) -> int:
        return self.schedule_steps - self.steps_to_run

    def describe(self) -> str:
        """One line a person can read: ``10 steps × strength 0.7 → 7 steps will run (3 skipped)``; with a
        family, prefixed by it (``SDXL: …``), and LCM's own rule: ``LCM: all 4 steps run, starting at t = 299
        of 1000``."""
        prefix = f"{self.family}: " if self.family else ""
        text = prefix + self.step_rule.describe(self)
        if self.noise is not None and not self.reference:
            text += f" · strength {self.strength:g} → {self.noise.describe()}"
        if self.mask is not None:
            text += f" · {self.mask.describe(self.steps_to_run, self.reference)}"
        return text

    def taken_note(self, steps_taken: int, stopped: bool = False) -> str:
        """How ``steps_taken`` came about by the family's own rule, with the run's numbers (the explain table's
        "steps actually taken" row): ``SD: int(10 × 0.4) = 4, 6 skipped``."""
        label = f"{self.family}: " if self.family else ""
        return label + self.step_rule.taken_note(self, steps_taken) + (", stopped" if stopped else "")


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
    rule = rule_of(family)
    known = dict(family=family.label if family is not None else "", rule=rule.name)
    if not rule.takes_strength and strength is not None:
        return StepPlan(steps, None, False, steps, steps, reference=True, **known)
    config = family.scheduler_config if family is not None else None
    start = rule.start_timestep(steps, strength, config)
    if start is not None:  # LCM: all steps run, from where strength puts the start
        train = int((config or {}).get("num_train_timesteps", 1000))
        return StepPlan(steps, strength, real_steps, steps, steps, start_timestep=start, train_timesteps=train, **known)
    if strength is None:
        return StepPlan(steps, None, real_steps, steps, steps, **known)
    if real_steps:
        return StepPlan(steps, strength, True, rule.schedule_for_real_steps(steps, strength), steps, **known)
    return StepPlan(steps, strength, False, steps, rule.steps_that_run(steps, strength), **known)
