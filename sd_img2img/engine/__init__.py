"""The engine: a loaded model running requests, every step captured.

from sd_img2img.engine import Engine, GenerationRequest
"""

from sd_img2img.engine.engine import (
    Engine,
    GenerationRequest,
    GenerationResult,
    PreparedRequest,
    StepFrame,
    check_inputs,
    prepare_request,
)

__all__ = [
    "Engine",
    "GenerationRequest",
    "GenerationResult",
    "PreparedRequest",
    "StepFrame",
    "check_inputs",
    "prepare_request",
]
