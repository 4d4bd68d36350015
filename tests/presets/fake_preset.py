"""A stand-in published model for the preset retriever's tests: words and colours it can be checked against."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from mmr.encoders.base import l2_normalise
from mmr.presets.base import PresetModel, PresetSpec
from tests.tiny_bert import SPECIAL

WORDS = ["red", "blue", "green", "cat", "dog", "boat", "sky", "grass"]
COLOURS = {"red": (255, 0, 0), "blue": (0, 0, 255), "green": (0, 255, 0)}


def bag_of_words(text: str) -> np.ndarray:
    return np.array([float(word in text.lower().split()) for word in WORDS], np.float32)


def colour_words(image) -> np.ndarray:
    """An image's vector: the colour word of its mean colour."""
    mean = np.asarray(image.convert("RGB"), np.float32).reshape(-1, 3).mean(0)
    nearest = min(COLOURS, key=lambda name: np.abs(mean - COLOURS[name]).sum())
    return bag_of_words(nearest)


class FakeModel(PresetModel):
    """Dense: bag of words for texts; an image document is its colour word plus its caption's words."""

    def __init__(self, name: str, sparse: bool = False, vocabulary_folder: Path | None = None):
        # sparse rows live in the tiny BERT vocabulary (tests/tiny_bert.py): its special tokens, then WORDS
        self.name, self.sparse, self.dim = name, sparse, len(WORDS) + (len(SPECIAL) if sparse else 0)
        self.captions_seen: list[str] = []
        self._vocabulary_folder = vocabulary_folder

    def _out(self, rows: list[np.ndarray]):
        matrix = np.stack(rows) if rows else np.zeros((0, len(WORDS)), np.float32)
        if self.sparse:
            return sp.csr_matrix(np.hstack([np.zeros((len(matrix), len(SPECIAL)), np.float32), matrix]))
        return l2_normalise(matrix + 1e-6)

    def encode_queries(self, texts):
        return self._out([bag_of_words(text) for text in texts])

    def encode_text_documents(self, texts):
        return self.encode_queries(texts)

    def encode_image_documents(self, images, captions):
        self.captions_seen += list(captions)
        return self._out([colour_words(image) + bag_of_words(caption) for image, caption in zip(images, captions)])

    def vocabulary(self):
        from mmr.methods.lsr.head import Vocabulary

        return Vocabulary.from_path(self._vocabulary_folder)


def read_fake(spec: PresetSpec, folder: Path, device: str) -> FakeModel:
    sparse = spec.options.get("sparse", False)
    return FakeModel(spec.name, sparse=sparse, vocabulary_folder=folder / "vocabulary" if sparse else None)
