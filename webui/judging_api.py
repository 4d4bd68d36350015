"""Programmatic endpoints of blind judging (gradio_client, scripts, tests): the calls the Judge and
Analysis tabs make, answering JSON. A request the service refuses answers {"error": message}."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import asdict

import gradio as gr

from mmr.judging import JudgingService, analyse, parse_query_lines
from mmr.judging.exports import judgments_csv, qrels_text, run_text
from mmr.judging.sessions import MAX_K, MAX_RETRIEVERS, MIN_RETRIEVERS
from mmr.store.schema import GRADES
from webui.context import AppResources

CANT_JUDGE = "x"


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else value  # JSON has no NaN


def _grade(value: str | int | None) -> int | None:
    text = str(value).strip().lower()
    if text in (CANT_JUDGE, "none", "can't judge"):
        return None
    if text not in {str(g) for g in GRADES}:
        raise ValueError(f"grade must be one of {list(GRADES)} or {CANT_JUDGE!r} (can't judge), got {value!r}")
    return int(text)


def _analysis_json(judging: JudgingService, session: str, rel: int, raters: list[str] | None) -> dict:
    data = judging.session_data(session)
    analysis = analyse(data, int(rel), raters)
    agreement = analysis.agreement
    return {
        "k": analysis.k,
        "rel": analysis.rel,
        "raters": list(analysis.raters),
        "metrics": list(analysis.metric_names),
        "means": {r: {m: _finite(v) for m, v in means.items()} for r, means in analysis.means.items()},
        "per_query": analysis.per_query,
        "evaluated": list(analysis.evaluated),
        "disagreements": [asdict(n) for n in analysis.disagreements],
        "all_fail": [asdict(n) for n in analysis.all_fail],
        "agreement": {
            "raters": list(agreement.raters),
            "items": agreement.items,
            "kappa": None if agreement.kappa is None else _finite(agreement.kappa),
            "alpha": None if agreement.alpha is None else _finite(agreement.alpha),
            "pairwise": [
                {"raters": list(pair), "kappa": _finite(k), "items": n} for pair, (k, n) in agreement.pairwise.items()
            ],
        },
        "qrels": analysis.qrels,
    }


def _refusals_as_json(endpoint: Callable[..., dict]) -> Callable[..., dict]:
    @functools.wraps(endpoint)
    def answer(*args, **kwargs) -> dict:
        try:
            return endpoint(*args, **kwargs)
        except ValueError as err:  # JudgingError, QueryInputError: messages meant for the caller
            return {"error": str(err)}

    return answer


class JudgingEndpoints:
    """One method per endpoint, registered under its own name."""

    def __init__(self, resources: AppResources, judging: JudgingService):
        self.resources = resources
        self.judging = judging

    def judging_options(self) -> dict:
        """Collections with their loaded retrievers, the limits on a session, and the existing sessions."""
        service = self.resources.service
        return {
            "collections": {c: service.available(c) for c in service.collections},
            "retrievers": [MIN_RETRIEVERS, MAX_RETRIEVERS],
            "max_k": MAX_K,
            "grades": [*GRADES, CANT_JUDGE],
            "sessions": self.judging.session_names(),
        }

    @_refusals_as_json
    def judging_create_session(self, name: str, collection: str, retrievers: list[str], k: int = 5) -> dict:
        """Create a named session judging the pooled top k of 2-6 retrievers."""
        info = self.judging.create_session(name, collection, retrievers, int(k))
        return {"session": info.name, "collection": info.collection, "retrievers": list(info.retrievers), "k": info.k}

    @_refusals_as_json
    def judging_add_queries(self, session: str, queries: str) -> dict:
        """Add queries (one per line, or qid<TAB>text per line) to a session and pool them."""
        added = self.judging.add_text_queries(session, parse_query_lines(queries))
        return {"added": [{"qid": q.qid, "position": q.position, "text": q.text} for q in added]}

    @_refusals_as_json
    def judging_pool(self, session: str, qid: str, rater: str = "") -> dict:
        """A query's pool as a rater sees it (shuffled, no retriever, rank or score), with the rater's grades."""
        view = self.judging.blind_query(session, qid)
        grades = self.judging.grades(session, qid, rater) if rater.strip() else {}
        return {**asdict(view), "grades": {doc: CANT_JUDGE if g is None else g for doc, g in grades.items()}}

    @_refusals_as_json
    def judging_submit(self, session: str, qid: str, doc_id: str, rater: str, grade: str) -> dict:
        """Store (or replace) one grade: "0"-"3", or "x" for can't judge. Safe to retry."""
        return {"judgment_id": self.judging.judge(session, qid, doc_id, rater, _grade(grade))}

    @_refusals_as_json
    def judging_analysis(self, session: str, rel: int = 2, raters: list[str] | None = None) -> dict:
        """The Analysis tab's numbers: means and per-query metrics, hard queries, agreement, the qrels used."""
        return _analysis_json(self.judging, session, rel, raters or None)

    @_refusals_as_json
    def judging_exports(self, session: str, rel: int = 2, raters: list[str] | None = None) -> dict:
        """The export files' contents: {"qrels": text, "runs": {retriever: text}, "judgments_csv": text}."""
        data = self.judging.session_data(session)
        analysis = analyse(data, int(rel), raters or None)
        return {
            "qrels": qrels_text(analysis.qrels),
            "judgments_csv": judgments_csv(data),
            "runs": {r: run_text(analysis.runs.get(r, {}), r) for r in data.retrievers},
        }


QUEUED = (
    "judging_options",
    "judging_create_session",
    "judging_add_queries",
    "judging_pool",
    "judging_analysis",
    "judging_exports",
)


def register_judging_api(resources: AppResources, judging: JudgingService) -> None:
    endpoints = JudgingEndpoints(resources, judging)
    for name in QUEUED:
        gr.api(getattr(endpoints, name), api_name=name)
    # One short transaction per grade: the queue's extra round trips would cost more than the write itself.
    gr.api(endpoints.judging_submit, api_name="judging_submit", queue=False)
