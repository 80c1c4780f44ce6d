"""What the store keeps: frozen records of jobs, runs, step runs, events, logs and artifacts.

Records are values: change one with ``evolve`` and hand the copy to the store.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any, Self, TypedDict

from runyard.core import hooks, retries, schedules, states

__all__ = [
    "Artifact",
    "Event",
    "Job",
    "JobSummary",
    "LogLine",
    "Notice",
    "Run",
    "RunParams",
    "Schedule",
    "StepRun",
    "StopOutcome",
    "WorkData",
    "Worker",
]


class RunParams(TypedDict):
    """One run's full parameter assignment, in JSON form."""

    pipeline: dict[str, Any]
    steps: dict[str, dict[str, Any]]


class _Record:
    def evolve(self, **changes: Any) -> Self:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    def to_json(self) -> dict[str, Any]:
        def plain(value: Any) -> Any:
            if isinstance(value, dt.datetime):
                return value.isoformat()
            if isinstance(value, tuple):
                return [plain(v) for v in value]
            if hasattr(value, "to_json"):
                return value.to_json()
            return value

        return {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]


@dataclasses.dataclass(frozen=True, slots=True)
class Job(_Record):
    """A request to run one pipeline over a set of parameter combinations."""

    id: str
    name: str
    pipeline_name: str
    pipeline_version: str
    pipeline_ref: str  # where to load the pipeline from: "path/to/file.py:attr"
    grid: Mapping[str, Any]  # the grid as given (JSON), before deselection
    deselected: tuple[int, ...]  # grid indices left out
    tags: tuple[str, ...]
    max_parallel_runs: int
    run_count: int
    created_at: dt.datetime
    run_timeout: float | None = None  # seconds a run may take before it is killed
    memory_limit_mb: int | None = None  # each run's address-space cap
    retry: retries.RetryPolicy | None = None  # a failed run is tried again by this policy
    hooks: tuple[hooks.Hook, ...] = ()  # who is told of failures, successes, completion
    max_retained_runs: int | None = None  # older finished runs beyond it are deleted
    snapshot_id: str | None = None  # the project snapshot its runs execute in, if any
    parent_job_id: str | None = None  # a sub job: the job whose step made it
    parent_run_id: str | None = None  # ... and the run of that step

    def to_json(self) -> dict[str, Any]:
        out = _Record.to_json(self)
        # A webhook URL often carries a secret token: it is stored, never shown.
        out["hooks"] = [{"event": h.event.value, "target": h.display} for h in self.hooks]
        return out


@dataclasses.dataclass(frozen=True, slots=True)
class Schedule(_Record):
    """A job's trigger and where it stands."""

    job_id: str
    trigger: schedules.Trigger
    paused: bool
    next_fire_at: dt.datetime | None  # None: it will not fire again


@dataclasses.dataclass(frozen=True, slots=True)
class StopOutcome(_Record):
    """What a stop request did: runs ended at once, runs asked to stop, runs already over."""

    killed: tuple[str, ...]
    requested: tuple[str, ...]
    finished: tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Worker(_Record):
    """A process that executes runs: ``runyard serve`` or ``runyard worker``."""

    id: str
    host: str
    pid: int
    kind: str  # "serve" or "worker"
    slots: int
    started_at: dt.datetime
    heartbeat_at: dt.datetime
    stopped_at: dt.datetime | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class JobSummary(_Record):
    """A job with what its runs say: counts per state, first start and last finish."""

    job: Job
    counts: Mapping[states.RunState, int]
    started_at: dt.datetime | None
    finished_at: dt.datetime | None

    @property
    def id(self) -> str:
        return self.job.id

    @property
    def state(self) -> states.JobState:
        return states.job_state(self.counts)

    @property
    def done(self) -> int:
        return sum(self.counts.get(s, 0) for s in states.FINISHED_RUN_STATES)

    @property
    def processing_state(self) -> states.ProcessingState:
        return states.processing_state(
            has_processing=bool(self.job.pipeline_name),
            state=self.state,
            runs=sum(self.counts.values()),
        )

    def to_json(self) -> dict[str, Any]:
        out = self.job.to_json()
        out["state"] = str(self.state)
        out["run_counts"] = {str(k): v for k, v in sorted(self.counts.items()) if v}
        out["started_at"] = self.started_at.isoformat() if self.started_at else None
        out["finished_at"] = self.finished_at.isoformat() if self.finished_at else None
        return out


@dataclasses.dataclass(frozen=True, slots=True)
class Run(_Record):
    """One execution of a job's pipeline with one concrete parameter assignment."""

    id: str
    job_id: str
    index: int  # position in the job's expanded grid
    params: RunParams
    state: states.RunState
    created_at: dt.datetime
    queued_at: dt.datetime | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    worker: str | None = None  # "host:pid" of the process that executed it
    reason: str | None = None  # why it ended, when not SUCCESS
    priority: int = 0  # higher runs first; FIFO within a priority
    stop_requested_at: dt.datetime | None = None
    tick_at: dt.datetime | None = None  # the schedule tick that made it, if any
    parent_run_id: str | None = None  # the run this one retries
    retried_by: str | None = None  # the run that retries this one; it no longer counts
    reuse: Mapping[str, Mapping[str, str]] | None = None  # {step: {output: uri}} reused
    attempt: int = 1  # 1 for a first run; n for the (n-1)th retry of it
    not_before: dt.datetime | None = None  # a retry waiting out its backoff is not claimed before
    note: str | None = None  # how its environment differed from its job's snapshot's, if it did

    @property
    def duration(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


@dataclasses.dataclass(frozen=True, slots=True)
class StepRun(_Record):
    """One attempt of one step inside a run."""

    run_id: str
    step_name: str
    attempt: int
    state: states.StepState
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None

    @property
    def duration(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


@dataclasses.dataclass(frozen=True, slots=True)
class Event(_Record):
    """One entry of the append-only event log: a state transition or a job event."""

    id: int | None
    at: dt.datetime
    kind: str  # "job_created", "run_state", "step_state"
    job_id: str
    run_id: str | None = None
    step_name: str | None = None
    old_state: str | None = None
    new_state: str | None = None
    message: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Notice(_Record):
    """One hook to call about one event: delivered with retries by any engine."""

    id: int
    job_id: str
    run_id: str | None
    event: hooks.HookEvent
    target: str  # the hook's URL or function reference
    payload: Mapping[str, Any]  # the JSON body a webhook receives
    state: states.NoticeState
    attempts: int
    created_at: dt.datetime
    next_attempt_at: dt.datetime | None = None
    delivered_at: dt.datetime | None = None
    last_error: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class LogLine(_Record):
    """One line a step wrote to stdout or stderr, or one ``logging`` record."""

    run_id: str
    step_name: str | None  # None: written by the run's process outside any step
    stream: str  # "stdout", "stderr" or "log"
    at: dt.datetime
    text: str
    level: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Artifact(_Record):
    """A stored output value of one step of one run."""

    run_id: str
    step_name: str
    output_name: str
    uri: str
    size: int
    serializer: str
    created_at: dt.datetime


@dataclasses.dataclass(frozen=True, slots=True)
class WorkData(_Record):
    """A file runyard keeps: uploaded as a job's input, or written by a step."""

    id: str
    name: str
    size: int
    digest: str  # sha256 of the content, hex
    media_type: str
    uri: str  # where the content is, in the artifact store
    created_at: dt.datetime
    producer_job_id: str | None = None  # None: uploaded
    producer_run_id: str | None = None
    producer_step: str | None = None
    read_by: tuple[str, ...] = ()  # the jobs that take it as an input
