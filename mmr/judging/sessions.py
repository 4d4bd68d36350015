"""Judging sessions: a named list of queries, each judged blind over the pool of fixed retrievers.

Every call names the rater making it, an identity the caller has already verified (a token or a
sign-in, see mmr.store.raters), and is checked here, whatever a UI shows or hides: the owner (who
created the session) adds queries, imports, sees the join code and deletes it; members (the owner and
whoever joined with the code) see its pools, judge, analyse and export. To anyone else a session
does not exist: the message is the same as for a name nobody used.

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
from mmr.limits import (
    MAX_QUERIES_PER_CALL,
    MAX_QUERIES_PER_SESSION,
    MAX_QUERY_CHARS,
    MAX_SESSION_NAME_CHARS,
    MAX_SESSIONS_PER_RATER,
    LimitError,
    checked_int,
    checked_text,
)
from mmr.queries import prepare_query
from mmr.store import JudgmentStore, SessionInfo, SessionQueryInfo
from mmr.types import Query

if TYPE_CHECKING:  # the service loads models: analysis and exports need not import it
    from mmr.service import SearchService

MIN_RETRIEVERS, MAX_RETRIEVERS = 2, 6
MAX_K = 10


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
    """The verified rater a call is made by; without one, nothing can be judged or changed."""
    if not isinstance(rater, str) or not rater.strip():
        raise JudgingError("Sign in (or keep the name this browser was given) to judge: your grades are yours.")
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

    def create_session(self, name: str, collection: str, retrievers: list[str], k: int, owner: str) -> SessionInfo:
        owner = check_rater(owner)
        try:
            name = checked_text(name, "the session name", MAX_SESSION_NAME_CHARS)
            k = checked_int(k, "k", 1, MAX_K)
        except LimitError as err:
            raise JudgingError(f"{err}.") from err
        if collection not in self.search.collections:
            raise JudgingError(f"collection {collection!r} not found. Available: {sorted(self.search.collections)}")
        available = self.search.available(collection)
        if not isinstance(retrievers, list | tuple):
            raise JudgingError("retrievers must be a list of names")
        retrievers = list(dict.fromkeys(retrievers))
        unknown = [str(r)[:64] for r in retrievers if r not in available]
        if unknown:
            raise JudgingError(f"retriever(s) {unknown[:6]} not available on {collection}. Available: {available}")
        if not MIN_RETRIEVERS <= len(retrievers) <= MAX_RETRIEVERS:
            raise JudgingError(f"Pick {MIN_RETRIEVERS} to {MAX_RETRIEVERS} retrievers (got {len(retrievers)}).")
        if self.store.owned_count(owner) >= MAX_SESSIONS_PER_RATER:
            raise JudgingError(f"You own {MAX_SESSIONS_PER_RATER} sessions already; delete one to make another.")
        try:
            return self.store.create_session(name, collection, retrievers, k, secrets.token_hex(8), owner)
        except ValueError as err:
            raise JudgingError(str(err)) from err

    def session(self, name: str, rater: str) -> SessionInfo:
        """The session if ``rater`` is a member; otherwise "not found", as for a name nobody used."""
        rater = check_rater(rater)
        info = self.store.session(name) if isinstance(name, str) else None
        if info is None or not self.store.is_member(info.id, rater):
            mine = [s.name for s in self.store.sessions(member=rater)]
            shown = str(name)[:80] if name is not None else ""
            raise JudgingError(f"session {shown!r} not found among your sessions ({mine}); ask its owner to invite you")
        return info

    def owned(self, name: str, rater: str, action: str) -> SessionInfo:
        info = self.session(name, rater)
        if info.owner != rater:
            owner = info.owner or "nobody (it predates owners; see `mmr sessions`)"
            raise JudgingError(f"Only the session's owner, {owner}, can {action}.")
        return info

    def session_names(self, rater: str | None) -> list[str]:
        """The sessions ``rater`` belongs to (none for a visitor who is not signed in)."""
        return [s.name for s in self.store.sessions(member=rater)] if rater else []

    def join(self, join_code: str, rater: str) -> SessionInfo:
        rater = check_rater(rater)
        info = self.store.session_by_code(join_code.strip()) if isinstance(join_code, str) else None
        if info is None:
            raise JudgingError("No session has this join code: check it with the session's owner.")
        self.store.add_member(info.id, rater)
        return info

    def join_code(self, name: str, rater: str) -> str:
        return self.owned(name, rater, "see the join code").join_code

    def delete_session(self, name: str, rater: str) -> None:
        self.store.delete_session(self.owned(name, rater, "delete it").id)

    # ------------------------------------------------------------------------------ queries

    def add_text_queries(
        self, session_name: str, entries: list[tuple[str | None, str]], rater: str
    ) -> list[SessionQueryInfo]:
        """Add (qid or None, text) queries and build their pools; returns the session's entries for them."""
        session = self.owned(session_name, rater, "add queries")
        if len(entries) > MAX_QUERIES_PER_CALL:
            raise JudgingError(f"{len(entries)} queries at once; add at most {MAX_QUERIES_PER_CALL} per call.")
        return self.add_texts(session, entries)

    def add_texts(self, session: SessionInfo, entries: list[tuple[str | None, str]]) -> list[SessionQueryInfo]:
        """Add queries to a session the caller has checked the right to (``owned``)."""
        self._check_room(session, len(entries))
        for number, (_, text) in enumerate(entries, start=1):  # all of them before any is added
            try:
                checked_text(text, f"query {number}", MAX_QUERY_CHARS)
            except LimitError as err:  # a search may cut a long query; a judged one is kept as typed or not at all
                raise JudgingError(f"{err}; nothing was added.") from err
        added = []
        for qid, text in entries:
            prepared = prepare_query(text, None, self.uploads_dir)
            added.append(self._add(session, prepared.query, None, qid))
        return added

    def add_image_query(
        self, session_name: str, image_file: str | Path, rater: str, text: str | None = None, qid: str | None = None
    ) -> SessionQueryInfo:
        session = self.owned(session_name, rater, "add queries")
        self._check_room(session, 1)
        prepared = prepare_query(text, image_file, self.uploads_dir)
        return self._add(session, prepared.query, prepared.image_path, qid)

    def _check_room(self, session: SessionInfo, adding: int) -> None:
        held = self.store.query_count(session.id)
        if held + adding > MAX_QUERIES_PER_SESSION:
            raise JudgingError(f"A session holds at most {MAX_QUERIES_PER_SESSION} queries; it has {held}.")

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

    def queries(self, session_name: str, rater: str) -> list[SessionQueryInfo]:
        return self.store.session_queries(self.session(session_name, rater).id)

    # --------------------------------------------------------------------------------- pools

    def _entry(self, session: SessionInfo, qid: str) -> SessionQueryInfo:
        entries = self.store.session_queries(session.id)
        for entry in entries:
            if entry.qid == qid:
                return entry
        shown = [e.qid for e in entries][:50]
        raise JudgingError(f"query {str(qid)[:80]!r} is not in session {session.name!r}. Available: {shown}")

    def pool_items(self, session: SessionInfo, entry: SessionQueryInfo) -> list[PoolItem]:
        shown = self.store.shown(session.id, entry.id)
        if not shown:  # added while a retriever was missing (its pooling failed): pool it now
            self._build_pool(session, entry, _stored_query(entry))
            shown = self.store.shown(session.id, entry.id)
        return pool([RankedDoc(s.retriever, s.rank, s.doc_id, s.score) for s in shown], session.seed, entry.query_key)

    def blind_query(self, session_name: str, qid: str, rater: str) -> BlindQuery:
        session = self.session(session_name, rater)
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
        session = self.session(session_name, rater)
        entry = self._entry(session, qid)
        if doc_id not in {item.doc_id for item in self.pool_items(session, entry)}:
            raise JudgingError(f"{str(doc_id)[:80]!r} is not in the pool of query {qid!r}")
        try:
            return self.store.upsert(session.id, entry.query_id, doc_id, rater, grade)
        except ValueError as err:
            raise JudgingError(str(err)) from err

    def grades(self, session_name: str, qid: str, rater: str) -> dict[str, int | None]:
        session = self.session(session_name, rater)
        entry = self._entry(session, qid)
        return {j.doc_id: j.grade for j in self.store.judgments(session.id, [entry.query_id], rater=rater)}

    def progress(self, session_name: str, rater: str) -> Progress:
        session = self.session(session_name, rater)
        entries = self.store.session_queries(session.id)
        pooled: dict[str, set[str]] = {entry.qid: set() for entry in entries}
        for row in self.store.shown(session.id):
            pooled[row.qid].add(row.doc_id)
        qid_of = {entry.query_id: entry.qid for entry in entries}
        judged: dict[str, set[str]] = {qid: set() for qid in pooled}
        for j in self.store.judgments(session.id, rater=rater):
            if j.query_id in qid_of and j.doc_id in pooled[qid_of[j.query_id]]:
                judged[qid_of[j.query_id]].add(j.doc_id)
        return Progress(
            queries=len(entries),
            queries_done=sum(1 for qid, docs in pooled.items() if docs and docs <= judged[qid]),
            docs=sum(len(docs) for docs in pooled.values()),
            docs_judged=sum(len(docs) for docs in judged.values()),
        )

    def session_data(self, session_name: str, rater: str) -> SessionData:
        """Everything analysis and exports need: the rankings shown and the session's judgments, people's
        and imported ones (each import source a rater of its own, titled by name and date)."""
        session = self.session(session_name, rater)
        entries = self.store.session_queries(session.id)
        qid_of = {entry.query_id: entry.qid for entry in entries}
        judged = [
            Judged(qid_of[j.query_id], j.doc_id, j.rater, j.grade, j.updated_at.isoformat())
            for j in self.store.judgments(session.id)
            if j.query_id in qid_of
        ]
        return SessionData(
            session.name,
            session.k,
            session.retrievers,
            tuple(e.qid for e in entries),
            {e.qid: e.text or f"(image {e.image_sha[:10]})" for e in entries},
            tuple(self.store.shown(session.id)),
            tuple(judged),
            {source.rater: source.title for source in self.store.imports(session.id)},
        )
