"""Fixtures every suite may use: the metadata database, on SQLite and on PostgreSQL.

PostgreSQL tests need ``RUNYARD_TEST_DATABASE_URL`` (for example
``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``): a server on which the tests may
create and drop databases. Without it, or when it cannot be reached, they are skipped with a
reason saying which.
"""

from __future__ import annotations

import os
import pathlib
import uuid
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

from runyard.storage import schema

PG_URL_VARIABLE = "RUNYARD_TEST_DATABASE_URL"


def _pg_url(raw: str) -> sa.URL:
    url = sa.make_url(raw)
    return url.set(drivername="postgresql+psycopg") if url.drivername == "postgresql" else url


def _admin_engine(url: str) -> sa.Engine:
    """An engine outside transactions (CREATE / DROP DATABASE refuse to run inside one)."""
    return sa.create_engine(
        _pg_url(url),
        isolation_level="AUTOCOMMIT",
        poolclass=sa.pool.NullPool,
        connect_args={"connect_timeout": 3},
    )


def _create_pg_database(admin_url: str) -> str:
    name = f"runyard_test_{uuid.uuid4().hex[:12]}"
    engine = _admin_engine(admin_url)
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine.dispose()
    return _pg_url(admin_url).set(database=name).render_as_string(hide_password=False)


def _drop_pg_database(admin_url: str, database_url: str) -> None:
    engine = _admin_engine(admin_url)
    with engine.connect() as conn:
        # FORCE: a test that failed may have left connections open.
        conn.exec_driver_sql(
            f'DROP DATABASE IF EXISTS "{sa.make_url(database_url).database}" WITH (FORCE)'
        )
    engine.dispose()


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    """``RUNYARD_TEST_DATABASE_URL`` once the server answers; skips the test otherwise."""
    raw = os.environ.get(PG_URL_VARIABLE)
    if not raw:
        pytest.skip(f"{PG_URL_VARIABLE} is not set; PostgreSQL tests need a reachable server")
    try:
        shown = _pg_url(raw).render_as_string(hide_password=True)
    except sa.exc.ArgumentError as exc:
        pytest.skip(f"{PG_URL_VARIABLE} is not a valid database URL: {exc}")
    engine = _admin_engine(raw)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except Exception as exc:  # any failure to connect means: no PostgreSQL for these tests
        reason = getattr(exc, "orig", None) or exc
        pytest.skip(f"PostgreSQL at {shown} ({PG_URL_VARIABLE}) is not reachable: {reason}")
    finally:
        engine.dispose()
    return raw


@pytest.fixture(scope="session")
def pg_new_database(pg_admin_url: str) -> Iterator[Callable[[], str]]:
    """Call it for the URL of a new, empty, uniquely named database; all are dropped at the end."""
    made: list[str] = []

    def new_database() -> str:
        made.append(_create_pg_database(pg_admin_url))
        return made[-1]

    yield new_database
    for url in made:
        _drop_pg_database(pg_admin_url, url)


@pytest.fixture(scope="session")
def pg_database_url(pg_new_database: Callable[[], str]) -> str:
    """The database this session's PostgreSQL tests share (not migrated when made)."""
    return pg_new_database()


def _empty_pg_tables(url: str) -> None:
    """Delete every runyard row (a TRUNCATE costs far less than a new database per test)."""
    names = list(schema.metadata.tables)
    engine = sa.create_engine(_pg_url(url), poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        # A test that left a connection inside a transaction would block TRUNCATE forever.
        conn.exec_driver_sql("SET LOCAL lock_timeout = '10s'")
        present = conn.execute(
            sa.text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        ).scalars()
        tables = sorted(set(names) & set(present))
        if tables:
            conn.exec_driver_sql(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
    engine.dispose()


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> str:
    """The URL of a metadata database holding no runyard rows, once per backend.

    SQLite: a new file in ``tmp_path`` (not created yet). PostgreSQL: the session's database,
    emptied. Either may lack the schema; ``Store.open`` migrates it.
    """
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'runyard.db'}"
    url: str = request.getfixturevalue("pg_database_url")
    _empty_pg_tables(url)
    return url
