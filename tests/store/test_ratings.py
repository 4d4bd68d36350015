import sqlite3
import threading

import pytest

from mmr.store import RatingStore, SchemaVersionError


def _rate(store, doc="d1", grade=2, key="text:cat", retriever="bm25"):
    return store.add_rating(
        session_id="s1",
        query_key=key,
        query_text=key[5:],
        retriever=retriever,
        doc_id=doc,
        rank=1,
        score=0.5,
        grade=grade,
        collection="stamps",
        rater="ann",
    )


def test_rating_survives_reopen(tmp_path):
    db = tmp_path / "r.sqlite"
    store = RatingStore(db)
    _rate(store, grade=3)
    store.close()
    rows = RatingStore(db).ratings()
    assert len(rows) == 1
    row = rows[0]
    assert (row.query_text, row.retriever, row.doc_id, row.grade, row.rater) == ("cat", "bm25", "d1", 3, "ann")
    assert row.created_at is not None


def test_wal_mode_and_query_dedup(tmp_path):
    store = RatingStore(tmp_path / "r.sqlite")
    _rate(store, doc="a")
    _rate(store, doc="b")
    with sqlite3.connect(tmp_path / "r.sqlite") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT COUNT(*) FROM queries").fetchone()[0] == 1


def test_invalid_grade_rejected(tmp_path):
    store = RatingStore(tmp_path / "r.sqlite")
    with pytest.raises(ValueError, match="grade"):
        _rate(store, grade=7)
    assert store.count() == 0


def test_concurrent_writers_lose_nothing(tmp_path):
    db = tmp_path / "r.sqlite"
    stores = [RatingStore(db) for _ in range(4)]

    def work(store, worker):
        for i in range(25):
            _rate(store, doc=f"w{worker}-{i}", key=f"text:q{i % 3}")

    threads = [threading.Thread(target=work, args=(s, n)) for n, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = RatingStore(db).ratings()
    assert len(rows) == 100
    assert len({r.doc_id for r in rows}) == 100


def test_schema_version_checked(tmp_path):
    db = tmp_path / "r.sqlite"
    RatingStore(db).close()
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE schema_info SET version = 999")
    with pytest.raises(SchemaVersionError, match="999"):
        RatingStore(db)
