"""RatingStore: the one door to the ratings database.

SQLite in WAL mode so that readers (the analysis tab) never block raters, a busy timeout so that
concurrent writers wait instead of failing, and one committed transaction per rating so that a
restart loses nothing that was acknowledged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import create_engine, event, select
from sqlalchemy.engine import Engine
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from mmr.store.schema import SCHEMA_VERSION, Base, QueryRecord, Rating, SchemaInfo, utcnow

GRADES = (0, 1, 2, 3)


class SchemaVersionError(RuntimeError):
    pass


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


def _sqlite_engine(db_path: Path) -> Engine:
    db_path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(f"sqlite:///{db_path}", connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")  # with WAL: durable across process crashes
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine


class RatingStore:
    def __init__(self, db_path: Path):
        self.db_path = Path(db_path)
        self.engine = _sqlite_engine(self.db_path)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._initialise()

    def _initialise(self) -> None:
        Base.metadata.create_all(self.engine)
        with self._sessions.begin() as session:
            info = session.get(SchemaInfo, 1)
            if info is None:
                session.add(SchemaInfo(id=1, version=SCHEMA_VERSION))
            elif info.version != SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"{self.db_path} has schema version {info.version}, this code expects {SCHEMA_VERSION}; "
                    "migrate it with `python -m mmr db-upgrade` or point MMR_DB at a new file"
                )

    def query_id(self, key: str, text: str | None = None, image_sha: str | None = None,
                 image_path: str | None = None) -> int:
        """Id of the query with this key, created on first sight (atomically, across processes)."""
        insert = (
            sqlite_insert(QueryRecord)
            .values(key=key, text=text, image_sha=image_sha, image_path=image_path, created_at=utcnow())
            .on_conflict_do_nothing(index_elements=["key"])
        )
        with self._sessions.begin() as session:
            session.execute(insert)
            return session.scalar(select(QueryRecord.id).where(QueryRecord.key == key))

    def add_rating(self, *, session_id: str, query_key: str, retriever: str, doc_id: str, rank: int,
                   score: float, grade: int, collection: str, rater: str | None = None,
                   query_text: str | None = None, image_sha: str | None = None,
                   image_path: str | None = None) -> int:
        if grade not in GRADES:
            raise ValueError(f"grade must be one of {GRADES}, got {grade!r}")
        qid = self.query_id(query_key, query_text, image_sha, image_path)
        with self._sessions.begin() as session:
            rating = Rating(session_id=session_id, rater=rater, query_id=qid, collection=collection,
                            retriever=retriever, doc_id=doc_id, rank=int(rank), score=float(score),
                            grade=int(grade))
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
            RatingRow(r.id, r.created_at, r.session_id, r.rater, q.key, q.text, q.image_sha, r.collection,
                      r.retriever, r.doc_id, r.rank, r.score, r.grade)
            for r, q in rows
        ]

    def count(self) -> int:
        with Session(self.engine) as session:
            return len(session.scalars(select(Rating.id)).all())

    def close(self) -> None:
        self.engine.dispose()
