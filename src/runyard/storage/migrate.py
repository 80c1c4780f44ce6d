"""Bringing a database's schema up to date with Alembic."""

from __future__ import annotations

import pathlib
from typing import TYPE_CHECKING

import sqlalchemy as sa

from runyard import errors
from runyard.storage import engine as engines

__all__ = ["HEAD", "alembic_config", "current_revision", "upgrade"]

# The newest migration. A test checks it against the migration scripts, so that opening a
# store that is up to date costs one SELECT instead of loading Alembic.
HEAD = "0014"

_LOCK_KEY = 0x52554E59  # PostgreSQL advisory lock held while migrating

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic is imported only when a migration is needed: every CLI command opens the store,
# and an up-to-date store costs one SELECT.


def alembic_config(connection: sa.Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(pathlib.Path(__file__).parent / "migrations"))
    config.attributes["connection"] = connection
    return config


def script_head() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: sa.Engine) -> str | None:
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(engine: sa.Engine) -> None:
    """Migrate ``engine``'s database to ``HEAD``; safe when several processes race to do it.

    Raises ``StoreError`` when the database is newer than this runyard or cannot be reached.
    """
    try:
        revision = current_revision(engine)
        if revision == HEAD:
            return
        from alembic import command

        writer = engine.connect().execution_options(**{engines.WRITE: True})
        with writer as conn, conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
            command.upgrade(alembic_config(conn), "head")
    except sa.exc.OperationalError as exc:
        raise errors.StoreError(
            f"Cannot reach the metadata store at {engine.url.render_as_string()}: "
            f"{exc.orig}; check RUNYARD_DATABASE_URL and that the database is running"
        ) from exc
    except Exception as exc:
        if "Can't locate revision" in str(exc):
            raise errors.StoreError(
                f"The metadata store at {engine.url.render_as_string()} has a newer schema "
                f"than this runyard knows ({exc}); upgrade runyard"
            ) from exc
        raise
