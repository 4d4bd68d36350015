"""CIEA's mechanism: complement weights, w-scaled and masked attention, verbalised captions, residual queries;
the tests that need a text backbone run on a tiny BERT (the stand-in's family) and a tiny T5 (T5-ANCE's)."""

import math

import numpy as np
import pytest
import torch

from mmr.encoders.base import ImageFeatures
from mmr.methods.ciea import (
    CieaRetriever,
    ComplementExtractor,
    ResidualQueryLoss,
    class_name_captioner,
    residual_ids,
    verbalise,
)
from mmr.methods.visual_training import MarvelStages, StageTrainer

from .visual_helpers import CHANNELS, grids, make_encoder, make_tiny_bert, make_tiny_t5, snapshot, tiny_tables

HIDDEN, HEADS = 16, 2


@pytest.fixture(scope="module", params=["bert", "t5"])
def tiny_bert(request, tmp_path_factory):
    """The text backbone's checkpoint folder: BERT-like (mean-pooled) or T5 (first decoder state)."""
    return (make_tiny_bert if request.param == "bert" else make_tiny_t5)(tmp_path_factory)


def live_extractor(seed=0) -> ComplementExtractor:
    """An extractor whose output projections are not the identity-making zeros of a fresh one."""
    torch.manual_seed(seed)
    extractor = ComplementExtractor(HIDDEN, HEADS)
    for layer in (extractor.out, extractor.ffn[-1]):
        torch.nn.init.normal_(layer.weight, std=0.3)
    return extractor.eval()


def words_and_patches(seed=0):
    """Caption words, and patches of which 1 and 3 *are* caption words while 0, 2, 4 are unlike them."""
    g = torch.Generator().manual_seed(seed)
    words = torch.randn(1, 3, HIDDEN, generator=g)
    patches = torch.randn(1, 5, HIDDEN, generator=g)
    patches[0, 1], patches[0, 3] = words[0, 0], words[0, 2]
    for i in (0, 2, 4):  # make the others point away from every word: cosine <= 0
        for w in words[0]:
            unit = w / w.norm()
            overlap = patches[0, i] @ unit
            if overlap > 0:
                patches[0, i] -= 1.5 * overlap * unit
    return patches, words, torch.ones(1, 3, dtype=torch.long)


def test_weights_fall_on_patches_unlike_the_caption():
    patches, words, mask = words_and_patches()
    w = ComplementExtractor.complement_weights(patches, words, mask)[0]
    assert w[1] < 1e-5 and w[3] < 1e-5  # said by the caption: nothing to add
    assert all(w[i] >= 0.45 for i in (0, 2, 4))  # unlike every word: weight at least 1/2
    # a masked-out caption word does not count: patch 3 equals word 2, which is now padding
    w_padded = ComplementExtractor.complement_weights(patches, words, torch.tensor([[1, 1, 0]]))[0]
    assert w_padded[3] > 0.3 and w_padded[1] < 1e-5
    # no caption at all: every patch is complementary
    assert torch.equal(ComplementExtractor.complement_weights(patches, words[:, :0], mask[:, :0]), torch.ones(1, 5))


def test_attention_logits_are_scaled_by_the_weights_and_small_weights_masked():
    extractor = live_extractor()
    x = torch.randn(1, 4, HIDDEN)
    weights = torch.tensor([[1.0, 0.5, 1e-6, 0.8]])
    _, probabilities = extractor.attention(x, weights)
    q, k, _ = (t.view(1, 4, HEADS, HIDDEN // HEADS).transpose(1, 2) for t in extractor.qkv(x).chunk(3, dim=-1))
    logits = q @ k.transpose(-1, -2) / math.sqrt(HIDDEN // HEADS) * (weights.T @ weights)
    logits[..., [0, 1, 3], 2] = float("-inf")  # key 2 (w < 1e-5) is masked for every other patch
    torch.testing.assert_close(probabilities, logits.softmax(-1))
    assert probabilities[0, :, [0, 1, 3], 2].abs().max() == 0


def test_a_masked_patch_does_not_influence_the_others():
    extractor = live_extractor()
    patches, words, mask = words_and_patches()
    with torch.no_grad():
        before = extractor(patches, words, mask)
        swapped = patches.clone()
        swapped[0, 1] = 3 * words[0, 1]  # still a caption word (cosine 1): still masked, other content
        after = extractor(swapped, words, mask)
        others = [0, 2, 3, 4]
        torch.testing.assert_close(after[0, others], before[0, others])
        assert not torch.allclose(after[0, 1], before[0, 1])
        # control: the same change to an unmasked patch reaches the others (the check above can fail)
        control = patches.clone()
        control[0, 0] = -3 * words[0, 1]
        moved = extractor(control, words, mask)
        assert not torch.allclose(moved[0, [2, 4]], before[0, [2, 4]])


def test_fresh_extractor_is_the_identity_so_ciea_starts_at_marvel():
    patches, words, mask = words_and_patches()
    torch.testing.assert_close(ComplementExtractor(HIDDEN, HEADS)(patches, words, mask), patches)


def test_verbalisation_and_residual_query(tiny_bert):
    logits = np.zeros((2, 1000))
    logits[0, [1, 0]] = [5.0, 4.0]  # goldfish, then tench
    logits[1, 0] = 5.0
    assert verbalise(logits, top=2)[0] == "goldfish, tench" and verbalise(logits, top=1)[1] == "tench"
    tokenizer = make_encoder(tiny_bert).tokenizer
    kept = residual_ids("a red goldfish", "goldfish, tench", tokenizer)
    assert [t.strip("▁") for t in tokenizer.convert_ids_to_tokens(kept)] == ["a", "red"]
    assert residual_ids("a goldfish", "goldfish, tench", tokenizer) is None  # only "a" left: no content word


def test_documents_read_their_verbalisation(tiny_bert, tmp_path):
    model = make_encoder(tiny_bert, extractor=ComplementExtractor(HIDDEN, HEADS)).eval()
    model.save(tmp_path / "ciea", extra={"method": "ciea", "caption_words": 2})
    loaded = CieaRetriever.load_model(tmp_path / "ciea", resources=None)
    grid = np.repeat(grids(1), 2, axis=0)  # the same image twice ...
    logits = np.zeros((2, 1000))
    logits[0, 1], logits[1, 0] = 5.0, 5.0  # ... with different class evidence
    vectors = loaded.encode_images(ImageFeatures(np.zeros((2, CHANNELS)), logits, grid))
    assert vectors.dtype == np.float32 and not np.allclose(vectors[0], vectors[1], atol=1e-4)
    embeds, mask = model.image_inputs(torch.from_numpy(grid[:1].astype(np.float32)), ["goldfish, tench"])
    caption = len(model.tokenizer("goldfish, tench", add_special_tokens=False)["input_ids"])
    lead = model.lm.lead_tokens  # [CLS] for BERT, none for T5
    assert embeds.shape[1] == lead + 1 + 4 + 1 + caption + 1 and mask.sum() == embeds.shape[1]  # after <im_end>


def test_stage_one_trains_extractor_with_the_residual_loss_lm_frozen(tiny_bert):
    table, dev = tiny_tables()
    table.queries[:2] = ["red flower goldfish", "blue cat tench"]
    table.logits[0, 1] = table.logits[1, 0] = 5.0  # their images verbalise as goldfish / tench
    model = make_encoder(tiny_bert, extractor=live_extractor())
    settings = MarvelStages(batch_size=6, visual_lr=1e-2, visual_epochs=1.0, dpr_epochs=0, ance_epochs=0)
    trainer = StageTrainer(model, table, dev, settings, np.random.default_rng(0), captioner=class_name_captioner(2))
    trainer.auxiliary = ResidualQueryLoss(table, trainer.captions, model.tokenizer)
    assert set(trainer.auxiliary.residuals) == set(range(6))
    pieces = model.tokenizer.convert_ids_to_tokens(trainer.auxiliary.residuals[0])
    assert [piece.strip("▁") for piece in pieces] == ["red", "flower"]
    loss = trainer.auxiliary.visual_loss(trainer, np.arange(6))
    assert loss.requires_grad and 0 < float(loss.detach()) < 0.1 * math.log(6) * 2
    lm_before, extractor_before = snapshot(model.lm.parameters()), snapshot(model.extractor.parameters())
    trainer.pretrain_visual()
    assert all(torch.equal(b, p) for b, p in zip(lm_before, model.lm.parameters()))
    assert any(not torch.equal(b, p) for b, p in zip(extractor_before, model.extractor.parameters()))
    trainer.train_language(1.0, None, "2-dpr")  # the cached residual/image-only states feed the second loss
    assert trainer.history[-1]["checkpoint"] == "2-dpr"


@pytest.mark.parametrize("batch", [[0], [6, 7]])
def test_residual_loss_skips_batches_without_two_image_examples(tiny_bert, batch):
    table, dev = tiny_tables()
    model = make_encoder(tiny_bert, extractor=live_extractor())
    trainer = StageTrainer(
        model, table, dev, MarvelStages(), np.random.default_rng(0), captioner=class_name_captioner(2)
    )
    loss = ResidualQueryLoss(table, trainer.captions, model.tokenizer)
    assert loss.visual_loss(trainer, np.array(batch)) == 0.0


@pytest.mark.parametrize("joint", [False, True])
def test_the_extractor_trains_in_the_language_stages_only_when_asked(tiny_bert, joint):
    table, dev = tiny_tables()
    model = make_encoder(tiny_bert, extractor=live_extractor())
    rates = {"lm_lr": 1e-2, "extractor_lr": 1e-2}
    settings = MarvelStages(batch_size=6, trainable_layers=1, extractor_in_language=joint, **rates)
    trainer = StageTrainer(model, table, dev, settings, np.random.default_rng(0), captioner=class_name_captioner(2))
    before = snapshot(model.extractor.parameters())
    trainer.train_language(1.0, None, "2-dpr")
    moved = any(not torch.equal(b, p) for b, p in zip(before, model.extractor.parameters()))
    assert moved == joint
    # the dev score is of the model as it now is, whichever way its image documents were embedded
    assert trainer.dev_score("again") == pytest.approx(trainer.history[-2]["dev_mrr_at_10"], abs=1e-4)


def test_a_full_pass_over_mixed_columns_keeps_their_order(tiny_bert):
    table, dev = tiny_tables()
    model = make_encoder(tiny_bert, extractor=live_extractor()).eval()
    trainer = StageTrainer(model, table, dev, MarvelStages(trainable_layers=1), np.random.default_rng(0))
    k = trainer.frozen_layers()
    columns = np.array([table.n_images, 0, table.n_images + 1, 1])  # text, image, text, image
    with torch.no_grad():
        mixed = trainer._full_pass_images(columns, trainer.states("docs", k), k)
        one_by_one = torch.cat([model.embed(*trainer.document_inputs(np.array([c]))) for c in columns])
    assert torch.allclose(mixed, one_by_one, atol=1e-3)  # cached states and padding move the 5th decimal
    assert torch.cdist(one_by_one, one_by_one).fill_diagonal_(1.0).min() > 1e-2  # so a swap would show
