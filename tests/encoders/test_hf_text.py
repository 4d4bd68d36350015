"""The real loading code for published text checkpoints, on a tiny BERT the test creates."""

import numpy as np
import pytest

from mmr.encoders import UnknownEncoderError, load_encoder
from mmr.encoders.hf_text import HFTextEncoder


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "red", "flower", "cat", "dog", "##s"]
    (folder / "vocab.txt").write_text("\n".join(vocab))
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
    )
    BertModel(config).save_pretrained(folder)
    return folder


def test_tiny_checkpoint_encodes_normalised_float32(tiny_checkpoint):
    encoder = HFTextEncoder("tiny", tiny_checkpoint, max_length=8, batch_size=2, device="cpu")
    vectors = encoder.encode(["a red flower", "cat", "dogs", "", "a cat a dog a cat a dog a cat"])
    assert vectors.shape == (5, 16) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert not np.allclose(vectors[0], vectors[1])
    # batching must not change results: padding is masked out of the mean
    np.testing.assert_allclose(encoder.encode(["cat"])[0], vectors[1], atol=1e-5)


def test_mean_pool_ignores_padding():
    import torch

    hidden = torch.tensor([[[1.0, 1.0], [3.0, 3.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert HFTextEncoder.mean_pool(hidden, mask).tolist() == [[2.0, 2.0]]


def test_unknown_encoder_lists_the_valid_ones():
    with pytest.raises(UnknownEncoderError, match="Available: .*minilm-l6"):
        load_encoder("clip-vit-b32-typo")
