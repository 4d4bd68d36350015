"""Base for the trained dense methods: a model folder from ``mmr train`` plus a faiss index.

Every trained method reads the frozen image encoder's outputs (pooled features, ImageNet logits,
and the 7x7 grid for the methods that need patches) and owns everything after them, text side
included. The index records the model's manifest fingerprint, so retraining invalidates it.
"""

from __future__ import annotations

import hashlib
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import ClassVar, Protocol

import numpy as np

from mmr.config import BUILD_COMMAND
from mmr.corpus.format import Corpus
from mmr.encoders.base import ImageFeatures
from mmr.encoders.registry import STAND_INS
from mmr.index import DenseIndex, IndexMismatchError, IndexParams
from mmr.retrievers.base import DenseRetriever, Resources, dense_query_vector
from mmr.training.common import MANIFEST
from mmr.types import Hit, Query


class DualEncoderModel(Protocol):
    needs_grid: bool
    dim: int

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray: ...

    def encode_images(self, features: ImageFeatures) -> np.ndarray: ...


def model_fingerprint(folder: Path) -> str:
    manifest = folder / MANIFEST
    if not manifest.exists():
        # a release's model folder is <name>/<stamp>/model; a model from before releases is models/<name>
        name = folder.parent.parent.name if folder.name == "model" else folder.name
        raise IndexMismatchError(f"no trained model at {folder}; train it with `python -m mmr train {name}`")
    return hashlib.sha256(manifest.read_bytes()).hexdigest()[:12]


class TrainedDenseRetriever(DenseRetriever):
    name: ClassVar[str]

    def __init__(self, resources: Resources, model: DualEncoderModel, index: DenseIndex, corpus: Corpus | None = None):
        self.resources = resources
        self.model = model
        self.index = index
        self.corpus = corpus  # what an explanation looks documents up in

    @classmethod
    @abstractmethod
    def load_model(cls, folder: Path, resources: Resources) -> DualEncoderModel: ...

    @classmethod
    def model_folder(cls, resources: Resources) -> Path:
        return resources.settings.model_dir(cls.name)

    @classmethod
    def params_for(cls, corpus: Corpus, dim: int, resources: Resources) -> IndexParams:
        tag = model_fingerprint(cls.model_folder(resources))
        return cls.dense_params(f"{cls.name}@{tag}", dim, corpus)

    @classmethod
    def embed_corpus(cls, model: DualEncoderModel, corpus: Corpus, resources: Resources) -> np.ndarray:
        vectors = np.zeros((len(corpus), model.dim), np.float32)
        text_rows = [i for i, d in enumerate(corpus.documents) if d.modality == "text"]
        image_rows = [i for i, d in enumerate(corpus.documents) if d.modality == "image"]
        if text_rows:
            vectors[text_rows] = model.encode_texts([corpus.documents[i].text for i in text_rows])
        if image_rows:
            docs = [corpus.documents[i] for i in image_rows]
            vectors[image_rows] = model.encode_images(
                resources.image_features(docs, STAND_INS.image, keep_grid=model.needs_grid)
            )
        return vectors

    @classmethod
    def build(cls, corpus: Corpus, resources: Resources, folder: Path) -> TrainedDenseRetriever:
        model = cls.load_model(cls.model_folder(resources), resources)
        vectors = cls.embed_corpus(model, corpus, resources)
        params = cls.params_for(corpus, model.dim, resources)
        index = DenseIndex.build(vectors, [d.id for d in corpus.documents], params)
        index.save(folder)
        return cls(resources, model, index, corpus)

    @classmethod
    def load(cls, corpus: Corpus, resources: Resources, folder: Path) -> TrainedDenseRetriever:
        model_dir = cls.model_folder(resources)
        expected = cls.params_for(corpus, 0, resources)
        model = cls.load_model(model_dir, resources)
        expected = replace(expected, dim=model.dim)
        try:
            index = DenseIndex.load(folder, expected=expected)
        except IndexMismatchError as err:
            raise IndexMismatchError(f"{err} (or `python -m mmr train {cls.name}`)") from err
        return cls(resources, model, index, corpus)

    def embed_query(self, query: Query) -> np.ndarray:
        def embed_image(image) -> np.ndarray:
            features = self.resources.encoder(STAND_INS.image).features([image], keep_grid=self.model.needs_grid)
            return self.model.encode_images(features)[0]

        return dense_query_vector(query, lambda text: self.model.encode_texts([text])[0], embed_image)

    def search(self, query: Query, k: int = 10) -> list[Hit]:
        return self.index.search(self.embed_query(query), k)[0]

    def search_many(self, queries, k: int = 10) -> list[list[Hit]]:
        if not all(q.text and q.image is None for q in queries):
            return super().search_many(queries, k)
        # Text-only batches (the benchmark) encode in one pass: same vectors, a fraction of the time.
        return self.index.search(self.model.encode_texts([q.text for q in queries]), k)


__all__ = ["BUILD_COMMAND", "DualEncoderModel", "TrainedDenseRetriever", "model_fingerprint"]
