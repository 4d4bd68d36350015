"""A published checkpoint (mmr/presets) as a retriever: its documents in a faiss index, or in a Seismic
inverted index when the model is sparse, searched with its own query encoder.

Nothing here is trained. ``mmr build`` builds a preset's indexes only where its folder variable names the
published files (the rest is skipped and the app says which variable to set). An image document is encoded
with its caption where the method reads one, and only a caption its corpus ships as part of the document
(``metadata["caption"]``, which the papers' corpus adapters write): a stamp's text is the query that finds it.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from mmr.config import BUILD_COMMAND
from mmr.corpus.format import CAPTION_METADATA, Corpus
from mmr.corpus.images import load_image
from mmr.index import DenseIndex, IndexParams
from mmr.presets.base import PresetModel, PresetSpec
from mmr.presets.registry import PRESETS
from mmr.progress import ProgressBar
from mmr.retrievers.base import DenseRetriever, LazyImages, Resources, dense_query_vector
from mmr.types import Document, Hit, Query

BATCH = 16  # documents per forward pass: the published models are large, a GPU batch of 16 stays small


def load_preset_model(spec: PresetSpec, resources: Resources) -> PresetModel:
    """The preset's model, read once per process (every collection's retriever shares it)."""

    def read() -> PresetModel:
        module_name, function = spec.reader.split(":")
        reader = getattr(importlib.import_module(module_name), function)
        return reader(spec, spec.folder(), resources.device or "cpu")

    return resources.shared(f"preset:{spec.name}", read)


class PresetRetriever(DenseRetriever):
    spec: PresetSpec  # set on each preset's own subclass (preset_retriever)

    def __init__(self, model: PresetModel, index):
        self.model, self.index = model, index

    @classmethod
    def params_for(cls, corpus: Corpus, model: PresetModel) -> IndexParams:
        return cls.dense_params(f"preset:{model.tag()}", model.dim, corpus)

    @classmethod
    def encode_documents(cls, model: PresetModel, documents: Sequence[Document]):
        """Every document's vector, in corpus order: texts and images each in batches, with a progress bar."""
        rows = {"text": [], "image": []}
        for row, doc in enumerate(documents):
            rows[doc.modality].append(row)
        parts, order = [], []
        for modality, chosen in rows.items():
            for start in ProgressBar(range(0, len(chosen), BATCH), desc=f"{cls.name} {modality} documents"):
                docs = [documents[i] for i in chosen[start : start + BATCH]]
                if modality == "text":
                    parts.append(model.encode_text_documents([d.text for d in docs]))
                else:
                    images = LazyImages([d.image_path for d in docs], load_image)[:]
                    parts.append(
                        model.encode_image_documents(images, [d.metadata.get(CAPTION_METADATA, "") for d in docs])
                    )
                order += chosen[start : start + BATCH]
        inverse = np.argsort(np.asarray(order, dtype=np.int64))
        if model.sparse:
            return sp.vstack(parts, format="csr")[inverse] if parts else sp.csr_matrix((0, model.dim), dtype=np.float32)
        return np.concatenate(parts)[inverse] if parts else np.zeros((0, model.dim), np.float32)

    @classmethod
    def build(cls, corpus: Corpus, resources: Resources, folder: Path) -> PresetRetriever:
        model = load_preset_model(cls.spec, resources)
        params = cls.params_for(corpus, model)
        vectors = cls.encode_documents(model, corpus.documents)
        ids = [doc.id for doc in corpus.documents]
        if model.sparse:
            from mmr.methods.lsr.index import SparseIndex

            index = SparseIndex(vectors, ids, params)
        else:
            index = DenseIndex.build(vectors, ids, params)
        index.save(folder)
        return cls(model, index)

    @classmethod
    def load(cls, corpus: Corpus, resources: Resources, folder: Path) -> PresetRetriever:
        model = load_preset_model(cls.spec, resources)
        expected = cls.params_for(corpus, model)
        if model.sparse:
            from mmr.methods.lsr.index import SparseIndex

            return cls(model, SparseIndex.load(folder, expected, f"rebuild it with `{BUILD_COMMAND}`"))
        return cls(model, DenseIndex.load(folder, expected=expected))

    def query_vector(self, query: Query):
        if self.model.sparse:
            parts = []
            if query.text:
                parts.append(self.model.encode_queries([query.text]))
            if query.image is not None:
                parts.append(self.model.encode_image_queries([query.image]))
            if not parts:
                raise ValueError("a query needs text or an image")
            return sp.csr_matrix(sum(parts[1:], parts[0]))
        return dense_query_vector(
            query,
            lambda text: self.model.encode_queries([text])[0],
            lambda image: self.model.encode_image_queries([image])[0],
        )

    def search(self, query: Query, k: int = 10) -> list[Hit]:
        vector = self.query_vector(query)
        return self.index.search(vector, k) if self.model.sparse else self.index.search(vector, k)[0]

    def explain(self, query: Query, doc_id: str) -> dict | None:
        """A sparse model's shared words with the document, as the sparse retriever trained here shows them."""
        if not self.model.sparse or doc_id not in self.index:
            return None
        from mmr.methods.lsr.retriever import explain_match

        return explain_match(
            self.query_vector(query), self.index.vector(doc_id), self.model.vocabulary(), query_text=query.text
        )


@functools.cache
def preset_retriever(name: str) -> type[PresetRetriever]:
    """The retriever class of preset ``name`` (one class per preset: a retriever's name is a class attribute)."""
    spec = PRESETS[name]
    class_name = "".join(part.capitalize() for part in name.split("-")) + "Preset"
    return type(class_name, (PresetRetriever,), {"name": name, "spec": spec, "__module__": __name__})
