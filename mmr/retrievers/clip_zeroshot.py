"""CLIP zero-shot: the first baseline of the papers' tables, for a machine that has a CLIP checkpoint.

Texts go through CLIP's text tower, images through its image tower, and they meet in CLIP's joint
space; nothing is trained. No CLIP weights install here, so ``mmr build`` builds this index only when
``MMR_CLIP_PATH`` names a checkpoint folder (see ``mmr/encoders/clip.py``); elsewhere it is skipped and
the app leaves it out, saying why.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmr.corpus.format import Corpus
from mmr.corpus.images import load_image
from mmr.encoders.clip import checkpoint_tag
from mmr.index import DenseIndex, IndexParams
from mmr.retrievers.base import DenseRetriever, LazyImages, Resources, dense_query_vector
from mmr.types import Hit, Query

TEXT_ENCODER, IMAGE_ENCODER = "clip-text", "clip-image"


class CLIPZeroShotRetriever(DenseRetriever):
    name = "clip-zeroshot"

    def __init__(self, resources: Resources, index: DenseIndex):
        self.index = index
        self.text_encoder = resources.encoder(TEXT_ENCODER)
        self.image_encoder = resources.encoder(IMAGE_ENCODER)

    @classmethod
    def params_for(cls, corpus: Corpus, resources: Resources) -> IndexParams:
        text = resources.encoder(TEXT_ENCODER)
        encoders = f"{TEXT_ENCODER}+{IMAGE_ENCODER}@{checkpoint_tag(text.path)}"
        return cls.dense_params(encoders, text.dim, corpus)

    @classmethod
    def build(cls, corpus: Corpus, resources: Resources, folder: Path) -> CLIPZeroShotRetriever:
        params = cls.params_for(corpus, resources)
        vectors = np.zeros((len(corpus), params.dim), np.float32)
        for modality, encoder_name in (("text", TEXT_ENCODER), ("image", IMAGE_ENCODER)):
            rows = [i for i, doc in enumerate(corpus.documents) if doc.modality == modality]
            if not rows:
                continue
            docs = [corpus.documents[i] for i in rows]
            items = (
                [d.text for d in docs] if modality == "text" else LazyImages([d.image_path for d in docs], load_image)
            )
            vectors[rows] = resources.encoder(encoder_name).encode(items, progress=f"CLIP {modality} documents")
        index = DenseIndex.build(vectors, [d.id for d in corpus.documents], params)
        index.save(folder)
        return cls(resources, index)

    @classmethod
    def load(cls, corpus: Corpus, resources: Resources, folder: Path) -> CLIPZeroShotRetriever:
        return cls(resources, DenseIndex.load(folder, expected=cls.params_for(corpus, resources)))

    def embed_query(self, query: Query) -> np.ndarray:
        return dense_query_vector(
            query,
            lambda text: self.text_encoder.encode([text])[0],
            lambda image: self.image_encoder.encode([image])[0],
        )

    def search(self, query: Query, k: int = 10) -> list[Hit]:
        return self.index.search(self.embed_query(query), k)[0]
