"""Alembic environment: runyard runs migrations itself, on a connection it passes in."""

from __future__ import annotations

from alembic import context

from runyard.storage import schema

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=schema.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
