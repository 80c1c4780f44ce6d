"""``runyard pipeline ...``, ``list job``, ``list datum``, ``inspect job``, ``wait job`` and
``stop job``: data pipelines and the data jobs their input commits trigger."""

from __future__ import annotations

import pathlib
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from runyard import errors
from runyard.app import data as data_mod
from runyard.app import service
from runyard.cli import render
from runyard.core import datapipelines as dp
from runyard.core import datums

__all__ = [
    "follow",
    "inspect_job",
    "list_datum",
    "list_job",
    "list_pipeline",
    "pipeline_app",
    "stop_app",
    "wait_app",
]

pipeline_app = typer.Typer(
    help="Create, update, list, inspect and delete data pipelines (spec files in JSON or "
    "YAML, close to Pachyderm's).",
    no_args_is_help=True,
)
wait_app = typer.Typer(help="Wait for data jobs.", no_args_is_help=True)
stop_app = typer.Typer(help="Stop data jobs.", no_args_is_help=True)

JobRef = Annotated[
    str,
    typer.Argument(metavar="ID|PIPELINE@ID", help="A job set's global id, or one job in it."),
]


def follow(ryard: service.Runyard, global_id: str, jobs: list[dp.DataJob], *, wait: bool) -> None:
    """Run a new job set here when no engine serves the store (and ``wait``); else say
    where it went. Raises ``RunyardError`` (exit 1) when a job of the set did not succeed."""
    if not jobs:
        return
    names = ", ".join(j.pipeline for j in jobs)
    if not wait or ryard.engines():
        render.console.print(
            f"Data job(s) {global_id} for {names} handed to the engine; follow them with "
            f"`runyard wait job {global_id}`"
            if wait
            else f"Data job(s) {global_id} for "
            f"{names} created; an engine (runyard serve) will run them",
            markup=False,
        )
        return

    def finished(job: dp.DataJob) -> None:
        why = f": {job.reason}" if job.reason else ""
        render.console.print(
            f"job {job.pipeline}@{job.id} {job.state.lower()} ({job.progress} datums){why}",
            markup=False,
        )

    ended = ryard.data.run_job_set(global_id, on_finished=finished)
    bad = [j for j in ended if j.state is not dp.DataJobState.SUCCESS]
    if bad:
        raise errors.RunyardError(
            f"{len(bad)} data job(s) of {global_id} did not succeed: "
            f"{', '.join(f'{j.pipeline} ({j.state.lower()})' for j in bad)}"
        )


# -- pipelines ----------------------------------------------------------------------------

SpecOpt = Annotated[
    pathlib.Path,
    typer.Option("--file", "-f", help="The pipeline spec (.json, or .yaml / .yml)."),
]


def _create(spec: pathlib.Path, *, update: bool, reprocess: bool, wait: bool) -> None:
    raw = data_mod.read_spec_file(spec)
    with service.connect() as ryard:
        pipeline, jobs = ryard.data.create_pipeline(
            raw, base_dir=str(spec.resolve().parent), update=update, reprocess=reprocess
        )
        verb = "updated to version" if update else "created, version"
        render.console.print(
            f"Pipeline {pipeline.name} {verb} {pipeline.version}; output repo {pipeline.name}",
            markup=False,
        )
        if jobs:
            follow(ryard, jobs[0].id, jobs, wait=wait)


WaitOpt = Annotated[
    bool,
    typer.Option(
        "--wait/--no-wait",
        help="With no engine running, run the first job over the inputs here (the default).",
    ),
]


@pipeline_app.command("create")
def create_pipeline(spec: SpecOpt, wait: WaitOpt = True) -> None:
    """Create a pipeline from its spec; its output repo takes its name. When its inputs
    hold commits, a job processes them at once."""
    _create(spec, update=False, reprocess=False, wait=wait)


@pipeline_app.command("update")
def update_pipeline(
    spec: SpecOpt,
    reprocess: Annotated[
        bool,
        typer.Option("--reprocess", help="Process every datum again (a new datum salt)."),
    ] = False,
    wait: WaitOpt = True,
) -> None:
    """Change a pipeline (its version goes up) and run a job over its inputs' heads;
    datums processed before are skipped unless --reprocess."""
    _create(spec, update=True, reprocess=reprocess, wait=wait)


@pipeline_app.command("list")
def list_pipeline() -> None:
    """List data pipelines: version, input, created, the state of their last job."""
    with service.connect() as ryard:
        pipelines = ryard.data.list_pipelines()
        last = {
            p.name: next(iter(ryard.data.list_jobs(pipeline=p.name, limit=1)), None)
            for p in pipelines
        }
    table = Table("NAME", "VERSION", "INPUT", "CREATED", "LAST JOB", "DESCRIPTION", box=None)
    for p in pipelines:
        job = last[p.name]
        table.add_row(
            p.name,
            str(p.version),
            _input_text(p.spec),
            render.relative(p.created_at),
            render.state_text(job.state) if job else Text("-"),
            p.spec.description,
        )
    render.console.print(table)


@pipeline_app.command("inspect")
def inspect_pipeline(
    name: Annotated[str, typer.Argument(metavar="NAME")],
    raw: Annotated[bool, typer.Option("--raw", help="Every field, as JSON.")] = False,
) -> None:
    """Show a pipeline: its spec, version, salt and jobs."""
    with service.connect() as ryard:
        pipeline = ryard.data.get_pipeline(name)
        jobs = ryard.data.list_jobs(pipeline=name, limit=5)
    if raw:
        render.console.print_json(render.to_json(pipeline.to_json()))
        return
    spec = pipeline.spec
    rows = [
        ("Name", pipeline.name),
        ("Description", spec.description or "-"),
        ("Version", str(pipeline.version)),
        ("Created", pipeline.created_at.isoformat(timespec="seconds")),
        ("Updated", pipeline.updated_at.isoformat(timespec="seconds")),
        ("Input", _input_text(spec)),
        ("Transform", _transform_text(spec)),
        ("Output", f"{pipeline.name}@{spec.output_branch}"),
        ("Parallelism", str(spec.parallelism)),
        ("Datum tries", str(spec.datum_tries)),
        ("Datum timeout", f"{spec.datum_timeout:g} s" if spec.datum_timeout else "-"),
        ("Job timeout", f"{spec.job_timeout:g} s" if spec.job_timeout else "-"),
        ("Egress", spec.egress or "-"),
        ("Salt", pipeline.salt),
        ("Last jobs", ", ".join(f"{j.id} ({j.state.lower()})" for j in jobs) or "-"),
    ]
    table = Table(box=None, show_header=False)
    for key, value in rows:
        table.add_row(f"[bold]{key}[/]", Text(value))
    render.console.print(table)


@pipeline_app.command("delete")
def delete_pipeline(name: Annotated[str, typer.Argument(metavar="NAME")]) -> None:
    """Delete a pipeline, its jobs and datums, and its output repo."""
    with service.connect() as ryard:
        ryard.data.delete_pipeline(name)
    render.console.print(f"Pipeline {name} deleted", markup=False)


def _input_text(spec: dp.PipelineSpec) -> str:
    kind = "" if isinstance(spec.input, datums.PfsInput) else f" ({spec.input.kind})"
    return ", ".join(f"{i.name}: {i.repo}@{i.branch}:{i.glob}" for i in spec.input_repos) + kind


def _transform_text(spec: dp.PipelineSpec) -> str:
    t = spec.transform
    if t.python is not None:
        return f"python {t.python}"
    text = " ".join(t.cmd)
    if t.stdin:
        text += " <<< " + "; ".join(t.stdin)
    return text


# -- jobs ---------------------------------------------------------------------------------


def list_job(
    job_id: Annotated[
        str | None,
        typer.Argument(metavar="[GLOBAL_ID]", help="Only the jobs of this job set."),
    ] = None,
    pipeline: Annotated[
        str | None, typer.Option("--pipeline", "-p", help="Only this pipeline's jobs.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 50,
) -> None:
    """List data job sets by global id, or the jobs of one (GLOBAL_ID) or of one pipeline
    (-p). PROGRESS is processed + skipped / total datums."""
    with service.connect() as ryard:
        if job_id is None and pipeline is None:
            jobs = ryard.data.list_jobs(limit=limit * 20)
            _print_job_sets(jobs, limit)
            return
        jobs = ryard.data.list_jobs(job_id=job_id, pipeline=pipeline, limit=limit)
    table = Table(
        "ID",
        "PIPELINE",
        "STARTED",
        "DURATION",
        "RESTART",
        "PROGRESS",
        "DL",
        "UL",
        "STATE",
        box=None,
    )
    for j in jobs:
        table.add_row(
            j.id,
            j.pipeline,
            render.relative(j.started_at),
            render.duration(j.duration),
            str(j.restarts),
            j.progress,
            render.size(j.download_bytes),
            render.size(j.upload_bytes),
            render.state_text(j.state),
        )
    render.console.print(table)


def _print_job_sets(jobs: list[dp.DataJob], limit: int) -> None:
    sets: dict[str, list[dp.DataJob]] = {}
    for j in jobs:
        sets.setdefault(j.id, []).append(j)
    table = Table("ID", "SUBJOBS", "PROGRESS", "CREATED", "MODIFIED", "STATE", box=None)
    for global_id, members in list(sets.items())[:limit]:
        done = sum(1 for j in members if j.state.finished)
        modified = max((j.finished_at or j.started_at or j.created_at) for j in members)
        order = ["FAILURE", "KILLED", "RUNNING", "EGRESS", "FINISHING", "STARTING", "CREATED"]
        worst = next((s for s in order if any(str(j.state) == s for j in members)), "SUCCESS")
        table.add_row(
            global_id,
            str(len(members)),
            f"{done} / {len(members)}",
            render.relative(members[0].created_at),
            render.relative(modified),
            render.state_text(worst),
        )
    render.console.print(table)


def inspect_job(
    ref: Annotated[str, typer.Argument(metavar="PIPELINE@ID")],
    raw: Annotated[bool, typer.Option("--raw", help="Every field, as JSON.")] = False,
) -> None:
    """Show a data job: state, datums processed / skipped / failed / total, download,
    process and upload time and bytes, timestamps, the transform and the input commits."""
    if "@" not in ref:
        raise errors.UsageError(f"{ref!r} names no pipeline; give PIPELINE@ID")
    with service.connect() as ryard:
        (job,) = ryard.data.resolve_jobs(ref)
        spec = ryard.data.job_spec(job)
    if raw:
        out = job.to_json()
        out["details"] = {
            "transform": spec.transform.to_json(),
            "input": spec.to_json()["input"],
            "parallelism": spec.parallelism,
            "datum_tries": spec.datum_tries,
            "egress": spec.egress,
        }
        render.console.print_json(render.to_json(out))
        return
    rows: list[tuple[str, str | Text]] = [
        ("Job", f"{job.pipeline}@{job.id}"),
        ("Pipeline version", str(job.pipeline_version)),
        ("State", render.state_text(job.state)),
        ("Reason", Text(job.reason or "-")),
        ("Created", job.created_at.isoformat(timespec="seconds")),
        ("Started", job.started_at.isoformat(timespec="seconds") if job.started_at else "-"),
        ("Duration", render.duration(job.duration)),
        (
            "Datums",
            f"{job.data_processed} processed, {job.data_skipped} skipped, "
            f"{job.data_failed} failed, {job.data_total} total",
        ),
        ("Download", f"{render.size(job.download_bytes)} in {job.download_time:.3f} s"),
        ("Process", f"{job.process_time:.3f} s"),
        ("Upload", f"{render.size(job.upload_bytes)} in {job.upload_time:.3f} s"),
        ("Input", _input_text(spec)),
        (
            "Input commits",
            ", ".join(f"{name}@{commit or '(empty)'}" for name, commit in job.input_commits),
        ),
        ("Output commit", f"{job.pipeline}@{job.output_commit}" if job.output_commit else "-"),
        ("Transform", Text(_transform_text(spec))),
        ("Reprocess", "yes" if job.reprocess else "no"),
    ]
    table = Table(box=None, show_header=False)
    for key, value in rows:
        table.add_row(f"[bold]{key}[/]", value)
    render.console.print(table)


def list_datum(ref: Annotated[str, typer.Argument(metavar="PIPELINE@ID")]) -> None:
    """List a data job's datums: ID, FILES, STATUS, TIME."""
    with service.connect() as ryard:
        found = ryard.data.list_datums(ref)
    table = Table("ID", "FILES", "STATUS", "TIME", box=None)
    for d in found:
        files = ", ".join(d.files[:3]) + (f" (+{len(d.files) - 3})" if len(d.files) > 3 else "")
        time_text = "-" if d.state is dp.DatumState.SKIPPED else render.short_duration(d.seconds)
        table.add_row(d.id, files, render.state_text(str(d.state)), time_text)
    render.console.print(table)


@wait_app.command("job")
def wait_job(
    ref: JobRef,
    timeout: Annotated[
        float | None, typer.Option("--timeout", min=0.0, help="Give up after SECONDS.")
    ] = None,
) -> None:
    """Wait until the job (or every job of the job set) has ended; exit 1 unless all
    succeeded."""
    with service.connect() as ryard:
        try:
            jobs = ryard.data.wait_job(ref, timeout=timeout)
        except TimeoutError as exc:
            raise errors.RunyardError(str(exc)) from exc
    for j in jobs:
        why = f": {j.reason}" if j.reason else ""
        render.console.print(
            f"{j.pipeline}@{j.id} {j.state.lower()} ({j.progress}){why}", markup=False
        )
    if any(j.state is not dp.DataJobState.SUCCESS for j in jobs):
        raise errors.RunyardError("Not every data job succeeded")


@stop_app.command("job")
def stop_job(ref: JobRef) -> None:
    """Stop a data job (or every job of a job set): one not started ends KILLED now, a
    running one as soon as its worker sees it (its running datums are killed)."""
    with service.connect() as ryard:
        stopped = ryard.data.stop_job(ref)
    if not stopped:
        render.console.print(f"Nothing to stop: {ref} has ended already", markup=False)
    for j in stopped:
        render.console.print(f"Stopping {j.pipeline}@{j.id}", markup=False)
