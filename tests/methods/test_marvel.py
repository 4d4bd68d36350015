"""MARVEL's mechanism on two text backbones the test creates, a tiny BERT (the stand-in's family) and a tiny T5
(T5-ANCE's, the paper's): visual tokens between markers, staged freezing, the saved model reloaded."""

import numpy as np
import pytest
import torch

from mmr.encoders.base import ImageFeatures
from mmr.encoders.neighbours import CaptionPool
from mmr.methods import visual_training
from mmr.methods.marvel import MarvelRetriever
from mmr.methods.visual_captions import SAVED_KEY, borrowed_captioner
from mmr.methods.visual_states import grid_rows, lower_states
from mmr.methods.visual_tokens import VisualTokenConfig, VisualTokenEncoder, load_language_model, load_saved
from mmr.methods.visual_training import MarvelStages, StageTrainer

from .visual_helpers import (
    CHANNELS,
    PATCHES,
    changed,
    grids,
    make_encoder,
    make_tiny_bert,
    make_tiny_t5,
    snapshot,
    tiny_tables,
)


@pytest.fixture(scope="module", params=["bert", "t5"])
def tiny_bert(request, tmp_path_factory):
    """The text backbone's checkpoint folder: BERT-like (mean-pooled) or T5 (first decoder state)."""
    return (make_tiny_bert if request.param == "bert" else make_tiny_t5)(tmp_path_factory)


def test_image_sequence_is_lead_start_visual_tokens_end_closing_token(tiny_bert):
    model = make_encoder(tiny_bert)
    grid = torch.from_numpy(grids(2).astype(np.float32))
    embeds, mask = model.image_inputs(grid)
    words = model.lm.model.get_input_embeddings().weight
    lead = model.lm.lead_tokens  # [CLS] for BERT, nothing for T5
    closing = model.tokenizer.sep_token_id if lead else model.tokenizer.eos_token_id  # [SEP], </s>
    length = lead + PATCHES + 3
    assert embeds.shape == (2, length, 16) and mask.tolist() == [[1] * length] * 2
    if lead:
        torch.testing.assert_close(embeds[:, 0], words[model.tokenizer.cls_token_id].expand(2, -1))
    torch.testing.assert_close(embeds[:, lead], model.markers[0].expand(2, -1))  # <im_start>
    torch.testing.assert_close(embeds[:, lead + 1 : lead + 1 + PATCHES], model.visual(grid))
    torch.testing.assert_close(embeds[:, lead + 1 + PATCHES], model.markers[1].expand(2, -1))  # <im_end>
    torch.testing.assert_close(embeds[:, -1], words[closing].expand(2, -1))
    assert not torch.allclose(model.markers[0], model.markers[1])  # two distinct learned vectors


def test_visual_tokens_drive_the_image_embedding(tiny_bert):
    model = make_encoder(tiny_bert).eval()
    grid = torch.from_numpy(grids(3).astype(np.float32))
    with torch.no_grad():
        vectors = model.embed_images(grid)
        assert not torch.allclose(vectors[0], vectors[1], atol=1e-3)
        torch.testing.assert_close(vectors.norm(dim=1), torch.ones(3))
        model.visual.linear.weight.zero_()
        model.visual.linear.bias.zero_()
        blind = model.embed_images(grid)
    torch.testing.assert_close(blind[0], blind[1])  # zeroed projection: every image looks the same
    torch.testing.assert_close(blind[0], blind[2])


def test_class_words_make_a_cell_start_as_the_word_for_its_class(tiny_bert):
    torch.manual_seed(0)
    config = VisualTokenConfig(grid_dim=CHANNELS, class_words=3, class_temperature=1.0)
    model = VisualTokenEncoder(load_language_model(tiny_bert), config)
    classifier = torch.eye(3, CHANNELS) * 50.0  # channel k is the evidence for class k
    words = model.phrase_embeddings(["cat", "blue dog", "bird"])
    vocab = model.lm.model.get_input_embeddings().weight.detach()
    ids = [model.tokenizer.convert_tokens_to_ids(word) for word in model.tokenizer.tokenize("blue dog")]
    assert len(ids) == 2
    torch.testing.assert_close(words[1], vocab[ids].mean(0))  # a class name enters as its mean wordpiece
    model.visual.init_class_words(classifier, torch.zeros(3), words)
    cells = torch.zeros(1, 3, CHANNELS)
    cells[0, 0, 2], cells[0, 1, 0], cells[0, 2, 1] = 1.0, 1.0, 1.0  # a bird cell, a cat cell, a dog cell
    with torch.no_grad():
        torch.testing.assert_close(model.visual(cells)[0], words[[2, 0, 1]], atol=1e-4, rtol=1e-4)
    # stage 1 trains the table and the linear map, never the frozen classifier (a buffer, not a parameter)
    assert {name for name, _ in model.visual.named_parameters()} == {"linear.weight", "linear.bias", "words"}
    assert {name for name, _ in model.visual.named_buffers()} == {"class_weight", "class_bias"}


def test_queries_embed_as_the_plain_text_backbone(tiny_bert):
    """BERT: mean-pooled states; T5: the first decoder state (MARVEL's), each through transformers' own model."""
    model = make_encoder(tiny_bert).eval()
    texts = ["a red flower", "cat", "blue dog a bird"]
    batch = model.tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        if model.lm.lead_tokens:
            hidden = model.lm.model(**batch).last_hidden_state
            weights = batch["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * weights).sum(1) / weights.sum(1)
        else:
            start = torch.zeros((len(texts), 1), dtype=torch.long)
            pooled = model.lm.model(**batch, decoder_input_ids=start).last_hidden_state[:, 0]
        expected = torch.nn.functional.normalize(pooled, dim=-1)
        torch.testing.assert_close(model.embed_texts(texts), expected, atol=1e-5, rtol=1e-5)


def test_split_forward_and_cached_states_equal_the_full_pass(tiny_bert):
    model = make_encoder(tiny_bert).eval()
    texts = ["a", "red flower", "a blue cat and a dog"]
    with torch.no_grad():
        full = model.embed_texts(texts)
        for layers in range(model.num_layers + 1):
            embeds, mask = model.text_inputs(texts)
            torch.testing.assert_close(model.upper(model.lower(embeds, mask, layers), mask, layers), full)
            states = lower_states(model, lambda r: model.text_inputs([texts[i] for i in r]), 3, layers, batch_size=2)
            # rows padded to another batch's width, then trimmed again, give the same vectors (fp16 cache)
            cached = model.upper(*states.take([2, 0]), layers)
            torch.testing.assert_close(cached, full[[2, 0]], atol=2e-3, rtol=2e-3)


def test_cached_image_documents_with_captions_of_any_length_equal_the_full_pass(tiny_bert):
    model = make_encoder(tiny_bert).eval()
    grid = grids(4)
    captions = ["red flower", "", "blue cat and a dog", "a"]  # padded within a batch, unpadded in the cache
    with torch.no_grad():
        full = model.embed(*model.image_inputs(torch.from_numpy(grid.astype(np.float32)), captions))
        for layers in range(model.num_layers + 1):
            inputs = lambda r: model.image_inputs(grid_rows(grid, r), [captions[i] for i in r])  # noqa: E731
            states = lower_states(model, inputs, 4, layers, batch_size=3)
            cached = model.upper(*states.take([2, 1, 3, 0]), layers)
            torch.testing.assert_close(cached, full[[2, 1, 3, 0]], atol=2e-3, rtol=2e-3)


def test_stage_one_trains_only_the_visual_module(tiny_bert):
    table, dev = tiny_tables()
    model = make_encoder(tiny_bert)
    settings = MarvelStages(batch_size=3, visual_lr=1e-2, visual_epochs=1.0, dpr_epochs=0, ance_epochs=0)
    trainer = StageTrainer(model, table, dev, settings, np.random.default_rng(0))
    lm_before, visual_before = snapshot(model.lm.parameters()), snapshot([model.visual.linear.weight, model.markers])
    trainer.pretrain_visual()
    assert not any(changed(lm_before, model.lm.parameters()))  # the language model is frozen
    assert all(changed(visual_before, [model.visual.linear.weight, model.markers]))
    assert trainer.history[-1]["checkpoint"] == "1-visual" and 0 <= trainer.history[-1]["dev_mrr_at_10"] <= 1


def test_language_stages_freeze_vision_and_the_bottom_layers(tiny_bert):
    table, dev = tiny_tables()
    model = make_encoder(tiny_bert)
    settings = MarvelStages(batch_size=4, lm_lr=1e-2, trainable_layers=1, dpr_epochs=1.0, ance_epochs=1.0)
    trainer = StageTrainer(model, table, dev, settings, np.random.default_rng(0))
    top_names = {name for name, _ in model.lm.upper_parameters(1)}
    assert top_names and not any(name.startswith(("encoder.layer.0.", "encoder.block.0.")) for name in top_names)
    frozen = [model.visual.linear.weight, model.visual.linear.bias, model.markers]
    frozen += [p for name, p in model.lm.model.named_parameters() if name not in top_names]
    top = [p for name, p in model.lm.model.named_parameters() if name in top_names]
    frozen_before, top_before = snapshot(frozen), snapshot(top)
    trainer.train_language(1.0, None, "2-dpr")
    negatives = trainer.mine()
    trainer.train_language(1.0, negatives, "4-ance")
    assert not any(changed(frozen_before, frozen))
    assert any(changed(top_before, top))
    images, texts = negatives
    for i, (image, text) in enumerate(zip(images, texts)):
        positives = table.group_positives()[i]
        assert image not in positives and text not in positives
        assert (image == -1 or image < table.n_images) and (text == -1 or text >= table.n_images)


def test_run_scores_each_stage_on_dev_and_returns_the_best_state(tiny_bert):
    table, dev = tiny_tables()
    model = make_encoder(tiny_bert)
    settings = MarvelStages(batch_size=4, visual_lr=1e-2, word_lr=1e-2, lm_lr=1e-2, trainable_layers=1)
    trainer = StageTrainer(model, table, dev, settings, np.random.default_rng(0))
    trainer.run(score_start=True)
    assert [h["checkpoint"] for h in trainer.history] == ["0-start", "1-visual", "2-dpr", "4-ance"]
    best = max(h["dev_mrr_at_10"] for h in trainer.history[1:])  # trained states only (next test)
    assert trainer.best.score == pytest.approx(best, abs=1e-4)
    # scored afresh through every layer, the returned model is the recorded best (no stale cached states)
    assert trainer.dev_score("again") == pytest.approx(best, abs=1e-4)


def test_the_start_is_scored_but_never_served_even_when_it_scores_best(tiny_bert, monkeypatch):
    scores = iter([0.9, 0.1, 0.3, 0.2])  # start, visual, DPR, ANCE
    monkeypatch.setattr(visual_training, "mrr_at_10", lambda *args: next(scores))
    table, dev = tiny_tables()
    settings = MarvelStages(batch_size=4, visual_lr=1e-2, word_lr=1e-2, lm_lr=1e-2, trainable_layers=1)
    trainer = StageTrainer(make_encoder(tiny_bert), table, dev, settings, np.random.default_rng(0))
    trainer.run(score_start=True)
    assert trainer.history[0] == {"checkpoint": "0-start", "dev_mrr_at_10": 0.9}
    assert (trainer.best.tag, trainer.best.score) == ("2-dpr", 0.3)


def test_saved_model_reloads_as_a_retrieval_model(tiny_bert, tmp_path):
    model = make_encoder(tiny_bert).eval()
    model.save(tmp_path / "marvel", extra={"method": "marvel"})
    loaded = MarvelRetriever.load_model(tmp_path / "marvel", resources=None)
    features = ImageFeatures(pooled=np.zeros((3, CHANNELS)), logits=np.zeros((3, 1000)), grid=grids(3))
    images, texts = loaded.encode_images(features), loaded.encode_texts(["red flower", "cat"])
    assert images.dtype == np.float32 and images.shape == (3, 16) and texts.shape == (2, 16)
    np.testing.assert_allclose(np.linalg.norm(images, axis=1), 1, rtol=1e-5)
    with torch.no_grad():
        expected = model.embed_images(torch.from_numpy(grids(3).astype(np.float32))).numpy()
    np.testing.assert_allclose(images, expected, atol=1e-5)
    assert loaded.needs_grid and loaded.dim == 16
    reloaded, extra = load_saved(tmp_path / "marvel")
    assert extra["method"] == "marvel" and reloaded.extractor is None


def planted_pool(dim: int = 16) -> CaptionPool:
    """Pool images 0-2 look alike (captions about flowers), as do 3-5 (about dogs), none a near copy."""
    rng = np.random.default_rng(5)
    centres = rng.normal(size=(2, CHANNELS)).astype(np.float32)
    features = np.repeat(centres, 3, axis=0) + rng.normal(size=(6, CHANNELS)).astype(np.float32)
    vectors = rng.normal(size=(6, dim)).astype(np.float32)
    captions = ["red flower", "a flower", "flower bed", "a dog", "blue dog", "dog house"]
    ids = [f"p{i}" for i in range(6)]
    return CaptionPool(ids, features, captions, vectors / np.linalg.norm(vectors, axis=1)[:, None])


def test_saved_model_reads_the_captions_its_documents_borrow(tiny_bert, tmp_path):
    model = make_encoder(tiny_bert).eval()
    pool = planted_pool()
    model.save(tmp_path / "marvel", extra={"method": "marvel", SAVED_KEY: 2})
    pool.save(tmp_path / "marvel")
    loaded = MarvelRetriever.load_model(tmp_path / "marvel", resources=None)
    grid = np.repeat(grids(1), 2, axis=0)  # the same patches twice ...
    pooled = pool.features[[0, 3]] + 0.01  # ... pooled as copies of a flower, then of a dog
    captions = borrowed_captioner(pool, 2)(ImageFeatures(pooled, np.zeros((2, 1000)), grid))
    # the look-alikes' captions, never the copied image's own
    assert [set(c.split("; ")) for c in captions] == [{"a flower", "flower bed"}, {"blue dog", "dog house"}]
    vectors = loaded.encode_images(ImageFeatures(pooled, np.zeros((2, 1000)), grid))
    with torch.no_grad():
        expected = model.embed_images(torch.from_numpy(grid.astype(np.float32)), captions).numpy()
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    assert not np.allclose(vectors[0], vectors[1], atol=1e-3)  # same patches, different borrowed words


@pytest.mark.parametrize("with_captions", [False, True])
def test_visual_pretraining_documents_carry_captions_only_when_asked(tiny_bert, with_captions, monkeypatch):
    """MARVEL pretrains on image-only documents; CIEA's extractor stage needs the caption in them."""
    table, dev = tiny_tables()
    model = make_encoder(tiny_bert)
    settings = MarvelStages(batch_size=6, visual_epochs=1.0, dpr_epochs=0, ance_epochs=0)
    captioner = lambda features: [f"caption {i}" for i in range(len(features.logits))]  # noqa: E731
    trainer = StageTrainer(
        model, table, dev, settings, np.random.default_rng(0), captioner, captions_in_pretraining=with_captions
    )
    seen = []
    build = model.image_inputs
    monkeypatch.setattr(
        model, "image_inputs", lambda grid, captions=None: seen.append(captions) or build(grid, captions)
    )
    trainer.pretrain_visual()
    training_batches = seen[: len(seen) - 1]  # the last call embeds dev documents, which always carry captions
    assert training_batches and all((c is not None) == with_captions for c in training_batches)
    assert seen[-1] is not None
