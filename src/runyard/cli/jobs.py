"""``runyard job ...``: create, list, inspect and wait on jobs."""

from __future__ import annotations

import datetime as dt
import json
import pathlib
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from runyard import errors
from runyard.app import service
from runyard.cli import options, policies, render
from runyard.core import grid as grid_mod
from runyard.core import hooks, records, retries, schedules, snapshots, states
from runyard.execution import loader

__all__ = ["app", "execute_with_progress"]

app = typer.Typer(
    help="Create, list, inspect, wait on, stop and schedule jobs.", no_args_is_help=True
)

PipelineArg = Annotated[
    str,
    typer.Argument(
        metavar="FILE.py[:PIPELINE]",
        help="The pipeline to run: FILE.py[:PIPELINE], or a .orchest pipeline file.",
    ),
]
ParamOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--param",
        "-p",
        metavar="KEY=VALUE",
        help="A pipeline parameter value; repeat a key for several values.",
    ),
]
RunTimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--run-timeout",
        min=0.001,
        metavar="SECONDS",
        help="Kill a run (its whole process group) after this long; it fails.",
    ),
]
MemoryLimitOpt = Annotated[
    int | None,
    typer.Option(
        "--memory-limit",
        min=16,
        metavar="MB",
        help="Cap each run's memory; going over fails the run with MemoryError.",
    ),
]
PriorityOpt = Annotated[
    int,
    typer.Option("--priority", help="Runs of higher priority start first; FIFO within one."),
]
StepParamOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--step-param",
        "-s",
        metavar="STEP.KEY=VALUE",
        help="A step parameter value; repeat a key for several values.",
    ),
]


def _progress_bar(show_bar: bool) -> Progress:
    """The job progress bar: succeeded + failed / total. No refresh thread (callers refresh
    it), because runs are forked from this process's image."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=render.err_console,
        disable=not show_bar,
        auto_refresh=False,
    )


def execute_with_progress(
    ryard: service.Runyard,
    summary: records.JobSummary,
    loaded: loader.LoadedPipeline,
    *,
    show_bar: bool = True,
) -> records.JobSummary:
    """Execute a job in this process with the progress bar."""
    counts = {"ok": 0, "bad": 0}
    with _progress_bar(show_bar) as bar:
        task = bar.add_task(loaded.pipeline.name, total=summary.job.run_count, detail="")

        def finished(run: records.Run) -> None:
            if run.state is states.RunState.FAILURE and ryard.get_run(run.id).retried_by:
                detail = f"run {run.index} failed; retrying it"  # it has not finished yet
            else:
                counts["ok" if run.state is states.RunState.SUCCESS else "bad"] += 1
                bar.update(task, advance=1)
                detail = f"{counts['ok']} succeeded, {counts['bad']} failed"
            bar.update(task, detail=detail)
            bar.refresh()

        return ryard.execute_job(summary.job.id, loaded.pipeline, on_run_finished=finished)


def wait_with_progress(
    ryard: service.Runyard, summary: records.JobSummary, *, show_bar: bool = True
) -> records.JobSummary:
    """Follow a job an engine executes, with the same progress bar."""
    with _progress_bar(show_bar) as bar:
        task = bar.add_task(summary.job.pipeline_name, total=summary.job.run_count, detail="")

        def progress(now: records.JobSummary) -> None:
            ok = now.counts.get(states.RunState.SUCCESS, 0)
            bar.update(task, completed=now.done, detail=f"{ok} succeeded, {now.done - ok} failed")
            bar.refresh()

        return ryard.wait_job(summary.job.id, on_progress=progress)


@app.command("create")
def create(
    target: PipelineArg,
    params_file: Annotated[
        pathlib.Path | None,
        typer.Option(
            "--params",
            metavar="FILE",
            help="Grid file; default: <pipeline>.parameters.json beside the file.",
        ),
    ] = None,
    param: ParamOpt = None,
    step_param: StepParamOpt = None,
    name: Annotated[str | None, typer.Option("--name", help="The job's name.")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="A tag; repeatable.")] = None,
    deselect: Annotated[
        list[str] | None,
        typer.Option("--deselect", metavar="3,7", help="Grid indices of runs to leave out."),
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option(
            "--exclude",
            metavar="KEY=VALUE",
            help="Leave out runs with this value (KEY or STEP.KEY); repeatable.",
        ),
    ] = None,
    max_parallel: Annotated[
        int | None, typer.Option("--max-parallel", min=1, help="Runs at once; default: CPUs.")
    ] = None,
    allow_large_grid: Annotated[
        bool,
        typer.Option("--allow-large-grid", help=f"Allow more than {grid_mod.MAX_RUNS:,} runs."),
    ] = False,
    run_timeout: RunTimeoutOpt = None,
    memory_limit: MemoryLimitOpt = None,
    priority: PriorityOpt = 0,
    limit_tag: Annotated[
        list[str] | None,
        typer.Option(
            "--limit-tag",
            metavar="TAG=N",
            help="Tag the job and allow at most N runs tagged TAG at once, across "
            "all jobs; repeatable.",
        ),
    ] = None,
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            metavar="TIME",
            help="Run once, at this ISO time "
            "(2026-12-01T09:00+01:00; without a zone: in --timezone).",
        ),
    ] = None,
    cron: Annotated[
        str | None,
        typer.Option(
            "--cron", metavar="EXPR", help="Run the whole grid at every tick of this cron schedule."
        ),
    ] = None,
    timezone: Annotated[
        str, typer.Option("--timezone", help="The schedule's time zone (IANA name).")
    ] = "UTC",
    start: Annotated[
        str | None, typer.Option("--start", metavar="TIME", help="No tick before this.")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--end", metavar="TIME", help="No tick after this.")
    ] = None,
    overlap: Annotated[
        str,
        typer.Option(
            "--overlap",
            help="When the previous tick's runs still go: skip, queue, cancel or allow.",
        ),
    ] = "skip",
    catchup: Annotated[
        str,
        typer.Option(
            "--catchup",
            help="Ticks missed while no engine ran: skip, latest or all (up to --catchup-limit).",
        ),
    ] = "latest",
    catchup_limit: Annotated[int, typer.Option("--catchup-limit", min=1)] = 10,
    retries: policies.RetriesOpt = None,
    retry_delay: policies.RetryDelayOpt = None,
    retry_backoff: policies.RetryBackoffOpt = None,
    retry_jitter: policies.RetryJitterOpt = None,
    retry_on: policies.RetryOnOpt = None,
    on_failure: policies.OnFailureOpt = None,
    on_success: policies.OnSuccessOpt = None,
    on_complete: policies.OnCompleteOpt = None,
    max_retained_runs: policies.KeepRunsOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the runs the grid gives; store nothing.")
    ] = False,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="Follow the job until it ends; always so while no engine "
            "serves the store, as the job then runs here.",
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the job id.")] = False,
) -> None:
    """Create a job running a pipeline once per combination of parameter values, and run it.

    Exits 1 when any run failed.
    """
    loaded = loader.load_pipeline(target)
    with service.connect() as ryard:
        trigger = None
        if at is not None or cron is not None:
            trigger = schedules.make_trigger(
                now=ryard.clock(),
                at=_time("--at", at),
                cron=cron,
                timezone=timezone,
                start=_time("--start", start),
                end=_time("--end", end),
                overlap=overlap,
                catchup=catchup,
                catchup_limit=catchup_limit,
            )
        elif start or end:
            raise errors.UsageError("--start and --end apply to a --cron schedule only")
        grid, source, used = ryard.grid_for(loaded, params_file)
        grid = options.apply_overrides(loaded.pipeline, grid, param or [], step_param or [])
        selection: list[grid_mod.Deselection] = [
            *options.parse_deselect(deselect or []),
            *options.parse_exclude(loaded.pipeline, exclude or []),
        ]
        if dry_run:
            _show_dry_run(loaded, grid, source, selection, allow_large_grid)
            return
        summary = ryard.create_job(
            loaded.pipeline,
            grid=grid,
            grid_source=source,
            name=name,
            tags=tag or [],
            deselect=selection,
            max_parallel_runs=max_parallel,
            allow_large_grid=allow_large_grid,
            pipeline_ref=loaded.reference,
            run_timeout=run_timeout,
            memory_limit_mb=memory_limit,
            priority=priority,
            trigger=trigger,
            tag_limits=options.parse_limits(limit_tag or []),
            retry=policies.retry_policy(
                loaded.pipeline,
                retries_=retries,
                delay=retry_delay,
                backoff=retry_backoff,
                jitter=retry_jitter,
                on=retry_on,
            ),
            hooks=policies.hook_list(
                on_failure=on_failure, on_success=on_success, on_complete=on_complete
            ),
            max_retained_runs=max_retained_runs,
        )
        if trigger is not None:
            _report_scheduled(ryard, summary, quiet=quiet)
            return
        if quiet:
            render.console.print(summary.job.id)
        else:
            grid_note = f" (grid file {used.name})" if used else ""
            render.console.print(
                f"Job {summary.job.id} created: {summary.job.run_count} run(s) of pipeline "
                f"{loaded.pipeline.name}{grid_note}"
            )
        engines = ryard.engines()
        if engines:
            # An engine serves this store: it runs the job; follow it only if asked.
            ryard.start_job(summary.job.id)
            if not quiet:
                render.err_console.print(
                    f"Handed to {len(engines)} engine(s); follow it with "
                    f"`runyard job wait {summary.job.id}`",
                    markup=False,
                )
            if not wait:
                return
            final = wait_with_progress(ryard, summary, show_bar=not quiet)
        else:  # no engine: the job runs here, in the foreground
            final = execute_with_progress(ryard, summary, loaded, show_bar=not quiet)
            undelivered = [
                n for n in ryard.notices(final.job.id) if n.state is states.NoticeState.PENDING
            ]
            if undelivered:
                render.err_console.print(
                    f"{len(undelivered)} hook notice(s) could not be delivered yet; an engine "
                    f"(`runyard serve`) will try again. See `runyard job hooks {final.job.id}`",
                    markup=False,
                )
        if not quiet:
            render.console.print(
                f"Job {final.job.id} {str(final.state).lower()}: {render.progress(final)}"
            )
        if final.state is not states.JobState.SUCCESS:
            raise typer.Exit(1)


def _time(option: str, text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        raise errors.UsageError(
            f"{option} {text!r} is not an ISO time; give one like 2026-12-01T09:00+01:00"
        ) from None


def _report_scheduled(ryard: service.Runyard, summary: records.JobSummary, *, quiet: bool) -> None:
    schedule = ryard.schedule(summary.job.id)
    assert schedule is not None
    if quiet:
        render.console.print(summary.job.id)
        return
    when = schedule.next_fire_at.isoformat() if schedule.next_fire_at else "never"
    render.console.print(
        f"Job {summary.job.id} scheduled: {summary.job.run_count} run(s) of pipeline "
        f"{summary.job.pipeline_name} at each tick; first tick {when}"
    )
    if not ryard.engines(within=5.0):
        render.err_console.print(
            "No engine serves this store yet: start `runyard serve` for the schedule to fire.",
            markup=False,
        )


def _show_dry_run(
    loaded: loader.LoadedPipeline,
    grid: object,
    source: str,
    selection: list[grid_mod.Deselection],
    allow_large: bool,
) -> None:
    checked = grid_mod.parse_grid(
        loaded.pipeline,
        grid if isinstance(grid, dict) else None,
        source=source,
        allow_large=allow_large,
    )
    selected = grid_mod.select_runs(checked.expand(loaded.pipeline), selection, size=checked.size)
    keep = {i for i, _ in selected}
    table = Table("#", "SELECTED", "PIPELINE PARAMETERS", "STEP PARAMETERS", box=None)
    for index, params in enumerate(checked.expand(loaded.pipeline)):
        steps = {k: v for k, v in params["steps"].items() if v}
        table.add_row(
            str(index),
            "yes" if index in keep else "no",
            render.to_json(params["pipeline"]).replace("\n", " "),
            render.to_json(steps).replace("\n", " "),
        )
    render.console.print(table)
    render.console.print(f"{len(keep)} of {checked.size} run(s) selected; nothing stored.")


@app.command("list")
def list_jobs(
    pipeline: Annotated[
        str | None, typer.Option("--pipeline", "-p", help="Only this pipeline.")
    ] = None,
    state: Annotated[
        states.JobState | None,
        typer.Option("--state", case_sensitive=False, help="Only jobs in this state."),
    ] = None,
    tag: Annotated[str | None, typer.Option("--tag", help="Only jobs with this tag.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 50,
) -> None:
    """List jobs, newest first."""
    with service.connect() as ryard:
        jobs = ryard.list_jobs(pipeline=pipeline, state=state, tag=tag, limit=limit)
    table = Table("ID", "PIPELINE", "STARTED", "DURATION", "PROGRESS", "STATE", box=None)
    for summary in jobs:
        table.add_row(
            summary.job.id,
            summary.job.pipeline_name,
            render.relative(summary.started_at),
            render.duration(render.job_duration(summary)),
            render.progress(summary),
            render.state_text(summary.state),
        )
    render.console.print(table)


@app.command("inspect")
def inspect_job(
    job_id: Annotated[str, typer.Argument(metavar="JOB_ID", help="A job id or its prefix.")],
    raw: Annotated[bool, typer.Option("--raw", help="Every field, as JSON.")] = False,
) -> None:
    """Show a job: its pipeline, state, grid, tags, timings and run counts."""
    with service.connect() as ryard:
        summary = ryard.get_job(job_id)
        runs = ryard.list_runs(summary.job.id) if raw else []
        failed = [] if raw else ryard.list_runs(summary.job.id, state=states.RunState.FAILURE)
        schedule = ryard.schedule(summary.job.id)
        snapshot = ryard.get_snapshot(summary.job.snapshot_id) if summary.job.snapshot_id else None
    if raw:
        out = render.job_json(summary, runs)
        out["schedule"] = _schedule_json(schedule)
        out["snapshot"] = (
            None
            if snapshot is None
            else {
                "id": snapshot.id,
                "root": snapshot.root,
                "file_count": snapshot.file_count,
                "total_bytes": snapshot.total_bytes,
                "environment": snapshot.environment.summary,
            }
        )
        render.console.print_json(render.to_json(out))
        return
    job = summary.job
    table = Table(box=None, show_header=False)
    rows: list[tuple[str, str | Text]] = [
        ("Job", job.id),
        ("Name", job.name),
        ("Pipeline", f"{job.pipeline_name} (version {job.pipeline_version})"),
        ("State", render.state_text(summary.state)),
        ("Progress", render.progress(summary)),
        (
            "Runs",
            ", ".join(f"{n} {s.lower()}" for s, n in sorted(summary.counts.items()) if n) or "none",
        ),
        ("Tags", ", ".join(job.tags) or "-"),
        ("Created", job.created_at.isoformat(timespec="seconds")),
        (
            "Started",
            summary.started_at.isoformat(timespec="seconds") if summary.started_at else "-",
        ),
        ("Duration", render.duration(render.job_duration(summary))),
        ("Parallel", str(job.max_parallel_runs)),
        ("Grid", json.dumps(dict(job.grid))),
        ("Deselected", ", ".join(map(str, job.deselected)) or "-"),
        ("Trigger", _trigger_text(schedule)),
        ("Retries", _retry_text(job.retry)),
        ("Hooks", "\n".join(f"{h.event}: {h.display}" for h in job.hooks) or "-"),
        (
            "Keeps",
            f"the newest {job.max_retained_runs} finished runs"
            if job.max_retained_runs
            else "every run",
        ),
        ("From", job.pipeline_ref or "-"),
        (
            "Snapshot",
            "- (runs work where they are started)"
            if snapshot is None
            else f"{snapshot.id[:12]}: {snapshot.file_count} files, "
            f"{snapshots.size_text(snapshot.total_bytes)} of {snapshot.root}",
        ),
    ]
    for key, value in rows:
        table.add_row(f"[bold]{key}[/]", value)
    render.console.print(table)
    failed = [run for run in failed if not run.retried_by]
    for run in failed[:10]:
        render.console.print(f"  run {run.id} (#{run.index}) failed: {run.reason}")
    if len(failed) > 10:
        render.console.print(f"  ... and {len(failed) - 10} more failed runs")


def _retry_text(policy: retries.RetryPolicy | None) -> str:
    if policy is None:
        return "none: a failed run stays failed"
    on = f" on {', '.join(policy.on)}" if policy.on else ""
    return (
        f"{policy.retries} time(s){on}, after {policy.delay:g} s, x{policy.backoff:g} each "
        f"time, jitter {policy.jitter:g}"
    )


@app.command("hooks")
def list_hook_notices(
    job_id: Annotated[str, typer.Argument(metavar="JOB_ID", help="A job id or its prefix.")],
) -> None:
    """Show the notices a job's hooks were sent (or are still to be): their state,
    attempts and last error."""
    with service.connect() as ryard:
        job = ryard.get_job(job_id).job
        notices = ryard.notices(job.id)
    if not job.hooks:
        render.console.print(
            f"Job {job.id} has no hooks; add them with --on-failure, --on-success or --on-complete"
        )
        return
    table = Table("EVENT", "RUN", "HOOK", "STATE", "ATTEMPTS", "LAST ERROR", box=None)
    for notice in notices:
        hook = hooks.Hook(notice.event, notice.target)
        table.add_row(
            notice.event.value,
            notice.run_id[:8] if notice.run_id else "-",
            hook.display,
            notice.state.value.lower(),
            str(notice.attempts),
            notice.last_error or "",
        )
    render.console.print(table)


@app.command("pause")
def pause_job(
    job_id: Annotated[str, typer.Argument(metavar="JOB_ID", help="A job id or its prefix.")],
) -> None:
    """Pause a scheduled job: no tick fires until it is resumed."""
    with service.connect() as ryard:
        ryard.pause(job_id)
        render.console.print(f"Job {ryard.get_job(job_id).job.id} paused.")


@app.command("resume")
def resume_job(
    job_id: Annotated[str, typer.Argument(metavar="JOB_ID", help="A job id or its prefix.")],
) -> None:
    """Resume a paused scheduled job; the ticks it missed while paused do not fire."""
    with service.connect() as ryard:
        ryard.pause(job_id, paused=False)
        schedule = ryard.schedule(job_id)
        when = schedule.next_fire_at.isoformat() if schedule and schedule.next_fire_at else "-"
        render.console.print(f"Job {ryard.get_job(job_id).job.id} resumed; next tick {when}.")


@app.command("run-now")
def run_now(
    job_id: Annotated[str, typer.Argument(metavar="JOB_ID", help="A job id or its prefix.")],
) -> None:
    """Make a batch of a scheduled job's runs now, whatever its schedule says."""
    with service.connect() as ryard:
        made = ryard.run_now(job_id)
        render.console.print(f"{made} run(s) queued now.")


@app.command("retry")
def retry_failed(
    job_id: Annotated[str, typer.Argument(metavar="JOB_ID", help="A job id or its prefix.")],
    all_steps: Annotated[
        bool, typer.Option("--all", help="Run every step again, reusing nothing.")
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="When an engine runs them, wait for them to end.")
    ] = False,
) -> None:
    """Retry every failed or killed run of a job, from failure: each new run reuses the
    outputs of the steps that succeeded; exits 1 unless the job then succeeds."""
    with service.connect() as ryard:
        retried = ryard.retry_failed(job_id, all_steps=all_steps)
        job = ryard.get_job(job_id).job
        render.console.print(f"Job {job.id}: {len(retried)} run(s) retried.")
        if ryard.engines():
            if not wait:
                return
            ryard.wait_runs([r.id for r in retried], timeout=float("inf"))
            summary = ryard.get_job(job.id)
        else:  # no engine: run them here
            summary = ryard.execute_job(job.id)
    render.console.print(
        f"Job {summary.job.id} {str(summary.state).lower()}: {render.progress(summary)}"
    )
    if summary.state is not states.JobState.SUCCESS:
        raise typer.Exit(1)


@app.command("priority")
def set_priority(
    job_id: Annotated[str, typer.Argument(metavar="JOB_ID", help="A job id or its prefix.")],
    priority: Annotated[int, typer.Argument(help="Higher runs first.")],
) -> None:
    """Change the priority of a job's runs that have not started yet."""
    with service.connect() as ryard:
        changed = ryard.set_priority(priority, job_id=job_id)
    render.console.print(f"{changed} queued run(s) now have priority {priority}.")


@app.command("stop")
def stop_job(
    job_id: Annotated[str, typer.Argument(metavar="JOB_ID", help="A job id or its prefix.")],
    timeout: Annotated[
        float, typer.Option("--timeout", min=0, help="How long to wait for running runs.")
    ] = 30.0,
) -> None:
    """Stop a job: queued runs never start, running ones are killed (SIGTERM, then SIGKILL
    after the worker's grace period) and end KILLED."""
    with service.connect() as ryard:
        outcome = ryard.stop_job(job_id)
        job = ryard.get_job(job_id).job
        report_stop(ryard, outcome, timeout=timeout, what=f"Job {job.id}")


def report_stop(
    ryard: service.Runyard, outcome: records.StopOutcome, *, timeout: float, what: str
) -> None:
    """Say what a stop request did, waiting for the running runs it asked to stop."""
    if not outcome.killed and not outcome.requested:
        render.console.print(f"{what} has no run left to stop; nothing changed.")
        return
    if outcome.killed:
        render.console.print(f"{len(outcome.killed)} run(s) that had not started: killed.")
    if outcome.requested:
        ended = ryard.wait_runs(outcome.requested, timeout=timeout)
        stopped = [r for r in ended if r.state in states.FINISHED_RUN_STATES]
        render.console.print(
            f"{len(stopped)} of {len(ended)} running run(s) stopped"
            + ("." if len(stopped) == len(ended) else f"; still stopping after {timeout:g} s.")
        )
        if len(stopped) != len(ended):
            raise typer.Exit(1)


@app.command("wait")
def wait_job(
    job_id: Annotated[str, typer.Argument(metavar="JOB_ID", help="A job id or its prefix.")],
    timeout: Annotated[
        float | None, typer.Option("--timeout", min=0, help="Give up after this many seconds.")
    ] = None,
) -> None:
    """Wait until every run of a job has finished; exits 1 unless all succeeded."""
    with service.connect() as ryard:
        try:
            summary = ryard.wait_job(job_id, timeout=timeout)
        except TimeoutError as exc:
            raise errors.RunyardError(str(exc)) from None
    render.console.print(
        f"Job {summary.job.id} {str(summary.state).lower()}: {render.progress(summary)}"
    )
    if summary.state is not states.JobState.SUCCESS:
        raise typer.Exit(1)


def _trigger_text(schedule: records.Schedule | None) -> str:
    if schedule is None:
        return "now"
    t = schedule.trigger
    what = f"cron {t.cron!r} ({t.timezone})" if t.cron else f"at {t.at.isoformat() if t.at else ''}"
    state = (
        "paused"
        if schedule.paused
        else "next tick " + (schedule.next_fire_at.isoformat() if schedule.next_fire_at else "none")
    )
    return f"{what}; overlap {t.overlap}, catch-up {t.catchup}; {state}"


def _schedule_json(schedule: records.Schedule | None) -> dict[str, object] | None:
    if schedule is None:
        return None
    t = schedule.trigger
    return {
        "kind": t.kind,
        "at": t.at.isoformat() if t.at else None,
        "cron": t.cron,
        "timezone": t.timezone,
        "start": t.start.isoformat() if t.start else None,
        "end": t.end.isoformat() if t.end else None,
        "overlap": str(t.overlap),
        "catchup": str(t.catchup),
        "catchup_limit": t.catchup_limit,
        "paused": schedule.paused,
        "next_fire_at": schedule.next_fire_at.isoformat() if schedule.next_fire_at else None,
    }
