"""What travels between the page and a model worker, as plain data: numbers, text, lists, dicts and encoded pictures,
never tensors or this package's objects (a worker and the page may run different builds of it; and a plain dict of
bytes is what Ray moves cheapest).

- a ``PreparedRequest`` (prepared once, on the page's side): its settings as dicts, the fitted init image as PNG (and
  an inpainting run's settled mask: its pictures as PNG);
- a ``StepFrame``: its numbers, each picture decoded during the run as PNG, and for a view not decoded during the run
  (``taesd``/``full`` previews decode only the view asked for) the latents as raw bytes, which the page sends back to
  a worker to decode if a visitor switches to that view (as the in-process engine decodes it when first asked);
- a ``GenerationResult``: its fields, the output as PNG; its frames are the ones already streamed.

Pictures are PNG (lossless, fast compression), so the page's frames and output equal the in-process ones pixel for
pixel; PNG metadata and the run info are computed on the page's side from the same fields.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable
from typing import Any

import torch
from PIL import Image

from sd_img2img.config import VIEWS
from sd_img2img.engine.result import GenerationResult
from sd_img2img.engine.step_recorder import StepFrame
from sd_img2img.plan.mask import InpaintMask, MaskPlan
from sd_img2img.plan.noise import NoiseLevel
from sd_img2img.plan.prepare import PreparedRequest
from sd_img2img.plan.request import GenerationRequest
from sd_img2img.plan.step_plan import StepPlan

PNG_COMPRESSION = 1  # zlib level: lossless either way; 1 encodes several times faster than the default 6


# -- pictures and latents ----------------------------------------------------------------------------------


def picture_bytes(image: Image.Image) -> bytes:
    """``image`` as PNG bytes (lossless)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=PNG_COMPRESSION)
    return buffer.getvalue()


def picture(data: bytes) -> Image.Image:
    """The picture ``picture_bytes`` made, decoded now (not lazily: its bytes may go)."""
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def tensor_message(tensor: torch.Tensor) -> dict[str, Any]:
    """A cpu tensor as its dtype's name, its shape and its raw bytes (bfloat16 and float16 kept as they are)."""
    t = tensor.detach().cpu().contiguous()
    return dict(
        dtype=str(t.dtype).removeprefix("torch."), shape=list(t.shape), data=t.view(torch.uint8).numpy().tobytes()
    )


def tensor_from(message: dict[str, Any]) -> torch.Tensor:
    """The tensor ``tensor_message`` described, on the cpu."""
    dtype = getattr(torch, message["dtype"])
    raw = torch.frombuffer(bytearray(message["data"]), dtype=torch.uint8)
    return raw.view(dtype).reshape(message["shape"])


# -- a prepared request ------------------------------------------------------------------------------------


def _request_fields(request: GenerationRequest) -> dict[str, Any]:
    """A request's settings without its init image and mask (which travel once, fitted, as the prepared request's)."""
    return dataclasses.asdict(dataclasses.replace(request, init_image=None, mask=None))


def mask_message(mask: InpaintMask | None) -> dict[str, Any] | None:
    """A settled mask as plain data: its pictures as PNG, its plan as a dict."""
    if mask is None:
        return None
    return dict(
        image=picture_bytes(mask.image),
        blurred=picture_bytes(mask.blurred),
        plan=dataclasses.asdict(mask.plan),
        inverted=mask.inverted,
        source=mask.source,
        fill=picture_bytes(mask.fill) if mask.fill is not None else None,
    )


def mask_from(message: dict[str, Any] | None) -> InpaintMask | None:
    """The ``InpaintMask`` of ``mask_message``."""
    if message is None:
        return None
    fill = message["fill"]
    return InpaintMask(
        image=picture(message["image"]),
        blurred=picture(message["blurred"]),
        plan=MaskPlan(**message["plan"]),
        inverted=message["inverted"],
        source=message["source"],
        fill=picture(fill) if fill is not None else None,
    )


def prepared_message(prepared: PreparedRequest) -> dict[str, Any]:
    """``prepared`` as plain data: the settings as dicts, the fitted init image as PNG."""
    fields = {f.name: getattr(prepared, f.name) for f in dataclasses.fields(prepared)}
    fields.update(
        asked=_request_fields(prepared.asked),
        request=_request_fields(prepared.request),
        image=picture_bytes(prepared.image) if prepared.image is not None else None,
        plan=dataclasses.asdict(prepared.plan),
        warnings=list(prepared.warnings),
        loras=dict(prepared.loras),
        mask=mask_message(prepared.mask),
    )
    return fields


def prepared_from(message: dict[str, Any]) -> PreparedRequest:
    """The ``PreparedRequest`` of ``prepared_message``; the fitted image stands for the init image asked for."""
    fields = dict(message)
    image = picture(fields["image"]) if fields["image"] is not None else None
    fields.update(
        asked=GenerationRequest(**{**fields["asked"], "init_image": image}),
        request=GenerationRequest(**{**fields["request"], "init_image": image}),
        image=image,
        plan=plan_from(fields["plan"]),
        mask=mask_from(fields.get("mask")),
    )
    return PreparedRequest(**fields)


# -- step frames -------------------------------------------------------------------------------------------


def frame_message(frame: StepFrame) -> dict[str, Any]:
    """``frame``'s numbers and the pictures decoded during the run; for a view not decoded, its latents."""
    message: dict[str, Any] = dict(
        index=frame.index,
        total=frame.total,
        timestep=frame.timestep,
        sigma=frame.sigma,
        seconds=frame.seconds,
        images={view: picture_bytes(image) for view, image in frame.images.items()},
        latents=None,
        x0=None,
    )
    if "latents" not in frame.images:
        message["latents"] = tensor_message(frame.latents)
    if "x0" not in frame.images and frame.x0 is not None:
        message["x0"] = tensor_message(frame.x0)
    return message


def frame_from(message: dict[str, Any], decode: Callable[[torch.Tensor], Image.Image] | None) -> StepFrame:
    """The ``StepFrame`` of ``frame_message``. ``decode`` turns the latents of a view not decoded during the run into
    its picture when first asked for (a worker decodes them); the picture is then kept."""
    unknown = set(message["images"]) - set(VIEWS)
    if unknown:
        raise ValueError(f"a frame with views {sorted(unknown)}; the views are {', '.join(VIEWS)}")
    latents, x0 = message["latents"], message["x0"]
    return StepFrame(
        index=message["index"],
        total=message["total"],
        timestep=message["timestep"],
        sigma=message["sigma"],
        seconds=message["seconds"],
        latents=tensor_from(latents) if latents is not None else None,
        x0=tensor_from(x0) if x0 is not None else None,
        decode=decode,
        images={view: picture(data) for view, data in message["images"].items()},
    )


# -- results -----------------------------------------------------------------------------------------------


def result_message(result: GenerationResult) -> dict[str, Any]:
    """``result``'s fields as plain data, the output as PNG, without its frames (they were streamed already)."""
    fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(result) if f.name != "frames"}
    fields.update(
        output=picture_bytes(result.output),
        plan=dataclasses.asdict(result.plan) if result.plan is not None else None,
        seconds=dict(result.seconds),
        warnings=list(result.warnings),
        loras=dict(result.loras),
        mask=dict(result.mask) if result.mask is not None else None,
        mask_image=picture_bytes(result.mask_image) if result.mask_image is not None else None,
    )
    return fields


def result_from(message: dict[str, Any], frames: list[StepFrame]) -> GenerationResult:
    """The ``GenerationResult`` of ``result_message``, with the ``frames`` streamed before it."""
    fields = dict(message)
    plan = fields["plan"]
    fields.update(output=picture(fields["output"]), plan=plan_from(plan) if plan is not None else None)
    if fields.get("mask_image") is not None:
        fields["mask_image"] = picture(fields["mask_image"])
    return GenerationResult(frames=frames, **fields)


def plan_from(fields: dict) -> StepPlan:
    """A ``StepPlan`` from its ``dataclasses.asdict`` form (its noise level and mask plan dataclasses again)."""
    noise, mask = fields.get("noise"), fields.get("mask")
    return StepPlan(
        **{
            **fields,
            "noise": NoiseLevel(**noise) if noise is not None else None,
            "mask": MaskPlan(**mask) if mask is not None else None,
        }
    )
