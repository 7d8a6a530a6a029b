"""The page's events as the public API sees them. An endpoint's parameters are declared settings, looked up by name:
the request's (``plan.request``), the page's own (the model, below) and a series' options (``series``), so a
setting's name, type, default and help are written once. ``endpoint(names)`` gives a handler that signature (gradio
reads it for the API's parameter list, and the wiring for the event's inputs) and a docstring whose Args say what each
parameter is; the handler itself takes the values by field name (``image`` arrives as the form's ``init_image``).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from sd_img2img.plan.fields import Declared, declared, setting
from sd_img2img.plan.prepare import PreparedRequest
from sd_img2img.plan.request import SETTINGS


@dataclass
class PageChoices:
    """What a page's events take beside the request's settings."""

    model: str | None = setting(None, label="Model", help="one of the served models (empty: the first)")
    # the page's own (gradio State and editor values, not part of the API)
    prepared: PreparedRequest | None = setting(None, label="Prepared request", help="the click's prepared request")
    planned: Any = setting(None, label="Planned series", help="the click's planned series")
    source: str = setting("image", label="Source", help="the source tab in use: image, sketch or inpaint")
    sketch: dict | None = setting(None, label="Sketch", help="the drawing on the Sketch tab")
    inpaint: dict | None = setting(
        None, label="Inpaint", help="the Inpaint tab's picture and the strokes painted on it"
    )
    mask_upload: str | None = setting(None, label="Mask upload", help="the Inpaint tab's uploaded mask")
    use_alpha: bool = setting(False, label="Use alpha", help="the Inpaint tab asks for the image's transparency")


PAGE = declared(PageChoices)
# never in the API's docs
PAGE_ONLY = ("prepared", "planned", "source", "sketch", "inpaint", "mask_upload", "use_alpha")
# an endpoint's parameter → the field it is, where the two names differ (the public API's ``image``)
PARAM_FIELDS = {f.param: name for name, f in {**SETTINGS, **PAGE}.items() if f.param != name}


def form_names(img2img: bool = True, without: Iterable[str] = ()) -> tuple[str, ...]:
    """The form's settings as an endpoint takes them: the init image first, then the request's settings as they are
    declared, the model, and last the LoRA switches (their names are the model's). ``img2img=False`` leaves out what
    means nothing without an init image; ``without`` names more to leave out."""
    skip = {"init_image", "loras", *without}
    names = [n for n, f in SETTINGS.items() if f.setting.on_form and n not in skip]
    names = [n for n in names if img2img or not SETTINGS[n].setting.img2img_only]
    return (*(("init_image",) if img2img and "init_image" not in without else ()), *names, "model", "loras")


def with_options(form: tuple[str, ...], options: Iterable[str], after: str) -> tuple[str, ...]:
    """``form`` with a series' ``options`` placed after the setting ``after`` (an option of the same name replaces the
    form's: the explain table's own steps and strength)."""
    options = tuple(options)
    rest = [n for n in form if n not in options]
    at = rest.index(after) + 1
    return (*rest[:at], *options, *rest[at:])


def _lookup(name: str, tables: tuple[dict[str, Declared], ...]) -> Declared:
    for table in tables:
        if name in table:
            return table[name]
    raise KeyError(f"no declared setting named {name!r}")


def parameters(names: Iterable[str], *tables: dict[str, Declared], defaults: dict[str, Any] | None = None):
    """The ``inspect.Parameter`` of each named setting (found in ``tables``, the request's and the page's last):
    the endpoint's name for it, its type and its default (``defaults`` override, by field name)."""
    out = []
    for name in names:
        field = _lookup(name, (*tables, SETTINGS, PAGE))
        default = (defaults or {}).get(name, field.api_default)
        annotation = field.setting.annotation if field.setting.annotation is not None else field.type
        out.append(
            inspect.Parameter(
                field.param, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default, annotation=annotation
            )
        )
    return out


def docs(summary: str, names: Iterable[str], *tables: dict[str, Declared]) -> str:
    """``summary`` followed by an Args section saying what each parameter is (its declared help)."""
    lines = [inspect.cleandoc(summary or ""), "", "Args:"]
    for name in names:
        field = _lookup(name, (*tables, SETTINGS, PAGE))
        if name not in PAGE_ONLY:
            lines.append(f"    {field.param}: {field.setting.help or field.setting.label}")
    return "\n".join(lines)


def endpoint(names: Iterable[str], *tables: dict[str, Declared], **defaults) -> Callable:
    """Give the handler ``fn(self, values, request=None)`` the parameters ``names`` (declared settings: the request's,
    the page's, and those of ``tables``), in that order, then gradio's ``request``. ``values`` holds what the event
    was called with, by field name; ``defaults`` override declared defaults, by field name."""
    names = tuple(names)
    params = parameters(names, *tables, defaults=defaults)
    signature = inspect.Signature(
        [
            inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
            *params,
            inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation=gr.Request),
        ]
    )
    field_of = {p.name: name for p, name in zip(params, names)}

    def split(args, kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        given = dict(bound.arguments)
        self, request = given.pop("self"), given.pop("request")
        return self, {field_of[k]: v for k, v in given.items()}, request

    def decorate(fn: Callable) -> Callable:
        if inspect.isgeneratorfunction(fn):

            @functools.wraps(fn)
            def handler(*args, **kwargs):
                self, values, request = split(args, kwargs)
                yield from fn(self, values, request=request)
        else:

            @functools.wraps(fn)
            def handler(*args, **kwargs):
                self, values, request = split(args, kwargs)
                return fn(self, values, request=request)

        handler.__signature__ = signature
        handler.__annotations__ = {p.name: p.annotation for p in signature.parameters.values() if p.name != "self"}
        handler.__doc__ = docs(fn.__doc__ or "", names, *tables)
        return handler

    return decorate
