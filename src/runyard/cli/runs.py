"""``runyard run ...``: run a pipeline once now, list a job's runs, inspect one run."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from runyard import errors
from runyard.app import service
from runyard.cli import jobs, options, policies, render
from runyard.core import records, states
from runyard.execution import loader

__all__ = ["app"]


class _RunGroup(typer.core.TyperGroup):
    """``runyard run FILE.py:PIPELINE`` runs a pipeline; ``runyard run list|inspect`` read."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["now", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_RunGroup,
    no_args_is_help=True,
    help="Run a pipeline once, now (runyard run FILE.py:PIPELINE), or list, inspect, stop "
    "and retry runs.",
)


@app.command("now", hidden=True)
def run_now(
    target: jobs.PipelineArg,
    param: jobs.ParamOpt = None,
    step_param: jobs.StepParamOpt = None,
    name: Annotated[str | None, typer.Option("--name", help="The job's name.")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="A tag; repeatable.")] = None,
    run_timeout: jobs.RunTimeoutOpt = None,
    memory_limit: jobs.MemoryLimitOpt = None,
    wait: Annotated[
        bool,
        typer.Option("--wait", help="When an engine runs it, wait for it to end."),
    ] = False,
    retries: policies.RetriesOpt = None,
    retry_delay: policies.RetryDelayOpt = None,
    retry_backoff: policies.RetryBackoffOpt = None,
    retry_jitter: policies.RetryJitterOpt = None,
    retry_on: policies.RetryOnOpt = None,
    on_failure: policies.OnFailureOpt = None,
    on_success: policies.OnSuccessOpt = None,
) -> None:
    """Run a pipeline once, now, showing each step; exits 1 when it fails. While an engine
    serves the store it runs there, and this returns at once (unless --wait)."""
    loaded = loader.load_pipeline(target)
    grid = options.apply_overrides(loaded.pipeline, {}, param or [], step_param or [])
    for section in grid.values():
        for key, values in section.items():
            if len(values) > 1:
                raise typer.BadParameter(
                    f"{key!r} was given {len(values)} values; `runyard run` runs once. "
                    "Use `runyard job create` for a grid."
                )
    with service.connect() as ryard:
        summary = ryard.create_job(
            loaded.pipeline,
            grid=grid,
            name=name,
            tags=tag or [],
            max_parallel_runs=1,
            pipeline_ref=loaded.reference,
            run_timeout=run_timeout,
            memory_limit_mb=memory_limit,
            retry=policies.retry_policy(
                loaded.pipeline,
                retries_=retries,
                delay=retry_delay,
                backoff=retry_backoff,
                jitter=retry_jitter,
                on=retry_on,
            ),
            hooks=policies.hook_list(
                on_failure=on_failure, on_success=on_success, on_complete=None
            ),
        )
        if ryard.engines():
            ryard.start_job(summary.job.id)
            (queued,) = ryard.list_runs(summary.job.id)
            render.console.print(f"Run {queued.id} handed to the engine")
            if not wait:
                return
            (run,) = ryard.wait_runs([queued.id], timeout=float("inf"))
            _print_outcome(run)
            return

        def on_step(run_id: str, step: records.StepRun) -> None:
            state = step.state
            if state is states.StepState.RUNNING:
                render.err_console.print(f"  [cyan]▶[/] {step.step_name}")
            elif state is states.StepState.SUCCESS:
                render.err_console.print(
                    f"  [green]✓[/] {step.step_name} [dim]{render.short_duration(step.duration)}[/]"
                )
            elif state is states.StepState.FAILURE:
                render.err_console.print(
                    f"  [red]✗[/] {step.step_name}: {step.error_type}: {step.error_message}"
                )
            else:
                render.err_console.print(f"  [dim]- {step.step_name}: {state.lower()}[/]")

        finished: list[records.Run] = []
        render.err_console.print(f"Running pipeline {loaded.pipeline.name}")
        ryard.execute_job(
            summary.job.id, loaded.pipeline, on_step=on_step, on_run_finished=finished.append
        )
        last = ryard.last_attempt(finished[0].id)  # the run was retried, maybe
    _print_outcome(last)


def _print_outcome(run: records.Run) -> None:
    render.console.print(
        f"Run {run.id} {run.state.lower()}" + (f": {run.reason}" if run.reason else "")
    )
    if run.state is not states.RunState.SUCCESS:
        raise typer.Exit(1)


@app.command("retry")
def retry_run(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="A run id or its prefix.")],
    all_steps: Annotated[
        bool, typer.Option("--all", help="Run every step again, reusing nothing.")
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="When an engine runs it, wait for it to end.")
    ] = False,
) -> None:
    """Re-run a finished run from failure: a new run with the same parameters that reuses
    the outputs of the steps that succeeded and runs only the rest; exits 1 if it fails."""
    with service.connect() as ryard:
        run = ryard.retry_run(run_id, all_steps=all_steps)
        kept = ", ".join(run.reuse or {}) or "nothing"
        render.console.print(f"Run {run.id} retries run {run.parent_run_id} (reuses {kept})")
        if ryard.engines():
            if not wait:
                return
            (done,) = ryard.wait_runs([run.id], timeout=float("inf"))
        else:  # no engine: run it here
            ryard.execute_job(run.job_id)
            done = ryard.last_attempt(run.id)
    _print_outcome(done)


@app.command("priority")
def set_priority(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="A run id or its prefix.")],
    priority: Annotated[int, typer.Argument(help="Higher runs first.")],
) -> None:
    """Change the priority of a run that has not started yet."""
    with service.connect() as ryard:
        changed = ryard.set_priority(priority, run_id=run_id)
    if not changed:
        raise errors.UsageError(f"Run {run_id} has started already; its priority no longer counts")
    render.console.print(f"Run {run_id} now has priority {priority}.")


@app.command("stop")
def stop_run(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="A run id or its prefix.")],
    timeout: Annotated[
        float, typer.Option("--timeout", min=0, help="How long to wait for it to stop.")
    ] = 30.0,
) -> None:
    """Stop a run: a queued one never starts; a running one is killed and ends KILLED."""
    with service.connect() as ryard:
        outcome = ryard.stop_run(run_id)
        if outcome.finished:
            run = ryard.get_run(outcome.finished[0])
            render.console.print(
                f"Run {run.id} had already finished ({run.state.lower()}); nothing changed."
            )
            return
        jobs.report_stop(ryard, outcome, timeout=timeout, what=f"Run {run_id}")


@app.command("list")
def list_runs(
    job_id: Annotated[str, typer.Argument(metavar="JOB_ID", help="A job id or its prefix.")],
    state: Annotated[
        states.RunState | None,
        typer.Option("--state", case_sensitive=False, help="Only runs in this state."),
    ] = None,
) -> None:
    """List a job's runs in grid order, with their parameters."""
    with service.connect() as ryard:
        runs = ryard.list_runs(job_id, state=state)
    table = Table("ID", "#", "PARAMETERS", "STARTED", "DURATION", "STATE", box=None)
    for run in runs:
        table.add_row(
            run.id,
            str(run.index),
            _params_cell(run.params),
            render.relative(run.started_at),
            render.short_duration(run.duration),
            render.state_text(run.state)
            + (f" (retried by {run.retried_by[:8]})" if run.retried_by else ""),
        )
    render.console.print(table)


def _params_cell(params: records.RunParams) -> str:
    parts = [f"{k}={_short(v)}" for k, v in params["pipeline"].items()]
    for step, values in params["steps"].items():
        parts += [f"{step}.{k}={_short(v)}" for k, v in values.items()]
    return " ".join(parts)


def _short(value: Any) -> str:
    text = render.to_json(value).replace("\n", "").replace("  ", "")
    return text if len(text) <= 24 else text[:21] + "..."


@app.command("inspect")
def inspect_run(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="A run id or its prefix.")],
    raw: Annotated[bool, typer.Option("--raw", help="Every field, as JSON.")] = False,
) -> None:
    """Show a run: its parameters, state, why it ended, each step and its outputs."""
    with service.connect() as ryard:
        run = ryard.get_run(run_id)
        steps = ryard.step_runs(run.id)
        outputs = ryard.artifacts_of(run.id)
        copy = ryard.working_copy(run.id)
        kept = ryard.kept_files(run.id)
    if raw:
        out = render.run_json(run)
        out["working_copy"] = str(copy) if copy is not None else None
        out["files"] = [{"step": step, "path": where} for step, where in kept]
        out["steps"] = [
            {**s.to_json(), "state": str(s.state), "duration": s.duration} for s in steps
        ]
        out["outputs"] = [a.to_json() for a in outputs]
        render.console.print_json(render.to_json(out))
        return
    head = Table(box=None, show_header=False)
    rows: list[tuple[str, str | Text]] = [
        ("Run", f"{run.id} (#{run.index} of job {run.job_id})"),
        ("State", render.state_text(run.state)),
        ("Reason", run.reason or "-"),
        ("Started", run.started_at.isoformat(timespec="seconds") if run.started_at else "-"),
        ("Duration", render.short_duration(run.duration)),
        ("Worker", run.worker or "-"),
        ("Working copy", str(copy) if copy is not None else "-"),
        ("Pipeline parameters", json.dumps(run.params["pipeline"])),
    ]
    if run.note:
        rows.append(("Note", run.note))
    for step_name, where in kept:
        rows.append((f"File of {step_name}", where))
    for key, value in rows:
        head.add_row(f"[bold]{key}[/]", value)
    render.console.print(head)
    table = Table("STEP", "STATE", "ATTEMPT", "DURATION", "OUTPUTS", "PARAMETERS", box=None)
    stored: dict[str, list[str]] = {}
    for artifact in outputs:
        stored.setdefault(artifact.step_name, []).append(
            f"{artifact.output_name} ({artifact.size} B)"
        )
    for step in steps:
        table.add_row(
            step.step_name,
            render.state_text(step.state),
            str(step.attempt),
            render.short_duration(step.duration),
            ", ".join(stored.get(step.step_name, [])),
            _short_params(run.params["steps"].get(step.step_name, {})),
        )
    render.console.print(table)
    for step in steps:
        if step.state is states.StepState.FAILURE:
            render.console.print(
                f"\n[bold red]Step {step.step_name} failed:[/] "
                f"{step.error_type}: {step.error_message}"
            )
            if step.traceback:
                render.console.print(step.traceback.rstrip(), markup=False)


def _short_params(values: dict[str, Any]) -> str:
    return " ".join(f"{k}={_short(v)}" for k, v in values.items())
