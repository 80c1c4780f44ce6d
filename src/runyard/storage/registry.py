"""SQL for the registry of processing steps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from runyard.core import registry
from runyard.storage import schema

__all__ = ["find", "register"]

_UPDATED = ("reference", "snapshot_id", "description", "params_schema", "registered_at")


def register(conn: sa.Connection, registrations: Sequence[registry.Registration]) -> None:
    """Insert each registration; one already there (same kind, name and version: the same
    code) is moved to the newest reference and snapshot."""
    if not registrations:
        return
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = insert(schema.registrations)
    statement = statement.on_conflict_do_update(
        index_elements=["kind", "name", "version"],
        set_={name: statement.excluded[name] for name in _UPDATED},
    )
    conn.execute(
        statement,
        [
            {
                "kind": r.kind.value,
                "name": r.name,
                "version": r.version,
                "reference": r.reference,
                "snapshot_id": r.snapshot_id,
                "description": r.description,
                "params_schema": r.params_schema,
                "registered_at": r.registered_at,
            }
            for r in registrations
        ],
    )


def find(
    conn: sa.Connection, *, name: str | None = None, kind: registry.Kind | None = None
) -> list[registry.Registration]:
    """Registrations by name (all when None), oldest version first within a name."""
    c = schema.registrations.c
    query = sa.select(schema.registrations).order_by(c.name, c.registered_at, c.version)
    if name is not None:
        query = query.where(c.name == name)
    if kind is not None:
        query = query.where(c.kind == kind.value)
    return [_registration(row) for row in conn.execute(query)]


def _registration(row: Any) -> registry.Registration:
    return registry.Registration(
        kind=registry.Kind(row.kind),
        name=row.name,
        version=row.version,
        reference=row.reference,
        snapshot_id=row.snapshot_id,
        description=row.description,
        params_schema=row.params_schema,
        registered_at=row.registered_at,
    )
