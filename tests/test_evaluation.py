import numpy as np
import pytest

from mmr.corpus.format import Corpus
from mmr.evaluation import bootstrap_ci, image_share, make_run, markdown_table, score_run
from mmr.types import Document, Hit


class FixedRetriever:
    """Returns a fixed ranking per query text."""

    def __init__(self, rankings):
        self.rankings = rankings

    def search(self, query, k=10):
        return [Hit(doc, 1.0 / rank, rank) for rank, doc in enumerate(self.rankings.get(query.text, []), 1)][:k]

    def search_many(self, queries, k=10):
        return [self.search(query, k) for query in queries]


def test_metrics_match_hand_computed_values():
    corpus = Corpus(
        "c", tuple(Document(d, "image", "", f"/x/{d}.png") for d in "abcde") + (Document("t", "text", "words"),)
    )
    queries = {"q1": "one", "q2": "two", "q3": "three"}
    qrels = {"q1": {"a": 1}, "q2": {"c": 1, "d": 1}, "q3": {"e": 1}}
    retriever = FixedRetriever({"one": ["a", "b"], "two": ["b", "t", "c"], "three": []})
    run = make_run(retriever, queries)
    scores = score_run("fixed", qrels, run, corpus)
    # q1: hit at 1; q2: first relevant at 3, one of two relevant in top 5; q3: nothing returned
    assert scores.means["mrr@10"] == pytest.approx((1 + 1 / 3 + 0) / 3)
    assert scores.means["recall@1"] == pytest.approx(1 / 3)
    assert scores.means["recall@5"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert scores.queries == 3
    assert image_share(run, corpus) == pytest.approx((1.0 + 2 / 3) / 2)
    assert "fixed" in markdown_table([scores])


def test_bootstrap_ci_brackets_the_mean():
    values = np.array([0.0, 1.0] * 50)
    low, high = bootstrap_ci(values)
    assert low < 0.5 < high
    assert bootstrap_ci(np.ones(10)) == (1.0, 1.0)
