"""What the pages show, worked out from records: durations, progress, a job's trigger, the
parameters that vary, a run's timeline. Pure: no store, no clock (``now`` is passed in)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

from runyard.core import grid as grid_mod
from runyard.core import records, states

__all__ = [
    "Bar",
    "Progress",
    "axes_of",
    "duration",
    "format_value",
    "is_done",
    "progress",
    "timeline",
    "trigger_text",
    "value_at",
]

# Run and step-run states that are over; the rest are still going.
_DONE = {"SUCCESS", "FAILURE", "KILLED", "SKIPPED", "UPSTREAM_FAILED"}


@dataclasses.dataclass(frozen=True, slots=True)
class Progress:
    total: int
    succeeded: int
    failed: int  # FAILURE and KILLED

    @property
    def done(self) -> int:
        return self.succeeded + self.failed

    @property
    def percent(self) -> float:
        return 100.0 * self.done / self.total if self.total else 0.0

    @property
    def succeeded_percent(self) -> float:
        return 100.0 * self.succeeded / self.total if self.total else 0.0

    @property
    def failed_percent(self) -> float:
        return 100.0 * self.failed / self.total if self.total else 0.0


def progress(counts: Mapping[Any, int]) -> Progress:
    """(succeeded + failed) of the runs counted by state."""
    by_name = {str(k): v for k, v in counts.items()}
    failed = by_name.get("FAILURE", 0) + by_name.get("KILLED", 0)
    return Progress(sum(by_name.values()), by_name.get("SUCCESS", 0), failed)


def duration(started: dt.datetime | None, finished: dt.datetime | None, now: dt.datetime) -> str:
    """'1.2 s', '3 min 4 s', '2 h 5 min'; running ones up to ``now``; '' before a start."""
    if started is None:
        return ""
    seconds = max(((finished or now) - started).total_seconds(), 0.0)
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def trigger_text(schedule: records.Schedule | None) -> str:
    """'now', 'at 2026-12-01 09:00 UTC', 'cron 0 9 * * 1-5 (Europe/Amsterdam)'."""
    if schedule is None:
        return "now"
    trigger = schedule.trigger
    if trigger.cron:
        zone = "" if trigger.timezone == "UTC" else f" ({trigger.timezone})"
        return f"cron {trigger.cron}{zone}" + (" · paused" if schedule.paused else "")
    assert trigger.at is not None
    return f"at {trigger.at:%Y-%m-%d %H:%M} UTC" + (" · paused" if schedule.paused else "")


def axes_of(job_grid: Mapping[str, Any]) -> list[tuple[str | None, str]]:
    """The parameters that vary in a job's grid, as (step or None, name), grid order."""
    axes: list[tuple[str | None, str]] = []
    for scope, entries in job_grid.items():
        if not isinstance(entries, Mapping):
            continue
        for key, values in entries.items():
            if isinstance(values, list) and len(values) > 1:
                axes.append((None if scope == grid_mod.PIPELINE_KEY else scope, key))
    return axes


def value_at(params: Mapping[str, Any], axis: tuple[str | None, str]) -> Any:
    scope, key = axis
    if scope is None:
        return params.get("pipeline", {}).get(key)
    return params.get("steps", {}).get(scope, {}).get(key)


def format_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


@dataclasses.dataclass(frozen=True, slots=True)
class Bar:
    """One step run on a timeline: offsets in percent of the run's span."""

    step_name: str
    attempt: int
    state: str
    left: float
    width: float
    label: str


def timeline(steps: Sequence[records.StepRun], now: dt.datetime) -> tuple[list[Bar], str]:
    """Bars of the step runs that started, placed on the span from the first start to the
    last end (``now`` for those still running), and the span's length as text."""
    started = [s for s in steps if s.started_at is not None]
    if not started:
        return [], ""
    first = min(s.started_at for s in started if s.started_at is not None)
    ends = [s.finished_at or now for s in started]
    last = max(ends)
    span = max((last - first).total_seconds(), 1e-6)
    bars = []
    for step, end in zip(started, ends, strict=True):
        assert step.started_at is not None
        left = (step.started_at - first).total_seconds() / span * 100
        width = max((end - step.started_at).total_seconds() / span * 100, 0.4)
        bars.append(
            Bar(
                step.step_name,
                step.attempt,
                str(step.state),
                round(left, 3),
                round(min(width, 100 - left), 3),
                duration(step.started_at, step.finished_at, now),
            )
        )
    return bars, duration(first, last, now)


def is_done(state: str | states.RunState) -> bool:
    return str(state) in _DONE
