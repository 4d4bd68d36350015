"""Schema upgrades, run at start by every store: a new file gets the current schema, an older one is
upgraded step by step in one transaction (and copied aside first), a newer one is refused.

To change the schema: add the models, bump ``SCHEMA_VERSION`` and add ``MIGRATIONS[new_version]``.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Connection, Engine, insert, inspect, select, update

from mmr.store.database import writer
from mmr.store.schema import SCHEMA_VERSION, V2_TABLES, Base, SchemaInfo

log = logging.getLogger(__name__)


class SchemaVersionError(RuntimeError):
    pass


def _v1_to_v2(connection: Connection) -> None:
    # Only new tables: v1's queries and ratings keep their rows and shape. The v2 models are the
    # DDL here; once a later version alters these tables, freeze this step as literal SQL.
    for name in V2_TABLES:
        Base.metadata.tables[name].create(connection, checkfirst=True)


# version reached -> the step that reaches it from the version before
MIGRATIONS: dict[int, Callable[[Connection], None]] = {2: _v1_to_v2}


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
