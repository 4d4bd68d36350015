"""What the judgment store hands out: plain frozen records, never the ORM rows they are read from (a row
outlives its database session only as a detached object; a record is safe to keep and to pass around).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mmr.store.schema import ImportSource, JudgingSession, QueryRecord, SessionQuery

IMPORT_PREFIX = "import:"  # the rater of an import source's judgments is import:<source id>


@dataclass(frozen=True)
class SessionInfo:
    id: int
    name: str
    collection: str
    retrievers: tuple[str, ...]
    k: int
    seed: str
    created_at: datetime
    owner: str | None
    join_code: str


@dataclass(frozen=True)
class ImportInfo:
    id: int
    label: str
    file_name: str
    created_by: str | None
    created_at: datetime
    judgments: int

    @property
    def rater(self) -> str:
        return f"{IMPORT_PREFIX}{self.id}"

    @property
    def title(self) -> str:
        return f"{self.label} (imported {self.created_at:%Y-%m-%d %H:%M})"


@dataclass(frozen=True)
class SessionQueryInfo:
    id: int
    session_id: int
    position: int
    qid: str
    query_id: int
    query_key: str
    text: str | None
    image_sha: str | None
    image_path: str | None


@dataclass(frozen=True)
class ShownRow:
    qid: str
    retriever: str
    rank: int
    doc_id: str
    score: float


@dataclass(frozen=True)
class JudgmentRow:
    id: int
    query_id: int
    query_key: str
    doc_id: str
    rater: str
    grade: int | None  # None: could not judge
    session_id: int
    updated_at: datetime


def session_info(row: JudgingSession) -> SessionInfo:
    return SessionInfo(
        row.id,
        row.name,
        row.collection,
        tuple(row.retrievers.split(",")),
        row.k,
        row.seed,
        row.created_at,
        row.owner,
        row.join_code or "",
    )


def import_info(row: ImportSource) -> ImportInfo:
    return ImportInfo(row.id, row.label, row.file_name, row.created_by, row.created_at, row.judgments)


def query_info(entry: SessionQuery, query: QueryRecord) -> SessionQueryInfo:
    return SessionQueryInfo(
        entry.id,
        entry.session_id,
        entry.position,
        entry.qid,
        query.id,
        query.key,
        query.text,
        query.image_sha,
        query.image_path,
    )
