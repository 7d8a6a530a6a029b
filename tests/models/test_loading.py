"""Loading: the real SD1.5 layout loads; everything else is refused with a message that says why."""

import json
import shutil

import pytest

from sd_img2img.engine import Engine
from sd_img2img.errors import ModelLoadError, UserInputError
from sd_img2img.models.loading import load_model


def test_sd15_layout_loads_for_img2img_and_shares_components(tiny_checkpoint):
    index = json.loads((tiny_checkpoint / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    assert {"safety_checker", "feature_extractor", "unet", "vae", "text_encoder", "tokenizer"} <= set(index)
    lm = load_model(str(tiny_checkpoint), device="cpu", dtype="float32")
    assert type(lm.img2img).__name__ == "StableDiffusionImg2ImgPipeline"
    assert lm.txt2img.unet is lm.img2img.unet and lm.txt2img.vae is lm.img2img.vae
    assert lm.has_safety_checker and lm.dtype.is_floating_point and str(lm.dtype) == "torch.float32"
    assert load_model(str(tiny_checkpoint), device="cpu", safety_checker=False).img2img.safety_checker is None


def test_folder_without_model_index(tmp_path):
    with pytest.raises(ModelLoadError, match="has no model_index.json"):
        load_model(str(tmp_path), device="cpu")


def test_pickle_only_weights_are_never_opened(tmp_path, tiny_checkpoint):
    ckpt = tmp_path / "pickled"
    shutil.copytree(tiny_checkpoint, ckpt)
    for f in (ckpt / "unet").glob("*.safetensors"):
        f.rename(f.with_name("diffusion_pytorch_model.bin"))
    with pytest.raises(ModelLoadError, match=r"only pickle weights \(diffusion_pytorch_model.bin\).*never opened"):
        load_model(str(ckpt), device="cpu")
    (tmp_path / "model.ckpt").write_bytes(b"not even loaded")
    with pytest.raises(ModelLoadError, match="is a pickle checkpoint"):
        load_model(str(tmp_path / "model.ckpt"), device="cpu")


def test_other_pipelines_are_refused(tmp_path, tiny_checkpoint):
    ckpt = tmp_path / "kandinsky"
    shutil.copytree(tiny_checkpoint, ckpt)
    (ckpt / "model_index.json").write_text(json.dumps({"_class_name": "KandinskyPipeline"}))
    with pytest.raises(
        ModelLoadError, match=r"holds a KandinskyPipeline; this program runs .*StableDiffusionXLPipeline"
    ):
        load_model(str(ckpt), device="cpu")


def test_unknown_hub_id_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(
        ModelLoadError,
        match="could not load model 'nobody/no-such-model' from the Hugging Face hub"
        ".*without network access.*--model random",
    ):
        load_model("nobody/no-such-model", device="cpu")
    with pytest.raises(ModelLoadError, match="neither an existing folder nor a Hugging Face hub id"):
        load_model("./missing-folder", device="cpu")


def test_bad_device_settings():
    with pytest.raises(UserInputError, match="unknown device 'tpu'"):
        load_model("x/y", device="tpu")
    with pytest.raises(UserInputError, match="offload 'model' moves models onto a GPU"):
        load_model("x/y", device="cpu", offload="model")
    with pytest.raises(UserInputError, match="float16 is not supported on cpu"):
        load_model("x/y", device="cpu", dtype="float16")


def test_failed_load_is_remembered(tmp_path):
    engine = Engine(str(tmp_path), device="cpu", dtype="float32")
    with pytest.raises(ModelLoadError):
        engine.load()
    assert isinstance(engine.load_error, ModelLoadError) and not engine.is_loaded
