"""Is OpenVINO worth an optional extra? Its UNet step against PyTorch's best (bf16 channels_last), same shapes.

The UNet is ~85 % of an SD-Turbo run once the tiny autoencoder and the prompt cache are in, so if OpenVINO's
UNet step is not ≥ 1.3× faster than PyTorch's, the whole request cannot be either. OpenVINO is not a project
dependency; install it somewhere of its own for this check:

    pip install --no-deps --target /tmp/ov openvino openvino-telemetry
    PYTHONPATH=/tmp/ov:. python benchmarks/openvino_unet.py --arch sd-turbo --size 512 --iters 3

It converts the random-weight UNet (real architecture) with ``openvino.convert_model`` at a static shape (batch 1,
as SD-Turbo runs without guidance), compiles it for the CPU (OpenVINO's default precision hint: bf16 where the
CPU has it), and times one call of each, interleaved.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="sd-turbo", choices=("tiny", "sd15", "sd-turbo"))
    p.add_argument("--checkpoints", default=str(ROOT / "benchmarks" / "results" / "checkpoints"))
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args(argv)

    import openvino as ov
    import torch
    from bench_generation import ensure_checkpoint
    from diffusers import UNet2DConditionModel

    from sd_img2img.engine.cpu_memory import keep_freed_memory

    keep_freed_memory()
    ckpt, _ = ensure_checkpoint(args.arch, Path(args.checkpoints))
    unet = UNet2DConditionModel.from_pretrained(ckpt / "unet", use_safetensors=True).eval()
    h = args.size // 8
    g = torch.Generator("cpu").manual_seed(0)
    x = torch.randn(1, 4, h, h, generator=g)
    ctx = torch.randn(1, 77, unet.config.cross_attention_dim, generator=g)
    t = torch.tensor([999.0])
    report: dict = dict(arch=args.arch, size=args.size, openvino=ov.__version__, seconds={})

    start = time.perf_counter()
    with torch.no_grad():
        model = ov.convert_model(_plain(unet), example_input=(x, t, ctx))
    core = ov.Core()
    compiled = core.compile_model(model, "CPU", {"PERFORMANCE_HINT": "LATENCY"})
    report["convert_compile_seconds"] = round(time.perf_counter() - start, 2)
    report["ov_inference_precision"] = str(compiled.get_property("INFERENCE_PRECISION_HINT"))
    del model
    print(
        f"converted + compiled in {report['convert_compile_seconds']} s; "
        f"OpenVINO precision {report['ov_inference_precision']}",
        flush=True,
    )
    request = compiled.create_infer_request()
    inputs = [x.numpy(), t.numpy(), ctx.numpy()]
    unet.to(torch.bfloat16, memory_format=torch.channels_last)  # PyTorch's best CPU path (docs/performance.md)
    xb, cb = x.to(torch.bfloat16), ctx.to(torch.bfloat16)
    times: dict[str, list[float]] = {"openvino": [], "torch_bf16_channels_last": []}
    with torch.inference_mode():
        for i in range(1 + args.iters):
            s = time.perf_counter()
            ov_out = request.infer(inputs)[0]
            if i:
                times["openvino"].append(time.perf_counter() - s)
            s = time.perf_counter()
            pt_out = unet(xb, t, cb, return_dict=False)[0]
            if i:
                times["torch_bf16_channels_last"].append(time.perf_counter() - s)
    med = {k: round(statistics.median(v), 4) for k, v in times.items()}
    report["seconds"] = med
    report["all_seconds"] = {k: [round(s, 4) for s in v] for k, v in times.items()}
    report["speedup_openvino_over_torch"] = round(med["torch_bf16_channels_last"] / med["openvino"], 3)
    report["max_abs_diff"] = round(float((torch.from_numpy(ov_out) - pt_out.float()).abs().max()), 4)
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


def _plain(unet):
    """The UNet as a module of plain tensors in, one tensor out (what convert_model traces)."""
    import torch

    class Plain(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.unet = unet

        def forward(self, sample, timestep, encoder_hidden_states):
            return self.unet(sample, timestep, encoder_hidden_states, return_dict=False)[0]

    return Plain().eval()


if __name__ == "__main__":
    sys.exit(main())
