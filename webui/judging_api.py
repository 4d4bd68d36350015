"""Programmatic endpoints of blind judging (gradio_client, scripts, tests): the calls the Judge and
Analysis tabs make, answering JSON. A request the service refuses answers {"error": message}.

Every call that reads or writes a session says who makes it: locally a rater name with the token
``/claim_rater`` returned for it; where raters sign in (a Space), the signed-in account, and the name
and token are ignored. The judging service then checks membership and ownership.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import asdict

import gradio as gr

from mmr.judging import JudgingService, analyse, parse_query_lines
from mmr.judging.exports import judgments_csv, qrels_text, run_text
from mmr.judging.sessions import MAX_K, MAX_RETRIEVERS, MIN_RETRIEVERS
from mmr.limits import LimitError, checked_int
from mmr.store.raters import new_token
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


def _analysis_json(judging: JudgingService, session: str, rater: str, rel: int, raters: list[str] | None) -> dict:
    data = judging.session_data(session, rater)
    analysis = analyse(data, checked_int(rel, "rel", 1, 3), _chosen(data, raters))
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
        "imports": {
            title: {r: {m: _finite(v) for m, v in means.items()} for r, means in by.items()}
            for title, by in analysis.by_import.items()
        },
        "import_sources": data.imports,
    }


def _chosen(data, raters: list[str] | None) -> list[str] | None:
    """The raters asked for, as stored (an import is asked for by its rater or its title); None: the people."""
    if not raters:
        return None
    if not isinstance(raters, list):
        raise LimitError("raters must be a list of names")
    by_title = {title: rater for rater, title in data.imports.items()}
    return [by_title.get(r, r) for r in raters if isinstance(r, str)][:100]


def _refusals_as_json(endpoint: Callable[..., dict]) -> Callable[..., dict]:
    @functools.wraps(endpoint)
    def answer(*args, **kwargs) -> dict:
        try:
            return endpoint(*args, **kwargs)
        except ValueError as err:  # JudgingError, QueryInputError, LimitError, IdentityError: meant for the caller
            return {"error": str(err)}
        except TypeError:  # a list where a name goes, and the like: nothing of the internals in the answer
            return {"error": "an argument has the wrong type; see the API page for each parameter's type"}

    return answer


class JudgingEndpoints:
    """One method per endpoint, registered under its own name."""

    def __init__(self, resources: AppResources, judging: JudgingService):
        self.resources = resources
        self.judging = judging
        self.identity = resources.identity

    def _rater(self, rater: str, token: str, profile: gr.OAuthProfile | None) -> str:
        return self.identity.api_rater(rater, token, profile)

    @_refusals_as_json
    def claim_rater(self, name: str = "") -> dict:
        """A rater name of your own and the token that proves it (keep it): name "" gives an anonymous one."""
        if self.identity.signs_in:
            return {"error": "raters sign in with Hugging Face here; names cannot be claimed"}
        token = new_token()
        rater = self.identity.raters.claim(name, token) if name else self.identity.raters.claim_anonymous(token)
        return {"rater": rater, "token": token}

    @_refusals_as_json
    def judging_options(self, rater: str = "", token: str = "", profile: gr.OAuthProfile | None = None) -> dict:
        """Collections with their loaded retrievers, the limits on a session, and your sessions."""
        service = self.resources.service
        mine = self.identity.rater({"name": rater, "token": token}, profile)
        return {
            "collections": {c: service.available(c) for c in service.collections},
            "retrievers": [MIN_RETRIEVERS, MAX_RETRIEVERS],
            "max_k": MAX_K,
            "grades": [*GRADES, CANT_JUDGE],
            "sessions": self.judging.session_names(mine),
        }

    @_refusals_as_json
    def judging_create_session(
        self,
        name: str,
        collection: str,
        retrievers: list[str],
        k: int = 5,
        rater: str = "",
        token: str = "",
        profile: gr.OAuthProfile | None = None,
    ) -> dict:
        """Create a session judging the pooled top k of 2-6 retrievers; you own it. Answers its join code."""
        owner = self._rater(rater, token, profile)
        info = self.judging.create_session(name, collection, retrievers, k, owner)
        return {
            "session": info.name,
            "collection": info.collection,
            "retrievers": list(info.retrievers),
            "k": info.k,
            "join_code": info.join_code,
        }

    @_refusals_as_json
    def judging_join(
        self, join_code: str, rater: str = "", token: str = "", profile: gr.OAuthProfile | None = None
    ) -> dict:
        """Join a session with the code its owner gave you."""
        return {"session": self.judging.join(join_code, self._rater(rater, token, profile)).name}

    @_refusals_as_json
    def judging_add_queries(
        self, session: str, queries: str, rater: str = "", token: str = "", profile: gr.OAuthProfile | None = None
    ) -> dict:
        """Add queries (one per line, or qid<TAB>text per line) to a session you own, and pool them."""
        owner = self._rater(rater, token, profile)
        if not isinstance(queries, str):
            raise LimitError("queries must be text, one query per line")
        added = self.judging.add_text_queries(session, parse_query_lines(queries), owner)
        return {"added": [{"qid": q.qid, "position": q.position, "text": q.text} for q in added]}

    @_refusals_as_json
    def judging_pool(
        self, session: str, qid: str, rater: str = "", token: str = "", profile: gr.OAuthProfile | None = None
    ) -> dict:
        """A query's pool as you see it (shuffled, no retriever, rank or score), with your grades."""
        member = self._rater(rater, token, profile)
        view = self.judging.blind_query(session, qid, member)
        grades = self.judging.grades(session, qid, member)
        answer = asdict(view)
        answer["image_query"] = answer.pop("image_path") is not None  # where it is kept is nobody's business
        return {**answer, "grades": {doc: CANT_JUDGE if g is None else g for doc, g in grades.items()}}

    @_refusals_as_json
    def judging_submit(
        self,
        session: str,
        qid: str,
        doc_id: str,
        grade: str,
        rater: str = "",
        token: str = "",
        profile: gr.OAuthProfile | None = None,
    ) -> dict:
        """Store (or replace) one grade of yours: "0"-"3", or "x" for can't judge. Safe to retry."""
        member = self._rater(rater, token, profile)
        return {"judgment_id": self.judging.judge(session, qid, doc_id, member, _grade(grade))}

    @_refusals_as_json
    def judging_analysis(
        self,
        session: str,
        rel: int = 2,
        raters: list[str] | None = None,
        rater: str = "",
        token: str = "",
        profile: gr.OAuthProfile | None = None,
    ) -> dict:
        """The Analysis tab's numbers (members only): means and per-query metrics from the people's grades
        unless ``raters`` says otherwise, each import scored apart, hard queries, agreement, the qrels used."""
        return _analysis_json(self.judging, session, self._rater(rater, token, profile), rel, raters)

    @_refusals_as_json
    def judging_exports(
        self,
        session: str,
        rel: int = 2,
        raters: list[str] | None = None,
        rater: str = "",
        token: str = "",
        profile: gr.OAuthProfile | None = None,
    ) -> dict:
        """The export files (members only): {"qrels": text, "runs": {retriever: text}, "judgments_csv": text}."""
        data = self.judging.session_data(session, self._rater(rater, token, profile))
        analysis = analyse(data, checked_int(rel, "rel", 1, 3), _chosen(data, raters))
        return {
            "qrels": qrels_text(analysis.qrels),
            "judgments_csv": judgments_csv(data),
            "runs": {r: run_text(analysis.runs.get(r, {}), r) for r in data.retrievers},
        }


QUEUED = (
    "judging_options",
    "judging_create_session",
    "judging_join",
    "judging_add_queries",
    "judging_pool",
    "judging_analysis",
    "judging_exports",
)


def register_judging_api(resources: AppResources, judging: JudgingService) -> None:
    endpoints = JudgingEndpoints(resources, judging)
    for name in QUEUED:
        gr.api(getattr(endpoints, name), api_name=name)
    # One short transaction each: the queue's extra round trips would cost more than the write itself.
    gr.api(endpoints.judging_submit, api_name="judging_submit", queue=False)
    gr.api(endpoints.claim_rater, api_name="claim_rater", queue=False)
