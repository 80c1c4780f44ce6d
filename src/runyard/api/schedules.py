"""``/api/v1/schedules``: scheduled jobs with their next fire times, and cron previews."""

from __future__ import annotations

from typing import Annotated

import fastapi

from runyard.api import auth, schemas
from runyard.app import service
from runyard.core import tokens

__all__ = ["router"]

_READ = [fastapi.Depends(auth.require(tokens.Scope.READ))]

router = fastapi.APIRouter(
    prefix="/api/v1", responses={code: {"model": schemas.ErrorOut} for code in (400, 401, 403)}
)


@router.get(
    "/schedules", dependencies=_READ, response_model=list[schemas.ScheduleOut], tags=["schedules"]
)
def list_schedules(request: fastapi.Request) -> list[schemas.ScheduleOut]:
    """Every scheduled job (at a time or on cron), soonest next fire first, with its next
    five fire times."""
    ryard: service.Runyard = request.app.state.runyard
    found = ryard.schedules()
    jobs = {j.id: j.job for j in ryard.jobs_by_id([s.job_id for s in found])}
    now = ryard.clock()
    return [schemas.ScheduleOut.of(jobs[s.job_id], s, now) for s in found if s.job_id in jobs]


@router.get(
    "/schedules/fire-times",
    dependencies=_READ,
    response_model=schemas.FireTimesOut,
    tags=["schedules"],
)
def fire_times(
    request: fastapi.Request,
    cron: Annotated[str, fastapi.Query(min_length=1, max_length=200)],
    timezone: Annotated[str, fastapi.Query(min_length=1, max_length=64)] = "UTC",
    count: Annotated[int, fastapi.Query(ge=1, le=100)] = 5,
) -> schemas.FireTimesOut:
    """When a cron schedule would fire next (400 naming a bad cron string or time zone)."""
    ryard: service.Runyard = request.app.state.runyard
    times = ryard.fire_times(cron, timezone=timezone, count=count)
    return schemas.FireTimesOut(cron=cron, timezone=timezone, fire_times=times)
