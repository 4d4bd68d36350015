"""Dense2Sparse LSR as a retriever: teacher vector -> sparse head -> Seismic inverted index.

Documents are encoded once at build time into the index; a query goes the same way at search time
(text through the teacher's text side, an uploaded image through its image side). The index records
both the LSR model's manifest fingerprint and the teacher's, so retraining either makes it stale.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from mmr.corpus.format import Corpus
from mmr.encoders.registry import STAND_INS
from mmr.index import IndexMismatchError, IndexParams
from mmr.methods.lsr.index import CENTROID_FRACTION, SUMMARY_ENERGY, SparseIndex
from mmr.methods.lsr.model import CONFIG_FILE, DOCUMENT_TERMS, LSRModel, prune_row, prune_rows
from mmr.methods.lsr.teacher import teacher_tag
from mmr.methods.lsr.words import readable_terms
from mmr.retrievers.base import Resources, Retriever
from mmr.retrievers.trained import model_fingerprint
from mmr.types import Hit, Query

NAME = "lsr"
EXPLAIN_TERMS = 20
QUERY_CACHE_SIZE = 64  # explain() is called once per shown hit: encode each query once
# Seismic walks the posting lists of a query's INDEX_LISTS heaviest terms and scores each document it meets with
# the whole query (then rescored exactly, index.py); None walks every list. On dev (scripts/lsr_query_cost.py,
# docs/findings.md), 5, 10, 20 and 40 lists all gave exactly the brute-force top 10 on every query of both
# settings; 10 keeps a margin over 5 for 0.1 ms (stamps) and 0.7 ms (mixed) more, and a fifth of the time of
# walking every list. `mmr evaluate` reports the agreement with brute force on test.
INDEX_LISTS: int | None = 10


class LSRRetriever(Retriever):
    name = NAME

    def __init__(self, resources: Resources, model: LSRModel, index: SparseIndex, texts: dict[str, str] | None = None):
        self.resources = resources
        self.model = model
        self.index = index
        self.texts = texts or {}  # document texts, to show a text document's words whole (explain)
        # Searching needs a query's weights only on the terms some document holds; explain() shows the whole query.
        self.search_head = model.head_on(np.flatnonzero(index.document_frequency))
        self._queries: OrderedDict[tuple[str, bool], sp.csr_matrix] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def model_folder(cls, resources: Resources) -> Path:
        return resources.settings.model_dir(cls.name)

    @classmethod
    def params_for(cls, corpus: Corpus, resources: Resources) -> IndexParams:
        folder = cls.model_folder(resources)
        tag = model_fingerprint(folder)  # raises with the train command when there is no model
        config = json.loads((folder / CONFIG_FILE).read_text())
        current_teacher = teacher_tag(config["teacher"], resources.settings)
        if current_teacher != config["teacher_tag"]:
            raise IndexMismatchError(
                f"the teacher changed since {cls.name} was trained ({config['teacher_tag']} -> "
                f"{current_teacher}); retrain with `python -m mmr train {cls.name}`"
            )
        return IndexParams(
            cls.name,
            f"{cls.name}@{tag}/{current_teacher}",
            int(config["vocab_size"]),
            corpus.name,
            corpus.fingerprint,
            # What the index was built with: a difference makes it stale (IndexParams.mismatch). Search-time
            # settings (HEAP_FACTOR, the query cut) are left out, since changing one needs no rebuild.
            extra={
                "teacher": config["teacher"],
                "summary_energy": SUMMARY_ENERGY,
                "centroid_fraction": CENTROID_FRACTION,
                "document_terms": DOCUMENT_TERMS,
            },
        )

    @classmethod
    def encode_corpus(cls, model: LSRModel, corpus: Corpus, resources: Resources) -> sp.csr_matrix:
        docs = corpus.documents
        text_rows = [i for i, d in enumerate(docs) if d.modality == "text"]
        image_rows = [i for i, d in enumerate(docs) if d.modality == "image"]
        blocks = [sp.csr_matrix((0, model.config.vocab_size), dtype=np.float32)]
        if text_rows:
            blocks.append(model.encode_texts([docs[i].text for i in text_rows]))
        if image_rows:
            features = resources.image_features(
                [docs[i] for i in image_rows], STAND_INS.image, keep_grid=model.needs_grid
            )
            blocks.append(model.encode_images(features))
        stacked = sp.vstack(blocks, format="csr", dtype=np.float32)
        # Back to corpus order: row j of ``stacked`` is document (text_rows + image_rows)[j].
        position = np.empty(len(docs), dtype=np.int64)
        position[np.asarray(text_rows + image_rows, dtype=np.int64)] = np.arange(len(docs))
        return prune_rows(stacked[position], DOCUMENT_TERMS)

    @classmethod
    def build(cls, corpus: Corpus, resources: Resources, folder: Path) -> LSRRetriever:
        params = cls.params_for(corpus, resources)
        model = LSRModel.load(cls.model_folder(resources), resources)
        index = SparseIndex(cls.encode_corpus(model, corpus, resources), [d.id for d in corpus.documents], params)
        index.save(folder)
        return cls(resources, model, index, _texts(corpus))

    @classmethod
    def load(cls, corpus: Corpus, resources: Resources, folder: Path) -> LSRRetriever:
        hint = f"rebuild it with `python -m mmr train {cls.name}`"
        index = SparseIndex.load(folder, cls.params_for(corpus, resources), hint)
        return cls(resources, LSRModel.load(cls.model_folder(resources), resources), index, _texts(corpus))

    def encode_query(self, query: Query, whole: bool = False) -> sp.csr_matrix:
        """The query as searched (its weights on the terms the index holds), or ``whole``: on every term."""
        key = query.key if query.image is None or query.image_sha else None
        head = None if whole else self.search_head
        with self._lock:
            if key is not None and (key, whole) in self._queries:
                self._queries.move_to_end((key, whole))
                return self._queries[(key, whole)]
        parts = []
        if query.text:
            parts.append(self.model.encode_queries([query.text], head))
        if query.image is not None:
            encoder = self.resources.encoder(STAND_INS.image)
            features = encoder.features([query.image], keep_grid=self.model.needs_grid)
            parts.append(self.model.encode_image_queries(features, head))
        if not parts:
            raise ValueError("a query needs text or an image")
        vector = prune_row(sp.csr_matrix(sum(parts[1:], parts[0]), dtype=np.float32), self.model.config.query_terms)
        if key is not None:
            with self._lock:
                self._queries[(key, whole)] = vector
                while len(self._queries) > QUERY_CACHE_SIZE:
                    self._queries.popitem(last=False)
        return vector

    def encode_text_queries(self, texts: list[str]) -> list[sp.csr_matrix]:
        """Text queries encoded in one batch (the benchmark): as ``encode_query`` encodes them for a search."""
        matrix = self.model.encode_queries(texts, self.search_head)
        return [prune_row(matrix[row], self.model.config.query_terms) for row in range(matrix.shape[0])]

    def search(self, query: Query, k: int = 10) -> list[Hit]:
        return self.search_vector(self.encode_query(query), k)

    def search_vector(self, vector: sp.csr_matrix, k: int = 10) -> list[Hit]:
        """An encoded query's top ``k`` from the inverted index, as served."""
        return self.index.search(vector, k, INDEX_LISTS)

    def search_many(self, queries, k: int = 10) -> list[list[Hit]]:
        if not all(q.text and q.image is None for q in queries):
            return super().search_many(queries, k)
        return [self.search_vector(vector, k) for vector in self.encode_text_queries([q.text for q in queries])]

    def explain(self, query: Query, doc_id: str) -> dict | None:
        if doc_id not in self.index:
            return None
        return explain_match(
            self.encode_query(query),
            self.index.vector(doc_id),
            self.model.vocabulary,
            query_text=query.text,
            document_text=self.texts.get(doc_id),
            whole_query=self.encode_query(query, whole=True),
        )


def explain_match(
    query: sp.csr_matrix,
    document: sp.csr_matrix,
    vocabulary,
    limit: int = EXPLAIN_TERMS,
    query_text: str | None = None,
    document_text: str | None = None,
    whole_query: sp.csr_matrix | None = None,
) -> dict:
    """The shared words by their share of the score q.d, and each side's heaviest words (mmr.methods.lsr.words:
    pieces of a word of the text joined, punctuation and stop words summed into a remainder). ``query`` is the
    query as searched, so the shared words add up to the hit's score; the query's heaviest words are listed from
    ``whole_query`` where given (every term, those no document holds too)."""
    query, document = sp.csr_matrix(query), sp.csr_matrix(document)
    whole_query = query if whole_query is None else sp.csr_matrix(whole_query)
    shared_ids, q_at, d_at = np.intersect1d(query.indices, document.indices, return_indices=True)
    contributions = query.data[q_at] * document.data[d_at]
    by_term = {
        int(term): (float(query.data[q]), float(document.data[d]), float(c))
        for term, q, d, c in zip(shared_ids, q_at, d_at, contributions, strict=True)
    }
    groups, rest = _words(vocabulary, {t: v[2] for t, v in by_term.items()}, query_text)
    shared = sorted(
        (
            {
                "term": word,
                "query_weight": sum(by_term[t][0] for t in ids),
                "document_weight": sum(by_term[t][1] for t in ids),
                "contribution": sum(by_term[t][2] for t in ids),
            }
            for word, ids in groups
        ),
        key=lambda t: -t["contribution"],
    )
    return {
        "method": NAME,
        "score": float(contributions.sum()),
        "query_terms": _top_words(whole_query, vocabulary, query_text, limit),
        "document_terms": _top_words(document, vocabulary, document_text, limit),
        "shared_terms": shared[:limit],
        "other_shared": {"terms": len(rest), "contribution": float(sum(by_term[t][2] for t in rest))},
        "query_nonzeros": int(whole_query.nnz),
        "document_nonzeros": int(document.nnz),
    }


def _words(vocabulary, values: dict[int, float], text: str | None):
    names = dict(zip(values, vocabulary.terms(list(values)), strict=True)) if values else {}
    return readable_terms(values, text, vocabulary.tokenizer, names.__getitem__)


def _top_words(row: sp.csr_matrix, vocabulary, text: str | None, limit: int) -> list[dict]:
    values = {int(t): float(w) for t, w in zip(row.indices, row.data, strict=True)}
    groups, _ = _words(vocabulary, values, text)
    weighted = sorted(((word, sum(values[t] for t in ids)) for word, ids in groups), key=lambda p: -p[1])
    return [{"term": word, "weight": weight} for word, weight in weighted[:limit]]


def _texts(corpus: Corpus) -> dict[str, str]:
    return {d.id: d.text for d in corpus.documents if d.text}
