"""``/api/v1``: jobs, runs, step runs and logs."""

from __future__ import annotations

from typing import Annotated

import fastapi
import pydantic_core

from runyard import errors
from runyard.api import auth, cursors, schemas
from runyard.app import service
from runyard.core import grid as grid_mod
from runyard.core import records, registry, schedules, states, tokens

__all__ = ["router"]

_READ = [fastapi.Depends(auth.require(tokens.Scope.READ))]
_WRITE = [fastapi.Depends(auth.require(tokens.Scope.WRITE))]
_ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": schemas.ErrorOut} for code in (400, 401, 403, 404, 409, 422, 503)
}

router = fastapi.APIRouter(prefix="/api/v1", responses=_ERRORS)


def _runyard(request: fastapi.Request) -> service.Runyard:
    ryard: service.Runyard = request.app.state.runyard
    return ryard


Ryard = Annotated[service.Runyard, fastapi.Depends(_runyard)]


@router.get("/jobs", dependencies=_READ, response_model=schemas.JobPage, tags=["jobs"])
def list_jobs(
    ryard: Ryard,
    state: Annotated[states.JobState | None, fastapi.Query()] = None,
    tag: Annotated[str | None, fastapi.Query(max_length=200)] = None,
    pipeline: Annotated[str | None, fastapi.Query(max_length=200)] = None,
    limit: Annotated[int, fastapi.Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, fastapi.Query(max_length=200)] = None,
    parent: Annotated[str | None, fastapi.Query(max_length=64)] = None,
) -> schemas.JobPage:
    """Jobs, newest first, filtered by state, tag, pipeline and parent job (its sub
    jobs); one page at a time."""
    found = ryard.list_jobs(
        pipeline=pipeline,
        state=state,
        tag=tag,
        limit=limit + 1,
        before=cursors.decode(cursor),
        parent=parent,
    )
    page = found[:limit]
    more = len(found) > limit
    return schemas.JobPage(
        items=[_job_out(ryard, s) for s in page],
        next_cursor=cursors.encode(page[-1].job.created_at, page[-1].id) if more else None,
    )


@router.post(
    "/jobs",
    dependencies=_WRITE,
    response_model=schemas.JobOut,
    status_code=201,
    tags=["jobs"],
)
def create_job(ryard: Ryard, body: schemas.JobCreate) -> schemas.JobOut:
    """Create a job of a registered pipeline or step (by name, and version when there are
    several) over a grid or one set of parameters; queued at once unless ``start`` is
    false. Bad parameters: 422 naming each. Without ``processing``: an empty job, to
    select its processing step and parameters later."""
    if body.processing is None:
        if (
            body.grid is not None
            or body.parameters is not None
            or body.schedule is not None
            or body.deselect
        ):
            raise errors.UsageError(
                "An empty job takes no grid, parameters, schedule or deselected runs; give "
                "its processing step first"
            )
        return _job_out(ryard, ryard.create_empty_job(body.name or "job", tags=body.tags))
    trigger = None
    if body.schedule is not None:
        trigger = schedules.make_trigger(now=ryard.clock(), **body.schedule.model_dump())
    summary = ryard.create_job_from(
        body.processing.name,
        body.processing.version,
        start=body.start and trigger is None,  # a schedule's ticks queue its runs
        trigger=trigger,
        deselect=body.deselect,
        run_timeout=body.run_timeout,
        grid=body.grid,
        parameters=body.parameters,
        name=body.name,
        tags=body.tags,
        max_parallel_runs=body.max_parallel_runs,
        priority=body.priority,
        input_workdata=body.input_workdata,
    )
    return _job_out(ryard, summary)


@router.post(
    "/jobs/batch",
    dependencies=_WRITE,
    response_model=schemas.JobIds,
    status_code=201,
    tags=["jobs"],
)
def create_jobs(ryard: Ryard, body: schemas.JobBatch) -> schemas.JobIds:
    """Create many jobs in one request (each as ``POST /jobs`` takes it, with a
    ``processing``), all or none: an error names the job by its position."""
    specs = []
    for position, job in enumerate(body.jobs):
        if job.processing is None:
            raise errors.UsageError(f"Job {position} of the batch has no processing step")
        spec = job.model_dump(exclude_none=True, exclude={"processing"})
        spec["processing"] = job.processing.name
        spec["version"] = job.processing.version
        specs.append(spec)
    return schemas.JobIds(ids=ryard.create_jobs_from(specs))


def _job_out(ryard: service.Runyard, summary: records.JobSummary) -> schemas.JobOut:
    error = None
    if summary.processing_state is states.ProcessingState.ERROR:
        ended = [
            r
            for r in ryard.list_runs(summary.id)
            if r.state is not states.RunState.SUCCESS and not r.retried_by
        ]
        error = next((r.reason for r in ended if r.reason), "a run did not succeed")
    return schemas.JobOut.of(summary, error)


@router.get("/jobs/{job_id}", dependencies=_READ, response_model=schemas.JobOut, tags=["jobs"])
def get_job(ryard: Ryard, job_id: str) -> schemas.JobOut:
    """One job (by id or unique prefix) with its run counts."""
    return _job_out(ryard, ryard.get_job(job_id))


@router.put(
    "/jobs/{job_id}/processing", dependencies=_WRITE, response_model=schemas.JobOut, tags=["jobs"]
)
def select_processing(ryard: Ryard, job_id: str, body: schemas.ProcessingRef) -> schemas.JobOut:
    """Choose a job's processing step (while it has not started)."""
    return _job_out(ryard, ryard.select_processing(job_id, body.name, body.version))


@router.put(
    "/jobs/{job_id}/parameters", dependencies=_WRITE, response_model=schemas.JobOut, tags=["jobs"]
)
def configure(ryard: Ryard, job_id: str, body: schemas.ParametersIn) -> schemas.JobOut:
    """Set a job's parameters (one set, or a grid) while it has not started; 422 naming
    each bad value."""
    return _job_out(ryard, ryard.configure_job(job_id, parameters=body.parameters, grid=body.grid))


@router.put(
    "/jobs/{job_id}/tags", dependencies=_WRITE, response_model=schemas.JobOut, tags=["jobs"]
)
def set_tags(ryard: Ryard, job_id: str, body: schemas.TagsIn) -> schemas.JobOut:
    """Replace a job's tags."""
    return _job_out(ryard, ryard.set_tags(job_id, body.tags))


@router.post(
    "/jobs/{job_id}/start", dependencies=_WRITE, response_model=schemas.JobOut, tags=["jobs"]
)
def start(ryard: Ryard, job_id: str) -> schemas.JobOut:
    """Queue a ready job's runs for the engine; 409 when it is not ready."""
    ryard.start_job(job_id)
    return _job_out(ryard, ryard.get_job(job_id))


@router.delete("/jobs/{job_id}", dependencies=_WRITE, status_code=204, tags=["jobs"])
def delete_job(
    ryard: Ryard,
    job_id: str,
    delete_subjobs: Annotated[bool, fastapi.Query()] = False,
    delete_output_workdata: Annotated[bool, fastapi.Query()] = False,
    delete_input_workdata: Annotated[bool, fastapi.Query()] = False,
) -> fastapi.Response:
    """Delete a job with its runs and files for good (its events stay); 409 while it
    runs, while it has sub jobs (unless ``delete_subjobs``) and while it has output
    WorkData (unless ``delete_output_workdata``); ``delete_input_workdata`` also deletes
    the inputs no other job reads."""
    ryard.delete_job(
        job_id,
        with_sub_jobs=delete_subjobs,
        with_outputs=delete_output_workdata,
        with_inputs=delete_input_workdata,
    )
    return fastapi.Response(status_code=204)


@router.get(
    "/jobs/{job_id}/result", dependencies=_READ, response_model=schemas.ResultOut, tags=["jobs"]
)
def get_result(ryard: Ryard, job_id: str) -> schemas.ResultOut:
    """A completed one-run job's result: what its last step returned; 409 before."""
    value = ryard.result(job_id)
    return schemas.ResultOut(result=pydantic_core.to_jsonable_python(value, fallback=repr))


@router.post(
    "/jobs/{job_id}/stop", dependencies=_WRITE, response_model=schemas.StopOut, tags=["jobs"]
)
def stop_job(ryard: Ryard, job_id: str) -> schemas.StopOut:
    """Stop a job's runs: queued ones end KILLED at once, running ones are stopped."""
    return schemas.StopOut.of(ryard.stop_job(job_id))


@router.post(
    "/jobs/{job_id}/pause", dependencies=_WRITE, response_model=schemas.JobOut, tags=["jobs"]
)
def pause(ryard: Ryard, job_id: str) -> schemas.JobOut:
    """Pause a scheduled job: its ticks do not fire until it is resumed (400 for a job
    without a schedule)."""
    ryard.pause(job_id)
    return _job_out(ryard, ryard.get_job(job_id))


@router.post(
    "/jobs/{job_id}/resume", dependencies=_WRITE, response_model=schemas.JobOut, tags=["jobs"]
)
def resume(ryard: Ryard, job_id: str) -> schemas.JobOut:
    """Resume a paused scheduled job from its next tick; ticks missed meanwhile do not fire."""
    ryard.pause(job_id, paused=False)
    return _job_out(ryard, ryard.get_job(job_id))


@router.post(
    "/jobs/{job_id}/run-now", dependencies=_WRITE, response_model=schemas.JobOut, tags=["jobs"]
)
def run_now(ryard: Ryard, job_id: str) -> schemas.JobOut:
    """Make a batch of a scheduled job's runs now, besides its ticks."""
    ryard.run_now(job_id)
    return _job_out(ryard, ryard.get_job(job_id))


@router.post(
    "/jobs/{job_id}/retry-failed",
    dependencies=_WRITE,
    response_model=list[schemas.RunOut],
    tags=["jobs"],
)
def retry_failed(ryard: Ryard, job_id: str) -> list[schemas.RunOut]:
    """Retry each run of the job that failed (and was not retried yet): the new runs."""
    return [schemas.RunOut.of(r) for r in ryard.retry_failed(job_id)]


@router.get(
    "/jobs/{job_id}/runs", dependencies=_READ, response_model=list[schemas.RunOut], tags=["runs"]
)
def list_runs(
    ryard: Ryard,
    job_id: str,
    response: fastapi.Response,
    state: Annotated[states.RunState | None, fastapi.Query()] = None,
    limit: Annotated[int | None, fastapi.Query(ge=1, le=10_000)] = None,
    offset: Annotated[int, fastapi.Query(ge=0, le=100_000_000)] = 0,
) -> list[schemas.RunOut]:
    """A job's runs in grid order; with ``limit``, one page from ``offset`` (the header
    ``X-Total-Count`` says how many there are)."""
    if limit is None and not offset:
        return [schemas.RunOut.of(r) for r in ryard.list_runs(job_id, state=state)]
    page, total = ryard.page_runs(job_id, state=state, limit=limit or 10_000, offset=offset)
    response.headers["X-Total-Count"] = str(total)
    return [schemas.RunOut.of(r) for r in page]


@router.get(
    "/runs/{run_id}", dependencies=_READ, response_model=schemas.RunDetailOut, tags=["runs"]
)
def get_run(ryard: Ryard, run_id: str) -> schemas.RunDetailOut:
    """One run with its step runs (every attempt)."""
    run = ryard.get_run(run_id)
    steps = [schemas.StepRunOut.of(s) for s in ryard.step_runs(run.id)]
    return schemas.RunDetailOut(**schemas.RunOut.of(run).model_dump(), steps=steps)


@router.post(
    "/runs/{run_id}/stop", dependencies=_WRITE, response_model=schemas.StopOut, tags=["runs"]
)
def stop_run(ryard: Ryard, run_id: str) -> schemas.StopOut:
    """Stop one run."""
    return schemas.StopOut.of(ryard.stop_run(run_id))


@router.get(
    "/runs/{run_id}/logs", dependencies=_READ, response_model=schemas.LogPage, tags=["runs"]
)
def get_logs(
    ryard: Ryard,
    run_id: str,
    step: Annotated[str | None, fastapi.Query(max_length=200)] = None,
    after: Annotated[int, fastapi.Query(ge=0)] = 0,
    limit: Annotated[int, fastapi.Query(ge=1, le=10000)] = 1000,
) -> schemas.LogPage:
    """A run's log lines after position ``after``, in order."""
    run = ryard.get_run(run_id)
    lines = ryard.store.page_logs(run.id, step=step, after=after, limit=limit)
    return schemas.LogPage(
        items=[
            schemas.LogLineOut(
                position=position,
                step_name=line.step_name,
                stream=line.stream,
                level=line.level,
                at=line.at,
                text=line.text,
            )
            for position, line in lines
        ],
        next_after=lines[-1][0] if len(lines) == limit else None,
    )


@router.get(
    "/processing-steps",
    dependencies=_READ,
    response_model=list[schemas.ProcessingStepOut],
    tags=["processing steps"],
)
def list_processing_steps(
    ryard: Ryard,
    name: Annotated[str | None, fastapi.Query(max_length=200)] = None,
    kind: Annotated[registry.Kind | None, fastapi.Query()] = None,
) -> list[schemas.ProcessingStepOut]:
    """Every registered pipeline and step (or those of one name), each version."""
    return [schemas.ProcessingStepOut.of(r) for r in ryard.registrations(name=name, kind=kind)]


@router.get(
    "/processing-steps/{name}",
    dependencies=_READ,
    response_model=schemas.ProcessingStepOut,
    tags=["processing steps"],
)
def get_processing_step(
    ryard: Ryard,
    name: str,
    version: Annotated[str | None, fastapi.Query(max_length=200)] = None,
) -> schemas.ProcessingStepOut:
    """One processing step at ``version``; without it, the only version (400 listing
    them when there are several)."""
    return schemas.ProcessingStepOut.of(ryard.registration(name, version))


@router.post(
    "/processing-steps/{name}/preview",
    dependencies=_READ,
    response_model=schemas.GridPreviewOut,
    tags=["processing steps"],
)
def preview_grid(ryard: Ryard, name: str, body: schemas.GridPreviewIn) -> schemas.GridPreviewOut:
    """The runs a job of this processing step over ``grid`` would have, created nowhere:
    how many, which parameters vary, and the first ``limit``; 422 naming each bad value."""
    size, shown = ryard.preview_grid(name, body.version, grid=body.grid, limit=body.limit)
    axes = [
        key if scope == grid_mod.PIPELINE_KEY else f"{scope}.{key}"
        for scope, values in (body.grid or {}).items()
        if isinstance(values, dict)
        for key, listed in values.items()
        if isinstance(listed, list) and len(listed) > 1
    ]
    return schemas.GridPreviewOut(
        size=size,
        axes=axes,
        runs=[schemas.RunPreviewOut(index=i, params=dict(p)) for i, p in shown],
    )
