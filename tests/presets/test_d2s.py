"""The Dense2Sparse preset read from a tiny checkpoint in the published layout (tests/tiny_d2s.py), checked
against a forward pass written out here: BLIP's projections from its submodules, the head from the saved
tensors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from mmr.config import Settings
from mmr.presets.base import PresetFilesError
from mmr.presets.d2s import D2SLayoutError
from mmr.presets.registry import PRESETS
from mmr.retrievers.base import Resources
from mmr.retrievers.preset import load_preset_model
from tests.tiny_d2s import IMAGE_SIZE, save_tiny_d2s

NAME = "d2s-mscoco-blip"
WORDS = ["a", "red", "car", "cat", "dog", "on", "the", "road", "##s"]
CLIP_MEAN, CLIP_STD = np.array([0.48145466, 0.4578275, 0.40821073]), np.array([0.26862954, 0.26130258, 0.27577711])
TEXTS = ["a red car", "cat", " ".join(["the dog on the road"] * 12)]  # the last one longer than BLIP's 35 tokens


@pytest.fixture(scope="module")
def tiny_d2s(tmp_path_factory):
    return save_tiny_d2s(tmp_path_factory.mktemp("d2s"), WORDS)


def resources(tmp_path) -> Resources:
    return Resources(Settings(index_store=tmp_path / "store", data_dir=tmp_path / "data"), device="cpu")


def read(folder, monkeypatch, tmp_path):
    monkeypatch.setenv(PRESETS[NAME].variable, str(folder))
    return load_preset_model(PRESETS[NAME], resources(tmp_path))


def images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    wide = Image.fromarray(rng.integers(0, 255, (24, 40, 3), dtype=np.uint8))  # not square: no padding, squashed
    return [wide, Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), "red")]


def reference_pixels(image: Image.Image) -> torch.Tensor:
    """BLIP's test transform: a bicubic resize to the square size, scaled to [0, 1], CLIP's mean and std."""
    square = np.asarray(image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BICUBIC), dtype=np.float64) / 255
    return torch.tensor(((square - CLIP_MEAN) / CLIP_STD).transpose(2, 0, 1), dtype=torch.float32)


def reference_weights(folder, texts, pictures) -> tuple[np.ndarray, np.ndarray]:
    from safetensors.torch import load_file
    from transformers import BertTokenizerFast, BlipForImageTextRetrieval

    blip = BlipForImageTextRetrieval.from_pretrained(str(folder / "blip")).eval()
    tokenizer = BertTokenizerFast.from_pretrained(str(folder / "blip"))
    w = load_file(str(folder / "model.safetensors"))
    with torch.no_grad():
        batch = tokenizer(texts, padding=True, truncation=True, max_length=35, return_tensors="pt")
        cls = blip.text_encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        text_dense = F.normalize(blip.text_proj(cls[:, 0]), dim=-1)
        pixels = torch.stack([reference_pixels(p) for p in pictures])
        image_dense = F.normalize(blip.vision_proj(blip.vision_model(pixel_values=pixels).last_hidden_state[:, 0]))

        def head(dense):
            hidden = F.linear(dense, w["proj.weight"], w["proj.bias"])
            hidden = F.layer_norm(
                hidden, hidden.shape[-1:], w["vocab_layer_norm.weight"], w["vocab_layer_norm.bias"], 1e-12
            )
            return torch.log1p(torch.relu(F.linear(hidden, w["vocab_projector.weight"], w["vocab_projector.bias"])))

        return head(text_dense).numpy(), head(image_dense).numpy()


def test_weights_match_the_published_arithmetic(tiny_d2s, monkeypatch, tmp_path):
    model = read(tiny_d2s, monkeypatch, tmp_path)
    assert model.sparse and model.dim == len(WORDS) + 5
    text_ref, image_ref = reference_weights(tiny_d2s, TEXTS, images())
    queries, documents = model.encode_queries(TEXTS), model.encode_text_documents(TEXTS)
    np.testing.assert_allclose(queries.toarray(), text_ref, atol=1e-5)
    np.testing.assert_allclose(documents.toarray(), text_ref, atol=1e-5)  # one head for both sides
    pictures = model.encode_image_documents(images(), ["a red car", "the dog"])  # captions are not read
    np.testing.assert_allclose(pictures.toarray(), image_ref, atol=1e-5)
    np.testing.assert_allclose(model.encode_image_queries(images()).toarray(), image_ref, atol=1e-5)
    # relu leaves some terms exactly zero, and CSR keeps only the others
    assert 0 < queries.nnz < queries.shape[0] * queries.shape[1] and np.all(queries.data > 0)
    assert model.vocabulary().terms([5, 6]) == ["a", "red"]
    assert model.encode_queries([]).shape == (0, model.dim)


def test_older_pytorch_model_bin_reads_the_same(tiny_d2s, monkeypatch, tmp_path):
    from safetensors.torch import load_file

    folder = tmp_path / "bin"
    shutil.copytree(tiny_d2s, folder)
    torch.save(load_file(str(folder / "model.safetensors")), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    text_ref, _ = reference_weights(tiny_d2s, TEXTS[:2], images())
    model = read(folder, monkeypatch, tmp_path)
    np.testing.assert_allclose(model.encode_queries(TEXTS[:2]).toarray(), text_ref, atol=1e-5)


def _rewrite(tiny_d2s, tmp_path, change_weights=None, change_config=None):
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "broken"
    shutil.copytree(tiny_d2s, folder)
    if change_weights:
        state = load_file(str(folder / "model.safetensors"))
        change_weights(state)
        save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    if change_config:
        config = json.loads((folder / "config.json").read_text())
        change_config(config)
        (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize(
    ("change_weights", "change_config", "error", "message"),
    [
        (lambda s: s.pop("vocab_layer_norm.bias"), None, D2SLayoutError, r"missing keys \['vocab_layer_norm.bias'\]"),
        (lambda s: s.update({"vocab_transform.weight": torch.zeros(12, 12)}), None, D2SLayoutError, "unexpected keys"),
        (
            lambda s: s.update({f"d2s.{k}": s.pop(k) for k in list(s)}),
            None,
            D2SLayoutError,
            "missing keys.*unexpected keys.*d2s.proj.weight",
        ),
        (None, lambda c: c.update(model_type="distilbert"), D2SLayoutError, "model_type 'distilbert'"),
        (None, lambda c: c.update(dense_size=256), D2SLayoutError, "dense_size is 256"),
    ],
)
def test_a_wrong_layout_is_refused_clearly(
    tiny_d2s, monkeypatch, tmp_path, change_weights, change_config, error, message
):
    folder = _rewrite(tiny_d2s, tmp_path, change_weights, change_config)
    with pytest.raises(error, match=message):
        read(folder, monkeypatch, tmp_path)


def test_a_folder_without_weights_says_which_files(tiny_d2s, monkeypatch, tmp_path):
    folder = tmp_path / "empty"
    shutil.copytree(tiny_d2s, folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(PresetFilesError, match="model.safetensors, pytorch_model.bin"):
        read(folder, monkeypatch, tmp_path)
