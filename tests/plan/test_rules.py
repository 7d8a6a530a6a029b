"""Steps that run: the guide's table, real steps over the whole grid, and the plan agreeing with the run."""

import pytest

from sd_img2img.errors import UserInputError
from sd_img2img.plan.rules import SD_RULE
from sd_img2img.plan.step_plan import plan_steps

schedule_for_real_steps, smallest_working_strength = SD_RULE.schedule_for_real_steps, SD_RULE.smallest_working_strength
steps_that_run = SD_RULE.steps_that_run

STRENGTHS = [round(0.05 * k, 2) for k in range(1, 21)]  # 0.05 … 1.0


@pytest.mark.parametrize(
    "steps,strength,taken", [(10, 0.7, 7), (10, 0.4, 4), (50, 0.4, 20), (30, 0.7, 21), (29, 0.7, 20), (10, 1.0, 10)]
)
def test_the_guides_table(steps, strength, taken):
    plan = plan_steps(steps, strength)
    assert plan.steps_to_run == taken
    assert plan.skipped == steps - taken
    assert f"→ {taken} steps will run ({steps - taken} skipped)" in plan.describe()


def test_naive_compensation_loses_a_step_and_ours_does_not():
    assert steps_that_run(int(20 / 0.7), 0.7) == 19  # the naive rule the notes warn about
    assert steps_that_run(schedule_for_real_steps(20, 0.7), 0.7) == 20


@pytest.mark.parametrize("strength", STRENGTHS)
def test_real_steps_hold_for_every_strength_and_count(strength, tiny_checkpoint):
    """For N = 1…60, the schedule chosen runs exactly N steps — counted by diffusers' own get_timesteps."""
    from diffusers import LMSDiscreteScheduler, StableDiffusionImg2ImgPipeline

    scheduler = LMSDiscreteScheduler.from_pretrained(tiny_checkpoint, subfolder="scheduler")

    class Probe:  # just enough of a pipeline for diffusers' get_timesteps
        pass

    probe = Probe()
    probe.scheduler = scheduler
    for n in range(1, 61):
        plan = plan_steps(n, strength, real_steps=True)
        assert plan.steps_to_run == n
        scheduler.set_timesteps(plan.schedule_steps)
        timesteps, count = StableDiffusionImg2ImgPipeline.get_timesteps(probe, plan.schedule_steps, strength, "cpu")
        assert count == n == len(timesteps), (n, strength, plan.schedule_steps)
        # and it is the shortest such schedule
        assert plan.schedule_steps == 1 or steps_that_run(plan.schedule_steps - 1, strength) < n


def test_too_small_strength_says_the_smallest_working_value():
    with pytest.raises(UserInputError, match=r"use strength ≥ 0.1\b"):
        plan_steps(10, 0.05)
    assert steps_that_run(10, smallest_working_strength(10)) == 1
    for n in range(1, 151):
        s = smallest_working_strength(n)
        assert steps_that_run(n, s) >= 1, (n, s)
        assert s == 0.01 or steps_that_run(n, round(s - 0.01, 2)) == 0, (n, s)  # and no smaller one (0.01 apart)


@pytest.mark.parametrize(
    "steps,strength,match",
    [
        (0, 0.5, "steps must be a whole number ≥ 1, got 0"),
        (-3, 0.5, "got -3"),
        (151, 0.5, "above the limit of 150"),
        (10, 0.0, "strength must be above 0 and at most 1, got 0.0"),
        (10, -0.2, "got -0.2"),
        (10, 1.01, "got 1.01"),
        (2.5, 0.5, "got 2.5"),
    ],
)
def test_bad_numbers_are_named(steps, strength, match):
    with pytest.raises(UserInputError, match=match):
        plan_steps(steps, strength)


def test_real_steps_schedule_cap_is_explained():
    with pytest.raises(UserInputError, match="need a schedule of"):
        plan_steps(150, 0.01, real_steps=True)


def test_guidance_is_on_by_one_rule_for_every_family():
    """Whether a run guides (a second model call a step) is the family's one rule, which the engine's timing, the
    prompt cache and the Ray backend's timing all ask (the Ray side once tested ``> 1`` and disagreed on Z-Image)."""
    from sd_img2img.models.families import FAMILIES

    guided = {name: [f.guided(g) for g in (0.0, 0.5, 1.0, 1.5)] for name, f in FAMILIES.items()}
    assert guided["sd"] == guided["sdxl"] == guided["sd3"] == [False, False, False, True]
    assert guided["zimage"] == [False, True, True, True]  # its pipeline guides above 0
    assert guided["flux"] == guided["lcm"] == guided["flux2-klein"] == [False] * 4  # an embedding, or no guidance
