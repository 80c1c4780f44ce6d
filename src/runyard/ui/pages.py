"""The pages: jobs, a job, a run, the new-job form, schedules, login (the Data pages are
``datapages``).

Each page is rendered on the server from the app facade, one page of rows at a time;
``?fragment=live`` renders only the part of a page that live updates replace. The pages'
scripts (static/) follow the event stream and call the API for every action.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated

import fastapi

from runyard import errors
from runyard.api import cursors, workdata
from runyard.app import service
from runyard.core import records, states
from runyard.ui import dag, site, views

__all__ = ["router"]

router = fastapi.APIRouter(include_in_schema=False)

JOBS_PER_PAGE = 50
RUNS_PER_PAGE = 100
MATRIX_FROM = 50  # a job with more runs than this also gets a status matrix

Viewer = Annotated[object, fastapi.Depends(site.viewer)]


@router.get("/", response_class=fastapi.responses.HTMLResponse)
def jobs_page(
    request: fastapi.Request,
    _: Viewer,
    state: str = "",
    pipeline: str = "",
    tag: str = "",
    cursor: str = "",
    fragment: str = "",
) -> fastapi.Response:
    ryard = site.runyard_of(request)
    try:
        wanted = states.JobState(state) if state else None
    except ValueError:
        wanted = None
    try:
        found = ryard.list_jobs(
            pipeline=pipeline or None,
            state=wanted,
            tag=tag or None,
            limit=JOBS_PER_PAGE + 1,
            before=cursors.decode(cursor or None),
        )
    except errors.RunyardError as exc:
        return site.error_page(request, exc)
    page = found[:JOBS_PER_PAGE]
    more = len(found) > JOBS_PER_PAGE
    schedules = {s.job_id: s for s in ryard.list_schedules(job_ids=[s.id for s in page])}
    now = ryard.clock()
    rows = [
        {
            "job": s,
            "progress": views.progress(s.counts),
            "trigger": views.trigger_text(schedules.get(s.id)),
            "duration": views.duration(s.started_at, s.finished_at, now),
        }
        for s in page
    ]
    query = {"state": state, "pipeline": pipeline, "tag": tag}
    context = {
        "title": "Jobs",
        "rows": rows,
        "filters": query,
        "filtered": any(query.values()),
        "states": [str(s) for s in states.JobState],
        "pipelines": sorted({r.name for r in ryard.registrations()}),
        "next_cursor": cursors.encode(page[-1].job.created_at, page[-1].id) if more else None,
        "first_page": bool(cursor),
        "query": {k: v for k, v in query.items() if v},
    }
    template = "_jobs_table.html" if fragment == "live" else "jobs.html"
    return site.render(request, template, context)


@router.get("/jobs/{job_id}", response_class=fastapi.responses.HTMLResponse)
def job_page(
    request: fastapi.Request,
    _: Viewer,
    job_id: str,
    page: Annotated[int, fastapi.Query(ge=0, le=10_000_000)] = 0,
    state: str = "",
    fragment: str = "",
) -> fastapi.Response:
    ryard = site.runyard_of(request)
    try:
        summary = ryard.get_job(job_id)
        try:
            wanted = states.RunState(state) if state else None
        except ValueError:
            raise errors.UsageError(
                f"Run state {state!r} is not known; one of {', '.join(states.RunState)}"
            ) from None
        runs, total = ryard.page_runs(
            summary.id, state=wanted, limit=RUNS_PER_PAGE, offset=page * RUNS_PER_PAGE
        )
    except errors.RunyardError as exc:
        return site.error_page(request, exc)
    job = summary.job
    axes = views.axes_of(job.grid)
    now = ryard.clock()
    schedule = ryard.schedule(job.id)
    matrix = ""
    if job.run_count > MATRIX_FROM or total > MATRIX_FROM:
        matrix = "".join([_CODES.get(s, "?") for _, s in ryard.run_states(job.id)])
    context = {
        "title": f"Job {job.name}",
        "summary": summary,
        "job": job,
        "progress": views.progress(summary.counts),
        "trigger": views.trigger_text(schedule),
        "schedule": schedule,
        "duration": views.duration(summary.started_at, summary.finished_at, now),
        "axes": [f"{s}.{k}" if s else k for s, k in axes],
        "rows": [
            {
                "run": r,
                "cells": [views.value_at(r.params, a) for a in axes],
                "duration": views.duration(r.started_at, r.finished_at, now),
            }
            for r in runs
        ],
        "total": total,
        "page": page,
        "pages": max((total + RUNS_PER_PAGE - 1) // RUNS_PER_PAGE, 1),
        "per_page": RUNS_PER_PAGE,
        "state": state,
        "run_states": [str(s) for s in states.RunState],
        "matrix": matrix,
        "finished": views.is_done(summary.state),
        "failed": summary.counts.get(states.RunState.FAILURE, 0),
    }
    template = "_job_live.html" if fragment == "live" else "job.html"
    return site.render(request, template, context)


# One letter per run state in the status matrix (the script colours them).
_CODES = {
    "CREATED": "c",
    "QUEUED": "q",
    "STARTING": "r",
    "RUNNING": "r",
    "EGRESS": "r",
    "FINISHING": "r",
    "SUCCESS": "s",
    "FAILURE": "f",
    "KILLED": "k",
}


@router.get("/runs/{run_id}", response_class=fastapi.responses.HTMLResponse)
def run_page(
    request: fastapi.Request, _: Viewer, run_id: str, fragment: str = ""
) -> fastapi.Response:
    ryard = site.runyard_of(request)
    try:
        run = ryard.get_run(run_id)
        summary = ryard.get_job(run.job_id)
        step_runs = ryard.step_runs(run.id)
        stored = ryard.artifacts_of(run.id)
    except errors.RunyardError as exc:
        return site.error_page(request, exc)
    job = summary.job
    now = ryard.clock()
    latest: dict[str, records.StepRun] = {}
    for step in step_runs:  # oldest attempt first: the last one wins
        latest[step.step_name] = step
    order, upstream, graph_note = _graph(request, ryard, job, step_runs)
    drawn = dag.layout(order, upstream)
    boxes = [
        {
            "node": node,
            "state": str(latest[node.name].state) if node.name in latest else "PENDING",
            "timing": views.duration(
                latest[node.name].started_at, latest[node.name].finished_at, now
            )
            if node.name in latest
            else "",
        }
        for node in drawn.nodes
    ]
    bars, span = views.timeline(step_runs, now)
    outputs = [a for a in stored if not a.output_name.startswith("_")]
    snapshot = None
    if job.snapshot_id is not None:
        try:
            snapshot = ryard.get_snapshot(job.snapshot_id)
        except errors.RunyardError:
            snapshot = None
    made = ryard.list_workdata(producer_job_id=job.id)
    workdata = [w for w in made if w.producer_run_id == run.id]
    context = {
        "title": f"Run {run.index} of {job.name}",
        "run": run,
        "job": job,
        "duration": views.duration(run.started_at, run.finished_at, now),
        "dag": drawn,
        "boxes": boxes,
        "box_w": dag.BOX_W,
        "box_h": dag.BOX_H,
        "graph_note": graph_note,
        "bars": bars,
        "span": span,
        "steps": step_runs,
        "step_names": order,
        "step_times": {
            s.step_name: views.duration(s.started_at, s.finished_at, now) for s in step_runs
        },
        "outputs": outputs,
        "workdata": workdata,
        "inputs": ryard.inputs_of(job.id),
        "params": json.dumps(run.params, indent=2, sort_keys=False),
        "snapshot": snapshot,
        "finished": views.is_done(run.state),
        "notebooks": _notebooks(ryard, run),
    }
    template = "_run_live.html" if fragment == "live" else "run.html"
    return site.render(request, template, context)


def _graph(
    request: fastapi.Request,
    ryard: service.Runyard,
    job: records.Job,
    step_runs: list[records.StepRun],
) -> tuple[list[str], dict[str, list[str]], str]:
    """The job's pipeline as (steps in order, upstream of each, a note when it could not
    be loaded). Loaded once per pipeline version and snapshot, from the job's snapshot."""
    cache: dict[tuple[str, str | None], tuple[list[str], dict[str, list[str]]]]
    cache = request.app.state.__dict__.setdefault("ui_graphs", {})
    key = (job.pipeline_ref, job.snapshot_id)
    if key not in cache:
        try:
            pipeline = ryard.load_pipeline(job)
        except errors.RunyardError as exc:
            names = list(dict.fromkeys(s.step_name for s in step_runs))
            return names, {}, f"The pipeline's edges are not shown: {exc.message}"
        cache[key] = (pipeline.step_names, {n.name: list(n.upstream) for n in pipeline})
    order, upstream = cache[key]
    return order, upstream, ""


def _notebooks(ryard: service.Runyard, run: records.Run) -> list[tuple[str, str]]:
    """(step, file name) of the executed notebooks the run kept as HTML."""
    found = []
    for step, uri in ryard.kept_files(run.id):
        name = uri.rsplit("/", 1)[-1]
        if name.endswith(".html"):
            found.append((step, name))
    return found


@router.get("/runs/{run_id}/notebooks/{step}/{name}", response_class=fastapi.responses.HTMLResponse)
def notebook(
    request: fastapi.Request, _: Viewer, run_id: str, step: str, name: str
) -> fastapi.Response:
    """An executed notebook of the run, as nbconvert rendered it, shown as a document."""
    ryard = site.runyard_of(request)
    try:
        content = ryard.read_kept_file(run_id, step, name)
    except errors.RunyardError as exc:
        return site.error_page(request, exc)
    if not name.endswith(".html"):
        return site.error_page(request, errors.NotFoundError(f"{name!r} is not a notebook"))
    # As the API serves kept files: sandboxed, an origin of its own without scripts, so
    # what the notebook made cannot act with the viewer's token.
    return fastapi.responses.HTMLResponse(
        content, headers={"Content-Security-Policy": "sandbox", "X-Content-Type-Options": "nosniff"}
    )


@router.get("/workdata/{workdata_id}")
def workdata_content(request: fastapi.Request, _: Viewer, workdata_id: str) -> fastapi.Response:
    """A WorkData's file, for the links of the run page (the browser sends the token as
    a cookie, not as the API's header)."""
    ryard = site.runyard_of(request)
    try:
        return workdata.download(ryard, workdata_id)
    except errors.RunyardError as exc:
        return site.error_page(request, exc)


@router.get("/new", response_class=fastapi.responses.HTMLResponse)
def new_job_page(
    request: fastapi.Request, _: Viewer, processing: str = "", version: str = ""
) -> fastapi.Response:
    ryard = site.runyard_of(request)
    found = ryard.registrations()
    choices = [
        {"name": r.name, "version": r.version, "kind": str(r.kind), "description": r.description}
        for r in reversed(found)  # newest version first
    ]
    return site.render(
        request,
        "new_job.html",
        {
            "title": "New job",
            "choices": choices,
            "chosen": processing,
            "chosen_version": version,
        },
    )


@router.get("/schedules", response_class=fastapi.responses.HTMLResponse)
def schedules_page(request: fastapi.Request, _: Viewer) -> fastapi.Response:
    ryard = site.runyard_of(request)
    found = ryard.list_schedules()
    jobs = {s.id: s for s in ryard.jobs_by_id([s.job_id for s in found])}
    rows = []
    for schedule in found:
        if schedule.job_id not in jobs:
            continue
        upcoming: list[dt.datetime] = []
        if not schedule.paused and schedule.next_fire_at is not None:
            upcoming = [schedule.next_fire_at]
            while schedule.trigger.cron and len(upcoming) < 5:
                following = schedule.trigger.next_after(upcoming[-1])
                if following is None:
                    break
                upcoming.append(following)
        rows.append(
            {
                "schedule": schedule,
                "job": jobs[schedule.job_id],
                "trigger": views.trigger_text(schedule),
                "upcoming": upcoming,
            }
        )
    return site.render(request, "schedules.html", {"title": "Schedules", "rows": rows})


@router.get("/login", response_class=fastapi.responses.HTMLResponse)
def login_page(request: fastapi.Request, next: str = "/", why: str = "") -> fastapi.Response:
    target = next if next.startswith("/") and not next.startswith("//") else "/"
    return site.render(request, "login.html", {"title": "Log in", "next": target, "why": why})
