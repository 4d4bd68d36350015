"""Tables. The schema version is recorded in the database and upgraded at start (migrations.py).

v1: schema_info, queries, ratings (the Search tab: one row per grade given to a shown result).
v2: judging_sessions, session_queries, shown_documents, judgments (blind pooled judging).
v3: raters (a name bound to a browser token, or a signed-in account), session owners, members and join codes,
    import sources; a judgment belongs to its session (imports included), so no session's grades reach another's.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from mmr.limits import MAX_QUERY_CHARS, MAX_QUERY_KEY_CHARS, checked_text

SCHEMA_VERSION = 3
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
    checked_text(key, "a query key", MAX_QUERY_KEY_CHARS)
    if text is not None:
        checked_text(text, "the query text", MAX_QUERY_CHARS, required=False)
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


class RaterRecord(Base):
    """Who may write under a name: a local name is bound to the sha256 of a token its browser keeps
    (``kind`` "local"); a signed-in account ("hf:<user>") has no token, the sign-in proves it."""

    __tablename__ = "raters"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    token_sha: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class JudgingSession(Base):
    """A named set of queries judged blind over the pooled top ``k`` of fixed ``retrievers``; its owner
    adds queries, imports and exports, and shares ``join_code`` with the raters it invites."""

    __tablename__ = "judging_sessions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    collection: Mapped[str] = mapped_column(String(64))
    retrievers: Mapped[str] = mapped_column(Text)  # comma-separated, in the order chosen
    k: Mapped[int] = mapped_column(Integer)
    seed: Mapped[str] = mapped_column(String(32))  # every pool's shuffle derives from it
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    owner: Mapped[str | None] = mapped_column(String(64))  # NULL: made before sessions had owners
    join_code: Mapped[str | None] = mapped_column(String(32), index=True)


class SessionMember(Base):
    __tablename__ = "session_members"
    __table_args__ = (UniqueConstraint("session_id", "rater"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("judging_sessions.id"), index=True)
    rater: Mapped[str] = mapped_column(String(64))
    joined_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ImportSource(Base):
    """One file of judgments read into a session; its judgments are stored under the rater
    ``import:<id>``, so a later file of the same name is another source, never an overwrite."""

    __tablename__ = "import_sources"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("judging_sessions.id"), index=True)
    label: Mapped[str] = mapped_column(String(128))
    file_name: Mapped[str] = mapped_column(String(256))
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    judgments: Mapped[int] = mapped_column(Integer, default=0)


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
    """A rater's grade of a document for a query in a session: one row per (session, query, doc, rater),
    re-grading replaces it. ``grade`` NULL means the rater looked and could not judge."""

    __tablename__ = "judgments"
    __table_args__ = (UniqueConstraint("session_id", "query_id", "doc_id", "rater"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    query_id: Mapped[int] = mapped_column(ForeignKey("queries.id"), index=True)
    doc_id: Mapped[str] = mapped_column(String(512))
    rater: Mapped[str] = mapped_column(String(128))
    grade: Mapped[int | None] = mapped_column(Integer)
    session_id: Mapped[int] = mapped_column(ForeignKey("judging_sessions.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


V3_NEW_TABLES = ("raters", "session_members", "import_sources")
