"""``runyard register`` and ``runyard registry list|show``: processing steps by name and version."""

from __future__ import annotations

import json
import pathlib
from typing import Annotated

import typer
from rich.table import Table

from runyard.app import service
from runyard.cli import render

__all__ = ["app", "register"]

app = typer.Typer(help="Processing steps: registered pipelines and steps, by name and version.")


def register(
    file: Annotated[
        pathlib.Path, typer.Argument(metavar="FILE.py", help="A file defining pipelines/steps.")
    ],
) -> None:
    """Snapshot FILE.py's project and register the pipelines and steps it defines, so jobs
    can be made of them by name and version (over the REST API too)."""
    with service.connect() as ryard:
        found = ryard.register_file(file)
    for r in found:
        render.console.print(f"registered {r.kind} {r.name} {r.version}", markup=False)
    if not found:
        render.err_console.print(f"{file} defines no pipeline or step", markup=False)


@app.command("list")
def list_registered(
    name: Annotated[str | None, typer.Argument(help="Only this name's versions.")] = None,
) -> None:
    """List registered processing steps, each version."""
    with service.connect() as ryard:
        found = ryard.registrations(name=name)
    table = Table("NAME", "KIND", "VERSION", "REGISTERED", "SNAPSHOT", "FROM", box=None)
    for r in found:
        table.add_row(
            r.name,
            r.kind.value,
            r.version,
            r.registered_at.isoformat(timespec="seconds"),
            (r.snapshot_id or "-")[:12],
            r.reference,
        )
    render.console.print(table)


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="A processing step's name.")],
    version: Annotated[str | None, typer.Option("--version", help="Which version.")] = None,
) -> None:
    """Show one processing step with the JSON Schema of its parameters."""
    with service.connect() as ryard:
        r = ryard.registration(name, version)
    render.console.print(f"{r.kind} {r.name} {r.version}", markup=False)
    render.console.print(f"from: {r.reference} (snapshot {r.snapshot_id or '-'})", markup=False)
    if r.description:
        render.console.print(r.description, markup=False)
    render.console.print_json(json.dumps(r.params_schema))
