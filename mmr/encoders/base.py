"""The encoder interface every retriever builds on.

An encoder turns a batch of items into float32, L2-normalised rows of shape (n, dim).
Encoders are loaded once (``mmr.encoders.load_encoder``) and passed down, never loaded per call.

A ``VisionBackbone`` is an image encoder whose inner states the trained methods read: the pooled vector,
the grid (or patch) states and, where the network has one, its classifier. The methods take every size
from it (``dim``, ``grid_dim``, ``grid_tokens``, the class count) and none from a literal, so the packaged
EfficientNet and a CLIP vision tower serve the same code.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from mmr.progress import ProgressBar


def l2_normalise(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


def in_length_order(texts: Sequence[str], encode: Callable[[list[str]], np.ndarray]) -> np.ndarray:
    """``encode`` run on ``texts`` sorted by length, its rows put back in the order given. A batch is padded to
    its longest text, so batches of like lengths waste less; the rows are the same up to float rounding, since
    padding is masked out either way."""
    order = np.argsort([len(text) for text in texts], kind="stable")
    vectors = encode([texts[i] for i in order])
    rows = np.empty_like(vectors)
    rows[order] = vectors
    return rows


def batched(items: Sequence, batch_size: int, progress: bool | str = False):
    """Yield consecutive slices; ``progress`` (True or a label) shows a tqdm bar."""
    starts = range(0, len(items), batch_size)
    if progress:
        label = progress if isinstance(progress, str) else "encoding"
        starts = ProgressBar(starts, desc=label, unit="batch", total=len(starts))
    for start in starts:
        yield items[start : start + batch_size]


class Encoder(ABC):
    name: str
    dim: int
    device: str

    @abstractmethod
    def encode(self, items: Sequence, batch_size: int | None = None, progress: bool | str = False) -> np.ndarray:
        """(n, dim) float32, each row L2-normalised."""


class TextEncoder(Encoder):
    modality = "text"

    @abstractmethod
    def encode(
        self, items: Sequence[str], batch_size: int | None = None, progress: bool | str = False
    ) -> np.ndarray: ...


class ImageEncoder(Encoder):
    modality = "image"

    @abstractmethod
    def encode(
        self, items: Sequence[Image.Image], batch_size: int | None = None, progress: bool | str = False
    ) -> np.ndarray: ...


@dataclass(frozen=True)
class ImageFeatures:
    pooled: np.ndarray  # (n, dim) the backbone's pooled image vector, not normalised
    logits: np.ndarray | None  # (n, classes) its classifier's logits; None for a backbone without one
    grid: np.ndarray | None  # (n, grid_tokens, grid_dim) spatial states: the "patches" MARVEL-style models use


@dataclass(frozen=True)
class ClassHead:
    """A backbone's own classifier over its pooled vector: ``logits = pooled @ weight.T + bias``."""

    weight: np.ndarray  # (classes, dim)
    bias: np.ndarray  # (classes,)
    names: tuple[str, ...]  # one readable name per class, the words a verbalisation uses


class VisionBackbone(ImageEncoder):
    grid_dim: int  # the size of one grid (patch) state
    grid_tokens: int  # grid states per image (7 x 7 cells, 49 patches of ViT-B/32 at 224 pixels, ...)

    @abstractmethod
    def features(
        self,
        images: Sequence[Image.Image],
        keep_grid: bool = False,
        batch_size: int | None = None,
        progress: bool | str = False,
    ) -> ImageFeatures:
        """Pooled vectors and logits of every image; the grid only when ``keep_grid`` (it is the large part)."""

    def class_head(self) -> ClassHead | None:
        """The classifier behind ``features().logits``, or None where the backbone has none."""
        return None
