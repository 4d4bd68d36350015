"""Schema upgrades, on databases written by the v1 and v2 code (fixtures/ratings_v1.sql and ratings_v2.sql)."""

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

from mmr.store import RatingStore, SchemaVersionError
from mmr.store.schema import SCHEMA_VERSION

V1_DUMP = Path(__file__).parent / "fixtures" / "ratings_v1.sql"
V2_DUMP = Path(__file__).parent / "fixtures" / "ratings_v2.sql"


def _database(path: Path, dump: Path) -> Path:
    with sqlite3.connect(path) as conn:
        conn.executescript(dump.read_text())
    return path


def _v1_database(path: Path) -> Path:
    return _database(path, V1_DUMP)


def _schema(path: Path) -> dict:
    inspector = inspect(create_engine(f"sqlite:///{path}"))
    schema = {}
    for table in inspector.get_table_names():
        schema[table] = (
            [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)],
            sorted(tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)),
            sorted((i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in inspector.get_indexes(table)),
            sorted((f["referred_table"], tuple(f["constrained_columns"])) for f in inspector.get_foreign_keys(table)),
        )
    return schema


def test_v1_database_is_upgraded_and_keeps_its_ratings(tmp_path):
    db = _v1_database(tmp_path / "old.sqlite")
    with sqlite3.connect(db) as conn:
        old_rows = conn.execute("SELECT * FROM ratings ORDER BY id").fetchall()
        old_queries = conn.execute("SELECT * FROM queries ORDER BY id").fetchall()
    store = RatingStore(db)
    assert store.upgraded_from == 1
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version FROM schema_info").fetchone()[0] == SCHEMA_VERSION == 3
        assert conn.execute("SELECT * FROM ratings ORDER BY id").fetchall() == old_rows
        assert conn.execute("SELECT * FROM queries ORDER BY id").fetchall() == old_queries
    assert [(r.rater, r.doc_id, r.grade) for r in store.ratings()][0] == ("ann", "stamp/plants/flowers/rose", 3)
    # Both doors work on the upgraded file: the Search tab's ratings and blind judging.
    store.add_rating(
        session_id="s3",
        query_key="text:a red flower",
        query_text="a red flower",
        collection="stamps",
        retriever="bm25",
        doc_id="stamp/x",
        rank=1,
        score=1.0,
        grade=2,
    )
    query = store.query_id("text:a red flower")
    assert query == 1  # the v1 query row is reused, so old ratings and new judgments share it
    session = store.judgments.create_session("new", "stamps", ["bm25"], 3, "seed", "ann")
    store.judgments.upsert(session.id, query, "stamp/x", "ann", 2)
    assert store.count() == 4 and store.judgments.count() == 1
    store.close()
    assert (tmp_path / "old.sqlite.v1.bak").exists()  # copied aside before upgrading
    assert RatingStore(db).upgraded_from == 3  # nothing left to do


def test_v2_database_keeps_judgments_in_their_session_and_imports_become_sources(tmp_path):
    db = _database(tmp_path / "v2.sqlite", V2_DUMP)
    with sqlite3.connect(db) as conn:
        ratings = conn.execute("SELECT * FROM ratings ORDER BY id").fetchall()
        people = conn.execute(
            "SELECT query_id, doc_id, rater, grade FROM judgments WHERE session_id IS NOT NULL ORDER BY id"
        ).fetchall()
    store = RatingStore(db)
    assert store.upgraded_from == 2 and (tmp_path / "v2.sqlite.v2.bak").exists()
    judgments = store.judgments
    legacy = judgments.session("legacy")
    assert legacy.owner is None and len(legacy.join_code) >= 16  # made before owners: an administrator hands it on
    assert judgments.members(legacy.id) == ["ann", "bob"]  # whoever judged in it
    rows = judgments.judgments(legacy.id)
    assert [(r.query_id, r.doc_id, r.rater, r.grade) for r in rows if not r.rater.startswith("import:")] == people
    (source,) = judgments.imports(legacy.id)
    assert (source.label, source.judgments) == ("test.qrels", 2)
    assert sorted((r.doc_id, r.grade) for r in rows if r.rater == source.rater) == [
        ("stamp/car", 0),
        ("stamp/plants/flowers/rose", 3),
    ]
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT * FROM ratings ORDER BY id").fetchall() == ratings
    judgments.set_owner(legacy.id, "ann")
    assert judgments.session("legacy").owner == "ann"
    store.close()


def test_v2_upgrade_gives_the_schema_of_a_new_database(tmp_path):
    old = _database(tmp_path / "v2.sqlite", V2_DUMP)
    RatingStore(old).close()
    new = tmp_path / "new.sqlite"
    RatingStore(new).close()
    assert _schema(old) == _schema(new)


def test_upgraded_schema_equals_a_new_database(tmp_path):
    old = _v1_database(tmp_path / "old.sqlite")
    RatingStore(old).close()
    new = tmp_path / "new.sqlite"
    assert RatingStore(new).upgraded_from is None
    assert _schema(old) == _schema(new)


def test_newer_database_is_refused(tmp_path):
    db = _v1_database(tmp_path / "future.sqlite")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE schema_info SET version = 4")
    with pytest.raises(SchemaVersionError, match="version 4"):
        RatingStore(db)
