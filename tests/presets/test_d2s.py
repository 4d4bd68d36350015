"""The Dense2Sparse preset read from a tiny checkpoint in the published layout (tests/tiny_d2s.py), checked
against a forward pass written out in the tests: BLIP's projections from its submodules (tests/tiny_d2s.py),
the head here from the saved tensors."""

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
from tests.tiny_d2s import IMAGE_SIZE, reference_blip_vectors, save_tiny_d2s

NAME = "d2s-mscoco-blip"
WORDS = ["a", "red", "car", "cat", "dog", "on", "the", "road", "##s"]
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


def reference_weights(folder, texts, pictures) -> tuple[np.ndarray, np.ndarray]:
    from safetensors.torch import load_file

    text_dense, image_dense = reference_blip_vectors(folder / "blip", texts, pictures)
    w = load_file(str(folder / "model.safetensors"))

    def head(dense):
        hidden = F.linear(dense, w["proj.weight"], w["proj.bias"])
        hidden = F.layer_norm(
            hidden, hidden.shape[-1:], w["vocab_layer_norm.weight"], w["vocab_layer_norm.bias"], 1e-12
        )
        return torch.log1p(torch.relu(F.linear(hidden, w["vocab_projector.weight"], w["vocab_projector.bias"])))

    with torch.no_grad():
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
