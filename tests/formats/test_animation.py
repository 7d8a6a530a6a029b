"""The steps as an animation (formats/animation.py): exactly the gallery's frames, in order, read back with Pillow."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sd_img2img.config import ANIMATION_HOLD_MS, ANIMATION_MAX_SIDE
from sd_img2img.engine import GenerationRequest
from sd_img2img.formats.animation import save_animation, step_animation, step_labels


@pytest.fixture(scope="module")
def run_10x07(engine, fireplace):
    return engine.generate(GenerationRequest(prompt="fire", init_image=fireplace, strength=0.7, steps=10, seed=3,
                                             width=128, height=128))  # fmt: skip


def frames_of(path) -> tuple[list[np.ndarray], list[int], dict]:
    with Image.open(path) as anim:
        frames, durations = [], []
        for i in range(anim.n_frames):
            anim.seek(i)
            frames.append(np.asarray(anim.convert("RGB"), dtype=np.float32))
            durations.append(anim.info["duration"])
        return frames, durations, dict(anim.info)


def nearest(frame: np.ndarray, candidates: list[np.ndarray]) -> int:
    return int(np.argmin([np.abs(frame - c).mean() for c in candidates]))


def expected(images: list[Image.Image], size) -> list[np.ndarray]:
    return [np.asarray(im.convert("RGB").resize(size, Image.Resampling.NEAREST), dtype=np.float32) for im in images]


@pytest.mark.parametrize("view", ["latents", "x0"])
def test_animation_of_a_10x07_run_has_its_8_frames_in_order(run_10x07, tmp_path, view):
    """Done-when: step 0, then the 7 steps taken, the last the output, in order, looping, the last held."""
    result = run_10x07
    animation = step_animation(result, tmp_path / f"steps-{view}.webp", view)
    frames, durations, info = frames_of(animation.path)
    assert len(frames) == 8 == animation.frames == len(result.frames)
    size = (animation.width, animation.height)
    assert size == (128, 128)  # the output's size (≤ 512): the 16×16 step previews enlarged pixel for pixel
    wanted = expected([*result.step_images(view)[:-1], result.output], size)
    others = expected(result.step_images("latents" if view == "x0" else "x0")[1:-1], size)
    assert [nearest(f, wanted) for f in frames] == list(range(8))  # each frame is its own step's picture
    for f, want, other in zip(frames[1:-1], wanted[1:-1], others):  # … in the view asked for
        assert np.abs(f - want).mean() < np.abs(f - other).mean()
    assert info["loop"] == 0 and durations[-1] == ANIMATION_HOLD_MS and len(set(durations[:-1])) == 1
    assert durations[0] < durations[-1]
    assert animation.bytes == animation.path.stat().st_size and "8 frames" in animation.describe()


def test_frame_labels_name_the_step_and_timestep(run_10x07):
    labels = step_labels(run_10x07)
    timesteps = [f.timestep for f in run_10x07.frames]
    assert labels[0] == "step 0 · start"
    assert labels[1:-1] == [f"step {i}/7 · t={timesteps[i]}" for i in range(1, 7)]
    assert labels[-1] == f"step 7/7 · t={timesteps[7]} · output"


def test_frames_are_scaled_to_at_most_512_and_gif_works(tmp_path):
    """A 1024×640 series becomes 512×320 frames; the smaller frames are enlarged to that size; GIF is the other
    format."""
    big = [Image.new("RGB", (1024, 640), (40 * i, 100, 200 - 40 * i)) for i in range(3)]
    small = [Image.new("RGB", (128, 80), (0, 200, 0))]
    for fmt in ("webp", "gif"):
        animation = save_animation(small + big, ["a", "b", "c", "d"], tmp_path / f"a.{fmt}", fmt)
        with Image.open(animation.path) as anim:
            assert anim.format == fmt.upper() and anim.n_frames == 4
            assert anim.size == (ANIMATION_MAX_SIDE, 320) == (animation.width, animation.height)
            anim.seek(0)  # the small green frame, enlarged (its corner label aside)
            assert anim.convert("RGB").getpixel((400, 40))[1] > 150
