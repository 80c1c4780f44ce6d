"""``/api/v1``: jobs, runs, step runs and logs."""

from __future__ import annotations

from typing import Annotated, Any

import fastapi
import pydantic_core

from runyard import errors
from runyard.api import cursors, deps, schemas
from runyard.app import service
from runyard.core import grid as grid_mod
from runyard.core import records, registry, schedules, states

__all__ = ["router"]

_READ = deps.READ
_WRITE = deps.WRITE
Ryard = deps.Ryard

router = fastapi.APIRouter(prefix="/api/v1", responses=deps.ERRORS)


@router.get("/jobs", dependencies=_READ, response_model=schemas.JobPage, tags=["jobs"])
def list_jobs(
    ryard: Ryard,
    state: Annotated[states.JobState | None, fastapi.Query()] = None,
    tag: Annotated[str | None, fastapi.Query(max_length=200)] = None,
    pipeline: Annotated[str | None, fastapi.Query(max_length=200)] = None,
    limit: Annotated[int, fastapi.Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, fastapi.Query(max_length=200)] = None,
    parent: Annotated[str | None, fastapi.Query(max_length=64)] = None,
    name: Annotated[str | None, fastapi.Query(max_length=200)] = None,
    created_after: deps.TimeQuery = None,
    created_before: deps.TimeQuery = None,
) -> schemas.JobPage:
    """Jobs, newest first, filtered by state, tag, pipeline, parent job (its sub jobs),
    a part of their name and when they were created; one page at a time."""
    found = ryard.list_jobs(
        pipeline=pipeline,
        state=state,
        tag=tag,
        limit=limit + 1,
        before=cursors.decode(cursor),
        parent=parent,
        name=name,
        created_after=deps.parse_time(created_after, "created_after"),
        created_before=deps.parse_time(created_before, "created_before"),
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
        if body.grid is not None or body.parameters is not None or body.deselect:
            raise errors.UsageError(
                "An empty job takes no grid, parameters or deselection; select its "
                "processing step first"
            )
        if body.schedule is not None:
            raise errors.UsageError(
                "An empty job cannot be scheduled; create it with its processing step"
            )
        return _job_out(ryard, ryard.create_empty_job(body.name or "job", tags=body.tags))
    summary = ryard.create_job_from(
        body.processing.name,
        body.processing.version,
        start=body.start,
        parameters=body.parameters,
        **_job_options(ryard, body),
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
        try:
            options = _job_options(ryard, job)
        except errors.RunyardError as exc:
            raise type(exc)(f"Job {position} of the batch: {exc.message}") from exc
        specs.append(
            {
                "processing": job.processing.name,
                "version": job.processing.version,
                "start": job.start,
                "parameters": job.parameters,
                **options,
            }
        )
    return schemas.JobIds(ids=ryard.create_jobs_from(specs))


def _job_options(ryard: service.Runyard, body: schemas.JobCreate) -> dict[str, Any]:
    """The options of ``create_job`` a request gives."""
    options: dict[str, Any] = {
        "grid": body.grid,
        "name": body.name,
        "tags": body.tags,
        "max_parallel_runs": body.max_parallel_runs,
        "priority": body.priority,
        "input_workdata": body.input_workdata,
        "deselect": body.deselect,
        "run_timeout": body.run_timeout,
    }
    if body.schedule is not None:
        given = body.schedule
        options["trigger"] = schedules.make_trigger(
            now=ryard.clock(),
            at=deps.parse_time(given.at, "schedule.at", zone=None),
            cron=given.cron,
            timezone=given.timezone,
            start=deps.parse_time(given.start, "schedule.start", zone=None),
            end=deps.parse_time(given.end, "schedule.end", zone=None),
            overlap=given.overlap,
            catchup=given.catchup,
            catchup_limit=given.catchup_limit,
        )
    return options


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
    """A job's runs in grid order; with ``limit`` (or ``offset``), one page of them (the
    header ``X-Total-Count`` says how many there are)."""
    if limit is None and not offset:
        return [schemas.RunOut.of(r) for r in ryard.list_runs(job_id, state=state)]
    page, total = ryard.page_runs(job_id, state=state, limit=limit or 10_000, offset=offset)
    response.headers["X-Total-Count"] = str(total)
    return [schemas.RunOut.of(r) for r in page]


@router.get(
    "/runs/{run_id}", dependencies=_READ, response_model=schemas.RunDetailOut, tags=["runs"]
)
def get_run(ryard: Ryard, run_id: str) -> schemas.RunDetailOut:
    """One run with its step runs (every attempt) and the files its steps kept (executed
    notebooks and their HTML)."""
    run = ryard.get_run(run_id)
    steps = [schemas.StepRunOut.of(s) for s in ryard.step_runs(run.id)]
    files = []
    for step, where in ryard.kept_files(run.id):
        name = where.rsplit("/", 1)[-1]
        url = f"/api/v1/runs/{run.id}/files/{step}/{name}"
        files.append(schemas.KeptFileOut(step=step, name=name, path=where, url=url))
    return schemas.RunDetailOut(**schemas.RunOut.of(run).model_dump(), steps=steps, files=files)


# What a kept file is served as, by its suffix; anything else is plain bytes.
_KEPT_TYPES = {".html": "text/html; charset=utf-8", ".ipynb": "application/x-ipynb+json"}


@router.get(
    "/runs/{run_id}/files/{step}/{name}",
    dependencies=_READ,
    response_class=fastapi.responses.Response,
    responses={200: {"content": {"text/html": {}, "application/x-ipynb+json": {}}}},
    tags=["runs"],
)
def get_kept_file(ryard: Ryard, run_id: str, step: str, name: str) -> fastapi.responses.Response:
    """A file a step of the run kept: its executed notebook (``.ipynb``) or that as HTML.
    What the notebook made is the user's: the page is sandboxed (no scripts, an origin of
    its own), so it cannot act with the viewer's credentials."""
    content = ryard.read_kept_file(run_id, step, name)
    suffix = name[name.rfind(".") :] if "." in name else ""
    return fastapi.responses.Response(
        content,
        media_type=_KEPT_TYPES.get(suffix, "application/octet-stream"),
        headers={"Content-Security-Policy": "sandbox", "X-Content-Type-Options": "nosniff"},
    )


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
