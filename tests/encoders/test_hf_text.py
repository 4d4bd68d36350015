"""The real loading code for published text checkpoints, on a tiny BERT the test creates."""

import numpy as np
import pytest

from mmr.encoders import UnknownEncoderError, load_encoder
from mmr.encoders.hf_text import HFTextEncoder
from tests.tiny_bert import save_tiny_bert


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"), ["a", "red", "flower", "cat", "dog", "##s"], layers=1)


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


def test_texts_are_encoded_shortest_first_and_returned_in_the_order_given(tiny_checkpoint):
    from mmr.encoders.base import in_length_order

    seen = []

    def encode(texts):
        seen.append(list(texts))
        return np.array([[len(t), i] for i, t in enumerate(texts)], np.float32)

    texts = ["a cat a dog", "a", "a red flower", "cat", "dogs"]
    rows = in_length_order(texts, encode)
    assert seen == [sorted(texts, key=len)] and rows[:, 0].tolist() == [len(t) for t in texts]
    assert in_length_order([], lambda t: np.zeros((0, 2), np.float32)).shape == (0, 2)
    # the encoder's rows are the same whichever texts share its batches
    encoder = HFTextEncoder("tiny", tiny_checkpoint, max_length=8, batch_size=2, device="cpu")
    one_by_one = np.concatenate([encoder.encode([t]) for t in texts])
    np.testing.assert_allclose(encoder.encode(texts), one_by_one, atol=1e-5)
