import math

import pytest

from mmr.judging.analysis import (
    Judged,
    SessionData,
    aggregate_qrels,
    agreement,
    analyse,
    cohen_kappa,
    krippendorff_alpha,
    runs_from_shown,
)
from mmr.store import ShownRow


def _judged(rows):
    return tuple(Judged(q, d, r, g) for q, d, r, g in rows)


def test_lower_median_makes_one_qrel_per_document():
    rows = [
        ("q", "a", "x", 0),
        ("q", "a", "y", 3),  # two raters: the lower one (both must agree)
        ("q", "b", "x", 1),
        ("q", "b", "y", 2),
        ("q", "b", "z", 3),  # three: the middle
        ("q", "c", "x", 0),
        ("q", "c", "y", 2),
        ("q", "c", "z", 2),
        ("q", "c", "w", 3),
        ("q", "d", "x", None),
        ("q", "d", "y", 3),  # "can't judge" is left out
        ("q", "e", "x", None),
    ]  # nobody could judge: unjudged
    assert aggregate_qrels(_judged(rows)) == {"q": {"a": 0, "b": 2, "c": 2, "d": 3}}
    assert aggregate_qrels(_judged(rows), raters=["y"]) == {"q": {"a": 3, "b": 2, "c": 2, "d": 3}}


def test_cohen_kappa_textbook_example():
    # 50 items: both yes 20, only A yes 5, only B yes 10, both no 15 -> p_o 0.7, p_e 0.5, kappa 0.4
    a = [1] * 20 + [1] * 5 + [0] * 10 + [0] * 15
    b = [1] * 20 + [0] * 5 + [1] * 10 + [0] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert cohen_kappa([2, 2], [2, 2]) != cohen_kappa([2, 2], [2, 2])  # nan: no variation to agree on
    assert cohen_kappa([0, 1, 2], [0, 1, 2]) == pytest.approx(1.0)


def test_krippendorff_alpha_small_example():
    # Coincidences o00=2, o01=o10=1, o11=4; n0=3, n1=5, n=8: alpha = 1 - 7 * 2 / (2 * 3 * 5) = 8/15
    assert krippendorff_alpha([[0, 1, 0, 1], [0, 1, 1, 1]]) == pytest.approx(8 / 15)
    assert krippendorff_alpha([[1, 2, 3], [1, 2, 3], [1, 2, 3]]) == pytest.approx(1.0)
    assert math.isnan(krippendorff_alpha([[1, 1], [1, 1]]))


def test_agreement_uses_documents_every_rater_graded():
    rows = [
        ("q", "a", "x", 0),
        ("q", "a", "y", 0),
        ("q", "a", "z", 0),
        ("q", "b", "x", 1),
        ("q", "b", "y", 1),
        ("q", "b", "z", 1),
        ("q", "c", "x", 3),
        ("q", "c", "y", 3),
        ("q", "c", "z", None),  # z could not judge: not common
        ("q", "d", "x", 2),
        ("q", "d", "y", 0),
    ]
    result = agreement(_judged(rows), ["x", "y", "z"])
    assert result.items == 2 and result.kappa is None
    assert result.alpha == pytest.approx(1.0)
    assert result.pairwise[("x", "y")] == (pytest.approx(cohen_kappa([0, 1, 3, 2], [0, 1, 3, 0])), 4)
    two = agreement(_judged(rows), ["x", "y"])
    assert two.kappa == pytest.approx(cohen_kappa([0, 1, 3, 2], [0, 1, 3, 0])) and two.items == 4
    assert agreement(_judged(rows), ["x"]).alpha is None


def _session():
    shown = [
        ("q1", "A", 1, "d1", 0.9),
        ("q1", "A", 2, "d2", 0.9),
        ("q1", "A", 3, "d3", 0.5),  # a score tie
        ("q1", "B", 1, "d3", 2.0),
        ("q1", "B", 2, "d4", 1.0),
        ("q1", "B", 3, "d1", 0.5),
        ("q2", "A", 1, "e1", 3.0),
        ("q2", "A", 2, "e2", 2.0),
        ("q2", "A", 3, "e3", 1.0),
        ("q2", "B", 1, "e4", 3.0),
        ("q2", "B", 2, "e5", 2.0),
        ("q2", "B", 3, "e6", 1.0),
        ("q3", "A", 1, "f1", 1.0),
        ("q3", "B", 1, "f2", 1.0),
    ]
    judged = [
        ("q1", "d1", "ann", 3),
        ("q1", "d1", "bob", 2),
        ("q1", "d2", "ann", 0),
        ("q1", "d3", "ann", 2),
        ("q1", "d3", "bob", None),
        ("q1", "d4", "ann", 1),
        ("q1", "d4", "bob", 3),
        ("q2", "e1", "ann", 0),
        ("q2", "e2", "ann", 0),
        ("q2", "e4", "ann", 1),
    ]
    return SessionData(
        "s",
        3,
        ("A", "B"),
        ("q1", "q2", "q3"),
        {"q1": "one", "q2": "two", "q3": "three"},
        tuple(ShownRow(*row) for row in shown),
        _judged(judged),
    )


def test_runs_keep_the_shown_order_through_score_ties():
    run = runs_from_shown(_session().shown)["A"]["q1"]
    assert sorted(run, key=lambda d: -run[d]) == ["d1", "d2", "d3"]
    assert run["d1"] > run["d2"] > run["d3"]


def test_analysis_numbers_by_hand():
    result = analyse(_session(), rel=2)
    assert result.qrels == {"q1": {"d1": 2, "d2": 0, "d3": 2, "d4": 1}, "q2": {"e1": 0, "e2": 0, "e4": 1}}
    assert result.evaluated == ("q1", "q2")  # q3 has no judgment: not in the means
    ideal = 2 + 2 / math.log2(3) + 1 / 2  # q1's grades sorted: 2, 2, 1
    ndcg_a, ndcg_b = (2 + 2 / 2) / ideal, (2 + 1 / math.log2(3) + 2 / 2) / ideal
    expected = {
        "A": {"P@3": 1 / 3, "nDCG@3": ndcg_a / 2, "MRR@3": 0.5, "unjudged@3": 2 / 7},
        "B": {"P@3": 1 / 3, "nDCG@3": (ndcg_b + 1.0) / 2, "MRR@3": 0.5, "unjudged@3": 3 / 7},
    }
    for retriever, means in expected.items():
        assert result.means[retriever] == pytest.approx(means)
    assert [n.qid for n in result.disagreements] == ["q2", "q1"]  # nDCG spread 1.0, then 0.17
    assert [n.qid for n in result.all_fail] == ["q2"]  # grade 1 at best: nobody found a relevant doc
    assert result.all_fail[0].values == {"A": 0.0, "B": 1.0}  # the best grade each one found
    assert result.agreement.raters == ("ann", "bob") and result.agreement.items == 2
    assert result.agreement.kappa == pytest.approx(-1 / 3)  # (3,2) and (1,3): p_o 0, p_e 0.25
