"""The SQLite engine every store shares: WAL, a busy timeout, and transactions SQLAlchemy controls.

Python's sqlite3 (before 3.12) opens transactions on its own and only before INSERT/UPDATE/DELETE:
DDL then runs outside any transaction (a half-applied migration would stay half-applied) and a
transaction that reads before it writes takes the write lock late, where SQLite answers "database
is locked" at once instead of waiting. So the driver's own transaction handling is switched off and
SQLAlchemy emits BEGIN itself; engines from ``writer(engine)`` emit BEGIN IMMEDIATE, which takes the
write lock first (waiting up to the busy timeout), so every write transaction is serialised cleanly.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine

BUSY_TIMEOUT_S = 30
_IMMEDIATE = "mmr_immediate"


def sqlite_engine(db_path: Path) -> Engine:
    db_path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(f"sqlite:///{db_path}", connect_args={"timeout": BUSY_TIMEOUT_S, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN (see the module docstring)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")  # with WAL: durable across process crashes
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection):
        immediate = connection.get_execution_options().get(_IMMEDIATE)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def writer(engine: Engine) -> Engine:
    """The same engine, but its transactions take SQLite's write lock at BEGIN."""
    return engine.execution_options(**{_IMMEDIATE: True})
