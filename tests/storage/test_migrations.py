"""Migrations: they build exactly the models' schema, run both ways, and tolerate races.

Every test runs on SQLite and on PostgreSQL against a database no runyard has touched
(``fresh_database_url``).
"""

from __future__ import annotations

import pathlib
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from runyard import errors
from runyard.storage import engine as engines
from runyard.storage import migrate, schema
from runyard.storage import store as store_mod

TABLES = set(schema.metadata.tables)


@contextmanager
def engine_for(url: str) -> Iterator[sa.Engine]:
    engine = engines.create_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def tables(engine: sa.Engine) -> set[str]:
    with engine.connect() as conn:
        return set(sa.inspect(conn).get_table_names())


def test_head_is_the_newest_migration_script() -> None:
    assert migrate.script_head() == migrate.HEAD


def test_opening_a_fresh_database_migrates_it(fresh_database_url: str) -> None:
    with engine_for(fresh_database_url) as engine:
        assert migrate.current_revision(engine) is None

        store = store_mod.Store.open(fresh_database_url)
        store.close()

        assert migrate.current_revision(engine) == migrate.HEAD
        assert tables(engine) == TABLES | {"alembic_version"}


def test_opening_an_up_to_date_database_again_changes_nothing(fresh_database_url: str) -> None:
    first = store_mod.Store.open(fresh_database_url)
    first.close()
    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(" ".join(statement.split()).upper())

    sa.event.listen(sa.Engine, "before_cursor_execute", record)  # every engine, this one too
    try:
        again = store_mod.Store.open(fresh_database_url)
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", record)
    again.close()

    writes = ("CREATE", "ALTER", "DROP", "INSERT", "UPDATE", "DELETE", "BEGIN IMMEDIATE")
    assert [s for s in statements if s.startswith(writes) or "ADVISORY" in s] == []
    # A version check, not an Alembic run: no lock that would queue behind a busy writer.
    assert len(statements) <= 3, statements


def test_migrations_build_the_schema_the_models_describe(fresh_database_url: str) -> None:
    with engine_for(fresh_database_url) as engine:
        migrate.upgrade(engine)
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            differences = compare_metadata(context, schema.metadata)

    assert differences == []


def test_downgrading_to_base_and_upgrading_again_gives_a_working_store(
    fresh_database_url: str,
) -> None:
    with engine_for(fresh_database_url) as engine:
        migrate.upgrade(engine)
        with engine.connect().execution_options(**{engines.WRITE: True}) as conn, conn.begin():
            command.downgrade(migrate.alembic_config(conn), "base")

        assert migrate.current_revision(engine) is None
        assert tables(engine) & TABLES == set()

        migrate.upgrade(engine)
        assert migrate.current_revision(engine) == migrate.HEAD
        assert tables(engine) >= TABLES

    store = store_mod.Store.open(fresh_database_url)
    try:
        assert store.list_jobs() == []
    finally:
        store.close()


# Started by the race test: import first, say "ready", then open the store on "go".
_RACER = """
import sys
from runyard.storage import store

print("ready", flush=True)
sys.stdin.readline()
opened = store.Store.open(sys.argv[1])
assert opened.list_jobs() == []
opened.close()
"""


def test_processes_racing_to_migrate_a_fresh_database_all_succeed(
    fresh_database_url: str,
) -> None:
    # On SQLite the race used to be lost now and then only; the last test below pins its
    # cause down deterministically.
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, fresh_database_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for racer in racers:
            assert racer.stdout is not None
            assert racer.stdout.readline().strip() == "ready"
        for racer in racers:  # as close together as we can
            assert racer.stdin is not None
            racer.stdin.write("go\n")
            racer.stdin.flush()
        outcomes = [racer.communicate(timeout=60) for racer in racers]
    finally:
        for racer in racers:
            if racer.poll() is None:
                racer.kill()

    assert [racer.returncode for racer in racers] == [0] * len(racers), outcomes
    with engine_for(fresh_database_url) as engine:
        assert migrate.current_revision(engine) == migrate.HEAD
        assert tables(engine) == TABLES | {"alembic_version"}


def test_a_database_migrated_by_a_newer_runyard_is_refused(fresh_database_url: str) -> None:
    with engine_for(fresh_database_url) as engine:
        migrate.upgrade(engine)
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))

    with pytest.raises(errors.StoreError, match=r"newer schema.*upgrade runyard"):
        store_mod.Store.open(fresh_database_url)


@pytest.mark.postgres
def test_an_unreachable_database_raises_store_error_without_the_password(
    pg_admin_url: str,
) -> None:
    missing = (
        sa.make_url(pg_admin_url)
        .set(password="s3cret-pw", database=f"runyard_missing_{uuid.uuid4().hex[:8]}")
        .render_as_string(hide_password=False)
    )

    with pytest.raises(errors.StoreError, match="Cannot reach the metadata store") as raised:
        store_mod.Store.open(missing)

    assert "runyard_missing_" in str(raised.value)
    assert "s3cret-pw" not in str(raised.value)


def test_opening_a_new_sqlite_database_waits_for_a_writer_holding_it(
    tmp_path: pathlib.Path,
) -> None:
    # Switching a new file to WAL needs it to itself, and SQLite refuses at once, without
    # the busy timeout, while another connection holds it: the store must wait anyway.
    path = tmp_path / "fresh.db"
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.3, writer.execute, args=("COMMIT",))
    release.start()
    try:
        store = store_mod.Store.open(f"sqlite:///{path}")
    finally:
        release.join()
        writer.close()

    try:
        assert store.list_jobs() == []
    finally:
        store.close()
