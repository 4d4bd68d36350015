"""UniVL-DR's text tower on the papers' text backbones: a tiny CLIP text tower (UniVL-DR's own) and a tiny T5
(T5-ANCE's), built from checkpoint folders the test creates. The same mechanisms as on the stand-in BERT
(tests/methods/test_univl_dr.py): the split tower is the backbone's own pass, the cached bottom gives the same
vectors, an epoch trains the top and leaves the bottom alone, and the saved model reloads."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmr.encoders.base import ImageFeatures
from mmr.methods.univl_model import UniVLEncoder, build_model, load_model, save_model
from mmr.methods.univl_training import UniVLStage, make_train_set, text_states, train_epoch, trainable_texts
from mmr.training.common import cosine_with_warmup
from tests.methods.test_univl_dr import NAMES, VOCAB, tiny_config, toy_data, words
from tests.tiny_clip import save_tiny_clip
from tests.tiny_t5 import save_tiny_t5

PLAIN = [w for w in VOCAB if not w.startswith("[")]
TEXTS = ["a red cat", "dog", "a big blue boat , small tree"]  # different lengths: padding must not leak


@pytest.fixture(scope="module", params=["clip", "t5"])
def backbone(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    if request.param == "clip":
        save_tiny_clip(folder, sorted(set(PLAIN + NAMES + ["caption", "0", "1", "2", "3"])), layers=2)
    else:
        save_tiny_t5(folder, sorted(set(PLAIN + NAMES)), layers=2)
    return request.param, folder


def _reference(family: str, folder, batch) -> torch.Tensor:
    """The family's own pooled vector, from transformers' model rather than the tower."""
    from transformers import CLIPTextModel, T5Model

    if family == "clip":
        return CLIPTextModel.from_pretrained(folder).eval()(**batch).pooler_output
    start = torch.zeros((len(batch["input_ids"]), 1), dtype=torch.long)
    return T5Model.from_pretrained(folder).eval()(**batch, decoder_input_ids=start).last_hidden_state[:, 0]


def test_the_split_tower_and_its_cache_are_the_backbones_own_pass(backbone):
    family, folder = backbone
    model, tokenizer = build_model(tiny_config(folder))
    model.eval()
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = _reference(family, folder, {k: batch[k] for k in ("input_ids", "attention_mask")})
        torch.testing.assert_close(
            model.text(batch["input_ids"], batch["attention_mask"]), expected, atol=1e-5, rtol=1e-4
        )
        cache = text_states(model, tokenizer)
        cache.add(TEXTS)
        cached = trainable_texts(model, cache)(TEXTS[::-1])
    np.testing.assert_allclose(cached, F.normalize(expected, dim=-1).flip(0), atol=2e-3)  # float16 cache


def test_an_epoch_trains_the_top_and_leaves_the_bottom_alone(backbone, tmp_path):
    torch.manual_seed(0)
    model, tokenizer = build_model(tiny_config(backbone[1]))
    trainable = {name for name, p in model.text.stack.model.named_parameters() if p.requires_grad}
    assert trainable == model.text.trainable_names()
    before = {name: p.detach().clone() for name, p in model.text.stack.model.named_parameters()}
    data, verbal = toy_data()
    ts = make_train_set(data, np.random.default_rng(0).normal(size=(4, 8)).astype(np.float32), verbal)
    cache = text_states(model, tokenizer)
    cache.add(ts.queries + ts.doc_texts)
    stage = UniVLStage(epochs=1, batch_size=4, lr_text=1e-2, lr_head=1e-2, warmup=0.0)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    scheduler = cosine_with_warmup(optimizer, 100, 0.0)
    text_fn, rng = trainable_texts(model, cache), np.random.default_rng(0)
    losses = [train_epoch(model, optimizer, scheduler, text_fn, ts, stage, rng, None, "toy") for _ in range(6)]
    assert losses[-1] < losses[0]
    after = dict(model.text.stack.model.named_parameters())
    moved = {name for name in before if not torch.equal(before[name], after[name])}
    assert moved and moved <= trainable  # the cached bottom is still the bottom the model runs

    save_model(model, tmp_path / "m")
    loaded, _ = load_model(tmp_path / "m")
    features = ImageFeatures(
        np.random.default_rng(1).normal(size=(3, 8)).astype(np.float32), np.eye(3, 8, dtype=np.float32), None
    )
    model.eval()
    np.testing.assert_allclose(
        UniVLEncoder(loaded, tokenizer, words).encode_images(features),
        UniVLEncoder(model, tokenizer, words).encode_images(features),
        atol=1e-5,
    )
    np.testing.assert_allclose(
        UniVLEncoder(loaded, tokenizer, words).encode_texts(TEXTS),
        UniVLEncoder(model, tokenizer, words).encode_texts(TEXTS),
        atol=1e-5,
    )
