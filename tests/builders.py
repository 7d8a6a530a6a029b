"""Test-only builders on top of the tiny checkpoints (``sd_img2img.testing.tiny``): random LoRAs in each file
format, and a checkpoint whose safety checker flags every image."""

from __future__ import annotations

from pathlib import Path

import torch

from sd_img2img.testing.tiny import build_checkpoint


def build_flagging_checkpoint(path: str | Path, *, seed: int = 0) -> Path:
    """The tiny SD 1.x checkpoint (``build_checkpoint(path, "tiny")``) with a safety checker that flags every image
    (to test how flagged images are reported): its concept thresholds' weights are -2, below any cosine
    similarity."""
    from safetensors.torch import load_file, save_file

    path = build_checkpoint(path, "tiny", seed=seed)
    weights = path / "safety_checker" / "model.safetensors"
    state = load_file(str(weights))
    state["concept_embeds_weights"].fill_(-2.0)  # cosine similarity is always above -2
    save_file(state, str(weights), metadata={"format": "pt"})
    return path


def build_lora(
    checkpoint: str | Path,
    out: str | Path,
    fmt: str = "peft",
    *,
    rank: int = 4,
    seed: int = 1,
    strength: float = 0.5,
    text_encoder: bool = True,
) -> Path:
    """A random LoRA for the SD 1.x checkpoint folder ``checkpoint``, written to the ``.safetensors`` file ``out``.

    ``fmt="peft"``: diffusers' own keys (``unet.<module>.lora_A.weight`` / ``lora_B.weight``,
    ``text_encoder.text_model.<module>…``); ``fmt="kohya"``: kohya / AUTOMATIC1111 keys
    (``lora_unet_<module_with_underscores>.lora_down.weight`` / ``lora_up.weight`` / ``alpha``, ``lora_te_…``);
    ``fmt="kohya-sgm"``: kohya's SDXL keys, named after the original UNet's blocks
    (``lora_unet_input_blocks_2_1_transformer_blocks_0_attn1_to_q…``, ``lora_te1_…``).
    Every attention projection of the UNet (and of the text encoder) gets one; ``strength`` sets how much the
    output changes.
    """
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file

    if fmt not in ("peft", "kohya", "kohya-sgm"):
        raise ValueError(f"fmt must be 'peft', 'kohya' or 'kohya-sgm', got {fmt!r}")
    checkpoint = Path(checkpoint)
    unet = UNet2DConditionModel.from_pretrained(checkpoint / "unet")
    targets = [
        ("unet", name, m)
        for name, m in unet.named_modules()
        if name.rsplit(".", 1)[-1] in ("to_q", "to_k", "to_v") or name.endswith("to_out.0")
    ]
    if text_encoder:
        from transformers import CLIPTextModel

        te = CLIPTextModel.from_pretrained(checkpoint / "text_encoder")
        for name, m in te.named_modules():
            if name.rsplit(".", 1)[-1] in ("q_proj", "k_proj", "v_proj", "out_proj"):
                name = name if name.startswith("text_model.") else "text_model." + name  # the keys LoRAs carry
                targets.append(("text_encoder", name, m))
    if fmt == "kohya-sgm":
        from original_layout import unet_key_map

        blocks = sorted(unet_key_map(dict(unet.config)).items(), key=lambda item: -len(item[0]))
        targets = [
            (
                part,
                next((old + name[len(new) :] for new, old in blocks if name.startswith(new + ".")), name)
                if part == "unet"
                else name,
                m,
            )
            for part, name, m in targets
        ]
    g = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for part, name, module in targets:
        down = torch.randn(rank, module.in_features, generator=g) * strength / module.in_features**0.5
        up = torch.randn(module.out_features, rank, generator=g) * strength / rank**0.5
        if fmt == "peft":
            state[f"{part}.{name}.lora_A.weight"] = down
            state[f"{part}.{name}.lora_B.weight"] = up
        else:
            te = "lora_te1_" if fmt == "kohya-sgm" else "lora_te_"
            key = ("lora_unet_" if part == "unet" else te) + name.replace(".", "_")
            alpha = rank / 2  # kohya scales by alpha / rank
            state[f"{key}.lora_down.weight"] = down
            state[f"{key}.lora_up.weight"] = up * 2  # … so the change matches the peft file's
            state[f"{key}.alpha"] = torch.tensor(float(alpha))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(out))
    return out
