"""Frozen text encodings computed once per machine and shared by every method that asks for them.

The frozen MiniLM embeds the same texts for many methods: the training queries and glosses for the
Procrustes maps, the borrowed captions and the sparse retriever's teacher, and the 5,000 glosses of
the mixed collection for every index built on it. A large batch is looked up on disk by the hash of
its texts instead (``features/<encoder>/texts-<hash>.npy``, written under a temporary name and
renamed), so only the first method pays for it. Small batches (a query) go straight to the encoder.
A trained text tower's large batches are cached the same way (``cached_encoding``), in a folder named after
its weights (mmr/methods/univl_model.py).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from mmr.encoders.base import TextEncoder

MIN_CACHED_BATCH = 256


class CachedTextEncoder(TextEncoder):
    def __init__(self, encoder: TextEncoder, folder: Path):
        self.uncached = encoder  # what a benchmark of the encoder itself must time
        self.folder = folder
        self.name, self.dim, self.device = encoder.name, encoder.dim, encoder.device

    def __getattr__(self, attribute: str):  # the rest of the encoder (tokenizer, batch_size, ...) as it is
        return getattr(self.__dict__["uncached"], attribute)

    def encode(self, items: Sequence[str], batch_size: int | None = None, progress: bool | str = False) -> np.ndarray:
        def encode(texts: list[str]) -> np.ndarray:
            return self.uncached.encode(texts, batch_size, progress)

        return cached_encoding(self.folder, list(items), encode)


def cached_encoding(folder: Path, texts: list[str], encode: Callable[[list[str]], np.ndarray]) -> np.ndarray:
    """``encode(texts)``, looked up by the hash of ``texts`` in ``folder`` when there are at least
    MIN_CACHED_BATCH of them, and stored there after computing."""
    if len(texts) < MIN_CACHED_BATCH:
        return encode(texts)
    digest = hashlib.sha256(("\x1e".join(texts)).encode("utf-8", "surrogatepass")).hexdigest()[:16]
    path = folder / f"texts-{digest}.npy"
    if path.exists():
        return np.load(path, allow_pickle=False)
    vectors = encode(texts)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"texts-{digest}.{os.getpid()}.tmp.npy"
    np.save(tmp, vectors)
    tmp.replace(path)
    return vectors
