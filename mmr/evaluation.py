"""Offline evaluation of retrievers on the benchmark splits, with ranx.

Metrics are computed per query and averaged; the 95% confidence interval of each mean comes from a
seeded bootstrap over queries, and paired significance between retrievers from ranx ``compare``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmr.corpus.format import Corpus
from mmr.progress import ProgressBar
from mmr.retrievers import Retriever
from mmr.types import Query

METRICS = ("recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10")
RUN_DEPTH = 100


@dataclass(frozen=True)
class RetrieverScores:
    retriever: str
    means: dict[str, float]
    ci95: dict[str, tuple[float, float]]
    image_share_at_10: float
    queries: int


def text_query(text: str) -> Query:
    return Query(text=text)


def image_query_from(folder: Path) -> Callable[[str], Query]:
    """Queries of an image setting are image paths (relative to ``folder``), loaded one batch at a time."""
    from mmr.corpus.images import load_image

    def image_query(path: str) -> Query:
        return Query(image=load_image(Path(folder) / path), image_sha=path)

    return image_query


def make_run(
    retriever: Retriever,
    queries: Mapping[str, str],
    depth: int = RUN_DEPTH,
    progress: str | bool = False,
    batch_size: int = 64,
    to_query: Callable[[str], Query] = text_query,
) -> dict[str, dict[str, float]]:
    """qid -> {doc_id: score}. A query the retriever has no answer for gets an empty ranking.
    ``to_query`` turns a query's line into a ``Query`` (its text, or with ``image_query_from`` its image)."""
    items = list(queries.items())
    starts = range(0, len(items), batch_size)
    if progress:
        starts = ProgressBar(starts, desc=progress if isinstance(progress, str) else "queries", unit="batch")
    run: dict[str, dict[str, float]] = {}
    for start in starts:
        chunk = items[start : start + batch_size]
        results = retriever.search_many([to_query(text) for _, text in chunk], depth)
        for (qid, _), hits in zip(chunk, results, strict=True):
            run[qid] = {hit.doc_id: hit.score for hit in hits}
    return run


def _ranx_inputs(qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Mapping[str, float]]):
    from ranx import Qrels, Run

    # ranx needs every judged query present in the run; an empty ranking is a miss, scored 0.
    # A sentinel document that is never relevant stands in for "returned nothing".
    filled = {qid: dict(run.get(qid) or {"__no_result__": 0.0}) for qid in qrels}
    return Qrels({q: dict(d) for q, d in qrels.items()}), Run(filled)


def per_query_scores(qrels, run, metrics=METRICS) -> dict[str, np.ndarray]:
    from ranx import evaluate

    ranx_qrels, ranx_run = _ranx_inputs(qrels, run)
    scores = evaluate(ranx_qrels, ranx_run, list(metrics), return_mean=False, make_comparable=True)
    if len(metrics) == 1:
        scores = {metrics[0]: scores}
    return {metric: np.asarray(values, dtype=np.float64) for metric, values in scores.items()}


def bootstrap_ci(values: np.ndarray, samples: int = 1000, seed: int = 0) -> tuple[float, float]:
    if len(values) == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(samples, len(values)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def image_share(run: Mapping[str, Mapping[str, float]], corpus: Corpus, depth: int = 10) -> float:
    shares = []
    for ranking in run.values():
        top = sorted(ranking.items(), key=lambda item: -item[1])[:depth]
        top = [doc for doc, _ in top if doc in corpus]
        if top:
            shares.append(sum(corpus[doc].modality == "image" for doc in top) / len(top))
    return float(np.mean(shares)) if shares else 0.0


def score_run(name: str, qrels, run, corpus: Corpus, metrics: tuple[str, ...] = METRICS) -> RetrieverScores:
    per_query = per_query_scores(qrels, run, metrics)
    return RetrieverScores(
        retriever=name,
        means={metric: float(values.mean()) for metric, values in per_query.items()},
        ci95={metric: bootstrap_ci(values) for metric, values in per_query.items()},
        image_share_at_10=image_share(run, corpus),
        queries=len(qrels),
    )


def markdown_table(rows: list[RetrieverScores], with_ci: bool = True, metrics: tuple[str, ...] = METRICS) -> str:
    header = "| retriever | " + " | ".join(metrics) + " | images in top 10 | queries |"
    lines = [header, "|" + "---|" * (len(metrics) + 3)]
    for row in rows:
        cells = []
        for metric in metrics:
            mean = row.means[metric]
            low, high = row.ci95[metric]
            cells.append(f"{mean:.3f} [{low:.3f}, {high:.3f}]" if with_ci else f"{mean:.3f}")
        lines.append(f"| {row.retriever} | " + " | ".join(cells) + f" | {row.image_share_at_10:.2f} | {row.queries} |")
    return "\n".join(lines)


def paired_comparison(qrels, runs: Mapping[str, Mapping[str, Mapping[str, float]]], metric: str = "mrr@10") -> str:
    """ranx's paired Student's t-test between every pair of retrievers, as its own report table."""
    from ranx import Run, compare

    ranx_qrels, _ = _ranx_inputs(qrels, {})
    ranx_runs = []
    for name, run in runs.items():
        _, ranx_run = _ranx_inputs(qrels, run)
        ranx_runs.append(Run(ranx_run.to_dict(), name=name))
    report = compare(ranx_qrels, ranx_runs, metrics=[metric], stat_test="student", max_p=0.05)
    return str(report)
