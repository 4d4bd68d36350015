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
