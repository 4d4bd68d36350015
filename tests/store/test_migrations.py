"""The v1 -> v2 upgrade, on a database written by the v1 code (fixtures/ratings_v1.sql is its dump)."""

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

from mmr.store import RatingStore, SchemaVersionError
from mmr.store.schema import SCHEMA_VERSION

V1_DUMP = Path(__file__).parent / "fixtures" / "ratings_v1.sql"


def _v1_database(path: Path) -> Path:
    with sqlite3.connect(path) as conn:
        conn.executescript(V1_DUMP.read_text())
    return path


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
        assert conn.execute("SELECT version FROM schema_info").fetchone()[0] == SCHEMA_VERSION == 2
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
    store.judgments.upsert(query, "stamp/x", "ann", 2)
    assert store.count() == 4 and store.judgments.count() == 1
    store.close()
    assert (tmp_path / "old.sqlite.v1.bak").exists()  # copied aside before upgrading
    assert RatingStore(db).upgraded_from == 2  # nothing left to do


def test_upgraded_schema_equals_a_new_database(tmp_path):
    old = _v1_database(tmp_path / "old.sqlite")
    RatingStore(old).close()
    new = tmp_path / "new.sqlite"
    assert RatingStore(new).upgraded_from is None
    assert _schema(old) == _schema(new)


def test_newer_database_is_refused(tmp_path):
    db = _v1_database(tmp_path / "future.sqlite")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE schema_info SET version = 3")
    with pytest.raises(SchemaVersionError, match="version 3"):
        RatingStore(db)
