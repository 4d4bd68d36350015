"""The packaged EfficientNet as a vision backbone: the sizes the methods read from it, and its classifier."""

import numpy as np
from PIL import Image

from mmr.encoders.registry import STAND_INS


def test_the_backbone_states_its_sizes_and_its_classifier_gives_its_logits(real_resources):
    backbone = real_resources.encoder(STAND_INS.image)
    images = [Image.new("RGB", (60, 40), "red"), Image.new("RGB", (30, 90), "navy")]
    features = backbone.features(images, keep_grid=True)
    assert features.grid.shape == (2, backbone.grid_tokens, backbone.grid_dim)
    assert features.pooled.shape == (2, backbone.dim)
    assert backbone.grid_tokens == 49  # the 7 x 7 map of a 224-pixel input
    np.testing.assert_allclose(features.grid.mean(axis=1), features.pooled, rtol=1e-4, atol=1e-5)
    head = backbone.class_head()
    assert head.weight.shape == (len(head.names), backbone.dim) and "goldfish" in head.names
    np.testing.assert_allclose(features.pooled @ head.weight.T + head.bias, features.logits, rtol=1e-4, atol=1e-3)
