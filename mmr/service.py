"""The search service the app and the CLI share: collections and retrievers loaded once, at start.

A retriever whose index is missing or stale does not take the app down: it is left out and its
reason is kept in ``load_errors`` so the UI can say what to run. One that needs what this machine was
never given (a CLIP checkpoint) is not an error: it is listed in ``not_configured`` instead.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from mmr.collections import collections as known_collections
from mmr.collections import load_collection
from mmr.config import Settings
from mmr.corpus.format import Corpus
from mmr.index import IndexMismatchError
from mmr.retrievers import RETRIEVERS, Resources, Retriever, retriever_spec
from mmr.training.releases import current_stamp
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
    return settings.index_dir(retriever, collection)


@dataclass
class SearchService:
    """Loaded retrievers by (name, collection). ``refresh`` brings in methods trained since: it builds a
    new mapping and swaps it in with one assignment, so a search (which reads the mapping once) sees the
    old set or the new one, never a method half loaded."""

    resources: Resources
    collections: dict[str, Corpus]
    retrievers: dict[tuple[str, str], Retriever] = field(default_factory=dict)
    load_errors: dict[tuple[str, str], str] = field(default_factory=dict)
    not_configured: dict[str, str] = field(default_factory=dict)  # retriever -> what it needs
    loaded_releases: dict[str, str | None] = field(default_factory=dict)  # trained retriever -> its release
    _refresh_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

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
            loaded, errors = service._load(name)
            service.retrievers.update(loaded)
            service.load_errors.update(errors)
            if retriever_spec(name).trained:
                service.loaded_releases[name] = release_key(settings, name) if loaded else None
        return service

    def _load(self, name: str) -> tuple[dict[tuple[str, str], Retriever], dict[tuple[str, str], str]]:
        """``name`` on every collection: what loaded, and why the rest did not."""
        settings = self.resources.settings
        loaded, errors = {}, {}
        try:
            retriever_class = retriever_spec(name).retriever_class()
        except ImportError as err:  # a method's optional dependency is missing: leave it out, say why
            return {}, {(name, c): f"cannot import {name}: {err}" for c in self.collections}
        for collection_name, corpus in self.collections.items():
            folder = index_folder(settings, name, collection_name)
            try:
                loaded[(name, collection_name)] = retriever_class.load(corpus, self.resources, folder)
            except (IndexMismatchError, FileNotFoundError) as err:
                errors[(name, collection_name)] = str(err)
                log.info("%s on %s not loaded: %s", name, collection_name, err)
        return loaded, errors

    def refresh(self) -> list[str]:
        """Load every trained method whose served release changed since it was loaded (newly trained or
        retrained); returns their names. A method whose new release does not load keeps its old one."""
        settings = self.resources.settings
        with self._refresh_lock:
            changed = [
                name
                for name in self.loaded_releases
                if (key := release_key(settings, name)) is not None and key != self.loaded_releases[name]
            ]
            brought_in = []
            for name in changed:
                loaded, errors = self._load(name)
                key = release_key(settings, name)
                if errors and not loaded:
                    log.warning("%s: new release not loaded yet: %s", name, next(iter(errors.values())))
                    continue
                retrievers = {k: v for k, v in self.retrievers.items() if k[0] != name}
                load_errors = {k: v for k, v in self.load_errors.items() if k[0] != name}
                self.retrievers = {**retrievers, **loaded}  # the swap: one assignment
                self.load_errors = {**load_errors, **errors}
                self.loaded_releases[name] = key
                brought_in.append(name)
                log.info("%s: release %s loaded", name, key)
            return brought_in

    def available(self, collection: str) -> list[str]:
        return [name for (name, coll) in self.retrievers if coll == collection]

    def document(self, collection: str, doc_id: str) -> Document:
        return self.collections[collection][doc_id]

    def search(
        self, query: Query, retriever_names: list[str], collection: str, k: int = 10, explain: bool = False
    ) -> list[RetrieverResult]:
        """Each retriever's top ``k``; with ``explain``, also what a retriever can say about each hit."""
        results = []
        retrievers = self.retrievers  # one set for the whole search, whatever refresh does meanwhile
        for name in retriever_names:
            retriever = retrievers.get((name, collection))
            if retriever is None:
                reason = self.load_errors.get((name, collection), f"{name} is not available on {collection}")
                results.append(RetrieverResult(name, [], 0.0, reason))
                continue
            try:
                results.append(_search_one(retriever, name, query, k, explain))
            except Exception as err:  # one retriever's failure stays in its own column
                log.exception("%s failed on %r", name, query.text)
                results.append(RetrieverResult(name, [], 0.0, f"{name} failed on this query: {type(err).__name__}"))
        return results


def _search_one(retriever: Retriever, name: str, query: Query, k: int, explain: bool) -> RetrieverResult:
    start = time.perf_counter()
    hits = retriever.search(query, k)
    latency_ms = (time.perf_counter() - start) * 1000  # the search alone, without the explanations
    explanations = {}
    if explain:
        for hit in hits:
            explanation = retriever.explain(query, hit.doc_id)
            if explanation is not None:
                explanations[hit.doc_id] = explanation
    return RetrieverResult(name, hits, latency_ms, explanations=explanations)


def release_key(settings: Settings, name: str) -> str | None:
    """What identifies ``name``'s served model: its release, or the manifest of a model from before
    releases; None when it has none."""
    stamp = current_stamp(settings, name)
    if stamp is not None:
        return stamp
    manifest = settings.models_dir / name / "manifest.json"
    return f"models/{name}@{manifest.stat().st_mtime_ns}" if manifest.exists() else None
