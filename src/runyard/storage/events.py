"""Writing to the append-only event log."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from runyard.storage import schema

__all__ = ["insert"]


def insert(conn: sa.Connection, events: Sequence[dict[str, Any]]) -> None:
    """Append ``events`` (rows of the events table), in batches."""
    for start in range(0, len(events), 5000):
        conn.execute(schema.events.insert(), events[start : start + 5000])
