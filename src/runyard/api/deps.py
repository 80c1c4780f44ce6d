"""What every ``/api/v1`` router shares: the scope checks, the error responses it
documents, and the ``Runyard`` service of the app."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import fastapi

from runyard import errors
from runyard.api import auth, schemas
from runyard.app import service
from runyard.core import tokens

__all__ = ["ERRORS", "READ", "WRITE", "Ryard", "TimeQuery", "parse_time"]

READ = [fastapi.Depends(auth.require(tokens.Scope.READ))]
WRITE = [fastapi.Depends(auth.require(tokens.Scope.WRITE))]
ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": schemas.ErrorOut} for code in (400, 401, 403, 404, 409, 422, 503)
}


def _runyard(request: fastapi.Request) -> service.Runyard:
    ryard: service.Runyard = request.app.state.runyard
    return ryard


Ryard = Annotated[service.Runyard, fastapi.Depends(_runyard)]


# A time in a query string (see ``schemas.ISO_TIME``).
TimeQuery = Annotated[
    str | None,
    fastapi.Query(pattern=schemas.ISO_TIME, max_length=40, description="ISO 8601"),
]


def parse_time(
    text: str | None, name: str, *, zone: dt.tzinfo | None = dt.UTC
) -> dt.datetime | None:
    """``text`` of a ``TimeQuery`` as a time; without a zone it is in ``zone`` (None:
    left naive). Raises ``UsageError`` naming ``name`` for a date that does not exist."""
    if text is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise errors.UsageError(
            f"{name} {text!r} is not a time; give ISO 8601, e.g. 2026-12-01T09:00+01:00"
        ) from None
    if moment.tzinfo is None and zone is not None:
        moment = moment.replace(tzinfo=zone)
    return moment
