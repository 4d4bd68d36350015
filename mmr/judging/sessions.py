"""Judging sessions: a named list of queries, each judged blind over the pool of fixed retrievers.

A pool is built once per (session, query), when the query is added, by running every retriever of
the session through ``SearchService.search``; the rankings are kept (``shown_documents``) and the pool
is always derived from them, so every rater and every reload judges the same documents in the same
order, and each retriever's run can be rebuilt exactly later.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from mmr.judging.analysis import Judged, SessionData
from mmr.judging.pooling import PoolItem, RankedDoc, pool, ranked_docs
from mmr.queries import prepare_query
from mmr.store import JudgmentStore, SessionInfo, SessionQueryInfo
from mmr.types import Query

if TYPE_CHECKING:  # the service loads models: analysis and exports need not import it
    from mmr.service import SearchService

MIN_RETRIEVERS, MAX_RETRIEVERS = 2, 6
MAX_K = 10
IMPORT_PREFIX = "import:"  # raters named so hold judgments read from files, not given by a person


class JudgingError(ValueError):
    """A request the judging service cannot carry out; the message says what to do instead."""


@dataclass(frozen=True)
class BlindDoc:
    position: int
    doc_id: str
    modality: str
    text: str
    image_path: str | None


@dataclass(frozen=True)
class BlindQuery:
    """One query of a session as a rater sees it: the query and its pool, nothing about retrievers."""

    session: str
    qid: str
    position: int
    total: int
    text: str | None
    image_path: str | None
    docs: list[BlindDoc]


@dataclass(frozen=True)
class Progress:
    queries: int
    queries_done: int  # every pooled doc graded (or marked can't judge) by the rater
    docs: int
    docs_judged: int


def check_rater(rater: str | None) -> str:
    rater = (rater or "").strip()
    if not rater:
        raise JudgingError("Type your name (or keep the token the page gave you) so your grades are yours.")
    if rater.startswith(IMPORT_PREFIX) or len(rater) > 128:
        raise JudgingError(f"A rater name is at most 128 characters and does not start with {IMPORT_PREFIX!r}.")
    return rater


def _stored_query(entry: SessionQueryInfo) -> Query:
    if entry.image_path is None:
        return Query(text=entry.text)
    image = Image.open(entry.image_path).convert("RGB")
    return Query(text=entry.text, image=image, image_sha=entry.image_sha)


class JudgingService:
    def __init__(self, search: SearchService, store: JudgmentStore, uploads_dir: Path):
        self.search = search
        self.store = store
        self.uploads_dir = uploads_dir

    # ----------------------------------------------------------------------------- sessions

    def create_session(self, name: str, collection: str, retrievers: list[str], k: int) -> SessionInfo:
        name = (name or "").strip()
        if not name or len(name) > 128:
            raise JudgingError("Give the session a name (at most 128 characters).")
        if collection not in self.search.collections:
            raise JudgingError(f"collection {collection!r} not found. Available: {sorted(self.search.collections)}")
        available = self.search.available(collection)
        retrievers = list(dict.fromkeys(retrievers or []))
        unknown = [name for name in retrievers if name not in available]
        if unknown:
            raise JudgingError(f"retriever(s) {unknown} not available on {collection}. Available: {available}")
        if not MIN_RETRIEVERS <= len(retrievers) <= MAX_RETRIEVERS:
            raise JudgingError(f"Pick {MIN_RETRIEVERS} to {MAX_RETRIEVERS} retrievers (got {len(retrievers)}).")
        if not 1 <= int(k) <= MAX_K:
            raise JudgingError(f"k must be between 1 and {MAX_K}.")
        try:
            return self.store.create_session(name, collection, retrievers, int(k), secrets.token_hex(8))
        except ValueError as err:
            raise JudgingError(str(err)) from err

    def session(self, name: str) -> SessionInfo:
        info = self.store.session(name)
        if info is None:
            names = [s.name for s in self.store.sessions()]
            raise JudgingError(f"session {name!r} not found. Available: {names}")
        return info

    def session_names(self) -> list[str]:
        return [s.name for s in self.store.sessions()]

    # ------------------------------------------------------------------------------ queries

    def add_text_queries(self, session_name: str, entries: list[tuple[str | None, str]]) -> list[SessionQueryInfo]:
        """Add (qid or None, text) queries and build their pools; returns the session's entries for them."""
        session = self.session(session_name)
        added = []
        for qid, text in entries:
            prepared = prepare_query(text, None, self.uploads_dir)
            added.append(self._add(session, prepared.query, None, qid))
        return added

    def add_image_query(
        self, session_name: str, image_file: str | Path, text: str | None = None, qid: str | None = None
    ) -> SessionQueryInfo:
        prepared = prepare_query(text, image_file, self.uploads_dir)
        return self._add(self.session(session_name), prepared.query, prepared.image_path, qid)

    def _add(self, session: SessionInfo, query: Query, image_path: str | None, qid: str | None) -> SessionQueryInfo:
        try:
            info, _ = self.store.add_query(session.id, query.key, query.text, query.image_sha, image_path, qid)
        except ValueError as err:
            raise JudgingError(str(err)) from err
        if not self.store.shown(session.id, info.id):
            self._build_pool(session, info, query)
        return info

    def _build_pool(self, session: SessionInfo, info: SessionQueryInfo, query: Query) -> None:
        results = self.search.search(query, list(session.retrievers), session.collection, session.k)
        failed = [f"{r.retriever}: {r.error}" for r in results if r.error]
        if failed:
            raise JudgingError("Cannot pool this query: " + "; ".join(failed))
        rows = [(d.retriever, d.rank, d.doc_id, d.score) for d in ranked_docs(results, session.k)]
        self.store.save_shown(info.id, rows)

    def queries(self, session_name: str) -> list[SessionQueryInfo]:
        return self.store.session_queries(self.session(session_name).id)

    # --------------------------------------------------------------------------------- pools

    def _entry(self, session: SessionInfo, qid: str) -> SessionQueryInfo:
        entries = self.store.session_queries(session.id)
        for entry in entries:
            if entry.qid == qid:
                return entry
        raise JudgingError(f"query {qid!r} is not in session {session.name!r}. Available: {[e.qid for e in entries]}")

    def pool_items(self, session: SessionInfo, entry: SessionQueryInfo) -> list[PoolItem]:
        shown = self.store.shown(session.id, entry.id)
        if not shown:  # added while a retriever was missing (its pooling failed): pool it now
            self._build_pool(session, entry, _stored_query(entry))
            shown = self.store.shown(session.id, entry.id)
        return pool([RankedDoc(s.retriever, s.rank, s.doc_id, s.score) for s in shown], session.seed, entry.query_key)

    def blind_query(self, session_name: str, qid: str) -> BlindQuery:
        session = self.session(session_name)
        entry = self._entry(session, qid)
        corpus = self.search.collections[session.collection]
        docs = []
        for item in self.pool_items(session, entry):
            doc = corpus[item.doc_id]
            docs.append(BlindDoc(item.position, doc.id, doc.modality, doc.text, doc.image_path))
        total = len(self.store.session_queries(session.id))
        return BlindQuery(session.name, entry.qid, entry.position, total, entry.text, entry.image_path, docs)

    # ----------------------------------------------------------------------------- judgments

    def judge(self, session_name: str, qid: str, doc_id: str, rater: str, grade: int | None) -> int:
        """Store (or replace) ``rater``'s grade of a pooled doc; None means "can't judge"."""
        rater = check_rater(rater)
        session = self.session(session_name)
        entry = self._entry(session, qid)
        if doc_id not in {item.doc_id for item in self.pool_items(session, entry)}:
            raise JudgingError(f"{doc_id!r} is not in the pool of query {qid!r}")
        try:
            return self.store.upsert(entry.query_id, doc_id, rater, grade, session.id)
        except ValueError as err:
            raise JudgingError(str(err)) from err

    def grades(self, session_name: str, qid: str, rater: str) -> dict[str, int | None]:
        entry = self._entry(self.session(session_name), qid)
        return {j.doc_id: j.grade for j in self.store.judgments([entry.query_id], rater=rater.strip())}

    def progress(self, session_name: str, rater: str) -> Progress:
        session = self.session(session_name)
        entries = self.store.session_queries(session.id)
        pooled: dict[str, set[str]] = {entry.qid: set() for entry in entries}
        for row in self.store.shown(session.id):
            pooled[row.qid].add(row.doc_id)
        qid_of = {entry.query_id: entry.qid for entry in entries}
        judged: dict[str, set[str]] = {qid: set() for qid in pooled}
        for j in self.store.judgments(list(qid_of), rater=(rater or "").strip()):
            if j.doc_id in pooled[qid_of[j.query_id]]:
                judged[qid_of[j.query_id]].add(j.doc_id)
        return Progress(
            queries=len(entries),
            queries_done=sum(1 for qid, docs in pooled.items() if docs and docs <= judged[qid]),
            docs=sum(len(docs) for docs in pooled.values()),
            docs_judged=sum(len(docs) for docs in judged.values()),
        )

    def session_data(self, session_name: str) -> SessionData:
        """Everything analysis and exports need: rankings shown and all judgments of the session's
        queries (from any session or import: a judgment belongs to the query, not to the session)."""
        session = self.session(session_name)
        entries = self.store.session_queries(session.id)
        qid_of = {entry.query_id: entry.qid for entry in entries}
        judged = [
            Judged(qid_of[j.query_id], j.doc_id, j.rater, j.grade, j.updated_at.isoformat())
            for j in self.store.judgments(list(qid_of))
        ]
        return SessionData(
            session.name,
            session.k,
            session.retrievers,
            tuple(e.qid for e in entries),
            {e.qid: e.text or f"(image {e.image_sha[:10]})" for e in entries},
            tuple(self.store.shown(session.id)),
            tuple(judged),
        )
