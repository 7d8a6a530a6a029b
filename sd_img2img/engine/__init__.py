"""The engine: a loaded model running requests, every step captured, and the interface a page uses to reach the
models wherever they run (``backend``).

    from sd_img2img.engine import Engine, GenerationRequest
"""

from sd_img2img.engine.engine import Engine
from sd_img2img.engine.result import GenerationResult
from sd_img2img.engine.step_recorder import StepFrame
from sd_img2img.models.options import EngineOptions
from sd_img2img.plan.checks import check_inputs
from sd_img2img.plan.prepare import PreparedRequest, prepare_request
from sd_img2img.plan.request import GenerationRequest

__all__ = [
    "Engine",
    "EngineOptions",
    "GenerationRequest",
    "GenerationResult",
    "PreparedRequest",
    "StepFrame",
    "check_inputs",
    "prepare_request",
]
