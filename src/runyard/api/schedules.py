"""``/api/v1``: schedules (pause, resume, run now, next fire times) and retrying runs."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import fastapi

from runyard import errors
from runyard.api import deps, schemas
from runyard.app import service
from runyard.core import records, schedules

__all__ = ["router"]

router = fastapi.APIRouter(prefix="/api/v1", responses=deps.ERRORS)


@router.get(
    "/schedules",
    dependencies=deps.READ,
    response_model=list[schemas.ScheduleOut],
    tags=["schedules"],
)
def list_schedules(
    ryard: deps.Ryard,
    limit: Annotated[int, fastapi.Query(ge=1, le=10_000)] = 1000,
    count: Annotated[int, fastapi.Query(ge=1, le=50)] = 5,
) -> list[schemas.ScheduleOut]:
    """Every scheduled job's schedule with its next ``count`` fire times, the next to
    fire first; those that will not fire again last."""
    return [schemas.ScheduleOut.of(s, count=count) for s in ryard.list_schedules(limit=limit)]


@router.get(
    "/schedules/preview",
    dependencies=deps.READ,
    response_model=schemas.SchedulePreview,
    tags=["schedules"],
)
def preview_schedule(
    ryard: deps.Ryard,
    cron: Annotated[str | None, fastapi.Query(min_length=1, max_length=200)] = None,
    at: deps.TimeQuery = None,
    timezone: Annotated[str, fastapi.Query(min_length=1, max_length=64)] = "UTC",
    start: deps.TimeQuery = None,
    end: deps.TimeQuery = None,
    count: Annotated[int, fastapi.Query(ge=1, le=50)] = 5,
) -> schemas.SchedulePreview:
    """When a schedule would fire, from now: its next ``count`` fire times. A bad cron
    expression, time zone or time is a 400 saying what to give instead."""
    if cron is None and at is None:
        raise errors.UsageError("Give cron (recurring) or at (once) to preview a schedule")
    # A time without a zone is in the schedule's ``timezone``, as on the command line.
    trigger = schedules.make_trigger(
        now=ryard.clock(),
        at=deps.parse_time(at, "at", zone=None),
        cron=cron,
        timezone=timezone,
        start=deps.parse_time(start, "start", zone=None),
        end=deps.parse_time(end, "end", zone=None),
    )
    fires: list[dt.datetime] = []
    following = trigger.first_fire(ryard.clock())
    while following is not None and len(fires) < count:
        fires.append(following)
        following = trigger.next_after(following)
    return schemas.SchedulePreview(fires=fires)


@router.get(
    "/jobs/{job_id}/schedule",
    dependencies=deps.READ,
    response_model=schemas.ScheduleOut,
    tags=["schedules"],
)
def get_schedule(
    ryard: deps.Ryard, job_id: str, count: Annotated[int, fastapi.Query(ge=1, le=50)] = 5
) -> schemas.ScheduleOut:
    """A job's schedule and its next ``count`` fire times; 404 for a job made to run now."""
    return schemas.ScheduleOut.of(_schedule(ryard, job_id), count=count)


@router.post(
    "/jobs/{job_id}/pause",
    dependencies=deps.WRITE,
    response_model=schemas.ScheduleOut,
    tags=["schedules"],
)
def pause(ryard: deps.Ryard, job_id: str) -> schemas.ScheduleOut:
    """Pause a scheduled job: no tick fires until it is resumed."""
    _schedule(ryard, job_id)
    ryard.pause(job_id)
    return schemas.ScheduleOut.of(_schedule(ryard, job_id))


@router.post(
    "/jobs/{job_id}/resume",
    dependencies=deps.WRITE,
    response_model=schemas.ScheduleOut,
    tags=["schedules"],
)
def resume(ryard: deps.Ryard, job_id: str) -> schemas.ScheduleOut:
    """Resume a paused job; the ticks it missed while paused do not fire."""
    _schedule(ryard, job_id)
    ryard.pause(job_id, paused=False)
    return schemas.ScheduleOut.of(_schedule(ryard, job_id))


@router.post(
    "/jobs/{job_id}/run-now",
    dependencies=deps.WRITE,
    response_model=schemas.RunsMadeOut,
    tags=["schedules"],
)
def run_now(ryard: deps.Ryard, job_id: str) -> schemas.RunsMadeOut:
    """Make a batch of a scheduled job's runs now, outside its schedule."""
    return schemas.RunsMadeOut(runs=ryard.run_now(job_id))


@router.post(
    "/jobs/{job_id}/retry",
    dependencies=deps.WRITE,
    response_model=schemas.RetriedOut,
    tags=["jobs"],
)
def retry_failed(
    ryard: deps.Ryard, job_id: str, all_steps: Annotated[bool, fastapi.Query()] = False
) -> schemas.RetriedOut:
    """Retry every failed or killed run of a job, from failure: the steps that succeeded
    keep their outputs (``all_steps`` runs everything again)."""
    return schemas.RetriedOut(
        run_ids=[r.id for r in ryard.retry_failed(job_id, all_steps=all_steps)]
    )


@router.post(
    "/runs/{run_id}/retry",
    dependencies=deps.WRITE,
    response_model=schemas.RetriedOut,
    tags=["runs"],
)
def retry_run(
    ryard: deps.Ryard, run_id: str, all_steps: Annotated[bool, fastapi.Query()] = False
) -> schemas.RetriedOut:
    """Retry one finished run, from failure unless ``all_steps``."""
    return schemas.RetriedOut(run_ids=[ryard.retry_run(run_id, all_steps=all_steps).id])


def _schedule(ryard: service.Runyard, job_id: str) -> records.Schedule:
    schedule = ryard.schedule(job_id)
    if schedule is None:
        raise errors.NotFoundError(
            f"Job {job_id} has no schedule: it was made to run now. Create a job with a "
            "schedule (at or cron) to pause, resume or run it now"
        )
    return schedule
