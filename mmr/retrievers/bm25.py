"""BM25 (bm25s) over text documents and image verbalisations: the honest lexical baseline.

An image's text for BM25 is its top ImageNet class names (the verbaliser), never its caption or
file name: captions are what the image queries are made of, so reading them would be cheating.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from mmr.config import BUILD_COMMAND
from mmr.corpus.format import Corpus
from mmr.encoders.registry import STAND_INS
from mmr.index import IndexMismatchError, IndexParams
from mmr.retrievers.base import Resources, Retriever
from mmr.types import Hit, Query

VERBALISATION_WORDS = 5


def _tokenize(texts: list[str]):
    import bm25s

    return bm25s.tokenize(texts, stopwords="en", return_ids=False, show_progress=False)


class BM25Retriever(Retriever):
    name = "bm25"

    def __init__(self, resources: Resources, engine, ids: list[str]):
        self.resources = resources
        self.engine = engine
        self.ids = ids
        self.vocabulary = set(engine.vocab_dict)

    @classmethod
    def params_for(cls, corpus: Corpus) -> IndexParams:
        return IndexParams(cls.name, f"bm25s+verbaliser-top{VERBALISATION_WORDS}", 0, corpus.name, corpus.fingerprint)

    @classmethod
    def document_texts(cls, corpus: Corpus, resources: Resources) -> list[str]:
        texts = [doc.text if doc.modality == "text" else "" for doc in corpus.documents]
        image_rows = [i for i, doc in enumerate(corpus.documents) if doc.modality == "image"]
        if image_rows:
            features = resources.image_features([corpus.documents[i] for i in image_rows], STAND_INS.image)
            words = resources.verbaliser(STAND_INS.text).words(features.logits, top=VERBALISATION_WORDS)
            for row, text in zip(image_rows, words):
                texts[row] = text
        return texts

    @classmethod
    def build(cls, corpus: Corpus, resources: Resources, folder: Path) -> BM25Retriever:
        import bm25s

        engine = bm25s.BM25()
        engine.index(_tokenize(cls.document_texts(corpus, resources)), show_progress=False)
        folder.mkdir(parents=True, exist_ok=True)
        engine.save(str(folder), allow_pickle=False, show_progress=False)
        ids = [doc.id for doc in corpus.documents]
        (folder / "ids.json").write_text(json.dumps(ids))
        params = cls.params_for(corpus)
        (folder / "params.json").write_text(json.dumps(asdict(IndexParams(**{**asdict(params), "count": len(ids)}))))
        return cls(resources, engine, ids)

    @classmethod
    def load(cls, corpus: Corpus, resources: Resources, folder: Path) -> BM25Retriever:
        import bm25s

        if not (folder / "params.json").exists():
            raise IndexMismatchError(f"no BM25 index at {folder}; build it with `{BUILD_COMMAND}`")
        params = IndexParams(**json.loads((folder / "params.json").read_text()))
        if problems := params.mismatch(cls.params_for(corpus)):
            raise IndexMismatchError(
                f"BM25 index at {folder} is stale ({'; '.join(problems)}); rebuild it with `{BUILD_COMMAND}`"
            )
        engine = bm25s.BM25.load(str(folder), allow_pickle=False, show_progress=False)
        return cls(resources, engine, json.loads((folder / "ids.json").read_text()))

    def query_text(self, query: Query) -> str:
        parts = [query.text or ""]
        if query.image is not None:
            logits = self.resources.encoder(STAND_INS.image).features([query.image]).logits
            parts.append(self.resources.verbaliser(STAND_INS.text).words(logits, top=VERBALISATION_WORDS)[0])
        return " ".join(part for part in parts if part)

    def search(self, query: Query, k: int = 10) -> list[Hit]:
        tokens = [t for t in _tokenize([self.query_text(query)])[0] if t in self.vocabulary]
        if not tokens:
            return []  # nothing the index knows: BM25 honestly has no answer
        k = min(k, len(self.ids))
        rows, scores = self.engine.retrieve([tokens], k=k, show_progress=False, n_threads=1)
        return [
            Hit(self.ids[int(row)], float(score), rank)
            for rank, (row, score) in enumerate(zip(rows[0], scores[0]), 1)
            if score > 0
        ]
