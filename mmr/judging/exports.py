"""A session's judgments as files other tools read: TREC qrels, one TREC run per retriever, raw CSV.

The qrels and runs are exactly what ``analysis.analyse`` evaluates, so trec_eval (or ir-measures,
pytrec_eval) on these files gives the numbers the Analysis tab shows.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from mmr.judging.analysis import Analysis, Qrels, Run, SessionData

CSV_COLUMNS = ("qid", "query", "doc_id", "rater", "grade", "cant_judge", "updated_at")


def qrels_text(qrels: Qrels) -> str:
    """``qid 0 doc_id grade`` lines, sorted."""
    return "".join(
        f"{qid} 0 {doc_id} {grade}\n" for qid in sorted(qrels) for doc_id, grade in sorted(qrels[qid].items())
    )


def run_text(run: Run, tag: str) -> str:
    """``qid Q0 doc_id rank score tag`` lines; scores written in full so that the order survives reading."""
    lines = []
    for qid in sorted(run):
        ranked = sorted(run[qid].items(), key=lambda item: (-item[1], item[0]))
        lines.extend(f"{qid} Q0 {doc_id} {rank} {score!r} {tag}\n" for rank, (doc_id, score) in enumerate(ranked, 1))
    return "".join(lines)


def judgments_csv(data: SessionData) -> str:
    """Every judgment of the session's queries, one row per (query, doc, rater), unaggregated."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for j in sorted(data.judgments, key=lambda j: (data.qids.index(j.qid), j.doc_id, j.rater)):
        grade = "" if j.grade is None else j.grade
        writer.writerow(
            [
                j.qid,
                data.query_texts.get(j.qid, ""),
                j.doc_id,
                data.title(j.rater),
                grade,
                int(j.grade is None),
                j.updated_at,
            ]
        )
    return buffer.getvalue()


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "session"


def write_exports(data: SessionData, analysis: Analysis, folder: Path) -> list[Path]:
    """Write ``<session>.qrels``, ``<session>.<retriever>.run`` and ``<session>.judgments.csv``."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = safe_name(data.name)
    files = {f"{stem}.qrels": qrels_text(analysis.qrels)}
    for retriever in data.retrievers:
        files[f"{stem}.{safe_name(retriever)}.run"] = run_text(analysis.runs.get(retriever, {}), retriever)
    files[f"{stem}.judgments.csv"] = judgments_csv(data)
    paths = []
    for name, text in files.items():
        path = folder / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths
