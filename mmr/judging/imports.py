"""Files read into a judging session: query lists and existing TREC qrels.

Query file format (UTF-8), one query per line; blank lines and lines starting with ``#`` are skipped:

    img-000002<TAB>100 Japanese yen.      a qid, a TAB, the query (the benchmark's queries.tsv)
    a red flower                          or just the query; the session names it q<position>

A qrels file (``qid 0 doc_id grade``, grades 0-3) comes with the queries file that maps its qids to
query texts (the benchmark's ``<split>.qrels`` with ``<split>.queries.tsv``). Its grades are stored as
judgments of a rater named ``import:<qrels file name>``, on the same queries typed ones resolve to, so
offline benchmark judgments and human ones sit side by side in one analysis.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mmr.corpus.splits import read_qrels, read_queries
from mmr.judging.sessions import IMPORT_PREFIX, JudgingError, JudgingService
from mmr.queries import QueryInputError, prepare_query
from mmr.store.schema import GRADES


def parse_query_lines(text: str) -> list[tuple[str | None, str]]:
    """(qid or None, query text) per non-empty line, in the format above."""
    entries = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        qid, tab, query = line.partition("\t")
        entries.append((qid.strip() or None, query.strip()) if tab else (None, line.strip()))
    return [(qid, query) for qid, query in entries if query]


def read_query_file(path: str | Path) -> list[tuple[str | None, str]]:
    try:
        return parse_query_lines(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise JudgingError(f"{Path(path).name} is not UTF-8 text: save it as UTF-8 and upload it again") from err


@dataclass(frozen=True)
class ImportResult:
    rater: str
    judgments: int
    queries: int
    unknown_docs: int  # judged documents the session's collection does not hold
    added_to_session: int


def _read_qrels(qrels_path: Path, queries_path: Path) -> tuple[dict[str, dict[str, int]], dict[str, str]]:
    try:
        qrels, queries = read_qrels(qrels_path), read_queries(queries_path)
    except (ValueError, UnicodeDecodeError) as err:
        raise JudgingError(f"{qrels_path.name}: not a TREC qrels file (`qid 0 doc_id grade` per line): {err}") from err
    missing = sorted(set(qrels) - set(queries))
    if missing:
        raise JudgingError(f"{len(missing)} qid(s) of {qrels_path.name} are not in {queries_path.name}: {missing[:5]}")
    bad = sorted({g for docs in qrels.values() for g in docs.values()} - set(GRADES))
    if bad:
        raise JudgingError(f"{qrels_path.name} has grades {bad}; judgments are graded {GRADES}")
    return qrels, queries


def import_qrels(
    service: JudgingService,
    qrels_path: str | Path,
    queries_path: str | Path,
    rater: str | None = None,
    session_name: str | None = None,
) -> ImportResult:
    """Store a qrels file as judgments of ``rater`` (default ``import:<file name>``); with a session,
    also add its queries to that session (pooled like typed ones) so the analysis covers them."""
    qrels_path, queries_path = Path(qrels_path), Path(queries_path)
    rater = rater or f"{IMPORT_PREFIX}{qrels_path.name}"
    if not rater.startswith(IMPORT_PREFIX):
        rater = IMPORT_PREFIX + rater
    qrels, queries = _read_qrels(qrels_path, queries_path)
    keys = {}
    for qid in qrels:
        try:
            keys[qid] = prepare_query(queries[qid], None, service.uploads_dir).query
        except QueryInputError as err:
            raise JudgingError(f"query {qid!r} of {queries_path.name}: {err}") from err
    ids = service.store.query_ids((query.key, query.text) for query in keys.values())
    rows = [(ids[keys[qid].key], doc_id, rater, grade) for qid, docs in qrels.items() for doc_id, grade in docs.items()]
    service.store.upsert_many(rows)
    unknown, added = 0, 0
    if session_name:
        session = service.session(session_name)
        corpus = service.search.collections[session.collection]
        unknown = sum(doc_id not in corpus for docs in qrels.values() for doc_id in docs)
        before = len(service.queries(session_name))
        service.add_text_queries(session_name, [(qid, queries[qid]) for qid in qrels])
        added = len(service.queries(session_name)) - before
    return ImportResult(rater, len(rows), len(qrels), unknown, added)
