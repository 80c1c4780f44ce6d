"""Writing to the append-only event log."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from runyard.storage import schema

__all__ = ["insert", "run_state"]


def insert(conn: sa.Connection, events: Sequence[dict[str, Any]]) -> None:
    """Append ``events`` (rows of the events table), in batches."""
    for start in range(0, len(events), 5000):
        conn.execute(schema.events.insert(), events[start : start + 5000])


def run_state(
    at: dt.datetime, job_id: str, run_id: str, old: str, new: str, message: str | None
) -> dict[str, Any]:
    """The event row of run ``run_id`` moving from state ``old`` to ``new``."""
    return {
        "at": at,
        "kind": "run_state",
        "job_id": job_id,
        "run_id": run_id,
        "step_name": None,
        "old_state": old,
        "new_state": new,
        "message": message,
    }
