"""RatingStore: the one door to the ratings database (and, through ``.judgments``, to blind judging).

SQLite in WAL mode so that readers (the analysis tab) never block raters, a busy timeout so that
concurrent writers wait instead of failing, and one committed transaction per rating so that a
restart loses nothing that was acknowledged. The schema is upgraded at open (migrations.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from mmr.limits import MAX_DOC_ID_CHARS, MAX_RANK, MAX_RETRIEVER_CHARS, checked_float, checked_int, checked_text
from mmr.store.database import sqlite_engine, writer
from mmr.store.judgments import JudgmentStore
from mmr.store.migrations import upgrade
from mmr.store.raters import RaterStore
from mmr.store.schema import GRADES, QueryRecord, Rating, ensure_query


@dataclass(frozen=True)
class RatingRow:
    id: int
    created_at: datetime
    session_id: str
    rater: str | None
    query_key: str
    query_text: str | None
    image_sha: str | None
    collection: str
    retriever: str
    doc_id: str
    rank: int
    score: float
    grade: int


class RatingStore:
    def __init__(self, db_path: Path):
        self.db_path = Path(db_path)
        self.engine = sqlite_engine(self.db_path)
        self._sessions = sessionmaker(writer(self.engine), expire_on_commit=False)
        self._initialise()

    def _initialise(self) -> None:
        self.upgraded_from = upgrade(self.engine, self.db_path)

    @cached_property
    def judgments(self) -> JudgmentStore:
        """Blind pooled judging (sessions, pools, judgments) in the same database."""
        return JudgmentStore(self.engine)

    @cached_property
    def raters(self) -> RaterStore:
        """Who may write under which rater name."""
        return RaterStore(self.engine)

    def query_id(
        self, key: str, text: str | None = None, image_sha: str | None = None, image_path: str | None = None
    ) -> int:
        """Id of the query with this key, created on first sight (atomically, across processes)."""
        with self._sessions.begin() as session:
            return ensure_query(session, key, text, image_sha, image_path)

    def add_rating(
        self,
        *,
        session_id: str,
        query_key: str,
        retriever: str,
        doc_id: str,
        rank: int,
        score: float,
        grade: int,
        collection: str,
        rater: str | None = None,
        query_text: str | None = None,
        image_sha: str | None = None,
        image_path: str | None = None,
    ) -> int:
        # Checked as the types they are: a grade of 2.5 is refused, not stored as 2; NaN never reaches SQLite.
        grade = checked_int(grade, "grade", min(GRADES), max(GRADES))
        rank = checked_int(rank, "rank", 1, MAX_RANK)
        score = checked_float(score, "score")
        checked_text(retriever, "the retriever", MAX_RETRIEVER_CHARS)
        checked_text(doc_id, "the document id", MAX_DOC_ID_CHARS)
        checked_text(session_id, "the session id", 64)
        if rater is not None:
            checked_text(rater, "the rater", 64)
        qid = self.query_id(query_key, query_text, image_sha, image_path)
        with self._sessions.begin() as session:
            rating = Rating(
                session_id=session_id,
                rater=rater,
                query_id=qid,
                collection=collection,
                retriever=retriever,
                doc_id=doc_id,
                rank=rank,
                score=score,
                grade=grade,
            )
            session.add(rating)
            session.flush()
            return rating.id

    def ratings(self, retriever: str | None = None) -> list[RatingRow]:
        statement = select(Rating, QueryRecord).join(QueryRecord, Rating.query_id == QueryRecord.id)
        if retriever is not None:
            statement = statement.where(Rating.retriever == retriever)
        with Session(self.engine) as session:
            rows = session.execute(statement.order_by(Rating.id)).all()
        return [
            RatingRow(
                r.id,
                r.created_at,
                r.session_id,
                r.rater,
                q.key,
                q.text,
                q.image_sha,
                r.collection,
                r.retriever,
                r.doc_id,
                r.rank,
                r.score,
                r.grade,
            )
            for r, q in rows
        ]

    def count(self) -> int:
        with Session(self.engine) as session:
            return session.scalar(select(func.count(Rating.id)))

    def close(self) -> None:
        self.engine.dispose()
