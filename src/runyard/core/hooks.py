"""Hooks: who is told when a run fails or succeeds, or a job completes.

A hook's target is a webhook URL (``https://...``; runyard POSTs a JSON body to it) or a
Python function given by reference (``path/to/hooks.py:notify`` or ``package.module:notify``)
that runyard calls with a ``Notice``. A job's hooks are stored with it, so any engine that
serves its store can deliver them. Pure: references are checked for form only here.
"""

from __future__ import annotations

import dataclasses
import enum
import urllib.parse
from collections.abc import Mapping
from typing import Any

from runyard import errors

__all__ = ["Hook", "HookEvent", "redact"]


class HookEvent(enum.StrEnum):
    RUN_FAILURE = "run_failure"  # a run ended FAILURE and will not be retried
    RUN_SUCCESS = "run_success"  # a run ended SUCCESS
    JOB_COMPLETE = "job_complete"  # a job's last run ended (for a schedule: a tick's batch)


@dataclasses.dataclass(frozen=True, slots=True)
class Hook:
    """Tell ``target`` of every ``event`` of a job."""

    event: HookEvent
    target: str

    def __post_init__(self) -> None:
        if self.is_webhook:
            parts = urllib.parse.urlsplit(self.target)
            if not parts.hostname:
                raise errors.UsageError(
                    f"Hook URL {redact(self.target)!r} has no host; give one like "
                    "https://hooks.example.com/runyard"
                )
            return
        where, colon, name = self.target.rpartition(":")
        if not colon or not where or not all(p.isidentifier() for p in name.split(".")):
            raise errors.UsageError(
                f"Hook {self.target!r} is neither an http(s) URL nor a function reference; "
                "give https://host/path, path/to/file.py:function or package.module:function"
            )

    @property
    def is_webhook(self) -> bool:
        return self.target.startswith(("http://", "https://"))

    @property
    def display(self) -> str:
        """The target as it may be shown or logged: a URL without its path and query,
        which often carry a secret token."""
        return redact(self.target) if self.is_webhook else self.target

    def to_json(self) -> dict[str, Any]:
        return {"event": self.event.value, "target": self.target}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Hook:
        return cls(HookEvent(data["event"]), str(data["target"]))


def redact(url: str) -> str:
    """``url`` with its user info, path, query and fragment hidden."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    hidden = "/..." if (parts.path not in ("", "/") or parts.query or parts.fragment) else ""
    return f"{parts.scheme}://{host}{hidden}"
