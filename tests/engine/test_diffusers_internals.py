"""The diffusers internals the engine wraps are where the engine expects them.

The engine runs diffusers' own pipelines and reaches into a few of their internals: ``prepare_latents`` (step 0),
``scheduler.step`` (the predicted final image), ``run_safety_checker`` (NaN in the decode), ``_interrupt`` (Stop)
and ``_num_timesteps`` (whole steps of second-order samplers). pyproject.toml keeps diffusers below the next minor
release for that reason; when a release moves one of these, this test says which, instead of a run going wrong.
"""

from __future__ import annotations

import inspect

import diffusers
import pytest

from sd_img2img.plan.samplers import SAMPLERS

PIPELINES = ("StableDiffusionImg2ImgPipeline", "StableDiffusionPipeline")


def moved(what: str) -> str:
    return (
        f"diffusers {diffusers.__version__} moved {what}, which sd_img2img wraps (sd_img2img/steps.py, engine.py); "
        "pin diffusers to the last release that passes, or update the wrapper"
    )


@pytest.mark.parametrize("name", PIPELINES)
def test_pipeline_internals(name):
    cls = getattr(diffusers, name)
    call = inspect.signature(cls.__call__).parameters
    assert "callback_on_step_end" in call, moved(f"{name}.__call__'s callback_on_step_end argument")
    assert "generator" in call, moved(f"{name}.__call__'s generator argument")
    for method in ("prepare_latents", "run_safety_checker"):
        assert callable(getattr(cls, method, None)), moved(f"{name}.{method}")
    source = inspect.getsource(cls.__call__)
    assert "self.interrupt" in source and "def interrupt" in inspect.getsource(cls), moved(
        f"{name}'s interrupt flag (Stop sets pipe._interrupt)"
    )
    assert "self._num_timesteps" in source, moved(f"{name}._num_timesteps")
    assert "callback_kwargs[k] = locals()[k]" in source, moved(f"{name}'s tensors handed to callback_on_step_end")


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_scheduler_step_internals(sampler):
    cls_name, _ = SAMPLERS[sampler]
    cls = getattr(diffusers, cls_name, None)
    assert cls is not None, moved(f"the scheduler class {cls_name}")
    params = list(inspect.signature(cls.step).parameters)
    assert params[1:4] == ["model_output", "timestep", "sample"], moved(f"{cls_name}.step's arguments ({params})")
    assert "return_dict" in params, moved(f"{cls_name}.step's return_dict")
    assert callable(getattr(cls, "set_timesteps", None)), moved(f"{cls_name}.set_timesteps")
