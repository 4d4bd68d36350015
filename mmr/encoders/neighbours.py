"""Borrowed captions: an image described by the captions of the training images that look most like it.

UniVL-DR verbalises an image document with generated captions; no captioning model installs here,
and the ImageNet class names alone know nothing of clip art's vocabulary. Nearest-neighbour
captioning (retrieve the training images closest in the frozen CNN's feature space and reuse their
captions) is the oldest captioner that needs no generator. It reads only pixels: the image's own
text is never used, and an image never borrows from itself or from a near copy of itself (the same
cosine bound that keeps near copies of held-out stamps out of training), so a training image sees
what a held-out one will, not its own caption.

The borrowed vector is the similarity-weighted mean of the neighbours' caption embeddings from the
frozen text encoder; models add it to the image side (``univl_model.UniVLModel.image_embedding``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mmr.encoders.base import l2_normalise

# Image features at or above this cosine are the same drawing (a dreidel drawn twice at 0.85 and
# above; same-style glyphs such as "The letter F" and "T" below it): never a neighbour of each other.
NEAR_COPY_COSINE = 0.85
POOL_FILE = "borrowed_captions.npz"


@dataclass(frozen=True)
class CaptionPool:
    """The training images a held-out image may borrow from: frozen features, captions, caption vectors."""

    ids: list[str]
    features: np.ndarray  # (n, channels) pooled CNN features, as the encoder gives them
    captions: list[str]
    caption_vectors: np.ndarray  # (n, dim) L2-normalised text embeddings of the captions

    def __post_init__(self):
        sizes = {len(self.ids), len(self.features), len(self.captions), len(self.caption_vectors)}
        if len(sizes) != 1:
            raise ValueError(f"a caption pool needs one id, feature row, caption and vector per image, got {sizes}")

    @classmethod
    def build(cls, ids: Sequence[str], features: np.ndarray, captions: Sequence[str], text_encoder) -> CaptionPool:
        """A pool from training images' ids, features and captions; ``text_encoder`` embeds the captions."""
        vectors = text_encoder.encode(list(captions), progress="borrowed-caption pool")
        return cls(list(ids), np.asarray(features, np.float32), list(captions), l2_normalise(vectors))

    def save(self, folder: Path) -> None:
        np.savez(
            Path(folder) / POOL_FILE,
            features=np.asarray(self.features, np.float32),
            caption_vectors=np.asarray(self.caption_vectors, np.float32),
            meta=np.array(json.dumps({"ids": self.ids, "captions": self.captions})),
        )

    @classmethod
    def load(cls, folder: Path) -> CaptionPool:
        with np.load(Path(folder) / POOL_FILE, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            return cls(meta["ids"], data["features"], meta["captions"], data["caption_vectors"])


class NeighbourCaptioner:
    """The ``k`` nearest pool images of each query image and their softmax(similarity / temperature) weights.

    Similarity is the cosine of mean-centred features: the CNN's pooled features share a large common
    component that makes every clip-art image look alike; the near-copy test uses the raw cosine, as
    the duplicate filter of the training data does.
    """

    def __init__(self, pool: CaptionPool, k: int = 5, temperature: float = 0.05):
        if not 0 < k <= len(pool.ids):
            raise ValueError(f"k must be in 1..{len(pool.ids)} (the pool's size), got {k}")
        self.pool, self.k, self.temperature = pool, k, temperature
        features = np.asarray(pool.features, np.float32)
        self.mean = features.mean(axis=0)
        # torch, not numpy, for the products: numpy's OpenBLAS threads spin after a call and, next to
        # torch's own threads on 2 cores, tripled an image query's latency (`make benchmark`).
        self._centred = torch.from_numpy(l2_normalise(features - self.mean))
        self._raw = torch.from_numpy(l2_normalise(features))

    def neighbours(self, pooled: np.ndarray, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
        """Pool rows (n, k) of each image's neighbours, nearest first, and their weights (rows sum to 1).

        Images are taken ``chunk`` at a time, so a large collection never holds all its similarities."""
        pooled = np.atleast_2d(np.asarray(pooled, np.float32))
        parts = [self._nearest(pooled[start : start + chunk]) for start in range(0, len(pooled), chunk)]
        if not parts:
            return np.zeros((0, self.k), np.int64), np.zeros((0, self.k), np.float32)
        rows, nearest = (np.concatenate(column) for column in zip(*parts))
        if not np.isfinite(nearest).all():
            raise ValueError(f"an image has fewer than k={self.k} pool images that are not copies of it")
        weights = np.exp((nearest - nearest[:, :1]) / self.temperature)
        return rows, (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)

    @torch.inference_mode()
    def _nearest(self, pooled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        similarity = (torch.from_numpy(l2_normalise(pooled - self.mean)) @ self._centred.T).numpy()
        raw = (torch.from_numpy(l2_normalise(pooled)) @ self._raw.T).numpy()
        similarity[raw >= NEAR_COPY_COSINE] = -np.inf
        rows = np.argsort(-similarity, axis=1, kind="stable")[:, : self.k]
        return rows, np.take_along_axis(similarity, rows, axis=1)

    def embed(self, pooled: np.ndarray) -> np.ndarray:
        """(n, dim) L2-normalised weighted mean of each image's neighbours' caption vectors."""
        rows, weights = self.neighbours(pooled)
        return l2_normalise(np.einsum("nk,nkd->nd", weights, self.pool.caption_vectors[rows]))

    def caption_text(self, pooled: np.ndarray, count: int) -> list[str]:
        """Each image's ``count`` nearest borrowed captions as one text, nearest first: a caption for
        models that read an image's caption as words (MARVEL's and CIEA's image documents)."""
        rows, _ = self.neighbours(pooled)
        return ["; ".join(self.pool.captions[r] for r in row[:count]) for row in rows]

    def captions(self, pooled: np.ndarray) -> list[list[tuple[str, float]]]:
        """Each image's borrowed captions with their weights, heaviest first (what the app shows)."""
        rows, weights = self.neighbours(pooled)
        return [[(self.pool.captions[r], float(w)) for r, w in zip(row, weight)] for row, weight in zip(rows, weights)]
