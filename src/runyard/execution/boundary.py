"""The user-code error boundary: a step's exception becomes a recorded failure, not a crash.

Everything raised by user code is caught here and described (type, message, traceback
without runyard's own frames), so a failing step is never confused with a runyard bug.
"""

from __future__ import annotations

import dataclasses
import pathlib
import traceback

from runyard.core import retries

__all__ = ["UserError", "describe"]

_RUNYARD_DIR = str(pathlib.Path(__file__).resolve().parent.parent)


@dataclasses.dataclass(frozen=True, slots=True)
class UserError:
    """A failure of user code, ready to be stored or sent to another process."""

    type: str
    message: str
    traceback: str
    kinds: tuple[str, ...] = ()  # its class and base classes, to match retry policies

    def __str__(self) -> str:
        return f"{self.type}: {self.message}" if self.message else self.type


def describe(exc: BaseException) -> UserError:
    """Describe ``exc`` raised by user code, dropping the frames of runyard's runner."""
    kinds = retries.kinds_of(type(exc))
    if isinstance(exc, SystemExit):
        return UserError(
            "SystemExit", f"the step called sys.exit({exc.code!r})", _format(exc), kinds
        )
    # A failure in a step's own process (a script, a notebook) carries that process's
    # traceback; runyard's frames around it say nothing about the user's code.
    own = getattr(exc, "user_traceback", None)
    return UserError(kinds[0], str(exc), own if isinstance(own, str) else _format(exc), kinds)


def _format(exc: BaseException) -> str:
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_RUNYARD_DIR):
        if tb.tb_next is None:
            break
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))
