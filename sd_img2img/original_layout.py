"""Diffusers → original (CompVis/LDM) layout: a diffusers SD 1.x folder as one ``.safetensors`` file, the way
AUTOMATIC1111, ComfyUI and InvokeAI keep checkpoints.

The inverse of what diffusers' ``from_single_file`` reads (``diffusers.loaders.single_file_utils``
``convert_ldm_unet_checkpoint`` / ``convert_ldm_vae_checkpoint`` / ``convert_ldm_clip_checkpoint``), after the
mapping of diffusers' ``scripts/convert_diffusers_to_original_stable_diffusion.py``, but worked out from the
UNet's and VAE's configs so that any block layout converts (the tiny test checkpoints have two UNet levels and
one layer per block, SD1.5 four and two):

- UNet → ``model.diffusion_model.*``: ``conv_in`` → ``input_blocks.0.0``; down level ``i`` (``L`` layers) puts
  resnet/attention ``j`` at ``input_blocks.{1 + i(L+1) + j}.{0,1}`` and its downsampler at
  ``input_blocks.{1 + i(L+1) + L}.0.op``; the mid block is ``middle_block.0/1/2``; up level ``i`` puts
  resnet/attention ``j`` (``L+1`` of them) at ``output_blocks.{i(L+1) + j}.{0,1}`` and its upsampler after
  them (``.1`` or, with attention, ``.2``); resnets rename ``norm1/conv1/time_emb_proj/norm2/conv2/conv_shortcut``
  to ``in_layers.0/in_layers.2/emb_layers.1/out_layers.0/out_layers.3/skip_connection``.
- VAE → ``first_stage_model.*``: ``down_blocks.i.resnets.j`` → ``down.i.block.j``; decoder up levels in reverse
  (``up_blocks.i`` → ``up.{n-1-i}``); ``mid_block`` → ``mid.block_1/attn_1/block_2``; the mid attention's
  linear q/k/v/out become 1×1 convolutions (``q/k/v/proj_out``, ``norm``).
- CLIP text encoder → ``cond_stage_model.transformer.text_model.*`` (transformers' keys otherwise unchanged).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

_RESNET = (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("time_emb_proj", "emb_layers.1"),
           ("norm2", "out_layers.0"), ("conv2", "out_layers.3"), ("conv_shortcut", "skip_connection"))
_VAE_RESNET = (("conv_shortcut", "nin_shortcut"),)
_VAE_ATTENTION = (("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"), ("to_out.0", "proj_out"))


def _rename(rest: str, table) -> str:
    for new, old in table:
        if rest.startswith(new + "."):
            return old + rest[len(new):]
    return rest


def unet_key_map(config: dict) -> dict[str, str]:
    """diffusers UNet module prefix → original prefix (without ``model.diffusion_model.``), for ``config``."""
    layers = int(config["layers_per_block"])
    down, up = config["down_block_types"], config["up_block_types"]
    m = {"conv_in": "input_blocks.0.0", "time_embedding.linear_1": "time_embed.0",
         "time_embedding.linear_2": "time_embed.2", "conv_norm_out": "out.0", "conv_out": "out.2",
         "mid_block.resnets.0": "middle_block.0", "mid_block.attentions.0": "middle_block.1",
         "mid_block.resnets.1": "middle_block.2"}
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


def _convert(state: dict[str, torch.Tensor], mapping: dict[str, str], resnet_table, prefix: str,
             attention=None) -> dict[str, torch.Tensor]:
    out = {}
    # longest prefix first, so "down_blocks.1.resnets.0" never matches "down_blocks.1.resnets.0x"
    prefixes = sorted(mapping, key=len, reverse=True)
    for key, value in state.items():
        for p in prefixes:
            if key.startswith(p + "."):
                rest = key[len(p) + 1:]
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


def original_state_dict(folder: str | Path) -> dict[str, torch.Tensor]:
    """The weights of a diffusers SD 1.x folder (``unet/``, ``vae/``, ``text_encoder/``) under the original
    single-file keys (``model.diffusion_model.*``, ``first_stage_model.*``, ``cond_stage_model.transformer.*``)."""
    folder = Path(folder)
    unet_cfg = json.loads((folder / "unet" / "config.json").read_text())
    vae_cfg = json.loads((folder / "vae" / "config.json").read_text())
    unet = _convert(_read_folder_weights(folder / "unet"), unet_key_map(unet_cfg), _RESNET, "model.diffusion_model.")
    vae = _convert(_read_folder_weights(folder / "vae"), vae_key_map(vae_cfg), _VAE_RESNET, "first_stage_model.",
                   attention=_VAE_ATTENTION)
    # transformers ≥ 5.6 saves CLIPTextModel flattened (no ``text_model.``); the original layout keeps it
    text = {"cond_stage_model.transformer." + (k if k.startswith("text_model.") else "text_model." + k): v
            for k, v in _read_folder_weights(folder / "text_encoder").items()}
    return {**unet, **vae, **text}


def write_single_file(folder: str | Path, out: str | Path) -> Path:
    """Write the diffusers SD 1.x checkpoint ``folder`` as one original-layout ``.safetensors`` file ``out``."""
    from safetensors.torch import save_file

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in original_state_dict(folder).items()}
    save_file(state, str(out), metadata={"format": "pt", "converted_from": "diffusers"})
    return out
