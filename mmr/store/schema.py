"""Tables. The schema version is recorded in the database and upgraded at start (migrations.py).

v1: schema_info, queries, ratings (the Search tab: one row per grade given to a shown result).
v2: judging_sessions, session_queries, shown_documents, judgments (blind pooled judging).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

SCHEMA_VERSION = 2
GRADES = (0, 1, 2, 3)  # 0 not relevant, 1 related, 2 relevant, 3 perfect


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class SchemaInfo(Base):
    __tablename__ = "schema_info"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer)


class QueryRecord(Base):
    """A distinct query: its text, or the hash of its image (the image itself is kept on disk)."""

    __tablename__ = "queries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(128), unique=True, index=True)
    text: Mapped[str | None] = mapped_column(Text)
    image_sha: Mapped[str | None] = mapped_column(String(64))
    image_path: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


def ensure_query(
    session: Session, key: str, text: str | None = None, image_sha: str | None = None, image_path: str | None = None
) -> int:
    """Id of the query with this key, created on first sight (atomically, across processes)."""
    session.execute(
        sqlite_insert(QueryRecord)
        .values(key=key, text=text, image_sha=image_sha, image_path=image_path, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["key"])
    )
    return session.scalar(select(QueryRecord.id).where(QueryRecord.key == key))


class Rating(Base):
    """One grade given to one result as it was shown (retriever, rank, score at that moment)."""

    __tablename__ = "ratings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    session_id: Mapped[str] = mapped_column(String(64), index=True)
    rater: Mapped[str | None] = mapped_column(String(128))
    query_id: Mapped[int] = mapped_column(ForeignKey("queries.id"), index=True)
    collection: Mapped[str] = mapped_column(String(64))
    retriever: Mapped[str] = mapped_column(String(64), index=True)
    doc_id: Mapped[str] = mapped_column(String(512))
    rank: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    grade: Mapped[int] = mapped_column(Integer)


# ------------------------------------------------------------------------------- v2: judging


class JudgingSession(Base):
    """A named set of queries judged blind over the pooled top ``k`` of fixed ``retrievers``."""

    __tablename__ = "judging_sessions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    collection: Mapped[str] = mapped_column(String(64))
    retrievers: Mapped[str] = mapped_column(Text)  # comma-separated, in the order chosen
    k: Mapped[int] = mapped_column(Integer)
    seed: Mapped[str] = mapped_column(String(32))  # every pool's shuffle derives from it
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SessionQuery(Base):
    """A query's place in a session; ``qid`` names it in exported qrels and runs."""

    __tablename__ = "session_queries"
    __table_args__ = (
        UniqueConstraint("session_id", "position"),
        UniqueConstraint("session_id", "qid"),
        UniqueConstraint("session_id", "query_id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("judging_sessions.id"), index=True)
    query_id: Mapped[int] = mapped_column(ForeignKey("queries.id"))
    position: Mapped[int] = mapped_column(Integer)  # 1-based
    qid: Mapped[str] = mapped_column(String(128))


class ShownDocument(Base):
    """One retriever's ranking of a session query, frozen when the pool was first built."""

    __tablename__ = "shown_documents"
    __table_args__ = (UniqueConstraint("session_query_id", "retriever", "rank"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_query_id: Mapped[int] = mapped_column(ForeignKey("session_queries.id"), index=True)
    retriever: Mapped[str] = mapped_column(String(64))
    rank: Mapped[int] = mapped_column(Integer)  # 1-based
    doc_id: Mapped[str] = mapped_column(String(512))
    score: Mapped[float] = mapped_column(Float)


class Judgment(Base):
    """A rater's grade of a document for a query: one row per (query, doc, rater), re-grading replaces
    it. ``grade`` NULL means the rater looked and could not judge."""

    __tablename__ = "judgments"
    __table_args__ = (UniqueConstraint("query_id", "doc_id", "rater"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    query_id: Mapped[int] = mapped_column(ForeignKey("queries.id"), index=True)
    doc_id: Mapped[str] = mapped_column(String(512))
    rater: Mapped[str] = mapped_column(String(128))
    grade: Mapped[int | None] = mapped_column(Integer)
    session_id: Mapped[int | None] = mapped_column(ForeignKey("judging_sessions.id"))  # NULL: imported
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


V2_TABLES = ("judging_sessions", "session_queries", "shown_documents", "judgments")
