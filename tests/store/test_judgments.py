import sqlite3
import threading

import pytest

from mmr.store import RatingStore


@pytest.fixture
def store(tmp_path):
    store = RatingStore(tmp_path / "r.sqlite")
    yield store
    store.close()


def _query(store, text="cat"):
    return store.judgments.query_ids([(f"text:{text}", text)])[f"text:{text}"]


def test_regrading_replaces_the_one_row(store):
    judgments = store.judgments
    query = _query(store)
    first = judgments.upsert(query, "d1", "ann", 1)
    again = judgments.upsert(query, "d1", "ann", 3)
    cant = judgments.upsert(query, "d1", "ann", None)  # "can't judge" also replaces
    assert first == again == cant
    rows = judgments.judgments()
    assert [(r.doc_id, r.rater, r.grade) for r in rows] == [("d1", "ann", None)]
    assert rows[0].updated_at is not None


def test_key_is_query_doc_rater(store):
    judgments = store.judgments
    cat, dog = _query(store, "cat"), _query(store, "dog")
    for query, doc, rater in [(cat, "d1", "ann"), (cat, "d1", "bob"), (cat, "d2", "ann"), (dog, "d1", "ann")]:
        judgments.upsert(query, doc, rater, 2)
    assert judgments.count() == 4
    assert len(judgments.judgments([cat])) == 3 and len(judgments.judgments(rater="ann")) == 3


def test_invalid_judgments_are_refused(store):
    with pytest.raises(ValueError, match="grade"):
        store.judgments.upsert(_query(store), "d1", "ann", 4)
    with pytest.raises(ValueError, match="rater"):
        store.judgments.upsert(_query(store), "d1", "", 1)
    with pytest.raises(ValueError, match="grade"):
        store.judgments.upsert_many([(_query(store), "d1", "x", 2), (_query(store), "d2", "x", 9)])
    assert store.judgments.count() == 0  # a bad import row stops the whole import


def test_concurrent_retries_never_double_count(tmp_path):
    db = tmp_path / "r.sqlite"
    stores = [RatingStore(db) for _ in range(4)]
    query = _query(stores[0])

    def work(store, worker):
        for attempt in range(3):  # every write sent three times, as a client retrying would
            for i in range(40):
                store.judgments.upsert(query, f"d{i}", f"rater{worker % 2}", (i + attempt) % 4)

    threads = [threading.Thread(target=work, args=(s, n)) for n, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM judgments").fetchone()[0] == 80
        assert (
            conn.execute("SELECT COUNT(*) FROM (SELECT DISTINCT query_id, doc_id, rater FROM judgments)").fetchone()[0]
            == 80
        )


def test_sessions_queries_and_first_pool_wins(store):
    judgments = store.judgments
    session = judgments.create_session("s", "stamps", ["bm25", "zeroshot-verbal"], 5, "seed")
    with pytest.raises(ValueError, match="exists"):
        judgments.create_session("s", "stamps", ["bm25"], 5, "seed")
    entry, created = judgments.add_query(session.id, "text:cat", "cat")
    again, created_again = judgments.add_query(session.id, "text:cat", "cat")
    assert (created, created_again, entry) == (True, False, again)
    with pytest.raises(ValueError, match="q1"):
        judgments.add_query(session.id, "text:dog", "dog", qid="q1")
    named, _ = judgments.add_query(session.id, "text:dog", "dog", qid="q3")
    auto, _ = judgments.add_query(session.id, "text:bird", "bird")  # position 3, but q3 is taken
    assert [(e.position, e.qid) for e in (entry, named, auto)] == [(1, "q1"), (2, "q3"), (3, "q4")]
    judgments.save_shown(entry.id, [("bm25", 1, "d1", 2.0), ("bm25", 2, "d2", 1.0)])
    judgments.save_shown(entry.id, [("bm25", 1, "other", 9.0)])  # a second, racing pool build is ignored
    assert [(r.qid, r.retriever, r.rank, r.doc_id) for r in judgments.shown(session.id)] == [
        (entry.qid, "bm25", 1, "d1"),
        (entry.qid, "bm25", 2, "d2"),
    ]
