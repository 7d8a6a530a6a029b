"""The page's time estimates for runs on model workers: learnt from the results that come back (their seconds are
the workers' own, ``timing.run_times``), the same ``TimingModel`` the in-process engine keeps. Guidance is on by the
family's own rule (``Family.guided``), as in-process; only an LCM UNet's embedding is not seen from here, and LCM's
family says it (its guidance is an embedding)."""

from __future__ import annotations

from sd_img2img.engine.result import GenerationResult
from sd_img2img.models.families import Family
from sd_img2img.plan.prepare import PreparedRequest
from sd_img2img.plan.timing import TimingModel, model_calls, planned_run, run_times


class RemoteTiming:
    """Per model name: what runs took on its workers, and what a planned run will take there."""

    def __init__(self):
        self.model = TimingModel()

    def observe(self, name: str, prepared: PreparedRequest, result: GenerationResult, family: Family) -> None:
        """Learn from a finished (or stopped) run of ``name``."""
        seconds = result.seconds
        on = family.guided(float(prepared.request.guidance_scale))
        times = run_times(name, prepared, on, result.model_calls, seconds.get("text_encode") or None, seconds)
        if times is not None:
            self.model.observe(times)

    def estimate(self, name: str, prepared: PreparedRequest, family: Family) -> float | None:
        """Seconds ``prepared`` will take on a worker of ``name`` (None before one has run there)."""
        asked = planned_run(prepared, None, None, None, None, None, None, family.sampler)
        return self.model.estimate(
            name,
            pixels=asked.width * asked.height,
            guidance=family.guided(asked.guidance),
            calls=model_calls(asked.sampler, asked.plan.steps_to_run),
            mode=asked.mode,
            preview=asked.preview,
        )
