"""Sampler names across tools: this project's names next to AUTOMATIC1111's, InvokeAI's and ComfyUI's (and so
Fooocus', SwarmUI's and NovelAI's).

One table, ``SAMPLER_TABLE``, holds the mapping both ways: reading another tool's settings turns its
sampler (and schedule) into ours, and the PNGs this project writes name their sampler the way AUTOMATIC1111
does.

Fooocus, SwarmUI and NovelAI name their samplers as ComfyUI does (k-diffusion's names), so their names are looked up
in ComfyUI's column: NovelAI's with its ``k_`` prefix taken off (``k_euler_ancestral``; ``ddim_v3`` is DDIM), and
ComfyUI's own older ones (2023) with their ``sample_`` prefix taken off (``sample_dpmpp_2m``).

Schedules: AUTOMATIC1111 names them apart (``Sampler: DPM++ 2M, Schedule type: Karras``; before 1.8 the
schedule was part of the name, ``DPM++ 2M Karras``), InvokeAI adds ``_k`` to the name (``dpmpp_2m_k``), ComfyUI,
Fooocus and SwarmUI have a ``scheduler`` (``karras``) and NovelAI a ``noise_schedule`` (``native``: the model's own).
Here only ``dpmpp_2m_karras`` runs the Karras schedule; any other sampler asked for with a schedule it does not have
maps to its plain version, with a note.
"""

from __future__ import annotations

from typing import NamedTuple

from sd_img2img.plan.samplers import SAMPLERS


class SamplerName(NamedTuple):
    """One of our samplers and what the other tools call it."""

    ours: str
    a1111: str  # AUTOMATIC1111's sampler name
    a1111_schedule: str | None  # AUTOMATIC1111's "Schedule type" written with it (None: none written)
    invokeai: tuple[str, ...]  # InvokeAI scheduler names (3.x and later, then 2.x), without the "_k" of Karras
    comfyui: str | None  # ComfyUI's sampler_name (None: ComfyUI has no such sampler)
    karras: bool = False  # runs the Karras schedule


SAMPLER_TABLE: tuple[SamplerName, ...] = (
    SamplerName("k_lms", "LMS", None, ("lms", "k_lms"), "lms"),
    SamplerName("ddim", "DDIM", None, ("ddim",), "ddim"),
    SamplerName("plms", "PLMS", None, ("pndm", "plms"), None),
    SamplerName("k_euler", "Euler", None, ("euler", "k_euler"), "euler"),
    SamplerName("k_euler_a", "Euler a", None, ("euler_a", "k_euler_a"), "euler_ancestral"),
    SamplerName("k_heun", "Heun", None, ("heun", "k_heun"), "heun"),
    # AUTOMATIC1111 1.8+ runs DPM2, DPM2 a and DPM++ 2M on Karras unless told otherwise: the plain ones say "Uniform"
    SamplerName("k_dpm_2", "DPM2", "Uniform", ("kdpm_2", "k_dpm_2"), "dpm_2"),
    SamplerName("k_dpm_2_a", "DPM2 a", "Uniform", ("kdpm_2_a", "k_dpm_2_a"), "dpm_2_ancestral"),
    SamplerName("dpmpp_2m", "DPM++ 2M", "Uniform", ("dpmpp_2m", "k_dpmpp_2"), "dpmpp_2m"),
    SamplerName("dpmpp_2m_karras", "DPM++ 2M", "Karras", ("dpmpp_2m",), "dpmpp_2m", karras=True),
    SamplerName("lcm", "LCM", None, ("lcm",), "lcm"),
)

TOOLS = ("AUTOMATIC1111", "InvokeAI", "ComfyUI", "Fooocus", "SwarmUI", "NovelAI")
# the tools whose sampler names are ComfyUI's (k-diffusion's), and the prefixes their names may carry
COMFYUI_NAMED = {"ComfyUI": ("sample_",), "Fooocus": (), "SwarmUI": (), "NovelAI": ("k_",)}
# sampler names of those tools that are another name of one in ComfyUI's column
COMFYUI_ALIASES = {"ddim_v3": "ddim"}  # NovelAI's DDIM

# AUTOMATIC1111 1.8+: the samplers whose "Automatic" schedule type is Karras
A1111_AUTOMATIC_KARRAS = ("DPM++ 2M", "DPM++ SDE", "DPM++ 2S a", "DPM2", "DPM2 a")
# schedule names that mean a sampler's plain schedule, in any tool (compared case-insensitively)
PLAIN_SCHEDULES = ("", "automatic", "uniform", "normal", "default", "none", "native")
# AUTOMATIC1111 before 1.8 put the schedule at the end of the sampler name
A1111_SCHEDULE_SUFFIXES = (" karras", " exponential")

_BY_TOOL: dict[str, dict[tuple[str, bool], str]] = {
    "AUTOMATIC1111": {(row.a1111.casefold(), row.karras): row.ours for row in SAMPLER_TABLE},
    "InvokeAI": {(name, row.karras): row.ours for row in SAMPLER_TABLE for name in row.invokeai},
    "ComfyUI": {(row.comfyui, row.karras): row.ours for row in SAMPLER_TABLE if row.comfyui},
}
_BY_OURS = {row.ours: row for row in SAMPLER_TABLE}


def a1111_sampler(sampler: str) -> tuple[str, str | None]:
    """AUTOMATIC1111's sampler name and schedule type for one of ours.

    Args:
        sampler: one of our sampler names; a name missing from ``SAMPLER_TABLE`` comes back unchanged.

    Returns:
        ``(name, schedule type or None)``, e.g. ``("DPM++ 2M", "Karras")`` for ``dpmpp_2m_karras``.
    """
    row = _BY_OURS.get(sampler)
    return (row.a1111, row.a1111_schedule) if row else (sampler, None)


def our_sampler(tool: str, name: str, schedule: str | None = None) -> tuple[str | None, list[str]]:
    """Our sampler for another tool's sampler name and schedule.

    Args:
        tool: one of ``TOOLS``.
        name: the tool's sampler name (``Euler a``, ``dpmpp_2m_k``, ``euler_ancestral``, ``k_euler``, …).
        schedule: AUTOMATIC1111's "Schedule type", ComfyUI's (Fooocus's, SwarmUI's) ``scheduler`` or NovelAI's
            ``noise_schedule``, if any.

    Returns:
        ``(sampler, notes)``: one of ``samplers.SAMPLER_NAMES``, or ``None`` when there is no equivalent
        here, and what did not carry over, for the user.
    """
    if tool not in _BY_TOOL and tool not in COMFYUI_NAMED:
        raise ValueError(f"unknown tool {tool!r}; one of {', '.join(TOOLS)}")
    base = name.strip()
    asked = (schedule or "").strip()  # as the tool wrote it, for the notes
    schedule = asked
    if tool == "AUTOMATIC1111":
        for suffix in A1111_SCHEDULE_SUFFIXES:
            if base.casefold().endswith(suffix):
                base, schedule = base[: -len(suffix)], base[-len(suffix) + 1 :]
                break
        if schedule.casefold() == "automatic":
            karras_default = base.casefold() in {n.casefold() for n in A1111_AUTOMATIC_KARRAS}
            schedule = "Karras" if karras_default else ""
            asked = "Automatic (Karras)" if karras_default else asked
    elif tool == "InvokeAI" and base.endswith("_k"):
        base, schedule = base[:-2], "Karras"
    elif tool in COMFYUI_NAMED:
        base = _comfyui_name(base, COMFYUI_NAMED[tool])
    key = base.casefold() if tool == "AUTOMATIC1111" else base
    karras = schedule.casefold() == "karras"
    plain = schedule.casefold() in PLAIN_SCHEDULES
    table = _BY_TOOL["ComfyUI" if tool in COMFYUI_NAMED else tool]
    written = f"{name.strip()}, schedule {asked}" if asked else name.strip()
    ours = table.get((key, karras)) if plain or karras else None
    notes = []
    if ours is None and not plain:
        ours = table.get((key, False))
        if ours is not None:
            notes.append(f"{tool} sampler '{written}': {ours} has no {schedule} schedule here and runs its default one")
    if ours is None and base in SAMPLERS and plain:  # InvokeAI 2.x names are ours
        ours = base
    if ours is None or ours not in SAMPLERS:
        return None, [f"sampler '{written}' ({tool}) has no equivalent here; the sampler is left as it was"]
    return ours, notes


def _comfyui_name(name: str, prefixes: tuple[str, ...]) -> str:
    """A sampler name of a tool in ``COMFYUI_NAMED`` as ComfyUI's column has it."""
    for prefix in prefixes:
        if name.startswith(prefix) and len(name) > len(prefix):
            name = name[len(prefix) :]
            break
    return COMFYUI_ALIASES.get(name, name)
