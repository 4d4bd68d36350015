"""UniVL-DR's mechanisms on a tiny BERT the test creates and a handful of fake documents."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmr.encoders.base import ImageFeatures
from mmr.encoders.cache import MIN_CACHED_BATCH
from mmr.encoders.neighbours import CaptionPool, NeighbourCaptioner
from mmr.methods.univl_model import (
    UniVLConfig,
    UniVLEncoder,
    build_model,
    load_model,
    save_model,
    text_side_tag,
)
from mmr.methods.univl_training import (
    DevData,
    UniVLStage,
    dev_mrr,
    embed_rows,
    frozen_texts,
    make_train_set,
    mine,
    run_stage,
    stage2_columns,
    text_states,
    train_epoch,
    trainable_texts,
)
from mmr.training.common import cosine_with_warmup, mine_hard_negatives
from mmr.training.data import Example, TrainingData
from mmr.training.stack import masked_contrastive
from mmr.types import Document
from tests.tiny_bert import save_tiny_bert

VOCAB = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    ",",
    "a",
    "red",
    "blue",
    "cat",
    "dog",
    "flower",
    "car",
    "tree",
    "house",
    "boat",
    "bird",
    "green",
    "small",
    "big",
]
NAMES = ["cat", "dog", "flower", "car", "tree", "house", "boat", "bird"]  # stand-in ImageNet class names


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"), VOCAB)


def tiny_config(folder, **overrides) -> UniVLConfig:
    values = {
        "text_base": str(folder),
        "trainable_layers": 1,
        "image_dim": 8,
        "hidden_dim": 16,
        "dropout": 0.0,
        "verbal_top": 2,
        "max_length": 16,
    }
    return UniVLConfig(**{**values, **overrides})


def words(logits: np.ndarray, top: int) -> list[str]:
    order = np.argsort(-np.atleast_2d(logits), axis=-1)[:, :top]
    return [", ".join(NAMES[i] for i in row) for row in order]


# ----------------------------------------------------------------------------- text tower


def test_split_text_tower_equals_the_full_forward_pass_and_cache(tiny_bert):
    model, tokenizer = build_model(tiny_config(tiny_bert))
    model.eval()
    texts = ["a red cat", "dog", "a big blue boat , small tree"]  # different lengths: padding must not leak
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model.text.stack.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        expected = (hidden * mask).sum(1) / mask.sum(1)
        np.testing.assert_allclose(model.text(batch["input_ids"], batch["attention_mask"]), expected, atol=1e-5)
        cache = text_states(model, tokenizer)
        cache.add(texts)
        cached = trainable_texts(model, cache)(texts[::-1])
    np.testing.assert_allclose(cached, F.normalize(expected, dim=-1).flip(0), atol=2e-3)  # float16 cache


def test_only_top_layers_and_image_head_train_and_are_saved(tiny_bert, tmp_path):
    model, tokenizer = build_model(tiny_config(tiny_bert))
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(
        n.startswith(("text.stack.model.encoder.layer.1.", "image_proj.", "log_scale")) for n in trainable
    )
    saved = set(model.trainable_state())
    assert saved == trainable
    with torch.no_grad():
        model.image_proj[-1].bias.add_(1.0)  # a change that must survive the round trip
    save_model(model, tmp_path / "m")
    loaded, _ = load_model(tmp_path / "m")
    features = ImageFeatures(
        np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32), np.eye(3, 8, dtype=np.float32), None
    )
    a = UniVLEncoder(model, tokenizer, words).encode_images(features)
    b = UniVLEncoder(loaded, tokenizer, words).encode_images(features)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_models_that_share_a_text_tower_share_its_cached_texts_and_a_trained_tower_does_not(tiny_bert, tmp_path):
    model, tokenizer = build_model(tiny_config(tiny_bert))
    twin, _ = build_model(tiny_config(tiny_bert))
    torch.nn.init.normal_(twin.image_proj[-1].weight)  # another image side: the texts are still embedded alike
    assert text_side_tag(twin) == text_side_tag(model)
    texts = [f"a {NAMES[i % 8]} {NAMES[i % 7]}" for i in range(MIN_CACHED_BATCH)]
    folder = tmp_path / text_side_tag(model)
    first = UniVLEncoder(model, tokenizer, words, text_cache=folder).encode_texts(texts)
    np.testing.assert_allclose(first, UniVLEncoder(model, tokenizer, words).encode_texts(texts), atol=1e-6)
    assert len(list(folder.glob("texts-*.npy"))) == 1
    with torch.no_grad():
        model.text.stack.model.encoder.layer[1].output.dense.bias.add_(1.0)  # the top layer trained
    assert text_side_tag(model) != text_side_tag(twin)
    read_back = UniVLEncoder(twin, tokenizer, words, text_cache=folder).encode_texts(texts)
    np.testing.assert_array_equal(read_back, first)


# ----------------------------------------------------------------------------- verbalisation


def test_image_document_is_projection_plus_verbalisation_then_normalised(tiny_bert):
    model, tokenizer = build_model(tiny_config(tiny_bert))
    assert not model.image_proj[-1].weight.any()  # starts as the verbalisation alone
    torch.nn.init.normal_(model.image_proj[-1].weight, std=0.5)  # a trained head: the sum is not trivial
    encoder = UniVLEncoder(model, tokenizer, words)
    pooled = np.random.default_rng(1).normal(size=(2, 8)).astype(np.float32)
    logits = np.zeros((2, 8), np.float32)
    logits[0, [0, 1]] = [5, 4]  # "cat, dog"
    logits[1, [6, 2]] = [5, 4]  # "boat, flower"
    vectors = encoder.encode_images(ImageFeatures(pooled, logits, None))
    with torch.no_grad():
        projected = model.image_proj(torch.from_numpy(pooled))
        verbal = torch.from_numpy(encoder.encode_texts(["cat, dog", "boat, flower"]))
        expected = F.normalize(projected + verbal, dim=-1).numpy()
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # same pixels, different class words: a different document embedding
    swapped = encoder.encode_images(ImageFeatures(pooled, logits[::-1].copy(), None))
    assert np.abs(swapped - vectors).max() > 1e-2
    # without verbalisation the words do not matter and the image is its projection alone
    model.config = tiny_config(tiny_bert, verbalise=False)
    plain = encoder.encode_images(ImageFeatures(pooled, logits, None))
    np.testing.assert_allclose(plain, F.normalize(projected, dim=-1).numpy(), atol=1e-5)
    np.testing.assert_allclose(plain, encoder.encode_images(ImageFeatures(pooled, logits[::-1].copy(), None)))


def test_borrowed_captions_join_the_image_side_the_same_way_in_training_and_serving(tiny_bert):
    model, tokenizer = build_model(tiny_config(tiny_bert, borrowed_neighbours=2, borrowed_weight=0.5))
    torch.nn.init.normal_(model.image_proj[-1].weight, std=0.5)
    rng = np.random.default_rng(3)
    pool_features = rng.normal(size=(6, 8)).astype(np.float32)
    captions = ["a red cat", "a red cat", "big house", "big house", "green tree", "green tree"]
    vectors = F.normalize(torch.randn(6, model.dim), dim=-1).numpy()  # stand-ins for the captions' embeddings
    captioner = NeighbourCaptioner(CaptionPool([f"p{i}" for i in range(6)], pool_features, captions, vectors), k=2)
    with pytest.raises(ValueError, match="caption pool"):
        UniVLEncoder(model, tokenizer, words)
    encoder = UniVLEncoder(model, tokenizer, words, captioner=captioner)
    pooled = pool_features[[0, 2, 4, 1]] + 0.05 * rng.normal(size=(4, 8)).astype(np.float32)
    logits = np.eye(4, 8, dtype=np.float32) * 5
    served = encoder.encode_images(ImageFeatures(pooled, logits, None))
    with torch.no_grad():
        projected = model.image_proj(torch.from_numpy(pooled))
        verbal = torch.from_numpy(encoder.encode_texts(words(logits, 2)))
        borrowed = torch.from_numpy(captioner.embed(pooled))
        expected = F.normalize(projected + verbal + 0.5 * borrowed, dim=-1).numpy()
    np.testing.assert_allclose(served, expected, atol=1e-5)
    # The neighbours, not the pixels' words alone, make the difference: another pool changes the embedding.
    shuffled = CaptionPool(captioner.pool.ids, pool_features, captions[::-1], vectors[::-1])
    other = UniVLEncoder(model, tokenizer, words, captioner=NeighbourCaptioner(shuffled, k=2))
    assert np.abs(other.encode_images(ImageFeatures(pooled, logits, None)) - served).max() > 1e-2
    # Training embeds the same rows the same way.
    data, _ = toy_data()
    ts = make_train_set(data, pooled, words(logits, 2), captioner.embed(pooled))
    cache = text_states(model, tokenizer)
    cache.add(ts.queries + ts.doc_texts)
    with torch.no_grad():
        trained = embed_rows(model, trainable_texts(model, cache), ts, range(4)).numpy()
    np.testing.assert_allclose(trained, served, atol=3e-3)  # float16 cache


# ----------------------------------------------------------------------------- stage-2 loss


def test_stage2_softmax_has_exactly_positive_hard_negatives_and_in_batch_candidates():
    batch = np.array([0, 1, 2])
    positive_rows = np.array([0, 1, 2])
    image_negatives, text_negatives = np.array([5, 6, -1]), np.array([4, 7, 8])  # query 2 has no image negative
    columns = stage2_columns(batch, positive_rows, image_negatives, text_negatives)
    assert columns == [0, 1, 2, 5, 4, 6, 7, 8]
    # queries 0 and 2 share their text (same group); doc 4 is another positive of query 1's group
    relevant = [{0, 2}, {1, 4}, {0, 2}]
    expected = [
        [True, True, False, True, True, True, True, True],  # its group-mate's image is not a negative
        [True, True, True, True, False, True, True, True],  # doc 4, mined for query 0, is relevant to query 1
        [False, True, True, True, True, True, True, True],
    ]
    generator = torch.Generator().manual_seed(0)
    queries = F.normalize(torch.randn(3, 6, generator=generator), dim=-1)
    documents = F.normalize(torch.randn(len(columns), 6, generator=generator), dim=-1)
    loss = masked_contrastive(queries, documents, 10.0, columns, relevant)
    by_hand = []
    for i, row in enumerate(expected):
        scores = torch.stack([10.0 * queries[i] @ documents[j] for j in range(len(columns)) if row[j]])
        by_hand.append(torch.logsumexp(scores, 0) - 10.0 * queries[i] @ documents[i])
    torch.testing.assert_close(loss, torch.stack(by_hand).mean())


# ----------------------------------------------------------------------------- mining


def toy_data() -> tuple[TrainingData, list[str]]:
    """Images first then texts; "a red cat" has an image and a gloss positive (one group)."""
    images = [Document(f"img{i}", "image", f"caption {i}", image_path=f"/nowhere/{i}.png") for i in range(4)]
    texts = [
        Document(f"txt{i}", "text", t) for i, t in enumerate(["a red cat", "a green tree", "big house", "small bird"])
    ]
    examples = [
        Example("a red cat", "img0", "a red cat"),
        Example("a red cat", "txt0", "a red cat"),
        Example("blue dog", "img1", "blue dog"),
        Example("a green tree", "txt1", "a green tree"),
    ]
    documents = {d.id: d for d in images + texts}
    verbal = ["a red cat", "blue dog", "red cat , flower", "boat"]  # img2's words are close to "a red cat"
    return TrainingData(examples, documents), verbal


def test_hard_negatives_are_one_image_and_one_text_never_relevant(tiny_bert):
    torch.manual_seed(0)
    model, tokenizer = build_model(tiny_config(tiny_bert))
    with torch.no_grad():
        model.image_proj[-1].weight.zero_()  # images are their words: the same-group docs rank first
        model.image_proj[-1].bias.zero_()
    data, verbal = toy_data()
    ts = make_train_set(data, np.zeros((4, 8), np.float32), verbal)
    assert ts.relevant[0] == ts.relevant[1] == {0, 4}  # img0 and txt0 answer the same query
    cache = text_states(model, tokenizer)
    cache.add(ts.queries + ts.doc_texts)
    text_fn = trainable_texts(model, cache)
    with torch.no_grad():
        q = text_fn(["a red cat"])
        docs = embed_rows(model, text_fn, ts, range(len(ts.doc_ids)))
    ranking = (docs @ q.T).squeeze(1).argsort(descending=True).tolist()
    assert set(ranking[:2]) == {0, 4}  # unmasked, example 0's top negatives would be its group's documents
    image_negatives, text_negatives = mine(model, text_fn, ts, np.random.default_rng(0))
    for i in range(len(ts.queries)):
        assert ts.doc_is_image[image_negatives[i]] and not ts.doc_is_image[text_negatives[i]]
        assert image_negatives[i] not in ts.relevant[i] and text_negatives[i] not in ts.relevant[i]


def test_mining_window_draws_only_from_the_ranks_it_names():
    # One query; documents scored 9, 8, ..., 0 in row order, alternating image / text.
    query = np.ones((1, 1), np.float32)
    docs = np.arange(9, -1, -1, dtype=np.float32)[:, None]
    is_image = np.arange(10) % 2 == 0
    for skip, depth in ((0, 4), (4, 8), (6, 10)):
        drawn = set()
        for seed in range(20):
            images, texts = mine_hard_negatives(
                query, docs, is_image, [9], [set()], np.random.default_rng(seed), depth, skip
            )
            drawn |= {int(images[0]), int(texts[0])}
        assert drawn == set(range(skip, depth)) - {9}  # every rank in the window, none outside it


# ----------------------------------------------------------------------------- training


def test_an_epoch_lowers_the_loss_and_leaves_frozen_layers_alone(tiny_bert):
    torch.manual_seed(0)
    model, tokenizer = build_model(tiny_config(tiny_bert))
    data, verbal = toy_data()
    pooled = np.random.default_rng(0).normal(size=(4, 8)).astype(np.float32)
    ts = make_train_set(data, pooled, verbal)
    cache = text_states(model, tokenizer)
    cache.add(ts.queries + ts.doc_texts)
    frozen = model.text.stack.model.encoder.layer[0].attention.self.query.weight.clone()
    top = model.text.stack.model.encoder.layer[1].output.dense.weight.clone()
    stage = UniVLStage(epochs=1, batch_size=4, lr_text=1e-2, lr_head=1e-2, warmup=0.0)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    scheduler = cosine_with_warmup(optimizer, 100, 0.0)
    rng = np.random.default_rng(0)
    text_fn = trainable_texts(model, cache)
    losses = [train_epoch(model, optimizer, scheduler, text_fn, ts, stage, rng, None, "toy") for _ in range(8)]
    assert losses[-1] < 0.5 * losses[0]
    assert torch.equal(model.text.stack.model.encoder.layer[0].attention.self.query.weight, frozen)
    assert not torch.equal(model.text.stack.model.encoder.layer[1].output.dense.weight, top)


def test_head_only_phase_trains_the_image_head_against_a_frozen_text_tower(tiny_bert):
    torch.manual_seed(0)
    model, tokenizer = build_model(tiny_config(tiny_bert))
    data, verbal = toy_data()
    pooled = np.random.default_rng(0).normal(size=(4, 8)).astype(np.float32)
    ts = make_train_set(data, pooled, verbal)
    texts = [data.documents[i].text for i in data.text_ids]
    dev = DevData(
        "toy",
        ["q0", "q1"],
        ["blue dog", "a green tree"],
        {"q0": {"img1": 1}, "q1": {"txt1": 1}},
        ts.doc_ids,
        verbal + texts,  # a mixed collection: verbalised images, then texts
        ts.doc_is_image,
        torch.cat([torch.from_numpy(pooled), torch.zeros(len(texts), 8)]),
    )
    cache = text_states(model, tokenizer)
    cache.add(ts.queries + ts.doc_texts + dev.queries)
    text_before = {k: v.clone() for k, v in model.text.state_dict().items()}
    history: list = []
    stage = UniVLStage(epochs=2, batch_size=4, lr_head=1e-2)
    start = dev_mrr(model, frozen_texts(model, cache), dev)
    rng = np.random.default_rng(0)
    best = run_stage(model, cache, ts, [dev], stage, rng, "head", history, head_only=True, score_start=True)
    assert [h["epoch"] for h in history] == [0, 1, 2] and best.score == max(h["dev_toy"] for h in history)
    assert history[0]["dev_toy"] == pytest.approx(start, abs=1e-4) and history[0]["loss"] is None
    assert all(torch.equal(v, model.text.state_dict()[k]) for k, v in text_before.items())
    # the model is left at the kept checkpoint: the zero-initialised head only if the start won on dev
    assert bool(model.image_proj[-1].weight.any()) == (best.tag != "head epoch 0")


def test_stage1_is_reused_only_when_config_data_and_seed_match(tmp_path):
    from mmr.methods import univl_dr
    from mmr.training.common import Manifest

    Manifest(univl_dr.INBATCH_NAME, "data1", 0.3, 0, 1.0, config=univl_dr._stage1_config(univl_dr.MODEL)).save(tmp_path)
    assert univl_dr._reusable_stage1(tmp_path, "data1", 0) is not None
    assert univl_dr._reusable_stage1(tmp_path, "data2", 0) is None
    assert univl_dr._reusable_stage1(tmp_path, "data1", 1) is None
    Manifest(univl_dr.INBATCH_NAME, "data1", 0.3, 0, 1.0, config={"model": {}}).save(tmp_path)
    assert univl_dr._reusable_stage1(tmp_path, "data1", 0) is None
    assert univl_dr._reusable_stage1(tmp_path / "missing", "data1", 0) is None
