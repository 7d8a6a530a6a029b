"""Several models in one process: listed names only, lazy loading, the least recently used one freed."""

import pytest

from sd_img2img.engine import GenerationRequest
from sd_img2img.engine.model_set import ModelSet
from sd_img2img.errors import UserInputError
from sd_img2img.models.memory import model_memory


def test_models_load_lazily_and_switching_frees_the_previous_one(tmp_path, tiny_checkpoint):
    models = ModelSet(
        {"sd": str(tiny_checkpoint), "lcm": "random-lcm", "xl": "random-sdxl"},
        device="cpu",
        dtype="float32",
        cache=tmp_path,
    )
    infos = {i.name: i for i in models.describe()}
    assert {n: (i.family, i.loaded) for n, i in infos.items()} == {
        "sd": ("sd", False),
        "lcm": ("lcm", False),
        "xl": ("sdxl", False),
    }  # told without loading any weights
    assert infos["xl"].label == "xl · SDXL" and infos["xl"].source == "random-sdxl"
    assert not (tmp_path / "random-sdxl").exists()  # random checkpoints are built on first use only

    lcm = models.engine("lcm")
    assert lcm.is_loaded and lcm.family.name == "lcm" and lcm.samplers == ("lcm",)
    result = lcm.generate(GenerationRequest(prompt="fire", steps=2, seed=1, width=64, height=64))
    assert result.steps_taken == 2 and result.sampler == "lcm"

    sd = models.engine("sd")  # at most one model stays loaded on the cpu (config.MAX_LOADED_MODELS_CPU)
    assert sd.is_loaded and not lcm.is_loaded
    assert [i.name for i in models.describe() if i.loaded] == ["sd"]
    assert (
        models.engine("lcm")
        .generate(GenerationRequest(prompt="fire", steps=2, seed=1, width=64, height=64))
        .steps_taken
        == 2
    )  # loads again
    assert not sd.is_loaded

    with pytest.raises(UserInputError, match=r"unknown model '/etc'; choose one of: sd, lcm, xl"):
        models.engine("/etc")


def test_two_models_stay_loaded_when_allowed(tmp_path, tiny_checkpoint):
    models = ModelSet(
        [str(tiny_checkpoint), "random-turbo"], device="cpu", dtype="float32", cache=tmp_path, max_loaded=2
    )
    a, b = models.engine(str(tiny_checkpoint)), models.engine("random-turbo")
    assert a.is_loaded and b.is_loaded and b.family.name == "sd-turbo"


def test_model_memory_reads_the_safetensors_headers(tiny_checkpoint):
    from diffusers import UNet2DConditionModel

    parts = model_memory(tiny_checkpoint)
    unet = UNet2DConditionModel.from_pretrained(tiny_checkpoint, subfolder="unet")
    assert parts["unet"] == sum(p.numel() for p in unet.parameters()) * 4  # float32 as stored
    assert model_memory(tiny_checkpoint, "bfloat16")["unet"] == parts["unet"] // 2
    assert {"unet", "vae", "text_encoder", "safety_checker"} <= set(parts)
    assert model_memory("nobody/remote") is None


def test_model_memory_refuses_what_is_not_safetensors_and_quotes_accelerates_sizes(tmp_path, tiny_checkpoint):
    import shutil

    import torch
    from accelerate.utils import convert_bytes

    from sd_img2img.errors import ModelLoadError
    from sd_img2img.models.families import peek
    from sd_img2img.models.memory import cpu_load_warning, estimate_memory

    need = estimate_memory(tiny_checkpoint, torch.float32)
    warning = cpu_load_warning(tiny_checkpoint, peek(tiny_checkpoint), torch.float32)
    assert f"needs about {convert_bytes(need)} of memory" in warning and " MB" in convert_bytes(need)
    broken = shutil.copytree(tiny_checkpoint, tmp_path / "broken", ignore=shutil.ignore_patterns("*.safetensors"))
    (broken / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(ModelLoadError, match=r"diffusion_pytorch_model.safetensors' cannot be read as a .safetensors"):
        model_memory(broken)


def test_free_memory_collects_what_a_failed_run_left_in_cycles():
    import gc
    import weakref

    import torch

    from sd_img2img.models.devices import free_memory

    class Holder:
        pass

    gc.disable()  # only free_memory collects here
    try:
        a, b = Holder(), Holder()
        a.other, b.other, a.weights = b, a, torch.zeros(1024)
        gone = weakref.ref(a.weights)
        del a, b
        assert gone() is not None  # a cycle: reference counting alone does not free it
        free_memory("cpu")
        assert gone() is None
    finally:
        gc.enable()


def test_on_a_gpu_models_are_freed_until_the_next_one_fits(tmp_path, tiny_checkpoint, monkeypatch):
    """The GPU rule without a GPU: free memory is faked as a card that holds one tiny model and a half."""
    import torch

    import sd_img2img.engine.model_set as models_module

    models = ModelSet(
        {"a": str(tiny_checkpoint), "b": "random-turbo", "c": "random-lcm"},
        device="cpu",
        dtype="float32",
        cache=tmp_path,
        max_loaded=3,
    )  # the cpu count would keep all three
    one = sum(model_memory(tiny_checkpoint, torch.float16).values())
    card = int(one * models_module.GPU_MEMORY_HEADROOM * 1.5)

    def mem_get_info():
        used = sum(one for e in models._engines.values() if e.is_loaded)
        return card - used, card

    monkeypatch.setattr(models_module, "resolve_device", lambda device: "cuda")
    monkeypatch.setattr(torch.cuda, "mem_get_info", mem_get_info)
    a = models.engine("a")
    b = models.engine("b")  # a does not leave room for b: a goes
    assert b.is_loaded and not a.is_loaded
    models.engine("c")
    assert [i.name for i in models.describe() if i.loaded] == ["c"]
