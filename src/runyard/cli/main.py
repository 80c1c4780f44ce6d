"""The ``runyard`` command. Only ``main`` turns errors into exit codes."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.text import Text

import runyard
from runyard import errors
from runyard.app import service
from runyard.cli import (
    datajobs,
    datarepos,
    engines,
    jobs,
    registry,
    render,
    runs,
    snapshots,
    tokens,
)

__all__ = ["app", "main"]

app = typer.Typer(
    name="runyard",
    help="runyard: run data pipelines as jobs over parameter grids; every run recorded.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(jobs.app, name="job")
app.add_typer(runs.app, name="run")
app.add_typer(snapshots.app, name="snapshot")
app.add_typer(tokens.app, name="token")
app.add_typer(registry.app, name="registry")
app.command("register")(registry.register)
app.command("serve")(engines.serve)
app.command("worker")(engines.worker)

# Data repos and data pipelines, with Pachyderm's verb-first commands (runyard list job...).
list_app = typer.Typer(help="List data: files, commits, data jobs, datums.", no_args_is_help=True)
list_app.command("file")(datarepos.list_file)
list_app.command("commit")(datarepos.list_commit)
list_app.command("repo")(datarepos.list_repo)
list_app.command("pipeline")(datajobs.list_pipeline)
list_app.command("job")(datajobs.list_job)
list_app.command("datum")(datajobs.list_datum)
inspect_app = typer.Typer(help="Show a commit or a data job.", no_args_is_help=True)
inspect_app.command("commit")(datarepos.inspect_commit)
inspect_app.command("job")(datajobs.inspect_job)
app.add_typer(datarepos.repo_app, name="repo")
app.add_typer(datajobs.pipeline_app, name="pipeline")
app.add_typer(datarepos.put_app, name="put")
app.add_typer(datarepos.get_app, name="get")
app.add_typer(datarepos.delete_app, name="delete")
app.add_typer(list_app, name="list")
app.add_typer(inspect_app, name="inspect")
app.add_typer(datajobs.wait_app, name="wait")
app.add_typer(datajobs.stop_app, name="stop")


def _show_version(value: bool) -> None:
    if value:
        render.console.print(f"runyard {runyard.__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            is_eager=True,
            callback=_show_version,
            help="Show runyard's version and exit.",
        ),
    ] = False,
) -> None:
    """runyard: run data pipelines as jobs over parameter grids; every run recorded."""


@app.command("logs")
def logs(
    run_id: Annotated[
        str | None, typer.Argument(metavar="RUN_ID", help="A run id or its prefix.")
    ] = None,
    step: Annotated[str | None, typer.Option("--step", help="Only this step's lines.")] = None,
    timestamps: Annotated[
        bool, typer.Option("--timestamps", "-t", help="Prefix each line with its time.")
    ] = False,
    datum: Annotated[
        str | None,
        typer.Option("--datum", help="A data job's datum (id or prefix) instead of a run."),
    ] = None,
) -> None:
    """Print what a run's steps wrote to stdout, stderr and logging, in order; or with
    --datum, what a datum's transform wrote (every try)."""
    if datum is not None:
        with service.connect() as ryard:
            record = ryard.data.datum(datum, job_id=run_id)
        render.console.print(record.logs, markup=False, end="")
        return
    if run_id is None:
        raise errors.UsageError("Give a RUN_ID, or --datum DATUM_ID for a data job's datum")
    with service.connect() as ryard:
        lines = ryard.logs(run_id, step=step)
        if step is not None and not lines:
            names = {s.step_name for s in ryard.step_runs(run_id)}
            if step not in names:
                raise errors.NotFoundError(
                    f"Run {run_id} has no step {step!r}{errors.did_you_mean(step, names)}"
                )
    for line in lines:
        prefix = f"{line.at.isoformat(timespec='milliseconds')} " if timestamps else ""
        where = f"[{line.step_name}]" if line.step_name else "[run]"
        level = f" {line.level}" if line.level else ""
        stream = " stderr" if line.stream == "stderr" else ""
        render.console.print(f"{prefix}{where}{level}{stream} {line.text}", markup=False)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; a ``RunyardError`` becomes one line on stderr and its exit code.

    Typer itself turns usage mistakes into exit code 2 with the command's usage.
    """
    try:
        app(args=argv, prog_name="runyard")
    except errors.RunyardError as exc:
        render.err_console.print(Text.assemble(("error: ", "bold red"), exc.message))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        render.err_console.print("Interrupted.")
        sys.exit(130)
