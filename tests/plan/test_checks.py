"""The request checks (plan/checks.py): every setting a person can get wrong is refused before anything is opened or
loaded, with a message that names the value and says what to change; the ranges checked are the declared ones
(plan/request.py), which the page's controls and the PNG readers read too."""

from __future__ import annotations

import dataclasses

import pytest

from sd_img2img.config import MAX_PROMPT_CHARS, MAX_SCHEDULE_STEPS, MAX_STEPS
from sd_img2img.errors import UserInputError
from sd_img2img.models.families import FAMILIES
from sd_img2img.plan.checks import check_inputs
from sd_img2img.plan.fields import SETTING
from sd_img2img.plan.request import FORM_FIELDS, RANGES, RECORDED_FIELDS, SETTINGS, GenerationRequest

SD, SD3, LCM, REFINER, QWEN_EDIT = (FAMILIES[n] for n in ("sd", "sd3", "lcm", "sdxl-refiner", "qwen-image-edit"))


def request(**kw) -> GenerationRequest:
    return GenerationRequest(**{"prompt": "fire", "init_image": "fireplace.png", "steps": 10, "strength": 0.7, **kw})


@pytest.mark.parametrize(
    "family, changes, message",
    [
        (SD, dict(prompt=3), "prompt must be text, got int"),
        (SD, dict(prompt="x" * (MAX_PROMPT_CHARS + 1)), f"above the limit of {MAX_PROMPT_CHARS}; shorten it"),
        (SD, dict(negative_prompt=None), "negative prompt must be text, got NoneType"),
        (SD, dict(sampler="euler_x"), "unknown sampler 'euler_x'"),
        (SD, dict(sampler="flow_euler"), "sampler 'flow_euler' does not fit SD checkpoints; choose one of: k_lms"),
        (SD, dict(preview="sharp"), "unknown preview decoder 'sharp'"),
        (SD, dict(view="both"), "unknown view 'both'"),
        (SD, dict(resize_mode="zoom"), "unknown resize mode 'zoom'"),
        (SD, dict(guidance_scale=31), "guidance scale must be from 0 to 30, got 31"),
        (SD, dict(seed=-5), "seed=-5 is out of range .*; use a seed from 0 to"),
        (SD, dict(seed=1.5), "seed must be a whole number, got 1.5"),
        (SD, dict(width=100), "width=100 is not a multiple of 8; use 96 or 104"),
        (SD3, dict(height=200, sampler="flow_euler"), "height=200 is not a multiple of 16 .*2×2 latent patches"),
        (SD, dict(width=32), "width=32 is out of range \\[64, 2048\\]; use 64 to 2048 pixels"),
        (SD, dict(steps=0), "steps must be a whole number ≥ 1, got 0"),
        (SD, dict(steps=MAX_STEPS + 1), f"steps={MAX_STEPS + 1} is above the limit of {MAX_STEPS}; lower steps"),
        (SD, dict(strength=1.5), "strength must be above 0 and at most 1, got 1.5"),
        (SD, dict(strength=0.05), "runs no step at all \\(int\\(10 × 0.05\\) = 0\\); use strength ≥ 0.1, steps ≥ 20"),
        (
            SD,
            dict(strength=0.01, steps=40, real_steps=True),
            f"need a schedule of 4000 steps, above .*{MAX_SCHEDULE_STEPS}",
        ),
        (SD, dict(sampler="ddim", strength=0.05, steps=60, real_steps=True), "cannot run a schedule of 1200 steps"),
        (LCM, dict(sampler="lcm", steps=40, strength=0.5), "LCM runs at most 25 steps at strength 0.5"),
        (REFINER, dict(init_image=None), "cannot start from pure noise \\(prompt2img\\); give it an initial image"),
        (
            QWEN_EDIT,
            dict(init_image=None, sampler=None),
            "edits the image you give it and cannot make one from a prompt",
        ),
    ],
)
def test_a_bad_setting_is_named_with_what_to_change(family, changes, message):
    with pytest.raises(UserInputError, match=message):
        check_inputs(request(**changes), family)


def test_loras_must_be_listed_and_have_a_usable_scale():
    listed = {"detail": 0.8}
    check_inputs(request(loras={"detail": 0.5}), SD, listed)
    with pytest.raises(UserInputError, match="unknown LoRA 'style'; the listed LoRAs are: detail"):
        check_inputs(request(loras={"style": 1.0}), SD, listed)
    with pytest.raises(UserInputError, match="none were listed when the program started"):
        check_inputs(request(loras={"style": 1.0}), SD, {})
    with pytest.raises(UserInputError, match="the scale of LoRA 'detail'"):
        check_inputs(request(loras={"detail": float("nan")}), SD, listed)


@pytest.mark.parametrize("name", sorted(RANGES))
def test_each_declared_range_is_what_validation_takes(name):
    """The bounds a declaration gives are accepted and a value past them refused, by the field's label or name."""
    limits = RANGES[name]
    inside = {"width": 64, "height": 64}.get(name, limits.high)
    check_inputs(request(**{name: inside}), SD)
    outside = limits.high + (8 if limits.whole else 0.5)
    with pytest.raises(UserInputError, match=f"{name.replace('_', ' ')}|{SETTINGS[name].setting.label.lower()}"):
        check_inputs(request(**{name: outside}), SD)


def test_the_field_lists_are_the_declarations():
    """What a PNG records, what a form fills in and which settings have ranges come from each field's declaration."""
    fields = {f.name: f.metadata.get(SETTING) for f in dataclasses.fields(GenerationRequest)}
    assert all(fields.values()), "every request field is declared"
    assert RECORDED_FIELDS == tuple(n for n, s in fields.items() if s.recorded)
    assert "init_image" not in RECORDED_FIELDS and {"prompt", "seed", "loras"} <= set(RECORDED_FIELDS)
    assert set(FORM_FIELDS) == set(fields) - {"max_side"}
    assert RANGES["strength"].above_low and not RANGES["strength"].whole and RANGES["steps"].high == MAX_STEPS


def test_a_good_request_passes_for_each_family_with_its_defaults():
    for name in ("sd", "sdxl", "sd-turbo", "lcm", "sd3", "flux", "zimage", "flux-kontext"):
        family = FAMILIES[name]
        check_inputs(GenerationRequest("fire", init_image="a.png", width=128, height=128), family)


@pytest.mark.parametrize(
    "given, seed",
    [
        ("18446744073709551615", 2**64 - 1),  # the page's seed box is text: every digit is kept
        (" 280823642470253 ", 280823642470253),  # a ComfyUI seed, pasted with spaces
        (18446744073709551615, 2**64 - 1),  # the API's number
        (7.0, 7),
        ("-1", None),  # a new random seed
        (-1, None),
        ("", None),
        (None, None),
        ("7.5", "7.5"),  # not a whole number: left for the checks to refuse by name
        ("12abc", "12abc"),
    ],
)
def test_the_seed_field_takes_64_bit_seeds_as_digits_or_numbers(given, seed):
    converted = SETTINGS["seed"].setting.form(given)
    assert converted == seed and type(converted) is type(seed)
    if isinstance(seed, str):
        with pytest.raises(UserInputError, match=f"seed must be a whole number, got '{seed}'"):
            check_inputs(request(seed=converted), SD)
    else:
        check_inputs(request(seed=converted), SD)


def test_the_seed_range_is_stated_where_people_read_it():
    declared = SETTINGS["seed"].setting
    assert RANGES["seed"].high == 2**64 - 1 and RANGES["seed"].describe() == "from 0 to 18446744073709551615"
    assert "18446744073709551615" in declared.help and "2⁶⁴ − 1" in declared.hint and "-1" in declared.hint
    with pytest.raises(UserInputError, match=r"seed=18446744073709551616 is out of range \[0, 18446744073709551615\]"):
        check_inputs(request(seed=2**64), SD)
