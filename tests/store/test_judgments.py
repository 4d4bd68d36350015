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


def _session(store, name="s", owner="ann"):
    return store.judgments.create_session(name, "stamps", ["bm25", "zeroshot-verbal"], 5, "seed", owner).id


def test_regrading_replaces_the_one_row(store):
    judgments, session = store.judgments, _session(store)
    query = _query(store)
    first = judgments.upsert(session, query, "d1", "ann", 1)
    again = judgments.upsert(session, query, "d1", "ann", 3)
    cant = judgments.upsert(session, query, "d1", "ann", None)  # "can't judge" also replaces
    assert first == again == cant
    rows = judgments.judgments(session)
    assert [(r.doc_id, r.rater, r.grade) for r in rows] == [("d1", "ann", None)]
    assert rows[0].updated_at is not None


def test_key_is_session_query_doc_rater(store):
    judgments, session, other = store.judgments, _session(store), _session(store, "t", "bob")
    cat, dog = _query(store, "cat"), _query(store, "dog")
    for query, doc, rater in [(cat, "d1", "ann"), (cat, "d1", "bob"), (cat, "d2", "ann"), (dog, "d1", "ann")]:
        judgments.upsert(session, query, doc, rater, 2)
    judgments.upsert(other, cat, "d1", "ann", 0)  # the same query in another session: another judgment
    assert judgments.count() == 5
    assert len(judgments.judgments(session, [cat])) == 3 and len(judgments.judgments(session, rater="ann")) == 3
    assert [j.grade for j in judgments.judgments(other)] == [0]
    assert {j.grade for j in judgments.judgments(session, [cat], rater="ann")} == {2}


def test_invalid_judgments_are_refused(store):
    session = _session(store)
    with pytest.raises(ValueError, match="grade"):
        store.judgments.upsert(session, _query(store), "d1", "ann", 4)
    with pytest.raises(ValueError, match="grade"):
        store.judgments.upsert(session, _query(store), "d1", "ann", True)
    with pytest.raises(ValueError, match="rater"):
        store.judgments.upsert(session, _query(store), "d1", "", 1)
    with pytest.raises(ValueError, match="document id"):
        store.judgments.upsert(session, _query(store), "d" * 600, "ann", 1)
    with pytest.raises(ValueError, match="grade"):
        store.judgments.add_import(
            session, "bench", "x.qrels", "ann", [(_query(store), "d1", 2), (_query(store), "d2", 9)]
        )
    assert store.judgments.count() == 0 and store.judgments.imports(session) == []  # a bad row stops the import


def test_imports_are_sources_of_their_own(store):
    judgments, session = store.judgments, _session(store)
    first = judgments.add_import(session, "bench", "bench.qrels", "ann", [(_query(store), "d1", 2)])
    second = judgments.add_import(session, "bench", "bench.qrels", "ann", [(_query(store), "d1", 0)])
    assert first.rater != second.rater and first.label == second.label == "bench"
    assert {(j.rater, j.grade) for j in judgments.judgments(session)} == {(first.rater, 2), (second.rater, 0)}
    assert [i.judgments for i in judgments.imports(session)] == [1, 1]


def test_members_join_codes_and_deletion(store):
    judgments = store.judgments
    info = judgments.create_session("s", "stamps", ["bm25"], 5, "seed", "ann")
    assert info.owner == "ann" and len(info.join_code) >= 16 and judgments.members(info.id) == ["ann"]
    assert judgments.session_by_code(info.join_code).id == info.id and judgments.session_by_code("nope") is None
    judgments.add_member(info.id, "bob")
    judgments.add_member(info.id, "bob")
    assert judgments.members(info.id) == ["ann", "bob"]
    assert [s.name for s in judgments.sessions(member="bob")] == ["s"] and judgments.sessions(member="eve") == []
    entry, _ = judgments.add_query(info.id, "text:cat", "cat")
    judgments.save_shown(entry.id, [("bm25", 1, "d1", 2.0)])
    judgments.upsert(info.id, entry.query_id, "d1", "bob", 3)
    judgments.add_import(info.id, "bench", "b.qrels", "ann", [(entry.query_id, "d1", 1)])
    judgments.delete_session(info.id)
    assert judgments.sessions() == [] and judgments.count() == 0 and judgments.shown(info.id) == []


def test_store_refuses_oversized_text(store):
    with pytest.raises(ValueError, match="limit"):
        store.judgments.query_ids([("text:" + "x" * 3000, "x" * 3000)])
    with pytest.raises(ValueError, match="session name"):
        store.judgments.create_session("n" * 200, "stamps", ["bm25"], 5, "seed", "ann")


def test_concurrent_retries_never_double_count(tmp_path):
    db = tmp_path / "r.sqlite"
    stores = [RatingStore(db) for _ in range(4)]
    query, session = _query(stores[0]), _session(stores[0])

    def work(store, worker):
        for attempt in range(3):  # every write sent three times, as a client retrying would
            for i in range(40):
                store.judgments.upsert(session, query, f"d{i}", f"rater{worker % 2}", (i + attempt) % 4)

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
    session = judgments.create_session("s", "stamps", ["bm25", "zeroshot-verbal"], 5, "seed", "ann")
    with pytest.raises(ValueError, match="exists"):
        judgments.create_session("s", "stamps", ["bm25"], 5, "seed", "bob")
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
