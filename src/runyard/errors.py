"""Every error runyard raises on purpose, under one root.

::

    RunyardError                      exit 1, HTTP 500
    ├── UsageError                    exit 2, HTTP 400   bad input from a user
    │   ├── DefinitionError                              a step or pipeline is defined wrongly
    │   ├── ParameterError            HTTP 422           an unknown parameter or a wrong value
    │   ├── GridError                 HTTP 422           a parameter grid (or grid file) is wrong
    │   └── LoadError                                    FILE.py:PIPELINE cannot be loaded
    ├── NotFoundError                 exit 2, HTTP 404   no job, run or step with that id
    ├── AuthError                     exit 2, HTTP 401   no API token, or one that is not valid
    │   └── ForbiddenError            HTTP 403           the token's scope does not allow it
    ├── OutsideStepError              exit 1, HTTP 500   a step-only call made outside a step
    ├── ConflictError                 exit 2, HTTP 409   not now: the object's state forbids it
    ├── TransitionError               exit 1, HTTP 409   a state change the states table forbids
    └── StoreError                    exit 1, HTTP 503   the metadata store cannot be used

Each class carries the exit code the CLI turns it into and the HTTP status the API answers
with; only the edges (``runyard.cli``, the API) turn them into exits or responses. A
message names what failed, the offending value, and the fix.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "AuthError",
    "ConflictError",
    "DefinitionError",
    "ForbiddenError",
    "GridError",
    "LoadError",
    "NotFoundError",
    "OutsideStepError",
    "ParameterError",
    "RunyardError",
    "StoreError",
    "TransitionError",
    "UsageError",
    "did_you_mean",
]


class RunyardError(Exception):
    """runyard failed."""

    exit_code: int = 1
    http_status: int = 500

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class UsageError(RunyardError):
    """The input given to runyard is not valid."""

    exit_code = 2
    http_status = 400


class DefinitionError(UsageError):
    """A step or pipeline definition is not valid."""


class ParameterError(UsageError):
    """A parameter name or value is not valid."""

    http_status = 422


class GridError(UsageError):
    """A parameter grid is not valid."""

    http_status = 422


class LoadError(UsageError):
    """A pipeline could not be loaded from its file."""


class NotFoundError(RunyardError):
    """No such object."""

    exit_code = 2
    http_status = 404


class AuthError(RunyardError):
    """An API token is needed: send "Authorization: Bearer <token>" (runyard token create)."""

    exit_code = 2
    http_status = 401


class ForbiddenError(AuthError):
    """The API token's scope does not allow this."""

    http_status = 403


class OutsideStepError(RunyardError):
    """This call only works inside a running step."""


class ConflictError(RunyardError):
    """That cannot be done while the object is in this state."""

    exit_code = 2
    http_status = 409


class TransitionError(RunyardError):
    """A state transition that the states table does not allow; this is a runyard bug."""

    http_status = 409


class StoreError(RunyardError):
    """The metadata store cannot be used."""

    http_status = 503


def did_you_mean(value: str, known: Iterable[str]) -> str:
    """Return a hint like "; did you mean 'factor'? Known: factor, limit" (or "" for none)."""
    names = sorted(known)
    if not names:
        return "; there are none"
    close = difflib.get_close_matches(value, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ";"
    return f"{hint} Known: {', '.join(names)}"
