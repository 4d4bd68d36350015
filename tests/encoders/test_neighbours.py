"""Borrowed captions: the nearest pool images' captions, never an image's own or a near copy's."""

from __future__ import annotations

import numpy as np
import pytest

from mmr.encoders.neighbours import NEAR_COPY_COSINE, CaptionPool, NeighbourCaptioner


def planted_pool(rng: np.random.Generator) -> tuple[CaptionPool, np.ndarray]:
    """Four clusters of pool images around four centres; each cluster's caption vector is one axis."""
    centres = rng.normal(size=(4, 32)).astype(np.float32) * 1.5  # far apart, but no near copies
    features = np.repeat(centres, 3, axis=0) + rng.normal(size=(12, 32)).astype(np.float32)
    captions = [f"caption of cluster {i // 3}, image {i % 3}" for i in range(12)]
    vectors = np.repeat(np.eye(4, 8, dtype=np.float32), 3, axis=0)
    return CaptionPool([f"img{i}" for i in range(12)], features, captions, vectors), centres


def test_an_image_borrows_the_captions_of_the_images_that_look_like_it():
    pool, centres = planted_pool(np.random.default_rng(0))
    captioner = NeighbourCaptioner(pool, k=3, temperature=0.05)
    query = centres[[2, 0]] + np.random.default_rng(1).normal(size=(2, 32)).astype(np.float32)
    vectors = captioner.embed(query)
    assert vectors.argmax(axis=1).tolist() == [2, 0]  # the cluster's own caption axis
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    rows, weights = captioner.neighbours(query)
    assert (rows[0] // 3 == 2).all() and (rows[1] // 3 == 0).all()
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-6)
    assert (np.diff(weights, axis=1) <= 0).all()  # nearest first, heaviest first
    borrowed = captioner.captions(query)
    assert [caption for caption, _ in borrowed[0]] == [pool.captions[r] for r in rows[0]]


def test_never_its_own_caption_nor_a_near_copys():
    pool, _ = planted_pool(np.random.default_rng(0))
    captioner = NeighbourCaptioner(pool, k=2)
    rows, _ = captioner.neighbours(pool.features)  # every pool image asks about itself
    assert not (rows == np.arange(12)[:, None]).any()
    # a slightly changed copy of image 4 is a near copy: image 4 is not among its neighbours
    copy = pool.features[4] + 0.01 * np.random.default_rng(2).normal(size=32).astype(np.float32)
    cosine = copy @ pool.features[4] / np.linalg.norm(copy) / np.linalg.norm(pool.features[4])
    assert cosine >= NEAR_COPY_COSINE
    assert 4 not in captioner.neighbours(copy)[0][0]


def test_temperature_sets_how_much_the_nearest_outweighs_the_rest():
    pool, centres = planted_pool(np.random.default_rng(0))
    query = centres[1:2] + 0.5
    sharp = NeighbourCaptioner(pool, k=3, temperature=0.001).neighbours(query)[1]
    flat = NeighbourCaptioner(pool, k=3, temperature=100.0).neighbours(query)[1]
    assert sharp[0, 0] > 0.99
    np.testing.assert_allclose(flat, 1 / 3, atol=0.01)


def test_pool_round_trips_and_refuses_mismatched_parts(tmp_path):
    pool, _ = planted_pool(np.random.default_rng(0))
    pool.save(tmp_path)
    loaded = CaptionPool.load(tmp_path)
    assert loaded.ids == pool.ids and loaded.captions == pool.captions
    np.testing.assert_array_equal(loaded.features, pool.features)
    np.testing.assert_array_equal(loaded.caption_vectors, pool.caption_vectors)
    with pytest.raises(ValueError, match="one id, feature row, caption and vector"):
        CaptionPool(pool.ids[:-1], pool.features, pool.captions, pool.caption_vectors)
    with pytest.raises(ValueError, match="k must be"):
        NeighbourCaptioner(pool, k=13)


def test_large_batches_are_searched_in_chunks_with_the_same_answer():
    pool, centres = planted_pool(np.random.default_rng(0))
    captioner = NeighbourCaptioner(pool, k=3)
    queries = np.repeat(centres, 5, axis=0) + np.random.default_rng(3).normal(size=(20, 32)).astype(np.float32)
    whole_rows, whole_weights = captioner.neighbours(queries)
    rows, weights = captioner.neighbours(queries, chunk=3)  # 20 images, 7 chunks, the last one short
    np.testing.assert_array_equal(rows, whole_rows)
    np.testing.assert_allclose(weights, whole_weights, atol=1e-5)  # matrix products of other shapes round apart
    assert captioner.neighbours(np.zeros((0, 32), np.float32))[0].shape == (0, 3)
