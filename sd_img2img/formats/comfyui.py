"""ComfyUI's settings from its ``prompt`` graph (the API graph every ComfyUI image carries), walked here.

sd-parsers reads a ComfyUI image only when the ``workflow`` chunk is there as well (images queued through ComfyUI's
API carry only ``prompt``), and it does not tie the image size to the sampler. The graph is walked breadth first with
a visited set (cycles end) and a size cap; the first sampler stage is read (later ones: a hires fix, a refiner).
Seeds are ComfyUI's full 64-bit ones (0 to 2⁶⁴ − 1), read exactly.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from sd_img2img.formats.metadata import short_model_name
from sd_img2img.formats.settings_reader import SettingsReader, Unreadable, lora_note, parse_json, to_number

COMFYUI_KEYS = ("prompt", "workflow")
MAX_GRAPH_NODES = 5000  # ComfyUI graphs with more nodes are refused
MAX_GRAPH_SAMPLERS = 16  # sampler nodes looked at in one ComfyUI graph (the first ones by node id)
COMFYUI_SAMPLERS = ("KSampler", "KSamplerAdvanced")
COMFYUI_TEXT_INPUTS = ("text", "text_g", "string", "value")  # where a prompt's text sits on a node
COMFYUI_SKIPPED_LINKS = ("clip",)  # inputs not followed when looking for a prompt's text


def from_comfyui(chunks: dict[str, str]) -> SettingsReader:
    if "prompt" not in chunks:
        raise Unreadable("only ComfyUI's editor 'workflow' is embedded, without the 'prompt' graph; not read")
    graph = parse_json(chunks["prompt"], "ComfyUI 'prompt' graph")
    nodes = {str(k): v for k, v in graph.items() if isinstance(v, dict) and isinstance(v.get("inputs"), dict)}
    if len(nodes) > MAX_GRAPH_NODES:
        raise Unreadable(f"the ComfyUI graph has {len(nodes):,} nodes, more than {MAX_GRAPH_NODES:,}; not read")
    samplers = sorted((k for k, v in nodes.items() if v.get("class_type") in COMFYUI_SAMPLERS), key=_node_order)
    if not samplers:
        raise Unreadable(f"the ComfyUI graph has no {' or '.join(COMFYUI_SAMPLERS)} node; not read")
    r = SettingsReader("ComfyUI")
    first = next((k for k in samplers[:MAX_GRAPH_SAMPLERS] if _is_first_stage(nodes, k)), samplers[0])
    if len(samplers) > 1:
        r.note(
            f"the graph has {len(samplers)} sampler nodes; read #{first}, the first stage "
            "(later stages such as a hires fix or refiner are ignored)"
        )
    inputs = nodes[first]["inputs"]
    advanced = nodes[first].get("class_type") == "KSamplerAdvanced"
    steps = _resolved(nodes, inputs.get("steps"))
    r.number("steps", steps, "steps")
    r.sampler(_resolved(nodes, inputs.get("sampler_name")), _resolved(nodes, inputs.get("scheduler")))
    r.number("guidance_scale", _resolved(nodes, inputs.get("cfg")), "cfg")
    seed_input = "noise_seed" if advanced else "seed"
    r.number("seed", _resolved(nodes, inputs.get(seed_input)), seed_input)
    _comfyui_prompts(r, nodes, inputs)
    _comfyui_image(r, nodes, inputs, steps, advanced)
    _comfyui_model(r, nodes, inputs)
    return r


def _comfyui_prompts(r: SettingsReader, nodes: dict[str, dict], inputs: dict) -> None:
    """The sampler's positive and negative prompts: the texts of the conditioning nodes upstream of it."""
    for key, name in (("positive", "prompt"), ("negative", "negative_prompt")):
        if not _is_link(inputs.get(key)):
            continue
        texts = _prompt_texts(nodes, inputs[key])
        if not texts:
            r.note(f"no text was found for the {key} prompt in the graph; left as it was")
            continue
        texts = [t for t in texts if t] or [""]
        if len(texts) > 1:
            r.note(f"the {key} conditioning combines {len(texts)} texts; they are joined with ', '")
        r.text(name, ", ".join(texts), f"{key} prompt")


def _comfyui_image(r: SettingsReader, nodes: dict[str, dict], inputs: dict, steps, advanced: bool) -> None:
    """The size of the sampler's latent image, and its denoise as strength where it starts from an encoded image."""
    latent = [node for _, node in _upstream(nodes, [inputs.get("latent_image")])]
    sized = next(
        (n["inputs"] for n in latent if _whole(n["inputs"].get("width")) and _whole(n["inputs"].get("height"))), None
    )
    if sized is not None:
        r.size(sized["width"], sized["height"], "ComfyUI")
    if advanced:
        start, total = _resolved(nodes, inputs.get("start_at_step")), to_number(steps)
        denoise = 1 - start / total if _whole(start) and total and 0 <= start < total else None
    else:
        denoise = _resolved(nodes, inputs.get("denoise"))
    if any("VAEEncode" in str(n.get("class_type")) for n in latent):
        r.number("strength", denoise, "denoise")
    elif denoise is not None:
        r.note("the sampler does not start from an encoded image (txt2img); strength left as it was")


def _comfyui_model(r: SettingsReader, nodes: dict[str, dict], inputs: dict) -> None:
    """The checkpoint and the LoRAs upstream of the sampler's model."""
    model_chain = [node["inputs"] for _, node in _upstream(nodes, [inputs.get("model")])]
    checkpoint = next(
        (
            i.get("ckpt_name", i.get("unet_name"))
            for i in model_chain
            if isinstance(i.get("ckpt_name", i.get("unet_name")), str)
        ),
        None,
    )
    if checkpoint:  # a file name under ComfyUI's models folder, maybe in a subfolder
        r.model(short_model_name(checkpoint.replace("\\", "/").rsplit("/", 1)[-1]))
    lora_note(r, [i["lora_name"] for i in model_chain if isinstance(i.get("lora_name"), str)])


def _is_first_stage(nodes: dict[str, dict], key: str) -> bool:
    """No other sampler is upstream of this sampler's latent image (later ones: hires fix, refiner)."""
    upstream = _upstream(nodes, [nodes[key]["inputs"].get("latent_image")])
    return not any(node.get("class_type") in COMFYUI_SAMPLERS for _, node in upstream)


def _node_order(node_id: str) -> tuple[int, int, str]:
    return (0, int(node_id), "") if node_id.isdigit() and len(node_id) < 12 else (1, 0, node_id)


def _is_link(value: Any) -> bool:
    """ComfyUI's API graph writes an input fed by another node as ``[node_id, output_index]``."""
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], (str, int))
        and not isinstance(value[0], bool)
        and isinstance(value[1], int)
    )


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _upstream(
    nodes: dict[str, dict],
    links: list[Any],
    skip: Callable[[str], bool] = lambda key: False,
    stop: Callable[[dict], bool] = lambda node: False,
) -> Iterator[tuple[str, dict]]:
    """The nodes feeding ``links``, breadth first, each once (so cycles end).

    Args:
        nodes: the graph, node id → node.
        links: the inputs to start from; those that are not links are ignored.
        skip: inputs (by name) not to follow.
        stop: nodes whose own inputs are not followed.
    """
    queue = deque(str(link[0]) for link in links if _is_link(link))
    seen: set[str] = set()
    while queue:
        key = queue.popleft()
        if key in seen or key not in nodes:
            continue
        seen.add(key)
        node = nodes[key]
        yield key, node
        if stop(node):
            continue
        queue.extend(str(value[0]) for name, value in node["inputs"].items() if _is_link(value) and not skip(name))


def _resolved(nodes: dict[str, dict], value: Any, hops: int = 3) -> Any:
    """An input's value; one fed by a link is taken from the feeding node's first plain value (a seed node, …)."""
    while _is_link(value) and hops > 0:
        node = nodes.get(str(value[0]))
        if node is None:
            return None
        values = [v for v in node["inputs"].values() if not isinstance(v, (list, dict))]
        links = [v for v in node["inputs"].values() if _is_link(v)]
        value = values[0] if values else links[0] if links else None
        hops -= 1
    return None if isinstance(value, (list, dict)) else value


def _prompt_texts(nodes: dict[str, dict], link: Any) -> list[str]:
    """The texts encoded into a conditioning input: the nearest text on each path upstream of it (maybe empty)."""

    def text_of(node: dict) -> str | None:
        return next((node["inputs"][k] for k in COMFYUI_TEXT_INPUTS if isinstance(node["inputs"].get(k), str)), None)

    texts = []
    for _, node in _upstream(
        nodes, [link], skip=lambda name: name in COMFYUI_SKIPPED_LINKS, stop=lambda node: text_of(node) is not None
    ):
        text = text_of(node)
        if text is not None and text.strip() not in texts:
            texts.append(text.strip())
    return texts
