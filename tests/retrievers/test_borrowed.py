"""The borrowed-captions baseline: the zero-shot verbalisation plus the look-alikes' captions, no training."""

from __future__ import annotations

import numpy as np
import pytest

from mmr.config import Settings
from mmr.encoders.base import ImageFeatures, l2_normalise
from mmr.encoders.neighbours import CaptionPool, NeighbourCaptioner
from mmr.retrievers import Resources
from mmr.retrievers.borrowed import NAME, BorrowedCaptionsModel, BorrowedCaptionsRetriever
from mmr.training.common import Manifest


@pytest.fixture(scope="module")
def resources(tmp_path_factory):
    return Resources(Settings(data_dir=tmp_path_factory.mktemp("store")))


def pool(resources) -> CaptionPool:
    """Three frog drawings, then three car drawings: pooled features near one of two centres."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(2, 32)).astype(np.float32)
    features = np.repeat(centres, 3, axis=0) + rng.normal(size=(6, 32)).astype(np.float32)
    captions = ["a green frog", "frog on a leaf", "a toad", "a red car", "racing car", "an old truck"]
    return CaptionPool.build([f"p{i}" for i in range(6)], features, captions, resources.encoder("minilm-l6"))


def test_images_are_their_verbalisation_plus_the_borrowed_captions(resources, tmp_path):
    frogs_and_cars = pool(resources)
    folder = tmp_path / NAME
    folder.mkdir()
    frogs_and_cars.save(folder)
    Manifest(NAME, "data", 0.1, 0, 1.0, config={"borrowed": {"neighbours": 2, "weight": 0.5}}).save(folder)
    model = BorrowedCaptionsRetriever.load_model(folder, resources)
    logits = np.zeros((2, 1000), np.float32)  # no class evidence: the verbalisation is the same for both
    pooled = frogs_and_cars.features[[0, 3]] + 0.05  # look like a frog drawing, then a car drawing
    vectors = model.encode_images(ImageFeatures(pooled, logits, None))
    verbal = resources.verbaliser("minilm-l6").embed(logits)
    borrowed = NeighbourCaptioner(frogs_and_cars, 2).embed(pooled)
    np.testing.assert_allclose(vectors, l2_normalise(verbal + 0.5 * borrowed), atol=1e-5)
    queries = model.encode_texts(["a frog", "a car"])
    assert (queries @ vectors.T).argmax(axis=1).tolist() == [0, 1]  # the borrowed words tell them apart
    assert isinstance(model, BorrowedCaptionsModel) and model.dim == queries.shape[1]
