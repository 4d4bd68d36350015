"""Files read into a judging session: query lists and existing TREC qrels.

Query file format (UTF-8), one query per line; blank lines and lines starting with ``#`` are skipped:

    img-000002<TAB>100 Japanese yen.      a qid, a TAB, the query (the benchmark's queries.tsv)
    a red flower                          or just the query; the session names it q<position>

A qrels file (``qid 0 doc_id grade``, grades 0-3) comes with the queries file that maps its qids to
query texts (the benchmark's ``<split>.qrels`` with ``<split>.queries.tsv``). The session's owner imports
it into the session: its queries are added (and pooled) like typed ones, and its grades become a new
import source of the session, named and dated, whose rater is ``import:<source id>``. A second file of the
same name is a second source, never an overwrite; the analysis scores each source apart from the people.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mmr.corpus.splits import read_qrels, read_queries
from mmr.judging.sessions import JudgingError, JudgingService
from mmr.limits import MAX_IMPORT_JUDGMENTS, MAX_IMPORT_LABEL_CHARS, LimitError, checked_text
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
    source: str  # the import's title: its name and date
    rater: str  # import:<source id>, as the judgments are stored
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
    session_name: str,
    rater: str,
    label: str | None = None,
) -> ImportResult:
    """Import a qrels file into a session as a new source (named ``label``, by default the file's name),
    adding its queries to the session (pooled like typed ones). Only the session's owner may."""
    qrels_path, queries_path = Path(qrels_path), Path(queries_path)
    session = service.owned(session_name, rater, "import judgments")
    try:
        label = checked_text(label or qrels_path.name, "the import's name", MAX_IMPORT_LABEL_CHARS)
    except LimitError as err:
        raise JudgingError(f"{err}.") from err
    qrels, queries = _read_qrels(qrels_path, queries_path)
    count = sum(len(docs) for docs in qrels.values())
    if count > MAX_IMPORT_JUDGMENTS:
        raise JudgingError(
            f"{qrels_path.name} has {count:,} judgments; an import holds at most {MAX_IMPORT_JUDGMENTS:,}"
        )
    keys = {}
    for qid in qrels:
        try:
            keys[qid] = prepare_query(queries[qid], None, service.uploads_dir).query
        except QueryInputError as err:
            raise JudgingError(f"query {qid!r} of {queries_path.name}: {err}") from err
    corpus = service.search.collections[session.collection]
    before = service.store.query_count(session.id)
    service.add_texts(session, [(qid, queries[qid]) for qid in qrels])
    added = service.store.query_count(session.id) - before
    ids = service.store.query_ids((query.key, query.text) for query in keys.values())
    rows = [(ids[keys[qid].key], doc_id, grade) for qid, docs in qrels.items() for doc_id, grade in docs.items()]
    source = service.store.add_import(session.id, label, qrels_path.name, rater, rows)
    unknown = sum(doc_id not in corpus for docs in qrels.values() for doc_id in docs)
    return ImportResult(source.title, source.rater, len(rows), len(qrels), unknown, added)
