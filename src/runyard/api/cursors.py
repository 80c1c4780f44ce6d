"""Page cursors of the job lists: opaque text naming the last job of a page."""

from __future__ import annotations

import base64
import datetime as dt

from runyard import errors

__all__ = ["decode", "encode"]


def encode(at: dt.datetime, job_id: str) -> str:
    """The cursor after the job created ``at`` with id ``job_id``."""
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{job_id}".encode()).decode()


def decode(cursor: str | None) -> tuple[dt.datetime, str] | None:
    """(created_at, id) a cursor names; None for none. Raises ``UsageError`` for text
    that is not a cursor ``encode`` made."""
    if cursor is None:
        return None
    try:
        at, _, job_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        when = dt.datetime.fromisoformat(at)
        if when.tzinfo is None or not job_id:
            raise ValueError(cursor)
        return when, job_id
    except ValueError:
        raise errors.UsageError(
            f"cursor {cursor!r} is not one this API gave; pass next_cursor from a page"
        ) from None
