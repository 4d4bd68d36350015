import json
from dataclasses import asdict

import pytest

from mmr.judging import JudgingService
from mmr.judging.pooling import RankedDoc, pool
from mmr.types import Query
from tests.judging.fakes import RETRIEVER_NAMES, FakeRetriever


def _rankings():
    return [
        RankedDoc("a", 1, "d1", 0.9),
        RankedDoc("a", 2, "d2", 0.8),
        RankedDoc("a", 3, "d3", 0.7),
        RankedDoc("b", 1, "d3", 5.0),
        RankedDoc("b", 2, "d4", 4.0),
        RankedDoc("b", 3, "d1", 3.0),
    ]


def test_pool_removes_duplicates_and_numbers_positions():
    items = pool(_rankings(), "seed", "text:q")
    assert sorted(i.doc_id for i in items) == ["d1", "d2", "d3", "d4"]
    assert [i.position for i in items] == [1, 2, 3, 4]


def test_pool_order_is_seeded_and_ignores_who_found_what():
    rankings = _rankings()
    first = pool(rankings, "seed", "text:q")
    assert pool(list(reversed(rankings)), "seed", "text:q") == first  # input order does not leak
    assert pool(rankings[3:] + rankings[:3], "seed", "text:q") == first
    many = [RankedDoc("a", r, f"d{r}", 1.0 / r) for r in range(1, 21)]
    orders = {tuple(i.doc_id for i in pool(many, seed, key)) for seed in ("s1", "s2") for key in ("text:x", "text:y")}
    assert len(orders) == 4  # another session or query: another order (20! orders, collisions negligible)
    assert [i.doc_id for i in pool(many, "s1", "text:x")] != [f"d{r}" for r in range(1, 21)]


def test_blind_view_names_no_retriever_rank_or_score(judging, session):
    for entry in judging.queries(session, "ann"):
        view = judging.blind_query(session, entry.qid, "ann")
        text = json.dumps(asdict(view))
        for name in RETRIEVER_NAMES:
            assert name not in text
        for doc in view.docs:
            assert set(asdict(doc)) == {"position", "doc_id", "modality", "text", "image_path"}
        assert len({d.doc_id for d in view.docs}) == len(view.docs)  # no duplicates


def test_pool_is_union_of_top_k_and_frozen_in_the_database(judging, session, search_service, store, tmp_path):
    view = judging.blind_query(session, "q1", "ann")
    expected = set()
    for name in RETRIEVER_NAMES:
        fresh = FakeRetriever(name, search_service.collections["fake"])
        expected |= {hit.doc_id for hit in fresh.search(Query(text="red flower"), 5)}
    assert {d.doc_id for d in view.docs} == expected
    assert len(expected) < 15  # the fake retrievers overlap: duplicates were really removed
    # Retrievers change (a rebuilt index): the pool already judged does not.
    for name in RETRIEVER_NAMES:
        search_service.retrievers[(name, "fake")].doc_ids.reverse()
    reopened = JudgingService(search_service, store.judgments, tmp_path / "uploads")
    assert reopened.blind_query(session, "q1", "ann") == view


def test_shown_rankings_are_kept_per_retriever(judging, session, store):
    info = store.judgments.session(session)
    shown = store.judgments.shown(info.id)
    assert {row.retriever for row in shown} == set(RETRIEVER_NAMES)
    for qid in ("q1", "t7", "q3"):
        for name in RETRIEVER_NAMES:
            ranks = [r.rank for r in shown if r.qid == qid and r.retriever == name]
            assert ranks == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("count", [1, 7])
def test_session_needs_two_to_six_retrievers(judging, search_service, count):
    corpus = search_service.collections["fake"]
    for i in range(7):
        search_service.retrievers[(f"r{i}", "fake")] = FakeRetriever(f"r{i}", corpus)
    with pytest.raises(ValueError, match="2 to 6"):
        judging.create_session("bad", "fake", [f"r{i}" for i in range(count)], 5, "ann")
