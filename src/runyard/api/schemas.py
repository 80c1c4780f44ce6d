"""What the REST API answers with: Pydantic models, so the OpenAPI document says exactly it."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import pydantic

from runyard.core import records, registry, schedules

__all__ = [
    "ErrorOut",
    "GridPreviewIn",
    "GridPreviewOut",
    "JobBatch",
    "JobCreate",
    "JobIds",
    "JobOut",
    "JobPage",
    "JobWorkDataOut",
    "KeptFileOut",
    "LogLineOut",
    "LogPage",
    "ParametersIn",
    "ProcessingRef",
    "ProcessingStepOut",
    "ResultOut",
    "RetriedOut",
    "RunDetailOut",
    "RunOut",
    "RunPreviewOut",
    "RunsMadeOut",
    "ScheduleIn",
    "ScheduleOut",
    "SchedulePreview",
    "StepRunOut",
    "StopOut",
    "TagsIn",
    "WorkDataOut",
]


class ErrorOut(pydantic.BaseModel):
    """Every error: what failed and how to fix it."""

    error: str  # the error's kind, e.g. NotFoundError
    message: str


class JobOut(pydantic.BaseModel):
    id: str
    name: str
    pipeline_name: str  # "" until a processing step is selected
    pipeline_version: str
    state: str  # CREATED, QUEUED, RUNNING, SUCCESS, FAILURE, KILLED
    # created, ready_for_processing, pending, processing, completed, error
    processing_state: str
    error_description: str | None  # why it ended in error: its first failed run's reason
    tags: list[str]
    run_count: int
    run_counts: dict[str, int]
    max_parallel_runs: int
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    snapshot_id: str | None
    parent_job_id: str | None  # a sub job: the job whose step made it
    grid: dict[str, Any]

    @classmethod
    def of(cls, summary: records.JobSummary, error: str | None = None) -> JobOut:
        job = summary.job
        return cls(
            id=job.id,
            name=job.name,
            pipeline_name=job.pipeline_name,
            pipeline_version=job.pipeline_version,
            state=str(summary.state),
            processing_state=str(summary.processing_state),
            error_description=error,
            tags=list(job.tags),
            run_count=job.run_count,
            run_counts={str(k): v for k, v in sorted(summary.counts.items()) if v},
            max_parallel_runs=job.max_parallel_runs,
            created_at=job.created_at,
            started_at=summary.started_at,
            finished_at=summary.finished_at,
            snapshot_id=job.snapshot_id,
            parent_job_id=job.parent_job_id,
            grid=dict(job.grid),
        )


class JobPage(pydantic.BaseModel):
    items: list[JobOut]
    next_cursor: str | None  # pass it as ``cursor`` for the next page; None: no more


class RunOut(pydantic.BaseModel):
    id: str
    job_id: str
    index: int
    state: str
    params: dict[str, Any]
    created_at: dt.datetime
    queued_at: dt.datetime | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    duration: float | None
    worker: str | None
    reason: str | None
    priority: int
    attempt: int
    parent_run_id: str | None
    retried_by: str | None
    note: str | None

    @classmethod
    def of(cls, run: records.Run) -> RunOut:
        return cls(
            id=run.id,
            job_id=run.job_id,
            index=run.index,
            state=str(run.state),
            params=dict(run.params),
            created_at=run.created_at,
            queued_at=run.queued_at,
            started_at=run.started_at,
            finished_at=run.finished_at,
            duration=run.duration,
            worker=run.worker,
            reason=run.reason,
            priority=run.priority,
            attempt=run.attempt,
            parent_run_id=run.parent_run_id,
            retried_by=run.retried_by,
            note=run.note,
        )


class StepRunOut(pydantic.BaseModel):
    step_name: str
    attempt: int
    state: str
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    duration: float | None
    error_type: str | None
    error_message: str | None
    traceback: str | None

    @classmethod
    def of(cls, step: records.StepRun) -> StepRunOut:
        return cls(
            step_name=step.step_name,
            attempt=step.attempt,
            state=str(step.state),
            started_at=step.started_at,
            finished_at=step.finished_at,
            duration=step.duration,
            error_type=step.error_type,
            error_message=step.error_message,
            traceback=step.traceback,
        )


class KeptFileOut(pydantic.BaseModel):
    """A file a step left with its run: an executed notebook or its HTML."""

    step: str
    name: str
    path: str  # where the artifact store keeps it
    url: str  # its content, through the API


class RunDetailOut(RunOut):
    steps: list[StepRunOut]
    files: list[KeptFileOut] = []


class LogLineOut(pydantic.BaseModel):
    position: int  # the line's place in the run's log: ask for ``after`` it to go on
    step_name: str | None
    stream: str
    level: str | None
    at: dt.datetime
    text: str


class LogPage(pydantic.BaseModel):
    items: list[LogLineOut]
    next_after: int | None  # pass it as ``after`` for the next page; None: no more yet


class StopOut(pydantic.BaseModel):
    killed: list[str]  # queued runs that ended KILLED at once
    requested: list[str]  # running runs asked to stop (SIGTERM, then SIGKILL)
    finished: list[str]  # runs that had already ended: unchanged

    @classmethod
    def of(cls, outcome: records.StopOutcome) -> StopOut:
        return cls(
            killed=list(outcome.killed),
            requested=list(outcome.requested),
            finished=list(outcome.finished),
        )


class ProcessingStepOut(pydantic.BaseModel):
    """A registered pipeline or step, at one version."""

    kind: str  # pipeline or step
    name: str
    version: str
    description: str
    registered_at: dt.datetime
    snapshot_id: str | None
    params_schema: dict[str, Any]  # JSON Schema: {"pipeline", "steps": {...}} for a pipeline

    @classmethod
    def of(cls, registration: registry.Registration) -> ProcessingStepOut:
        return cls(
            kind=registration.kind.value,
            name=registration.name,
            version=registration.version,
            description=registration.description,
            registered_at=registration.registered_at,
            snapshot_id=registration.snapshot_id,
            params_schema=registration.params_schema,
        )


class ProcessingRef(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True)

    name: str = pydantic.Field(min_length=1, max_length=200)
    version: str | None = pydantic.Field(default=None, max_length=200)


# A time given in a request: ISO 8601, as ``2026-12-01T09:00+01:00``. A string with a
# pattern, not a ``datetime``, which would take a number of seconds since 1970 too.
ISO_TIME = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?)?$"
IsoTime = Annotated[str, pydantic.StringConstraints(pattern=ISO_TIME, max_length=40)]


class ScheduleIn(pydantic.BaseModel):
    """When a job's runs are made: once ``at`` a time, or at every tick of ``cron`` in
    ``timezone`` (between ``start`` and ``end``). Neither: now."""

    model_config = pydantic.ConfigDict(extra="forbid", strict=True)

    at: IsoTime | None = None  # without a zone: in ``timezone``
    cron: str | None = pydantic.Field(default=None, min_length=1, max_length=200)
    timezone: str = pydantic.Field(default="UTC", min_length=1, max_length=64)
    start: IsoTime | None = None
    end: IsoTime | None = None
    overlap: schedules.Overlap = schedules.Overlap.SKIP
    catchup: schedules.Catchup = schedules.Catchup.LATEST
    catchup_limit: int = pydantic.Field(default=10, ge=1, le=1000)


class ScheduleOut(pydantic.BaseModel):
    job_id: str
    kind: str  # at, cron
    at: dt.datetime | None
    cron: str | None
    timezone: str
    start: dt.datetime | None
    end: dt.datetime | None
    overlap: str
    catchup: str
    paused: bool
    next_fire_at: dt.datetime | None  # None: it will not fire again
    next_fires: list[dt.datetime]  # the next few fire times (none while paused)

    @classmethod
    def of(cls, schedule: records.Schedule, *, count: int = 5) -> ScheduleOut:
        trigger = schedule.trigger
        fires: list[dt.datetime] = []
        if not schedule.paused and schedule.next_fire_at is not None:
            fires.append(schedule.next_fire_at)
            while len(fires) < count and (following := trigger.next_after(fires[-1])):
                fires.append(following)
        return cls(
            job_id=schedule.job_id,
            kind=trigger.kind,
            at=trigger.at,
            cron=trigger.cron,
            timezone=trigger.timezone,
            start=trigger.start,
            end=trigger.end,
            overlap=str(trigger.overlap),
            catchup=str(trigger.catchup),
            paused=schedule.paused,
            next_fire_at=schedule.next_fire_at,
            next_fires=fires,
        )


class SchedulePreview(pydantic.BaseModel):
    fires: list[dt.datetime]  # when it would fire from now, the first first


class RunsMadeOut(pydantic.BaseModel):
    runs: int  # how many runs were made


class RetriedOut(pydantic.BaseModel):
    run_ids: list[str]  # the new runs, one per run retried


class GridPreviewIn(pydantic.BaseModel):
    """A grid to expand without creating anything, as ``POST /jobs`` takes it."""

    model_config = pydantic.ConfigDict(extra="forbid", strict=True)

    version: str | None = pydantic.Field(default=None, max_length=200)
    grid: dict[str, Any] | None = None
    limit: int = pydantic.Field(default=1000, ge=1, le=10_000)


class RunPreviewOut(pydantic.BaseModel):
    index: int
    params: dict[str, Any]  # {"pipeline": {...}, "steps": {"step": {...}}}


class GridPreviewOut(pydantic.BaseModel):
    size: int  # runs the grid expands to
    axes: list[str]  # the parameters that vary: "name" (pipeline) or "step.name"
    runs: list[RunPreviewOut]  # the first ``limit`` of them


class JobCreate(pydantic.BaseModel):
    """A job of a registered processing step: a grid (lists of values per parameter, as
    in a ``.parameters.json`` file) or one set of ``parameters``, not both."""

    model_config = pydantic.ConfigDict(extra="forbid", strict=True)

    processing: ProcessingRef | None = None  # None: an empty job, configured later
    name: str | None = pydantic.Field(default=None, min_length=1, max_length=200)
    tags: list[str] = pydantic.Field(default_factory=list, max_length=100)
    grid: dict[str, Any] | None = None
    # A pipeline's: {"pipeline": {...}, "steps": {"step": {...}}}; a step's: {"param": value}
    parameters: dict[str, Any] | None = None
    start: bool = True  # queue its runs now (an engine runs them)
    max_parallel_runs: int | None = pydantic.Field(default=None, ge=1, le=100_000)
    priority: int = pydantic.Field(default=0, ge=-1_000_000, le=1_000_000)
    input_workdata: list[str] = pydantic.Field(default_factory=list, max_length=10_000)
    # Runs of the grid left out: an index, or a filter on parameter values ({"lr": 0.1},
    # {"step.param": 3}) that leaves out every run it matches.
    deselect: list[int | dict[str, Any]] = pydantic.Field(default_factory=list, max_length=100_000)
    schedule: ScheduleIn | None = None  # at a time or on cron; None: runs are made now
    run_timeout: float | None = pydantic.Field(default=None, gt=0, le=31 * 24 * 3600)


class ParametersIn(pydantic.BaseModel):
    """One set of parameters or a grid, not both."""

    model_config = pydantic.ConfigDict(extra="forbid", strict=True)

    parameters: dict[str, Any] | None = None
    grid: dict[str, Any] | None = None


class TagsIn(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True)

    tags: list[str] = pydantic.Field(max_length=100)


class ResultOut(pydantic.BaseModel):
    result: Any  # what the job's step returned, as JSON


class JobBatch(pydantic.BaseModel):
    """Many jobs in one request, all or none."""

    model_config = pydantic.ConfigDict(extra="forbid", strict=True)

    jobs: list[JobCreate] = pydantic.Field(min_length=1, max_length=100_000)


class JobIds(pydantic.BaseModel):
    ids: list[str]  # the new jobs, in the order given


class WorkDataOut(pydantic.BaseModel):
    """A kept file, with where it came from and which jobs read it."""

    id: str
    name: str
    size: int
    digest: str  # sha256, hex
    media_type: str
    created_at: dt.datetime
    producer_job_id: str | None  # None: uploaded
    producer_run_id: str | None
    producer_step: str | None
    read_by: list[str]  # jobs that take it as an input

    @classmethod
    def of(cls, data: records.WorkData) -> WorkDataOut:
        return cls(
            id=data.id,
            name=data.name,
            size=data.size,
            digest=data.digest,
            media_type=data.media_type,
            created_at=data.created_at,
            producer_job_id=data.producer_job_id,
            producer_run_id=data.producer_run_id,
            producer_step=data.producer_step,
            read_by=list(data.read_by),
        )


class JobWorkDataOut(pydantic.BaseModel):
    inputs: list[WorkDataOut]  # what the job reads
    outputs: list[WorkDataOut]  # what its steps wrote
