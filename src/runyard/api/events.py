"""``GET /api/v1/events``: the event log as a Server-Sent Events stream.

Each event is sent as ``id: <event id>``, ``event: <kind>`` and ``data: <JSON>``; a client
that reconnects with ``Last-Event-ID`` gets what it missed. A comment line is sent when
nothing happened for ``keepalive`` seconds, so proxies keep the connection open.

Event ids come from the store's sequence. On PostgreSQL two transactions can commit out of
id order, so a poll may see id 12 before id 11 is visible: ids skipped over are looked for
again for a few seconds (a rolled-back transaction leaves a gap forever).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated

import fastapi
import fastapi.responses
from starlette.concurrency import run_in_threadpool

from runyard.api import auth, deps
from runyard.app import service
from runyard.core import records, states, tokens

__all__ = ["router"]

router = fastapi.APIRouter(prefix="/api/v1", responses=deps.ERRORS)

_POLL = 0.05  # seconds between looks at the event log (a read of an index per look)
_GAP_WAIT = 5.0  # how long an id skipped over may still turn up
_BATCH = 500
_MOST_GAPS = 1000  # ids skipped in one jump that are looked for again (filtered streams skip many)
_LOG_POLL = 0.1  # seconds between looks at a running run's new log lines


@router.get(
    "/events",
    dependencies=[fastapi.Depends(auth.require(tokens.Scope.READ))],
    response_class=fastapi.responses.StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "the stream"}},
    tags=["events"],
)
async def events(
    request: fastapi.Request,
    job_id: Annotated[str | None, fastapi.Query(max_length=64)] = None,
    run_id: Annotated[str | None, fastapi.Query(max_length=64)] = None,
    last_event_id: Annotated[int | None, fastapi.Header(ge=0)] = None,
    after: Annotated[int | None, fastapi.Query(ge=0)] = None,
    keepalive: Annotated[float | None, fastapi.Query(ge=0.5, le=300)] = None,
) -> fastapi.responses.StreamingResponse:
    """State changes as they are written, optionally of one job or run, from after
    ``Last-Event-ID`` (or ``after``; default: from now on); a comment every ``keepalive``
    seconds of quiet (default 15)."""
    ryard: service.Runyard = request.app.state.runyard
    if job_id is not None:
        job_id = (await run_in_threadpool(ryard.get_job, job_id)).id  # 404 for a wrong id
    if run_id is not None:
        run_id = (await run_in_threadpool(ryard.get_run, run_id)).id
    start = last_event_id if last_event_id is not None else after
    if start is None:
        latest = await run_in_threadpool(ryard.store.last_event_id)
        start = latest or 0
    stream = _stream(
        request,
        ryard,
        start,
        job_id=job_id,
        run_id=run_id,
        keepalive=keepalive or request.app.state.keepalive,
    )
    return fastapi.responses.StreamingResponse(
        stream,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _stream(
    request: fastapi.Request,
    ryard: service.Runyard,
    start: int,
    *,
    job_id: str | None,
    run_id: str | None,
    keepalive: float,
) -> AsyncIterator[str]:
    last = start
    gaps: dict[int, float] = {}  # id skipped over -> until when to look for it
    quiet_since = time.monotonic()
    yield ": stream open\n\n"
    while not request.app.state.stopping and not await request.is_disconnected():
        now = time.monotonic()
        gaps = {i: until for i, until in gaps.items() if until > now}
        found = await run_in_threadpool(
            ryard.store.events_since,
            last,
            missing=sorted(gaps),
            job_id=job_id,
            run_id=run_id,
            limit=_BATCH,
        )
        for event in found:
            assert event.id is not None
            if event.id > last:
                skipped = range(max(last + 1, event.id - _MOST_GAPS), event.id)
                gaps.update((i, now + _GAP_WAIT) for i in skipped)
                last = event.id
            gaps.pop(event.id, None)
            yield _format(event)
        if found:
            quiet_since = now
        elif now - quiet_since >= keepalive:
            quiet_since = now
            yield ": keep-alive\n\n"
        if len(found) < _BATCH:
            await asyncio.sleep(_POLL)


def _format(event: records.Event) -> str:
    data = {
        "id": event.id,
        "at": event.at.isoformat(),
        "kind": event.kind,
        "job_id": event.job_id,
        "run_id": event.run_id,
        "step_name": event.step_name,
        "old_state": event.old_state,
        "new_state": event.new_state,
        "message": event.message,
    }
    return f"id: {event.id}\nevent: {event.kind}\ndata: {json.dumps(data)}\n\n"


@router.get(
    "/runs/{run_id}/logs/stream",
    dependencies=[fastapi.Depends(auth.require(tokens.Scope.READ))],
    response_class=fastapi.responses.StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "the stream"}},
    tags=["runs"],
)
async def stream_logs(
    request: fastapi.Request,
    run_id: str,
    step: Annotated[str | None, fastapi.Query(max_length=200)] = None,
    last_event_id: Annotated[int | None, fastapi.Header(ge=0)] = None,
    after: Annotated[int, fastapi.Query(ge=0)] = 0,
) -> fastapi.responses.StreamingResponse:
    """A run's log lines as Server-Sent Events (``event: log``, ``id:`` the line's
    position), from after ``Last-Event-ID`` (or ``after``), following the run while it
    runs; ``event: end`` once it has finished and every line was sent."""
    ryard: service.Runyard = request.app.state.runyard
    run = await run_in_threadpool(ryard.get_run, run_id)  # 404 for a wrong id
    start = last_event_id if last_event_id is not None else after
    stream = _follow_logs(request, ryard, run.id, start, step=step)
    return fastapi.responses.StreamingResponse(
        stream,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _follow_logs(
    request: fastapi.Request, ryard: service.Runyard, run_id: str, after: int, *, step: str | None
) -> AsyncIterator[str]:
    quiet_since = time.monotonic()
    keepalive = request.app.state.keepalive
    yield ": stream open\n\n"
    while not request.app.state.stopping and not await request.is_disconnected():
        # Whether it had finished is read before its lines: every line it wrote is then
        # in the page read next.
        run = await run_in_threadpool(ryard.get_run, run_id)
        finished = run.state in states.FINISHED_RUN_STATES
        lines = await run_in_threadpool(
            ryard.store.page_logs, run_id, step=step, after=after, limit=_BATCH
        )
        for position, line in lines:
            after = position
            data = {
                "position": position,
                "step_name": line.step_name,
                "stream": line.stream,
                "level": line.level,
                "at": line.at.isoformat(),
                "text": line.text,
            }
            yield f"id: {position}\nevent: log\ndata: {json.dumps(data)}\n\n"
        now = time.monotonic()
        if lines:
            quiet_since = now
        if len(lines) == _BATCH:
            continue
        if finished:
            yield f"event: end\ndata: {json.dumps({'run_id': run_id, 'after': after})}\n\n"
            return
        if now - quiet_since >= keepalive:
            quiet_since = now
            yield ": keep-alive\n\n"
        await asyncio.sleep(_LOG_POLL)
