"""Making SQLAlchemy engines: every SQLite / PostgreSQL difference in connecting lives here."""

from __future__ import annotations

import pathlib
import sqlite3
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, pool

from runyard import errors
from runyard.storage import forkguard

__all__ = ["WRITE", "create_engine"]

# Execution option marking a connection that will write: on SQLite its transaction starts
# with BEGIN IMMEDIATE, so two writers queue on the busy timeout instead of deadlocking when
# both upgrade a read lock.
WRITE = "runyard_write"


def create_engine(url: str) -> sa.Engine:
    """An engine for ``url`` (``sqlite:///path`` or ``postgresql+psycopg://...``).

    Raises ``StoreError`` for an unsupported URL or a PostgreSQL driver that is not installed.
    """
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise errors.StoreError(
            f"Database URL {url!r} is not valid; use sqlite:///path/to/runyard.db or "
            "postgresql+psycopg://user@host:5432/db"
        ) from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite(parsed)
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        try:
            return sa.create_engine(parsed, pool_size=5, max_overflow=5, pool_recycle=3600)
        except ModuleNotFoundError as exc:
            raise errors.StoreError(
                f"PostgreSQL needs the psycopg driver ({exc}); install it with "
                "pip install 'runyard[postgres]'"
            ) from exc
    raise errors.StoreError(
        f"Database backend {backend!r} is not supported; use SQLite or PostgreSQL"
    )


def _sqlite(parsed: sa.URL) -> sa.Engine:
    memory = parsed.database in (None, "", ":memory:")
    if not memory:
        pathlib.Path(parsed.database or "").parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(
        parsed,
        poolclass=pool.StaticPool if memory else pool.QueuePool,
        # Forks wait for other threads to leave SQLite (see forkguard).
        connect_args={
            "check_same_thread": False,
            "timeout": 30,
            "factory": forkguard.GuardedConnection,
        },
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # runyard issues BEGIN itself, below
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        if not memory:
            _use_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        immediate = conn.get_execution_options().get(WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _use_wal(cursor: Any) -> None:
    """Switch a database file to WAL mode, which it then keeps.

    Switching needs the database to itself, and SQLite refuses at once, without waiting out
    the busy timeout, while another connection holds it (two processes opening a new
    database together): retry for as long as the busy timeout would have waited.
    """
    deadline = time.monotonic() + 30
    while True:
        if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
            return
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
