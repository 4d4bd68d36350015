"""The shared disk cache of frozen text encodings: large batches once per machine, queries never cached."""

from __future__ import annotations

import numpy as np

from mmr.encoders.base import TextEncoder
from mmr.encoders.cache import MIN_CACHED_BATCH, CachedTextEncoder


class CountingEncoder(TextEncoder):
    name, dim, device, batch_size = "counting", 3, "cpu", 8

    def __init__(self):
        self.calls = 0

    def encode(self, items, batch_size=None, progress=False):
        self.calls += 1
        return np.array([[len(t), t.count("a"), 1.0] for t in items], np.float32)


def test_a_large_batch_is_encoded_once_and_read_back_the_same(tmp_path):
    inner = CountingEncoder()
    texts = [f"text {i} {'a' * (i % 5)}" for i in range(MIN_CACHED_BATCH)]
    first = CachedTextEncoder(inner, tmp_path).encode(texts)
    again = CachedTextEncoder(inner, tmp_path).encode(texts)  # a second method, a second process
    assert inner.calls == 1
    np.testing.assert_array_equal(first, again)
    changed = CachedTextEncoder(inner, tmp_path).encode([*texts[:-1], "another text"])
    assert inner.calls == 2 and changed[-1, 0] == len("another text")
    assert not list(tmp_path.glob("*.tmp.npy")), "a temporary file was left behind"


def test_small_batches_and_the_encoders_own_attributes_pass_through(tmp_path):
    inner = CountingEncoder()
    cached = CachedTextEncoder(inner, tmp_path)
    cached.encode(["a query"])
    cached.encode(["a query"])
    assert inner.calls == 2 and not list(tmp_path.iterdir())
    assert cached.batch_size == 8 and cached.uncached is inner and cached.dim == 3


def test_a_large_image_set_is_encoded_once_with_its_grid_and_serves_both_requests(tmp_path, monkeypatch):
    from mmr.config import Settings
    from mmr.encoders.base import ImageFeatures
    from mmr.retrievers import base
    from mmr.types import Document

    calls = []

    class FakeImageEncoder:
        def features(self, images, keep_grid=False, progress=False):
            calls.append(keep_grid)
            n = len(images)
            grid = np.ones((n, 4, 2), np.float32) if keep_grid else None
            return ImageFeatures(np.ones((n, 2), np.float32), np.zeros((n, 3), np.float32), grid)

    monkeypatch.setattr(base, "GRID_ALWAYS_FROM", 3)
    resources = base.Resources(Settings(index_store=tmp_path / "store", data_dir=tmp_path / "data"), device="cpu")
    resources._encoders["fake"] = FakeImageEncoder()
    images = []
    for i in range(3):
        path = tmp_path / f"{i}.png"
        path.write_bytes(b"png")
        images.append(Document(f"img{i}", "image", "", image_path=str(path)))
    pooled = resources.image_features(images, "fake")
    assert calls == [True] and pooled.grid is None
    with_grid = resources.image_features(images, "fake", keep_grid=True)
    assert calls == [True] and with_grid.grid.shape == (3, 4, 2)
    resources.image_features(images[:2], "fake")  # a small set: only what was asked
    assert calls == [True, False]
