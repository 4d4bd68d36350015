"""Zero-shot verbalisation baseline: images and texts meet in MiniLM's text space.

An image becomes the softmax-weighted average of MiniLM embeddings of "a drawing of a {class}"
over the 1000 ImageNet classes; a text is embedded by MiniLM directly. No training, so every split
is fair to it; FIELD_NOTES measured MRR@10 .19 on the 950 stamps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmr.corpus.format import Corpus
from mmr.encoders.registry import STAND_INS
from mmr.index import DenseIndex, IndexParams
from mmr.retrievers.base import DenseRetriever, Resources, dense_query_vector
from mmr.types import Hit, Query


class VerbalisationRetriever(DenseRetriever):
    name = "zeroshot-verbal"

    def __init__(self, resources: Resources, index: DenseIndex):
        self.resources = resources
        self.index = index
        self.text_encoder = resources.encoder(STAND_INS.text)
        self.image_encoder = resources.encoder(STAND_INS.image)
        self.verbaliser = resources.verbaliser(STAND_INS.text)

    @classmethod
    def params_for(cls, corpus: Corpus, dim: int) -> IndexParams:
        return cls.dense_params(f"{STAND_INS.text}+{STAND_INS.image}", dim, corpus)

    @classmethod
    def embed_corpus(cls, corpus: Corpus, resources: Resources) -> np.ndarray:
        text_encoder = resources.encoder(STAND_INS.text)
        verbaliser = resources.verbaliser(STAND_INS.text)
        vectors = np.zeros((len(corpus), text_encoder.dim), np.float32)
        texts = [(i, d) for i, d in enumerate(corpus.documents) if d.modality == "text"]
        images = [(i, d) for i, d in enumerate(corpus.documents) if d.modality == "image"]
        if texts:
            rows = [i for i, _ in texts]
            vectors[rows] = text_encoder.encode([d.text for _, d in texts], progress="text documents")
        if images:
            rows = [i for i, _ in images]
            features = resources.image_features([d for _, d in images], STAND_INS.image)
            vectors[rows] = verbaliser.embed(features.logits)
        return vectors

    @classmethod
    def build(cls, corpus: Corpus, resources: Resources, folder: Path) -> VerbalisationRetriever:
        vectors = cls.embed_corpus(corpus, resources)
        index = DenseIndex.build(vectors, [d.id for d in corpus.documents], cls.params_for(corpus, vectors.shape[1]))
        index.save(folder)
        return cls(resources, index)

    @classmethod
    def load(cls, corpus: Corpus, resources: Resources, folder: Path) -> VerbalisationRetriever:
        dim = resources.encoder(STAND_INS.text).dim
        return cls(resources, DenseIndex.load(folder, expected=cls.params_for(corpus, dim)))

    def embed_query(self, query: Query) -> np.ndarray:
        return dense_query_vector(
            query,
            lambda text: self.text_encoder.encode([text])[0],
            lambda image: self.verbaliser.embed(self.image_encoder.features([image]).logits)[0],
        )

    def search(self, query: Query, k: int = 10) -> list[Hit]:
        return self.index.search(self.embed_query(query), k)[0]

    def search_many(self, queries, k: int = 10) -> list[list[Hit]]:
        if not all(q.text and q.image is None for q in queries):
            return super().search_many(queries, k)
        # Text-only batches (the benchmark) encode in one pass: same vectors, a fraction of the time.
        return self.index.search(self.text_encoder.encode([q.text for q in queries]), k)
