"""The search service the app and the CLI share: collections and retrievers loaded once, at start.

A retriever whose index is missing or stale does not take the app down: it is left out and its
reason is kept in ``load_errors`` so the UI can say what to run. One that needs what this machine was
never given (a CLIP checkpoint) is not an error: it is listed in ``not_configured`` instead.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from mmr.collections import collections as known_collections
from mmr.collections import load_collection
from mmr.config import Settings
from mmr.corpus.format import Corpus
from mmr.index import IndexMismatchError
from mmr.retrievers import RETRIEVERS, Resources, Retriever, retriever_spec
from mmr.types import Document, Hit, Query

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrieverResult:
    retriever: str
    hits: list[Hit]
    latency_ms: float
    error: str | None = None
    # doc_id -> the retriever's own account of the match (LSR: top and shared terms); only when asked for
    explanations: dict[str, dict] = field(default_factory=dict)


def index_folder(settings: Settings, retriever: str, collection: str):
    return settings.indexes_dir / retriever / collection


@dataclass
class SearchService:
    resources: Resources
    collections: dict[str, Corpus]
    retrievers: dict[tuple[str, str], Retriever] = field(default_factory=dict)
    load_errors: dict[tuple[str, str], str] = field(default_factory=dict)
    not_configured: dict[str, str] = field(default_factory=dict)  # retriever -> what it needs

    @classmethod
    def load(
        cls,
        settings: Settings | None = None,
        retriever_names: list[str] | None = None,
        collection_names: list[str] | None = None,
        resources: Resources | None = None,
    ) -> SearchService:
        settings = settings or Settings()
        resources = resources or Resources(settings)
        collections = {
            name: load_collection(settings, name) for name in collection_names or list(known_collections(settings))
        }
        service = cls(resources, collections)
        for name in retriever_names or list(RETRIEVERS):
            if unmet := retriever_spec(name).unmet_requirement():
                service.not_configured[name] = unmet
                continue
            try:
                retriever_class = retriever_spec(name).retriever_class()
            except ImportError as err:  # a method's optional dependency is missing: leave it out, say why
                for collection_name in collections:
                    service.load_errors[(name, collection_name)] = f"cannot import {name}: {err}"
                continue
            for collection_name, corpus in collections.items():
                folder = index_folder(settings, name, collection_name)
                try:
                    service.retrievers[(name, collection_name)] = retriever_class.load(corpus, resources, folder)
                except (IndexMismatchError, FileNotFoundError) as err:
                    service.load_errors[(name, collection_name)] = str(err)
                    log.warning("%s on %s not loaded: %s", name, collection_name, err)
        return service

    def available(self, collection: str) -> list[str]:
        return [name for (name, coll) in self.retrievers if coll == collection]

    def document(self, collection: str, doc_id: str) -> Document:
        return self.collections[collection][doc_id]

    def search(
        self, query: Query, retriever_names: list[str], collection: str, k: int = 10, explain: bool = False
    ) -> list[RetrieverResult]:
        """Each retriever's top ``k``; with ``explain``, also what a retriever can say about each hit."""
        results = []
        for name in retriever_names:
            retriever = self.retrievers.get((name, collection))
            if retriever is None:
                reason = self.load_errors.get((name, collection), f"{name} is not available on {collection}")
                results.append(RetrieverResult(name, [], 0.0, reason))
                continue
            start = time.perf_counter()
            hits = retriever.search(query, k)
            latency_ms = (time.perf_counter() - start) * 1000  # the search alone, without the explanations
            explanations = {}
            if explain:
                for hit in hits:
                    explanation = retriever.explain(query, hit.doc_id)
                    if explanation is not None:
                        explanations[hit.doc_id] = explanation
            results.append(RetrieverResult(name, hits, latency_ms, explanations=explanations))
        return results
