"""Diffusers → original (CompVis/LDM, Stability's SGM) layout: a diffusers SD 1.x or SDXL (base, refiner) folder
as one ``.safetensors`` file, the way AUTOMATIC1111, ComfyUI and InvokeAI keep checkpoints.

The inverse of what diffusers' ``from_single_file`` reads (``diffusers.loaders.single_file_utils``
``convert_ldm_unet_checkpoint`` / ``convert_ldm_vae_checkpoint`` / ``convert_ldm_clip_checkpoint``), after the
mapping of diffusers' ``scripts/convert_diffusers_to_original_stable_diffusion.py``, but worked out from the
UNet's and VAE's configs so that any block layout converts (the tiny test checkpoints have two UNet levels and
one layer per block, SD1.5 four and two):

- UNet → ``model.diffusion_model.*``: ``conv_in`` → ``input_blocks.0.0``; down level ``i`` (``L`` layers) puts
  resnet/attention ``j`` at ``input_blocks.{1 + i(L+1) + j}.{0,1}`` and its downsampler at
  ``input_blocks.{1 + i(L+1) + L}.0.op``; the mid block is ``middle_block.0/1/2``; up level ``i`` puts
  resnet/attention ``j`` (``L+1`` of them) at ``output_blocks.{i(L+1) + j}.{0,1}`` and its upsampler after
  them (``.1`` or, with attention, ``.2``); SDXL's ``add_embedding.linear_1/2`` → ``label_emb.0.0/2``; resnets rename ``norm1/conv1/time_emb_proj/norm2/conv2/conv_shortcut``
  to ``in_layers.0/in_layers.2/emb_layers.1/out_layers.0/out_layers.3/skip_connection``.
- VAE → ``first_stage_model.*``: ``down_blocks.i.resnets.j`` → ``down.i.block.j``; decoder up levels in reverse
  (``up_blocks.i`` → ``up.{n-1-i}``); ``mid_block`` → ``mid.block_1/attn_1/block_2``; the mid attention's
  linear q/k/v/out become 1×1 convolutions (``q/k/v/proj_out``, ``norm``).
- CLIP text encoder → ``cond_stage_model.transformer.text_model.*`` (SDXL: ``conditioner.embedders.0.transformer.``),
  transformers' keys otherwise unchanged.
- SDXL's OpenCLIP bigG (``text_encoder_2``) → ``conditioner.embedders.1.model.*`` (the refiner's:
  ``conditioner.embedders.0.model.*``) in OpenCLIP's own names: ``token_embedding``, ``positional_embedding``,
  ``transformer.resblocks.i.{ln_1, attn.in_proj_weight (q, k, v stacked), attn.out_proj, ln_2, mlp.c_fc,
  mlp.c_proj}``, ``ln_final``, and ``text_projection`` transposed.

    python tests/original_layout.py DIR OUT.safetensors
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

_RESNET = (
    ("norm1", "in_layers.0"),
    ("conv1", "in_layers.2"),
    ("time_emb_proj", "emb_layers.1"),
    ("norm2", "out_layers.0"),
    ("conv2", "out_layers.3"),
    ("conv_shortcut", "skip_connection"),
)
_VAE_RESNET = (("conv_shortcut", "nin_shortcut"),)
_VAE_ATTENTION = (("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"), ("to_out.0", "proj_out"))


def _rename(rest: str, table) -> str:
    for new, old in table:
        if rest.startswith(new + "."):
            return old + rest[len(new) :]
    return rest


def unet_key_map(config: dict) -> dict[str, str]:
    """diffusers UNet module prefix → original prefix (without ``model.diffusion_model.``), for ``config``."""
    layers = int(config["layers_per_block"])
    down, up = config["down_block_types"], config["up_block_types"]
    m = {
        "conv_in": "input_blocks.0.0",
        "time_embedding.linear_1": "time_embed.0",
        "time_embedding.linear_2": "time_embed.2",
        "conv_norm_out": "out.0",
        "conv_out": "out.2",
        "mid_block.resnets.0": "middle_block.0",
        "mid_block.attentions.0": "middle_block.1",
        "mid_block.resnets.1": "middle_block.2",
        "add_embedding.linear_1": "label_emb.0.0",
        "add_embedding.linear_2": "label_emb.0.2",
    }
    for i in range(len(down)):
        for j in range(layers):
            n = 1 + i * (layers + 1) + j
            m[f"down_blocks.{i}.resnets.{j}"] = f"input_blocks.{n}.0"
            m[f"down_blocks.{i}.attentions.{j}"] = f"input_blocks.{n}.1"
        if i < len(down) - 1:
            m[f"down_blocks.{i}.downsamplers.0.conv"] = f"input_blocks.{1 + i * (layers + 1) + layers}.0.op"
    for i, kind in enumerate(up):
        for j in range(layers + 1):
            n = i * (layers + 1) + j
            m[f"up_blocks.{i}.resnets.{j}"] = f"output_blocks.{n}.0"
            m[f"up_blocks.{i}.attentions.{j}"] = f"output_blocks.{n}.1"
        if i < len(up) - 1:
            last = i * (layers + 1) + layers
            m[f"up_blocks.{i}.upsamplers.0"] = f"output_blocks.{last}.{2 if 'CrossAttn' in kind else 1}"
    return m


def _convert(
    state: dict[str, torch.Tensor], mapping: dict[str, str], resnet_table, prefix: str, attention=None
) -> dict[str, torch.Tensor]:
    out = {}
    # longest prefix first, so "down_blocks.1.resnets.0" never matches "down_blocks.1.resnets.0x"
    prefixes = sorted(mapping, key=len, reverse=True)
    for key, value in state.items():
        for p in prefixes:
            if key.startswith(p + "."):
                rest = key[len(p) + 1 :]
                if "resnets" in p:
                    rest = _rename(rest, resnet_table)
                elif attention is not None and "attentions" in p:
                    rest = _rename(rest, attention)
                    if value.ndim == 2:
                        value = value[:, :, None, None]  # linear → 1×1 convolution
                out[prefix + mapping[p] + "." + rest] = value
                break
        else:
            out[prefix + key] = value
    return out


def vae_key_map(config: dict) -> dict[str, str]:
    """diffusers VAE module prefix → original prefix (without ``first_stage_model.``)."""
    levels = len(config["block_out_channels"])
    layers = int(config["layers_per_block"])
    m = {}
    for side in ("encoder", "decoder"):
        m[f"{side}.mid_block.resnets.0"] = f"{side}.mid.block_1"
        m[f"{side}.mid_block.resnets.1"] = f"{side}.mid.block_2"
        m[f"{side}.mid_block.attentions.0"] = f"{side}.mid.attn_1"
        m[f"{side}.conv_norm_out"] = f"{side}.norm_out"
    for i in range(levels):
        for j in range(layers):
            m[f"encoder.down_blocks.{i}.resnets.{j}"] = f"encoder.down.{i}.block.{j}"
        m[f"encoder.down_blocks.{i}.downsamplers.0"] = f"encoder.down.{i}.downsample"
        for j in range(layers + 1):
            m[f"decoder.up_blocks.{i}.resnets.{j}"] = f"decoder.up.{levels - 1 - i}.block.{j}"
        m[f"decoder.up_blocks.{i}.upsamplers.0"] = f"decoder.up.{levels - 1 - i}.upsample"
    return m


def _read_folder_weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"'{folder}' has no .safetensors weights")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(load_file(f))
    return state


def _clip(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    # transformers ≥ 5.6 saves CLIPTextModel flattened (no ``text_model.``); the original layout keeps it
    return {prefix + (k if k.startswith("text_model.") else "text_model." + k): v for k, v in state.items()}


def _open_clip(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """A transformers ``CLIPTextModelWithProjection`` state dict in OpenCLIP's names under ``prefix``."""
    state = {k if k.startswith(("text_model.", "text_projection")) else "text_model." + k: v for k, v in state.items()}
    out = {
        prefix + "token_embedding.weight": state.pop("text_model.embeddings.token_embedding.weight"),
        prefix + "positional_embedding": state.pop("text_model.embeddings.position_embedding.weight"),
        prefix + "ln_final.weight": state.pop("text_model.final_layer_norm.weight"),
        prefix + "ln_final.bias": state.pop("text_model.final_layer_norm.bias"),
        prefix + "text_projection": state.pop("text_projection.weight").T.contiguous(),
    }
    state.pop("text_model.embeddings.position_ids", None)
    layers = sorted({int(k.split(".")[3]) for k in state if k.startswith("text_model.encoder.layers.")})
    names = (
        ("layer_norm1", "ln_1"),
        ("layer_norm2", "ln_2"),
        ("self_attn.out_proj", "attn.out_proj"),
        ("mlp.fc1", "mlp.c_fc"),
        ("mlp.fc2", "mlp.c_proj"),
    )
    for i in layers:
        src, dst = f"text_model.encoder.layers.{i}.", f"{prefix}transformer.resblocks.{i}."
        for kind in ("weight", "bias"):
            out[f"{dst}attn.in_proj_{kind}"] = torch.cat(
                [state.pop(f"{src}self_attn.{p}_proj.{kind}") for p in ("q", "k", "v")]
            )
            for new, old in names:
                out[f"{dst}{old}.{kind}"] = state.pop(f"{src}{new}.{kind}")
    if state:
        raise ValueError(f"unexpected text encoder weights: {sorted(state)[:5]}")
    return out


def original_state_dict(folder: str | Path) -> dict[str, torch.Tensor]:
    """The weights of a diffusers SD 1.x or SDXL folder under the original single-file keys
    (``model.diffusion_model.*``, ``first_stage_model.*``, ``cond_stage_model.transformer.*`` or SDXL's
    ``conditioner.embedders.*``)."""
    folder = Path(folder)
    index = json.loads((folder / "model_index.json").read_text())
    unet_cfg = json.loads((folder / "unet" / "config.json").read_text())
    vae_cfg = json.loads((folder / "vae" / "config.json").read_text())
    unet = _convert(_read_folder_weights(folder / "unet"), unet_key_map(unet_cfg), _RESNET, "model.diffusion_model.")
    vae = _convert(
        _read_folder_weights(folder / "vae"),
        vae_key_map(vae_cfg),
        _VAE_RESNET,
        "first_stage_model.",
        attention=_VAE_ATTENTION,
    )
    has = lambda name: (index.get(name) or [None])[0] is not None  # noqa: E731
    if not index.get("_class_name", "").startswith("StableDiffusionXL"):
        return {**unet, **vae, **_clip(_read_folder_weights(folder / "text_encoder"), "cond_stage_model.transformer.")}
    text: dict[str, torch.Tensor] = {}
    if has("text_encoder"):  # the base: CLIP ViT-L first, OpenCLIP bigG second
        text.update(_clip(_read_folder_weights(folder / "text_encoder"), "conditioner.embedders.0.transformer."))
        text.update(_open_clip(_read_folder_weights(folder / "text_encoder_2"), "conditioner.embedders.1.model."))
    else:  # the refiner: OpenCLIP bigG only
        text.update(_open_clip(_read_folder_weights(folder / "text_encoder_2"), "conditioner.embedders.0.model."))
    return {**unet, **vae, **text}


def write_single_file(folder: str | Path, out: str | Path) -> Path:
    """Write the diffusers SD 1.x / SDXL checkpoint ``folder`` as one original-layout ``.safetensors`` file ``out``."""
    from safetensors.torch import save_file

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in original_state_dict(folder).items()}
    save_file(state, str(out), metadata={"format": "pt", "converted_from": "diffusers"})
    return out


# diffusers' Z-Image transformer names → the original (ComfyUI) ones: the inverse of diffusers'
# convert_z_image_transformer_checkpoint_to_diffusers (its q, k and v stacked back into one qkv)
_ZIMAGE_RENAMES = (
    ("all_final_layer.2-1.", "final_layer."),
    ("all_x_embedder.2-1.", "x_embedder."),
    (".attention.to_out.0.", ".attention.out."),
    (".attention.norm_k.", ".attention.k_norm."),
    (".attention.norm_q.", ".attention.q_norm."),
)


def zimage_transformer_state_dict(folder: str | Path, prefix: str = "model.diffusion_model.") -> dict:
    """A diffusers Z-Image folder's transformer under the original keys (``prefix`` first), as ComfyUI keeps it."""
    state = _read_folder_weights(Path(folder) / "transformer")
    out = {}
    for key in list(state):
        if key.endswith(".attention.to_q.weight"):
            stem = key[: -len("to_q.weight")]
            out[prefix + stem + "qkv.weight"] = torch.cat([state[stem + f"to_{x}.weight"] for x in "qkv"])
        elif not key.endswith((".attention.to_k.weight", ".attention.to_v.weight")):
            new = key
            for old, original in _ZIMAGE_RENAMES:
                new = new.replace(old, original)
            out[prefix + new] = state[key]
    return out


def write_zimage_transformer(folder: str | Path, out: str | Path) -> Path:
    """The transformer of the diffusers Z-Image folder ``folder`` as one original-layout ``.safetensors`` file."""
    from safetensors.torch import save_file

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in zimage_transformer_state_dict(folder).items()}, str(out))
    return out


def main(argv: list[str] | None = None) -> None:
    """``DIR OUT.safetensors``: write the diffusers SD 1.x or SDXL folder ``DIR`` as one original-layout file."""
    import argparse

    parser = argparse.ArgumentParser(description="Write a diffusers SD 1.x or SDXL folder as one original-layout file.")
    parser.add_argument("folder", metavar="DIR", help="a diffusers SD 1.x or SDXL (base, refiner) checkpoint folder")
    parser.add_argument(
        "out",
        metavar="OUT.safetensors",
        help="the file to write (model.diffusion_model.*, first_stage_model.*, cond_stage_model.* or "
        "conditioner.embedders.*)",
    )
    args = parser.parse_args(argv)
    print(write_single_file(args.folder, args.out))


if __name__ == "__main__":
    main()
