"""The figures of docs/explain.md: the guide's 30-versus-29-steps comparison run by the real command on the offline demo's
tiny random model, its chart and its aligned strips drawn from what the command printed and wrote.

    python docs/diverge_figures.py [OUT_DIR]

Runs ``sd-img2img diverge examples/fireplace.png --vs steps=29 …`` (the guide's settings: strength 0.7, 30 steps,
k_lms, seed 1592514025, 384×384, prompt "fire", on ``--model random``, cpu, float32) into OUT_DIR (default: a
temporary folder), then writes ``docs/images/diverge-chart.png`` (the difference against σ, the threshold, the parting
step) and ``docs/images/diverge-strips.png`` (the first pairs: run A's step, run B's, the difference map), and prints the
command, the sentence and a Markdown table of every pair. Not a test (pytest does not collect it).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"
GUIDE = [
    "--prompt",
    "fire",
    "--strength",
    "0.7",
    "--steps",
    "30",
    "--sampler",
    "k_lms",
    "--seed",
    "1592514025",
    "--width",
    "384",
    "--height",
    "384",
]
MACHINE = ["--model", "random", "--device", "cpu", "--dtype", "float32"]
INK, GREY, ORANGE, RED = (41, 37, 36), (138, 129, 120), (234, 88, 12), (185, 28, 28)


def font(size: int) -> ImageFont.FreeTypeFont:
    """DejaVu Sans where the system has it (it has σ and −), else Pillow's own font."""
    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        return ImageFont.load_default(size=size)


def run_command(out: Path) -> tuple[list[str], dict]:
    command = [
        "sd-img2img",
        "diverge",
        "examples/fireplace.png",
        "--vs",
        "steps=29",
        *GUIDE,
        *MACHINE,
        "--out",
        str(out),
    ]
    done = subprocess.run(
        [sys.executable, "-m", "sd_img2img.cli", *command[1:]], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return command, json.loads(done.stdout)


def chart(summary: dict, path: Path, size=(960, 440)) -> None:
    """The difference (0–255) against run B's σ, σ falling from left to right, the threshold dashed, the parting step
    marked."""
    width, height = size
    left, right, top, bottom = 84, 24, 56, 76
    im = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(im)
    pairs = summary["aligned"]
    xs, ys = [p["sigma_b"] for p in pairs], [p["difference"] for p in pairs]
    x_max, y_max = max(xs), max(max(ys), summary["threshold"]) * 1.15

    def at(x: float, y: float) -> tuple[float, float]:
        return left + (x_max - x) / x_max * (width - left - right), height - bottom - y / y_max * (
            height - top - bottom
        )

    for k in range(6):  # the grid and the ticks
        y = y_max * k / 5
        d.line([at(x_max, y), at(0, y)], fill=(231, 229, 228))
        d.text((left - 10, at(0, y)[1]), f"{y:.1f}", font=font(14), fill=INK, anchor="rm")
    for k in range(int(x_max * 2) + 1):
        x = k / 2
        d.text((at(x, 0)[0], height - bottom + 10), f"{x:g}", font=font(14), fill=INK, anchor="mt")
    d.line([at(x_max, 0), at(0, 0)], fill=INK)
    t = summary["threshold"]
    x0 = at(x_max, t)[0]
    while x0 < at(0, t)[0]:  # the threshold, dashed
        d.line([(x0, at(0, t)[1]), (min(x0 + 8, at(0, t)[0]), at(0, t)[1])], fill=GREY, width=2)
        x0 += 14
    d.line([at(x, y) for x, y in zip(xs, ys)], fill=ORANGE, width=3)
    for x, y in zip(xs, ys):
        cx, cy = at(x, y)
        d.ellipse([cx - 3, cy - 3, cx + 3, cy + 3], fill=ORANGE)
    parts = summary["parts_at"]
    if parts is not None:
        px = at(parts["sigma_b"], 0)[0]
        d.line([(px, top), (px, height - bottom)], fill=RED, width=2)
        d.text(
            (px + 6, top + 4), f"parts at step {parts['b_step']} (σ {parts['sigma_b']:.2f})", font=font(15), fill=RED
        )
    d.text((left, 6), summary["sentence"], font=font(18), fill=INK)
    d.text(
        ((left + width - right) / 2, height - 30),
        "noise level σ of the 29-step run, falling as the steps run",
        font=font(15),
        fill=INK,
        anchor="mt",
    )
    d.text((left, top - 22), "mean difference of the predicted pictures (of 255)", font=font(14), fill=INK)
    d.text((width - right, top - 22), f"- - threshold {t:g} of 255", font=font(14), fill=GREY, anchor="rm")
    im.save(path)


def strips(summary: dict, path: Path, pairs: int = 8, side: int = 110) -> None:
    """The first ``pairs`` pairs: run A's picture, run B's and the difference map, σ under each."""
    label_w, gap, text_h = 120, 8, 22
    rows = ("a", "b", "map")
    im = Image.new("RGB", (label_w + pairs * (side + gap), len(rows) * (side + text_h + gap) + 30), "white")
    d = ImageDraw.Draw(im)
    for k, pair in enumerate(summary["aligned"][:pairs]):
        x = label_w + k * (side + gap)
        d.text((x + side / 2, 8), f"pair {k}", font=font(14), fill=INK, anchor="mt")
        for r, row in enumerate(rows):
            y = 30 + r * (side + text_h + gap)
            picture = Image.open(pair[f"{row}_image" if row != "map" else "map"]).convert("RGB")
            im.paste(picture.resize((side, side), Image.Resampling.NEAREST), (x, y))
            step = {"a": pair["a_step"], "b": pair["b_step"]}.get(row)
            note = f"step {step} · σ {pair[f'sigma_{row}']:.2f}" if step is not None else f"{pair['difference']:.2f}"
            d.text((x + side / 2, y + side + 3), note, font=font(13), fill=INK, anchor="mt")
    for r, name in enumerate(("A · 30 steps", "B · 29 steps", "|A − B|")):
        d.text((8, 30 + r * (side + text_h + gap) + side / 2), name, font=font(14), fill=INK, anchor="lm")
    im.save(path)


def main(argv: list[str]) -> None:
    out = Path(argv[0]) if argv else Path(tempfile.mkdtemp(prefix="diverge-"))
    command, summary = run_command(out)
    IMAGES.mkdir(parents=True, exist_ok=True)
    chart(summary, IMAGES / "diverge-chart.png")
    strips(summary, IMAGES / "diverge-strips.png")
    print(" ".join(command))
    print(summary["sentence"])
    print("| pair | A step | B step | σ A | σ B | difference (of 255) | latent difference |")
    print("|---|---|---|---|---|---|---|")
    for k, p in enumerate(summary["aligned"]):
        print(
            f"| {k} | {p['a_step']} | {p['b_step']} | {p['sigma_a']:.3f} | {p['sigma_b']:.3f} | "
            f"{p['difference']:.2f} | {p['latent_difference']:.4f} |"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
