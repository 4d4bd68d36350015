"""The encoder interface every retriever builds on.

An encoder turns a batch of items into float32, L2-normalised rows of shape (n, dim).
Encoders are loaded once (``mmr.encoders.load_encoder``) and passed down, never loaded per call.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
from PIL import Image

from mmr.progress import ProgressBar


def l2_normalise(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


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
