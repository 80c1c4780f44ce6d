"""The Data pages: repos and pipelines as a DAG, a repo's branches and commits, a commit's
files, a pipeline's spec and data jobs, a data job's datums.

Read-only views of ``Runyard.data``, one page of rows at a time. ``?fragment=live`` renders
the part of a page that live updates replace; the pages' script re-fetches it when the event
stream says a data job moved (``data_job_state``) or counted datums (``data_job_progress``).
A file of a commit is served for download only, never shown as a page of this site.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from typing import Annotated

import fastapi
import fastapi.responses

from runyard import errors
from runyard.core import datapipelines as dp
from runyard.core import datarepos, datums, snapshots
from runyard.ui import dag, dataviews, site, views

__all__ = ["router"]

router = fastapi.APIRouter(include_in_schema=False)

COMMITS_PER_PAGE = 50
FILES_PER_PAGE = 200
JOBS_PER_PAGE = 50
DATUMS_PER_PAGE = 100
RECENT_JOBS = 20

Viewer = Annotated[object, fastapi.Depends(site.viewer)]
Page = Annotated[int, fastapi.Query(ge=0, le=10_000_000)]

site.templates.env.filters["size"] = snapshots.size_text


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


site.templates.env.filters["seconds"] = _seconds


@router.get("/data", response_class=fastapi.responses.HTMLResponse)
def data_page(request: fastapi.Request, _: Viewer, fragment: str = "") -> fastapi.Response:
    """Every repo (size and files of master's head), the pipelines as a DAG of repos, and
    the newest data jobs."""
    ryard = site.runyard_of(request)
    data = ryard.data
    repos = data.list_repos()
    pipelines = data.list_pipelines()
    branches = {repo.name: data.branches(repo.name) for repo, _, _ in repos}
    recent = data.list_jobs(limit=RECENT_JOBS)
    latest = {p.name: data.list_jobs(pipeline=p.name, limit=1) for p in pipelines}
    drawn = dataviews.graph([r for r, _, _ in repos], pipelines)
    sizes = {repo.name: (size, count) for repo, size, count in repos}
    now = ryard.clock()
    boxes = []
    for node in drawn.layout.nodes:
        kind, name = drawn.kinds[node.name], drawn.labels[node.name]
        if kind == "pipeline":
            last = latest.get(name) or []
            state = str(last[0].state) if last else ""
            meta = f"{state.lower()} · {last[0].progress}" if last else "no job yet"
            link = f"/data/pipelines/{urllib.parse.quote(name)}"
        else:
            size, count = sizes.get(name, (0, 0))
            state = ""
            meta = f"{count} file{'s' if count != 1 else ''} · {snapshots.size_text(size)}"
            link = f"/data/repos/{urllib.parse.quote(name)}"
        boxes.append(
            {"node": node, "kind": kind, "name": name, "state": state, "meta": meta, "link": link}
        )
    context = {
        "title": "Data",
        "repos": [
            {
                "repo": repo,
                "size": size,
                "count": count,
                "branches": branches[repo.name],
                "head": next((b.head for b in branches[repo.name] if b.name == "master"), None),
            }
            for repo, size, count in repos
        ],
        "pipelines": pipelines,
        "dag": drawn.layout,
        "boxes": boxes,
        "box_w": dag.BOX_W,
        "box_h": dag.BOX_H,
        "jobs": [_job_row(j, now) for j in recent],
    }
    template = "_data_live.html" if fragment == "live" else "data.html"
    return site.render(request, template, context)


@router.get("/data/repos/{name}", response_class=fastapi.responses.HTMLResponse)
def repo_page(
    request: fastapi.Request, _: Viewer, name: str, branch: str = "", page: Page = 0
) -> fastapi.Response:
    """A repo's branches and one branch's commits, newest first, a page at a time."""
    data = site.runyard_of(request).data
    try:
        repo = data.get_repo(name)
        branches = data.branches(name)
        chosen = branch or ("master" if any(b.name == "master" for b in branches) else "")
        chosen = chosen or (branches[0].name if branches else "master")
        found = data.list_commits(
            name, chosen, limit=COMMITS_PER_PAGE + 1, offset=page * COMMITS_PER_PAGE
        )
    except errors.RunyardError as exc:
        return site.error_page(request, exc)
    readers = [p for p in data.list_pipelines() if any(i.repo == name for i in p.spec.input_repos)]
    context = {
        "title": f"Repo {repo.name}",
        "repo": repo,
        "branches": branches,
        "branch": chosen,
        "commits": found[:COMMITS_PER_PAGE],
        "more": len(found) > COMMITS_PER_PAGE,
        "page": page,
        "readers": readers,
    }
    return site.render(request, "data_repo.html", context)


@router.get("/data/repos/{name}/commits/{ref}", response_class=fastapi.responses.HTMLResponse)
def commit_page(
    request: fastapi.Request, _: Viewer, name: str, ref: str, path: str = "/", page: Page = 0
) -> fastapi.Response:
    """A commit (or a branch's head) and the files and folders in one of its folders,
    a page at a time; a path naming a file shows that file."""
    data = site.runyard_of(request).data
    try:
        folder = datarepos.normalize_path(path)
        commit = data.commit_of(datarepos.Target(name, ref, "/"))
        listed = data.list_files(datarepos.Target(name, commit.id, folder))
    except errors.RunyardError as exc:
        return site.error_page(request, exc)
    start = page * FILES_PER_PAGE
    entries = listed[start : start + FILES_PER_PAGE]
    is_file = len(listed) == 1 and listed[0].kind == "file" and listed[0].path == folder
    context = {
        "title": f"{name}@{commit.id[:12]}:{folder}",
        "repo": name,
        "commit": commit,
        "folder": folder,
        "crumbs": dataviews.crumbs(folder),
        "entries": entries,
        "is_file": is_file,
        "total": len(listed),
        "page": page,
        "pages": max((len(listed) + FILES_PER_PAGE - 1) // FILES_PER_PAGE, 1),
        "per_page": FILES_PER_PAGE,
    }
    return site.render(request, "data_commit.html", context)


@router.get("/data/repos/{name}/commits/{ref}/files/{path:path}")
def file_content(
    request: fastapi.Request, _: Viewer, name: str, ref: str, path: str
) -> fastapi.Response:
    """A file of a commit, as a download. The path is normalized first: one that would
    leave the repo (``..``) is refused with 400, whatever the URL's encoding."""
    data = site.runyard_of(request).data
    try:
        target = datarepos.Target(name, ref, datarepos.normalize_path("/" + path))
        commit = data.commit_of(datarepos.Target(name, ref, "/"))
        target = datarepos.Target(name, commit.id, target.path)
        handle = data.open_file(target)
    except errors.RunyardError as exc:
        return site.error_page(request, exc)

    def chunks() -> object:
        with handle:
            while chunk := handle.read(1024 * 1024):
                yield chunk

    filename = target.path.rpartition("/")[2]
    return fastapi.responses.StreamingResponse(
        chunks(),  # type: ignore[arg-type]
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{urllib.parse.quote(filename)}",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox",
        },
    )


@router.get("/data/pipelines/{name}", response_class=fastapi.responses.HTMLResponse)
def pipeline_page(
    request: fastapi.Request, _: Viewer, name: str, page: Page = 0, fragment: str = ""
) -> fastapi.Response:
    """A pipeline's spec and its data jobs, newest first, a page at a time."""
    ryard = site.runyard_of(request)
    data = ryard.data
    try:
        pipeline = data.get_pipeline(name)
        found = data.list_jobs(pipeline=name, limit=JOBS_PER_PAGE + 1, offset=page * JOBS_PER_PAGE)
    except errors.RunyardError as exc:
        return site.error_page(request, exc)
    now = ryard.clock()
    context = {
        "title": f"Pipeline {name}",
        "pipeline": pipeline,
        "spec": pipeline.spec,
        "inputs": _inputs(pipeline.spec.input),
        "transform": _transform_lines(pipeline.spec.transform),
        "jobs": [_job_row(j, now) for j in found[:JOBS_PER_PAGE]],
        "more": len(found) > JOBS_PER_PAGE,
        "page": page,
    }
    template = "_data_pipeline_live.html" if fragment == "live" else "data_pipeline.html"
    return site.render(request, template, context)


@router.get("/data/jobs/{ref}", response_class=fastapi.responses.HTMLResponse)
def job_page(
    request: fastapi.Request, _: Viewer, ref: str, page: Page = 0, fragment: str = ""
) -> fastapi.Response:
    """A data job (``PIPELINE@ID``): its state and transitions, datum counts, timings,
    input and output commits, and its datums, failed first with their logs."""
    ryard = site.runyard_of(request)
    data = ryard.data
    pipeline, at, job_id = ref.rpartition("@")
    try:
        if not at or not pipeline:
            raise errors.NotFoundError(
                f"No data job {ref!r}: name one as PIPELINE@ID, e.g. edges@{ref or 'ID'}"
            )
        job = data.get_job(pipeline, job_id)
        spec = data.job_spec(job)
        datum_page, total = data.page_datums(
            job, limit=DATUMS_PER_PAGE, offset=page * DATUMS_PER_PAGE
        )
    except errors.RunyardError as exc:
        return site.error_page(request, exc)
    now = ryard.clock()
    repos = {i.name: i.repo for i in spec.input_repos}
    context = {
        "title": f"Data job {job.pipeline}@{job.id[:12]}",
        "job": job,
        "spec": spec,
        "progress": dataviews.datum_progress(job),
        "duration": views.duration(job.started_at, job.finished_at, now),
        "finished": job.state.finished,
        "transitions": data.transitions(job),
        "inputs": [(n, repos.get(n, n), c) for n, c in job.input_commits],
        "others": [j for j in data.list_jobs(job_id=job.id) if j.pipeline != job.pipeline],
        "datums": datum_page,
        "total": total,
        "page": page,
        "pages": max((total + DATUMS_PER_PAGE - 1) // DATUMS_PER_PAGE, 1),
    }
    template = "_data_job_live.html" if fragment == "live" else "data_job.html"
    return site.render(request, template, context)


def _job_row(job: dp.DataJob, now: dt.datetime) -> dict[str, object]:
    return {
        "job": job,
        "progress": dataviews.datum_progress(job),
        "duration": views.duration(job.started_at, job.finished_at, now),
    }


def _inputs(spec: datums.Input, depth: int = 0) -> list[tuple[int, str, datums.PfsInput | None]]:
    """The input tree as rows (depth, "cross" / "union" / "pfs", the pfs input)."""
    if isinstance(spec, datums.PfsInput):
        return [(depth, "pfs", spec)]
    rows: list[tuple[int, str, datums.PfsInput | None]] = [(depth, spec.kind, None)]
    for sub in spec.inputs:
        rows += _inputs(sub, depth + 1)
    return rows


def _transform_lines(transform: dp.Transform) -> list[tuple[str, str]]:
    if transform.python is not None:
        rows = [("python", transform.python)]
    else:
        rows = [("cmd", " ".join(transform.cmd))]
        rows += [("stdin", "\n".join(transform.stdin))] if transform.stdin else []
    # Names only: an environment variable may hold a secret.
    rows += [("env", ", ".join(k for k, _ in transform.env))] if transform.env else []
    return rows
