"""Error analysis of a judging session, computed from the stored judgments and rankings alone.

How several raters' grades become one qrel: for each (query, doc), the grades of the chosen raters
("can't judge" left out) are reduced to their LOWER MEDIAN (``statistics.median_low``). It is always
one of the grades given, and a document reaches grade g only if a strict majority of its raters
gave g or more (two raters: both; three: two of them). A (query, doc) no chosen rater graded is
unjudged: trec_eval counts it as not relevant, and ``unjudged`` reports how often that happened.

Metrics are trec_eval's, through ir-measures, on exactly the qrels and runs that ``exports`` writes:
P@k and MRR@k (RR cut at k) count a document relevant at grade >= ``rel``; nDCG@k uses the grades
as gains. Means are over the queries with at least one judgment (the queries in the qrels); a
retriever that returned nothing for such a query scores 0 on it, as in trec_eval.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import combinations

from mmr.store import ShownRow

Qrels = dict[str, dict[str, int]]
Run = dict[str, dict[str, float]]
MAX_LISTED = 10


@dataclass(frozen=True)
class Judged:
    qid: str
    doc_id: str
    rater: str
    grade: int | None  # None: the rater could not judge
    updated_at: str = ""


@dataclass(frozen=True)
class SessionData:
    name: str
    k: int
    retrievers: tuple[str, ...]
    qids: tuple[str, ...]  # in session order
    query_texts: dict[str, str]
    shown: tuple[ShownRow, ...]
    judgments: tuple[Judged, ...]
    imports: dict[str, str] = field(default_factory=dict)  # rater of an import source -> its title

    def raters(self) -> list[str]:
        return sorted({j.rater for j in self.judgments})

    def humans(self) -> list[str]:
        """The raters who are people, not import sources."""
        return [r for r in self.raters() if r not in self.imports]

    def title(self, rater: str) -> str:
        return self.imports.get(rater, rater)


def aggregate_qrels(judgments: Iterable[Judged], raters: Iterable[str] | None = None) -> Qrels:
    """One grade per (query, doc): the lower median of the chosen raters' grades (see the module doc)."""
    chosen = None if raters is None else set(raters)
    grades: dict[tuple[str, str], list[int]] = defaultdict(list)
    for j in judgments:
        if j.grade is not None and (chosen is None or j.rater in chosen):
            grades[(j.qid, j.doc_id)].append(j.grade)
    qrels: Qrels = defaultdict(dict)
    for (qid, doc_id), values in grades.items():
        qrels[qid][doc_id] = int(statistics.median_low(values))
    return dict(qrels)


def runs_from_shown(shown: Iterable[ShownRow]) -> dict[str, Run]:
    """retriever -> qid -> {doc: score}, in the order shown. trec_eval sorts by score (ties by doc id),
    not by rank, so a score that does not fall below the one before is nudged under it: the rebuilt
    run then ranks exactly as the rater's pool was built from."""
    ranked: dict[tuple[str, str], list[ShownRow]] = defaultdict(list)
    for row in shown:
        ranked[(row.retriever, row.qid)].append(row)
    runs: dict[str, Run] = defaultdict(dict)
    for (retriever, qid), rows in ranked.items():
        scores, previous = {}, math.inf
        for row in sorted(rows, key=lambda r: r.rank):
            score = row.score if row.score < previous else previous - 1e-6 * max(1.0, abs(previous))
            scores[row.doc_id] = previous = score
        runs[retriever][qid] = scores
    return dict(runs)


def measures(k: int, rel: int) -> dict[str, object]:
    """Display name -> ir-measures measure."""
    from ir_measures import RR, P, nDCG

    return {f"P@{k}": P(rel=rel) @ k, f"nDCG@{k}": nDCG @ k, f"MRR@{k}": RR(rel=rel) @ k}


def per_query_metrics(qrels: Qrels, run: Run, k: int, rel: int) -> dict[str, dict[str, float]]:
    """metric -> qid -> value, for every query in ``qrels`` (0 where the run has nothing for it)."""
    import ir_measures

    named = measures(k, rel)
    by_measure = {str(m): name for name, m in named.items()}
    values = {name: dict.fromkeys(qrels, 0.0) for name in named}
    if not qrels:
        return values
    filled = {qid: docs for qid, docs in run.items() if docs}
    for metric in ir_measures.iter_calc(list(named.values()), qrels, filled):
        if metric.query_id in qrels:
            values[by_measure[str(metric.measure)]][metric.query_id] = float(metric.value)
    return values


def unjudged_share(qrels: Qrels, run: Run, k: int) -> float:
    """Share of the run's top-k results (over all its queries) that have no qrel."""
    top = [(qid, doc) for qid, docs in run.items() for doc in sorted(docs, key=lambda d: -docs[d])[:k]]
    return sum(doc not in qrels.get(qid, {}) for qid, doc in top) / len(top) if top else float("nan")


# ------------------------------------------------------------------------------- agreement


def cohen_kappa(a: list[int], b: list[int]) -> float:
    """Unweighted Cohen's kappa of two raters' labels on the same items; nan where undefined."""
    if len(a) != len(b):
        raise ValueError("both raters need a label for every item")
    n = len(a)
    if n == 0:
        return float("nan")
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / n
    expected = sum((a.count(c) / n) * (b.count(c) / n) for c in set(a) | set(b))
    return float("nan") if expected == 1 else (observed - expected) / (1 - expected)


def krippendorff_alpha(matrix: list[list[float]]) -> float:
    """Ordinal Krippendorff's alpha, raters x items (nan marks a missing grade); nan where undefined."""
    import krippendorff
    import numpy as np

    data = np.asarray(matrix, dtype=float)
    if data.shape[0] < 2 or data.shape[1] == 0 or len(set(data[~np.isnan(data)].tolist())) < 2:
        return float("nan")  # alpha needs two raters and some variation to compare with
    return float(krippendorff.alpha(reliability_data=data, level_of_measurement="ordinal"))


@dataclass(frozen=True)
class Agreement:
    raters: tuple[str, ...]
    items: int  # (query, doc) pairs every one of ``raters`` graded
    kappa: float | None  # exactly two raters
    alpha: float | None  # two or more raters, on the same items
    pairwise: dict[tuple[str, str], tuple[float, int]] = field(default_factory=dict)  # kappa, items


def agreement(judgments: Iterable[Judged], raters: Iterable[str]) -> Agreement:
    raters = tuple(sorted(set(raters)))
    grades: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for j in judgments:
        if j.grade is not None and j.rater in raters:
            grades[(j.qid, j.doc_id)][j.rater] = j.grade
    if len(raters) < 2:
        return Agreement(raters, 0, None, None)
    common = [item for item, by in grades.items() if len(by) == len(raters)]
    pairwise = {}
    for a, b in combinations(raters, 2):
        both = [by for by in grades.values() if a in by and b in by]
        pairwise[(a, b)] = (cohen_kappa([by[a] for by in both], [by[b] for by in both]), len(both))
    alpha = krippendorff_alpha([[grades[item][r] for item in common] for r in raters])
    kappa = pairwise[raters][0] if len(raters) == 2 else None
    return Agreement(raters, len(common), kappa, alpha, pairwise)


# -------------------------------------------------------------------------------- analysis


@dataclass(frozen=True)
class QueryNote:
    qid: str
    text: str
    values: dict[str, float]  # retriever -> nDCG@k on this query (all_fail: best grade in its top k)


@dataclass(frozen=True)
class Analysis:
    k: int
    rel: int
    raters: tuple[str, ...]
    metric_names: tuple[str, ...]
    means: dict[str, dict[str, float]]  # retriever -> metric -> mean (and "unjudged@k")
    per_query: dict[str, dict[str, dict[str, float]]]  # retriever -> metric -> qid -> value
    evaluated: tuple[str, ...]  # qids with at least one judgment
    disagreements: list[QueryNote]  # largest nDCG spread between retrievers first
    all_fail: list[QueryNote]  # no retriever has a relevant doc in its top k; values: best grade found
    agreement: Agreement
    qrels: Qrels
    runs: dict[str, Run]
    # each import source's qrels alone: title -> retriever -> metric -> mean (not mixed with the people's)
    by_import: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)


def _best_grade(qrels: Qrels, run: Run, qid: str, k: int) -> float:
    docs = run.get(qid, {})
    grades = [qrels[qid][d] for d in sorted(docs, key=lambda d: -docs[d])[:k] if d in qrels.get(qid, {})]
    return float(max(grades)) if grades else float("nan")


def _hard_queries(
    data: SessionData, per_query: dict, qrels: Qrels, runs: dict[str, Run], names: tuple[str, ...]
) -> tuple[list[QueryNote], list[QueryNote]]:
    """(largest nDCG spread between retrievers first, queries on which no retriever found a relevant doc)."""
    precision, ndcg = names[:2]
    evaluated = [qid for qid in data.qids if qid in qrels]
    text = {qid: data.query_texts.get(qid, qid) for qid in evaluated}
    notes = [QueryNote(qid, text[qid], {r: per_query[r][ndcg][qid] for r in data.retrievers}) for qid in evaluated]
    spread = {n.qid: max(n.values.values()) - min(n.values.values()) for n in notes}
    disagreements = sorted((n for n in notes if spread[n.qid] > 0), key=lambda n: -spread[n.qid])[:MAX_LISTED]
    all_fail = [
        QueryNote(qid, text[qid], {r: _best_grade(qrels, runs.get(r, {}), qid, data.k) for r in data.retrievers})
        for qid in evaluated
        if all(per_query[r][precision][qid] == 0 for r in data.retrievers)
    ]
    return disagreements, all_fail


def _means(data: SessionData, qrels: Qrels, runs: dict[str, Run], rel: int) -> tuple[dict, dict]:
    """(retriever -> metric -> qid -> value, retriever -> metric -> mean)"""
    per_query, means = {}, {}
    for retriever in data.retrievers:
        run = runs.get(retriever, {})
        per_query[retriever] = per_query_metrics(qrels, run, data.k, rel)
        means[retriever] = {
            name: statistics.fmean(v.values()) if v else float("nan") for name, v in per_query[retriever].items()
        }
        means[retriever][f"unjudged@{data.k}"] = unjudged_share(qrels, run, data.k)
    return per_query, means


def analyse(data: SessionData, rel: int = 2, raters: Iterable[str] | None = None) -> Analysis:
    """Metrics from the chosen raters' grades: by default the people's, never an import's unless asked;
    each import source is also scored on its own (``by_import``)."""
    raters = tuple(sorted(set(raters))) if raters is not None else tuple(data.humans())
    qrels = aggregate_qrels(data.judgments, raters)
    runs = runs_from_shown(data.shown)
    names = tuple(measures(data.k, rel))
    per_query, means = _means(data, qrels, runs, rel)
    disagreements, all_fail = _hard_queries(data, per_query, qrels, runs, names)
    evaluated = tuple(qid for qid in data.qids if qid in qrels)
    by_import = {
        title: _means(data, aggregate_qrels(data.judgments, [source]), runs, rel)[1]
        for source, title in data.imports.items()
    }
    return Analysis(
        data.k,
        rel,
        raters,
        names,
        means,
        per_query,
        evaluated,
        disagreements,
        all_fail,
        agreement(data.judgments, raters),
        qrels,
        runs,
        by_import,
    )
