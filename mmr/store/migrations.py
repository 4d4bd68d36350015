"""Schema upgrades, run at start by every store: a new file gets the current schema, an older one is
upgraded step by step in one transaction (and copied aside first), a newer one is refused.

To change the schema: add the models, bump ``SCHEMA_VERSION`` and add ``MIGRATIONS[new_version]``.
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Connection, Engine, insert, inspect, select, update

from mmr.store.database import writer
from mmr.store.frozen_v2 import V2_DDL
from mmr.store.schema import SCHEMA_VERSION, V3_NEW_TABLES, Base, SchemaInfo, utcnow

log = logging.getLogger(__name__)


class SchemaVersionError(RuntimeError):
    pass


def _v1_to_v2(connection: Connection) -> None:
    # Only new tables: v1's queries and ratings keep their rows and shape.
    for statement in V2_DDL:
        connection.exec_driver_sql(statement)


def _v2_to_v3(connection: Connection) -> None:
    """Owners, members and import sources; judgments keyed by their session.

    Sessions made before owners existed keep no owner (``mmr sessions`` shows their join codes, so an
    administrator can hand them on); everyone who judged in one becomes a member. v2 stored imported
    qrels with no session: each file becomes an import source of every session holding its queries. An
    import whose queries are in no session is not carried over (it stays in the .v2.bak copy).
    """
    # Once a later version alters these new tables, freeze this step as literal SQL, as v1 -> v2 is.
    for name in V3_NEW_TABLES:
        Base.metadata.tables[name].create(connection)
    sql = connection.exec_driver_sql
    sql("ALTER TABLE judging_sessions ADD COLUMN owner VARCHAR(64)")
    sql("ALTER TABLE judging_sessions ADD COLUMN join_code VARCHAR(32)")
    sql("CREATE INDEX ix_judging_sessions_join_code ON judging_sessions (join_code)")
    for (session_id,) in sql("SELECT id FROM judging_sessions").fetchall():
        sql("UPDATE judging_sessions SET join_code = ? WHERE id = ?", (secrets.token_urlsafe(12), session_id))
    sql("DROP INDEX ix_judgments_query_id")
    sql("ALTER TABLE judgments RENAME TO judgments_v2")
    Base.metadata.tables["judgments"].create(connection)
    columns = "query_id, doc_id, rater, grade, session_id, created_at, updated_at"
    sql(f"INSERT INTO judgments (id, {columns}) SELECT id, {columns} FROM judgments_v2 WHERE session_id IS NOT NULL")
    legacy_imports = sql(
        "SELECT DISTINCT sq.session_id, j.rater FROM judgments_v2 j JOIN session_queries sq ON sq.query_id = j.query_id"
        " WHERE j.session_id IS NULL ORDER BY sq.session_id, j.rater"
    ).fetchall()
    for session_id, rater in legacy_imports:
        label = rater.removeprefix("import:")
        source_id = sql(
            "INSERT INTO import_sources (session_id, label, file_name, created_at, judgments) VALUES (?, ?, ?, ?, 0)"
            " RETURNING id",
            (session_id, label, label, utcnow().isoformat(sep=" ")),
        ).scalar_one()
        copied = sql(
            f"INSERT INTO judgments ({columns}) SELECT j.query_id, j.doc_id, ?, j.grade, ?, j.created_at, j.updated_at"
            " FROM judgments_v2 j JOIN session_queries sq ON sq.query_id = j.query_id AND sq.session_id = ?"
            " WHERE j.session_id IS NULL AND j.rater = ?",
            (f"import:{source_id}", session_id, session_id, rater),
        ).rowcount
        sql("UPDATE import_sources SET judgments = ? WHERE id = ?", (copied, source_id))
    left = sql(
        "SELECT COUNT(*) FROM judgments_v2 j WHERE j.session_id IS NULL AND NOT EXISTS "
        "(SELECT 1 FROM session_queries sq WHERE sq.query_id = j.query_id)"
    ).scalar_one()
    if left:
        log.warning("%d imported judgments belong to no session's queries: not carried into v3 (see the .bak)", left)
    sql(
        "INSERT INTO session_members (session_id, rater, joined_at) SELECT session_id, rater, MIN(created_at)"
        " FROM judgments WHERE rater NOT LIKE 'import:%' GROUP BY session_id, rater"
    )
    sql("DROP TABLE judgments_v2")


# version reached -> the step that reaches it from the version before
MIGRATIONS: dict[int, Callable[[Connection], None]] = {2: _v1_to_v2, 3: _v2_to_v3}


def _backup(db_path: Path, version: int) -> None:
    target = db_path.with_name(f"{db_path.name}.v{version}.bak")
    if target.exists():
        return
    with sqlite3.connect(db_path) as source, sqlite3.connect(target) as copy:
        source.backup(copy)  # consistent even with a WAL file beside it
    log.info("copied %s to %s before upgrading its schema", db_path, target)


def _found_version(connection: Connection) -> int | None:
    if not inspect(connection).has_table(SchemaInfo.__tablename__):
        return None
    return connection.scalar(select(SchemaInfo.version).where(SchemaInfo.id == 1))


def _refuse_newer(version: int | None, db_path: Path) -> None:
    if version is not None and version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{db_path} has schema version {version}, this code knows versions up to {SCHEMA_VERSION}; "
            "run a newer mmr or point MMR_DB at another file"
        )


def upgrade(engine: Engine, db_path: Path) -> int | None:
    """Bring the database to ``SCHEMA_VERSION``; returns the version it had, None for a new file."""
    with engine.connect() as probe:
        found = _found_version(probe)
    _refuse_newer(found, db_path)
    if found is not None and found < SCHEMA_VERSION:
        _backup(db_path, found)
    # BEGIN IMMEDIATE: of two processes starting together, the second waits and finds the work done.
    with writer(engine).begin() as connection:
        version = _found_version(connection)
        _refuse_newer(version, db_path)
        if version is None:
            Base.metadata.create_all(connection)
            connection.execute(insert(SchemaInfo).values(id=1, version=SCHEMA_VERSION))
            return None
        for target in range(version + 1, SCHEMA_VERSION + 1):
            MIGRATIONS[target](connection)
            log.info("%s: schema upgraded to version %d", db_path, target)
        if version != SCHEMA_VERSION:
            connection.execute(update(SchemaInfo).where(SchemaInfo.id == 1).values(version=SCHEMA_VERSION))
        return version
