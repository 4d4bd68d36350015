"""JudgmentStore: judging sessions with their owners and members, the rankings each pool was built
from, the import sources, and the judgments.

A judgment is keyed by (session, query, doc, rater) and written with an upsert: re-grading replaces
the grade, and a client that retries after a lost answer (a restart, a dropped connection) writes the
same row again instead of a second one. Every write is one committed transaction. Who may do what
is the judging service's to decide (mmr.judging.sessions); the store checks sizes and shapes.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection, Iterable

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from mmr.limits import MAX_DOC_ID_CHARS, MAX_IMPORT_LABEL_CHARS, MAX_SESSION_NAME_CHARS, checked_text
from mmr.store.database import writer
from mmr.store.records import (
    IMPORT_PREFIX,
    ImportInfo,
    JudgmentRow,
    SessionInfo,
    SessionQueryInfo,
    ShownRow,
    import_info,
    query_info,
    session_info,
)
from mmr.store.schema import (
    GRADES,
    ImportSource,
    JudgingSession,
    Judgment,
    QueryRecord,
    SessionMember,
    SessionQuery,
    ShownDocument,
    ensure_query,
    utcnow,
)


class SessionExistsError(ValueError):
    pass


def check_grade(grade: int | None) -> int | None:
    if grade is not None and (isinstance(grade, bool) or grade not in GRADES or not isinstance(grade, int)):
        raise ValueError(f"grade must be one of {GRADES} or None (can't judge), got {grade!r}")
    return grade


def _upsert(session: Session, query_id: int, doc_id: str, rater: str, grade: int | None, session_id: int) -> int:
    checked_text(doc_id, "a document id", MAX_DOC_ID_CHARS)
    checked_text(rater, "a rater name", 64)
    now = utcnow()
    statement = sqlite_insert(Judgment).values(
        query_id=query_id,
        doc_id=doc_id,
        rater=rater,
        grade=grade,
        session_id=session_id,
        created_at=now,
        updated_at=now,
    )
    statement = statement.on_conflict_do_update(
        index_elements=["session_id", "query_id", "doc_id", "rater"],
        set_={"grade": statement.excluded.grade, "updated_at": statement.excluded.updated_at},
    ).returning(Judgment.id)
    return session.scalar(statement)


class JudgmentStore:
    def __init__(self, engine: Engine):
        self._read = sessionmaker(engine)
        self._write = sessionmaker(writer(engine), expire_on_commit=False)

    # ----------------------------------------------------------------------------- sessions

    def create_session(
        self, name: str, collection: str, retrievers: Iterable[str], k: int, seed: str, owner: str | None
    ) -> SessionInfo:
        """A new session; its owner is its first member."""
        name = checked_text(name, "the session name", MAX_SESSION_NAME_CHARS)
        with self._write.begin() as session:
            if session.scalar(select(JudgingSession.id).where(JudgingSession.name == name)) is not None:
                raise SessionExistsError(f"a session named {name!r} exists already; pick another name")
            row = JudgingSession(
                name=name,
                collection=collection,
                retrievers=",".join(retrievers),
                k=int(k),
                seed=seed,
                created_at=utcnow(),
                owner=owner,
                join_code=secrets.token_urlsafe(12),
            )
            session.add(row)
            session.flush()
            if owner:
                session.add(SessionMember(session_id=row.id, rater=owner, joined_at=utcnow()))
            return session_info(row)

    def session(self, name: str) -> SessionInfo | None:
        with self._read() as session:
            row = session.scalar(select(JudgingSession).where(JudgingSession.name == name))
            return session_info(row) if row else None

    def session_by_code(self, join_code: str) -> SessionInfo | None:
        if not join_code:
            return None
        with self._read() as session:
            row = session.scalar(select(JudgingSession).where(JudgingSession.join_code == join_code))
            return session_info(row) if row else None

    def sessions(self, member: str | None = None) -> list[SessionInfo]:
        """Every session, or those ``member`` belongs to."""
        statement = select(JudgingSession).order_by(JudgingSession.id)
        if member is not None:
            statement = statement.join(SessionMember, SessionMember.session_id == JudgingSession.id).where(
                SessionMember.rater == member
            )
        with self._read() as session:
            return [session_info(row) for row in session.scalars(statement)]

    def owned_count(self, owner: str) -> int:
        with self._read() as session:
            return session.scalar(select(func.count(JudgingSession.id)).where(JudgingSession.owner == owner))

    def add_member(self, session_id: int, rater: str) -> None:
        with self._write.begin() as session:
            session.execute(
                sqlite_insert(SessionMember)
                .values(session_id=session_id, rater=rater, joined_at=utcnow())
                .on_conflict_do_nothing(index_elements=["session_id", "rater"])
            )

    def set_owner(self, session_id: int, owner: str) -> None:
        """Hand a session on (the administrator's door, ``mmr sessions --give``); the owner is a member."""
        with self._write.begin() as session:
            session.get(JudgingSession, session_id).owner = owner
        self.add_member(session_id, owner)

    def is_member(self, session_id: int, rater: str) -> bool:
        with self._read() as session:
            return (
                session.scalar(
                    select(SessionMember.id).where(SessionMember.session_id == session_id, SessionMember.rater == rater)
                )
                is not None
            )

    def members(self, session_id: int) -> list[str]:
        with self._read() as session:
            statement = select(SessionMember.rater).where(SessionMember.session_id == session_id)
            return list(session.scalars(statement.order_by(SessionMember.id)))

    def delete_session(self, session_id: int) -> None:
        """The session and everything in it: queries' places, pools, judgments, members, imports."""
        with self._write.begin() as session:
            entries = select(SessionQuery.id).where(SessionQuery.session_id == session_id)
            session.execute(delete(ShownDocument).where(ShownDocument.session_query_id.in_(entries)))
            for table in (Judgment, SessionQuery, SessionMember, ImportSource):
                session.execute(delete(table).where(table.session_id == session_id))
            session.execute(delete(JudgingSession).where(JudgingSession.id == session_id))

    # ------------------------------------------------------------------------------ imports

    def add_import(
        self,
        session_id: int,
        label: str,
        file_name: str,
        created_by: str | None,
        rows: Iterable[tuple[int, str, int | None]],
    ) -> ImportInfo:
        """A new import source of the session with its (query_id, doc_id, grade) rows, in one transaction."""
        label = checked_text(label, "the import's name", MAX_IMPORT_LABEL_CHARS)
        rows = [(q, d, check_grade(g)) for q, d, g in rows]
        with self._write.begin() as session:
            source = ImportSource(
                session_id=session_id,
                label=label,
                file_name=file_name[:256],
                created_by=created_by,
                created_at=utcnow(),
                judgments=len(rows),
            )
            session.add(source)
            session.flush()
            for query_id, doc_id, grade in rows:
                _upsert(session, query_id, doc_id, f"{IMPORT_PREFIX}{source.id}", grade, session_id)
            return import_info(source)

    def imports(self, session_id: int) -> list[ImportInfo]:
        with self._read() as session:
            statement = select(ImportSource).where(ImportSource.session_id == session_id).order_by(ImportSource.id)
            return [import_info(row) for row in session.scalars(statement)]

    # ------------------------------------------------------------------------------ queries

    def add_query(
        self,
        session_id: int,
        key: str,
        text: str | None = None,
        image_sha: str | None = None,
        image_path: str | None = None,
        qid: str | None = None,
    ) -> tuple[SessionQueryInfo, bool]:
        """Append a query to a session; returns it and whether it was new (a query is in a session once)."""
        if qid is not None:
            qid = checked_text(qid, "a qid", 128)
        with self._write.begin() as session:
            query_id = ensure_query(session, key, text, image_sha, image_path)
            query = session.get(QueryRecord, query_id)
            existing = session.scalar(
                select(SessionQuery).where(SessionQuery.session_id == session_id, SessionQuery.query_id == query_id)
            )
            if existing is not None:
                return query_info(existing, query), False
            taken = set(session.scalars(select(SessionQuery.qid).where(SessionQuery.session_id == session_id)))
            if qid in taken:
                raise ValueError(f"qid {qid!r} already names another query of this session")
            position = 1 + session.scalar(
                select(func.coalesce(func.max(SessionQuery.position), 0)).where(SessionQuery.session_id == session_id)
            )
            number = position
            while not qid:
                qid = f"q{number}" if f"q{number}" not in taken else None
                number += 1
            entry = SessionQuery(session_id=session_id, query_id=query_id, position=position, qid=qid)
            session.add(entry)
            session.flush()
            return query_info(entry, query), True

    def query_count(self, session_id: int) -> int:
        with self._read() as session:
            return session.scalar(select(func.count(SessionQuery.id)).where(SessionQuery.session_id == session_id))

    def session_queries(self, session_id: int) -> list[SessionQueryInfo]:
        statement = (
            select(SessionQuery, QueryRecord)
            .join(QueryRecord, SessionQuery.query_id == QueryRecord.id)
            .where(SessionQuery.session_id == session_id)
            .order_by(SessionQuery.position)
        )
        with self._read() as session:
            return [query_info(entry, query) for entry, query in session.execute(statement)]

    # ------------------------------------------------------------------------- shown rankings

    def save_shown(self, session_query_id: int, hits: Iterable[tuple[str, int, str, float]]) -> None:
        """Keep (retriever, rank, doc_id, score) rows; the first pool saved for a query stays."""
        rows = [
            {
                "session_query_id": session_query_id,
                "retriever": r,
                "rank": int(rank),
                "doc_id": d,
                "score": float(score),
            }
            for r, rank, d, score in hits
        ]
        if not rows:
            return
        with self._write.begin() as session:
            if session.scalar(select(ShownDocument.id).where(ShownDocument.session_query_id == session_query_id)):
                return  # another rater built this pool first: theirs is the one everybody judges
            session.execute(sqlite_insert(ShownDocument).values(rows).on_conflict_do_nothing())

    def shown(self, session_id: int, session_query_id: int | None = None) -> list[ShownRow]:
        """The kept rankings of a session (or of one of its queries), by query, retriever and rank."""
        statement = (
            select(SessionQuery.qid, ShownDocument)
            .join(ShownDocument, ShownDocument.session_query_id == SessionQuery.id)
            .where(SessionQuery.session_id == session_id)
            .order_by(SessionQuery.position, ShownDocument.retriever, ShownDocument.rank)
        )
        if session_query_id is not None:
            statement = statement.where(SessionQuery.id == session_query_id)
        with self._read() as session:
            return [
                ShownRow(qid, row.retriever, row.rank, row.doc_id, row.score) for qid, row in session.execute(statement)
            ]

    # ----------------------------------------------------------------------------- judgments

    def upsert(self, session_id: int, query_id: int, doc_id: str, rater: str, grade: int | None) -> int:
        """Store ``rater``'s grade of ``doc_id`` for the query in the session (None: can't judge); returns its id."""
        if not rater:
            raise ValueError("a judgment needs a rater")
        check_grade(grade)
        with self._write.begin() as session:
            return _upsert(session, query_id, doc_id, rater, grade, session_id)

    def query_ids(self, keys: Iterable[tuple[str, str | None]]) -> dict[str, int]:
        """key -> id for (key, text) pairs, creating the queries not seen before."""
        with self._write.begin() as session:
            return {key: ensure_query(session, key, text) for key, text in keys}

    def judgments(
        self, session_id: int, query_ids: Collection[int] | None = None, rater: str | None = None
    ) -> list[JudgmentRow]:
        """The session's judgments (of some queries, or one rater's)."""
        statement = (
            select(Judgment, QueryRecord.key)
            .join(QueryRecord, Judgment.query_id == QueryRecord.id)
            .where(Judgment.session_id == session_id)
        )
        if query_ids is not None:
            statement = statement.where(Judgment.query_id.in_(list(query_ids)))
        if rater is not None:
            statement = statement.where(Judgment.rater == rater)
        with self._read() as session:
            return [
                JudgmentRow(j.id, j.query_id, key, j.doc_id, j.rater, j.grade, j.session_id, j.updated_at)
                for j, key in session.execute(statement.order_by(Judgment.id))
            ]

    def count(self) -> int:
        with self._read() as session:
            return session.scalar(select(func.count(Judgment.id)))
