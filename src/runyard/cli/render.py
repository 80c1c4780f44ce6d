"""How the CLI shows things: durations, times, states, progress cells and JSON."""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import Any

from rich.console import Console
from rich.text import Text

from runyard.core import records, snapshots, states

__all__ = [
    "console",
    "duration",
    "err_console",
    "job_json",
    "progress",
    "relative",
    "run_json",
    "short_duration",
    "size",
    "state_text",
    "to_json",
]

# Piped output is read by scripts and people alike: never cut ids to fit 80 columns.
console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 240)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

_STYLE = {
    "SUCCESS": "green",
    "FAILURE": "red",
    "KILLED": "magenta",
    "UPSTREAM_FAILED": "red",
    "RUNNING": "cyan",
    "STARTING": "cyan",
    "FINISHING": "cyan",
    "EGRESS": "cyan",
    "QUEUED": "yellow",
    "PENDING": "yellow",
    "SKIPPED": "blue",
    "CREATED": "white",
}


def state_text(state: str) -> Text:
    return Text(str(state).lower(), style=_STYLE.get(str(state), ""))


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return "Less than a second" if seconds < 0.5 else f"{seconds:.1f} seconds"
    if seconds < 60:
        return f"{seconds:.1f} seconds" if seconds < 10 else f"{seconds:.0f} seconds"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} minutes {sec} seconds" if sec else f"{minutes} minutes"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} hours {minutes} minutes"


def short_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.1f} s" if seconds < 60 else duration(seconds)


def size(count: int) -> str:
    """Bytes for people: ``512 B``, ``1.5 KB``, ``50.0 MB``, ``1.20 GB``."""
    return snapshots.size_text(count)


def relative(when: dt.datetime | None, now: dt.datetime | None = None) -> str:
    if when is None:
        return "-"
    now = now or dt.datetime.now(dt.UTC)
    ago = (now - when).total_seconds()
    if ago < 5:
        return "just now"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if ago >= size:
            n = int(ago // size)
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return "just now"


def progress(summary: records.JobSummary) -> str:
    """``succeeded + failed / total`` (killed runs count as failed here)."""
    ok = summary.counts.get(states.RunState.SUCCESS, 0)
    bad = summary.counts.get(states.RunState.FAILURE, 0)
    bad += summary.counts.get(states.RunState.KILLED, 0)
    total = sum(summary.counts.values()) or summary.job.run_count
    return f"{ok} + {bad} / {total}"


def job_duration(summary: records.JobSummary) -> float | None:
    if summary.started_at is None:
        return None
    end = summary.finished_at or dt.datetime.now(dt.UTC)
    return (end - summary.started_at).total_seconds()


def run_json(run: records.Run) -> dict[str, Any]:
    out = run.to_json()
    out["state"] = str(run.state)
    out["duration"] = run.duration
    return out


def job_json(summary: records.JobSummary, runs: list[records.Run]) -> dict[str, Any]:
    out = summary.to_json()
    out["progress"] = progress(summary)
    out["duration"] = job_duration(summary)
    out["runs"] = [{k: v for k, v in run_json(r).items() if k != "job_id"} for r in runs]
    return out


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=False, default=str)
