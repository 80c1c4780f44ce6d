"""Retry policies: how often a failed run (or step) is tried again, after what delay, and on
which failures.

A failure is matched by kind: the names of the exception's class and of its base classes
(``ValueError``, ``builtins.OSError``, ``mypkg.errors.Flaky``), or one of runyard's own
kinds for failures that raise nothing in user code:

- ``TimedOut``: a step or run went past its timeout and was killed;
- ``RunProcessDied``: the run's process crashed or exited (segfault, ``os._exit``);
- ``WorkerLost``: the worker executing the run stopped renewing its lease.

Pure: the caller passes a random number in.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from runyard import errors

__all__ = [
    "RUNYARD_KINDS",
    "RetryPolicy",
    "backoff_delay",
    "kind_name",
    "kinds_of",
]

RUNYARD_KINDS = ("TimedOut", "RunProcessDied", "WorkerLost")


def kind_name(kind: type[BaseException]) -> str:
    """The name runyard records for an exception class: ``ValueError``, ``pkg.mod.Error``."""
    if kind.__module__ in ("builtins", "__main__"):
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


def kinds_of(kind: type[BaseException]) -> tuple[str, ...]:
    """The kinds an exception of class ``kind`` matches: its class and its bases, most
    specific first, up to (not including) ``BaseException``."""
    return tuple(kind_name(k) for k in kind.__mro__ if k not in (BaseException, object))


def backoff_delay(delay: float, backoff: float, jitter: float, attempt: int, rand: float) -> float:
    """Seconds to wait after failed ``attempt`` (1-based): ``delay`` times ``backoff`` to the
    power ``attempt - 1``, stretched by up to ``jitter`` (a fraction) using ``rand`` in
    [0, 1)."""
    return delay * backoff ** (attempt - 1) * (1 + jitter * rand)


@dataclasses.dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Try a failed run again up to ``retries`` times, waiting ``delay`` seconds (times
    ``backoff`` per further attempt, plus up to ``jitter`` of it), when its failure matches
    one of ``on`` (all failures when ``on`` is empty). A run that was stopped on purpose
    (KILLED) is never retried."""

    retries: int = 0
    delay: float = 0.0
    backoff: float = 2.0
    jitter: float = 0.1
    on: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        problems = []
        if self.retries < 0:
            problems.append(f"retries={self.retries} (give 0 or more)")
        if self.delay < 0:
            problems.append(f"delay={self.delay} (give 0 or more seconds)")
        if self.backoff < 1:
            problems.append(f"backoff={self.backoff} (give 1 or more)")
        if not 0 <= self.jitter <= 1:
            problems.append(f"jitter={self.jitter} (give a fraction from 0 to 1)")
        for name in self.on:
            if not name or not all(part.isidentifier() for part in name.split(".")):
                problems.append(f"retry on {name!r} (give an exception name like ValueError)")
        if problems:
            raise errors.UsageError(f"Retry policy not valid: {'; '.join(problems)}")

    @classmethod
    def build(
        cls,
        retries: int = 0,
        *,
        delay: float = 0.0,
        backoff: float = 2.0,
        jitter: float = 0.1,
        on: Iterable[type[BaseException] | str] = (),
    ) -> RetryPolicy:
        """A policy from exception classes or names; raises ``UsageError`` when not valid."""
        names = tuple(dict.fromkeys(n if isinstance(n, str) else kind_name(n) for n in on))
        return cls(retries, float(delay), float(backoff), float(jitter), names)

    def matches(self, kinds: Sequence[str]) -> bool:
        """Whether a failure of these kinds is one to retry. A name given without its
        module matches a kind by its last part: ``ConnectionError`` matches
        ``builtins.ConnectionError`` and ``ConnectionError``."""
        if not self.on:
            return True
        short = {k.rpartition(".")[2] for k in kinds}
        return any(name in kinds or ("." not in name and name in short) for name in self.on)

    def allows(self, attempt: int, kinds: Sequence[str]) -> bool:
        """Whether a run whose attempt ``attempt`` failed with ``kinds`` is tried again."""
        return attempt <= self.retries and self.matches(kinds)

    def delay_after(self, attempt: int, rand: float) -> float:
        """Seconds to wait before the attempt after failed ``attempt``."""
        return backoff_delay(self.delay, self.backoff, self.jitter, attempt, rand)

    def to_json(self) -> dict[str, Any]:
        return {
            "retries": self.retries,
            "delay": self.delay,
            "backoff": self.backoff,
            "jitter": self.jitter,
            "on": list(self.on),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RetryPolicy:
        return cls(
            int(data["retries"]),
            float(data["delay"]),
            float(data["backoff"]),
            float(data["jitter"]),
            tuple(data.get("on") or ()),
        )
